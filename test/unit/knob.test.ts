/**
 * The knob lifecycle every provider shares (resources/host/knob.ts), against claims in a private
 * /etc (a LocalRemote in a mount namespace, as root): the original a retried create restores, what
 * a failed create leaves behind, and a delete of a knob that is another owner's now.
 */
import * as assert from "assert";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { claimKnob, KnobClaim } from "../../resources/host/claims";
import { createKnob, deleteKnob } from "../../resources/host/knob";
import { LocalRemote } from "../helpers/localRemote";

describe("the knob lifecycle", function () {
    this.timeout(30_000);
    let etc: string;
    let remote: LocalRemote;
    const claimFile = () => path.join(etc, "kvmtune", "claims", "test-knob");
    const claim = (owner: string, original?: unknown): KnobClaim & { original: unknown } => ({ knob: "test-knob", what: "the test knob", owner, original });

    beforeEach(() => {
        etc = fs.mkdtempSync(path.join(os.tmpdir(), "kvmtune-knob-"));
        remote = new LocalRemote({ etc });
    });
    afterEach(() => fs.rmSync(etc, { recursive: true, force: true }));

    it("a create retried after one cut off half-way applies and records the original from before the first attempt", async () => {
        // The first attempt claimed the knob when it read "none", wrote "mq-deadline", and was cut off.
        await claimKnob(remote, claim("A", { scheduler: "none" }));
        const applied = await createKnob(remote, claim("A", { scheduler: "mq-deadline" }), async (original) => original, async () => undefined);
        assert.deepStrictEqual(applied, { scheduler: "none" });
    });

    it("a create whose apply fails undoes with the original and releases the claim", async () => {
        const undone: unknown[] = [];
        await assert.rejects(
            createKnob(remote, claim("A", { scheduler: "none" }), async () => Promise.reject(new Error("write refused")), async (o) => void undone.push(o)),
            /write refused/,
        );
        assert.deepStrictEqual(undone, [{ scheduler: "none" }]);
        assert.ok(!fs.existsSync(claimFile()), "the claim outlived the failed create");
    });

    it("a create whose undo fails too keeps the claim, with its original, for the retry", async () => {
        await assert.rejects(
            createKnob(remote, claim("A", { scheduler: "none" }), async () => Promise.reject(new Error("connection lost")), async () => Promise.reject(new Error("still lost"))),
            /connection lost/,
        );
        assert.match(fs.readFileSync(claimFile(), "utf8"), /^original=/m);
    });

    it("delete undoes and releases its own knob, and leaves another owner's alone", async () => {
        let undone = 0;
        await claimKnob(remote, claim("A"));
        await deleteKnob(remote, claim("A"), async () => void undone++);
        assert.strictEqual(undone, 1);
        assert.ok(!fs.existsSync(claimFile()));

        await claimKnob(remote, claim("B"));
        await deleteKnob(remote, claim("A"), async () => void undone++);
        assert.strictEqual(undone, 1, "A's delete undid B's setting");
        assert.match(fs.readFileSync(claimFile(), "utf8"), /for B\./);
    });
});
