/**
 * What `read` (refresh) reports beside the knob's live value: whether what kvmtune left on the host
 * to keep the knob (its ownership claim, its persistence files: a udev rule, a boot or mount unit, a
 * GRUB fragment, a unit's enablement link) is still as kvmtune wrote it. A rule deleted by hand, or
 * a host reinstalled under the resource, is drift like a changed value: refresh lists it in the
 * resource's `drift` output, diff (resources/policy.ts) turns any drift into an update, and the
 * update writes the files and takes the claim again.
 *
 * The files are read in the resource's own read round trip (add `persistedPaths` to its dump); the
 * comparison happens here, once, for every resource.
 */
import { claimPath, KnobClaim } from "./claims";
import { headerLine } from "./files";
import { globLiteral } from "./sysfs";

/** A file kvmtune keeps on the host: its text as kvmtune writes it, or null when it must be absent. */
export interface PersistedFile {
    path: string;
    want: string | null;
    /** The file's mode when written (persist.ts); 0644 when not given. */
    mode?: string;
    /** The daemon that re-reads the file after it changed (persist.ts): once per host step. */
    reload?: "systemd" | "udev" | "bootloader" | "networkManager";
    /**
     * This path is the enablement link of that unit: `systemctl enable` makes it, and the read
     * follows it to the unit's text. Missing means the unit is not enabled.
     */
    enables?: string;
}

/** The dump's text of a file has its trailing newlines cut (host/sysfs.ts): compare without them. */
const trimmed = (s: string) => s.replace(/\n+$/, "");

/**
 * The patterns a read must add to its dump's files so that `persistedDrift` can judge them. A
 * symlink is read through (an enablement link in a `.wants` folder reads as its unit's text).
 */
export function persistedPaths(files: readonly PersistedFile[], claims: readonly KnobClaim[] = []): string[] {
    return [...files.map((f) => f.path), ...claims.map((c) => claimPath(c.knob))].map(globLiteral);
}

/**
 * Each persisted file that is missing, changed or left over, and each claim that is missing or
 * names another owner, as one sentence. `read` maps a path to its text; absent: no such file.
 */
export function persistedDrift(read: ReadonlyMap<string, string>, files: readonly PersistedFile[], claims: readonly KnobClaim[] = []): string[] {
    const out: string[] = [];
    for (const f of files) {
        const have = read.get(f.path);
        if (f.want === null) {
            if (have !== undefined) out.push(`${f.path} is left over`);
        } else if (have === undefined) {
            out.push(`${f.path} is missing`);
        } else if (trimmed(have) !== trimmed(f.want)) {
            out.push(`${f.path} was changed`);
        }
    }
    for (const c of claims) {
        const have = read.get(claimPath(c.knob));
        if (have === undefined) {
            out.push(`the ownership claim ${claimPath(c.knob)} is missing (host reinstalled, or removed by hand)`);
        } else if (have.split("\n", 1)[0] !== headerLine(c.owner)) {
            out.push(`the ownership claim ${claimPath(c.knob)} names another owner: ${JSON.stringify(have.split("\n", 1)[0])}`);
        }
    }
    return out;
}

/** The drift a read's outputs carry, as diff reads it back from state. */
export function driftIn(props: Record<string, unknown>): string[] {
    return Array.isArray(props.drift) ? props.drift.filter((d): d is string => typeof d === "string") : [];
}
