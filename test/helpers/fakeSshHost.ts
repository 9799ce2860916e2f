/**
 * Hosts for tests that need one but no lab, all on loopback:
 * - `startFakeSshHost`: a real SSH server (ssh2's Server, the SSH implementation node-ssh itself is
 *   built on) with a throw-away host key, accepting one client key and running each command through
 *   a LocalRemote (with `etc`, in a private /etc). It counts what the tests check.
 * - `startSilentPort`: accepts TCP connections and never says a word (a hung sshd, a black hole).
 * - `closedPort`: a port nothing listens on (a host that is down refuses the connection).
 * - `startFakeDiskHost`: a FakeSshHost with a private /etc and one disk queue made of files.
 */
import * as fs from "fs";
import * as net from "net";
import * as os from "os";
import * as path from "path";
import type { Remote } from "../../resources/host/remote";
import { KeyPair, newKeyPair } from "./fixtures";
import { LocalRemote } from "./localRemote";

/* ssh2 ships no type declarations; these are the few parts of its server API used here. */
interface ParsedKey {
    type: string;
    getPublicSSH(): Buffer;
    verify(data: Buffer, signature: Buffer, hashAlgo?: string): boolean | Error;
}
interface AuthContext {
    method: string;
    key?: { algo: string; data: Buffer };
    signature?: Buffer;
    blob?: Buffer;
    hashAlgo?: string;
    accept(): void;
    reject(methods?: string[]): void;
}
interface ExecStream {
    stderr: { write(data: string): void };
    on(event: "data", cb: (d: Buffer) => void): void;
    on(event: "end" | "close", cb: () => void): void;
    on(event: "error", cb: () => void): void;
    write(data: string): void;
    exit(code: number): void;
    end(): void;
    on(event: "error", cb: () => void): void;
}
interface Session {
    on(event: "exec", cb: (accept: () => ExecStream, reject: () => void, info: { command: string }) => void): void;
}
interface ServerClient {
    on(event: "authentication", cb: (ctx: AuthContext) => void): ServerClient;
    on(event: "ready", cb: () => void): ServerClient;
    on(event: "session", cb: (accept: () => Session) => void): ServerClient;
    on(event: "error" | "close", cb: () => void): ServerClient;
    end(): void;
    /** ssh2's socket of this client (not in its API; used to cut without a goodbye). */
    _sock?: net.Socket;
}
interface Ssh2 {
    Server: new (config: { hostKeys: string[] }, onClient: (client: ServerClient) => void) => net.Server;
    utils: { parseKey(key: string): ParsedKey | Error };
}
// eslint-disable-next-line @typescript-eslint/no-require-imports
const ssh2: Ssh2 = require("ssh2");

export interface FakeSshHost {
    port: number;
    /** The host key's fingerprint, as `ssh-keygen -lf` prints it: the pin for `hostKey`. */
    hostKey: string;
    /** What the server saw: TCP connections, authentication requests, commands run. */
    stats: { connections: number; authAttempts: number; commands: number };
    /** Exec channels open now (a client that abandons a command must close its channel). */
    openChannels(): number;
    /** Stops listening and cuts every client connection: the host goes away. */
    close(): Promise<void>;
    /**
     * Drops every client's TCP connection without an SSH goodbye, as when sshd's session process
     * is killed or the host loses power: commands running on it never report an exit.
     */
    cut(): void;
}

function listen(server: net.Server, port = 0): Promise<number> {
    return new Promise((resolve, reject) => {
        server.once("error", reject);
        server.listen(port, "127.0.0.1", () => resolve((server.address() as net.AddressInfo).port));
    });
}

export interface FakeSshHostOptions {
    /** The one client key it accepts. */
    clientKey: KeyPair;
    /** Where commands run: this machine by default; a LocalRemote with `etc` keeps /etc private. */
    remote?: Remote;
    /** Its host key (a new one by default); the same key and `port` bring a host back. */
    hostKey?: KeyPair;
    port?: number;
}

export async function startFakeSshHost(opts: FakeSshHostOptions): Promise<FakeSshHost> {
    const hostKey = opts.hostKey ?? newKeyPair();
    const allowed = ssh2.utils.parseKey(opts.clientKey.publicKey);
    if (allowed instanceof Error) throw allowed;
    const remote = opts.remote ?? new LocalRemote();
    const stats = { connections: 0, authAttempts: 0, commands: 0 };
    const clients = new Set<ServerClient>();
    let channels = 0;
    const server = new ssh2.Server({ hostKeys: [hostKey.privateKey] }, (client) => {
        stats.connections++;
        clients.add(client);
        client.on("error", () => undefined);
        client.on("close", () => clients.delete(client));
        client.on("authentication", (ctx) => {
            stats.authAttempts++;
            const keyMatches = ctx.method === "publickey" && ctx.key?.algo === allowed.type && ctx.key.data.equals(allowed.getPublicSSH());
            // Without a signature the client only asks whether the key would do; with one, check it.
            if (keyMatches && (!ctx.signature || allowed.verify(ctx.blob!, ctx.signature, ctx.hashAlgo) === true)) return ctx.accept();
            ctx.reject(["publickey"]);
        });
        client.on("ready", () => {
            client.on("session", (acceptSession) => {
                acceptSession().on("exec", (accept, _reject, info) => {
                    const stream = accept();
                    stats.commands++;
                    channels++;
                    stream.on("close", () => channels--);
                    const stdin: Buffer[] = [];
                    stream.on("data", (d) => stdin.push(d));
                    // A command that ends after its connection was cut writes to a closed channel.
                    stream.on("error", () => undefined);
                    stream.on("end", () => {
                        remote
                            .exec(info.command, { stdin: Buffer.concat(stdin).toString("utf8") })
                            .catch((err: Error) => ({ stdout: "", stderr: String(err), code: 127 }))
                            .then((r) => {
                                stream.write(r.stdout);
                                stream.stderr.write(r.stderr);
                                stream.exit(r.code ?? 255);
                                stream.end();
                            })
                            // The channel may be gone (cut): nobody is left to tell.
                            .catch(() => undefined);
                    });
                });
            });
        });
    });
    const port = await listen(server, opts.port);
    return {
        port,
        hostKey: hostKey.fingerprint,
        stats,
        openChannels: () => channels,
        close: () =>
            new Promise<void>((resolve) => {
                server.close(() => resolve());
                for (const c of clients) c.end();
            }),
        cut: () => {
            for (const c of clients) c._sock?.destroy();
        },
    };
}

/** A port that accepts TCP connections and never speaks SSH (nor anything else). */
export async function startSilentPort(): Promise<{ port: number; accepted: () => number; close(): Promise<void> }> {
    const sockets = new Set<net.Socket>();
    let accepted = 0;
    const server = net.createServer((s) => {
        accepted++;
        sockets.add(s);
        s.on("error", () => undefined);
        s.on("close", () => sockets.delete(s));
    });
    const port = await listen(server);
    return {
        port,
        accepted: () => accepted,
        close: () =>
            new Promise<void>((resolve) => {
                server.close(() => resolve());
                for (const s of sockets) s.destroy();
            }),
    };
}

/** A loopback port nothing listens on: bound once to learn a free number, then released. */
export async function closedPort(): Promise<number> {
    const server = net.createServer();
    const port = await listen(server);
    await new Promise<void>((resolve) => server.close(() => resolve()));
    return port;
}

/**
 * A loopback host with a disk whose queue is a folder: a FakeSshHost whose commands run with a
 * private /etc (hostname `fakehost`) and a read-only /sys, except one real disk's `queue/`, over
 * which lies a folder of plain files (`scheduler` says `[none] mq-deadline` until a provider writes
 * another name into it; `resetQueue` puts that back). Commands that act beyond the namespace
 * (modprobe, udevadm, systemctl, update-grub) are stand-ins that do nothing. Providers run their
 * real scripts against it; nothing on this machine changes.
 */
export interface FakeDiskHost {
    ssh: FakeSshHost;
    /** The host's /etc, as a folder here. */
    etc: string;
    /** Stand-ins for commands, first on the host's PATH: a test may add its own (a fake virsh). */
    bin: string;
    /** The disk's kernel name, and the folder that stands for its queue. */
    disk: string;
    queue: string;
    /** Puts the fake queue back as it started. */
    resetQueue(): void;
    /** Stops answering (the host goes away) and comes back on the same port with the same key. */
    stop(): Promise<void>;
    start(): Promise<void>;
    /** Stops the host and removes its folders. */
    dispose(): Promise<void>;
}

/**
 * A whole disk of this machine with a scheduler and a size (an unattached loop device has size 0,
 * which a read takes for an empty drive): a real disk first, else a loop device in use. Throws
 * when there is none, so a test that needs a disk fails rather than passes without one.
 */
export function diskOfThisMachine(): string {
    const disk = fs
        .readdirSync("/sys/block")
        .filter((d) => /^(?:[sv]d[a-z]+|nvme\d+n\d+|loop\d+)$/.test(d) && fs.existsSync(`/sys/block/${d}/queue/scheduler`))
        .filter((d) => Number(fs.readFileSync(`/sys/block/${d}/size`, "utf8")) > 0)
        .sort((a, b) => Number(a.startsWith("loop")) - Number(b.startsWith("loop")) || a.localeCompare(b))[0];
    if (!disk) throw new Error("this machine has no block device with a scheduler and a size to stand in for a disk (attach a loop device: losetup -f FILE)");
    return disk;
}

/**
 * `binds`: more folders laid over paths of this machine inside the host's namespace, [folder, path]
 * (a fake SR-IOV PF over a real PCI device's sysfs folder).
 */
export async function startFakeDiskHost(clientKey: KeyPair, options: { binds?: ReadonlyArray<readonly [string, string]> } = {}): Promise<FakeDiskHost> {
    const root = fs.mkdtempSync(path.join(os.tmpdir(), "kvmtune-fakehost-"));
    const etc = path.join(root, "etc");
    const queue = path.join(root, "queue");
    fs.mkdirSync(etc);
    fs.writeFileSync(path.join(etc, "hostname"), "fakehost\n");
    fs.writeFileSync(path.join(etc, "machine-id"), "0123456789abcdef0123456789abcdef\n");
    const resetQueue = () => {
        fs.rmSync(queue, { recursive: true, force: true });
        fs.mkdirSync(path.join(queue, "iosched"), { recursive: true });
        fs.writeFileSync(path.join(queue, "scheduler"), "[none] mq-deadline\n");
        fs.writeFileSync(path.join(queue, "nr_requests"), "256\n");
        fs.writeFileSync(path.join(queue, "read_ahead_kb"), "128\n");
    };
    resetQueue();
    const bin = path.join(root, "bin");
    fs.mkdirSync(bin);
    for (const command of ["modprobe", "udevadm", "systemctl", "update-grub"]) {
        fs.writeFileSync(path.join(bin, command), "#!/bin/sh\nexit 0\n", { mode: 0o755 });
    }
    const disk = diskOfThisMachine();
    const remote = new LocalRemote({ etc, binds: [[queue, fs.realpathSync(`/sys/block/${disk}/queue`)], ...(options.binds ?? [])], pathFirst: bin });
    const hostKey = newKeyPair();
    const host: FakeDiskHost = {
        ssh: await startFakeSshHost({ clientKey, remote, hostKey }),
        etc,
        bin,
        disk,
        queue,
        resetQueue,
        stop: () => host.ssh.close(),
        start: async () => {
            host.ssh = await startFakeSshHost({ clientKey, remote, hostKey, port: host.ssh.port });
        },
        dispose: async () => {
            await host.ssh.close();
            fs.rmSync(root, { recursive: true, force: true });
        },
    };
    return host;
}
