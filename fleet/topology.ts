/**
 * What ended up where on a host, read live after a deployment: NUMA nodes with their CPUs and huge
 * pages, the guests and the CPUs they are pinned to, PFs with their VFs and the guest holding each,
 * and the libvirt networks with the guests on them. Two round trips (facts; libvirt and VFs).
 */
import { HostFactsData, gatherFacts } from "../resources/host/facts";
import { Remote, runScript } from "../resources/host/remote";
import { buildDumpScript, parseDump } from "../resources/host/sysfs";
import { isHostdev, parseDomainXml } from "../resources/libvirt/domain";
import { child, parse } from "../resources/libvirt/xml";
import { VIRSH, readAllDomains } from "../resources/libvirt/virsh";

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

const NET = "/sys/class/net";

/** Libvirt networks (name, XML) and every PF's VF links, in one round trip. */
function libvirtAndVfsScript(): string {
    return buildDumpScript({
        links: [`${NET}/*/device/virtfn*`],
        commands: {
            networks: [
                `for n in $(${VIRSH} net-list --all --name); do`,
                `  printf '\\035%s\\n' "$n"; ${VIRSH} net-dumpxml "$n" 2>/dev/null; ${VIRSH} net-info "$n" 2>/dev/null | grep -i '^active:'`,
                `done; true`,
            ].join("\n"),
        },
    });
}

/** Builds the picture's data from what the host reported (pure: unit-tested with fixtures). */
export function topologyOf(
    facts: HostFactsData,
    domainXmls: string[],
    vfLinks: Map<string, string>,
    networksText: string,
): Topology {
    const domains = domainXmls.map((xml) => ({ xml, parsed: parseDomainXml(xml) }));
    const guests: TopologyGuest[] = domains.map(({ xml, parsed }) => ({
        name: parsed.spec.name,
        // A running domain's live XML carries its id; a defined-only one does not.
        running: /<domain\b[^>]*\bid=['"]\d+['"]/.test(xml),
        vcpus: parsed.spec.vcpus,
        memoryMiB: parsed.spec.memoryMiB,
        vcpuPins: parsed.spec.vcpuPins,
        emulatorPin: parsed.spec.emulatorPin,
        iothreadPins: parsed.spec.iothreadPins,
        nodeset: parsed.spec.numa?.nodeset ?? null,
        hugepages: parsed.spec.hugepages,
    }));
    const vfHolder = new Map<string, string>();
    for (const { parsed } of domains) {
        for (const f of parsed.spec.interfaces) if (isHostdev(f)) vfHolder.set(f.pciAddress, parsed.spec.name);
    }
    const pfs: TopologyPf[] = facts.nics
        .filter((n) => (n.sriovTotalVfs ?? 0) > 0)
        .map((n) => {
            const vfs: TopologyVf[] = [];
            for (const [link, target] of vfLinks) {
                const m = new RegExp(`^${NET}/${n.name}/device/virtfn(\\d+)$`).exec(link);
                if (!m) continue;
                const pciAddress = target.slice(target.lastIndexOf("/") + 1);
                vfs.push({ index: Number(m[1]), pciAddress, guest: vfHolder.get(pciAddress) ?? null });
            }
            vfs.sort((a, b) => a.index - b.index);
            return { name: n.name, pciAddress: n.pciAddress, numaNode: n.numaNode, totalVfs: n.sriovTotalVfs ?? 0, vfs };
        });
    const networks: TopologyNetwork[] = [];
    for (const record of networksText.split("\x1d").slice(1)) {
        const nl = record.indexOf("\n");
        const name = record.slice(0, nl);
        const body = record.slice(nl + 1);
        const xmlEnd = body.lastIndexOf("</network>");
        let bridge: string | null = null;
        if (xmlEnd >= 0) {
            const net = parse(body.slice(0, xmlEnd + "</network>".length));
            bridge = child(net, "bridge")?.attrs.name ?? null;
        }
        const onIt = domains.filter(({ parsed }) => parsed.spec.interfaces.some((f) => !isHostdev(f) && f.network === name)).map(({ parsed }) => parsed.spec.name);
        networks.push({ name, bridge, active: /^active:\s*yes/im.test(body), guests: onIt });
    }
    return {
        hostname: facts.hostname,
        nodes: facts.numaNodes.map((n) => ({
            id: n.id,
            cpus: n.cpus,
            memoryMiB: n.memoryMiB,
            hugepages: Object.fromEntries(Object.entries(n.hugepages).map(([size, p]) => [size, { total: p.total, free: p.free }])),
        })),
        guests,
        pfs,
        networks,
    };
}

/** Reads a host's topology live. */
export async function readTopology(remote: Remote): Promise<Topology> {
    const [facts, domains, dumpText] = await Promise.all([gatherFacts(remote), readAllDomains(remote), runScript(remote, libvirtAndVfsScript(), { privileged: true })]);
    const dump = parseDump(dumpText);
    return topologyOf(facts, [...domains.values()], dump.links, dump.commands.get("networks")?.stdout ?? "");
}
