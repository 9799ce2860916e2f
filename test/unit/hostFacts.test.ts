/**
 * HostFacts' read against a loopback host: the same host reads back under its id; a host that was
 * reinstalled (a new machine id, the same pinned host key) is gone to refresh, so the same `up`
 * reads it anew instead of failing every refresh.
 */
import * as assert from "assert";
import * as fs from "fs";
import * as path from "path";
import { closeAll } from "../../resources/host/sshPool";
import { provider } from "../../resources/providers/hostFacts";
import { FakeDiskHost, startFakeDiskHost } from "../helpers/fakeSshHost";
import { throwawayKey } from "../helpers/fixtures";
import { stderrOf } from "../helpers/stderr";

describe("HostFacts read (a loopback host)", function () {
    this.timeout(120_000);
    const key = throwawayKey();
    let host: FakeDiskHost;

    before(async () => {
        host = await startFakeDiskHost(key);
    });
    after(async () => {
        closeAll();
        await host?.dispose();
    });

    it("keeps its id while the host is the same, and calls a reinstalled host (new machine id, same key) gone, with a warning", async () => {
        const connection = { host: "127.0.0.1", port: host.ssh.port, user: "root", privateKey: key.privateKey, hostKey: host.ssh.hostKey };
        const created = await provider.create({ connection });
        assert.strictEqual(created.id, "fakehost/0123456789abcdef0123456789abcdef");
        const same = await provider.read(created.id, created.outs!);
        assert.strictEqual(same.id, created.id);
        assert.strictEqual((same.props as { facts: { hostname: string } }).facts.hostname, "fakehost");
        // The facts are stored once: the class reads hostname, numaNodes, ... out of `facts` (issue 17).
        assert.deepStrictEqual(Object.keys(created.outs!).sort(), ["connection", "facts"]);
        assert.deepStrictEqual(Object.keys(same.props!).sort(), ["connection", "facts"]);

        fs.writeFileSync(path.join(host.etc, "machine-id"), "fedcba9876543210fedcba9876543210\n");
        let read: Awaited<ReturnType<typeof provider.read>> | undefined;
        const warning = await stderrOf(async () => (read = await provider.read(created.id, created.outs!)));
        assert.deepStrictEqual(read, { id: "", props: {} }, "a reinstalled host's old facts were kept");
        assert.match(warning, /HostFacts fakehost\/0123456789abcdef0123456789abcdef: the host now has machine id fakehost\/fedcba9876543210fedcba9876543210 under the same pinned host key/);
    });
});
