/**
 * NumaPinnedGuest's checks against the host before anything changes: pins resolved and checked,
 * huge page pools, networks and VFs; and the one parallel read of the host those checks need.
 */
import { gatherFacts, HostFactsData, pageSizeKb } from "../host/facts";
import { shellQuote } from "../host/quote";
import { Remote, runScript } from "../host/remote";
import { buildDumpScript, formatCpuList, parseDump } from "../host/sysfs";
import { parseDomainXml, ParsedDomain } from "../libvirt/domain";
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
}

/**
 * Resolves the vCPU pins: explicit ones as given; `auto` keeps the previous choice when it is still
 * free and on the nodes, else picks distinct CPUs of the nodes, preferring CPUs the guest's own
 * emulator and I/O threads do not use. Throws when the nodes do not have enough free CPUs.
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
    const pick = [...free.filter((c) => !ours.has(c)), ...free.filter((c) => ours.has(c))];
    if (pick.length < i.vcpus) {
        throw new Error(
            `cpuPins: auto needs ${i.vcpus} CPUs of node(s) ${formatCpuList(nodes)} that no other guest's vCPUs hold; ` +
                `${host.facts.hostname} has ${pick.length} (${formatCpuList(pick) || "none"}; ${holdersOn(host.others, onNodes)})`,
        );
    }
    return pick.slice(0, i.vcpus).map((c) => [c]);
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
        }
    });
    return problems;
}

/** Finds each hostdev interface's VF on the host (one round trip). */
export async function resolveVfs(remote: Remote, i: NumaPinnedGuestInputs): Promise<Array<string | null>> {
    const commands: Record<string, string> = {};
    i.interfaces.forEach((f, n) => {
        if (!("hostdevVf" in f)) return;
        const v = f.hostdevVf;
        commands[`vf${n}`] =
            "pf" in v
                ? `basename "$(readlink -f ${shellQuote(`/sys/class/net/${v.pf}/device/virtfn${v.vf}`)})"`
                : `test -e ${shellQuote(`/sys/bus/pci/devices/${v.pciAddress}`)} && echo ${shellQuote(v.pciAddress)}`;
    });
    if (Object.keys(commands).length === 0) return i.interfaces.map(() => null);
    const dump = parseDump(await runScript(remote, buildDumpScript({ commands })));
    return i.interfaces.map((_f, n) => {
        const c = dump.commands.get(`vf${n}`);
        const addr = c?.stdout.trim() ?? "";
        return c?.code === 0 && PCI_ADDRESS.test(addr) ? addr : null;
    });
}

export const networkNames = (i: NumaPinnedGuestInputs) => [...new Set(i.interfaces.flatMap((f) => ("network" in f ? [f.network] : [])))];

/** Facts, other guests' pins, networks and VFs: what the checks need, read in parallel. */
export async function viewHost(remote: Remote, i: NumaPinnedGuestInputs, selfUuid?: string): Promise<HostView & { domains: ParsedDomain[] }> {
    const [facts, all, nets, vfs] = await Promise.all([gatherFacts(remote), readAllDomains(remote), networkGuestDefaults(remote, networkNames(i)), resolveVfs(remote, i)]);
    const domains = [...all.values()].map((xml) => parseDomainXml(xml));
    const others = domains
        .filter((d) => d.uuid !== selfUuid)
        .map((d) => ({ name: d.spec.name, uuid: d.uuid, vcpuCpus: sorted(d.spec.vcpuPins.flat()) }))
        .filter((o) => o.vcpuCpus.length > 0);
    return { facts, others, networks: new Set(nets.keys()), netDefaults: nets, vfs, domains };
}
