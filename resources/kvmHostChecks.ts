/**
 * Cross-resource checks of one host's tuning, run by KvmHost before any resource is declared.
 *
 * Each resource checks itself against the host when it is applied; what no single resource can see
 * is the sum of them: two guests pinned to one CPU (explicit pins before the host is read; `auto`
 * pins once the host's NUMA nodes are known, see autoPinShortfalls), guests asking a node for more huge page memory
 * than the pools give it, a VF handed to a guest on the other NUMA node. Values that are not known
 * yet (Outputs of other resources) are skipped here and left to the resources' own checks.
 */
import { parseCpuList } from "./host/sysfs";

/** The parts of a guest these checks read, as plain values. */
export interface GuestPlan {
    name: string;
    vcpus?: unknown;
    memoryMiB?: unknown;
    numaNode?: unknown;
    nodeset?: unknown;
    cpuPins?: unknown;
    emulatorPin?: unknown;
    iothreadPins?: unknown;
    hugepages?: unknown;
    interfaces?: unknown;
}

/** The parts of a pool these checks read. */
export interface PoolPlan {
    pageSize?: unknown;
    nodes?: unknown;
    total?: unknown;
}

const PAGE_MIB: Record<string, number> = { "2M": 2, "1G": 1024 };

/** A CPU set input (`2`, `[2, 3]`, `"2-3"`) as CPUs, or null when it is not a plain value. */
export function cpusOf(v: unknown): number[] | null {
    if (typeof v === "number" && Number.isInteger(v)) return [v];
    if (typeof v === "string") {
        try {
            return parseCpuList(v);
        } catch {
            return null;
        }
    }
    if (Array.isArray(v) && v.every((c) => typeof c === "number" && Number.isInteger(c))) return v as number[];
    return null;
}

/** The single NUMA node a guest's memory is bound to, or null (several nodes, or not known yet). */
export function guestNode(g: GuestPlan): number | null {
    if (typeof g.numaNode === "number") return g.numaNode;
    const set = g.nodeset === undefined ? null : cpusOf(g.nodeset);
    return set && set.length === 1 ? set[0] : null;
}

/**
 * Errors: a host CPU that the vCPUs of two guests (or two vCPUs' sets of different guests) hold,
 * and an emulator or I/O thread pin on CPUs another guest's vCPUs hold.
 */
export function overlappingPins(guests: GuestPlan[]): string[] {
    const holder = new Map<number, string>();
    const problems: string[] = [];
    for (const g of guests) {
        if (!Array.isArray(g.cpuPins)) continue; // "auto" or not known yet: the provider picks free CPUs
        const mine = new Set<number>();
        for (const pin of g.cpuPins) for (const cpu of cpusOf(pin) ?? []) mine.add(cpu);
        for (const cpu of [...mine].sort((a, b) => a - b)) {
            const other = holder.get(cpu);
            if (other !== undefined) problems.push(`CPU ${cpu} is pinned to the vCPUs of both guest ${other} and guest ${g.name}`);
            else holder.set(cpu, g.name);
        }
    }
    // An emulator or I/O thread on another guest's vCPU CPUs steals that guest's time: the
    // provider refuses it on the host (against running guests); here it is refused before any
    // guest of this host is declared, against the guests declared beside it.
    for (const g of guests) {
        const threads: Array<[string, unknown]> = [["emulatorPin", g.emulatorPin]];
        if (Array.isArray(g.iothreadPins)) g.iothreadPins.forEach((p, n) => threads.push([`iothreadPins.${n}`, p]));
        for (const [field, pin] of threads) {
            const clash = new Map<string, number[]>();
            for (const cpu of cpusOf(pin) ?? []) {
                const other = holder.get(cpu);
                if (other !== undefined && other !== g.name) clash.set(other, [...(clash.get(other) ?? []), cpu]);
            }
            for (const [other, cpus] of clash) {
                problems.push(`guest ${g.name} ${field}: CPU ${cpus.join(",")} ${cpus.length > 1 ? "are" : "is"} pinned to the vCPUs of guest ${other}; give the thread CPUs no other guest's vCPUs use`);
            }
        }
    }
    return problems;
}

/** A NUMA node as HostFacts reports it: its id and CPUs. */
export interface NodeCpus {
    id: number;
    cpus: number[];
}

/**
 * Errors, once the host's nodes are known: guests with `cpuPins: "auto"` that cannot all get CPUs
 * of their nodes that no other declared guest's vCPUs hold. The providers choose auto pins one at a
 * time on the host and would refuse the last guest only when its turn came; here the refusal comes
 * before any of them is created, and names every guest that competes for the node.
 */
export function autoPinShortfalls(guests: GuestPlan[], nodes: NodeCpus[]): string[] {
    const pinned = new Map<number, string>();
    for (const g of guests) {
        if (!Array.isArray(g.cpuPins)) continue;
        for (const pin of g.cpuPins) for (const cpu of cpusOf(pin) ?? []) if (!pinned.has(cpu)) pinned.set(cpu, g.name);
    }
    // Auto guests grouped by the node set they draw CPUs from.
    const groups = new Map<string, { nodes: number[]; guests: Array<{ name: string; vcpus: number }> }>();
    for (const g of guests) {
        if (g.cpuPins !== "auto" && g.cpuPins !== undefined) continue;
        const set = typeof g.numaNode === "number" ? [g.numaNode] : g.nodeset === undefined ? null : cpusOf(g.nodeset);
        if (!set || typeof g.vcpus !== "number") continue; // not known yet: the provider checks it on the host
        const key = [...set].sort((a, b) => a - b).join(",");
        const group = groups.get(key) ?? { nodes: set, guests: [] };
        group.guests.push({ name: g.name, vcpus: g.vcpus });
        groups.set(key, group);
    }
    const problems: string[] = [];
    for (const { nodes: ids, guests: auto } of groups.values()) {
        const cpus = nodes.filter((n) => ids.includes(n.id)).flatMap((n) => n.cpus).sort((a, b) => a - b);
        const free = cpus.filter((c) => !pinned.has(c));
        const need = auto.reduce((s, g) => s + g.vcpus, 0);
        if (need <= free.length) continue;
        const holders = [...new Set(cpus.filter((c) => pinned.has(c)).map((c) => pinned.get(c) as string))];
        const held = holders.map((h) => `guest ${h} pins ${cpus.filter((c) => pinned.get(c) === h).join(",")}`);
        problems.push(
            `node ${ids.join(",")} has ${cpus.length} CPU(s) (${cpus.join(",") || "none"})${held.length ? `, ${held.join(", ")}` : ""}: ` +
                `guest${auto.length > 1 ? "s" : ""} ${auto.map((g) => `${g.name} (${g.vcpus} vCPUs)`).join(", ")} with cpuPins auto need ${need} CPUs no other guest holds, ${free.length} remain`,
        );
    }
    return problems;
}

/**
 * Errors: per page size and node, the huge page memory the guests bound to that node need beyond
 * what the declared pools hold there. A pool sized by `total` counts for every node (the kernel
 * spreads it), so only per-node pools give a firm bound; guests over several nodes are skipped, and
 * so are `hugepages: "default"` guests until `defaultSize` (the host's Hugepagesize) is given.
 */
export function hugepageShortfalls(guests: GuestPlan[], pools: PoolPlan[], defaultSize: string | null = null): string[] {
    const problems: string[] = [];
    const need = new Map<string, { mib: number; guests: string[] }>();
    for (const g of guests) {
        // `default` is the host's default huge page size: known only with the host's facts.
        const size = g.hugepages === "default" ? defaultSize : g.hugepages;
        const node = guestNode(g);
        if (typeof size !== "string" || !PAGE_MIB[size] || node === null || typeof g.memoryMiB !== "number") continue;
        const key = `${size}/${node}`;
        const entry = need.get(key) ?? { mib: 0, guests: [] };
        entry.mib += Math.ceil(g.memoryMiB / PAGE_MIB[size]) * PAGE_MIB[size];
        entry.guests.push(g.name);
        need.set(key, entry);
    }
    for (const [key, { mib, guests: names }] of need) {
        const [size, node] = key.split("/");
        const pagesOf = (p: PoolPlan): number | null => {
            if (p.pageSize !== size) return 0;
            if (p.nodes && typeof p.nodes === "object") {
                const n = (p.nodes as Record<string, unknown>)[node];
                return n === undefined ? 0 : typeof n === "number" ? n : null;
            }
            return typeof p.total === "number" ? p.total : null;
        };
        const counts = pools.map(pagesOf);
        if (counts.some((c) => c === null)) continue; // a pool size not known yet
        const have = (counts as number[]).reduce((a, b) => a + b, 0) * PAGE_MIB[size];
        if (mib > have) {
            problems.push(
                `node ${node}: guests ${names.join(", ")} need ${mib} MiB of ${size} huge pages, the pools declared for this host give ${have} MiB`,
            );
        }
    }
    return problems;
}

/** A NIC's place as HostFacts reports it. */
export interface NicPlace {
    name: string;
    numaNode: number | null;
}

/** Warnings: a guest given a VF of a PF on another NUMA node than the guest's memory. */
export function remoteVfs(guests: GuestPlan[], nics: NicPlace[]): string[] {
    const warnings: string[] = [];
    for (const g of guests) {
        const node = guestNode(g);
        if (node === null || !Array.isArray(g.interfaces)) continue;
        g.interfaces.forEach((f: unknown, n: number) => {
            const vf = (f as { hostdevVf?: { pf?: unknown; vf?: unknown } } | null)?.hostdevVf;
            if (!vf || typeof vf.pf !== "string") return;
            const pf = nics.find((nic) => nic.name === vf.pf);
            if (pf && pf.numaNode !== null && pf.numaNode !== node) {
                warnings.push(
                    `guest ${g.name} interface ${n}: VF ${String(vf.vf)} of ${vf.pf} sits on NUMA node ${pf.numaNode}, the guest on node ${node}: its traffic crosses the interconnect`,
                );
            }
        });
    }
    return warnings;
}
