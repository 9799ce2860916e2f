/**
 * A change the field policy calls "state only" (a new connection, allowPartial, restartPolicy, ...)
 * must leave the host alone: every provider's update returns the new inputs with the old outputs,
 * without connecting. The host here is a port nothing listens on, so any command would fail.
 */
import * as assert from "assert";
import { closeAll } from "../../resources/host/sshPool";
import { PROVIDER_CASES, withConnection } from "../helpers/providerCases";

interface Provider {
    check(olds: Record<string, unknown>, news: Record<string, unknown>): Promise<{ inputs?: Record<string, unknown>; failures?: unknown[] }>;
    update(id: string, olds: Record<string, unknown>, news: Record<string, unknown>): Promise<{ outs?: Record<string, unknown> }>;
}

describe("an update of state-only fields touches nothing on the host", function () {
    this.timeout(60_000);
    after(() => closeAll());

    for (const [name, c] of Object.entries(PROVIDER_CASES).filter(([n]) => n !== "hostFacts")) {
        it(`${name}: a new connection is stored, the outputs kept, no command run`, async () => {
            // eslint-disable-next-line @typescript-eslint/no-require-imports
            const provider: Provider = require(`../../resources/providers/${c.module}`).provider;
            const checked = async (inputs: Record<string, unknown>) => {
                const r = await provider.check({}, inputs);
                assert.deepStrictEqual(r.failures ?? [], [], `${name} inputs`);
                return r.inputs as Record<string, unknown>;
            };
            const inputs = { ...c.valid[0], owner: `${name} x (kvmtune/test)` };
            const olds = { ...(await checked(withConnection(inputs, { connectTimeoutSeconds: 2 }))), readBack: "as the host had it" };
            const news = await checked(withConnection(inputs, { connectTimeoutSeconds: 2, host: "127.0.0.2", user: "tuner" }));

            const r = await provider.update("id", olds, news);
            const outs = r.outs as Record<string, unknown> & { connection: Record<string, unknown> };
            assert.strictEqual(outs.readBack, "as the host had it");
            assert.strictEqual(outs.connection.host, "127.0.0.2");
            assert.strictEqual(outs.connection.user, "tuner");
            assert.strictEqual(outs.owner, inputs.owner);

            // The same update with a new owner label must go to the host (and fails: nothing listens).
            await assert.rejects(provider.update("id", olds, { ...news, owner: `${name} y (kvmtune/test)` }), /cannot connect to tuner@127\.0\.0\.2:1/);
            // So must one whose last read found the host off what kvmtune keeps (drift).
            await assert.rejects(provider.update("id", { ...olds, drift: ["a kept file is missing"] }, news), /cannot connect to tuner@127\.0\.0\.2:1/);
        });
    }

    it("numaPinnedGuest: restartPolicy turned to restart while changes wait for a restart goes to the host (it restarts the guest)", async () => {
        // eslint-disable-next-line @typescript-eslint/no-require-imports
        const provider: Provider = require("../../resources/providers/numaPinnedGuest").provider;
        const c = PROVIDER_CASES.numaPinnedGuest;
        const inputs = { ...c.valid[0], owner: "NumaPinnedGuest x (kvmtune/test)" };
        const olds = (await provider.check({}, withConnection({ ...inputs, restartPolicy: "never" }, { connectTimeoutSeconds: 2, host: "127.0.0.2", user: "tuner" }))).inputs!;
        const news = (await provider.check({}, withConnection({ ...inputs, restartPolicy: "restart" }, { connectTimeoutSeconds: 2, host: "127.0.0.2", user: "tuner" }))).inputs!;
        assert.ok((await provider.update("id", { ...olds, pendingRestart: [] }, news)).outs, "with nothing pending it is state only");
        await assert.rejects(provider.update("id", { ...olds, pendingRestart: ["memoryMiB"] }, news), /cannot connect to tuner@127\.0\.0\.2:1/);
    });
});
