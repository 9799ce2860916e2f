/**
 * SriovNic's read of a PF in one round trip (its SR-IOV files, VFs, `ip -j link`, kvmtune's records),
 * kvmtune's file paths for it, and its ownership claim.
 */
import { CLAIMS_DIR, KnobClaim } from "../host/claims";
import { ownerOf } from "../host/files";
import { NETWORK_MANAGER_READ, networkManagerActive, networkManagerDropInName, networkManagerDropInPath } from "../host/platform";
import { isEnabledCommand } from "../host/platformSteps";
import { shellQuote } from "../host/quote";
import { Remote, runScript } from "../host/remote";
import { buildDumpScript, globLiteral, parseDump } from "../host/sysfs";
import type { VfDevice } from "../libvirt/vfHolders";
import { NetworkRead, networksFromDump, networksReadCommands } from "../libvirt/vfPoolNetwork";
import { stateOf } from "../state";
import { LINK_STATES, PCI, VfSettings, ZERO_MAC } from "./sriovNicSchema";
import type { Original } from "./sriovNic";

/** A PF as the host has it, with kvmtune's records for it. */
export interface PfState {
    hostname: string;
    /** The PF's interface name. */
    name: string;
    pciAddress: string;
    driver: string | null;
    numVfs: number;
    totalVfs: number | null;
    numaNode: number | null;
    /** The PCI function is itself a VF (it has a physfn link). */
    isVf: boolean;
    adminUp: boolean;
    carrier: boolean;
    /** Settings of every VF, by VF number. */
    vfs: VfSettings[];
    /** PCI address and netdev of every VF. */
    devices: VfDevice[];
    /** Who owns this PF on the host, and which file says so: its claim, else a file of an earlier kvmtune. */
    owner: { owner: string; file: string } | null;
    /** The boot unit and its script are in place and the unit is enabled. */
    persisted: boolean;
    /** NetworkManager.service is active: it takes new VFs (and the PF) unless told they are unmanaged. */
    networkManager: boolean;
    /** kvmtune's files for the PF as the host has them: boot unit and script, an earlier kvmtune's owner file, the claim, the NetworkManager drop-in. */
    files: { unit?: string; script?: string; owner?: string; claim?: string; networkManager?: string };
}

export const scriptPath = (pf: string) => `/etc/kvmtune/sriov-${pf}.sh`;
/** The owner file an earlier kvmtune wrote when persist was off; the claim replaced it. Read, honoured, removed. */
export const ownerPath = (pf: string) => `/etc/kvmtune/sriov-${pf}.owner`;
/** The claim's knob: by PCI address, so a PF named by interface and by address is one knob. */
const knobOf = (pciAddress: string) => `sriov-${pciAddress.toLowerCase().replace(/:/g, "-")}`;

/**
 * The PF's ownership claim. Its files: the boot unit and script, and an earlier kvmtune's owner
 * file; one naming another owner (or written by hand) refuses the claim.
 */
export function pfClaim(owner: string, pf: Pick<PfState, "name" | "pciAddress">, formerOwners: string[] = [], original?: Original): KnobClaim {
    return {
        knob: knobOf(pf.pciAddress),
        what: `the SR-IOV VFs of ${pf.name} (${pf.pciAddress})`,
        owner,
        formerOwners,
        files: [unitPath(pf.name), scriptPath(pf.name), ownerPath(pf.name)],
        original,
    };
}

/**
 * VFs bound to vfio-pci: handed to a guest, whose interface (libvirt's `<interface type='hostdev'>`)
 * sets their MAC and VLAN. SriovNic leaves the settings of such a VF alone unless it declares it.
 */
export function guestVfs(pf: Pick<PfState, "devices">): number[] {
    return pf.devices.filter((d) => d.driver === "vfio-pci").map((d) => d.vf);
}

/** The drop-in's name part (host/platform.ts networkManagerUnmanagedFile): the PF's name in the characters a drop-in name takes. */
export const dropInName = (pf: string) => networkManagerDropInName("sriov", pf);
export const dropInPath = (pf: string) => networkManagerDropInPath(dropInName(pf));

export const unitName = (pf: string) => `kvmtune-sriov-${pf}.service`;
export const unitPath = (pf: string) => `/etc/systemd/system/${unitName(pf)}`;

/** The sysfs folder of a PF named by interface or PCI address. */
export const deviceDir = (pf: string) => (PCI.test(pf) ? `/sys/bus/pci/devices/${pf}` : `/sys/class/net/${pf}/device`);

/** One round trip: the PF's SR-IOV files, its VFs' addresses and netdevs, `ip -j link`, and kvmtune's records. */
export function readPfScript(pf: string, networks: readonly string[] = []): string {
    const dev = globLiteral(deviceDir(pf));
    const firstNetdev = `$(ls ${shellQuote(deviceDir(pf))}/net 2>/dev/null | head -n 1)`;
    return buildDumpScript({
        files: [
            "/etc/hostname",
            `${dev}/sriov_numvfs`,
            `${dev}/sriov_totalvfs`,
            `${dev}/numa_node`,
            `${dev}/net/*/flags`,
            `${dev}/net/*/carrier`,
            `${dev}/virtfn*/net/*/ifindex`,
            "/etc/kvmtune/sriov-*",
            "/etc/systemd/system/kvmtune-sriov-*.service",
            `${CLAIMS_DIR}/sriov-*`,
            networkManagerDropInPath("sriov-*"),
        ],
        links: [dev, `${dev}/driver`, `${dev}/physfn`, `${dev}/virtfn*`, `${dev}/virtfn*/driver`],
        commands: {
            ip: `n=${firstNetdev} && [ -n "$n" ] && ip -j link show dev "$n"`,
            enabled: `for u in /etc/systemd/system/kvmtune-sriov-*.service; do [ -f "$u" ] && echo "$(basename "$u") $(${isEnabledCommand('"$(basename "$u")"')})"; done; true`,
            // Networks a read needs beside the PF (its VF pool), in the same round trip.
            ...networksReadCommands(networks),
            ...NETWORK_MANAGER_READ.commands,
        },
    });
}

/** VF settings from `ip -j link show` (iproute2's JSON: `vfinfo_list`). */
export function parseVfInfo(ipJson: string): VfSettings[] {
    const links = JSON.parse(ipJson) as Array<{ vfinfo_list?: Array<Record<string, unknown>> }>;
    const list = links[0]?.vfinfo_list ?? [];
    return list
        .map((v) => {
            const vlans = (v.vlan_list as Array<{ vlan?: number; qos?: number }> | undefined) ?? [];
            const rate = v.rate as { max_tx?: number } | undefined;
            const mac = String(v.address ?? ZERO_MAC).toLowerCase();
            const s: VfSettings = {
                vf: Number(v.vf),
                vlan: Number(vlans[0]?.vlan ?? v.vlan ?? 0),
                qos: Number(vlans[0]?.qos ?? v.qos ?? 0),
                spoofchk: v.spoofchk === undefined ? true : v.spoofchk === true,
                trust: v.trust === true,
                linkState: (LINK_STATES as readonly string[]).includes(String(v.link_state)) ? (v.link_state as VfSettings["linkState"]) : "auto",
                maxTxRateMbps: Number(rate?.max_tx ?? v.max_tx_rate ?? 0),
            };
            return mac === ZERO_MAC ? s : { ...s, mac };
        })
        .sort((a, b) => a.vf - b.vf);
}

/** Parses the read script's output; null when the host has no such PF. */
export function parsePfState(pf: string, out: string): PfState | null {
    const dump = parseDump(out);
    const dir = deviceDir(pf);
    const numVfs = dump.files.get(`${dir}/sriov_numvfs`);
    const netdevs = [...dump.files.keys()].map((p) => /\/net\/([^/]+)\/flags$/.exec(p)?.[1]).filter((n): n is string => !!n);
    const name = PCI.test(pf) ? netdevs[0] : pf;
    const target = dump.links.get(dir);
    if (!name || !target) return null;
    const base = (p: string | undefined) => (p ? p.slice(p.lastIndexOf("/") + 1) : null);
    const int = (t: string | undefined) => (t !== undefined && /^-?\d+$/.test(t.trim()) ? Number(t.trim()) : null);
    const devices: VfDevice[] = [];
    for (const [link, to] of dump.links) {
        const m = /\/virtfn(\d+)$/.exec(link);
        if (m) devices.push({ vf: Number(m[1]), pciAddress: base(to) as string, netdev: null });
    }
    for (const p of dump.files.keys()) {
        const m = /\/virtfn(\d+)\/net\/([^/]+)\/ifindex$/.exec(p);
        const d = m && devices.find((x) => x.vf === Number(m[1]));
        if (d) d.netdev = m![2];
    }
    for (const [link, to] of dump.links) {
        const m = /\/virtfn(\d+)\/driver$/.exec(link);
        const d = m && devices.find((x) => x.vf === Number(m[1]));
        if (d) d.driver = base(to);
    }
    devices.sort((a, b) => a.vf - b.vf);
    const ip = dump.commands.get("ip");
    const records = [`${CLAIMS_DIR}/${knobOf(base(target) as string)}`, unitPath(name), scriptPath(name), ownerPath(name)]
        .map((file) => ({ file, owner: ownerOf(dump.files.get(file) ?? "") }))
        .filter((r): r is { file: string; owner: string } => r.owner !== null);
    const enabled = new Map(
        (dump.commands.get("enabled")?.stdout ?? "")
            .split("\n")
            .map((l) => l.trim().split(/\s+/))
            .filter((w) => w.length === 2)
            .map(([u, s]) => [u, s]),
    );
    const numa = int(dump.files.get(`${dir}/numa_node`));
    return {
        hostname: dump.files.get("/etc/hostname")?.trim() ?? "",
        name,
        pciAddress: base(target) as string,
        driver: base(dump.links.get(`${dir}/driver`)),
        numVfs: int(numVfs) ?? 0,
        totalVfs: int(dump.files.get(`${dir}/sriov_totalvfs`)),
        numaNode: numa === null || numa < 0 ? null : numa,
        isVf: dump.links.has(`${dir}/physfn`),
        // IFF_UP is bit 0 of the flags (`0x1003`).
        adminUp: (Number.parseInt(dump.files.get(`${dir}/net/${name}/flags`) ?? "0", 16) & 1) === 1,
        carrier: dump.files.get(`${dir}/net/${name}/carrier`)?.trim() === "1",
        vfs: ip && ip.code === 0 && ip.stdout.trim() ? parseVfInfo(ip.stdout) : [],
        devices,
        owner: records[0] ?? null,
        persisted: dump.files.has(scriptPath(name)) && dump.files.has(unitPath(name)) && enabled.get(unitName(name)) === "enabled",
        networkManager: networkManagerActive(dump),
        files: stateOf({
            unit: dump.files.get(unitPath(name)),
            script: dump.files.get(scriptPath(name)),
            owner: dump.files.get(ownerPath(name)),
            claim: dump.files.get(`${CLAIMS_DIR}/${knobOf(base(target) as string)}`),
            networkManager: dump.files.get(dropInPath(name)),
        }),
    };
}

export async function readPf(remote: Remote, pf: string): Promise<PfState | null> {
    return parsePfState(pf, await runScript(remote, readPfScript(pf)));
}

/** The PF and the libvirt networks named, in one round trip (what refresh needs). */
export async function readPfWithNetworks(remote: Remote, pf: string, networks: readonly string[]): Promise<{ pf: PfState | null; networks: Map<string, NetworkRead> }> {
    const out = await runScript(remote, readPfScript(pf, networks));
    return { pf: parsePfState(pf, out), networks: networksFromDump(parseDump(out), networks, remote.name) };
}
