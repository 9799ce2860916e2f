/**
 * What ended up where on a host after a deployment: NUMA nodes with their CPUs and huge pages, the
 * guests and the CPUs they are pinned to, PFs with their VFs and the guest holding each, and the
 * networks with the guests on them.
 *
 * The program draws it from what the host's resources already read back (`topologyFromApplied`:
 * HostFacts, the pools' counts, the guests' state and pins, the VFs, the networks), so an `up` opens
 * no second SSH connection per host (issue 10).
 */
import { HostFactsData, pageSizeKb } from "../resources/host/facts";
import { parseCpuList } from "../resources/host/sysfs";

export interface TopologyGuest {
    name: string;
    running: boolean;
    vcpus: number;
    memoryMiB: number;
    /** One CPU set per vCPU (empty: not pinned). */
    vcpuPins: number[][];
    emulatorPin: number[] | null;
    iothreadPins: number[][];
    nodeset: number[] | null;
    hugepages: string | null;
}

export interface TopologyVf {
    index: number;
    pciAddress: string;
    /** The guest that holds it as a hostdev, if any. */
    guest: string | null;
}

export interface TopologyPf {
    name: string;
    pciAddress: string | null;
    numaNode: number | null;
    totalVfs: number;
    vfs: TopologyVf[];
}

export interface TopologyNetwork {
    name: string;
    bridge: string | null;
    active: boolean;
    guests: string[];
}

export interface Topology {
    hostname: string;
    nodes: Array<{ id: number; cpus: number[]; memoryMiB: number; hugepages: Record<string, { total: number; free: number }> }>;
    guests: TopologyGuest[];
    pfs: TopologyPf[];
    networks: TopologyNetwork[];
}

/** A CPU set as a user writes it (`3`, `[2, 3]`, `"2-3"`), as numbers. */
function cpuSet(v: unknown): number[] | null {
    if (v === undefined || v === null) return null;
    if (typeof v === "number") return [v];
    if (Array.isArray(v)) return v.map(Number);
    return parseCpuList(String(v));
}

/** KvmHost's `applied` output, as resources/kvmHost.ts builds it, as far as the picture needs it. */
export interface AppliedView {
    /** Per page size, per node: the pool as read back. */
    hugepagePools: Record<string, Record<string, { total: number; free: number }>>;
    sriovNics: Record<string, { pf: string; numaNode: number | null; vfs: Array<{ vf: number; pciAddress: string }> }>;
    vhostNetworks: Record<string, { bridge: string; active: boolean }>;
    guests: Record<string, { state: string; cpuPins: number[][] }>;
}

/** What the facts resource reported, as far as the picture needs it. */
export type PictureFacts = Pick<HostFactsData, "hostname" | "numaNodes" | "nics">;

/**
 * The picture's data from the outputs a KvmHost's children already hold after `up`: nothing is read
 * from the host here. Huge page counts come from the pools (read back after they were applied),
 * falling back to the facts for sizes no pool manages; guests are the ones declared, with the pins
 * and state their resources read back; a VF's holder is the declared guest that takes it.
 */
export function topologyFromApplied(facts: PictureFacts, applied: AppliedView, guestsDeclared: ReadonlyArray<Record<string, unknown>>): Topology {
    const guests: TopologyGuest[] = guestsDeclared.map((g) => {
        const name = String(g.name);
        const a = applied.guests[name];
        const nodeset = cpuSet(g.nodeset) ?? (g.numaNode !== undefined ? [Number(g.numaNode)] : null);
        return {
            name,
            running: a?.state === "running",
            vcpus: Number(g.vcpus),
            memoryMiB: Number(g.memoryMiB),
            vcpuPins: a?.cpuPins ?? [],
            emulatorPin: cpuSet(g.emulatorPin),
            iothreadPins: Array.isArray(g.iothreadPins) ? g.iothreadPins.map((s) => cpuSet(s) ?? []) : [],
            nodeset,
            hugepages: typeof g.hugepages === "string" ? g.hugepages : null,
        };
    });
    // Who holds each VF: a declared guest's hostdev interface, by PF and index or by PCI address.
    const holderOf = (pf: string, pfPci: string | null, vf: number, pci: string): string | null => {
        for (const g of guestsDeclared) {
            for (const f of (g.interfaces as Array<Record<string, unknown>> | undefined) ?? []) {
                const h = f.hostdevVf as { pf?: string; vf?: number; pciAddress?: string } | undefined;
                if (!h) continue;
                if (h.pciAddress === pci || (h.vf === vf && (h.pf === pf || (pfPci !== null && h.pf === pfPci)))) return String(g.name);
            }
        }
        return null;
    };
    const pfs: TopologyPf[] = facts.nics
        .filter((n) => (n.sriovTotalVfs ?? 0) > 0)
        .map((n) => {
            const managed = Object.values(applied.sriovNics).find((s) => s.pf === n.name);
            const vfs = (managed?.vfs ?? [])
                .map((d) => ({ index: d.vf, pciAddress: d.pciAddress, guest: holderOf(n.name, n.pciAddress, d.vf, d.pciAddress) }))
                .sort((a, b) => a.index - b.index);
            return { name: n.name, pciAddress: n.pciAddress, numaNode: managed?.numaNode ?? n.numaNode, totalVfs: n.sriovTotalVfs ?? 0, vfs };
        });
    const networks: TopologyNetwork[] = Object.entries(applied.vhostNetworks).map(([name, n]) => ({
        name,
        bridge: n.bridge ?? null,
        active: n.active === true,
        guests: guestsDeclared
            .filter((g) => ((g.interfaces as Array<Record<string, unknown>> | undefined) ?? []).some((f) => f.network === name))
            .map((g) => String(g.name)),
    }));
    return {
        hostname: facts.hostname,
        nodes: facts.numaNodes.map((n) => {
            const hugepages: Record<string, { total: number; free: number }> = Object.fromEntries(
                Object.entries(n.hugepages).map(([size, p]) => [size, { total: p.total, free: p.free }]),
            );
            for (const [size, pools] of Object.entries(applied.hugepagePools)) {
                const p = pools[String(n.id)];
                if (p) hugepages[size] = { total: p.total, free: p.free };
            }
            // A pool's counts may predate the guests (read when the pool was applied, before the
            // guests that depend on it started): a running guest bound to this node alone holds its
            // memory in pages here, so at least that much is used.
            for (const [size, pool] of Object.entries(hugepages)) {
                const held = guests
                    .filter((g) => g.running && g.hugepages === size && g.nodeset?.length === 1 && g.nodeset[0] === n.id)
                    .reduce((sum, g) => sum + Math.ceil((g.memoryMiB * 1024) / pageSizeKb(size)), 0);
                const used = Math.min(pool.total, Math.max(pool.total - pool.free, held));
                hugepages[size] = { total: pool.total, free: pool.total - used };
            }
            return { id: n.id, cpus: n.cpus, memoryMiB: n.memoryMiB, hugepages };
        }),
        guests,
        pfs,
        networks,
    };
}
