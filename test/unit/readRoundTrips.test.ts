/**
 * Issue 10: "at most one round trip per resource when reading". Every provider's `read` (what
 * `pulumi refresh` and `preview --refresh` call once per resource) runs against a loopback SSH host
 * that counts the commands it is sent; each read must send at most one.
 */
import * as assert from "assert";
import { closeAll } from "../../resources/host/sshPool";
import { FakeDiskHost, startFakeDiskHost } from "../helpers/fakeSshHost";
import { throwawayKey } from "../helpers/fixtures";
import { PROVIDER_CASES } from "../helpers/providerCases";

interface Provider {
    check(olds: unknown, news: Record<string, unknown>): Promise<{ inputs?: Record<string, unknown>; failures?: unknown[] }>;
    read(id: string, props: Record<string, unknown>): Promise<unknown>;
}

/**
 * Inputs that make a read find something on the loopback host where it can: the fake host's disk
 * for BlockElevator (so the read resolves and reads a queue, not only learns the disk is gone).
 */
const ON_THIS_HOST: Record<string, (host: FakeDiskHost) => Record<string, unknown>> = {
    blockElevator: (host) => ({ device: host.disk }),
};

describe("every provider's read is at most one round trip", function () {
    this.timeout(180_000);
    const key = throwawayKey();
    let host: FakeDiskHost;
    const connection = () => ({ host: "127.0.0.1", port: host.ssh.port, user: "root", privateKey: key.privateKey, hostKey: host.ssh.hostKey });

    before(async () => {
        host = await startFakeDiskHost(key);
    });
    after(async () => {
        closeAll();
        await host?.dispose();
    });

    for (const [name, c] of Object.entries(PROVIDER_CASES)) {
        c.valid.forEach((inputs, n) => {
            it(`${name} (inputs ${n + 1})`, async () => {
                // eslint-disable-next-line @typescript-eslint/no-require-imports
                const provider = require(`../../resources/providers/${c.module}`).provider as Provider;
                const checked = await provider.check({}, { ...inputs, ...(ON_THIS_HOST[name]?.(host) ?? {}), connection: connection() });
                assert.strictEqual(checked.failures, undefined, JSON.stringify(checked.failures));
                // The connection is opened (and counted) by a first read; the second one is the measure.
                await provider.read(`kvmtune-read-test-${n}`, checked.inputs!).catch(() => undefined);
                const before = host.ssh.stats.commands;
                let outcome = "returned";
                await provider.read(`kvmtune-read-test-${n}`, checked.inputs!).catch((err: Error) => (outcome = `threw: ${err.message.split("\n")[0]}`));
                const sent = host.ssh.stats.commands - before;
                assert.ok(sent >= 1, `the read sent no command (${outcome}): the count would prove nothing`);
                assert.ok(sent <= 1, `the read sent ${sent} commands (${outcome}); at most 1 allowed`);
            });
        });
    }

    it("BlockElevator's read found the disk and its queue (the path that used to take two)", async () => {
        // eslint-disable-next-line @typescript-eslint/no-require-imports
        const provider = require("../../resources/providers/blockElevator").provider as Provider;
        const checked = await provider.check({}, { device: host.disk, scheduler: "mq-deadline", connection: connection() });
        const r = (await provider.read("x", checked.inputs!)) as { id: string; props: Record<string, unknown> };
        assert.strictEqual(r.id, "x");
        assert.strictEqual(r.props.kernelName, host.disk);
        // The fake queue says `[none] mq-deadline`: read from the file, not assumed.
        assert.strictEqual(r.props.activeScheduler, "none");
    });
});
