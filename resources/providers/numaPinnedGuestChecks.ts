/**
 * NumaPinnedGuest's checks against the host before anything changes: pins resolved and checked,
 * huge page pools, networks and VFs; and the one parallel read of the host those checks need.
 */
import { gatherFacts, HostFactsData, pageSizeKb } from "../host/facts";
import { shellQuote } from "../host/quote";
import { Remote, runScript } from "../host/remote";
import { buildDumpScript, formatCpuList, parseDump } from "../host/sysfs";
import { isHostdev, parseDomainXml, ParsedDomain } from "../libvirt/domain";
import { GuestDefaults, networkGuestDefaults } from "../libvirt/network";
import { readAllDomains } from "../libvirt/virsh";
import { PCI_ADDRESS } from "../patterns";
import { NumaPinnedGuestInputs, sorted } from "./numaPinnedGuestSchema";
import { nodesOf } from "./numaPinnedGuestSpec";

/** Another domain on the host, as far as pin conflicts go. */
export interface OtherGuest {
    name: string;
    uuid: string;
    /** CPUs its vCPUs are pinned to (none when unpinned). */
    vcpuCpus: number[];
}

export interface HostView {
    facts: HostFactsData;
    others: OtherGuest[];
    /** Networks among those the inputs name that exist. */
    networks: Set<string>;
    /** Their guest defaults (empty for networks without a VhostNetwork's mark). */
    netDefaults?: ReadonlyMap<string, GuestDefaults>;
    /** Per interface: the VF's PCI address when found (null: not found or not a VF interface). */
    vfs: Array<string | null>;
    /** Per interface: what the host says about the VF (null: not found or not a VF interface). */
    vfFacts?: Array<VfFacts | null>;
    /** VFs other guests on the host are handed (their `<interface type='hostdev'>`), by PCI address. */
    vfHolders?: ReadonlyMap<string, string>;
}

/** A VF as the host has it: what handing it to a guest depends on. */
export interface VfFacts {
    pciAddress: string;
    /** Its IOMMU group; null when the host's IOMMU is off (no group: vfio-pci cannot take it). */
    iommuGroup: string | null;
    /** Its NUMA node (the PF's); null when the host does not say. */
    numaNode: number | null;
    /** Its PF's interface name and whether the PF is up (libvirt refuses a VF of a PF that is down). */
    pf: string | null;
    pfUp: boolean | null;
}

/**
 * Resolves the vCPU pins: explicit ones as given; `auto` keeps the previous choice when it is still
 * free and on the nodes, else picks distinct CPUs of the nodes, preferring CPUs the guest's own
 * emulator and I/O threads do not use and, among those, CPUs the kernel isolated (no timer ticks,
 * RCU callbacks or stray kernel threads there: what isolation was asked for). Throws when the
 * nodes do not have enough free CPUs.
 */
export function resolvePins(i: NumaPinnedGuestInputs, host: HostView, previous?: number[][]): number[][] {
    if (i.cpuPins !== "auto") return i.cpuPins;
    const nodes = nodesOf(i) ?? [];
    const onNodes = sorted(host.facts.numaNodes.filter((n) => nodes.includes(n.id)).flatMap((n) => n.cpus));
    const taken = new Set(host.others.flatMap((o) => o.vcpuCpus));
    const free = onNodes.filter((c) => !taken.has(c));
    if (previous && previous.length === i.vcpus && previous.every((p) => p.length === 1 && free.includes(p[0])) && new Set(previous.map((p) => p[0])).size === i.vcpus) {
        return previous;
    }
    const ours = new Set([...(i.emulatorPin ?? []), ...(i.iothreadPins ?? []).flat()]);
    const isolated = new Set(host.facts.isolatedCpus);
    const isolatedFirst = (cpus: number[]) => [...cpus.filter((c) => isolated.has(c)), ...cpus.filter((c) => !isolated.has(c))];
    const pick = [...isolatedFirst(free.filter((c) => !ours.has(c))), ...isolatedFirst(free.filter((c) => ours.has(c)))];
    if (pick.length < i.vcpus) {
        throw new Error(
            `cpuPins: auto needs ${i.vcpus} CPUs of node(s) ${formatCpuList(nodes)} that no other guest's vCPUs hold; ` +
                `${host.facts.hostname} has ${pick.length} (${formatCpuList(pick) || "none"}; ${holdersOn(host.others, onNodes)})`,
        );
    }
    return pick.slice(0, i.vcpus).map((c) => [c]);
}

/** Where QEMU's emulator threads run: `cpus` null leaves them unpinned; `reason` says why kvmtune chose the CPUs (null: the inputs did). */
export interface EmulatorPlacement {
    cpus: number[] | null;
    reason: string | null;
}

/**
 * The emulator's CPUs: `emulatorPin` as given; left out, unpinned, except for a huge page guest
 * whose bound node(s) have only isolated CPUs. QEMU preallocates huge pages from a thread bound to
 * those nodes, which fails unless the emulator may run there (see checkAgainstHost), and libvirt's
 * QEMU driver leaves isolated CPUs (/sys/devices/system/cpu/isolated) out of an unpinned emulator's
 * affinity. The only node CPUs that then take no other guest's time are this guest's own vCPU CPUs:
 * the emulator shares them.
 */
export function resolveEmulatorPin(i: NumaPinnedGuestInputs, vcpuPins: number[][], facts: Pick<HostFactsData, "numaNodes" | "isolatedCpus">): EmulatorPlacement {
    if (i.emulatorPin) return { cpus: i.emulatorPin, reason: null };
    const nodes = nodesOf(i);
    if (!i.hugepages || !nodes) return { cpus: null, reason: null };
    const onNodes = sorted(facts.numaNodes.filter((n) => nodes.includes(n.id)).flatMap((n) => n.cpus));
    const isolated = new Set(facts.isolatedCpus);
    if (onNodes.length === 0 || !onNodes.every((c) => isolated.has(c))) return { cpus: null, reason: null };
    const ownOnNodes = sorted(vcpuPins.flat().filter((c) => onNodes.includes(c)));
    if (ownOnNodes.length === 0) return { cpus: null, reason: null }; // vCPUs off the nodes: refused by checkAgainstHost
    return {
        cpus: ownOnNodes,
        reason:
            `the emulator shares the guest's vCPU CPUs ${formatCpuList(ownOnNodes)}: every CPU of node(s) ${formatCpuList(nodes)} (${formatCpuList(onNodes)}) is isolated, ` +
            `libvirt keeps an unpinned emulator off isolated CPUs, and QEMU preallocates the huge pages from a thread on the bound node(s); set emulatorPin to choose other CPUs`,
    };
}

/** Who holds which of these CPUs, by guest name: "held by guest web (2-3)", or "none held by other guests". */
function holdersOn(others: OtherGuest[], cpus: number[]): string {
    const held = others.map((o) => ({ name: o.name, cpus: o.vcpuCpus.filter((c) => cpus.includes(c)) })).filter((o) => o.cpus.length > 0);
    return held.length ? "held by " + held.map((o) => `guest ${o.name} (${formatCpuList(o.cpus)})`).join(", ") : "none held by other guests";
}

/** The page size a guest's `hugepages` means on this host (`default`: the host's default), or null. */
export function pageSizeOf(hugepages: NumaPinnedGuestInputs["hugepages"], facts: Pick<HostFactsData, "defaultHugepageSize">): string | null {
    if (!hugepages) return null;
    return hugepages === "default" ? (facts.defaultHugepageSize ?? null) : hugepages;
}

/** Pages a guest of this size takes from its pool. */
export function pagesFor(memoryMiB: number, size: string): number {
    return Math.ceil((memoryMiB * 1024) / pageSizeKb(size));
}

/**
 * Everything that must hold before the host changes, as messages naming field, value and what the
 * host has. `pagesHeld`: huge pages this guest holds now and gives back before it starts again.
 */
export function checkAgainstHost(
    i: NumaPinnedGuestInputs,
    pins: number[][],
    host: HostView,
    opts: { willStart: boolean; pagesHeld?: number } = { willStart: true },
): string[] {
    const { facts } = host;
    const problems: string[] = [];
    const nodes = nodesOf(i);
    const nodeIds = facts.numaNodes.map((n) => n.id);
    for (const n of nodes ?? []) {
        if (!nodeIds.includes(n)) problems.push(`${i.numaNode !== undefined ? "numaNode" : "nodeset"}: ${facts.hostname} has no NUMA node ${n}; it has ${nodeIds.join(", ")}`);
    }
    const online = new Set(facts.cpusOnline);
    const onNodes = new Set(facts.numaNodes.filter((n) => nodes?.includes(n.id)).flatMap((n) => n.cpus));
    pins.forEach((set, vcpu) => {
        for (const c of set) {
            if (!online.has(c)) problems.push(`cpuPins.${vcpu}: CPU ${c} does not exist on ${facts.hostname} (online: ${formatCpuList(facts.cpusOnline)})`);
            else if (nodes && !onNodes.has(c)) {
                problems.push(`cpuPins.${vcpu}: CPU ${c} is not on node(s) ${formatCpuList(nodes)} (their CPUs: ${formatCpuList([...onNodes]) || "none"})`);
            }
        }
    });
    for (const o of host.others) {
        const clash = sorted(pins.flat().filter((c) => o.vcpuCpus.includes(c)));
        if (clash.length) problems.push(`cpuPins: CPU ${formatCpuList(clash)} already pinned to vCPUs of guest ${o.name} (${o.uuid}); a CPU serves one guest's vCPUs`);
    }
    // QEMU's emulator and I/O threads take CPU time in bursts (device emulation, disk completions):
    // on another guest's vCPU CPU they preempt that guest's vCPUs, the latency pinning is there to avoid.
    const threadPins: Array<[string, number[]]> = [["emulatorPin", i.emulatorPin ?? []], ...(i.iothreadPins ?? []).map((set, n): [string, number[]] => [`iothreadPins.${n}`, set])];
    for (const [field, set] of threadPins) {
        for (const o of host.others) {
            const clash = set.filter((c) => o.vcpuCpus.includes(c));
            if (clash.length) problems.push(`${field}: CPU ${formatCpuList(clash)} already pinned to vCPUs of guest ${o.name} (${o.uuid}); pin this guest's threads off other guests' vCPU CPUs`);
        }
    }
    for (const c of i.emulatorPin ?? []) if (!online.has(c)) problems.push(`emulatorPin: CPU ${c} does not exist on ${facts.hostname} (online: ${formatCpuList(facts.cpusOnline)})`);
    // libvirt 9.0 preallocates huge page memory in a QEMU thread-context bound to the memory's
    // nodes; inside an emulator cgroup with none of those nodes' CPUs, QEMU then dies with
    // "Setting CPU affinity failed: Invalid argument" (seen on the lab: libvirt 9.0, QEMU 7.2).
    if (i.hugepages && nodes && i.emulatorPin && !i.emulatorPin.some((c) => onNodes.has(c))) {
        problems.push(
            `emulatorPin: ${formatCpuList(i.emulatorPin)} has no CPU of node(s) ${formatCpuList(nodes)} (${formatCpuList([...onNodes]) || "none"}); ` +
                `QEMU preallocates the huge pages from a thread bound to those nodes and fails to start when the emulator may not run there`,
        );
    }
    (i.iothreadPins ?? []).forEach((set, n) => {
        for (const c of set) if (!online.has(c)) problems.push(`iothreadPins.${n}: CPU ${c} does not exist on ${facts.hostname}`);
    });
    // `default` is the host's default huge page size (Hugepagesize in /proc/meminfo), not always 2M.
    const size = pageSizeOf(i.hugepages, facts);
    if (i.hugepages && size === null) {
        problems.push(`hugepages: default, but ${facts.hostname} reports no default huge page size (no Hugepagesize in /proc/meminfo)`);
    } else if (size !== null && i.hugepages === "default" && (i.memoryMiB * 1024) % pageSizeKb(size) !== 0) {
        problems.push(`memoryMiB: ${i.memoryMiB} is not a whole number of ${facts.hostname}'s default huge pages (${size})`);
    } else if (size !== null) {
        const label = i.hugepages === "default" ? `${size} (the host's default)` : size;
        if (!facts.hugepageSizes.includes(size)) {
            problems.push(`hugepages: ${facts.hostname} offers ${facts.hugepageSizes.join(", ") || "no huge pages"}, not ${label}`);
        } else if (opts.willStart) {
            const need = pagesFor(i.memoryMiB, size) - (opts.pagesHeld ?? 0);
            const pool = facts.numaNodes.filter((n) => (nodes ?? nodeIds).includes(n.id));
            const free = pool.reduce((s, n) => s + (n.hugepages[size]?.free ?? 0), 0);
            if (need > free) {
                problems.push(
                    `hugepages: the guest needs ${need} free ${label} pages on node(s) ${formatCpuList(pool.map((n) => n.id))}, ` +
                        `${facts.hostname} has ${free} (${pool.map((n) => `node ${n.id}: ${n.hugepages[size]?.free ?? 0} free of ${n.hugepages[size]?.total ?? 0}`).join(", ")}); ` +
                        `grow the pool (HugepagePool) first`,
                );
            }
        }
    }
    i.interfaces.forEach((f, n) => {
        if ("network" in f && !host.networks.has(f.network)) problems.push(`interfaces.${n}.network: ${facts.hostname} has no libvirt network ${f.network}`);
        if ("hostdevVf" in f && !host.vfs[n]) {
            const v = f.hostdevVf;
            problems.push(`interfaces.${n}.hostdevVf: ${"pf" in v ? `${v.pf} has no VF ${v.vf}` : `no PCI device ${v.pciAddress}`} on ${facts.hostname}`);
        } else if ("hostdevVf" in f && host.vfFacts?.[n]) {
            problems.push(...vfProblems(`interfaces.${n}.hostdevVf`, host.vfFacts[n]!, f.allowOtherNode === true, nodes, host, opts.willStart));
        }
    });
    return problems;
}

/**
 * What handing a VF to this guest needs from the host, checked before anything changes: an IOMMU
 * group (vfio-pci binds a group, and without the IOMMU there is none), no other guest holding it,
 * the guest's own NUMA node (a VF of a PF on another node crosses the interconnect on every
 * packet: refused unless the interface says allowOtherNode), and, for a guest about to start, its
 * PF up (libvirt refuses "the PF is not online" otherwise).
 */
function vfProblems(field: string, vf: VfFacts, allowOtherNode: boolean, nodes: number[] | null | undefined, host: HostView, willStart: boolean | undefined): string[] {
    const problems: string[] = [];
    const where = host.facts.hostname;
    if (vf.iommuGroup === null) {
        problems.push(`${field}: VF ${vf.pciAddress} on ${where} is in no IOMMU group: the host's IOMMU is off; turn it on (KernelCmdline iommu, e.g. intel_iommu=on) and reboot`);
    }
    const holder = host.vfHolders?.get(vf.pciAddress);
    if (holder !== undefined) problems.push(`${field}: VF ${vf.pciAddress} on ${where} is already handed to guest ${holder}; a VF serves one guest`);
    if (nodes && nodes.length > 0 && vf.numaNode !== null && !nodes.includes(vf.numaNode) && !allowOtherNode) {
        problems.push(
            `${field}: VF ${vf.pciAddress} sits on node ${vf.numaNode}${vf.pf ? ` (its PF ${vf.pf})` : ""}, the guest on node(s) ${formatCpuList(nodes)}; ` +
                `use a VF of a PF on the guest's node, or set allowOtherNode: true on the interface`,
        );
    }
    if (willStart && vf.pfUp === false) {
        problems.push(`${field}: the PF ${vf.pf} of VF ${vf.pciAddress} is down on ${where}, and libvirt refuses to start a guest on a VF of a PF that is down; bring it up (SriovNic keeps its PF up)`);
    }
    return problems;
}

/** Finds each hostdev interface's VF on the host (one round trip). */
export async function resolveVfs(remote: Remote, i: NumaPinnedGuestInputs): Promise<Array<string | null>> {
    return (await resolveVfFacts(remote, i)).map((v) => v?.pciAddress ?? null);
}

/**
 * Each hostdev interface's VF and what the host says about it, in one round trip: its address,
 * IOMMU group, NUMA node, and its PF's name and IFF_UP flag. One line of words per VF.
 */
export async function resolveVfFacts(remote: Remote, i: NumaPinnedGuestInputs): Promise<Array<VfFacts | null>> {
    const commands: Record<string, string> = {};
    i.interfaces.forEach((f, n) => {
        if (!("hostdevVf" in f)) return;
        const v = f.hostdevVf;
        const dev = "pf" in v ? `"$(readlink -f ${shellQuote(`/sys/class/net/${v.pf}/device/virtfn${v.vf}`)})"` : shellQuote(`/sys/bus/pci/devices/${v.pciAddress}`);
        commands[`vf${n}`] = [
            `d=${dev}; [ -e "$d/physfn" ] || [ -e "$d/vendor" ] || exit 1`,
            `g=$(readlink -f "$d/iommu_group" 2>/dev/null); pf=$(ls "$d/physfn/net" 2>/dev/null | head -n 1)`,
            `echo "\${d##*/} \${g:+\${g##*/}} $(cat "$d/numa_node" 2>/dev/null) \${pf:--} $(cat "$d/physfn/net/$pf/flags" 2>/dev/null || echo -)"`,
        ].join("\n");
    });
    if (Object.keys(commands).length === 0) return i.interfaces.map(() => null);
    const dump = parseDump(await runScript(remote, buildDumpScript({ commands })));
    return i.interfaces.map((_f, n) => {
        const c = dump.commands.get(`vf${n}`);
        return c?.code === 0 ? parseVfFacts(c.stdout) : null;
    });
}

/** One VF's line from resolveVfFacts: `ADDRESS [GROUP] NUMA PF FLAGS` (GROUP absent without an IOMMU). */
export function parseVfFacts(line: string): VfFacts | null {
    const w = line.trim().split(/\s+/);
    if (!PCI_ADDRESS.test(w[0] ?? "")) return null;
    const [group, numa, pf, flags] = w.length >= 5 ? w.slice(1) : [null, ...w.slice(1)];
    const node = Number(numa);
    return {
        pciAddress: w[0],
        iommuGroup: group ?? null,
        numaNode: Number.isInteger(node) && node >= 0 ? node : null,
        pf: pf && pf !== "-" ? pf : null,
        // IFF_UP is bit 0 of the flags (`0x1003`).
        pfUp: flags && flags !== "-" ? (Number.parseInt(flags, 16) & 1) === 1 : null,
    };
}

export const networkNames = (i: NumaPinnedGuestInputs) => [...new Set(i.interfaces.flatMap((f) => ("network" in f ? [f.network] : [])))];

/** Facts, other guests' pins, networks and VFs: what the checks need, read in parallel. */
export async function viewHost(remote: Remote, i: NumaPinnedGuestInputs, selfUuid?: string): Promise<HostView & { domains: ParsedDomain[] }> {
    const [facts, all, nets, vfFacts] = await Promise.all([gatherFacts(remote), readAllDomains(remote), networkGuestDefaults(remote, networkNames(i)), resolveVfFacts(remote, i)]);
    const domains = [...all.values()].map((xml) => parseDomainXml(xml));
    const vfs = vfFacts.map((v) => v?.pciAddress ?? null);
    // Another guest's hostdev interface holds its VF (this guest's own, by uuid or by name, does not).
    const vfHolders = new Map(
        domains
            .filter((d) => d.uuid !== selfUuid && d.spec.name !== i.name)
            .flatMap((d) => d.spec.interfaces.filter(isHostdev).map((f) => [f.pciAddress, d.spec.name] as [string, string])),
    );
    const others = domains
        .filter((d) => d.uuid !== selfUuid)
        .map((d) => ({ name: d.spec.name, uuid: d.uuid, vcpuCpus: sorted(d.spec.vcpuPins.flat()) }))
        .filter((o) => o.vcpuCpus.length > 0);
    return { facts, others, networks: new Set(nets.keys()), netDefaults: nets, vfs, vfFacts, vfHolders, domains };
}
