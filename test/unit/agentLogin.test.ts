/**
 * Logging in through the SSH agent (connection.agent: true) against a loopback SSH server, with a
 * real OpenSSH agent: the key never passes through kvmtune's inputs, so no form of it reaches the
 * state. What a user meets when the agent is missing or holds the wrong key.
 */
import * as assert from "assert";
import { connectionSchema } from "../../resources/host/connection";
import { ConnectError } from "../../resources/host/errors";
import { run } from "../../resources/host/remote";
import { closeAll, loginOf, remoteFor } from "../../resources/host/sshPool";
import { secretConnection } from "../../resources/connectionInput";
import { FakeSshHost, startFakeSshHost } from "../helpers/fakeSshHost";
import { newKeyPair, throwawayKey } from "../helpers/fixtures";
import { SshAgent, startSshAgent } from "../helpers/sshAgent";

describe("SSH login through the agent (connection.agent)", function () {
    this.timeout(60_000);
    const key = throwawayKey();
    let host: FakeSshHost;
    let agent: SshAgent | undefined;
    const saved = process.env.SSH_AUTH_SOCK;
    const agentConnection = () => connectionSchema.parse({ host: "127.0.0.1", port: host.port, agent: true, hostKey: host.hostKey, connectTimeoutSeconds: 5 });

    beforeEach(async () => {
        host = await startFakeSshHost({ clientKey: key });
    });
    afterEach(async () => {
        closeAll();
        await host.close();
        await agent?.stop();
        agent = undefined;
        if (saved === undefined) delete process.env.SSH_AUTH_SOCK;
        else process.env.SSH_AUTH_SOCK = saved;
    });

    it("runs commands with the agent's key; the connection holds no key at all", async () => {
        agent = await startSshAgent([key.privateKey]);
        process.env.SSH_AUTH_SOCK = agent.socket;
        const c = agentConnection();
        assert.deepStrictEqual(Object.keys(c).sort(), ["agent", "connectTimeoutSeconds", "host", "hostKey", "port", "sudo", "user"]);
        assert.strictEqual(await run(remoteFor(c), "echo through-the-agent"), "through-the-agent\n");
        assert.strictEqual(host.stats.connections, 1);
        // What a program passes is left as it is: nothing to make secret.
        assert.deepStrictEqual(secretConnection({ host: "h", hostKey: "k", agent: true }), { host: "h", hostKey: "k", agent: true });
    });

    it("an agent without the host's key: one attempt, and the error says whose keys were tried", async () => {
        agent = await startSshAgent([newKeyPair().privateKey]);
        process.env.SSH_AUTH_SOCK = agent.socket;
        await assert.rejects(run(remoteFor(agentConnection()), "true"), (err: Error) => {
            assert.ok(err instanceof ConnectError, String(err));
            assert.strictEqual(err.attempts, 1);
            assert.ok(err.message.includes(`the SSH agent at ${agent!.socket}`), err.message);
            assert.match(err.message, /ssh-add -l/);
            return true;
        });
    });

    it("no SSH_AUTH_SOCK: refused before any socket opens, saying what to do", async () => {
        delete process.env.SSH_AUTH_SOCK;
        await assert.rejects(run(remoteFor(agentConnection()), "true"), /connection\.agent is true, but SSH_AUTH_SOCK is not set where Pulumi runs[\s\S]*ssh-agent[\s\S]*ssh-add KEYFILE/);
        assert.strictEqual(host.stats.connections, 0);
        assert.deepStrictEqual(loginOf({ privateKey: "K" }, "h", {}), { privateKey: "K" });
    });

    it("takes exactly one way to log in, naming the field", () => {
        const base = { host: "127.0.0.1", hostKey: "SHA256:" + "A".repeat(43) };
        const issues = (c: object) => {
            const r = connectionSchema.safeParse(c);
            return r.success ? [] : r.error.issues.map((i) => `${i.path.join(".")}: ${i.message}`);
        };
        assert.deepStrictEqual(issues(base), ["privateKey: set privateKey (the key text, as a secret) or agent: true (the SSH agent at $SSH_AUTH_SOCK where Pulumi runs)"]);
        assert.deepStrictEqual(issues({ ...base, agent: true, privateKey: key.privateKey }), ["agent: use privateKey or agent, not both (agent: true keeps the key out of state)"]);
        assert.deepStrictEqual(issues({ ...base, agent: false }), ["agent: must be true (or left out, with privateKey set)"]);
        assert.deepStrictEqual(issues({ ...base, agent: true }), []);
    });
});
