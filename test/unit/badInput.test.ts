/**
 * Bad input, table-driven over every provider's check() (test/helpers/providerCases.ts): wrong
 * types, out-of-range numbers, random strings, extra keys and shell breakouts in every field are
 * refused with that field's path before anything reaches a host; whatever a check does accept in
 * a field that reaches a shell is a plain word, inert unquoted. Then the free text that does pass
 * (owner labels) goes through the real scripts with a canary file that must stay absent.
 */
import * as assert from "assert";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import fc from "fast-check";
import type * as pulumi from "@pulumi/pulumi";
import { claimScript, releaseScript } from "../../resources/host/claims";
import { atomicWriteScript, headerLine } from "../../resources/host/files";
import { shellQuote } from "../../resources/host/quote";
import { runScript } from "../../resources/host/remote";
import { blockElevatorSchema, diskClaim, provider as elevator, udevRule } from "../../resources/providers/blockElevator";
import { poolClaim } from "../../resources/providers/hugepagePool";
import { goodConnection, shellBreakouts } from "../helpers/fixtures";
import { LocalRemote } from "../helpers/localRemote";
import { fieldsOf, objectsOf, Path, PROVIDER_CASES, ProviderCase, setAt, withConnection } from "../helpers/providerCases";

type Check = (olds: unknown, news: Record<string, unknown>) => Promise<pulumi.dynamic.CheckResult>;

/** Strings written to break out of a shell, each with a command that would leave a trace. */
const ATTACKS = [
    ...shellBreakouts("/tmp/kvmtune-pwned"),
    "../../../etc/shadow",
    "vdb\0",
    // Valid for some field, yet not a plain word: must be free text where accepted.
    "root$",
    "a b",
];

/** Taken by a shell as one word, unquoted: no quoting needed, no NUL (which no argument carries). */
const plainWord = (s: string) => !s.includes("\0") && shellQuote(s) === s;
const dotted = (at: Path) => at.map(String).join(".");
const kind = (v: unknown) => (v === null ? "null" : Array.isArray(v) ? "array" : typeof v);
const matches = (pattern: string, field: string) =>
    new RegExp(`^${pattern.split(".").map((p) => (p === "*" ? "[^.]+" : p.replace(/[^A-Za-z0-9_]/g, "\\$&"))).join("\\.")}$`).test(field);
const freeText = (c: ProviderCase, field: string) => Object.keys(c.freeText).some((p) => matches(p, field));
const alsoTakes = (c: ProviderCase, field: string, t: string) =>
    Object.entries(c.alsoTakes ?? {}).some(([p, types]) => matches(p, field) && (types as string[]).includes(t));

/** The failures name the field (or a field inside it), each reason starting with its path. */
function assertRefusedAt(r: pulumi.dynamic.CheckResult, field: string, what: string): void {
    const failures = r.failures ?? [];
    assert.ok(failures.length > 0, `${what}: accepted`);
    for (const f of failures) assert.ok(f.reason.startsWith(`${f.property}:`), `${what}: a reason that does not name its field: ${f.reason}`);
    assert.ok(
        failures.some((f) => f.property === field || f.property.startsWith(field + ".")),
        `${what}: refused, but not at ${field}: ${JSON.stringify(failures)}`,
    );
}

for (const [name, c] of Object.entries(PROVIDER_CASES)) {
    describe(`${name}: bad input is refused by check(), with the field's path`, function () {
        this.timeout(120_000);
        // eslint-disable-next-line @typescript-eslint/no-require-imports
        const check: Check = (o, n) => require(`../../resources/providers/${c.module}`).provider.check(o, n);
        const variants = c.valid.map((v) => withConnection(v));

        it("accepts each valid input of the table (so the refusals below are about the one field changed)", async () => {
            for (const v of variants) assert.strictEqual((await check({}, v)).failures, undefined, JSON.stringify(v));
        });

        it("refuses a wrong type in every field", async () => {
            for (const v of variants) {
                for (const { path: at, value } of fieldsOf(v)) {
                    const field = dotted(at);
                    const wrongs = [null, true, 7, "x", {}, []].filter((w) => kind(w) !== kind(value) && !alsoTakes(c, field, kind(w)));
                    for (const w of wrongs) {
                        // A record's values are typed; its keys are not fields, so a string key stays.
                        assertRefusedAt(await check({}, setAt(v, at, w)), field, `${field} = ${JSON.stringify(w)}`);
                    }
                }
            }
        });

        it("refuses negative, fractional, non-finite and huge numbers in every numeric field", async () => {
            for (const v of variants) {
                for (const { path: at, value } of fieldsOf(v).filter((f) => typeof f.value === "number")) {
                    for (const n of [-1, 0.5, Number(value) + 0.25, NaN, Infinity, -Infinity, 2 ** 53, -(2 ** 31)]) {
                        assertRefusedAt(await check({}, setAt(v, at, n)), dotted(at), `${dotted(at)} = ${n}`);
                    }
                }
            }
        });

        it("refuses shell breakouts in every string field and every key", async () => {
            for (const v of variants) {
                for (const { path: at, value } of fieldsOf(v).filter((f) => typeof f.value === "string")) {
                    const field = dotted(at);
                    // Alone, and after a valid value (a pattern anchored at its start only would let that pass).
                    for (const attack of [...ATTACKS, ...ATTACKS.map((a) => `${value}${a}`)]) {
                        const r = await check({}, setAt(v, at, attack));
                        if (!r.failures && freeText(c, field)) continue;
                        assertRefusedAt(r, field, `${field} = ${JSON.stringify(attack)}`);
                    }
                }
                for (const at of objectsOf(v)) {
                    for (const attack of ATTACKS) {
                        const r = await check({}, setAt(v, [...at, attack], 1));
                        assertRefusedAt(r, at.length ? dotted(at) : "(inputs)", `key ${JSON.stringify(attack)} in ${dotted(at) || "the inputs"}`);
                    }
                }
            }
        });

        it("accepts in a field that reaches a shell only plain words: random strings are refused there or inert", async () => {
            const strings = fc.oneof(
                fc.string({ maxLength: 24 }),
                fc.string({ unit: "binary", maxLength: 24 }),
                fc.string({ unit: fc.constantFrom(..."abvd019-_.:/@+=,%$'\"`;&|<>()[]{}*?!~# \n\t\\"), maxLength: 24 }),
                fc.constantFrom(...ATTACKS),
            );
            /** A valid value with a random string put in at a random place. */
            const spliced = (valid: string) =>
                fc.tuple(fc.nat({ max: valid.length }), strings).map(([at, s]) => valid.slice(0, at) + s + valid.slice(at));
            for (const v of variants) {
                const stringFields = fieldsOf(v).filter((f) => typeof f.value === "string");
                const cases = fc.oneof(...stringFields.map((f) => fc.tuple(fc.constant(f.path), fc.oneof(strings, spliced(f.value as string)))));
                await fc.assert(
                    fc.asyncProperty(cases, async ([at, s]) => {
                        const field = dotted(at);
                        const r = await check({}, setAt(v, at, s));
                        if (freeText(c, field)) return;
                        if (!r.failures) {
                            assert.ok(plainWord(s), `${field} accepted ${JSON.stringify(s)}, which a shell would not take as one plain word`);
                        } else if (!plainWord(s)) {
                            // Anything a shell could misread is refused at its own field (a plain word
                            // may instead trip another field's rule: a 1G page size and memoryMiB).
                            assertRefusedAt(r, field, `${field} = ${JSON.stringify(s)}`);
                        }
                    }),
                    { numRuns: 400, seed: 42 },
                );
            }
        });

        it("accepts an extra key only where keys are data, and then only a plain word", async () => {
            for (const v of variants) {
                const objects = objectsOf(v);
                await fc.assert(
                    fc.asyncProperty(fc.constantFrom(...objects), fc.oneof(fc.string({ minLength: 1, maxLength: 12 }), fc.constantFrom("0", "7", "read_expire", "slice_idle")), async (at, key) => {
                        fc.pre(!(at.length === 0 && (key === "owner" || key === "__provider")));
                        const r = await check({}, setAt(v, [...at, key], 1));
                        if (!r.failures) assert.ok(plainWord(key), `${dotted(at)} accepted the key ${JSON.stringify(key)}`);
                        else assertRefusedAt(r, at.length ? dotted(at) : "(inputs)", `key ${JSON.stringify(key)} in ${dotted(at) || "the inputs"}`);
                    }),
                    { numRuns: 200, seed: 7 },
                );
            }
        });
    });
}

describe("free text that passes check never runs", function () {
    this.timeout(120_000);

    it("owner labels with shell syntax pass check, and claim, release and file scripts treat them as text", async () => {
        const root = fs.mkdtempSync(path.join(os.tmpdir(), "kvmtune-canary-"));
        try {
            const etc = path.join(root, "etc");
            fs.mkdirSync(etc);
            const canary = path.join(root, "canary");
            const owners = ATTACKS.filter((a) => !/[\n\0]/.test(a)).map((a, n) => `BlockElevator d${n} (p/s) ${a.replace("/tmp/kvmtune-pwned", canary)}`);
            const steps: string[] = [];
            for (const [n, owner] of owners.entries()) {
                const checked = await elevator.check({}, { connection: goodConnection(), device: "vdb", scheduler: "none", owner });
                assert.strictEqual(checked.failures, undefined, owner);
                const disk = `vd${String.fromCharCode(97 + n)}`;
                const i = blockElevatorSchema.parse({ connection: goodConnection(), device: disk, scheduler: "mq-deadline" });
                steps.push(
                    claimScript(diskClaim(owner, disk)),
                    atomicWriteScript(`/etc/udev/rules.d/61-kvmtune-elevator-${disk}.rules`, udevRule(owner, i, { name: disk, queues: [disk], nvme: null })),
                    claimScript(poolClaim(owner.replace("BlockElevator", "HugepagePool"), { pageSize: n % 2 ? "2M" : "1G" })),
                    releaseScript(poolClaim(owner.replace("BlockElevator", "HugepagePool"), { pageSize: n % 2 ? "2M" : "1G" })),
                );
            }
            await runScript(new LocalRemote({ etc }), steps.join("\n"));
            assert.ok(!fs.existsSync(canary), "an owner label ran as a command");
            for (const [n, owner] of owners.entries()) {
                const disk = `vd${String.fromCharCode(97 + n)}`;
                for (const f of [`kvmtune/claims/block-elevator-${disk}`, `udev/rules.d/61-kvmtune-elevator-${disk}.rules`]) {
                    assert.strictEqual(fs.readFileSync(path.join(etc, f), "utf8").split("\n")[0], headerLine(owner), f);
                }
            }
        } finally {
            fs.rmSync(root, { recursive: true, force: true });
        }
    });

    it("an owner label with a newline or a control character is refused by check (it would add a line to a file)", async () => {
        for (const owner of ['BlockElevator x\nACTION=="add", RUN+="/bin/sh"', "BlockElevator x\r", "BlockElevator \x1b[2J", "", 7]) {
            const r = await elevator.check({}, { connection: goodConnection(), device: "vdb", scheduler: "none", owner });
            assert.deepStrictEqual(r.failures?.map((f) => f.property), ["owner"], JSON.stringify(owner));
        }
    });
});
