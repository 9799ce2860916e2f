/**
 * Recorded platform output: what the facts script's platform part (resources/host/platform.ts)
 * gets back on three kinds of host, written in the dump's record format (host/sysfs.ts).
 *
 * RECORDED, NOT LAB-PROVEN. Each command's output is in the format its tool documents:
 * `systemctl is-active U...` prints one state word per unit, in order (systemctl(1)); selinuxfs's
 * `enforce` holds 1 or 0; /etc/selinux/config has `SELINUX=` (selinux_config(5)); tuned keeps the
 * active profile's name in /etc/tuned/active_profile and `auto`/`manual` in /etc/tuned/profile_mode
 * (tuned/consts.py); `systemctl enable` makes links in a target's `.wants` folder. The Debian 12
 * host is the lab as it runs today (libvirtd, no tuned, no NetworkManager, update-grub); the Debian
 * 13 and RHEL-family hosts are what issue 16 describes, not yet seen by a test here.
 */
import * as fs from "fs";
import * as path from "path";
import { parsePlatform, Platform, SERVICE_UNITS } from "../../resources/host/platform";
import { parseDump } from "../../resources/host/sysfs";

export const F = (p: string, body: string) => `\x1eF\x1f${p}\n${body}\n`;
export const L = (p: string, target: string) => `\x1eL\x1f${p}\n${target}\n`;
export const C = (name: string, out: string, code = 0) => `\x1eC\x1f${name}\n${out}\n\x1eX\x1f${name}\n${code}\n`;

const repo = path.resolve(__dirname, "..", "..", "..");
/** A profile as tuned 2.25.1 ships it (test/unit/fixtures/tuned-2.25.1). */
export const tunedProfile = (name: string) => fs.readFileSync(path.join(repo, "test", "unit", "fixtures", "tuned-2.25.1", `${name}.conf`), "utf8");

/** `systemctl is-active` over SERVICE_UNITS, from unit -> state (unlisted units: `inactive`, as systemctl says for a unit it does not know). */
export function isActive(states: Record<string, string>, code?: number): string {
    const out = SERVICE_UNITS.map((u) => states[u] ?? "inactive").join("\n");
    // systemctl exits 0 when at least one unit is active, 3 otherwise.
    return C("services", out, code ?? (Object.values(states).includes("active") ? 0 : 3));
}

const W = "/etc/systemd/system";

/** The lab as it runs today: Debian 12, libvirt 9.0 monolithic, update-grub, no tuned, no NetworkManager, no SELinux. */
export const DEBIAN12_MONOLITHIC = [
    C("bootFlavor", "update-grub"),
    isActive({ "libvirtd.service": "active", "libvirtd.socket": "active" }),
    C("tools", ""),
    L(`${W}/multi-user.target.wants/libvirtd.service`, "/usr/lib/systemd/system/libvirtd.service"),
    L(`${W}/sockets.target.wants/libvirtd.socket`, "/usr/lib/systemd/system/libvirtd.socket"),
].join("");

/**
 * Debian 13 as issue 16's lab2: modular libvirt (libvirtd disabled, the sockets enabled, virtqemud
 * exited after its idle timeout), NetworkManager, tuned with virtual-host, SELinux enforcing with
 * Debian's reference policy (SELINUXTYPE=default).
 */
export const DEBIAN13_MODULAR = [
    C("bootFlavor", "update-grub"),
    isActive({
        "virtqemud.socket": "active",
        "virtnetworkd.service": "active",
        "virtnetworkd.socket": "active",
        "NetworkManager.service": "active",
        "tuned.service": "active",
    }),
    C("tools", "restorecon"),
    L(`${W}/sockets.target.wants/virtqemud.socket`, "/usr/lib/systemd/system/virtqemud.socket"),
    L(`${W}/sockets.target.wants/virtqemud-ro.socket`, "/usr/lib/systemd/system/virtqemud-ro.socket"),
    L(`${W}/multi-user.target.wants/virtqemud.service`, "/usr/lib/systemd/system/virtqemud.service"),
    F("/etc/tuned/active_profile", "virtual-host"),
    F("/etc/tuned/profile_mode", "manual"),
    F("/usr/lib/tuned/profiles/virtual-host/tuned.conf", tunedProfile("virtual-host")),
    F("/usr/lib/tuned/profiles/throughput-performance/tuned.conf", tunedProfile("throughput-performance")),
    F("/sys/fs/selinux/enforce", "1"),
    F("/etc/selinux/config", "# This file controls the state of SELinux on the system.\nSELINUX=enforcing\nSELINUXTYPE=default"),
].join("");

/**
 * A RHEL 9-family host: grubby on BLS entries, modular libvirt as its presets enable it (libvirtd
 * masked), NetworkManager, tuned's virtual-host profile chosen by tuned itself (`auto`), SELinux
 * enforcing with the targeted policy, tuned's pre-2.23 profile folder.
 */
export const RHEL9_MODULAR = [
    C("bootFlavor", "grubby"),
    isActive({ "virtqemud.socket": "active", "virtnetworkd.socket": "active", "NetworkManager.service": "active", "tuned.service": "active" }),
    C("tools", "restorecon"),
    L(`${W}/libvirtd.service`, "/dev/null"),
    L(`${W}/sockets.target.wants/virtqemud.socket`, "/usr/lib/systemd/system/virtqemud.socket"),
    L(`${W}/multi-user.target.wants/virtqemud.service`, "/usr/lib/systemd/system/virtqemud.service"),
    F("/etc/tuned/active_profile", "virtual-host"),
    F("/etc/tuned/profile_mode", "auto"),
    F("/usr/lib/tuned/virtual-host/tuned.conf", tunedProfile("virtual-host")),
    F("/usr/lib/tuned/throughput-performance/tuned.conf", tunedProfile("throughput-performance")),
    F("/sys/fs/selinux/enforce", "1"),
    F("/etc/selinux/config", "SELINUX=enforcing\nSELINUXTYPE=targeted"),
].join("");

export const platformOf = (recorded: string): Platform => parsePlatform(parseDump(recorded));

/** The lab's platform today, for tests that build HostFactsData by hand. */
export const labPlatform = (): Platform => platformOf(DEBIAN12_MONOLITHIC);
