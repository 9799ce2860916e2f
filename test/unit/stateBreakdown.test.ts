/**
 * bench/scale/stateBreakdown.ts counts a resource's bytes as `pulumi stack export` lays them out
 * (four-space indentation, the resource at depth 3), so per-type figures add up to the export's size.
 */
import * as assert from "assert";
import { breakdown, indentedBytes } from "../../bench/scale/stateBreakdown";

/** An export as the CLI writes it: Go's MarshalIndent with four spaces is JSON.stringify's layout. */
const exportOf = (resources: unknown[]) => JSON.stringify({ version: 3, deployment: { manifest: { version: "v3.274.1" }, resources } }, null, 4);

describe("stateBreakdown (bench/scale)", () => {
    const elevator = (n: number) => ({
        urn: `urn:pulumi:bench::p::pulumi-nodejs:dynamic/kvmtune:BlockElevator::e${n}`,
        custom: true,
        type: "pulumi-nodejs:dynamic/kvmtune:BlockElevator",
        inputs: { __provider: "exports.handler = () => ({});\n", connection: { host: "127.0.0.1", port: 22, privateKey: { "4dabf18193072939515e22adb298388d": "1b47061264138c4ac30d75fd1eb44270", ciphertext: "v1:abc" } }, tunables: { read_expire: 100 } },
        outputs: { __provider: "exports.handler = () => ({});\n", scheduler: "mq-deadline", queues: ["vdb"] },
        stackTrace: { frames: [{ sourcePosition: "project:///index.ts#1,1" }, {}] },
    });
    const facts = { urn: "urn:pulumi:bench::p::pulumi-nodejs:dynamic/kvmtune:HostFacts::f", custom: true, type: "pulumi-nodejs:dynamic/kvmtune:HostFacts", outputs: { facts: { numaNodes: [{ id: 0, cpus: [0, 1] }] } } };

    it("gives each resource the bytes it adds to the export", () => {
        const one = exportOf([facts]);
        const three = exportOf([facts, elevator(1), elevator(2)]);
        const b = breakdown(three);
        assert.strictEqual(b.BlockElevator.count, 2);
        assert.strictEqual(b.BlockElevator.bytesEach * 2, Buffer.byteLength(three) - Buffer.byteLength(one));
        assert.strictEqual(b.HostFacts.bytesEach, Buffer.byteLength(exportOf([facts, elevator(1)])) - Buffer.byteLength(exportOf([elevator(1)])));
    });

    it("splits a resource by top-level field, inputs and outputs apart", () => {
        const b = breakdown(exportOf([elevator(1)])).BlockElevator;
        assert.ok(b.fields["inputs.__provider"] > 0 && b.fields["outputs.__provider"] === b.fields["inputs.__provider"]);
        assert.ok(b.fields["inputs.connection"] > b.fields["outputs.scheduler"]);
        assert.ok(b.fields["meta.stackTrace"] > 0 && b.fields["meta.urn"] > 0);
        // Within the braces and separators of the inputs and outputs objects, the fields are the whole resource.
        const sum = Object.values(b.fields).reduce((x, y) => x + y, 0);
        assert.ok(sum <= b.bytesEach && b.bytesEach - sum < 200, `fields ${sum}, resource ${b.bytesEach}`);
    });

    it("counts nested values with the indentation of their depth", () => {
        assert.strictEqual(indentedBytes({ a: [1] }, 0), JSON.stringify({ a: [1] }, null, 4).length);
        // Four lines after the first, each indented 8 more at depth 2.
        assert.strictEqual(indentedBytes({ a: [1] }, 2) - indentedBytes({ a: [1] }, 0), 4 * 8);
    });
});
