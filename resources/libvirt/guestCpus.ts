/**
 * "Choose the guest's CPUs, then define the domain", made safe against other creates on the host.
 *
 * Why: a NumaPinnedGuest with `cpuPins: "auto"` reads the other guests' pins, picks CPUs none of
 * them holds, and defines its domain. Two of them created at once (two resources of one `up`, or
 * two stacks) both read before either defined, and both took the same CPUs.
 *
 * How: a compare-and-swap on a generation file. Before reading the other guests, the provider reads
 * the file's value; the define is one remote script that takes an flock(1) on a lock file, checks
 * that the generation is still the value read, defines the domain and writes a new generation, all
 * while holding the lock. Whoever defined in between changed the generation: the define is refused
 * (exit 75) and the provider reads the host again and chooses again. The kernel drops the lock when
 * the script ends, however it ends, so a cut connection never leaves the host locked. The files sit
 * in /run: a generation only has to outlive the few seconds between a read and a define.
 */
import { randomBytes } from "crypto";
import { shellQuote } from "../host/quote";
import { Remote, TIMEOUTS, wholeScript } from "../host/remote";
import { RemoteCommandError } from "../host/errors";
import { virshCommand } from "./virsh";

export const GUEST_CPUS_DIR = "/run/kvmtune";

/** Exit code of a define refused because another guest was defined since the read (sh never exits 75 itself). */
const CHANGED = 75;
/** How often a create reads and chooses again before it gives up. */
const ATTEMPTS = 5;
/** The lock is held for one `virsh define`; waiting longer than this means something is stuck. */
const LOCK_WAIT_SECONDS = 120;
const XML_END = "KVMTUNE_DOMAIN_XML_END";

const generationFile = (dir: string) => `${dir}/guest-cpus.generation`;

/** The generation as it is now ("" before any guest was defined through this guard). */
export async function readGuestCpusGeneration(remote: Remote, dir = GUEST_CPUS_DIR): Promise<string> {
    const r = await remote.exec(`cat ${shellQuote(generationFile(dir))} 2>/dev/null || true`, { privileged: true });
    return r.stdout.trim();
}

/** The script that defines `xml` only when the generation is still `seen`, and then moves it on. */
export function defineIfUnchangedScript(xml: string, seen: string, dir = GUEST_CPUS_DIR): string {
    if (xml.split("\n").includes(XML_END)) throw new Error(`domain XML holds the line ${XML_END}`);
    const gen = shellQuote(generationFile(dir));
    const next = randomBytes(12).toString("hex");
    return [
        `mkdir -p ${shellQuote(dir)} || exit 1`,
        `exec 9>>${shellQuote(`${dir}/guest-cpus.lock`)} || exit 1`,
        `flock -w ${LOCK_WAIT_SECONDS} 9 || { echo "kvmtune: ${dir}/guest-cpus.lock still held after ${LOCK_WAIT_SECONDS} s" >&2; exit 1; }`,
        `now=$(cat ${gen} 2>/dev/null || true)`,
        `[ "$now" = ${shellQuote(seen)} ] || exit ${CHANGED}`,
        // `cat |` gives virsh a pipe for /dev/stdin, as defineXml does.
        `cat <<'${XML_END}' | ${virshCommand(["define", "--validate", "/dev/stdin"])} || exit 1`,
        xml,
        XML_END,
        `printf '%s\\n' ${next} > ${gen}.tmp && mv -f ${gen}.tmp ${gen}`,
    ].join("\n");
}

/** Defines the domain when no guest was defined since `seen` was read; false when one was. */
export async function defineIfUnchanged(remote: Remote, xml: string, seen: string, dir = GUEST_CPUS_DIR): Promise<boolean> {
    // Its deadline covers the wait for the lock and then the define itself.
    const r = await remote.exec("sh -s", { stdin: wholeScript(defineIfUnchangedScript(xml, seen, dir)), privileged: true, timeoutSeconds: LOCK_WAIT_SECONDS + TIMEOUTS.default });
    if (r.code === 0) return true;
    if (r.code === CHANGED) return false;
    throw new RemoteCommandError(remote.name, `(define the domain under ${dir}/guest-cpus.lock) ${virshCommand(["define", "--validate", "/dev/stdin"])}`, r.code, r.stderr, r.stdout);
}

/**
 * Reads the host and chooses (`plan`: reads the other guests, picks CPUs, checks, builds the XML),
 * then defines (a null XML: the plan defines nothing); when another guest was defined in between, reads and chooses again. Returns what
 * the plan that was defined returned.
 */
export async function defineWithCpusChosen<T>(
    remote: Remote,
    plan: () => Promise<{ xml: string | null; result: T }>,
    opts: { dir?: string; attempts?: number } = {},
): Promise<T> {
    const dir = opts.dir ?? GUEST_CPUS_DIR;
    const attempts = opts.attempts ?? ATTEMPTS;
    for (let n = 1; ; n++) {
        const seen = await readGuestCpusGeneration(remote, dir);
        const { xml, result } = await plan();
        // Nothing to define (an update that changes no definition): no CPU is taken, nothing to guard.
        if (xml === null) return result;
        if (await defineIfUnchanged(remote, xml, seen, dir)) return result;
        if (n >= attempts) {
            throw new Error(`${remote.name}: other guests were defined while this one chose its CPUs, ${attempts} times in a row; nothing was defined. Run up again.`);
        }
    }
}
