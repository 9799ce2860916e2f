/**
 * Ownership of host knobs. A knob is one thing on a host that only one resource may drive: one
 * disk's I/O scheduler, one page size's huge page pool, one SR-IOV PF's VFs, one libvirt network.
 * Two resources declaring the same knob, in one stack or in two, would undo each other on every
 * `up`; the second is refused, with a message naming the first.
 *
 * Where ownership is recorded:
 * - `/etc/kvmtune/claims/<knob>`: one small root-owned file per knob whose header names the owner
 *   (`managedHeader`). Every resource writes one, also with `persist: false`, so ownership does not
 *   hang on persistence files. /etc rather than /run: a claim lasts as long as the resource, and a
 *   resource outlives a reboot even when its setting does not (the next `up` puts it back).
 * - The knob's persistence files (udev rule, systemd unit) carry the same header; one that names
 *   another owner, or has no kvmtune header at all, refuses the claim too. That covers files written
 *   before claims existed and files an administrator made by hand.
 *
 * Taking a claim is one script, so the checks and the write happen in one round trip, and a new
 * claim is created with link(2), which fails when the name exists: of two stacks racing for a knob
 * exactly one wins, and the other is told which owner won.
 *
 * A claim is released when its resource is deleted. To free a knob whose owner is gone for good
 * (its stack was removed without `destroy`), remove the claim file by hand.
 */
import { atomicWriteScript, headerLine, managedHeader, ownerOf, ownerProblem, removeFileScript } from "./files";
import { shellQuote } from "./quote";
import { Remote, wholeScript } from "./remote";
import { KvmtuneError, RemoteCommandError } from "./errors";
import { warnUser } from "./warn";

export const CLAIMS_DIR = "/etc/kvmtune/claims";

/** A knob's name is a file name under CLAIMS_DIR: plain, so it is safe in paths and messages. */
const KNOB = /^[A-Za-z0-9][A-Za-z0-9_.@-]{0,127}$/;

/** The exit code and stderr marker of a refused claim (sh itself never exits 75). */
const REFUSED = 75;
const MARKER = "kvmtune-claim";
/** The line the claim script prints when it made the claim file (the knob had none). */
const TAKEN = "kvmtune-claim-taken";

export interface KnobClaim {
    /** The knob's file name under CLAIMS_DIR, e.g. `block-elevator-vdb`, `hugepages-2M`. */
    knob: string;
    /** What the knob is, for messages: `the I/O scheduler of vdb`. */
    what: string;
    /** The resource's owner label (resources/owner.ts). */
    owner: string;
    /** Labels the same resource had before (an older kvmtune wrote them without the stack): still its own. */
    formerOwners?: string[];
    /** The knob's files on the host: one whose header names another owner refuses the claim. */
    files?: string[];
    /**
     * What the knob had before the owner first changed it (JSON-able), recorded in the claim when
     * the claim is first taken and returned by every later `claimKnob` of the same owner. A create
     * cut off half-way (connection lost, host rebooted) cannot undo its changes nor release its
     * claim; the retried create then finds the knob already changed, and would record the changed
     * value as "original", so delete would "restore" it. Reading the original back from the claim,
     * the retry restores what was there before the first attempt.
     */
    original?: unknown;
}

/** What a claim taken (or kept) says. */
export interface ClaimRecord {
    /** The original recorded when the claim was first taken, or undefined when it records none. */
    original: unknown;
    /**
     * True when this call made the claim file: the knob had no claim on the host. For an update or
     * a delete of a resource that exists in state, that means the host lost the claim since (it was
     * reinstalled, or `/etc/kvmtune` was removed by hand): the original in state may describe a host
     * that is no more.
     */
    taken: boolean;
}

/** The knob belongs to another resource, or a file of it was not written by kvmtune. */
export class ClaimError extends KvmtuneError {
    constructor(
        public readonly host: string,
        public readonly knob: string,
        /** The owner label found on the host, or null when the file has no kvmtune header. */
        public readonly holder: string | null,
        /** The file that says so: the claim or one of the knob's files. */
        public readonly file: string,
        what: string,
        firstLine: string,
    ) {
        super(
            holder !== null
                ? `${what} on ${host} belongs to ${holder} (${file}). A knob has one owner: delete that resource first, ` +
                      `or, if it no longer exists anywhere, remove ${file} on the host.`
                : `${what} on ${host}: ${file} exists but kvmtune did not write it (its first line is ${JSON.stringify(firstLine.slice(0, 80))}). ` +
                      `kvmtune does not take over what it did not write; move the file away to let kvmtune manage ${what}.`,
        );
        this.name = "ClaimError";
    }
}

/** For update: the label a resource had in its old state, when it differs from its label now. */
export function formerOwnersOf(olds: Record<string, unknown>, owner: string): string[] {
    return typeof olds.owner === "string" && olds.owner !== owner ? [olds.owner] : [];
}

export function claimPath(knob: string): string {
    if (!KNOB.test(knob)) throw new Error(`bad knob name ${JSON.stringify(knob)}: letters, digits and _.@- only`);
    return `${CLAIMS_DIR}/${knob}`;
}

function claimContent(c: KnobClaim): string {
    return (
        managedHeader(c.owner) +
        `# While this file exists, kvmtune refuses ${c.what} to any other resource.\n` +
        `knob=${c.knob}\n` +
        (c.original === undefined ? "" : `${ORIGINAL_KEY}${Buffer.from(JSON.stringify(c.original), "utf8").toString("base64")}\n`)
    );
}

/** The claim file's line holding the recorded original: base64 of its JSON, so it is one plain word. */
const ORIGINAL_KEY = "original=";

/** The original a claim's text records (the line `original=BASE64`), or undefined. */
export function recordedOriginal(text: string): unknown {
    const line = text.split("\n").find((l) => l.startsWith(ORIGINAL_KEY));
    if (!line) return undefined;
    try {
        return JSON.parse(Buffer.from(line.slice(ORIGINAL_KEY.length), "base64").toString("utf8"));
    } catch {
        return undefined; // a damaged line is no record: the caller's own reading stands
    }
}

/**
 * Shell functions shared by the claim and release scripts: `check FILE` returns when FILE is
 * absent or its first line is one of the owner's headers, and otherwise exits REFUSED with the
 * file and its first line on stderr.
 */
function checkFunctions(c: KnobClaim): string {
    const labels = [c.owner, ...(c.formerOwners ?? []).filter((o) => o !== c.owner && ownerProblem(o) === null)];
    // Quoted words in a case pattern match literally, whatever the label holds.
    const ours = labels.map((o) => shellQuote(headerLine(o))).join("|");
    return [
        `refuse() { printf '${MARKER}\\037%s\\037%s\\n' "$1" "$2" >&2; exit ${REFUSED}; }`,
        `check() {`,
        `  [ -e "$1" ] || [ -L "$1" ] || return 0`,
        `  first=$(head -n 1 -- "$1" 2>/dev/null) || first=""`,
        `  case "$first" in ${ours}) return 0 ;; esac`,
        `  refuse "$1" "$first"`,
        `}`,
    ].join("\n");
}

function checks(c: KnobClaim): string[] {
    return [...(c.files ?? []), claimPath(c.knob)].map((f) => `check ${shellQuote(f)}`);
}

/**
 * The script that takes (or keeps) a claim: exit 0 when the knob is the owner's now; exit 75 with
 * `kvmtune-claim US file US first-line` on stderr when another owner holds it.
 */
export function claimScript(c: KnobClaim): string {
    const path = claimPath(c.knob);
    const q = shellQuote(path);
    return [
        checkFunctions(c),
        ...checks(c),
        // Ours already: rewrite only when it names a former label.
        `if [ -e ${q} ]; then`,
        `  if [ "$(head -n 1 -- ${q})" != ${shellQuote(headerLine(c.owner))} ]; then ( ${atomicWriteScript(path, claimContent(c))}`,
        `  ) || exit 1; fi`,
        `else`,
        // link(2) refuses an existing name: whoever lost the race reports the winner.
        `  ( ${atomicWriteScript(path, claimContent(c), "0644", { exclusive: true })}`,
        `  ) || { check ${q}; exit 1; }`,
        `  echo ${TAKEN}`,
        `fi`,
        // The claim as it now stands, for its recorded original (one written by an earlier attempt wins).
        `grep '^${ORIGINAL_KEY}' ${q} || true`,
    ].join("\n");
}

/** The script that releases a claim the owner holds; exit 75 as above when another owner holds it. */
export function releaseScript(c: KnobClaim): string {
    return [checkFunctions(c), ...checks(c), removeFileScript(claimPath(c.knob))].join("\n");
}

async function runClaimScript(remote: Remote, c: KnobClaim, script: string): Promise<string> {
    const r = await remote.exec("sh -s", { stdin: wholeScript(script), privileged: true });
    if (r.code === 0) return r.stdout;
    const line = r.stderr.split("\n").find((l) => l.startsWith(MARKER + "\x1f"));
    if (r.code === REFUSED && line) {
        const [, file, first] = line.split("\x1f");
        throw new ClaimError(remote.name, c.knob, ownerOf(first ?? ""), file, c.what, first ?? "");
    }
    throw new RemoteCommandError(remote.name, `(claim ${c.knob}) sh -s`, r.code, r.stderr, r.stdout);
}

/** A refusal as a value: null when the script ran, the ClaimError when another owner holds the knob. */
async function refusal(p: Promise<unknown>): Promise<ClaimError | null> {
    try {
        await p;
        return null;
    } catch (err) {
        if (err instanceof ClaimError) return err;
        throw err;
    }
}

/**
 * Takes the knob for the owner, before anything on the host changes; throws ClaimError when another
 * holds it. Returns the original the claim records: the first attempt's for a claim this owner
 * already held, else `c.original` (a new claim, or one taken without an original, such as by an
 * update).
 */
export async function claimKnob(remote: Remote, c: KnobClaim): Promise<ClaimRecord> {
    const out = await runClaimScript(remote, c, claimScript(c));
    return { original: recordedOriginal(out) ?? c.original, taken: out.split("\n").includes(TAKEN) };
}

/**
 * For update: takes (or keeps) the claim like claimKnob, and returns the original delete must put
 * back. Normally the one in state (`recorded`). When the claim was gone from the host (reinstalled,
 * or removed by hand), the original in state was recorded on a host that is no more: the claim is
 * taken again with the knob's values as they are now (`c.original`), which become the original,
 * and a warning says so (as holdForDelete warns for a delete).
 */
export async function reclaimForUpdate<T>(remote: Remote, c: KnobClaim, recorded: T | undefined): Promise<T> {
    const claimed = await claimKnob(remote, c);
    if (!claimed.taken && recorded !== undefined) return recorded;
    if (recorded !== undefined) {
        warnUser(
            `${c.what} on ${remote.name} had no ownership claim (${claimPath(c.knob)}): the host was reinstalled or the claim removed by hand. ` +
                `Claimed it again; delete will restore the values found now, not those recorded when the resource was created.`,
        );
    }
    return claimed.original as T;
}

/**
 * For delete: keeps (or takes) the owner's claim while the resource undoes its settings, and
 * returns the ClaimError when another owner holds the knob (its claim was removed by hand and the
 * knob taken since): then the settings are that owner's, and delete leaves them alone.
 */
export async function holdForDelete(remote: Remote, c: KnobClaim): Promise<ClaimError | null> {
    const refused = await refusal(
        claimKnob(remote, c).then((claimed) => {
            if (claimed.taken) {
                warnUser(
                    `${c.what} on ${remote.name} had no ownership claim (${claimPath(c.knob)}) when it was deleted: the host was reinstalled ` +
                        `or the claim removed by hand since the last up. Restoring the values recorded at create all the same.`,
                );
            }
        }),
    );
    if (refused) {
        // Not an error (the resource is gone from the stack either way), but never silent: the
        // operator asked to undo a setting and it stays.
        warnUser(
            `${c.owner}: delete left ${c.what} on ${refused.host} as it is: it belongs to ${refused.holder ?? "a file kvmtune did not write"} now (${refused.file}), ` +
                `so nothing was restored and no claim released.`,
        );
    }
    return refused;
}

/** Releases the owner's claim; returns the ClaimError instead of throwing when another owner holds the knob. */
export async function releaseKnob(remote: Remote, c: KnobClaim): Promise<ClaimError | null> {
    return refusal((async () => runClaimScript(remote, c, releaseScript(c)))());
}
