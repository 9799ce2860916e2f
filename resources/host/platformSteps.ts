/**
 * The shell steps of the platform layer (host/platform.ts): how kvmtune talks to systemd, udev,
 * NetworkManager, SELinux and libvirt's units, written once. A leaf module (it imports nothing) so
 * that host/files.ts and host/persist.ts can use it without an import cycle; host/platform.ts
 * re-exports it beside the detection.
 *
 * Most of these steps run in scripts built without the host's facts at hand (a persistence file's
 * text is compared for drift, so it cannot depend on a read made elsewhere): where the platforms
 * differ, the step branches on the host, in the shell, with builtins only (`command -v`, `[ -e ]`),
 * so that a host without the tool pays no process for it.
 */

/** systemd: re-read unit files. Once per host step, only after a unit changed (it took 16 s on a loaded lab host). */
export const SYSTEMD_RELOAD = "systemctl daemon-reload";

/** Makes a unit's enablement links without reloading (the caller reloads once at the end). `unit` is quoted by the caller. */
export const enableUnitCommand = (quotedUnit: string) => `systemctl --no-reload enable ${quotedUnit}`;

/** Removes a unit's enablement links; a unit already gone is fine. */
export const disableUnitCommand = (quotedUnit: string) => `systemctl --no-reload disable ${quotedUnit} >/dev/null 2>&1 || true`;

/** udev: re-read rules. A host without udevadm (a container) has no rules to reload. */
export const UDEV_RELOAD = "udevadm control --reload 2>/dev/null || true";

/** udev: wait until the events queued so far are handled (new VFs' netdevs renamed), at most `seconds`. */
export const udevSettleCommand = (seconds: number) => `udevadm settle --timeout=${Math.floor(seconds)} >/dev/null 2>&1 || true`;

/** systemd: whether a unit is enabled, as one word (`enabled`, `disabled`, ...); nothing for an unknown unit. `quotedUnit` is quoted by the caller. */
export const isEnabledCommand = (quotedUnit: string) => `systemctl is-enabled ${quotedUnit} 2>/dev/null`;

/**
 * systemd: reboots the host, detached and a second from now, so the command that starts it returns
 * its exit status before sshd goes down: systemd-run's transient timer when there is one, else a
 * background shell that outlives the SSH session (nohup, its output nowhere).
 */
export const DETACHED_REBOOT = [
    "if command -v systemd-run >/dev/null 2>&1; then",
    "  systemd-run --quiet --on-active=1 systemctl reboot",
    "else",
    "  nohup sh -c 'sleep 1; systemctl reboot' >/dev/null 2>&1 &",
    "fi",
].join("\n");

/**
 * Loads a kernel module now (`modprobe`); persisting it is a modules-load.d file. `module` is one of
 * kvmtune's own constants (a scheduler's, vhost_net). The caller decides what a failure means.
 */
export function loadModuleCommand(module: string): string {
    if (!/^[a-z0-9_-]+$/.test(module)) throw new Error(`not a module name: ${JSON.stringify(module)}`);
    return `modprobe ${module}`;
}

/**
 * NetworkManager: re-read its configuration (conf.d drop-ins such as unmanaged-devices), only where
 * it runs. `nmcli general reload conf` re-reads the files without touching DNS; where nmcli is
 * missing or refuses, `systemctl reload NetworkManager` (SIGHUP, what Red Hat's documentation
 * gives for unmanaged-devices) does the same and more. A host without NetworkManager does nothing.
 */
export const NETWORK_MANAGER_RELOAD =
    "if systemctl is-active --quiet NetworkManager.service 2>/dev/null; then " +
    "{ command -v nmcli >/dev/null 2>&1 && nmcli general reload conf >/dev/null 2>&1; } || systemctl reload NetworkManager.service || exit 1; fi";

/**
 * SELinux: gives a file kvmtune wrote its default label (the file contexts of the loaded policy),
 * as `restorecon` does for package files. Only where SELinux is on (selinuxfs has `enforce`) and
 * restorecon is installed; a failure fails the step, naming the file, so a wrongly labelled unit or
 * rule is not left for a daemon to be denied later. `quotedPath` is quoted by the caller.
 */
export function relabelCommand(quotedPath: string): string {
    return (
        `if [ -e /sys/fs/selinux/enforce ] && command -v restorecon >/dev/null 2>&1; then ` +
        `restorecon -F ${quotedPath} || { echo "restorecon failed for "${quotedPath} >&2; exit 1; }; fi`
    );
}

/**
 * What a boot unit that prepares the host for libvirt prepares it for: QEMU guests (memory, devices),
 * the guests libvirt-guests starts at boot, networks (a hostdev network's VF pool), node devices.
 */
export type LibvirtUse = "qemu" | "guests" | "network" | "nodedev";

/** The unit serving each use, per layout (libvirt's docs/daemons.rst: one daemon per driver in the modular layout). */
const LIBVIRT_DAEMONS = {
    monolithic: { qemu: "libvirtd.service", guests: "libvirt-guests.service", network: "libvirtd.service", nodedev: "libvirtd.service" },
    modular: { qemu: "virtqemud.service", guests: "libvirt-guests.service", network: "virtnetworkd.service", nodedev: "virtnodedevd.service" },
} as const;

export type LibvirtLayout = keyof typeof LIBVIRT_DAEMONS;

/**
 * The units a boot unit must run before, so libvirt finds what it prepares (pools before QEMU
 * allocates guest memory; VFs before a hostdev network or a guest takes them): the daemon serving
 * each use, in the order asked, the monolithic layout's first.
 *
 * With no layout (the default), both layouts' units are listed. Boot units are written without the
 * host's facts and compared byte for byte on refresh; systemd ignores ordering against a unit that
 * is not loaded, so one text is right on both layouts and stays right when a host moves from
 * `libvirtd` to the modular daemons. A socket-activated daemon started at boot waits all the same:
 * its start job is ordered after ours.
 */
export function libvirtUnitsBefore(uses: readonly LibvirtUse[], layout?: LibvirtLayout | null): string[] {
    const layouts: LibvirtLayout[] = layout ? [layout] : ["monolithic", "modular"];
    const units: string[] = [];
    // libvirt-guests is the same unit in both layouts: last, after the daemons it depends on.
    for (const l of layouts) for (const u of uses) if (u !== "guests") units.push(LIBVIRT_DAEMONS[l][u]);
    if (uses.includes("guests")) units.push(LIBVIRT_DAEMONS.monolithic.guests);
    return [...new Set(units)];
}

/** A unit's `Before=` line: `first` (e.g. sysinit.target), then libvirt's units for `uses`. */
export function beforeLibvirtLine(uses: readonly LibvirtUse[], first: readonly string[] = [], layout?: LibvirtLayout | null): string {
    return `Before=${[...first, ...libvirtUnitsBefore(uses, layout)].join(" ")}`;
}
