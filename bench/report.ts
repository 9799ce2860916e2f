/**
 * The bench's results: raw JSON, bench/RESULTS.md (tables with ratios, the machine, the method)
 * and bench/results.svg (the curves), all rewritten after every measured step so a run that
 * stops half-way still leaves what it measured.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import type { SshdCounts } from "./labHost";

export type Tool = "kvmtune" | "ansible";
export type Step = "apply" | "check" | "change";
export const STEPS: Step[] = ["apply", "check", "change"];

export interface StepResult {
    tool: Tool;
    step: Step;
    hosts: number;
    /** Bench elevators per host (loop devices), on top of the lab tuning. */
    resources: number;
    seconds: number;
    /** Per host name, from its sshd log. */
    sshd: Record<string, SshdCounts>;
    /** Changes the tool reported (applied, or that a check would make). */
    changed: number | null;
    ok: boolean;
    /** Which repetition (checks may be repeated). */
    rep: number;
}

export interface FloorResult {
    what: string;
    seconds: number;
    /** Per host, for the SSH round trip. */
    perHost?: Record<string, number>;
    sshd?: Record<string, SshdCounts>;
}

export interface Results {
    startedAt: string;
    finishedAt?: string;
    mode: string;
    machine: { nproc: number; memoryGiB: number; loadAtStart: string; loadAtEnd?: string; lab: string };
    versions: Record<string, string>;
    scope: { sriov: boolean; vhost: boolean; note: string };
    method: string[];
    floors: FloorResult[];
    steps: StepResult[];
}

const median = (xs: number[]): number => {
    const s = [...xs].sort((a, b) => a - b);
    return s.length === 0 ? NaN : s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};

/** One number per (tool, step, hosts, resources): the median over repetitions. */
function cell(r: Results, tool: Tool, step: Step, hosts: number, resources: number) {
    const xs = r.steps.filter((s) => s.tool === tool && s.step === step && s.hosts === hosts && s.resources === resources);
    if (xs.length === 0) return undefined;
    const perHost = (k: keyof SshdCounts) => median(xs.map((x) => Object.values(x.sshd).reduce((a, c) => a + c[k], 0) / Math.max(1, Object.keys(x.sshd).length)));
    const maxHost = (k: keyof SshdCounts) => Math.max(...xs.flatMap((x) => Object.values(x.sshd).map((c) => c[k])));
    return {
        seconds: median(xs.map((x) => x.seconds)),
        connections: perHost("connections"),
        maxConnections: maxHost("connections"),
        commands: perHost("commands"),
        changed: xs[0].changed,
        ok: xs.every((x) => x.ok),
        n: xs.length,
    };
}

const fmt = (n: number | undefined, digits = 1) => (n === undefined || Number.isNaN(n) ? "-" : n.toFixed(digits));

function markdown(r: Results): string {
    const hostsList = [...new Set(r.steps.map((s) => s.hosts))].sort((a, b) => a - b);
    const resList = [...new Set(r.steps.map((s) => s.resources))].sort((a, b) => a - b);
    const lines: string[] = [];
    lines.push("# kvmtune against Ansible: the lab tuning, side by side");
    lines.push("");
    lines.push(`Written by \`npm run bench\` (${r.mode}); started ${r.startedAt}${r.finishedAt ? `, finished ${r.finishedAt}` : " (still running or stopped early)"}.`);
    lines.push("");
    lines.push(
        `Machine: ${r.machine.nproc} CPUs (\`nproc\`), ${r.machine.memoryGiB.toFixed(1)} GiB memory; lab hosts: ${r.machine.lab}. ` +
            `Load average at start ${r.machine.loadAtStart}${r.machine.loadAtEnd ? `, at end ${r.machine.loadAtEnd}` : ""}.`,
    );
    lines.push("");
    lines.push(`Versions: ${Object.entries(r.versions).map(([k, v]) => `${k} ${v}`).join("; ")}.`);
    lines.push("");
    lines.push(`Scope: ${r.scope.note}`);
    lines.push("");
    lines.push("## Floors");
    lines.push("");
    lines.push("| what | seconds | per host | connections/host | commands/host |");
    lines.push("|---|---:|---|---:|---:|");
    for (const f of r.floors) {
        const per = f.perHost ? Object.entries(f.perHost).map(([h, s]) => `${h} ${s.toFixed(2)}`).join(", ") : "-";
        const counts = f.sshd ? Object.values(f.sshd) : [];
        const avg = (k: keyof SshdCounts) => (counts.length ? fmt(counts.reduce((a, c) => a + c[k], 0) / counts.length) : "-");
        lines.push(`| ${f.what} | ${f.seconds.toFixed(2)} | ${per} | ${avg("connections")} | ${avg("commands")} |`);
    }
    lines.push("");
    lines.push("## Each step");
    lines.push("");
    lines.push(
        "Seconds are wall time (median of the repetitions, n). Ratio = Ansible / kvmtune: above 1, kvmtune is faster. " +
            "Connections and commands are per host (mean over the hosts; max connections on any host in brackets), from each host's sshd log. " +
            "Changed: what the tool reported changing (for check: what it would change; 0 is the goal).",
    );
    lines.push("");
    lines.push("| hosts | bench elevators/host | step | kvmtune s | Ansible s | ratio | kvmtune conn/host | Ansible conn/host | kvmtune cmds/host | Ansible cmds/host | changed k / A | n |");
    lines.push("|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---|---:|");
    for (const h of hostsList) {
        for (const res of resList) {
            for (const step of STEPS) {
                const k = cell(r, "kvmtune", step, h, res);
                const a = cell(r, "ansible", step, h, res);
                if (!k && !a) continue;
                const ratio = k && a ? fmt(a.seconds / k.seconds, 2) : "-";
                const conn = (c: typeof k) => (c ? `${fmt(c.connections)} (${c.maxConnections})` : "-");
                const bad = (c: typeof k) => (c && !c.ok ? " FAILED" : "");
                lines.push(
                    `| ${h} | ${res} | ${step} | ${fmt(k?.seconds)}${bad(k)} | ${fmt(a?.seconds)}${bad(a)} | ${ratio} | ${conn(k)} | ${conn(a)} | ${fmt(k?.commands)} | ${fmt(a?.commands)} | ${k?.changed ?? "-"} / ${a?.changed ?? "-"} | ${Math.max(k?.n ?? 0, a?.n ?? 0)} |`,
                );
            }
        }
    }
    lines.push("");
    lines.push("## Curves");
    lines.push("");
    lines.push("![seconds per step against bench elevators per host and against hosts](results.svg)");
    lines.push("");
    lines.push("Left: seconds against bench elevators per host (fewest hosts measured). Right: seconds against hosts (fewest elevators measured). Solid: kvmtune; dashed: Ansible.");
    lines.push("");
    lines.push("## Method");
    lines.push("");
    for (const m of r.method) lines.push(`- ${m}`);
    lines.push("");
    lines.push("Raw numbers: [results.json](results.json).");
    lines.push("");
    // What a person found behind the numbers (profiles, round trips) is kept in NOTES.md beside
    // this file, so a new run's tables do not wipe it out.
    const notes = path.join(__dirname, "..", "..", "bench", "NOTES.md");
    if (fs.existsSync(notes)) lines.push(fs.readFileSync(notes, "utf8").trimEnd(), "");
    return lines.join("\n");
}

const COLOURS: Record<Step, string> = { apply: "#1f77b4", check: "#2ca02c", change: "#d62728" };
const FONT = "font-family='DejaVu Sans, Arial, sans-serif'";

function esc(s: string): string {
    return s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(/'/g, "&apos;");
}

/** One line chart: x values, and per (tool, step) a series of seconds. */
function panel(x0: number, title: string, xLabel: string, xs: number[], series: Array<{ tool: Tool; step: Step; ys: Array<number | undefined> }>): string {
    const W = 420;
    const H = 300;
    const left = x0 + 60;
    const top = 50;
    const right = x0 + W - 20;
    const bottom = top + H - 80;
    const all = series.flatMap((s) => s.ys.filter((y): y is number => y !== undefined));
    const yMax = Math.max(1, ...all) * 1.1;
    const xMin = Math.min(...xs);
    const xMax = Math.max(...xs);
    const px = (x: number) => (xMax === xMin ? (left + right) / 2 : left + ((x - xMin) / (xMax - xMin)) * (right - left));
    const py = (y: number) => bottom - (y / yMax) * (bottom - top);
    const out: string[] = [];
    out.push(`<text x='${x0 + W / 2}' y='30' text-anchor='middle' font-size='15' font-weight='bold' ${FONT}>${esc(title)}</text>`);
    out.push(`<line x1='${left}' y1='${bottom}' x2='${right}' y2='${bottom}' stroke='#333'/>`);
    out.push(`<line x1='${left}' y1='${top}' x2='${left}' y2='${bottom}' stroke='#333'/>`);
    for (let i = 0; i <= 4; i++) {
        const y = (yMax / 4) * i;
        out.push(`<line x1='${left}' y1='${py(y)}' x2='${right}' y2='${py(y)}' stroke='#ddd'/>`);
        out.push(`<text x='${left - 6}' y='${py(y) + 4}' text-anchor='end' font-size='11' ${FONT}>${y.toFixed(0)}</text>`);
    }
    for (const x of xs) out.push(`<text x='${px(x)}' y='${bottom + 16}' text-anchor='middle' font-size='11' ${FONT}>${x}</text>`);
    out.push(`<text x='${(left + right) / 2}' y='${bottom + 34}' text-anchor='middle' font-size='12' ${FONT}>${esc(xLabel)}</text>`);
    out.push(`<text x='${x0 + 16}' y='${(top + bottom) / 2}' text-anchor='middle' font-size='12' transform='rotate(-90 ${x0 + 16} ${(top + bottom) / 2})' ${FONT}>seconds</text>`);
    for (const s of series) {
        const pts = xs.map((x, i) => [x, s.ys[i]] as const).filter((p): p is readonly [number, number] => p[1] !== undefined);
        const dash = s.tool === "ansible" ? " stroke-dasharray='6 4'" : "";
        if (pts.length > 1) {
            out.push(`<polyline fill='none' stroke='${COLOURS[s.step]}' stroke-width='2'${dash} points='${pts.map(([x, y]) => `${px(x).toFixed(1)},${py(y).toFixed(1)}`).join(" ")}'/>`);
        }
        for (const [x, y] of pts) {
            const shape = s.tool === "ansible" ? `<rect x='${px(x) - 4}' y='${py(y) - 4}' width='8' height='8' fill='white' stroke='${COLOURS[s.step]}' stroke-width='2'/>` : `<circle cx='${px(x)}' cy='${py(y)}' r='4' fill='${COLOURS[s.step]}'/>`;
            out.push(shape);
        }
    }
    return out.join("\n");
}

function svg(r: Results): string {
    const hostsList = [...new Set(r.steps.map((s) => s.hosts))].sort((a, b) => a - b);
    const resList = [...new Set(r.steps.map((s) => s.resources))].sort((a, b) => a - b);
    const seriesOver = (xs: number[], at: (x: number) => [number, number]) =>
        (["kvmtune", "ansible"] as Tool[]).flatMap((tool) => STEPS.map((step) => ({ tool, step, ys: xs.map((x) => cell(r, tool, step, ...at(x))?.seconds) })));
    const h0 = hostsList[0] ?? 1;
    const r0 = resList[0] ?? 0;
    const parts = [
        panel(0, `${h0} host${h0 === 1 ? "" : "s"}: cost per resource`, "bench elevators per host", resList, seriesOver(resList, (x) => [h0, x])),
        panel(420, `${r0} bench elevators per host: cost per host`, "hosts", hostsList, seriesOver(hostsList, (x) => [x, r0])),
    ];
    const legend: string[] = [];
    STEPS.forEach((step, i) => {
        const x = 60 + i * 150;
        legend.push(`<line x1='${x}' y1='330' x2='${x + 26}' y2='330' stroke='${COLOURS[step]}' stroke-width='2'/>`);
        legend.push(`<text x='${x + 32}' y='334' font-size='12' ${FONT}>${step === "check" ? "no-op check" : step}</text>`);
    });
    legend.push(`<circle cx='530' cy='330' r='4' fill='#555'/><text x='540' y='334' font-size='12' ${FONT}>kvmtune (solid)</text>`);
    legend.push(`<rect x='656' y='326' width='8' height='8' fill='white' stroke='#555' stroke-width='2'/><text x='670' y='334' font-size='12' ${FONT}>Ansible (dashed)</text>`);
    return [
        `<svg xmlns='http://www.w3.org/2000/svg' width='840' height='350' viewBox='0 0 840 350'>`,
        `<rect width='840' height='350' fill='white'/>`,
        ...parts,
        ...legend,
        `</svg>`,
        "",
    ].join("\n");
}

/** Writes results.json, RESULTS.md and results.svg into `dir`. */
export function writeResults(dir: string, r: Results): void {
    fs.mkdirSync(dir, { recursive: true });
    const write = (name: string, text: string) => {
        const file = path.join(dir, name);
        fs.writeFileSync(`${file}.tmp`, text);
        fs.renameSync(`${file}.tmp`, file);
    };
    write("results.json", JSON.stringify(r, null, 2) + "\n");
    write("RESULTS.md", markdown(r));
    write("results.svg", svg(r));
}
