/**
 * Hosts for tests that need one but no lab, all on loopback:
 * - `startFakeSshHost`: a real SSH server (ssh2's Server, the SSH implementation node-ssh itself is
 *   built on) with a throw-away host key, accepting one client key and running each command through
 *   a LocalRemote (with `etc`, in a private /etc). It counts what the tests check.
 * - `startSilentPort`: accepts TCP connections and never says a word (a hung sshd, a black hole).
 * - `closedPort`: a port nothing listens on (a host that is down refuses the connection).
 */
import * as net from "net";
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
    on(event: "end", cb: () => void): void;
    write(data: string): void;
    exit(code: number): void;
    end(): void;
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
    /** Stops listening and cuts every client connection: the host goes away. */
    close(): Promise<void>;
}

function listen(server: net.Server): Promise<number> {
    return new Promise((resolve, reject) => {
        server.once("error", reject);
        server.listen(0, "127.0.0.1", () => resolve((server.address() as net.AddressInfo).port));
    });
}

export async function startFakeSshHost(opts: { clientKey: KeyPair; remote?: Remote; hostKey?: KeyPair }): Promise<FakeSshHost> {
    const hostKey = opts.hostKey ?? newKeyPair();
    const allowed = ssh2.utils.parseKey(opts.clientKey.publicKey);
    if (allowed instanceof Error) throw allowed;
    const remote = opts.remote ?? new LocalRemote();
    const stats = { connections: 0, authAttempts: 0, commands: 0 };
    const clients = new Set<ServerClient>();
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
                    const stdin: Buffer[] = [];
                    stream.on("data", (d) => stdin.push(d));
                    stream.on("end", () => {
                        remote
                            .exec(info.command, { stdin: Buffer.concat(stdin).toString("utf8") })
                            .catch((err: Error) => ({ stdout: "", stderr: String(err), code: 127 }))
                            .then((r) => {
                                stream.write(r.stdout);
                                stream.stderr.write(r.stderr);
                                stream.exit(r.code ?? 255);
                                stream.end();
                            });
                    });
                });
            });
        });
    });
    const port = await listen(server);
    return {
        port,
        hostKey: hostKey.fingerprint,
        stats,
        close: () =>
            new Promise<void>((resolve) => {
                server.close(() => resolve());
                for (const c of clients) c.end();
            }),
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
