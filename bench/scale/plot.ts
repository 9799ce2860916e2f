/**
 * bench/scale/scale.svg from the runs recorded in bench/scale/results.jsonl (one JSON line per
 * `npm run bench:scale -- --out bench/scale/results.jsonl --label L` run): three panels against the
 * number of hosts, each with its goal at 100 hosts as a dashed line: seconds (`up` and the no-op
 * `preview --refresh`), peak RSS, and state bytes per resource. One curve per label (the code that
 * ran), so a change shows as a before and an after.
 *
 *   node bin/bench/scale/plot.js [results.jsonl] [out.svg]
 */
import * as fs from "node:fs";
import * as path from "node:path";

interface Run {
    label?: string;
    hosts: number;
    resourcesPerHost: number;
    upSeconds: number;
    noopPreviewRefreshSeconds: number;
    peakRssMiB: number;
    stateBytes: number;
}

const FONT = "font-family='sans-serif'";
const PALETTE = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#17becf", "#7f7f7f"];

interface Series {
    name: string;
    colour: string;
    dashed?: boolean;
    points: Array<[number, number]>;
}

function panel(x0: number, title: string, yLabel: string, series: Series[], goal: { y: number; label: string }, xs: number[]): string {
    const w = 300;
    const h = 220;
    const left = x0 + 56;
    const top = 40;
    const xMax = Math.max(...xs, 1);
    const yMax = Math.max(goal.y * 1.15, ...series.flatMap((s) => s.points.map(([, y]) => y))) * 1.05;
    const px = (x: number) => left + (x / xMax) * w;
    const py = (y: number) => top + h - (y / yMax) * h;
    const out = [
        `<text x='${left}' y='24' font-size='13' font-weight='bold' ${FONT}>${title}</text>`,
        `<line x1='${left}' y1='${top + h}' x2='${left + w}' y2='${top + h}' stroke='#333'/>`,
        `<line x1='${left}' y1='${top}' x2='${left}' y2='${top + h}' stroke='#333'/>`,
        `<text x='${left + w / 2}' y='${top + h + 34}' font-size='11' text-anchor='middle' ${FONT}>hosts</text>`,
        `<text x='${x0 + 12}' y='${top + h / 2}' font-size='11' text-anchor='middle' transform='rotate(-90 ${x0 + 12} ${top + h / 2})' ${FONT}>${yLabel}</text>`,
    ];
    for (const x of xs) {
        out.push(`<text x='${px(x)}' y='${top + h + 16}' font-size='10' text-anchor='middle' ${FONT}>${x}</text>`);
    }
    for (let i = 0; i <= 4; i++) {
        const y = (yMax / 4) * i;
        out.push(`<text x='${left - 6}' y='${py(y) + 4}' font-size='10' text-anchor='end' ${FONT}>${y >= 100 ? Math.round(y) : y.toFixed(1)}</text>`);
        out.push(`<line x1='${left}' y1='${py(y)}' x2='${left + w}' y2='${py(y)}' stroke='#eee'/>`);
    }
    out.push(`<line x1='${left}' y1='${py(goal.y)}' x2='${left + w}' y2='${py(goal.y)}' stroke='#888' stroke-dasharray='6 4'/>`);
    out.push(`<text x='${left + w - 4}' y='${py(goal.y) - 5}' font-size='10' text-anchor='end' fill='#555' ${FONT}>${goal.label}</text>`);
    for (const s of series) {
        const pts = [...s.points].sort((a, b) => a[0] - b[0]);
        out.push(`<polyline fill='none' stroke='${s.colour}' stroke-width='2' ${s.dashed ? "stroke-dasharray='4 3'" : ""} points='${pts.map(([x, y]) => `${px(x)},${py(y)}`).join(" ")}'/>`);
        for (const [x, y] of pts) out.push(`<circle cx='${px(x)}' cy='${py(y)}' r='3.5' fill='${s.colour}'><title>${s.name}: ${x} hosts, ${y}</title></circle>`);
    }
    return out.join("\n");
}

export function scaleSvg(runs: Run[]): string {
    const labels = [...new Set(runs.map((r) => r.label ?? "current"))];
    const xs = [...new Set(runs.map((r) => r.hosts))].sort((a, b) => a - b);
    const of = (label: string) => runs.filter((r) => (r.label ?? "current") === label);
    const series = (pick: (r: Run) => number, extra?: { pick: (r: Run) => number; suffix: string }) =>
        labels.flatMap((label, i) => [
            { name: label, colour: PALETTE[i % PALETTE.length], points: of(label).map((r) => [r.hosts, pick(r)] as [number, number]) },
            ...(extra ? [{ name: `${label} ${extra.suffix}`, colour: PALETTE[i % PALETTE.length], dashed: true, points: of(label).map((r) => [r.hosts, extra.pick(r)] as [number, number]) }] : []),
        ]);
    const parts = [
        panel(0, "seconds: up (solid), preview --refresh (dashed)", "seconds", series((r) => r.upSeconds, { pick: (r) => r.noopPreviewRefreshSeconds, suffix: "preview --refresh" }), { y: 120, label: "preview goal 120 s" }, xs),
        panel(380, "peak RSS (engine + program + provider)", "MiB", series((r) => r.peakRssMiB), { y: 1024, label: "goal 1 GiB" }, xs),
        panel(760, "state per resource", "bytes", series((r) => Math.round(r.stateBytes / (r.hosts * r.resourcesPerHost))), { y: 4096, label: "goal 4 KB" }, xs),
    ];
    // Three labels to a row, as many rows as it takes.
    const at = (i: number) => ({ x: 60 + (i % 3) * 360, y: 312 + Math.floor(i / 3) * 20 });
    const legend = labels.map((label, i) => `<rect x='${at(i).x}' y='${at(i).y}' width='12' height='12' fill='${PALETTE[i % PALETTE.length]}'/><text x='${at(i).x + 18}' y='${at(i).y + 10}' font-size='12' ${FONT}>${label}</text>`);
    const height = 340 + Math.floor((labels.length - 1) / 3) * 20;
    return [`<svg xmlns='http://www.w3.org/2000/svg' width='1140' height='${height}' viewBox='0 0 1140 ${height}'>`, `<rect width='1140' height='${height}' fill='white'/>`, ...parts, ...legend, `</svg>`, ""].join("\n");
}

if (require.main === module) {
    const here = path.resolve(__dirname, "..", "..", "..", "bench", "scale");
    const input = process.argv[2] ?? path.join(here, "results.jsonl");
    const output = process.argv[3] ?? path.join(here, "scale.svg");
    const runs = fs.readFileSync(input, "utf8").split("\n").filter(Boolean).map((l) => JSON.parse(l) as Run);
    fs.writeFileSync(output, scaleSvg(runs));
    process.stderr.write(`wrote ${output} from ${runs.length} runs\n`);
}
