/**
 * Where the bytes of a `pulumi stack export` go, per resource type and per top-level field:
 *
 *     node bin/bench/scale/stateBreakdown.js state.json [--top N] [--json]
 *
 * Bytes are counted as the export lays them out (Go's json.MarshalIndent, four spaces; a resource
 * sits at depth 3, its inputs' and outputs' fields at depth 5), so a type's bytes add up to its share
 * of `stateBytes`. Fields are `inputs.<name>`, `outputs.<name>` and `meta.<name>` (the engine's own:
 * urn, stackTrace, propertyDependencies, ...). run.ts records the per-type totals in results.jsonl.
 */
import * as fs from "node:fs";

export interface TypeBreakdown {
    count: number;
    /** Bytes per resource of this type, as laid out in the export. */
    bytesEach: number;
    /** Bytes per resource by field, largest first. */
    fields: Record<string, number>;
}

interface StateResource {
    type: string;
    inputs?: Record<string, unknown>;
    outputs?: Record<string, unknown>;
    [k: string]: unknown;
}

/** Bytes of `value` written by MarshalIndent at `depth` (each line after the first indented 4 x depth more). */
export function indentedBytes(value: unknown, depth: number): number {
    const s = JSON.stringify(value, null, 4);
    let lines = 0;
    for (let i = s.indexOf("\n"); i >= 0; i = s.indexOf("\n", i + 1)) lines++;
    return Buffer.byteLength(s) + lines * 4 * depth;
}

/** `"key": value,\n` at `depth`: the value, the quoted key, ": ", the indentation, comma and newline. */
const fieldBytes = (key: string, value: unknown, depth: number) => indentedBytes(value, depth) + Buffer.byteLength(JSON.stringify(key)) + 2 + 4 * depth + 2;

/** The last part of a type token: `pulumi-nodejs:dynamic/kvmtune:BlockElevator` -> `BlockElevator`. */
const shortType = (t: string) => t.slice(t.lastIndexOf(":") + 1);

export function breakdown(exportText: string): Record<string, TypeBreakdown> {
    const resources = (JSON.parse(exportText).deployment?.resources ?? []) as StateResource[];
    const sums: Record<string, { count: number; bytes: number; fields: Record<string, number> }> = {};
    for (const r of resources) {
        const t = (sums[shortType(r.type)] ??= { count: 0, bytes: 0, fields: {} });
        t.count++;
        t.bytes += indentedBytes(r, 3) + 4 * 3 + 2;
        for (const [k, v] of Object.entries(r)) {
            if ((k === "inputs" || k === "outputs") && v && typeof v === "object") {
                for (const [f, fv] of Object.entries(v)) t.fields[`${k}.${f}`] = (t.fields[`${k}.${f}`] ?? 0) + fieldBytes(f, fv, 5);
            } else {
                t.fields[`meta.${k}`] = (t.fields[`meta.${k}`] ?? 0) + fieldBytes(k, v, 4);
            }
        }
    }
    return Object.fromEntries(
        Object.entries(sums).map(([type, s]) => [
            type,
            {
                count: s.count,
                bytesEach: Math.round(s.bytes / s.count),
                fields: Object.fromEntries(Object.entries(s.fields).map(([f, b]) => [f, Math.round(b / s.count)] as const).sort((a, b) => b[1] - a[1])),
            },
        ]),
    );
}

function main(argv: string[]): void {
    const file = argv.find((a) => !a.startsWith("--"));
    if (!file) throw new Error("usage: stateBreakdown.js STATE.json [--top N] [--json]");
    const topAt = argv.indexOf("--top");
    const top = topAt >= 0 ? Number(argv[topAt + 1]) : 12;
    const text = fs.readFileSync(file, "utf8");
    const b = breakdown(text);
    if (argv.includes("--json")) {
        process.stdout.write(JSON.stringify(b) + "\n");
        return;
    }
    process.stdout.write(`${file}: ${Buffer.byteLength(text)} bytes\n`);
    for (const [type, t] of Object.entries(b).sort((x, y) => y[1].bytesEach * y[1].count - x[1].bytesEach * x[1].count)) {
        process.stdout.write(`${type}: ${t.count} x ${t.bytesEach} bytes\n`);
        for (const [f, bytes] of Object.entries(t.fields).slice(0, top)) process.stdout.write(`    ${f.padEnd(32)} ${String(bytes).padStart(7)}\n`);
    }
}

if (require.main === module) main(process.argv.slice(2));
