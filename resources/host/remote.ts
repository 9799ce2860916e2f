/**
 * What resources need from a host: run a command, get its output. The SSH pool implements it; so
 * does a local shell (tests run the same scripts on this machine to check the parsers).
 */
import { ConnectionLostError, RemoteCommandError, stepOf } from "./errors";

export interface ExecOptions {
    /** Fed to the command's standard input (how scripts are sent: no length limit, no quoting). */
    stdin?: string;
    /** Needs root: as a non-root user with `sudo` set, runs through `sudo -n`. */
    privileged?: boolean;
    /**
     * Seconds the command may run (default TIMEOUTS.default). Then its channel is closed, so the
     * shared connection is free for the next command, and it fails with a CommandTimeoutError.
     */
    timeoutSeconds?: number;
}

/**
 * Deadlines of remote commands, in seconds. A hung command (a wedged sysfs write, a daemon that
 * never answers) must fail the deployment with a message, not hang it. Most commands read or write
 * a few files; the named ones do slow work on purpose.
 */
export const TIMEOUTS = {
    default: 120,
    /** `virsh start`: QEMU preallocates a guest's huge page memory before it runs. */
    guestStart: 600,
    /** Added to a guest's shutdownTimeoutSeconds: the ACPI wait is the script's own. */
    guestStopMargin: 120,
    /** `virsh numatune --live`: the kernel migrates the running guest's memory to the new nodes. */
    memoryMove: 900,
    /** Writing nr_hugepages: the kernel compacts memory to find the pages, minutes on a full node. */
    hugepageAllocation: 900,
    /** Enabling VFs and `udevadm settle` until their devices are named. */
    vfSettle: 300,
    /** `update-grub` and `systemctl enable`: the boot configuration. */
    bootConfig: 300,
} as const;

export interface ExecResult {
    stdout: string;
    stderr: string;
    /** Exit code, or null when the command died of a signal or the channel was cut. */
    code: number | null;
    /** The connection to the host went away while the command ran: its result says nothing. */
    connectionLost?: boolean;
}

export interface Remote {
    /** Names the host in messages (user@host:port); never carries a secret. */
    readonly name: string;
    /** Runs a command; a non-zero exit is a result, not an error. */
    exec(command: string, options?: ExecOptions): Promise<ExecResult>;
}

/** Runs a command and returns its stdout; a non-zero exit throws with the command and stderr. */
export async function run(remote: Remote, command: string, options?: ExecOptions): Promise<string> {
    const r = await remote.exec(command, options);
    if (r.connectionLost) throw new ConnectionLostError(remote.name, stepOf(isScript(command, options) ? (options?.stdin ?? "") : command));
    if (r.code !== 0) {
        throw new RemoteCommandError(remote.name, describeCommand(command, options), r.code, r.stderr, r.stdout);
    }
    return r.stdout;
}

/** A script sent on stdin to `sh -s`: named by its own lines in messages. */
function isScript(command: string, options?: ExecOptions): boolean {
    return options?.stdin !== undefined && command === "sh -s";
}

/**
 * A script as it is sent: inside one brace group, which the shell parses whole before it runs any
 * of it. A connection cut mid-send leaves `sh -s` with a truncated script and end of input; bare,
 * its complete lines would run, and so would a cut-off last line (`mv -f "$tmp" /etc/udev/rules.d/6`
 * renames the file to a wrong name). Grouped, the group is unterminated: a syntax error, nothing runs.
 */
export function wholeScript(script: string): string {
    // The `:` keeps an empty script a valid group; the group's status is still the last command's.
    return `{ :\n${script}\n}\n`;
}

/** Runs a shell script sent on stdin (`sh -s`), privileged unless told otherwise. */
export function runScript(remote: Remote, script: string, options: { privileged?: boolean; timeoutSeconds?: number } = {}): Promise<string> {
    return run(remote, "sh -s", { stdin: wholeScript(script), privileged: options.privileged ?? true, timeoutSeconds: options.timeoutSeconds });
}

/** A script is shown by its text in errors, since `sh -s` alone says nothing. */
export function describeCommand(command: string, options?: ExecOptions): string {
    return options?.stdin !== undefined && command === "sh -s" ? `sh -s <<script\n${options.stdin}\nscript` : command;
}
