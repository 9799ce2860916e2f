/**
 * The SSH transport against loopback stand-ins, no lab: a real SSH server with its own host key
 * (test/helpers/fakeSshHost.ts), a port that accepts TCP and never speaks, a port nothing listens
 * on. Each case is what a user meets when a host is wrong, hung or down.
 */
import * as assert from "assert";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { Connection, connectionSchema } from "../../resources/host/connection";
import { CommandTimeoutError, ConnectError, ConnectionLostError, HostKeyMismatchError, RemoteCommandError } from "../../resources/host/errors";
import { run, runScript } from "../../resources/host/remote";
import { closeAll, remoteFor } from "../../resources/host/sshPool";
import type { TraceLine } from "../../resources/host/trace";
import { closedPort, FakeSshHost, startFakeSshHost, startSilentPort } from "../helpers/fakeSshHost";
import { leakedPiece, newKeyPair, secretPieces, throwawayKey } from "../helpers/fixtures";
// Apart from the imports above, which other work on the transport also extends.

/** Slack for the event loop on a loaded 2-core machine, on top of connectTimeoutSeconds. */
/**
 * Every attempt's allowance ends by the connect timeout: what the code granted, read from the error,
 * not a stopwatch (a loaded machine must not fail this, and a wrong budget must).
 */
function assertWithinBudget(err: ConnectError, budgetMs: number): void {
    assert.strictEqual(err.windows?.length, err.attempts);
    for (const w of err.windows!) assert.ok(w.untilMs <= budgetMs + 1, `attempt allowed until ${w.untilMs} ms of ${budgetMs}`);
}

describe("SSH transport on loopback", function () {
    this.timeout(60_000);
    const key = throwawayKey();
    const pieces = secretPieces(key.privateKey);
    let host: FakeSshHost;
    const connection = (overrides: Partial<Connection> = {}): Connection =>
        connectionSchema.parse({ host: "127.0.0.1", port: host.port, user: "root", privateKey: key.privateKey, hostKey: host.hostKey, ...overrides });

    beforeEach(async () => {
        host = await startFakeSshHost({ clientKey: key });
    });
    afterEach(async () => {
        closeAll();
        await host.close();
    });

    it("runs a command on the host whose key matches the pin", async () => {
        assert.strictEqual(await run(remoteFor(connection()), "echo pinned"), "pinned\n");
        assert.deepStrictEqual(host.stats, { connections: 1, authAttempts: host.stats.authAttempts, commands: 1 });
        assert.ok(host.stats.authAttempts >= 1);
    });

    it("a command past its deadline fails naming host, command and timeout, and the connection serves the next commands", async () => {
        const remote = remoteFor(connection());
        // As many hung commands as the connection has channels: each must give its channel back.
        const hung = Array.from({ length: 8 }, (_x, n) => run(remote, `sleep 4; echo late${n}`, { timeoutSeconds: 1 }));
        for (const [n, p] of hung.entries()) {
            await assert.rejects(p, (err: Error) => {
                assert.ok(err instanceof CommandTimeoutError, String(err));
                assert.strictEqual(
                    err.message,
                    `command timed out on root@127.0.0.1:${host.port} after 1 s (its channel was closed; the command may still be running there): sleep 4; echo late${n}`,
                );
                return true;
            });
        }
        assert.strictEqual(await run(remote, "echo after"), "after\n");
        assert.strictEqual(host.stats.connections, 1, "the timed-out commands cost the connection");
        // The server saw every abandoned channel closed (sshd counts open ones against MaxSessions);
        // the hung commands themselves run 4 s, so an open channel would still be open now.
        for (let n = 0; n < 50 && host.openChannels() > 0; n++) await new Promise((r) => setTimeout(r, 20));
        assert.strictEqual(host.openChannels(), 0, "channels left open on the server");
    });

    it("refuses a host presenting another key before sending any credential, naming both keys, without retrying", async () => {
        const pin = newKeyPair().fingerprint;
        await assert.rejects(run(remoteFor(connection({ hostKey: pin })), "echo never"), (err: Error) => {
            assert.ok(err instanceof HostKeyMismatchError, String(err));
            assert.ok(err.message.includes(pin) && err.message.includes(host.hostKey), err.message);
            assert.match(err.message, new RegExp(`127\\.0\\.0\\.1:${host.port}`));
            // What to do about a host that was reinstalled: check the key out of band, set hostKey.
            assert.match(err.message, /check the new key out of band \(on its console: ssh-keygen -lf \/etc\/ssh\/ssh_host_ed25519_key\.pub\), set it as hostKey/);
            return true;
        });
        // No trust on first use, and no credential offered to an impostor.
        assert.deepStrictEqual(host.stats, { connections: 1, authAttempts: 0, commands: 0 });
    });

    it("a connection without a usable pin never opens a socket (the schema refuses it first)", async () => {
        assert.throws(() => connection({ hostKey: undefined }), /hostKey/);
        // Past the schema (state written by hand, say), connect refuses it before any TCP connection.
        const unpinned = { ...connection(), hostKey: "" };
        await assert.rejects(run(remoteFor(unpinned), "true"), /hostKey of root@127\.0\.0\.1:\d+: hostKey must be a SHA256 fingerprint/);
        assert.strictEqual(host.stats.connections, 0);
    });

    it("a host that is down: a connect error naming host:port within connectTimeoutSeconds", async () => {
        const port = await closedPort();
        await assert.rejects(run(remoteFor(connection({ port, connectTimeoutSeconds: 2 })), "true"), (err: Error) => {
            assert.ok(err instanceof ConnectError, String(err));
            assert.match(err.message, new RegExp(`cannot connect to root@127\\.0\\.0\\.1:${port} after \\d attempt\\(s\\) in \\d+\\.\\d s: .*ECONNREFUSED`));
            // Refused at once, so there was time to retry once after a 1 s back-off, not after 2 s more.
            assert.strictEqual(err.attempts, 2);
            assertWithinBudget(err, 2000);
            return true;
        });
    });

    it("a port that accepts TCP but never speaks SSH: a connect error within connectTimeoutSeconds", async () => {
        const silent = await startSilentPort();
        try {
            await assert.rejects(run(remoteFor(connection({ port: silent.port, connectTimeoutSeconds: 3 })), "true"), (err: Error) => {
                assert.ok(err instanceof ConnectError, String(err));
                assert.match(err.message, new RegExp(`root@127\\.0\\.0\\.1:${silent.port} after 1 attempt\\(s\\) in \\d+\\.\\d s: Timed out while waiting for handshake`));
                // The one attempt was given the whole timeout, and no more.
                assert.deepStrictEqual(err.windows?.map((w) => w.untilMs), [3000]);
                return true;
            });
            assert.strictEqual(silent.accepted(), 1, "the whole timeout went to one attempt; no second connection");
        } finally {
            await silent.close();
        }
    });

    it("a key the client cannot parse: one attempt, and the error quotes none of it", async () => {
        const [begin, ...rest] = key.privateKey.split("\n");
        // The right framing, a damaged body: still secret material the error must not repeat.
        const damaged = [begin, ...rest.map((l) => (l.startsWith("-----") || !l ? l : l.split("").reverse().join("")))].join("\n");
        await assert.rejects(run(remoteFor(connection({ privateKey: damaged })), "true"), (err: Error) => {
            assert.ok(err instanceof ConnectError, String(err));
            assert.strictEqual(err.attempts, 1);
            assert.strictEqual(leakedPiece(err.message + JSON.stringify(err), secretPieces(damaged)), undefined, err.message);
            return true;
        });
        assert.strictEqual(host.stats.authAttempts, 0);
    });

    it("a connection cut mid-command says the connection was lost, in which step, and to run pulumi up again", async () => {
        const remote = remoteFor(connection());
        const script = "touch /dev/null # write the udev rule\nsleep 3\necho the-rest-of-the-script";
        const running = runScript(remote, script, { privileged: false });
        // Cut once the host runs the command: the session dies as it does when sshd's process is killed.
        while (host.stats.commands === 0) await new Promise((r) => setTimeout(r, 20));
        host.cut();
        await assert.rejects(running, (err: Error) => {
            assert.ok(err instanceof ConnectionLostError, String(err.message));
            assert.strictEqual(
                err.message,
                `the connection to root@127.0.0.1:${host.port} was lost during the step \`touch /dev/null # write the udev rule …\`; ` +
                    `it may or may not have finished on the host. Run \`pulumi up\` again once root@127.0.0.1:${host.port} answers SSH: ` +
                    "kvmtune reads the host first and resumes from its claims (the values it recorded before changing anything).",
            );
            // The step by its first line, not the script.
            assert.ok(!err.message.includes("the-rest-of-the-script"), err.message);
            return true;
        });
        // The pool forgot the cut connection: the next command connects again.
        assert.strictEqual(await run(remote, "echo again"), "again\n");
        assert.strictEqual(host.stats.connections, 2);
    });

    it("a failed command names host, command, exit code and stderr, and never the key", async () => {
        await assert.rejects(run(remoteFor(connection()), "echo oops >&2; exit 9"), (err: Error) => {
            assert.ok(err instanceof RemoteCommandError, String(err));
            assert.match(err.message, new RegExp(`command failed on root@127\\.0\\.0\\.1:${host.port} \\(exit 9\\): echo oops >&2; exit 9\\nstderr: oops`));
            assert.strictEqual(leakedPiece(err.message + JSON.stringify(err) + String(err.stack), pieces), undefined);
            return true;
        });
    });

    it("with KVMTUNE_TRACE set, every command adds a line: host, step, waits and run time, exit code; never the key", async () => {
        const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), "kvmtune-trace-")), "trace.jsonl");
        process.env.KVMTUNE_TRACE = file;
        try {
            const remote = remoteFor(connection());
            await runScript(remote, "# read the pools\nsleep 0.3; echo a");
            await run(remote, "exit 3").catch(() => undefined);
        } finally {
            delete process.env.KVMTUNE_TRACE;
        }
        const lines = fs.readFileSync(file, "utf8").trim().split("\n").map((l) => JSON.parse(l) as TraceLine);
        assert.deepStrictEqual(lines.map((l) => [l.host, l.step, l.code]), [
            [`root@127.0.0.1:${host.port}`, "read the pools …", 0],
            [`root@127.0.0.1:${host.port}`, "exit 3", 3],
        ]);
        assert.ok(lines[0].runMs >= 300, `the sleeping script ran ${lines[0].runMs} ms`);
        assert.strictEqual(leakedPiece(fs.readFileSync(file, "utf8"), pieces), undefined);
        // Unset, nothing is written.
        await run(remoteFor(connection()), "echo quiet");
        assert.strictEqual(fs.readFileSync(file, "utf8").trim().split("\n").length, 2);
    });
});
