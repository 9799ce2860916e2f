/**
 * libvirt network XML for vhost-net networks: built from a spec, parsed back from
 * `virsh net-dumpxml` into the same spec shape, keeping only what kvmtune owns (the bridge, the
 * forward mode, whether the network has addresses, kvmtune's marks in `<metadata>`). libvirt's
 * additions (uuid, the bridge's MAC, stp and delay, the `connections` count of a running network)
 * are dropped, so they never show up as changes.
 *
 * Two shapes, both without NAT, DHCP or routes:
 * - a bridge libvirt creates when the network starts (and removes when it stops):
 *   `<bridge name='kvbr0'/>` and no `<forward>`: an isolated network;
 * - a bridge the host already has: `<forward mode='bridge'/><bridge name='br0'/>`.
 *
 * The network carries two marks in `<metadata>`: kvmtune's ownership mark (as domains do, see
 * domain.ts) and a `vhostNetwork` element with the guest defaults (queues, ring sizes) that
 * NumaPinnedGuest reads when it builds an interface on the network. The second one also says "this
 * is a kvmtune vhost network" to whoever decides whether vhost_net is still needed at boot.
 */
import type { KnobClaim } from "../host/claims";
import { shellQuote } from "../host/quote";
import type { Remote } from "../host/remote";
import { runScript } from "../host/remote";
import { buildDumpScript, Dump, parseDump } from "../host/sysfs";
import { ownerMetadata, ownerOf } from "./domain";
import { parseDominfo, VIRSH } from "./virsh";
import { child, childElements, el, localName, namespaceOf, parse, serialize, textOf, XmlElement } from "./xml";

/**
 * One libvirt network's ownership claim (../host/claims.ts), whichever resource defines it
 * (VhostNetwork, SriovNic's VF pool): a second resource or stack declaring the name is refused,
 * naming the first. `files`: the resource's own files for the network (a hook), checked too.
 */
export function networkClaim(owner: string, name: string, files: string[] = [], formerOwners: string[] = []): KnobClaim {
    // Knob names are plain file names: a `+` (which SriovNic's names allow) becomes `@`, which no network name kvmtune accepts has.
    return { knob: `libvirt-network-${name.replace(/\+/g, "@")}`, what: `the libvirt network ${name}`, owner, formerOwners, files };
}

/** The namespace of the vhost network mark and its guest defaults. */
export const VHOST_NS = "urn:kvmtune:vhost:1";

// Ring sizes are checked by the schemas too: one list, in ../patterns.
import { RING_SIZES, RingSize } from "../patterns";
export { RING_SIZES } from "../patterns";
export type { RingSize } from "../patterns";

/** What a guest's interface on the network gets when it does not say. */
export interface GuestDefaults {
    queues?: number;
    rxQueueSize?: RingSize;
    txQueueSize?: RingSize;
}

/** What kvmtune owns of a network, in one comparable shape. */
export interface NetworkSpec {
    name: string;
    /** The Linux bridge the guests' taps join. */
    bridge: string;
    /** `none` (no `<forward>`: libvirt makes the bridge, isolated), `bridge` (an existing bridge), or another mode found on the host. */
    forward: string;
    /** The network has `<ip>` or `<route>` elements (a vhost network of kvmtune's has neither). */
    addressed: boolean;
    /** The guest defaults of the vhost mark; null when the network carries no vhost mark. */
    vhost: GuestDefaults | null;
}

export interface ParsedNetwork {
    spec: NetworkSpec;
    uuid: string;
    /** The text of kvmtune's ownership mark, or null when the network carries none. */
    owner: string | null;
    /** Guests' ports on a running network (`connections`), 0 when not shown. */
    connections: number;
}

const ringAttr = (v: string | undefined): RingSize | undefined => {
    const n = Number(v);
    return (RING_SIZES as readonly number[]).includes(n) ? (n as RingSize) : undefined;
};

/** The network XML for a spec, with the ownership mark. The uuid keeps a redefinition the same network. */
export function buildNetworkXml(spec: NetworkSpec, owner: string, uuid?: string): string {
    if (spec.forward !== "none" && spec.forward !== "bridge") throw new Error(`kvmtune builds networks with no forward or forward mode bridge, not ${spec.forward}`);
    const d = spec.vhost;
    const network = el(
        "network",
        {},
        el("name", {}, spec.name),
        uuid ? el("uuid", {}, uuid) : null,
        ownerMetadata(owner, d ? el("kvh:vhostNetwork", { "xmlns:kvh": VHOST_NS, queues: d.queues, rxQueueSize: d.rxQueueSize, txQueueSize: d.txQueueSize }) : null),
        spec.forward === "bridge" ? el("forward", { mode: "bridge" }) : null,
        el("bridge", { name: spec.bridge }),
    );
    return serialize(network) + "\n";
}

/** Parses `virsh net-dumpxml` output into the owned spec. */
export function parseNetworkXml(xml: string): ParsedNetwork {
    const n = parse(xml);
    if (n.name !== "network") throw new Error(`not a network document: <${n.name}>`);
    const owner = ownerOf(n);
    let vhost: GuestDefaults | null = null;
    const metadata = child(n, "metadata");
    for (const m of childElements(metadata)) {
        if (localName(m.name) === "vhostNetwork" && namespaceOf(m, [n, metadata as XmlElement]) === VHOST_NS) {
            vhost = {};
            const q = Number(m.attrs.queues);
            if (Number.isInteger(q) && q > 0) vhost.queues = q;
            const rx = ringAttr(m.attrs.rxQueueSize);
            if (rx) vhost.rxQueueSize = rx;
            const tx = ringAttr(m.attrs.txQueueSize);
            if (tx) vhost.txQueueSize = tx;
        }
    }
    return {
        spec: {
            name: textOf(child(n, "name")) ?? "",
            bridge: child(n, "bridge")?.attrs.name ?? "",
            forward: child(n, "forward")?.attrs.mode ?? (child(n, "forward") ? "nat" : "none"),
            addressed: childElements(n, "ip").length + childElements(n, "route").length > 0,
            vhost,
        },
        uuid: textOf(child(n, "uuid")) ?? "",
        owner,
        connections: Number(n.attrs.connections ?? 0) || 0,
    };
}

/** One network as read in one round trip (see networkReadCommands). */
export interface NetworkRead {
    exists: boolean;
    active: boolean;
    autostart: boolean;
    persistent: boolean;
    /** The running definition (when active), else the persistent one. */
    live: ParsedNetwork | null;
    /** The persistent definition: what the next start uses, where the guest defaults are read. */
    config: ParsedNetwork | null;
}

/** The virsh reads of one network, as named commands for a dump script (../host/sysfs.ts). */
export function networkReadCommands(name: string): Record<string, string> {
    const q = shellQuote(name);
    return {
        netInfo: `${VIRSH} net-info ${q}`,
        netLive: `${VIRSH} net-dumpxml ${q}`,
        netConfig: `${VIRSH} net-dumpxml --inactive ${q}`,
    };
}

/** The network from a dump that ran networkReadCommands; a network virsh does not know is `exists: false`. */
export function networkReadOf(dump: Dump): NetworkRead {
    const cmd = (k: string) => dump.commands.get(k) ?? { stdout: "", code: -1 };
    if (cmd("netInfo").code !== 0) return { exists: false, active: false, autostart: false, persistent: false, live: null, config: null };
    const info = parseDominfo(cmd("netInfo").stdout);
    const xml = (k: string) => (cmd(k).code === 0 && cmd(k).stdout.trim() ? parseNetworkXml(cmd(k).stdout) : null);
    return {
        exists: true,
        active: info.Active === "yes",
        autostart: info.Autostart === "yes",
        persistent: info.Persistent === "yes",
        live: xml("netLive"),
        config: xml("netConfig"),
    };
}

/**
 * The networks among `names` that exist, each with its guest defaults (empty when the network
 * carries no vhost mark). One round trip; this is what a guest's pre-checks read.
 */
export async function networkGuestDefaults(remote: Remote, names: readonly string[]): Promise<Map<string, GuestDefaults>> {
    if (names.length === 0) return new Map();
    const commands = Object.fromEntries(names.map((n, i) => [`net${i}`, `${VIRSH} net-dumpxml --inactive ${shellQuote(n)}`]));
    const dump = parseDump(await runScript(remote, buildDumpScript({ commands })));
    const found = new Map<string, GuestDefaults>();
    names.forEach((n, i) => {
        const c = dump.commands.get(`net${i}`);
        if (c?.code === 0) found.set(n, parseNetworkXml(c.stdout).spec.vhost ?? {});
    });
    return found;
}

/**
 * What an interface on a network takes from the network's defaults: only what the interface leaves
 * out, and never more queues than the guest has vCPUs (a queue pair per vCPU is the most that helps).
 * Null: nothing taken.
 */
export function defaultsFor(
    iface: { network: string; queues?: number; rxQueueSize?: number; txQueueSize?: number },
    vcpus: number,
    networks: ReadonlyMap<string, GuestDefaults>,
): GuestDefaults | null {
    const d = networks.get(iface.network);
    if (!d) return null;
    const taken: GuestDefaults = {};
    if (iface.queues === undefined && d.queues !== undefined) taken.queues = Math.min(d.queues, vcpus);
    if (iface.rxQueueSize === undefined && d.rxQueueSize !== undefined) taken.rxQueueSize = d.rxQueueSize;
    if (iface.txQueueSize === undefined && d.txQueueSize !== undefined) taken.txQueueSize = d.txQueueSize;
    return Object.keys(taken).length > 0 ? taken : null;
}
