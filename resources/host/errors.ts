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

/**
 * The base of kvmtune's errors: their message already says what went wrong where and what to do,
 * so a Node.js stack trace adds nothing for a user. Pulumi's dynamic provider host prints a failed
 * check, diff, read or delete as `${err}: ${err.stack}` (node_modules/@pulumi/pulumi/cmd/
 * dynamic-provider/index.js), and `err.stack` starts with the message again: a refresh of a host
 * that is down showed the message twice and a stack. With an empty stack that prints one line,
 * `ConnectError: cannot connect to ...: `; its uncaught-error handler prints `err.stack ||
 * err.message`: the message. `toString` stays `Name: message`, which messages and assertions use.
 */
export class KvmtuneError extends Error {
    constructor(message: string) {
        super(message);
        // Writable, so a test runner or a wrapper can still put a stack on it.
        Object.defineProperty(this, "stack", { value: "", writable: true, configurable: true });
    }
}

export class RemoteCommandError extends KvmtuneError {
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

/**
 * The SSH connection went away while a command ran (the host rebooted or crashed, a network cut,
 * sshd restarted): not a failed command, and its output says nothing. Whether the step finished on
 * the host is unknown; running `pulumi up` again is safe, since kvmtune reads the host first and
 * its claims on the host keep what it recorded before changing anything.
 */
export class ConnectionLostError extends KvmtuneError {
    constructor(
        public readonly host: string,
        /** The step by its first line: a whole script would bury the news. */
        public readonly step: string,
    ) {
        super(
            `the connection to ${host} was lost during the step \`${step}\`; it may or may not have finished on the host. ` +
                `Run \`pulumi up\` again once ${host} answers SSH: kvmtune reads the host first and resumes from its claims (the values it recorded before changing anything).`,
        );
        this.name = "ConnectionLostError";
    }
}

/**
 * A command or script by the line that says what it does, for messages, at most `max` characters:
 * its opening comment (`# kvmtune read: ...`) when it has one, else its first command, past the
 * grouping lines runScript adds (remote.ts wholeScript), a shebang, `set` and helper functions.
 */
export function stepOf(command: string, max = 100): string {
    const lines = command.split("\n").map((l) => l.trim()).filter((l) => l !== "" && l !== "{ :" && !l.startsWith("#!"));
    let n = 0;
    for (; n < lines.length; n++) {
        const l = lines[n];
        if (/^set -[a-z]+$/.test(l) || l === "}") continue;
        // A helper function: its whole definition, on one line or up to its closing brace.
        if (/^[A-Za-z_][A-Za-z0-9_]*\(\)\s*\{/.test(l)) {
            if (!l.endsWith("}")) while (n + 1 < lines.length && lines[n + 1] !== "}") n++;
            continue;
        }
        break;
    }
    const first = n < lines.length ? lines[n].replace(/^#\s*/, "") : command.trim();
    const more = lines.length > n + 1;
    const text = first.length > max ? first.slice(0, max - 1) + "…" : first;
    return more ? `${text} …` : text;
}

/** Inputs or state that do not fit the schema outside `check` (create after a skipped check, state written by hand). */
export class InvalidInputsError extends KvmtuneError {
    constructor(message: string) {
        super(message);
        this.name = "InvalidInputsError";
    }
}

export class HostKeyMismatchError extends KvmtuneError {
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

export class ConnectError extends KvmtuneError {
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
export class CommandTimeoutError extends KvmtuneError {
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
