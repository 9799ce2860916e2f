import * as assert from "assert";
import { summarize } from "../../bench/applyTrace";

describe("bench/applyTrace: a KVMTUNE_TRACE file summed by step", () => {
    it("sums runs, run time and waits per step, slowest first, and the span from first asked to last done", () => {
        const line = (step: string, at: number, runMs: number, queueMs = 0, connectMs = 0) => ({ host: "h", step, at, queueMs, connectMs, runMs, code: 0 });
        const sum = summarize([line("read facts", 1000, 400, 0, 600), line("write pools", 2000, 3000, 100), line("read facts", 1500, 500, 50)]);
        assert.deepStrictEqual(sum.steps, [
            { step: "write pools", count: 1, runMs: 3000, maxRunMs: 3000, waitMs: 100 },
            { step: "read facts", count: 2, runMs: 900, maxRunMs: 500, waitMs: 650 },
        ]);
        assert.strictEqual(sum.spanMs, 2000 + 100 + 3000 - 1000);
        assert.strictEqual(sum.runMs, 3900);
        assert.strictEqual(sum.commands, 3);
    });
});
