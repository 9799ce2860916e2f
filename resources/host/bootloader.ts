/**
 * The host's bootloader, in one place: which tool persists the kernel command line, what the boot
 * configuration holds, and how kvmtune adds and removes its own arguments there. Providers ask this
 * module; none calls `update-grub` or `grubby` its own way.
 *
 * Two flavors:
 * - `update-grub` (Debian, Ubuntu): kvmtune owns one fragment, CMDLINE_FRAGMENT, that appends its
 *   arguments to GRUB_CMDLINE_LINUX; `update-grub` then regenerates /boot/grub/grub.cfg. The
 *   administrator's /etc/default/grub is never edited, so removing the fragment and regenerating
 *   gives back grub.cfg as it was, byte for byte. What the boot configuration holds is read from
 *   the generated grub.cfg (the default entry's `linux` line), not from the sources: a later
 *   fragment that sets GRUB_CMDLINE_LINUX without `$GRUB_CMDLINE_LINUX` would drop ours, and only
 *   the generated file shows it. The mechanism was tried by hand on a lab host (GRUB_CMDLINE_LINUX,
 *   update-grub, a reboot changed /proc/cmdline: the lab notes, "Booting through the host's own
 *   GRUB"); this module has unit tests only so far, against an update-grub stand-in.
 * - `grubby` on BLS entries (RHEL, CentOS Stream, Fedora, Oracle Linux, Rocky, Alma): arguments are
 *   added with `grubby --update-kernel=ALL --args=...` and removed with `--remove-args=...`; what
 *   the default entry holds is `grubby --info=DEFAULT`'s `args="..."` line. NOT lab-proven: no
 *   such host can be built here; the parsing is tested on output in the format grubby(8) documents.
 *
 * The flavor is detected in the caller's read round trip (BOOT_COMMANDS), never remembered.
 */
import type { PersistedFile } from "./drift";
import { atomicWriteScript, managedHeader, removeFileScript } from "./files";
import { shellQuote } from "./quote";
import type { Dump } from "./sysfs";

export type BootFlavor = "update-grub" | "grubby";

/** The fragment kvmtune owns on update-grub hosts. Sorted by name among grub.d's *.cfg files. */
export const CMDLINE_FRAGMENT = "/etc/default/grub.d/kvmtune-cmdline.cfg";
/** What update-grub generates (grub-mkconfig -o /boot/grub/grub.cfg). */
export const GRUB_CFG = "/boot/grub/grub.cfg";

/** Files a read adds to its dump for the boot configuration (the sources too, for messages). */
export const BOOT_FILES = ["/etc/default/grub", "/etc/default/grub.d/*.cfg", GRUB_CFG];

/**
 * Commands a read adds to its dump. update-grub first: a Debian host with grubby installed still
 * boots through update-grub's grub.cfg; grubby alone counts only with BLS entries, where its
 * `--update-kernel=ALL` is how the RHEL family edits the command line.
 */
export const BOOT_COMMANDS = {
    bootFlavor:
        "if command -v update-grub >/dev/null 2>&1; then echo update-grub; " +
        "elif command -v grubby >/dev/null 2>&1 && [ -d /boot/loader/entries ]; then echo grubby; else echo none; fi",
    grubbyInfo: "command -v grubby >/dev/null 2>&1 && [ -d /boot/loader/entries ] && grubby --info=DEFAULT",
};

export interface BootConfig {
    /** The tool found on the host, or null when neither is there. */
    flavor: BootFlavor | null;
    /**
     * The default entry's arguments as the boot configuration holds them (after the kernel image:
     * root=, ro and the rest), or null when they could not be read (no grub.cfg, grubby failed).
     */
    cmdline: string | null;
    /** Where `cmdline` was read, for messages. */
    source: string;
}

/**
 * The kernel's own word splitting (lib/cmdline.c next_arg): spaces separate words; double quotes
 * let a value hold spaces (`dyndbg="file x +p"`) and stay part of the word.
 */
export function splitArgs(cmdline: string): string[] {
    return cmdline.match(/(?:[^\s"]+|"[^"]*"?)+/g) ?? [];
}

/** An argument's name: the part before `=` (`isolcpus=2-3` -> `isolcpus`, `quiet` -> `quiet`). */
export function argKey(arg: string): string {
    const eq = arg.indexOf("=");
    return eq < 0 ? arg : arg.slice(0, eq);
}

/**
 * The default entry's `linux` line in a grub.cfg grub-mkconfig generated: the first `menuentry` at
 * the top level (GRUB_DEFAULT=0, Debian's default; a `submenu` holds the older kernels), its first
 * `linux` command, the words after the image path. Returns null when there is none.
 *
 * Why not a saved or named default: kvmtune's arguments go on every entry alike (GRUB_CMDLINE_LINUX),
 * so the first entry says whether they are there; a host set to boot another entry is one case
 * this read does not tell apart.
 */
export function parseGrubCfgDefault(text: string): string | null {
    let depth = 0;
    let inEntry = false;
    for (const line of text.split("\n")) {
        const t = line.trim();
        if (!inEntry && depth === 0 && /^menuentry\s/.test(t)) {
            inEntry = true;
        } else if (inEntry) {
            const m = /^linux(?:efi|16)?\s+(\S+)(?:\s(.*))?$/.exec(t);
            if (m) return (m[2] ?? "").replace(/\s+$/, "");
            if (t === "}") return null; // an entry without a kernel
            continue;
        }
        // Track braces of submenus so an entry inside one is not taken for the default.
        if (/\{\s*$/.test(t)) depth++;
        if (t === "}") depth = Math.max(0, depth - 1);
    }
    return null;
}

/**
 * grubby's `--info` output, as grubby(8) documents it: `key=value` lines, values in double quotes
 * (`index=0`, `kernel="/boot/vmlinuz-..."`, `args="ro crashkernel=..."`, `root="UUID=..."`,
 * `initrd="..."`, `title="..."`, `id="..."`). Returns the first entry's kernel and args.
 */
export function parseGrubbyInfo(text: string): { kernel: string; args: string } | null {
    const fields = new Map<string, string>();
    for (const line of text.split("\n")) {
        const m = /^([a-z_]+)=(.*)$/.exec(line.trim());
        if (!m) continue;
        if (m[1] === "index" && fields.has("index")) break; // the next entry starts
        fields.set(m[1], m[2].replace(/^"(.*)"$/, "$1"));
    }
    const args = fields.get("args");
    return args === undefined ? null : { kernel: fields.get("kernel") ?? "", args };
}

/** The bootloader tool from a dump that ran BOOT_COMMANDS.bootFlavor, or null when neither is there. */
export function bootFlavorOf(dump: Dump): BootFlavor | null {
    const word = dump.commands.get("bootFlavor")?.stdout.trim();
    return word === "update-grub" || word === "grubby" ? word : null;
}

/** The boot configuration from a dump that read BOOT_FILES and ran BOOT_COMMANDS. */
export function parseBootConfig(dump: Dump): BootConfig {
    const flavor = bootFlavorOf(dump);
    if (flavor === "grubby") {
        const info = dump.commands.get("grubbyInfo");
        const parsed = info && info.code === 0 ? parseGrubbyInfo(info.stdout) : null;
        return { flavor, cmdline: parsed?.args ?? null, source: "grubby --info=DEFAULT" };
    }
    const cfg = dump.files.get(GRUB_CFG);
    return { flavor, cmdline: cfg === undefined ? null : parseGrubCfgDefault(cfg), source: GRUB_CFG };
}

/**
 * update-grub, quiet when it works; its own output on stderr (for the error) when it fails, after
 * `cleanup` (shell words ending in `;`). host/persist.ts runs it too after a GRUB fragment
 * changed: one way to run it for every caller.
 */
export function updateGrubScript(cleanup = ""): string {
    return `out=$(update-grub 2>&1) || { printf '%s\\n' "$out" >&2; ${cleanup}exit 1; }`;
}
const UPDATE_GRUB = updateGrubScript();

/** The fragment's text: kvmtune's arguments appended to whatever GRUB_CMDLINE_LINUX holds. */
export function fragmentText(owner: string, args: readonly string[]): string {
    // The arguments are validated plain words (no quote, `$`, backslash or backquote): inert here.
    return managedHeader(owner) + `GRUB_CMDLINE_LINUX="$GRUB_CMDLINE_LINUX ${args.join(" ")}"\n`;
}

/** What kvmtune keeps on the host for its arguments, for refresh to compare (host/drift.ts). */
export function persistedBootFiles(flavor: BootFlavor, owner: string, args: readonly string[]): PersistedFile[] {
    // grubby edits the entries themselves: there is no file of kvmtune's to compare.
    if (flavor === "grubby") return [];
    return [{ path: CMDLINE_FRAGMENT, want: args.length ? fragmentText(owner, args) : null }];
}

/**
 * The script that makes the boot configuration hold `args` as kvmtune's arguments, where
 * `previous` were kvmtune's before (the last applied, from state; empty at create) and `keep` are
 * the arguments the boot configuration had before kvmtune (its recorded original): grubby never
 * removes one of those, even when kvmtune asked for the same word, so delete gives back exactly
 * what was there. A failed update-grub or grubby fails the script with its stderr.
 */
export function setArgsScript(flavor: BootFlavor, owner: string, args: readonly string[], previous: readonly string[], keep: readonly string[] = []): string {
    if (flavor === "update-grub") {
        const write = args.length ? atomicWriteScript(CMDLINE_FRAGMENT, fragmentText(owner, args)) : removeFileScript(CMDLINE_FRAGMENT);
        return ["set -e", write, UPDATE_GRUB].join("\n");
    }
    // grubby: drop what kvmtune no longer owns, then add (or re-value) what it owns now. A word the
    // entry already had is not given again: grubby's BLS script replaces an argument by taking out
    // every one of its name and appending the new one, which would move the administrator's copy.
    const gone = previous.filter((a) => !args.includes(a) && !keep.includes(a));
    const add = args.filter((a) => !keep.includes(a));
    const steps = ["set -e"];
    if (gone.length) steps.push(`grubby --update-kernel=ALL --remove-args=${shellQuote(gone.join(" "))}`);
    if (add.length) steps.push(`grubby --update-kernel=ALL --args=${shellQuote(add.join(" "))}`);
    return steps.join("\n");
}

/**
 * The script that takes kvmtune's arguments (`args`, as last applied) off the boot configuration,
 * leaving `keep` (what it had before kvmtune) in place.
 */
export function removeArgsScript(flavor: BootFlavor, args: readonly string[], keep: readonly string[] = []): string {
    if (flavor === "update-grub") {
        // The fragment is all kvmtune added: the administrator's own copy of an argument is in their file.
        return [`if [ -e ${CMDLINE_FRAGMENT} ]; then`, `  ${removeFileScript(CMDLINE_FRAGMENT)} || exit 1`, `  ${UPDATE_GRUB}`, "fi"].join("\n");
    }
    const gone = args.filter((a) => !keep.includes(a));
    return gone.length ? `grubby --update-kernel=ALL --remove-args=${shellQuote(gone.join(" "))}` : "true";
}

/**
 * The boot command line with kvmtune's arguments taken out, one occurrence each: what the
 * administrator (and other tools) put there. Used to find arguments kvmtune would own that someone
 * else already sets.
 */
export function foreignArgs(cmdline: string, ours: readonly string[]): string[] {
    const left = [...ours];
    return splitArgs(cmdline).filter((w) => {
        const n = left.indexOf(w);
        if (n < 0) return true;
        left.splice(n, 1);
        return false;
    });
}
