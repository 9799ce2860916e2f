/** The check/diff plumbing every provider shares: unknowns during preview, strays, owner. */
import * as assert from "assert";
import { provider as pool } from "../../resources/providers/hugepagePool";
import { stateOf } from "../../resources/state";
import { UNKNOWN } from "../../resources/validate";
import { goodConnection } from "../helpers/fixtures";

describe("provider check and diff plumbing", () => {
    it("lets a value computed by another resource pass check during preview", async () => {
        const r = await pool.check({}, { connection: goodConnection(), pageSize: "2M", nodes: { "0": UNKNOWN } });
        assert.strictEqual(r.failures, undefined);
    });

    it("still refuses the known fields beside an unknown one", async () => {
        const r = await pool.check({}, { connection: goodConnection({ port: 0 }), pageSize: "2M", nodes: { "0": UNKNOWN } });
        assert.deepStrictEqual(r.failures?.map((f) => f.property), ["connection.port"]);
    });

    it("ignores the engine's __provider and keeps the owner label", async () => {
        const r = await pool.check({}, { __provider: "x", owner: "HugepagePool p", connection: goodConnection(), pageSize: "2M", total: 4 });
        assert.strictEqual(r.failures, undefined);
        assert.strictEqual(r.inputs.owner, "HugepagePool p");
        assert.strictEqual(r.inputs.__provider, undefined);
    });

    it("diffs an unknown replace field as a replacement", async () => {
        const olds = { connection: goodConnection(), pageSize: "2M", total: 4, pools: {}, owner: "x" };
        const d = await pool.diff("id", olds, { ...olds, pageSize: UNKNOWN });
        assert.deepStrictEqual(d.replaces, ["pageSize"]);
        const same = await pool.diff("id", olds, { connection: goodConnection(), pageSize: "2M", total: 4, owner: "x" });
        assert.strictEqual(same.changes, false, "outputs stored beside the inputs must not count as changes");
    });
});

describe("provider state", () => {
    it("drops undefined values, which protobuf's Struct refuses", () => {
        // eslint-disable-next-line @typescript-eslint/no-require-imports
        const { Struct } = require("google-protobuf/google/protobuf/struct_pb");
        const raw = { a: undefined, b: { c: undefined, d: 1 }, e: [{ f: undefined, g: "x" }] };
        assert.throws(() => Struct.fromJavaScript(raw), /Unexpected struct type/);
        const clean = stateOf(raw);
        assert.deepStrictEqual(clean, { b: { d: 1 }, e: [{ g: "x" }] });
        assert.doesNotThrow(() => Struct.fromJavaScript(clean));
    });
});
