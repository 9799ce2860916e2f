import * as assert from "assert";
import { execFileSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import fc from "fast-check";
import { sh, shellJoin, shellQuote } from "../../resources/host/quote";
import { shellBreakouts } from "../helpers/fixtures";

/** Runs a command line in a real shell and returns what printf wrote. */
function through(shell: string, commandLine: string): string {
    return execFileSync(shell, ["-c", commandLine], { encoding: "latin1" });
}

// Any string without NUL (argv cannot carry it), biased towards the characters shells care about.
const shellish = fc.oneof(
    fc.string({ unit: "binary", maxLength: 40 }),
    fc.string({
        unit: fc.constantFrom("'", '"', "\\", "$", "`", "(", ")", ";", "&", "|", "<", ">", "\n", " ", "\t", "*", "?", "[", "~", "#", "!", "{", "}", "a", "-"),
        maxLength: 30,
    }),
).filter((s) => !s.includes("\0"));

describe("shell quoting", function () {
    // Each run starts a real shell; on a loaded 2-core machine that takes a while.
    this.timeout(120000);
    for (const shell of ["/bin/sh", "/bin/bash"]) {
        it(`keeps every value one literal argument in ${shell}`, () => {
            fc.assert(
                fc.property(shellish, (value) => {
                    const bytes = Buffer.from(value, "utf8").toString("latin1");
                    assert.strictEqual(through(shell, `printf '%s' ${shellQuote(value)}`), bytes);
                }),
                { numRuns: 150 },
            );
        });
    }

    it("survives a second level of quoting (sudo -- sh -c '...')", () => {
        fc.assert(
            fc.property(shellish, (value) => {
                const inner = `printf '%s' ${shellQuote(value)}`;
                const bytes = Buffer.from(value, "utf8").toString("latin1");
                assert.strictEqual(through("/bin/sh", `sh -c ${shellQuote(inner)}`), bytes);
            }),
            { numRuns: 100 },
        );
    });

    it("never runs an injected command (a canary file stays absent)", () => {
        const dir = fs.mkdtempSync(path.join(os.tmpdir(), "kvmtune-quote-"));
        const canary = path.join(dir, "canary");
        const attacks = shellBreakouts(canary);
        for (const attack of attacks) {
            through("/bin/sh", sh`echo ${attack} > /dev/null`);
            through("/bin/sh", `sh -c ${shellQuote(sh`echo ${attack} > /dev/null`)}`);
        }
        assert.strictEqual(fs.existsSync(canary), false, "an injected command ran");
        fs.rmSync(dir, { recursive: true });
    });

    it("leaves plain words bare and refuses NUL", () => {
        assert.strictEqual(shellQuote("/sys/block/vdb/queue/scheduler"), "/sys/block/vdb/queue/scheduler");
        assert.strictEqual(shellJoin(["echo", "a b", "it's"]), `echo 'a b' 'it'\\''s'`);
        assert.throws(() => shellQuote("a\0b"), /NUL/);
    });

    it("quotes arrays as several words in the template", () => {
        assert.strictEqual(sh`ls ${["a b", "c"]}`, "ls 'a b' c");
    });
});
