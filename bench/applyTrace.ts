/**
 * Sums a KVMTUNE_TRACE file (resources/host/trace.ts) by step: where an apply's time goes, per
 * remote command, so work that is not the host's own (repeated reads, reloads, settles) shows.
 *
 *   KVMTUNE_TRACE=/tmp/apply.jsonl pulumi up ...
 *   node bin/bench/applyTrace.js /tmp/apply.jsonl [--top 25]
 *
 * Prints, per step (the script's first line), how often it ran, its run time in all (the host's
 * work and the wire) and at most, and the time commands waited for a channel or the connection;
 * then the span from the first command asked to the last one done, and the sum of run times.
 */
import * as fs from "fs";
import type { TraceLine } from "../resources/host/trace";

interface StepSum {
    step: string;
    count: number;
    runMs: number;
    maxRunMs: number;
    waitMs: number;
}

export function summarize(lines: TraceLine[]): { steps: StepSum[]; spanMs: number; runMs: number; commands: number } {
    const byStep = new Map<string, StepSum>();
    for (const l of lines) {
        const s = byStep.get(l.step) ?? { step: l.step, count: 0, runMs: 0, maxRunMs: 0, waitMs: 0 };
        s.count++;
        s.runMs += l.runMs;
        s.maxRunMs = Math.max(s.maxRunMs, l.runMs);
        s.waitMs += l.queueMs + l.connectMs;
        byStep.set(l.step, s);
    }
    const start = Math.min(...lines.map((l) => l.at));
    const end = Math.max(...lines.map((l) => l.at + l.queueMs + l.connectMs + l.runMs));
    return {
        steps: [...byStep.values()].sort((a, b) => b.runMs - a.runMs),
        spanMs: lines.length ? end - start : 0,
        runMs: lines.reduce((t, l) => t + l.runMs, 0),
        commands: lines.length,
    };
}

function main(): void {
    const [file, ...rest] = process.argv.slice(2);
    if (!file) throw new Error("usage: node bin/bench/applyTrace.js TRACE.jsonl [--top N]");
    const top = rest[0] === "--top" ? Number(rest[1]) : 25;
    const lines = fs.readFileSync(file, "utf8").split("\n").filter(Boolean).map((l) => JSON.parse(l) as TraceLine);
    const sum = summarize(lines);
    const s = (ms: number) => (ms / 1000).toFixed(1);
    console.log("| step | runs | run s (all) | run s (max) | waited s |");
    console.log("|---|---|---|---|---|");
    for (const st of sum.steps.slice(0, top)) console.log(`| \`${st.step.replace(/\|/g, "\\|")}\` | ${st.count} | ${s(st.runMs)} | ${s(st.maxRunMs)} | ${s(st.waitMs)} |`);
    console.log(`\n${sum.commands} commands; first asked to last done: ${s(sum.spanMs)} s; run time summed over commands: ${s(sum.runMs)} s`);
}

if (require.main === module) main();
