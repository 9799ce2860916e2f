/**
 * Pulumi stores each dynamic resource's provider as JavaScript text (`__provider`, in the inputs and
 * again in the outputs) and runs that copy for delete and refresh: the Node.js dynamic provider
 * host loads it with require-from-string and calls `handler()`. Each provider's text must load that
 * way and reach the real provider; texts stored by older kvmtune versions must still work.
 */
import * as assert from "assert";
import * as fs from "fs";
import * as path from "path";
import * as pulumi from "@pulumi/pulumi";
import { BlockElevator } from "../../resources";
import { PROVIDER_METHODS, providerText } from "../../resources/lazyProvider";
import { goodConnection, leakedPiece, secretPieces, throwawayKey } from "../helpers/fixtures";
import { PROVIDER_CASES } from "../helpers/providerCases";
// eslint-disable-next-line @typescript-eslint/no-require-imports
const requireFromString: (code: string) => { handler: () => pulumi.dynamic.ResourceProvider } = require("require-from-string");

const repo = path.resolve(__dirname, "..", "..", "..");
const fixture = (name: string) => fs.readFileSync(path.join(repo, "test", "unit", "fixtures", name), "utf8");

/**
 * Texts older kvmtune versions stored (module id blockElevator): the per-method import() text of
 * be2fe0a, and, as the SDK serialized them, the closure of one shared shim object per type (c09fd42 up to issue 17's state work, taken from a
 * bench stack's export), and the shim whose methods shared a loader function (before c09fd42).
 */
const OLD_TEXTS = {
    "per-method import() (be2fe0a, before the text shrank to one require)": fixture("provider-import-be2fe0a.txt"),
    "shared shim (before issue 17's state work)": fixture("provider-before-issue17.txt"),
    "shim with a loader function (before c09fd42)": fixture("provider-before-c09fd42.txt"),
};

/** What the provider host does with the stored text (cmd/dynamic-provider/index.js getProvider). */
const revive = (text: string) => requireFromString(text).handler();

describe("provider serialization", function () {
    // The first test loads the providers and zod: seconds on a loaded machine.
    this.timeout(30_000);
    const pieces = secretPieces(throwawayKey().privateKey);
    for (const [name, c] of Object.entries(PROVIDER_CASES)) {
        const valid = c.valid[0];
        const moduleId = `kvmtune/providers/${c.module}`;
        it(`${name}: its stored text is small, holds no key, and checks after the provider host loads it`, async () => {
            const text = providerText(moduleId);
            // Stored twice in every resource's state (inputs and outputs); the serialized closure was
            // 2.4 KB, the per-method import() text 275 bytes.
            assert.ok(text.length < 140, `stored provider text is ${text.length} bytes`);
            assert.ok(!/zod|node-ssh|ssh2/.test(text), "heavy modules in the provider text");
            assert.strictEqual(leakedPiece(text, pieces), undefined, "the private key is in the provider text");

            const revived = revive(text);
            assert.deepStrictEqual(Object.keys(revived).sort(), [...PROVIDER_METHODS].sort());
            const bad = await revived.check!({}, { ...valid, connection: goodConnection({ port: 0 }) });
            assert.deepStrictEqual(bad.failures?.map((f) => f.property), ["connection.port"]);
            const good = await revived.check!({}, { ...valid, connection: goodConnection() });
            assert.strictEqual(good.failures, undefined);
        });

        for (const [version, old] of Object.entries(OLD_TEXTS)) {
            it(`${name}: the text a stack from an older kvmtune holds still loads and checks (${version})`, async () => {
                // Delete and refresh run the text in the outputs, which an update has not rewritten yet.
                const revived = revive(old.split("kvmtune/providers/blockElevator").join(moduleId));
                const bad = await revived.check!({}, { ...valid, connection: goodConnection({ port: 0 }) });
                assert.deepStrictEqual(bad.failures?.map((f) => f.property), ["connection.port"]);
            });
        }
    }

    it("calls the provider's method of the same name with the arguments the host passed", async () => {
        // A stand-in provider module that answers with its method's name and arguments.
        const dir = fs.mkdtempSync(path.join(require("os").tmpdir(), "kvmtune-shim-"));
        try {
            const file = path.join(dir, "recording.js");
            fs.writeFileSync(
                file,
                `exports.provider = Object.fromEntries(${JSON.stringify(PROVIDER_METHODS)}.map((k) => [k, async function (...args) { return { method: k, args, self: this === exports.provider }; }]));\n`,
            );
            const revived = revive(providerText(file)) as unknown as Record<string, (...a: unknown[]) => Promise<unknown>>;
            for (const [i, method] of PROVIDER_METHODS.entries()) {
                const args = ["id-" + i, { n: i }, { m: i }].slice(0, 1 + (i % 3));
                assert.deepStrictEqual(await revived[method](...args), { method, args, self: true }, method);
            }
        } finally {
            fs.rmSync(dir, { recursive: true, force: true });
        }
    });

    it("registers a dynamic resource of kvmtune's type with the provider text as __provider", async () => {
        const registered: pulumi.runtime.MockResourceArgs[] = [];
        pulumi.runtime.setMocks(
            {
                newResource: (args) => {
                    registered.push(args);
                    return { id: `${args.name}-id`, state: args.inputs };
                },
                call: () => ({}),
            },
            "kvmtune",
            "unit",
            true,
        );
        const e = new BlockElevator("e", { connection: goodConnection() as never, device: "vdb", scheduler: "none" });
        await new Promise<void>((resolve) => e.urn.apply(() => resolve()));
        const r = registered.find((a) => a.name === "e")!;
        assert.strictEqual(r.type, "pulumi-nodejs:dynamic/kvmtune:BlockElevator");
        assert.strictEqual(r.inputs.__provider, providerText("kvmtune/providers/blockElevator"));
    });
});
