/**
 * One SSH connection per (user, host, port) per process, shared by every resource on that host.
 *
 * Why: a fresh SSH connection costs a key exchange (0.6 s against an emulated lab host, more over a
 * WAN) and sshd limits unauthenticated connections (MaxStartups). Pulumi runs every resource of a
 * deployment in one provider process, so a process-wide pool gives one connection per host per
 * deployment. Commands are queued below sshd's MaxSessions (10 by default) so parallel resources
 * share the connection without being refused a channel.
 */
import type { NodeSSH } from "node-ssh";
import { Connection, connectionKey, describeHost } from "./connection";
import { AttemptWindow, CommandTimeoutError, ConnectError, HostKeyMismatchError } from "./errors";
import { fingerprintOf, parseHostKeyPin, PinnedHostKey } from "./hostKey";
import { shellQuote } from "./quote";
import { describeCommand, ExecOptions, ExecResult, Remote, TIMEOUTS } from "./remote";
import { traceCommand } from "./trace";

/** Channels open at once on one connection: below sshd's default MaxSessions of 10. */
export const MAX_CHANNELS = 8;
/**
 * Connection attempts before giving up, and the first back-off (doubled each time). All attempts
 * and back-offs fit in the connection's `connectTimeoutSeconds`: a host that is down fails the
 * deployment within that time, not a multiple of it.
 */
const CONNECT_ATTEMPTS = 3;
const FIRST_BACKOFF_MS = 1000;

/** Counters per host, read by benchmarks and tests that check connection reuse. */
export interface HostStats {
    connections: number;
    commands: number;
}

/** A small FIFO semaphore: at most `limit` holders at once. */
class Semaphore {
    private active = 0;
    private readonly waiting: Array<() => void> = [];
    constructor(private readonly limit: number) {}
    async acquire(): Promise<void> {
        if (this.active < this.limit) {
            this.active++;
            return;
        }
        await new Promise<void>((resolve) => this.waiting.push(resolve));
    }
    release(): void {
        const next = this.waiting.shift();
        if (next) {
            next(); // the slot passes straight to the next waiter
        } else {
            this.active--;
        }
    }
}

class PooledHost implements Remote {
    readonly name: string;
    private ssh: Promise<NodeSSH> | undefined;
    private readonly channels = new Semaphore(MAX_CHANNELS);
    private inFlight = 0;
    readonly stats: HostStats = { connections: 0, commands: 0 };

    constructor(private connection: Connection) {
        this.name = describeHost(connection);
    }

    /** A later resource may carry a fresher key or timeout for the same host: use the newest. */
    update(connection: Connection): void {
        this.connection = connection;
    }

    async exec(command: string, options: ExecOptions = {}): Promise<ExecResult> {
        const wrapped = this.wrap(command, options.privileged ?? false);
        const trace = traceCommand(this.name, command, options.stdin);
        let code: number | null = null;
        await this.channels.acquire();
        trace?.acquired();
        this.hold();
        try {
            const ssh = await this.connected();
            trace?.connected();
            this.stats.commands++;
            const seconds = options.timeoutSeconds ?? TIMEOUTS.default;
            let channel: { close(): void; signal?(name: string): void } | undefined;
            let timer: NodeJS.Timeout | undefined;
            const deadline = new Promise<never>((_resolve, reject) => {
                timer = setTimeout(() => {
                    // Ask the remote side to end it, then close our channel: its slot and the
                    // connection are free for the next command whatever the remote process does.
                    try {
                        channel?.signal?.("KILL");
                        channel?.close();
                    } catch {
                        // the channel is already gone
                    }
                    reject(new CommandTimeoutError(this.name, describeCommand(command, options), seconds));
                }, seconds * 1000);
            });
            try {
                const r = await Promise.race([ssh.execCommand(wrapped, { stdin: options.stdin, noTrim: true, onChannel: (c) => (channel = c) }), deadline]);
                // Neither an exit status nor a signal, and the connection is gone: it was cut mid-command.
                const connectionLost = r.code === null && r.signal === null && !ssh.isConnected();
                code = r.code;
                return { stdout: r.stdout, stderr: r.stderr, code: r.code, ...(connectionLost ? { connectionLost } : {}) };
            } finally {
                clearTimeout(timer);
            }
        } catch (err) {
            // A cut connection fails every command on it; forget it so the next command reconnects.
            // (A timed-out command's connection is still up: forget keeps it.)
            this.forget();
            throw err;
        } finally {
            trace?.done(code);
            this.release();
            this.channels.release();
        }
    }

    close(): void {
        const ssh = this.ssh;
        this.ssh = undefined;
        ssh?.then((s) => s.dispose()).catch(() => undefined);
    }

    /** Privileged commands of a non-root user go through sudo; -n makes a password prompt an error. */
    private wrap(command: string, privileged: boolean): string {
        if (privileged && this.connection.sudo && this.connection.user !== "root") {
            return `sudo -n -- sh -c ${shellQuote(command)}`;
        }
        return command;
    }

    private connected(): Promise<NodeSSH> {
        if (!this.ssh) {
            const attempt = this.connectWithRetry();
            this.ssh = attempt;
            attempt.catch(() => {
                if (this.ssh === attempt) this.ssh = undefined;
            });
        }
        return this.ssh;
    }

    private forget(): void {
        const ssh = this.ssh;
        if (!ssh) return;
        ssh.then((s) => {
            if (!s.isConnected()) {
                if (this.ssh === ssh) this.ssh = undefined;
                s.dispose();
            }
        }).catch(() => undefined);
    }

    private async connectWithRetry(): Promise<NodeSSH> {
        const started = Date.now();
        const deadline = started + this.connection.connectTimeoutSeconds * 1000;
        // A pin that does not parse will not parse on a second try either.
        const pin = parseHostKeyPin(this.connection.hostKey);
        if ("error" in pin) throw new Error(`hostKey of ${this.name}: ${pin.error}`);
        const login = loginOf(this.connection, this.name);
        let lastError = "";
        let attempts = 0;
        const windows: AttemptWindow[] = [];
        for (;;) {
            attempts++;
            // What is left of connectTimeoutSeconds; covers TCP connect, key exchange and login.
            const now = Date.now();
            const readyTimeout = Math.max(1, deadline - now);
            windows.push({ fromMs: now - started, untilMs: now + readyTimeout - started });
            try {
                return await this.connectOnce(pin, login, readyTimeout);
            } catch (err) {
                // A wrong host key or a refused key will not get better by trying again.
                if (err instanceof HostKeyMismatchError) throw err;
                lastError = err instanceof Error ? err.message : String(err);
                if (/authentication methods failed|permission denied|cannot parse privatekey/i.test(lastError)) {
                    // The agent answered but holds no key the host takes: say where the keys came from.
                    if (login.agent) lastError += ` (logging in with the keys of the SSH agent at ${login.agent}: does it hold this host's key? ssh-add -l lists them)`;
                    break;
                }
                const backoff = FIRST_BACKOFF_MS * 2 ** (attempts - 1);
                if (attempts >= CONNECT_ATTEMPTS || Date.now() + backoff >= deadline) break;
                await new Promise((r) => setTimeout(r, backoff));
            }
        }
        throw new ConnectError(this.name, attempts, lastError, Date.now() - started, windows);
    }

    private async connectOnce(pin: PinnedHostKey, login: Login, readyTimeout: number): Promise<NodeSSH> {
        const { NodeSSH } = await import("node-ssh");
        const c = this.connection;
        let mismatch: HostKeyMismatchError | undefined;
        const ssh = new NodeSSH();
        try {
            await ssh.connect({
                host: c.host,
                port: c.port,
                username: c.user,
                ...login,
                readyTimeout,
                keepaliveInterval: 15000,
                // Ask for the pinned key's type when we know it, so the host presents that key.
                algorithms: pin.keyType ? { serverHostKey: [pin.keyType as never] } : undefined,
                hostVerifier: (key: Buffer) => {
                    const presented = fingerprintOf(key);
                    if (presented === pin.fingerprint) return true;
                    // No trust on first use: an unknown key is refused before any credential is sent.
                    mismatch = new HostKeyMismatchError(this.name, pin.fingerprint, presented);
                    return false;
                },
            });
        } catch (err) {
            ssh.dispose();
            throw mismatch ?? err;
        }
        this.stats.connections++;
        const client = ssh.connection;
        client?.on("close", () => this.forget());
        client?.on("error", () => this.forget());
        this.socketRef(ssh, this.inFlight > 0);
        return ssh;
    }

    /** An idle connection must not keep a process alive: unref its socket while nothing runs. */
    private hold(): void {
        if (this.inFlight++ === 0) this.ssh?.then((s) => this.socketRef(s, true)).catch(() => undefined);
    }
    private release(): void {
        if (--this.inFlight === 0) this.ssh?.then((s) => this.socketRef(s, false)).catch(() => undefined);
    }
    private socketRef(ssh: NodeSSH, ref: boolean): void {
        const sock = (ssh.connection as unknown as { _sock?: { ref(): void; unref(): void } } | null)?._sock;
        if (ref) sock?.ref();
        else sock?.unref();
    }
}

/** How the pool logs in: the key text, or the agent's socket. */
type Login = { privateKey: string; agent?: undefined } | { agent: string; privateKey?: undefined };

/**
 * The login of a connection: its privateKey, or (agent: true) the socket of the SSH agent this
 * process was given ($SSH_AUTH_SOCK, read when connecting: the provider host inherits Pulumi's
 * environment). Without a socket there is nothing to try: the error says so and what to do.
 */
export function loginOf(c: Pick<Connection, "privateKey" | "agent">, name: string, env: NodeJS.ProcessEnv = process.env): Login {
    if (c.privateKey !== undefined) return { privateKey: c.privateKey };
    const socket = env.SSH_AUTH_SOCK;
    if (!socket) {
        throw new ConnectError(
            name,
            0,
            "connection.agent is true, but SSH_AUTH_SOCK is not set where Pulumi runs, so there is no SSH agent to log in with. " +
                'Start one and add the host\'s key before running Pulumi (eval "$(ssh-agent)"; ssh-add KEYFILE), or set connection.privateKey instead',
        );
    }
    return { agent: socket };
}

const pool = new Map<string, PooledHost>();

/** The shared connection to a host: created on first use, reused after. */
export function remoteFor(connection: Connection): Remote {
    const key = connectionKey(connection);
    let host = pool.get(key);
    if (host) {
        host.update(connection);
    } else {
        host = new PooledHost(connection);
        pool.set(key, host);
    }
    return host;
}

/**
 * Closes one host's pooled connection. For a long-lived process that is done with a host (the
 * program after drawing its picture): ssh2's keepalive timer would otherwise keep it running.
 */
export function closeHost(connection: Pick<Connection, "host" | "port" | "user">): void {
    const key = connectionKey(connection);
    pool.get(key)?.close();
    pool.delete(key);
}

/** Connections and commands per host since the process started (or since `closeAll`). */
export function poolStats(): Record<string, HostStats> {
    return Object.fromEntries([...pool.entries()].map(([k, h]) => [k, { ...h.stats }]));
}

/** Closes every pooled connection (tests; the provider process simply exits). */
export function closeAll(): void {
    for (const host of pool.values()) host.close();
    pool.clear();
}
