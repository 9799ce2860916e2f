/**
 * What the program's `hosts` output says about a host: one line a person reads at the end of every
 * `up`, where the full detail (every NUMA node's CPU list, every pool, VF and tunable: about 270
 * lines per host, 27,000 for a fleet of 100) used to be printed. The full detail goes to a JSON file
 * next to the topology picture (`writeHostDetail`), and the line names it.
 */
import * as fs from "fs";
import * as path from "path";
import type { KvmHostApplied } from "../resources/kvmHost";
import type { AppliedView } from "./topology";

/** Everything the program knows about a host after `up`: the facts it read and what was applied. */
export interface HostDetail {
    facts: {
        hostname: string;
        kernel: string;
        libvirt: string | null;
        /** `/dev/vhost-net` there (HostFacts' `vhostNet`). */
        vhostNet: boolean;
        numaNodes: Array<{ id: number; cpus: number[]; memoryMiB: number; hugepages: Record<string, { total: number; free: number }> }>;
    };
    applied: KvmHostApplied;
}

/** The `hosts` output's entry for one host. */
export interface HostEntry {
    /** One line: the host, its kernel and libvirt, nodes and CPUs, then each kind of tuning applied. */
    summary: string;
    /** The JSON file with the full detail (`HostDetail`), or null when no folder is set or in a preview. */
    detail: string | null;
    /** The topology picture (SVG), or null. */
    topology: string | null;
}

/** `a, b, c +2 more`: at most `max` names, so a host with 40 disks still gets one line. */
function some(names: string[], max = 3): string {
    return names.length <= max ? names.join(", ") : `${names.slice(0, max).join(", ")} +${names.length - max} more`;
}

/** CPUs as the kernel lists them: `0-3,8`. */
export function cpuList(cpus: number[]): string {
    const sorted = [...new Set(cpus)].sort((a, b) => a - b);
    const parts: string[] = [];
    for (let i = 0; i < sorted.length; i++) {
        let j = i;
        while (j + 1 < sorted.length && sorted[j + 1] === sorted[j] + 1) j++;
        parts.push(j > i ? `${sorted[i]}-${sorted[j]}` : `${sorted[i]}`);
        i = j;
    }
    return parts.join(",");
}

/** Groups keys by a label: `{vdb: "mq-deadline", vdc: "bfq"}` -> `mq-deadline vdb; bfq vdc`. */
function grouped(entries: Array<[string, string]>): string {
    const by = new Map<string, string[]>();
    for (const [k, label] of entries) by.set(label, [...(by.get(label) ?? []), k]);
    return [...by].map(([label, keys]) => `${label} ${some(keys.sort())}`).join("; ");
}

export function hostSummary(d: HostDetail): string {
    const f = d.facts;
    const a = d.applied as unknown as AppliedView & { elevators: Record<string, { scheduler?: string }> };
    const cpus = f.numaNodes.flatMap((n) => n.cpus);
    const parts = [`kernel ${f.kernel}`, `libvirt ${f.libvirt ?? "absent"}`, `${f.numaNodes.length} NUMA node${f.numaNodes.length === 1 ? "" : "s"}, CPUs ${cpuList(cpus)}`];
    for (const [size, nodes] of Object.entries(a.hugepagePools ?? {})) {
        const ids = Object.keys(nodes).sort((x, y) => Number(x) - Number(y));
        parts.push(`${size} pages ${ids.map((n) => `${nodes[n].total}`).join("+")} (free ${ids.map((n) => `${nodes[n].free}`).join("+")})`);
    }
    const elevators = Object.entries(a.elevators ?? {});
    if (elevators.length) parts.push(`elevators: ${grouped(elevators.map(([device, e]) => [device, e.scheduler ?? "?"]))}`);
    for (const [pf, n] of Object.entries(a.sriovNics ?? {})) parts.push(`${pf}: ${n.vfs.length} VF${n.vfs.length === 1 ? "" : "s"}`);
    const networks = Object.entries(a.vhostNetworks ?? {});
    if (networks.length) parts.push(`networks: ${grouped(networks.map(([name, n]) => [`${name} (${n.bridge})`, n.active ? "active" : "inactive"]))}`);
    const guests = Object.entries(a.guests ?? {}).sort(([x], [y]) => x.localeCompare(y));
    if (guests.length) {
        const shown = guests.slice(0, 3).map(([name, g]) => `${name} ${g.state}${g.cpuPins?.length ? ` on CPUs ${cpuList(g.cpuPins.flat())}` : ""}`);
        parts.push(`guests: ${shown.join(", ")}${guests.length > 3 ? ` +${guests.length - 3} more` : ""}`);
    }
    return `${f.hostname}: ${parts.join("; ")}`;
}

/** Writes `<dir>/<host>.json` (atomically, as the picture is written) and returns its full path. */
export function writeHostDetail(detail: HostDetail & { topology: string | null }, dir: string, hostName: string): string {
    const file = path.resolve(dir, `${hostName}.json`);
    fs.mkdirSync(path.dirname(file), { recursive: true });
    const tmp = `${file}.tmp-${process.pid}`;
    fs.writeFileSync(tmp, JSON.stringify(detail, null, 2) + "\n");
    fs.renameSync(tmp, file);
    return file;
}
