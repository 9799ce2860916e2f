/**
 * The owner label every provider method works under (resources/providers/owner.ts): it names the
 * resource in file headers, claims and guest marks, so a wrong one refuses the resource its own knob.
 */
import * as assert from "assert";
import { resourceOwner } from "../../resources/providers/owner";

describe("the owner label a provider works under", () => {
    const label = "HugepagePool lab1-hugepages-2M (kvmtune/lab)";

    it("is the label the resource passed", () => {
        assert.strictEqual(resourceOwner("HugepagePool", undefined, { owner: label }), label);
        assert.strictEqual(resourceOwner("HugepagePool", undefined, { owner: label }, { owner: "HugepagePool" }), label);
    });

    it("on an update without one, is the old state's label, never the text undefined", () => {
        assert.strictEqual(resourceOwner("SriovNic", "enp33s0", {}, { owner: label }), label);
        assert.strictEqual(resourceOwner("SriovNic", "enp33s0", { owner: undefined }, {}), "SriovNic enp33s0");
        assert.strictEqual(resourceOwner("SriovNic", "enp33s0", { owner: "" }, { owner: null }), "SriovNic enp33s0");
    });

    it("without any, is the kind and name kvmtune labelled a resource with before labels named the stack", () => {
        assert.strictEqual(resourceOwner("BlockElevator", undefined, {}), "BlockElevator");
        assert.strictEqual(resourceOwner("NumaPinnedGuest", "db1", {}), "NumaPinnedGuest db1");
    });
});
