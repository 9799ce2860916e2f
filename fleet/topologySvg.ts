/**
 * The topology picture: one SVG per host that reads at a glance. One column per NUMA node with
 * its CPUs (coloured by the guest whose vCPUs are pinned there), its huge page pools (used and
 * free) and the SR-IOV PFs that sit on it with their VFs (and the guest holding each); below, the
 * libvirt networks and a legend of the guests.
 */
import { escapeAttr, escapeText } from "../resources/libvirt/xml";
import type { Topology, TopologyGuest } from "./topology";

const PALETTE = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#17becf", "#8c564b", "#e377c2"];
const COLUMN = 380;
const CELL_W = 84;
const CELL_H = 44;
const PER_ROW = 4;
const FONT = "font-family='DejaVu Sans, Arial, sans-serif'";

function text(x: number, y: number, s: string, attrs = ""): string {
    return `<text x='${x}' y='${y}' ${FONT} ${attrs}>${escapeText(s)}</text>`;
}

function rect(x: number, y: number, w: number, h: number, fill: string, attrs = ""): string {
    return `<rect x='${x}' y='${y}' width='${w}' height='${h}' fill='${escapeAttr(fill)}' ${attrs}/>`;
}

function cpuListText(cpus: number[]): string {
    return cpus.length === 0 ? "-" : cpus.join(",");
}

/** The guest (and what of it) pinned to each CPU: vCPUs first, then emulator and I/O threads. */
function cpuHolders(guests: TopologyGuest[]): Map<number, { guest: number; what: string }[]> {
    const holders = new Map<number, { guest: number; what: string }[]>();
    const add = (cpu: number, guest: number, what: string) => holders.set(cpu, [...(holders.get(cpu) ?? []), { guest, what }]);
    guests.forEach((g, gi) => {
        g.vcpuPins.forEach((set, v) => set.forEach((cpu) => add(cpu, gi, `vCPU ${v}`)));
        (g.emulatorPin ?? []).forEach((cpu) => add(cpu, gi, "emulator"));
        g.iothreadPins.forEach((set, t) => set.forEach((cpu) => add(cpu, gi, `iothread ${t + 1}`)));
    });
    return holders;
}

export function renderTopologySvg(t: Topology): string {
    const colour = (gi: number) => PALETTE[gi % PALETTE.length];
    const holders = cpuHolders(t.guests);
    const parts: string[] = [];
    const columns = Math.max(1, t.nodes.length);
    const width = 40 + columns * COLUMN;
    let bottom = 0;

    t.nodes.forEach((node, ni) => {
        const x0 = 20 + ni * COLUMN;
        let y = 70;
        const col: string[] = [];
        col.push(text(x0 + 12, y + 22, `NUMA node ${node.id}`, "font-size='17' font-weight='bold'"));
        col.push(text(x0 + 180, y + 22, `${node.memoryMiB} MiB`, "font-size='13' fill='#555'"));
        y += 36;
        node.cpus.forEach((cpu, ci) => {
            const cx = x0 + 12 + (ci % PER_ROW) * (CELL_W + 6);
            const cy = y + Math.floor(ci / PER_ROW) * (CELL_H + 6);
            const hs = holders.get(cpu) ?? [];
            const first = hs[0];
            col.push(rect(cx, cy, CELL_W, CELL_H, first ? colour(first.guest) : "#eeeeee", "rx='5' stroke='#444' stroke-width='1'"));
            col.push(text(cx + 6, cy + 16, `CPU ${cpu}`, `font-size='12' font-weight='bold' fill='${first ? "#fff" : "#333"}'`));
            const label = first ? `${t.guests[first.guest].name}` : "free";
            col.push(text(cx + 6, cy + 31, label, `font-size='11' fill='${first ? "#fff" : "#777"}'`));
            if (first) col.push(text(cx + 6, cy + 41, hs.map((h) => h.what).join(", ").slice(0, 16), "font-size='8' fill='#fff'"));
        });
        y += Math.ceil(node.cpus.length / PER_ROW) * (CELL_H + 6) + 14;

        for (const [size, pool] of Object.entries(node.hugepages)) {
            if (pool.total === 0 && size !== "2M") continue;
            const used = pool.total - pool.free;
            col.push(text(x0 + 12, y + 12, `huge pages ${size}: ${pool.total} (${used} used, ${pool.free} free)`, "font-size='12'"));
            const barW = COLUMN - 48;
            col.push(rect(x0 + 12, y + 18, barW, 12, "#dddddd", "rx='3'"));
            if (pool.total > 0) col.push(rect(x0 + 12, y + 18, Math.round((barW * used) / pool.total), 12, "#555555", "rx='3'"));
            y += 38;
        }

        for (const pf of t.pfs.filter((p) => p.numaNode === node.id)) {
            col.push(text(x0 + 12, y + 14, `PF ${pf.name} ${pf.pciAddress ?? ""}  ${pf.vfs.length}/${pf.totalVfs} VFs`, "font-size='12' font-weight='bold'"));
            y += 20;
            pf.vfs.forEach((vf, vi) => {
                const vx = x0 + 12 + (vi % PER_ROW) * (CELL_W + 6);
                const vy = y + Math.floor(vi / PER_ROW) * 34;
                const gi = vf.guest === null ? -1 : t.guests.findIndex((g) => g.name === vf.guest);
                col.push(rect(vx, vy, CELL_W, 28, gi >= 0 ? colour(gi) : "#f4f4f4", "rx='4' stroke='#888'"));
                col.push(text(vx + 5, vy + 12, `VF ${vf.index}`, `font-size='10' font-weight='bold' fill='${gi >= 0 ? "#fff" : "#333"}'`));
                col.push(text(vx + 5, vy + 24, vf.guest ?? "free", `font-size='9' fill='${gi >= 0 ? "#fff" : "#777"}'`));
            });
            y += Math.ceil(pf.vfs.length / PER_ROW) * 34 + 10;
        }
        parts.push(rect(x0, 70, COLUMN - 16, y - 70, "#fafafa", "rx='8' stroke='#333' stroke-width='1.5'"), ...col);
        bottom = Math.max(bottom, y);
    });

    let y = bottom + 30;
    parts.push(text(20, y, "Networks", "font-size='15' font-weight='bold'"));
    y += 20;
    if (t.networks.length === 0) {
        parts.push(text(28, y, "none", "font-size='12' fill='#777'"));
        y += 18;
    }
    for (const n of t.networks) {
        const state = n.active ? "active" : "inactive";
        parts.push(text(28, y, `${n.name}: bridge ${n.bridge ?? "-"}, ${state}; guests: ${n.guests.join(", ") || "none"}`, "font-size='12'"));
        y += 18;
    }
    y += 12;
    parts.push(text(20, y, "Guests", "font-size='15' font-weight='bold'"));
    y += 20;
    if (t.guests.length === 0) {
        parts.push(text(28, y, "none", "font-size='12' fill='#777'"));
        y += 18;
    }
    t.guests.forEach((g, gi) => {
        parts.push(rect(28, y - 11, 14, 14, colour(gi), "rx='2'"));
        const memory = `${g.memoryMiB} MiB${g.hugepages ? ` in ${g.hugepages} pages` : ""}${g.nodeset ? ` on node ${cpuListText(g.nodeset)}` : ""}`;
        const pins = `vCPUs ${g.vcpuPins.map(cpuListText).join(" | ")}${g.emulatorPin ? `; emulator ${cpuListText(g.emulatorPin)}` : ""}`;
        parts.push(text(50, y, `${g.name} (${g.running ? "running" : "shut off"}): ${g.vcpus} vCPUs, ${memory}; ${pins}`, "font-size='12'"));
        y += 20;
    });
    const height = y + 20;
    return [
        `<svg xmlns='http://www.w3.org/2000/svg' width='${width}' height='${height}' viewBox='0 0 ${width} ${height}'>`,
        rect(0, 0, width, height, "#ffffff"),
        text(20, 36, `${t.hostname}: kvmtune topology`, "font-size='22' font-weight='bold'"),
        text(20, 56, `${t.nodes.length} NUMA nodes, ${t.guests.length} guests, ${t.pfs.length} SR-IOV PFs, ${t.networks.length} networks`, "font-size='12' fill='#555'"),
        ...parts,
        "</svg>",
        "",
    ].join("\n");
}
