/**
 * Which running guests hold VFs of a PF. The kernel lets `sriov_numvfs` drop while a guest uses a
 * VF (seen on the lab: a running guest's macvtap on VF 0 did not stop `echo 0 > sriov_numvfs`; the
 * guest kept running with a dead NIC), so kvmtune asks libvirt first and refuses, naming the guest.
 *
 * A guest holds a VF through a `<hostdev>` or `<interface type='hostdev'>` with the VF's PCI
 * address, an `<interface type='direct'>` (macvtap) on the VF's netdev, or an
 * `<interface type='network'>` on a VF pool network of the PF.
 */
import { Remote } from "../host/remote";
import { pciAddressOf } from "./domain";
import { parseVfPoolNetworkXml } from "./vfPoolNetwork";
import { readAllDomains, readAllNetworks } from "./virsh";
import { child, childElements, find, parse, textOf, XmlElement } from "./xml";

export interface VfDevice {
    vf: number;
    pciAddress: string;
    netdev: string | null;
    /** The driver bound to the VF (`igbvf`, `vfio-pci` while a guest holds it), when read. */
    driver?: string | null;
}

export interface VfHolder {
    guest: string;
    /** What the guest holds, in words: `VF 0 (0000:41:10.0) as a hostdev interface`. */
    holds: string;
}

/** Networks a domain's interfaces name (`<interface type='network'>`). */
function networksOf(devices: XmlElement | undefined): string[] {
    return childElements(devices, "interface")
        .filter((i) => i.attrs.type === "network")
        .map((i) => child(i, "source")?.attrs.network)
        .filter((n): n is string => !!n);
}

/** A running domain's XML carries its id (`<domain type='kvm' id='3'>`); a shut-off one does not. */
export function isRunningXml(doc: XmlElement): boolean {
    return doc.attrs.id !== undefined && doc.attrs.id !== "-1";
}

/**
 * The holders among domains (their `virsh dumpxml`): running guests only. `vfs`: the VFs that
 * would go; `pools`: networks that hand out VFs of this PF (or that would go).
 */
export function holdersIn(domainXmls: Iterable<string>, vfs: readonly VfDevice[], pools: readonly string[]): VfHolder[] {
    const byPci = new Map(vfs.map((v) => [v.pciAddress, v]));
    const byNetdev = new Map(vfs.filter((v) => v.netdev).map((v) => [v.netdev as string, v]));
    const name = (v: VfDevice) => `VF ${v.vf} (${v.pciAddress}${v.netdev ? `, ${v.netdev}` : ""})`;
    const out: VfHolder[] = [];
    for (const xml of domainXmls) {
        const d = parse(xml);
        if (!isRunningXml(d)) continue;
        const guest = textOf(child(d, "name")) ?? "?";
        const devices = child(d, "devices");
        for (const h of childElements(devices, "hostdev")) {
            const v = byPci.get(pciAddressOf(find(h, "source", "address")) ?? "");
            if (v) out.push({ guest, holds: `${name(v)} as a PCI hostdev` });
        }
        for (const i of childElements(devices, "interface")) {
            const src = child(i, "source");
            if (i.attrs.type === "hostdev") {
                const v = byPci.get(pciAddressOf(child(src, "address")) ?? "");
                if (v) out.push({ guest, holds: `${name(v)} as a hostdev interface` });
            } else if (i.attrs.type === "direct") {
                const v = byNetdev.get(src?.attrs.dev ?? "");
                if (v) out.push({ guest, holds: `${name(v)} through macvtap (${src?.attrs.mode ?? "vepa"})` });
            }
        }
        for (const net of networksOf(devices)) {
            if (pools.includes(net)) out.push({ guest, holds: `an interface on VF pool network ${net}` });
        }
    }
    return out;
}

/**
 * Running guests on the host that hold any of `vfs`, or an interface on a VF pool network of `pf`,
 * or on one of `alsoNetworks` (networks about to be removed). The running domains and all networks
 * are read side by side, one round trip each.
 */
export async function runningHolders(remote: Remote, pf: string, vfs: readonly VfDevice[], alsoNetworks: readonly string[] = []): Promise<VfHolder[]> {
    const [domains, networks] = await Promise.all([readAllDomains(remote, "running"), readAllNetworks(remote)]);
    if (domains.size === 0) return [];
    const pools = [...networks.values()].map((x) => parseVfPoolNetworkXml(x)).filter((n) => n.mode === "hostdev" && n.pf === pf).map((n) => n.name);
    return holdersIn(domains.values(), vfs, [...new Set([...pools, ...alsoNetworks])]);
}

/** The refusal message: names every guest and what it holds. */
export function holdersMessage(what: string, holders: readonly VfHolder[]): string {
    const guests = [...new Set(holders.map((h) => h.guest))];
    return (
        `${what}: running guest${guests.length > 1 ? "s" : ""} ${guests.join(", ")} ` +
        `hold${guests.length > 1 ? "" : "s"} ${holders.map((h) => (guests.length > 1 ? `${h.guest}: ${h.holds}` : h.holds)).join("; ")}. ` +
        `Stop ${guests.length > 1 ? "the guests or move them" : "the guest or move it"} off these VFs first; nothing on the host was changed.`
    );
}
