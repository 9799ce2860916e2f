/**
 * Writing a knob's persistence files in one host step, from the same list refresh compares
 * (drift.ts `PersistedFile`), so what is written and what is checked cannot disagree:
 *
 * - a file is written only when its bytes, owner or mode differ from what the host has, so a
 *   converge that changes nothing writes nothing and wakes no daemon;
 * - a file that must be absent is removed only when kvmtune wrote it (its first line is a kvmtune
 *   header): kvmtune never deletes what an administrator made;
 * - an enablement link is made with `systemctl --no-reload enable`, only when it is missing;
 * - each daemon re-reads its files once, at the end, and only when one of its files changed:
 *   systemd's `daemon-reload` (it took 16 s on a loaded lab host, and used to run once per unit),
 *   udev's rules, the bootloader's configuration, NetworkManager's drop-ins (where it runs);
 * - how each daemon is told is the platform layer's (host/platformSteps.ts), as is the SELinux
 *   label every written file gets (host/files.ts runs restorecon where SELinux is on).
 *
 * The comparison happens on the host, in the same script that writes: no extra round trip.
 */
import { updateGrubScript } from "./bootloader";
import { PersistedFile } from "./drift";
import { atomicWriteScript } from "./files";
import { disableUnitCommand, enableUnitCommand, NETWORK_MANAGER_RELOAD, SYSTEMD_RELOAD, UDEV_RELOAD } from "./platformSteps";
import { shellQuote } from "./quote";

/** The daemons that re-read persisted files, and how each is told, once per host step. */
const RELOADS = {
    systemd: `${SYSTEMD_RELOAD} || exit 1`,
    udev: UDEV_RELOAD,
    // A failed regeneration fails the step (its stderr reaches the error); the fragments written
    // in this step are taken away again, so the next `up` finds them changed and regenerates.
    bootloader: updateGrubScript("rm -f $bootloader_written; "),
    networkManager: NETWORK_MANAGER_RELOAD,
} as const;

export type Reload = keyof typeof RELOADS;

/** `0644` as `stat -c %a` prints it: `644`. */
const statMode = (mode: string) => parseInt(mode, 8).toString(8);

const parentOf = (path: string) => path.slice(0, path.lastIndexOf("/")) || "/";
const unitOf = (path: string) => path.slice(path.lastIndexOf("/") + 1);

function writeStep(f: PersistedFile & { want: string }): string[] {
    const p = shellQuote(f.path);
    const mode = f.mode ?? "0644";
    const b64 = shellQuote(Buffer.from(f.want, "utf8").toString("base64"));
    const same = `[ -f ${p} ] && [ ! -L ${p} ] && [ "$(stat -c %u:%g:%a ${p})" = 0:0:${statMode(mode)} ] && printf '%s' ${b64} | base64 -d | cmp -s - ${p}`;
    const mark = f.reload ? ` reload_${f.reload}=1;` : "";
    // A managed path is plain (files.ts checks it), so it can sit in an unquoted list.
    const remember = f.reload === "bootloader" ? ` bootloader_written="$bootloader_written ${f.path}";` : "";
    return [`if ! { ${same}; }; then`, `( ${atomicWriteScript(f.path, f.want, mode)}`, `) || exit 1;${mark}${remember}`, "fi"];
}

function removeStep(f: PersistedFile): string {
    const p = shellQuote(f.path);
    const mark = f.reload ? ` reload_${f.reload}=1;` : "";
    // A unit is disabled before its file goes: systemd needs the file to know which links to remove.
    const disable = f.reload === "systemd" ? `${disableUnitCommand(shellQuote(unitOf(f.path)))}; ` : "";
    return (
        `if [ -f ${p} ] && head -n 1 ${p} | grep -q '^# Managed by kvmtune for '; then ` +
        `${disable}rm -f ${p} && sync ${shellQuote(parentOf(f.path))} || exit 1;${mark} fi`
    );
}

function enableStep(f: PersistedFile & { enables: string }): string {
    return `if [ ! -L ${shellQuote(f.path)} ]; then ${enableUnitCommand(shellQuote(f.enables))} >/dev/null || exit 1; reload_systemd=1; fi`;
}

/** The host has `f` as wanted: absent when it must be, else the same text (trailing newlines aside). */
export function fileInPlace(f: Pick<PersistedFile, "want">, have: string | null | undefined): boolean {
    if (f.want === null) return have === null || have === undefined;
    return have !== null && have !== undefined && have.replace(/\n+$/, "") === f.want.replace(/\n+$/, "");
}

/** The step that brings one file to `f` (persistFilesScript), or "" when the host has it as wanted. */
export function fileStepIfChanged(f: PersistedFile, have: string | null | undefined): string {
    return fileInPlace(f, have) ? "" : persistFilesScript([f]);
}

/**
 * The script that brings the host's persistence files to `files`: writes, removals and enablement
 * links in list order (removals of enablement links are left to the unit's own removal), then one
 * reload per daemon that has a changed file. Runs in one `sh -s`; fails on the first failed step.
 */
export function persistFilesScript(files: readonly PersistedFile[]): string {
    const steps = [`${Object.keys(RELOADS).map((d) => `reload_${d}=`).join(" ")} bootloader_written=`];
    for (const f of files) {
        if (f.enables !== undefined) {
            if (f.want !== null) steps.push(enableStep(f as PersistedFile & { enables: string }));
        } else if (f.want === null) {
            steps.push(removeStep(f));
        } else {
            steps.push(...writeStep(f as PersistedFile & { want: string }));
        }
    }
    for (const [daemon, command] of Object.entries(RELOADS)) steps.push(`if [ -n "$reload_${daemon}" ]; then ${command}; fi`);
    return steps.join("\n");
}
