/**
 * tuned profiles, read as tuned reads them, to tell which of kvmtune's knobs the host's active
 * profile also sets. tuned re-applies its profile when it restarts and, for per-device plugins such
 * as [disk], on udev events: a knob both set has a silent second writer unless someone decides.
 * This module only says who else writes; deciding is the providers' (see the report of issue 16).
 *
 * Pure functions from profile text: no host access, so recorded profiles test them.
 *
 * How tuned reads a profile (github.com/redhat-performance/tuned, commit 2bfa442):
 * - tuned/profiles/loader.py: `[main] include=` names parent profiles, split on `,` or `;`, loaded
 *   first; the active profile file (/etc/tuned/active_profile) may name several profiles, split on
 *   whitespace, merged left to right.
 * - tuned/profiles/merger.py: a later profile's section updates the earlier one's options by name;
 *   `replace=true` drops the earlier options; `drop=` removes named options.
 * - tuned/profiles/unit.py: a section's plugin is its `type=` option, else its name; `enabled=false`
 *   turns it off; `devices=` limits a per-device plugin (default `*`); `uname_regex=` and
 *   `cpuinfo_regex=` make it apply only on matching machines.
 * - tuned/consts.py: profiles live in /usr/lib/tuned/profiles and /etc/tuned/profiles (tuned >= 2.23,
 *   commit 6d3aa94), before that in /usr/lib/tuned and /etc/tuned; /etc wins over /usr/lib.
 *
 * What the shipped profiles set that kvmtune also sets (same commit):
 * - profiles/virtual-host/tuned.conf: `include=throughput-performance`, [vm] dirty_background_bytes,
 *   [cpu] force_latency. None of them is kvmtune's.
 * - profiles/throughput-performance/tuned.conf: [disk] `readahead=>4096` (BlockElevator's
 *   readAheadKb: raised to at least 4096 KiB on every disk), [vm] dirty_*, [sysctl] vm.swappiness,
 *   [cpu] governor. So virtual-host touches BlockElevator.readAheadKb, and nothing else of kvmtune's.
 *   (An elevator was set in 2012 profiles, dropped in commit ef339e1 in 2013.)
 * - tuned/plugins/plugin_disk.py: options elevator, readahead, readahead_multiply, apm, spindown,
 *   scheduler_quantum; static tuning re-applied to each disk udev announces ("change" included).
 * - tuned/plugins/plugin_bootloader.py: every option starting with `cmdline` adds kernel arguments.
 * - profiles/cpu-partitioning, realtime-virtual-host: [scheduler] isolated_cores moves threads off
 *   the isolated CPUs (all but ps_blacklist, which names `qemu-kvm`, not Debian's
 *   `qemu-system-x86_64`), and [bootloader] cmdline_* adds nohz_full/rcu_nocbs.
 */

/** kvmtune's knobs another writer can hold, named `Resource.input`. */
export type TunedKnob =
    | "BlockElevator.scheduler"
    | "BlockElevator.readAheadKb"
    | "BlockElevator.nrRequests"
    | "BlockElevator.tunables"
    | "HugepagePool.pages"
    | "KernelCmdline.args"
    | "NumaPinnedGuest.pinning"
    | "SriovNic.numVfs"
    | "VhostNetwork.module";

/** One option of the merged profile that sets one of kvmtune's knobs. */
export interface TunedSetting {
    knob: TunedKnob;
    /** The profile whose file set the option last (after includes and merging). */
    profile: string;
    /** The section as written (`disk`, `sysctl.thunderx`) and the option and value as written. */
    section: string;
    option: string;
    value: string;
    /** The per-device plugin's `devices=` (tuned's default `*`: every device). */
    devices: string;
    /** Applies only on machines matching `uname_regex`/`cpuinfo_regex` (e.g. aarch64 ThunderX). */
    conditional: boolean;
}

interface Section {
    name: string;
    options: Map<string, string>;
}

/** A profile file: sections of `key = value` lines, `#` comments (tuned's ConfigParser: `=` only, keys kept as written). */
export function parseTunedProfile(text: string): Section[] {
    const sections: Section[] = [];
    let current: Section | null = null;
    for (const raw of text.split("\n")) {
        const line = raw.trim();
        if (line === "" || line.startsWith("#") || line.startsWith(";")) continue;
        const head = /^\[([^\]]+)\]$/.exec(line);
        if (head) {
            current = sections.find((s) => s.name === head[1]) ?? null;
            if (!current) sections.push((current = { name: head[1], options: new Map() }));
            continue;
        }
        const eq = line.indexOf("=");
        // tuned's ConfigParser takes `#` after whitespace as the start of an inline comment.
        if (current && eq > 0) current.options.set(line.slice(0, eq).trim(), line.slice(eq + 1).replace(/\s+#.*$/, "").trim());
    }
    return sections;
}

/** Options of a section that say how tuned applies it, not what it sets (tuned/profiles/unit.py). */
const UNIT_OPTIONS = new Set(["priority", "type", "enabled", "replace", "prepend", "drop", "devices", "devices_udev_regex", "cpuinfo_regex", "uname_regex", "script_pre", "script_post"]);
const truthy = (v: string | undefined) => v !== undefined && ["true", "True", "1"].includes(v);

/** What a merged section's option means for kvmtune, or null when it is none of kvmtune's knobs. */
export function knobOf(plugin: string, option: string): TunedKnob | null {
    switch (plugin) {
        case "disk":
            if (option === "elevator") return "BlockElevator.scheduler";
            if (option === "readahead" || option === "readahead_multiply") return "BlockElevator.readAheadKb";
            if (option === "scheduler_quantum") return "BlockElevator.tunables";
            return null;
        case "sysctl":
            return /^vm\.nr_(hugepages|hugepages_mempolicy|overcommit_hugepages)$/.test(option) ? "HugepagePool.pages" : null;
        case "bootloader":
            return option.startsWith("cmdline") ? "KernelCmdline.args" : null;
        case "scheduler":
            return option === "isolated_cores" ? "NumaPinnedGuest.pinning" : null;
        case "modules":
            return option === "vhost_net" ? "VhostNetwork.module" : null;
        case "sysfs":
            // [sysfs] options are paths (globs allowed): the ones that reach kvmtune's files.
            if (/^\/sys\/block\/[^/]+\/queue\/scheduler$/.test(option)) return "BlockElevator.scheduler";
            if (/^\/sys\/block\/[^/]+\/queue\/read_ahead_kb$/.test(option)) return "BlockElevator.readAheadKb";
            if (/^\/sys\/block\/[^/]+\/queue\/nr_requests$/.test(option)) return "BlockElevator.nrRequests";
            if (/^\/sys\/block\/[^/]+\/queue\/iosched\//.test(option)) return "BlockElevator.tunables";
            if (/^\/sys\/(kernel\/mm|devices\/system\/node\/[^/]+)\/hugepages\//.test(option)) return "HugepagePool.pages";
            if (/\/sriov_numvfs$/.test(option)) return "SriovNic.numVfs";
            return null;
        default:
            return null;
    }
}

/** A profile name as tuned-adm takes it; anything else is not looked up. */
const PROFILE_NAME = /^[A-Za-z0-9_.+-]+$/;

interface MergedSection {
    options: Map<string, { value: string; profile: string }>;
    unit: Map<string, string>;
}

/** A profile's tuned.conf as found on the host: its path and text. */
export interface ProfileFile {
    path: string;
    text: string;
}

/**
 * The settings of kvmtune's knobs in the merged profile `active` (the text of
 * /etc/tuned/active_profile: one or more names), with `profileFiles(name)` giving the installed
 * tuned.conf files of that name, the winning folder first (tunedProfilePaths' order).
 *
 * Includes are followed as tuned/profiles/loader.py and locator.py do: each file is loaded once, and
 * a name whose winning file was loaded already resolves to the next folder's, which is how a profile
 * in /etc/tuned overrides a shipped one of the same name by including it; `-name` is an include
 * that may be missing. An include computed by a tuned function (`${f:...}`) cannot be followed here:
 * it is no profile name, and is skipped.
 */
export function tunedSettings(active: string, profileFiles: (name: string) => readonly ProfileFile[]): TunedSetting[] {
    const merged = new Map<string, MergedSection>();
    const loaded = new Set<string>();
    const load = (names: readonly string[]) => {
        for (const raw of names) {
            const name = raw.replace(/^-/, "");
            if (!PROFILE_NAME.test(name)) continue;
            const file = profileFiles(name).find((f) => !loaded.has(f.path));
            if (!file) continue;
            loaded.add(file.path);
            const sections = parseTunedProfile(file.text);
            const include = sections.find((s) => s.name === "main")?.options.get("include");
            if (include !== undefined) load(include.split(/\s*[,;]\s*/).filter(Boolean));
            for (const s of sections) {
                if (s.name === "main" || s.name === "variables") continue;
                const replace = truthy(s.options.get("replace"));
                let m = merged.get(s.name);
                if (!m || replace) merged.set(s.name, (m = { options: new Map(), unit: new Map() }));
                for (const dropped of (s.options.get("drop") ?? "").split(/\s*[,;]\s*/).filter(Boolean)) m.options.delete(dropped);
                for (const [k, v] of s.options) {
                    if (UNIT_OPTIONS.has(k)) m.unit.set(k, v);
                    else m.options.set(k, { value: v, profile: name });
                }
            }
        }
    };
    load(active.trim().split(/\s+/).filter(Boolean));

    const out: TunedSetting[] = [];
    for (const [section, m] of merged) {
        const enabled = m.unit.get("enabled");
        if (enabled !== undefined && !truthy(enabled)) continue;
        const plugin = m.unit.get("type") ?? section;
        for (const [option, { value, profile }] of m.options) {
            const knob = knobOf(plugin, option);
            if (!knob) continue;
            out.push({
                knob,
                profile,
                section,
                option,
                value,
                devices: m.unit.get("devices") ?? "*",
                conditional: m.unit.has("uname_regex") || m.unit.has("cpuinfo_regex"),
            });
        }
    }
    return out;
}

/** Where tuned looks for a profile's file, the winning place first (tuned/consts.py). */
export function tunedProfilePaths(name: string): string[] {
    return [`/etc/tuned/profiles/${name}/tuned.conf`, `/etc/tuned/${name}/tuned.conf`, `/usr/lib/tuned/profiles/${name}/tuned.conf`, `/usr/lib/tuned/${name}/tuned.conf`];
}

/** Glob patterns that read every installed profile (tuned's profiles are small: 30 KB in all). */
export const TUNED_PROFILE_FILES = ["/etc/tuned/profiles/*/tuned.conf", "/etc/tuned/*/tuned.conf", "/usr/lib/tuned/profiles/*/tuned.conf", "/usr/lib/tuned/*/tuned.conf"];
