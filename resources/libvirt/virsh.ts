/**
 * `virsh` over a Remote: always against the system daemon (`-c qemu:///system`, never a user
 * session), every argument quoted, privileged, and a failure is a `RemoteCommandError` naming the
 * host, the virsh command and virsh's stderr.
 *
 * Several virsh calls that belong together (a read of one domain, the domains of a host) run as one
 * script in one round trip: `virsh` calls dominate the cost of a read on a host.
 */
import { shellJoin, shellQuote } from "../host/quote";
import { Remote, run, runScript, TIMEOUTS } from "../host/remote";
import { buildDumpScript, parseDump } from "../host/sysfs";

export const VIRSH = "virsh -c qemu:///system";

/** The command line for one virsh call; every argument is quoted. */
export function virshCommand(args: ReadonlyArray<string | number>): string {
    return `${VIRSH} ${shellJoin(args)}`;
}

/** Runs one virsh command and returns its stdout; a failure throws with command and stderr. */
export function virsh(remote: Remote, args: ReadonlyArray<string | number>, options: { timeoutSeconds?: number } = {}): Promise<string> {
    return run(remote, virshCommand(args), { privileged: true, timeoutSeconds: options.timeoutSeconds });
}

/** Starts a domain, with the time QEMU needs to preallocate a large guest's memory. */
export function startDomain(remote: Remote, ref: string): Promise<string> {
    return virsh(remote, ["start", ref], { timeoutSeconds: TIMEOUTS.guestStart });
}

/**
 * Defines (or redefines) a domain (`define`) or a network (`net-define`) from XML. The XML travels
 * on stdin and virsh reads it from `/dev/stdin`, so no byte of it meets the shell and no temporary
 * file is left behind when the connection is cut half-way.
 */
export async function defineXml(remote: Remote, xml: string, command: "define" | "net-define" = "define"): Promise<void> {
    // `cat |` makes virsh's stdin a pipe: an SSH server (or a local runner) may hand the session a
    // socket, which /dev/stdin cannot open. The pipeline's status is virsh's.
    await run(remote, `cat | ${virshCommand([command, "--validate", "/dev/stdin"])}`, { stdin: xml, privileged: true });
}

/** One domain as read in one round trip: both XMLs, its state and autostart flag. */
export interface DomainRead {
    /** False when no domain answers to the name or UUID. */
    exists: boolean;
    /** `virsh dumpxml`: the running definition when the domain runs, else the persistent one. */
    liveXml: string;
    /** `virsh dumpxml --inactive`: the persistent definition (what the next start uses). */
    configXml: string;
    /** `virsh domstate`: running, shut off, paused, ... */
    state: string;
    autostart: boolean;
    /** Whether the domain has a persistent definition at all (a transient one does not). */
    persistent: boolean;
}

/**
 * Reads one domain by name or UUID. Existence is judged by `dominfo`, which resolves names, UUIDs
 * and ids alike (`domuuid` takes names and ids only, so a lookup by UUID would read as "gone").
 */
export async function readDomain(remote: Remote, ref: string): Promise<DomainRead> {
    const q = shellQuote(ref);
    const dump = parseDump(
        await runScript(
            remote,
            buildDumpScript({
                commands: {
                    info: `${VIRSH} dominfo ${q}`,
                    live: `${VIRSH} dumpxml ${q}`,
                    config: `${VIRSH} dumpxml --inactive ${q}`,
                    state: `${VIRSH} domstate ${q}`,
                },
            }),
        ),
    );
    const cmd = (k: string) => dump.commands.get(k) ?? { stdout: "", code: -1 };
    if (cmd("info").code !== 0) {
        return { exists: false, liveXml: "", configXml: "", state: "", autostart: false, persistent: false };
    }
    for (const k of ["live", "config", "state"]) {
        if (cmd(k).code !== 0) {
            // Run it again on its own to get virsh's stderr into the error.
            await virsh(remote, k === "live" ? ["dumpxml", ref] : k === "config" ? ["dumpxml", "--inactive", ref] : ["domstate", ref]);
        }
    }
    const info = parseDominfo(cmd("info").stdout);
    return {
        exists: true,
        liveXml: cmd("live").stdout,
        configXml: cmd("config").stdout,
        state: cmd("state").stdout.trim(),
        autostart: info.Autostart === "enable",
        persistent: info.Persistent === "yes",
    };
}

/** `virsh dominfo` as a map: `Autostart: enable` -> {Autostart: "enable"}. */
export function parseDominfo(text: string): Record<string, string> {
    const out: Record<string, string> = {};
    for (const line of text.split("\n")) {
        const m = /^([A-Za-z][A-Za-z ()]*?):\s*(.*)$/.exec(line.trim());
        if (m) out[m[1]] = m[2].trim();
    }
    return out;
}

/**
 * The XML of everything a virsh list command prints by UUID, keyed by UUID. One round trip.
 * `list` and `dump` are the library's own virsh subcommands, never user values.
 */
async function readAllXml(remote: Remote, list: string, dump: string): Promise<Map<string, string>> {
    const script = [
        `for u in $(${VIRSH} ${list}); do`,
        `  printf '\\036D\\037%s\\n' "$u"`,
        `  ${VIRSH} ${dump} "$u" 2>/dev/null`,
        `done`,
        `exit 0`,
    ].join("\n");
    const out = await runScript(remote, script);
    const found = new Map<string, string>();
    for (const record of out.split("\x1e").slice(1)) {
        const nl = record.indexOf("\n");
        if (record[0] !== "D" || nl < 0) continue;
        const xml = record.slice(nl + 1).trim();
        if (xml) found.set(record.slice(2, nl), xml);
    }
    return found;
}

/** The current XML of every domain on the host (running ones live), or of the running ones only, keyed by UUID. */
export function readAllDomains(remote: Remote, which: "all" | "running" = "all"): Promise<Map<string, string>> {
    return readAllXml(remote, which === "all" ? "list --all --uuid" : "list --uuid", "dumpxml");
}

/** The persistent XML of every libvirt network on the host, keyed by UUID. One round trip. */
export function readAllNetworks(remote: Remote): Promise<Map<string, string>> {
    return readAllXml(remote, "net-list --all --uuid", "net-dumpxml --inactive");
}

/** Which of the named libvirt networks exist on the host (one round trip). */
export async function existingNetworks(remote: Remote, names: readonly string[]): Promise<Set<string>> {
    if (names.length === 0) return new Set();
    const commands = Object.fromEntries(names.map((n, i) => [`net${i}`, `${VIRSH} net-uuid ${shellQuote(n)}`]));
    const dump = parseDump(await runScript(remote, buildDumpScript({ commands })));
    return new Set(names.filter((_n, i) => dump.commands.get(`net${i}`)?.code === 0));
}

/**
 * Stops a domain: ACPI shutdown, wait up to `timeoutSeconds` for "shut off", then destroy.
 * One round trip; returns how it stopped.
 */
export async function stopDomain(remote: Remote, ref: string, timeoutSeconds: number): Promise<"graceful" | "forced" | "already"> {
    const q = shellQuote(ref);
    const script = [
        `s=$(${VIRSH} domstate ${q}) || exit 1`,
        `[ "$s" = "shut off" ] && { echo already; exit 0; }`,
        `${VIRSH} shutdown ${q} >/dev/null 2>&1 || true`,
        `i=0`,
        `while [ $i -lt ${Math.max(0, Math.floor(timeoutSeconds))} ]; do`,
        `  [ "$(${VIRSH} domstate ${q} 2>/dev/null)" = "shut off" ] && { echo graceful; exit 0; }`,
        `  sleep 1; i=$((i+1))`,
        `done`,
        `[ "$(${VIRSH} domstate ${q} 2>/dev/null)" = "shut off" ] && { echo graceful; exit 0; }`,
        `${VIRSH} destroy ${q} >/dev/null || exit 1`,
        `echo forced`,
    ].join("\n");
    // The script waits up to timeoutSeconds itself; the deadline leaves room for the forced stop after.
    const deadline = Math.max(0, Math.floor(timeoutSeconds)) + TIMEOUTS.guestStopMargin;
    return (await runScript(remote, script, { timeoutSeconds: deadline })).trim() as "graceful" | "forced" | "already";
}

/** Undefines a domain, with its NVRAM file when it has one (UEFI guests), and any managed save. */
export async function undefineDomain(remote: Remote, ref: string, hasNvram: boolean): Promise<void> {
    await virsh(remote, ["undefine", ref, "--managed-save", ...(hasNvram ? ["--nvram"] : [])]);
}
