/**
 * A libvirt VF pool network: `<forward mode='hostdev' managed='yes'><pf dev='PF'/></forward>`.
 * A guest names it in `<interface type='network'>` and libvirt hands the guest a free VF of the PF
 * (through vfio), setting the interface's MAC and VLAN on the VF.
 *
 * Seen on the lab (libvirt 9.0): libvirt lists the PF's VFs when the network starts, so after the
 * VF count changes the network must be restarted to offer the new ones; with no VFs it does not
 * start at all ("No usable Vf's present on SRIOV PF"). Starting it needs no IOMMU; a guest using it
 * does (vfio). The network carries kvmtune's ownership mark in `<metadata>`, like domains.
 */
import { Remote, runScript } from "../host/remote";
import { shellQuote } from "../host/quote";
import { buildDumpScript, Dump, parseDump } from "../host/sysfs";
import { ownerMetadata, ownerOf, pciAddressOf } from "./domain";
import { defineXml, VIRSH } from "./virsh";
import { child, childElements, el, parse, serialize, textOf } from "./xml";

export interface VfPoolNetwork {
    name: string;
    uuid: string;
    /** kvmtune's ownership mark, or null when the network carries none. */
    owner: string | null;
    /** `<forward mode>`: `hostdev` for a VF pool; anything else is another kind of network. */
    mode: string | null;
    /** `<pf dev>`: the PF whose VFs the pool hands out. */
    pf: string | null;
    /** The VFs (PCI addresses) a running pool lists: what it had when it started. */
    vfs: string[];
}

/** The network XML kvmtune defines for a VF pool on `pf`. */
export function buildVfPoolNetworkXml(name: string, pf: string, owner: string): string {
    const network = el(
        "network",
        {},
        el("name", {}, name),
        ownerMetadata(owner),
        el("forward", { mode: "hostdev", managed: "yes" }, el("pf", { dev: pf })),
    );
    return serialize(network) + "\n";
}

/** Parses `virsh net-dumpxml` of any network into what a VF pool is compared on. */
export function parseVfPoolNetworkXml(xml: string): VfPoolNetwork {
    const n = parse(xml);
    if (n.name !== "network") throw new Error(`not a network document: <${n.name}>`);
    const forward = child(n, "forward");
    return {
        name: textOf(child(n, "name")) ?? "",
        uuid: textOf(child(n, "uuid")) ?? "",
        owner: ownerOf(n),
        mode: forward?.attrs.mode ?? null,
        pf: child(forward, "pf")?.attrs.dev ?? null,
        vfs: childElements(forward, "address")
            .map((a) => pciAddressOf(a))
            .filter((a): a is string => a !== undefined),
    };
}

export interface NetworkRead {
    exists: boolean;
    active: boolean;
    autostart: boolean;
    /** Parsed `net-dumpxml` (the running definition when active); null when the network is missing. */
    network: VfPoolNetwork | null;
}

/**
 * Reads networks by name in one round trip: definition, active and autostart flags. The flags come
 * from `net-list` (active ones by default, `--autostart`), not `net-info`: for a hostdev network
 * libvirt 9.0 logs "internal error: network ... does not have a bridge name" at every `net-info`
 * (seen on the lab), which would fill the host's journal at each refresh.
 */
export async function readNetworks(remote: Remote, names: readonly string[]): Promise<Map<string, NetworkRead>> {
    if (names.length === 0) return new Map();
    return networksFromDump(parseDump(await runScript(remote, buildDumpScript({ commands: networksReadCommands(names) }))), names, remote.name);
}

/** readNetworks' virsh calls as named commands, for a read that takes them into its own script. */
export function networksReadCommands(names: readonly string[]): Record<string, string> {
    const commands: Record<string, string> = {
        active: `${VIRSH} net-list --name`,
        autostart: `${VIRSH} net-list --all --name --autostart`,
    };
    names.forEach((name, k) => (commands[`xml${k}`] = `${VIRSH} net-dumpxml ${shellQuote(name)}`));
    return commands;
}

/** The networks from a dump that ran networksReadCommands(names); `host` names the host in errors. */
export function networksFromDump(dump: Dump, names: readonly string[], host: string): Map<string, NetworkRead> {
    const out = new Map<string, NetworkRead>();
    if (names.length === 0) return out;
    const listed = (k: string) => {
        const c = dump.commands.get(k);
        if (!c || c.code !== 0) throw new Error(`virsh net-list failed on ${host}: ${c?.stdout.trim() || "no output"}`);
        return new Set(c.stdout.split("\n").map((l) => l.trim()).filter(Boolean));
    };
    const [active, autostart] = [listed("active"), listed("autostart")];
    names.forEach((name, k) => {
        const xml = dump.commands.get(`xml${k}`);
        if (!xml || xml.code !== 0) {
            out.set(name, { exists: false, active: false, autostart: false, network: null });
            return;
        }
        out.set(name, { exists: true, active: active.has(name), autostart: autostart.has(name), network: parseVfPoolNetworkXml(xml.stdout) });
    });
    return out;
}

/** Why kvmtune may not (re)define a network of that name for `owner`, or null when it may. */
export function networkConflict(name: string, read: NetworkRead, owner: string, hostname: string): string | null {
    if (!read.exists || read.network?.owner === owner) return null;
    const mark = read.network?.owner === null || read.network === null ? "carries no kvmtune ownership mark" : `belongs to "${read.network.owner}"`;
    return `libvirtNetwork: ${hostname} already has a libvirt network ${name} that ${mark}; it was left untouched. Choose another name.`;
}

/**
 * Makes the pool network defined (with this owner's mark), active and autostarted, in as few
 * round trips as it takes. `restart`: the PF's VFs changed, so a running pool must start again to
 * list them.
 */
export async function ensureVfPoolNetwork(remote: Remote, name: string, pf: string, owner: string, read: NetworkRead, restart: boolean): Promise<void> {
    const n = read.network;
    const redefine = !read.exists || n?.owner !== owner || n?.mode !== "hostdev" || n?.pf !== pf;
    if (redefine) await defineXml(remote, buildVfPoolNetworkXml(name, pf, owner), "net-define");
    const q = shellQuote(name);
    const steps: string[] = [];
    // A redefined running network keeps its old definition until it starts again.
    if (read.active && (restart || redefine)) steps.push(`${VIRSH} net-destroy ${q} >/dev/null`);
    if (!read.active || restart || redefine) steps.push(`${VIRSH} net-start ${q} >/dev/null`);
    if (!read.autostart || !read.exists) steps.push(`${VIRSH} net-autostart ${q} >/dev/null`);
    if (steps.length) await runScript(remote, steps.map((s) => `${s} || exit 1`).join("\n"));
}

/** Stops and undefines a network (either step skipped when already done). */
export async function removeNetwork(remote: Remote, name: string, read: NetworkRead): Promise<void> {
    if (!read.exists) return;
    const q = shellQuote(name);
    const steps = [read.active ? `${VIRSH} net-destroy ${q} >/dev/null` : null, `${VIRSH} net-undefine ${q} >/dev/null`].filter((s): s is string => s !== null);
    await runScript(remote, steps.map((s) => `${s} || exit 1`).join("\n"));
}
