/**
 * The platform: how a host is run, as opposed to what it has (host/facts.ts). Detected once, in the
 * facts round trip (its files, links and commands join FACTS_SCRIPT), never remembered:
 *
 * - the bootloader tool: bootloader.ts' own detection (BOOT_COMMANDS.bootFlavor);
 * - libvirt's daemon layout: the monolithic `libvirtd`, or the modular daemons (`virtqemud`,
 *   `virtnetworkd`, ...), socket-activated and exiting when idle, so "running" means the daemon or
 *   its socket is active;
 * - who owns the network: NetworkManager running or not;
 * - tuned: running or not, its active profile, and which of kvmtune's knobs that profile sets
 *   (host/tuned.ts, from the profile files installed on the host);
 * - SELinux: enforcing, permissive or off.
 *
 * The shell steps that differ per platform are generated in one place too (platformSteps.ts,
 * re-exported here). Debian 12 (monolithic, no tuned, no NetworkManager, update-grub) is the
 * lab-proven platform; Debian 13 with modular libvirt, NetworkManager, tuned and SELinux is the
 * second lab flavor (issue 16); the RHEL family (grubby, modular, SELinux enforcing) is unit-tested
 * on recorded command output only.
 */
import { createHash } from "crypto";
import { BOOT_COMMANDS, BootFlavor, bootFlavorOf } from "./bootloader";
import type { PersistedFile } from "./drift";
import { managedHeader } from "./files";
import { LibvirtLayout, libvirtUnitsBefore } from "./platformSteps";
import type { Dump } from "./sysfs";
import { TUNED_PROFILE_FILES, tunedProfilePaths, tunedSettings, TunedSetting } from "./tuned";

export * from "./platformSteps";
export type { TunedKnob, TunedSetting } from "./tuned";

export type SelinuxMode = "enforcing" | "permissive" | "disabled";

export interface Platform {
    /** The tool that persists the kernel command line (bootloader.ts), or null when neither is there. */
    bootloader: BootFlavor | null;
    libvirt: {
        /**
         * `monolithic` (libvirtd) or `modular` (virtqemud and friends), from the units running (a
         * daemon or its socket), else from the units enabled; null when neither is. When both run,
         * modular: libvirt's clients connect to a per-driver daemon's socket first when it exists.
         */
        layout: LibvirtLayout | null;
        /** The units a boot unit preparing guests is ordered `Before=` on this host (platformSteps.ts). */
        beforeUnits: string[];
    };
    network: {
        /** NetworkManager.service is active: it manages NICs unless told they are unmanaged. */
        networkManager: boolean;
    };
    tuned: {
        /** tuned.service is active: it re-applies its profile on restart and on udev events. */
        active: boolean;
        /** The active profile as /etc/tuned/active_profile names it (several names possible), or null. */
        profile: string | null;
        /** `auto` (tuned picked it) or `manual` (an administrator did), from /etc/tuned/profile_mode. */
        mode: "auto" | "manual" | null;
        /** What the profile sets of kvmtune's knobs (read from the profiles installed on the host). */
        settings: TunedSetting[];
    };
    selinux: {
        /** Now: selinuxfs's `enforce` (1 enforcing, 0 permissive); no selinuxfs: disabled. */
        mode: SelinuxMode;
        /** What /etc/selinux/config asks for at the next boot, or null without the file. */
        configured: SelinuxMode | null;
        /** restorecon is installed: files kvmtune writes get their default labels (platformSteps.ts). */
        restorecon: boolean;
    };
}

/** Units whose state the facts read asks systemd for, in one `systemctl is-active` (one line each, in this order). */
export const SERVICE_UNITS = [
    "libvirtd.service",
    "libvirtd.socket",
    "virtqemud.service",
    "virtqemud.socket",
    "virtnetworkd.service",
    "virtnetworkd.socket",
    "NetworkManager.service",
    "tuned.service",
] as const;
type ServiceUnit = (typeof SERVICE_UNITS)[number];

/** Commands the facts script runs for the platform: few, each one process at most. */
export const PLATFORM_COMMANDS = {
    bootFlavor: BOOT_COMMANDS.bootFlavor,
    // `is-active` prints one line per unit, `inactive` for a unit that does not exist.
    services: `systemctl is-active ${SERVICE_UNITS.join(" ")}`,
    // A shell builtin: no process for the test itself.
    tools: "command -v restorecon >/dev/null 2>&1 && echo restorecon; true",
};

/** Files that tell tuned's active profile and what it sets (tuned's profiles: 30 KB in all where installed, nothing elsewhere). */
export const TUNED_FILES = ["/etc/tuned/active_profile", "/etc/tuned/profile_mode", ...TUNED_PROFILE_FILES];

/** Files the facts script reads for the platform. */
export const PLATFORM_FILES = [...TUNED_FILES, "/sys/fs/selinux/enforce", "/etc/selinux/config"];

/**
 * What a provider's own read adds to its dump to learn tuned's state (tunedOf), without the whole
 * facts script: tuned's files and the one `systemctl is-active` the facts read runs too.
 */
export const TUNED_READ = { files: TUNED_FILES, commands: { services: PLATFORM_COMMANDS.services } };

/**
 * Enablement links (`systemctl enable` makes them in a target's `.wants`) and masks (a link to
 * /dev/null in /etc/systemd/system) of libvirt's two layouts: read as links, no process needed.
 */
export const PLATFORM_LINKS = [
    "/etc/systemd/system/*.wants/libvirtd.*",
    "/etc/systemd/system/*.wants/virtqemud.*",
    "/etc/systemd/system/libvirtd.*",
    "/etc/systemd/system/virtqemud.*",
];

/** Each unit's `systemctl is-active` word; empty when systemctl gave no line per unit (no systemd). */
export function serviceStates(dump: Dump): Map<ServiceUnit, string> {
    const lines = (dump.commands.get("services")?.stdout ?? "").split("\n").map((l) => l.trim());
    const out = new Map<ServiceUnit, string>();
    if (lines.length !== SERVICE_UNITS.length) return out;
    SERVICE_UNITS.forEach((u, i) => out.set(u, lines[i]));
    return out;
}

/** libvirt answers on this host: a daemon of either layout, or its socket, is active. */
export function libvirtRunning(states: ReadonlyMap<string, string>): boolean {
    return [...states].some(([unit, state]) => /^(libvirtd|virtqemud|virtnetworkd)\./.test(unit) && state === "active");
}

function layoutOf(states: ReadonlyMap<string, string>, links: ReadonlyMap<string, string>): LibvirtLayout | null {
    const running = (daemon: string) => states.get(`${daemon}.service`) === "active" || states.get(`${daemon}.socket`) === "active";
    const masked = (daemon: string) => [".service", ".socket"].some((s) => links.get(`/etc/systemd/system/${daemon}${s}`) === "/dev/null");
    const enabled = (daemon: string) =>
        !masked(daemon) && [...links.keys()].some((l) => new RegExp(`^/etc/systemd/system/[^/]+\\.wants/${daemon}\\.(service|socket)$`).test(l));
    for (const on of [running, enabled]) {
        if (on("virtqemud")) return "modular";
        if (on("libvirtd")) return "monolithic";
    }
    return null;
}

const selinuxWord = (w: string | undefined): SelinuxMode | null => (w === "enforcing" || w === "permissive" || w === "disabled" ? w : null);

/** The platform from a dump that read PLATFORM_FILES and PLATFORM_LINKS and ran PLATFORM_COMMANDS. */
export function parsePlatform(dump: Dump): Platform {
    const f = dump.files;
    const states = serviceStates(dump);
    const tools = new Set((dump.commands.get("tools")?.stdout ?? "").split("\n").map((l) => l.trim()));
    const layout = layoutOf(states, dump.links);

    const enforce = f.get("/sys/fs/selinux/enforce")?.trim();
    const configured = /^SELINUX=(\S+)/m.exec(f.get("/etc/selinux/config") ?? "");
    return {
        bootloader: bootFlavorOf(dump),
        libvirt: { layout, beforeUnits: libvirtUnitsBefore(["qemu", "guests"], layout) },
        network: { networkManager: networkManagerActive(dump) },
        tuned: tunedOf(dump),
        selinux: {
            mode: enforce === "1" ? "enforcing" : enforce === "0" ? "permissive" : "disabled",
            configured: configured ? selinuxWord(configured[1]) : null,
            restorecon: tools.has("restorecon"),
        },
    };
}

/** tuned's state from a dump that read TUNED_FILES and ran the `services` command (TUNED_READ, or the facts script). */
export function tunedOf(dump: Dump): Platform["tuned"] {
    const f = dump.files;
    const profile = f.get("/etc/tuned/active_profile")?.trim() || null;
    const modeWord = f.get("/etc/tuned/profile_mode")?.trim();
    const profileFiles = (name: string) => tunedProfilePaths(name).flatMap((path) => (f.has(path) ? [{ path, text: f.get(path) as string }] : []));
    return {
        active: serviceStates(dump).get("tuned.service") === "active",
        profile,
        mode: modeWord === "auto" || modeWord === "manual" ? modeWord : null,
        settings: profile ? tunedSettings(profile, profileFiles) : [],
    };
}

/** tuned's settings of one knob, while tuned runs (a stopped tuned re-applies nothing). */
export function tunedSettingsOf(platform: Pick<Platform, "tuned">, knob: TunedSetting["knob"]): TunedSetting[] {
    return platform.tuned.active ? platform.tuned.settings.filter((s) => s.knob === knob) : [];
}

/** tuned's `devices=` names this device: comma-separated globs, `!` excluding (tuned/hardware/device_matcher.py). */
export function tunedDevicesMatch(devices: string, device: string): boolean {
    const glob = (g: string) => new RegExp("^" + g.replace(/[.+^${}()|[\]\\]/g, "\\$&").replace(/\*/g, ".*").replace(/\?/g, ".") + "$");
    const rules = devices.split(/[\s,]+/).filter(Boolean);
    const positive = rules.filter((r) => !r.startsWith("!"));
    const negative = rules.filter((r) => r.startsWith("!")).map((r) => r.slice(1));
    return (positive.length === 0 || positive.some((r) => glob(r).test(device))) && !negative.some((r) => glob(r).test(device));
}

/** One of a resource's fields that tuned's active profile also sets. */
export interface TunedOverlap {
    /** The resource's input as the user writes it (`readAheadKb`). */
    field: string;
    setting: TunedSetting;
}

/**
 * The refusal when tuned's active profile sets a knob a resource is asked to set: both would
 * write it, tuned again on its restart and on udev events, and which value holds would depend on
 * who ran last. Names the profile, tuned's option and the field, and how to choose the winner.
 * Null when nothing overlaps.
 */
export function tunedOverlapMessage(what: string, profile: string | null, overlaps: readonly TunedOverlap[]): string | null {
    if (!overlaps.length) return null;
    const each = overlaps.map(({ field, setting: s }) => {
        const where = s.devices === "*" ? "" : ` for devices ${s.devices}`;
        const cond = s.conditional ? " (on machines matching its uname/cpuinfo regex)" : "";
        return `${field}: tuned's profile ${s.profile} sets [${s.section}] ${s.option}=${s.value}${where}${cond}`;
    });
    const fields = [...new Set(overlaps.map((o) => o.field))].join(", ");
    return (
        `${what}: tuned is active with profile ${profile ?? "?"}, which also sets what kvmtune is asked to set: ${each.join("; ")}. ` +
        `tuned writes it again when it restarts and on udev events, so one of the two must win, and nothing was changed. ` +
        `To let tuned win, leave ${fields} out (a field the resource requires: leave the resource out). To let kvmtune win, make tuned stop setting it: a custom profile ` +
        `(/etc/tuned/profiles/NAME/tuned.conf with [main] include=${profile ?? "PROFILE"} and the option removed, e.g. drop=OPTION in its section), ` +
        `activated with tuned-adm profile NAME; kvmtune's write then holds.`
    );
}

/** What a provider's own read adds to its dump to learn whether NetworkManager runs (networkManagerActive). */
export const NETWORK_MANAGER_READ = { commands: { services: PLATFORM_COMMANDS.services } };

/** NetworkManager.service is active, from a dump that ran the `services` command (NETWORK_MANAGER_READ, or the facts script). */
export function networkManagerActive(dump: Dump): boolean {
    return serviceStates(dump).get("NetworkManager.service") === "active";
}

/** NetworkManager's drop-in folder: later files override earlier ones, all read after NetworkManager.conf. */
export const NETWORK_MANAGER_CONF_D = "/etc/NetworkManager/conf.d";

/** Where the NetworkManager drop-in named `name` lives (networkManagerUnmanagedFile writes it there). */
export const networkManagerDropInPath = (name: string) => `${NETWORK_MANAGER_CONF_D}/90-kvmtune-${name}.conf`;

/**
 * The drop-in name part for the interface `iface` a resource of `kind` (sriov, vhost) keeps
 * unmanaged: the name in the characters a drop-in name takes, lower case. Where that changed the
 * name (`Br_0`), a short hash of the real one follows, so two interfaces never share a file.
 */
export function networkManagerDropInName(kind: string, iface: string): string {
    const plain = iface.toLowerCase().replace(/[^a-z0-9-]/g, "-");
    const suffix = plain === iface ? "" : `-${createHash("sha256").update(iface).digest("hex").slice(0, 8)}`;
    return `${kind}-${plain}${suffix}`;
}

/** Interface names as the schemas validate them (patterns.ts): no `;` or `,`, which would split the list. */
const IFNAME = /^[A-Za-z0-9_.:@-]{1,15}$/;

/**
 * A NetworkManager drop-in kvmtune owns that marks `interfaces` unmanaged, so a PF and its VFs (or a
 * bridge) kvmtune set up stay as kvmtune set them when NetworkManager starts or reloads. Written
 * and restored like every persisted file (host/persist.ts writes it, host/drift.ts compares it);
 * the `networkManager` reload makes a running NetworkManager read it.
 *
 * `+=` appends to the list (NetworkManager.conf(5): "append a value to a previously-set
 * list-value"), where `=` would replace an administrator's own unmanaged-devices set in an earlier
 * file. No interfaces: the file must be absent.
 */
export function networkManagerUnmanagedFile(name: string, owner: string, interfaces: readonly string[]): PersistedFile {
    if (!/^[a-z0-9-]{1,64}$/.test(name)) throw new Error(`bad NetworkManager drop-in name: ${JSON.stringify(name)}`);
    const bad = interfaces.filter((i) => !IFNAME.test(i));
    if (bad.length) throw new Error(`not an interface name: ${bad.map((b) => JSON.stringify(b)).join(", ")}`);
    const list = [...new Set(interfaces)].map((i) => `interface-name:${i}`).join(";");
    return {
        path: networkManagerDropInPath(name),
        want: interfaces.length ? managedHeader(owner) + `[keyfile]\nunmanaged-devices+=${list}\n` : null,
        reload: "networkManager",
    };
}
