/**
 * Errors of the remote side. Each names the host and, for commands, the command, its exit code and
 * its stderr, as pulumi-command's provider does, so a failed `pulumi up` says what went wrong where.
 * None of them ever holds connection secrets: they are built from host, port, user and command only.
 */

/** How much of a command to quote in an error: scripts can be long, the first lines say enough. */
const COMMAND_EXCERPT = 400;

function excerpt(text: string, max = COMMAND_EXCERPT): string {
    const t = text.trim();
    return t.length <= max ? t : t.slice(0, max) + ` … (${t.length - max} more characters)`;
}

export class RemoteCommandError extends Error {
    constructor(
        public readonly host: string,
        public readonly command: string,
        public readonly exitCode: number | null,
        public readonly stderr: string,
        public readonly stdout: string = "",
    ) {
        super(
            `command failed on ${host} (exit ${exitCode === null ? "signal" : exitCode}): ${excerpt(command)}` +
                (stderr.trim() ? `\nstderr: ${excerpt(stderr, 2000)}` : ""),
        );
        this.name = "RemoteCommandError";
    }
}

export class HostKeyMismatchError extends Error {
    constructor(
        public readonly host: string,
        public readonly expected: string,
        public readonly presented: string,
    ) {
        super(
            `host key of ${host} does not match the pinned key: expected ${expected}, the host presented ${presented}. ` +
                `Refusing to connect. If the host was reinstalled, check the new key out of band (on its console: ` +
                `ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub), set it as hostKey (an in-place update), and run again; ` +
                `the refresh then finds the host bare and up tunes it again.`,
        );
        this.name = "HostKeyMismatchError";
    }
}

/** One connect attempt's allowance, in ms from the first attempt's start. */
export interface AttemptWindow {
    fromMs: number;
    untilMs: number;
}

export class ConnectError extends Error {
    constructor(
        public readonly host: string,
        public readonly attempts: number,
        public readonly reason: string,
        /** How long the attempts took, so a user sees the connect timeout was kept. */
        public readonly elapsedMs?: number,
        /** The time each attempt was allowed, from the first attempt's start: all end by the timeout. */
        public readonly windows?: readonly AttemptWindow[],
    ) {
        super(
            `cannot connect to ${host} after ${attempts} attempt(s)` +
                (elapsedMs === undefined ? "" : ` in ${(elapsedMs / 1000).toFixed(1)} s`) +
                `: ${reason}`,
        );
        this.name = "ConnectError";
    }
}

/** A command that ran past its deadline: its channel was closed, the connection stays usable. */
export class CommandTimeoutError extends Error {
    constructor(
        public readonly host: string,
        public readonly command: string,
        public readonly timeoutSeconds: number,
    ) {
        super(
            `command timed out on ${host} after ${timeoutSeconds} s (its channel was closed; the command may still be running there): ${excerpt(command)}`,
        );
        this.name = "CommandTimeoutError";
    }
}
