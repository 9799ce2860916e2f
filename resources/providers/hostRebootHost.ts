/**
 * HostReboot's work on the host: what the running boot is (boot id, /proc/cmdline, running and
 * autostarted guests) in one round trip, guests shut down and started again, the reboot started
 * detached, and the wait for the host to come back with a new boot id.
 */
import { splitArgs } from "../host/bootloader";
import type { Connection } from "../host/connection";
import { describeHost } from "../host/connection";
import { HostKeyMismatchError, KvmtuneError } from "../host/errors";
import { shellJoin } from "../host/quote";
import { DETACHED_REBOOT } from "../host/platformSteps";
import { Remote, runScript, TIMEOUTS, wholeScript } from "../host/remote";
import { closeHost, remoteFor } from "../host/sshPool";
import { VIRSH } from "../libvirt/virsh";

export const BOOT_ID = "/proc/sys/kernel/random/boot_id";

/** The running boot as the host shows it. */
export interface BootState {
    bootId: string;
    /** /proc/cmdline, word by word. */
    cmdline: string[];
    /** libvirt guests running now (none when the host has no virsh). */
    running: string[];
    /** libvirt guests with autostart set, running or not. */
    autostart: string[];
}

/** One round trip: `bootid X`, `cmdline X`, then `running NAME` and `autostart NAME` lines. */
export const BOOT_STATE_SCRIPT = [
    `printf 'bootid %s\\n' "$(cat ${BOOT_ID})"`,
    `printf 'cmdline %s\\n' "$(cat /proc/cmdline)"`,
    "if command -v virsh >/dev/null 2>&1; then",
    `  ${VIRSH} list --state-running --name | sed -n 's/^\\(..*\\)$/running \\1/p' || exit 1`,
    `  ${VIRSH} list --all --autostart --name | sed -n 's/^\\(..*\\)$/autostart \\1/p' || exit 1`,
    "fi",
].join("\n");

export function parseBootState(text: string): BootState {
    const state: BootState = { bootId: "", cmdline: [], running: [], autostart: [] };
    for (const line of text.split("\n")) {
        const space = line.indexOf(" ");
        const [tag, value] = space < 0 ? [line, ""] : [line.slice(0, space), line.slice(space + 1).trim()];
        if (tag === "bootid") state.bootId = value;
        else if (tag === "cmdline") state.cmdline = splitArgs(value);
        else if ((tag === "running" || tag === "autostart") && value) state[tag].push(value);
    }
    return state;
}

export async function readBootState(remote: Remote, timeoutSeconds?: number): Promise<BootState> {
    return parseBootState(await runScript(remote, BOOT_STATE_SCRIPT, { timeoutSeconds }));
}

/** What the running kernel lacks of `expect`, and what it still has of `expectGone`. */
export function notInEffect(cmdline: readonly string[], expect: readonly string[], expectGone: readonly string[]): { missing: string[]; stillThere: string[] } {
    return { missing: expect.filter((a) => !cmdline.includes(a)), stillThere: expectGone.filter((a) => cmdline.includes(a)) };
}

/** The `reason` output: which arguments are not in effect, in words; "" when all are. */
export function reasonText(cmdline: readonly string[], expect: readonly string[], expectGone: readonly string[]): string {
    const { missing, stillThere } = notInEffect(cmdline, expect, expectGone);
    return [
        missing.length ? `not in the running kernel yet: ${missing.join(" ")}` : "",
        stillThere.length ? `taken off the boot configuration, still in the running kernel: ${stillThere.join(" ")}` : "",
    ]
        .filter(Boolean)
        .join("; ");
}

/**
 * Shuts the guests down gracefully, side by side, and waits up to `timeoutSeconds` for each to
 * be off. Guests still running then are named in the error; the ones that did stop are started
 * again first, so a refused reboot leaves the host as it was found.
 */
export async function shutdownGuests(remote: Remote, host: string, guests: readonly string[], timeoutSeconds: number): Promise<void> {
    if (guests.length === 0) return;
    const names = shellJoin([...guests]);
    const script = [
        `for g in ${names}; do ${VIRSH} shutdown "$g" >/dev/null || exit 1; done`,
        `end=$(( $(date +%s) + ${timeoutSeconds} ))`,
        "while :; do",
        "  left=",
        `  for g in ${names}; do [ "$(${VIRSH} domstate "$g" 2>/dev/null)" = "shut off" ] || left="$left $g"; done`,
        '  [ -z "$left" ] && exit 0',
        '  if [ "$(date +%s)" -ge "$end" ]; then echo "still running:$left"; exit 3; fi',
        "  sleep 1",
        "done",
    ].join("\n");
    const r = await remote.exec("sh -s", { stdin: wholeScript(script), privileged: true, timeoutSeconds: timeoutSeconds + TIMEOUTS.guestStopMargin });
    if (r.code === 0) return;
    const stuck = /still running:(.*)/.exec(r.stdout)?.[1].trim().split(/\s+/) ?? [];
    await startGuests(remote, guests.filter((g) => !stuck.includes(g))).catch(() => undefined);
    throw new KvmtuneError(
        stuck.length
            ? `HostReboot on ${host}: guests ${stuck.join(", ")} did not shut down within ${timeoutSeconds} s (guestShutdownTimeoutSeconds); the others were started again and the host was not rebooted. Stop them by hand (virsh shutdown, or virsh destroy) or raise guestShutdownTimeoutSeconds, and run again`
            : `HostReboot on ${host}: shutting down guests ${guests.join(", ")} failed (exit ${r.code}): ${r.stderr.trim()}; the host was not rebooted`,
    );
}

/** Starts each guest that is not running; a guest that will not start fails naming it and virsh's words. */
export async function startGuests(remote: Remote, guests: readonly string[]): Promise<void> {
    if (guests.length === 0) return;
    const script = `for g in ${shellJoin([...guests])}; do [ "$(${VIRSH} domstate "$g" 2>/dev/null)" = "running" ] || ${VIRSH} start "$g" >/dev/null || exit 1; done`;
    await runScript(remote, script, { timeoutSeconds: TIMEOUTS.guestStart });
}

/** The reboot, started the platform's way (host/platformSteps.ts DETACHED_REBOOT). */
export const REBOOT_SCRIPT = DETACHED_REBOOT;

export async function startReboot(remote: Remote): Promise<void> {
    await runScript(remote, REBOOT_SCRIPT);
}

/** Time, as the wait sees it; tests swap in a fast clock (a 60 s timeout must not take 60 s). */
export const clock = {
    now: (): number => Date.now(),
    sleep: (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms)),
};

/** Seconds between attempts to reach the host while it boots. */
export const POLL_SECONDS = 5;
/** How long one attempt may take to connect: a booting host refuses or drops, it does not answer slowly. */
const PROBE_CONNECT_SECONDS = 10;
/** How often the wait says it is still waiting. */
const REPORT_EVERY_SECONDS = 30;

export class HostDidNotReturnError extends KvmtuneError {
    constructor(host: string, timeoutSeconds: number, lastError: string) {
        super(
            `HostReboot: ${host} did not come back within ${timeoutSeconds} s (timeoutSeconds) after the reboot was started` +
                (lastError ? `; the last attempt to reach it: ${lastError}` : "") +
                `. Look at its console (it may be stuck in firmware, fsck or a kernel that does not boot with the new arguments); ` +
                `when it answers again, run pulumi up again (or raise timeoutSeconds for a host that boots slowly)`,
        );
        this.name = "HostDidNotReturnError";
    }
}

/**
 * Waits until the host answers SSH again, with its pinned host key (the pool's own connect checks
 * it; a different key fails at once), and reports a boot id other than `oldBootId`. Before each
 * attempt after a failure the pooled connection is dropped, so the next attempt connects afresh
 * rather than waiting on a connection to the previous boot.
 */
export async function waitForNewBoot(connection: Connection, oldBootId: string, timeoutSeconds: number, log: (message: string) => void): Promise<BootState> {
    const probe: Connection = { ...connection, connectTimeoutSeconds: Math.min(connection.connectTimeoutSeconds, PROBE_CONNECT_SECONDS) };
    const host = describeHost(connection);
    const started = clock.now();
    let lastReport = started;
    let lastError = "";
    closeHost(connection);
    for (;;) {
        await clock.sleep(POLL_SECONDS * 1000);
        const elapsed = Math.round((clock.now() - started) / 1000);
        try {
            const state = await readBootState(remoteFor(probe), PROBE_CONNECT_SECONDS);
            if (state.bootId && state.bootId !== oldBootId) return state;
            lastError = "it still runs the boot from before the reboot";
        } catch (err) {
            if (err instanceof HostKeyMismatchError) throw err;
            lastError = err instanceof Error ? err.message : String(err);
            closeHost(connection);
        }
        if (elapsed >= timeoutSeconds) throw new HostDidNotReturnError(host, timeoutSeconds, lastError);
        if (clock.now() - lastReport >= REPORT_EVERY_SECONDS * 1000) {
            lastReport = clock.now();
            log(`waiting for ${host} to come back, ${elapsed} s of ${timeoutSeconds} s`);
        }
    }
}
