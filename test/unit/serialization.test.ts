/**
 * Pulumi stores each dynamic resource's provider as serialized JavaScript and runs that copy for
 * delete and refresh. Each provider must survive serializeFunction and still work after it.
 */
import * as assert from "assert";
import * as pulumi from "@pulumi/pulumi";
import { lazyProvider } from "../../resources/lazyProvider";
import { goodConnection, leakedPiece, secretPieces, throwawayKey } from "../helpers/fixtures";
import { PROVIDER_CASES } from "../helpers/providerCases";
// eslint-disable-next-line @typescript-eslint/no-require-imports
const requireFromString: (code: string) => { handler: () => pulumi.dynamic.ResourceProvider } = require("require-from-string");

describe("provider serialization", function () {
    // The first test loads the providers and zod: seconds on a loaded machine.
    this.timeout(30_000);
    const pieces = secretPieces(throwawayKey().privateKey);
    for (const [name, c] of Object.entries(PROVIDER_CASES)) {
        const valid = c.valid[0];
        it(`${name}: serializes small, without zod or keys, and checks after deserialization`, async () => {
            const shim = lazyProvider(`kvmtune/providers/${c.module}`);
            // Used first, with the key: a provider that kept anything from a call would now hold it.
            assert.strictEqual((await shim.check!({}, { ...valid, connection: goodConnection() })).failures, undefined);
            // Stored twice in every resource's state (inputs and outputs): keep it near 2 KB.
            const serialized = await pulumi.runtime.serializeFunction(() => shim, { allowSecrets: false });
            assert.ok(serialized.text.length < 2400, `serialized provider is ${serialized.text.length} bytes`);
            assert.ok(!/zod|node-ssh|ssh2/.test(serialized.text), "heavy modules captured in the provider closure");
            assert.strictEqual(leakedPiece(serialized.text, pieces), undefined, "the private key is in the serialized provider");

            // Exactly what the dynamic provider host does with the stored text.
            const revived = requireFromString(serialized.text).handler();
            const bad = await revived.check!({}, { ...valid, connection: goodConnection({ port: 0 }) });
            assert.deepStrictEqual(bad.failures?.map((f) => f.property), ["connection.port"]);
            const good = await revived.check!({}, { ...valid, connection: goodConnection() });
            assert.strictEqual(good.failures, undefined);
        });
    }

    it("gives every resource of a type the same provider object, so the SDK serializes it once per type", () => {
        // @pulumi/pulumi caches serialized providers by object identity (dynamic/index.js).
        for (const c of Object.values(PROVIDER_CASES)) {
            assert.strictEqual(lazyProvider(`kvmtune/providers/${c.module}`), lazyProvider(`kvmtune/providers/${c.module}`), c.module);
        }
        assert.notStrictEqual(lazyProvider("kvmtune/providers/hostFacts"), lazyProvider("kvmtune/providers/blockElevator"));
    });
});
