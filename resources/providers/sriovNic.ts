/**
 * SriovNic's provider: the SR-IOV virtual functions of one PF: how many, and each VF's MAC, VLAN
 * (with 802.1p priority), trust, spoof checking, link state and transmit rate limit, optionally a
 * libvirt VF pool network on the PF.
 *
 * Kernel facts this follows:
 * - `sriov_numvfs` refuses a change between two non-zero counts (EBUSY): it goes through 0, which
 *   removes every VF and resets their settings, so the settings are written again afterwards.
 *   Before that, running guests holding a VF are looked for (the kernel does not refuse) and the
 *   change is refused naming them.
 * - A driver may enable fewer VFs than asked: the count is read back, and a shortfall is an error
 *   naming both numbers.
 * - VF settings have no persistence of their own: a oneshot systemd unit, ordered before libvirt,
 *   runs a script that puts count and settings back at boot; its header names the owner.
 * - Ownership is the shared claim (../host/claims.ts) on the PF's PCI address, taken before anything
 *   changes, also with persist off: a second resource or stack declaring the PF is refused, naming
 *   the first. The boot unit and script count as the PF's files, and so does the owner file an
 *   earlier kvmtune wrote when persist was off (`/etc/kvmtune/sriov-PF.owner`, removed on sight).
 * - Seen on the lab's igb: a VF rate limit needs the PF's link up (EINVAL while down), and libvirt
 *   refuses macvtap on a VF of a PF that is down; VFs pass no traffic then anyway. So the PF is
 *   brought up while it has VFs, and put back as it was on delete. igb refuses a VF link state
 *   (EOPNOTSUPP): the error names the field and the driver's answer.
 */
import type * as pulumi from "@pulumi/pulumi";
import { resourceOwner } from "./owner";
import { z } from "zod";
import { connectionSchema } from "../host/connection";
import { gatherFacts } from "../host/facts";
import { claimKnob, CLAIMS_DIR, formerOwnersOf, KnobClaim, releaseKnob } from "../host/claims";
import { deleteKnob } from "../host/knob";
import { atomicWriteScript, managedHeader, ownerOf, removeFileScript } from "../host/files";
import { shellQuote } from "../host/quote";
import { Remote, runScript, TIMEOUTS } from "../host/remote";
import { remoteFor } from "../host/sshPool";
import { buildDumpScript, globLiteral, parseDump, writeSysfsScript } from "../host/sysfs";
import { mountUnitName } from "./hugepagePool";
import { holdersMessage, runningHolders, VfDevice } from "../libvirt/vfHolders";
import { networkClaim } from "../libvirt/network";
import { ensureVfPoolNetwork, networkConflict, NetworkRead, networksFromDump, networksReadCommands, readNetworks, removeNetwork } from "../libvirt/vfPoolNetwork";
import { checkWithPlan, diffProps, FieldPolicy, stateOnlyUpdate } from "../policy";
import { stateOf } from "../state";
import { inputsFrom } from "../validate";
import { IFNAME, libvirtName, macAddress, PCI_ADDRESS } from "../patterns";

// Names and addresses are judged as in every other resource: ../patterns.
const PCI = PCI_ADDRESS;
/** VFs per PF: the largest NICs offer 256. */
export const MAX_VFS = 256;
const ZERO_MAC = "00:00:00:00:00:00";

export const LINK_STATES = ["auto", "enable", "disable"] as const;

const vfSchema = z
    .object({
        /** The VF number, 0 to numVfs - 1. */
        vf: z.number().int().min(0).max(MAX_VFS - 1),
        /** The VF's MAC, set from the PF (the guest cannot change it unless trusted). Unset: the VF picks its own. */
        mac: macAddress()
            .refine((m) => m !== ZERO_MAC, "must not be all zeros (leave mac out to let the VF choose)")
            .refine((m) => (parseInt(m.slice(0, 2), 16) & 1) === 0, "must be a unicast address (the first octet's lowest bit clear)")
            .optional(),
        /** 802.1Q VLAN the PF tags the VF's traffic with; 0: none. */
        vlan: z.number().int().min(0).max(4095).default(0),
        /** 802.1p priority for that VLAN (needs a VLAN). */
        qos: z.number().int().min(0).max(7).default(0),
        /** Drop frames the VF sends from a MAC that is not its own (default true, the kernel's default). */
        spoofchk: z.boolean().default(true),
        /** Let the VF change its MAC and enter promiscuous mode (default false). */
        trust: z.boolean().default(false),
        /** `auto` follows the PF's link; `enable`/`disable` force it (not every driver can). */
        linkState: z.enum(LINK_STATES).default("auto"),
        /** Transmit limit in Mbit/s; 0: none. Needs the PF's link up on some drivers (igb). */
        maxTxRateMbps: z.number().int().min(0).max(1_000_000).default(0),
    })
    .strict()
    .superRefine((v, ctx) => {
        if (v.qos > 0 && v.vlan === 0) ctx.addIssue({ code: "custom", path: ["qos"], message: "a priority needs a VLAN: set vlan too" });
    });

export const sriovNicSchema = z
    .object({
        connection: connectionSchema,
        /** The PF: its interface name (`enp65s0`) or PCI address (`0000:41:00.0`). */
        pf: z
            .string()
            .refine((p) => IFNAME.test(p) || PCI.test(p), { message: "must be a network interface name (at most 15 of A-Z a-z 0-9 _ . -) or a PCI address such as 0000:41:00.0" })
            .transform((p) => (PCI.test(p) ? p.toLowerCase() : p)),
        /** How many VFs; 0 removes them all. At most the PF's `sriov_totalvfs`. */
        numVfs: z.number().int().min(0).max(MAX_VFS),
        /** Settings per VF; VFs not listed get the kernel's defaults. */
        vfs: z.array(vfSchema).max(MAX_VFS).default([]),
        /** Put count and settings back at boot, before libvirt (default true). */
        persist: z.boolean().default(true),
        /** Define, start and autostart a libvirt VF pool network of this name on the PF. */
        libvirtNetwork: libvirtName("a libvirt network").optional(),
    })
    .strict()
    .superRefine((i, ctx) => {
        const seenVf = new Map<number, number>();
        const seenMac = new Map<string, number>();
        i.vfs.forEach((v, n) => {
            if (v.vf >= i.numVfs) {
                ctx.addIssue({ code: "custom", path: ["vfs", n, "vf"], message: i.numVfs === 0 ? "numVfs is 0: there are no VFs to set" : `numVfs is ${i.numVfs}: VFs are 0 to ${i.numVfs - 1}` });
            }
            if (seenVf.has(v.vf)) ctx.addIssue({ code: "custom", path: ["vfs", n, "vf"], message: `VF ${v.vf} is already set by vfs.${seenVf.get(v.vf)}` });
            seenVf.set(v.vf, n);
            if (v.mac !== undefined) {
                if (seenMac.has(v.mac)) ctx.addIssue({ code: "custom", path: ["vfs", n, "mac"], message: `${v.mac} is already the MAC of vfs.${seenMac.get(v.mac)}` });
                seenMac.set(v.mac, n);
            }
        });
        if (i.libvirtNetwork !== undefined && i.numVfs === 0) {
            ctx.addIssue({ code: "custom", path: ["libvirtNetwork"], message: "a VF pool network needs VFs: libvirt does not start it on a PF with numVfs 0" });
        }
    });

export type SriovNicInputs = z.output<typeof sriovNicSchema>;
export type VfSettings = SriovNicInputs["vfs"][number];

export const POLICY: FieldPolicy<SriovNicInputs> = {
    connection: "state",
    pf: "replace",
    numVfs: "live",
    vfs: "live",
    persist: "live",
    libvirtNetwork: "live",
};

/** What a VF has when nothing set it: the kernel's defaults (no MAC, no VLAN, spoof checking on). */
export function defaultVf(vf: number): VfSettings {
    return { vf, vlan: 0, qos: 0, spoofchk: true, trust: false, linkState: "auto", maxTxRateMbps: 0 };
}

/** Every VF of a PF with `numVfs` VFs as the inputs want it: listed settings, defaults for the rest. */
export function wantedVfs(i: Pick<SriovNicInputs, "numVfs" | "vfs">): VfSettings[] {
    return Array.from({ length: i.numVfs }, (_x, vf) => i.vfs.find((v) => v.vf === vf) ?? defaultVf(vf));
}

// ---------------------------------------------------------------------------------------------
// Reading a PF

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
    /** kvmtune's files for this PF as they are on the host (absent: no such file). */
    files: { unit?: string; script?: string; owner?: string };
}

const scriptPath = (pf: string) => `/etc/kvmtune/sriov-${pf}.sh`;
/** The owner file an earlier kvmtune wrote when persist was off; the claim replaced it. Read, honoured, removed. */
const ownerPath = (pf: string) => `/etc/kvmtune/sriov-${pf}.owner`;
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
 * Create's claim of the PF, recording what the PF has now as its original. A claim this owner
 * already holds is left from a create cut off half-way: the PF now has that attempt's VFs, and the
 * claim's recorded original, from before the first attempt, is the one delete must put back.
 */
export async function claimPf(remote: Remote, owner: string, pf: PfState): Promise<{ claim: KnobClaim; original: Original }> {
    const claim = pfClaim(owner, pf, [], { numVfs: pf.numVfs, vfs: pf.vfs, pfUp: pf.adminUp });
    const original = (await claimKnob(remote, claim)).original as Original;
    return { claim, original };
}
export const unitName = (pf: string) => `kvmtune-sriov-${pf}.service`;
const unitPath = (pf: string) => `/etc/systemd/system/${unitName(pf)}`;

/** The sysfs folder of a PF named by interface or PCI address. */
const deviceDir = (pf: string) => (PCI.test(pf) ? `/sys/bus/pci/devices/${pf}` : `/sys/class/net/${pf}/device`);

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
        ],
        links: [dev, `${dev}/driver`, `${dev}/physfn`, `${dev}/virtfn*`],
        commands: {
            ip: `n=${firstNetdev} && [ -n "$n" ] && ip -j link show dev "$n"`,
            enabled: `for u in /etc/systemd/system/kvmtune-sriov-*.service; do [ -f "$u" ] && echo "$(basename "$u") $(systemctl is-enabled "$(basename "$u")" 2>/dev/null)"; done; true`,
            // Networks a read needs beside the PF (its VF pool), in the same round trip.
            ...networksReadCommands(networks),
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
        files: stateOf({ unit: dump.files.get(unitPath(name)), script: dump.files.get(scriptPath(name)), owner: dump.files.get(ownerPath(name)) }),
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

// ---------------------------------------------------------------------------------------------
// Writing: the VF count through 0, the VF settings, the boot script

/**
 * The writes to `sriov_numvfs` that take a PF from `current` to `wanted` VFs: none, the count, or
 * 0 and then the count (the kernel refuses a change between two non-zero counts).
 */
export function countPlan(current: number, wanted: number): number[] {
    if (current === wanted) return [];
    return current === 0 || wanted === 0 ? [wanted] : [0, wanted];
}

/** The VFs that disappear on the way from `current` to `wanted` VFs: all of them whenever a non-zero count changes (through 0). */
export function vfsThatGo(current: number, wanted: number, devices: readonly VfDevice[]): VfDevice[] {
    return current > 0 && current !== wanted ? [...devices] : [];
}

/** How the VF commands name the PF: a literal interface name, or a shell variable in the boot script. */
export interface PfRef {
    /** The PF as an `ip link` argument (already quoted). */
    arg: string;
    /** Its carrier file (a shell word). */
    carrier: string;
}

const onOff = (b: boolean) => (b ? "on" : "off");

/**
 * `ip link set ... vf N` commands that take each VF from `live` to `wanted`, one setting at a time
 * (a driver that refuses one names that one), in the order drivers accept them. `label(vf)` is the
 * input path errors name (`vfs.0`). A rate limit waits up to 10 s for the PF's carrier first.
 */
export function vfCommands(pf: PfRef, wanted: readonly VfSettings[], live: readonly VfSettings[], label: (vf: number) => string): string[] {
    const lines: string[] = [];
    let waitedForCarrier = false;
    for (const w of wanted) {
        const l = live.find((x) => x.vf === w.vf) ?? defaultVf(w.vf);
        const sets: Array<[string, string]> = [];
        if ((w.mac ?? ZERO_MAC) !== (l.mac ?? ZERO_MAC)) sets.push(["mac", `mac ${w.mac ?? ZERO_MAC}`]);
        if (w.vlan !== l.vlan || w.qos !== l.qos) sets.push(["vlan", `vlan ${w.vlan} qos ${w.qos}`]);
        if (w.spoofchk !== l.spoofchk) sets.push(["spoofchk", `spoofchk ${onOff(w.spoofchk)}`]);
        if (w.trust !== l.trust) sets.push(["trust", `trust ${onOff(w.trust)}`]);
        if (w.linkState !== l.linkState) sets.push(["linkState", `state ${w.linkState}`]);
        if (w.maxTxRateMbps !== l.maxTxRateMbps) {
            if (w.maxTxRateMbps > 0 && !waitedForCarrier) {
                lines.push(`i=0; while [ "$(cat ${pf.carrier} 2>/dev/null)" != 1 ] && [ $i -lt 50 ]; do sleep 0.2; i=$((i+1)); done`);
                waitedForCarrier = true;
            }
            sets.push(["maxTxRateMbps", `max_tx_rate ${w.maxTxRateMbps}`]);
        }
        for (const [field, args] of sets) {
            const what = shellQuote(`${label(w.vf)}.${field}: the driver refused \`${args}\` for VF ${w.vf}:`);
            lines.push(`out=$(ip link set dev ${pf.arg} vf ${w.vf} ${args} 2>&1) || { printf '%s %s\\n' ${what} "$out" >&2; exit 1; }`);
        }
    }
    return lines;
}

/** Where each VF's settings come from in the inputs: `vfs.N`, or a VF the inputs leave at its defaults. */
function labelFor(i: Pick<SriovNicInputs, "vfs">): (vf: number) => string {
    return (vf) => {
        const n = i.vfs.findIndex((v) => v.vf === vf);
        return n >= 0 ? `vfs.${n}` : `VF ${vf} (not in vfs, reset to the defaults)`;
    };
}

/**
 * The script the boot unit runs: count (through 0), PF up, then every setting that is not a default.
 *
 * Seen on the lab: at boot the PF was still `eth1` when the script first looked, udev renamed it,
 * and a VF then came up as `eth1`, so `ip link set dev eth1 vf 0 ...` reached the VF ("Operation not
 * supported"). The PF is therefore found by PCI address at each use (`pfdev`), and the unit waits
 * for the PF's device unit, which systemd announces only after udev has named it.
 */
export function bootScript(owner: string, pciAddress: string, i: SriovNicInputs): string {
    const dev = shellQuote(`/sys/bus/pci/devices/${pciAddress}`);
    const wanted = wantedVfs(i);
    return [
        managedHeader(owner).trimEnd(),
        `# Puts back the SR-IOV VFs of PCI device ${pciAddress} at boot, before libvirt starts.`,
        `dev=${dev}`,
        `pfdev() { ls "$dev/net" 2>/dev/null | head -n 1; }`,
        // The PF's netdev appears when its driver probes; its name may differ from the one at create.
        `i=0; while [ -z "$(pfdev)" ] && [ $i -lt 300 ]; do sleep 0.2; i=$((i+1)); done`,
        `[ -n "$(pfdev)" ] || { echo "kvmtune: PCI device ${pciAddress} has no network interface" >&2; exit 1; }`,
        `cur=$(cat "$dev/sriov_numvfs") || exit 1`,
        `if [ "$cur" != ${i.numVfs} ]; then`,
        `  if [ "$cur" != 0 ]; then echo 0 > "$dev/sriov_numvfs" || exit 1; fi`,
        `  echo ${i.numVfs} > "$dev/sriov_numvfs" || exit 1`,
        `fi`,
        ...(i.numVfs > 0 ? [`ip link set dev "$(pfdev)" up || exit 1`] : []),
        ...vfCommands({ arg: `"$(pfdev)"`, carrier: `"/sys/class/net/$(pfdev)/carrier"` }, wanted, [], labelFor(i)),
        `exit 0`,
        "",
    ].join("\n");
}

/** systemd's device unit for an interface: `sys-subsystem-net-devices-enp65s0.device` (same escaping as mount units). */
export function netDeviceUnit(ifname: string): string {
    return mountUnitName(`/sys/subsystem/net/devices/${ifname}`).replace(/\.mount$/, ".device");
}

export function bootUnit(owner: string, pf: string): string {
    return (
        managedHeader(owner) +
        [
            "[Unit]",
            `Description=kvmtune: SR-IOV VFs of ${pf}`,
            // After udev has named the PF; if the name changed, the wait ends (90 s) and the script finds it by PCI address.
            `Wants=${netDeviceUnit(pf)}`,
            `After=${netDeviceUnit(pf)} systemd-udev-trigger.service systemd-modules-load.service`,
            "Before=libvirtd.service virtqemud.service libvirt-guests.service",
            "",
            "[Service]",
            "Type=oneshot",
            "RemainAfterExit=yes",
            `ExecStart=/bin/sh ${scriptPath(pf)}`,
            "",
            "[Install]",
            "WantedBy=multi-user.target",
            "",
        ].join("\n")
    );
}

/** The dump drops a file's trailing newlines: compare contents without them. */
const sameText = (a: string | undefined, b: string) => a !== undefined && a.replace(/\n+$/, "") === b.replace(/\n+$/, "");

/**
 * Writes the boot unit and script (persist), or removes them (persist off; ownership is the claim
 * either way), and removes an earlier kvmtune's owner file. Files already as wanted are left alone,
 * and systemd reloads once, only when a unit changed (a reload took 16 s on a loaded lab host).
 * Empty when there is nothing to do.
 */
export function persistScript(owner: string, pf: Pick<PfState, "name" | "pciAddress" | "files" | "persisted">, i: SriovNicInputs): string {
    const unit = shellQuote(unitName(pf.name));
    const steps: string[] = [];
    if (i.persist) {
        const script = bootScript(owner, pf.pciAddress, i);
        const unitText = bootUnit(owner, pf.name);
        if (!sameText(pf.files.script, script)) steps.push(atomicWriteScript(scriptPath(pf.name), script));
        const unitChanged = !sameText(pf.files.unit, unitText);
        if (unitChanged) steps.push(atomicWriteScript(unitPath(pf.name), unitText));
        if (pf.files.owner !== undefined) steps.push(removeFileScript(ownerPath(pf.name)));
        if (unitChanged || !pf.persisted) steps.push(`systemctl --no-reload enable ${unit} >/dev/null 2>&1 && systemctl daemon-reload || exit 1`);
        return steps.join("\n");
    }
    if (pf.files.unit !== undefined || pf.files.script !== undefined || pf.files.owner !== undefined) steps.push(unpersistScript(pf.name));
    return steps.join("\n");
}

/** Removes the boot unit and script, and an earlier kvmtune's owner file; one reload. */
export function unpersistScript(pf: string): string {
    return [
        `if [ -f ${shellQuote(unitPath(pf))} ]; then systemctl --no-reload disable ${shellQuote(unitName(pf))} >/dev/null 2>&1 || true; reload=1; fi`,
        removeFileScript(unitPath(pf)),
        removeFileScript(scriptPath(pf)),
        removeFileScript(ownerPath(pf)),
        `if [ -n "\${reload:-}" ]; then systemctl daemon-reload; fi`,
    ].join("\n");
}

// ---------------------------------------------------------------------------------------------
// Checks before anything changes

/** What the host has, checked against the inputs; messages name field, value and what is there. Ownership is the claim's. */
export function checkPf(i: SriovNicInputs, pf: PfState, hostname: string): string[] {
    const problems: string[] = [];
    if (pf.isVf) problems.push(`pf: ${i.pf} on ${hostname} is itself a VF (${pf.pciAddress}); name its PF`);
    else if (pf.totalVfs === null) problems.push(`pf: ${i.pf} on ${hostname} (driver ${pf.driver ?? "none"}) has no SR-IOV (no sriov_totalvfs)`);
    else if (i.numVfs > pf.totalVfs) problems.push(`numVfs: got ${i.numVfs}; ${pf.name} on ${hostname} offers at most ${pf.totalVfs} VFs (sriov_totalvfs)`);
    return problems;
}

/** Mismatches between what was asked and what the host has after a write, each naming both. */
export function mismatches(i: SriovNicInputs, pf: PfState): string[] {
    const out: string[] = [];
    if (pf.numVfs !== i.numVfs || pf.devices.length !== i.numVfs) {
        out.push(`numVfs: asked ${i.numVfs}, the driver enabled ${pf.devices.length} (sriov_numvfs reads ${pf.numVfs})`);
        return out;
    }
    const label = labelFor(i);
    for (const w of wantedVfs(i)) {
        const l = pf.vfs.find((v) => v.vf === w.vf);
        if (!l) {
            out.push(`${label(w.vf)}: VF ${w.vf} is missing from ip link's list`);
            continue;
        }
        for (const k of ["mac", "vlan", "qos", "spoofchk", "trust", "linkState", "maxTxRateMbps"] as const) {
            if ((w[k] ?? ZERO_MAC) !== (l[k] ?? ZERO_MAC)) out.push(`${label(w.vf)}.${k}: asked ${w[k] ?? "none"}, the driver has ${l[k] ?? "none"}`);
        }
    }
    return out;
}

// ---------------------------------------------------------------------------------------------
// The provider

/** What the PF had before create: put back on delete. */
export interface Original {
    numVfs: number;
    vfs: VfSettings[];
    pfUp: boolean;
}

function inputsOf(props: Record<string, unknown>): SriovNicInputs {
    return inputsFrom(sriovNicSchema, props, "SriovNic inputs");
}

/** The PF, or an error listing the host's SR-IOV PFs. */
async function requirePf(remote: Remote, i: SriovNicInputs): Promise<PfState> {
    const pf = await readPf(remote, i.pf);
    if (pf && pf.totalVfs !== null) return pf;
    const facts = await gatherFacts(remote);
    const sriov = facts.nics.filter((n) => n.sriovTotalVfs !== null && !n.physfn);
    const list = sriov.map((n) => `${n.name} (${n.pciAddress}, ${n.sriovTotalVfs} VFs, NUMA node ${n.numaNode ?? "?"})`).join(", ") || "none";
    if (!pf) {
        const found = facts.nics.some((n) => n.name === i.pf);
        const what = found ? `${i.pf} on ${facts.hostname} is not a PCI function` : `${facts.hostname} has no network interface or PCI device ${i.pf}`;
        throw new Error(`pf: ${what}. Its SR-IOV PFs: ${list}`);
    }
    const problems = checkPf(i, pf, facts.hostname);
    throw new Error(`${problems[0] ?? `pf: ${i.pf} has no SR-IOV`}. ${facts.hostname}'s SR-IOV PFs: ${list}`);
}

/** Refuses a change that would take VFs (or a pool network) from a running guest. */
async function refuseIfHeld(remote: Remote, pf: PfState, vfs: VfDevice[], networks: string[], what: string): Promise<void> {
    if (vfs.length === 0 && networks.length === 0) return;
    const holders = await runningHolders(remote, pf.name, vfs, networks);
    if (holders.length) throw new Error(holdersMessage(what, holders));
}

/**
 * Count (through 0), PF link and VF settings in one round trip, then one read back. New VFs start
 * at the kernel's defaults, so after a count change the settings are written against those.
 * Returns the PF as it is after; a driver that enabled fewer VFs than asked is an error with both
 * numbers, whatever else failed.
 */
async function applyVfs(remote: Remote, pf: PfState, numVfs: number, wanted: VfSettings[], pfUp: boolean, label: (vf: number) => string): Promise<PfState> {
    const steps: string[] = [];
    const plan = countPlan(pf.numVfs, numVfs);
    if (plan.length) {
        steps.push(writeSysfsScript(plan.map((value) => ({ path: `${deviceDir(pf.pciAddress)}/sriov_numvfs`, value }))));
        // New VFs' netdevs are renamed by udev: wait, so the names read back are the final ones.
        steps.push("udevadm settle --timeout=30 >/dev/null 2>&1 || true");
    }
    if (pfUp !== pf.adminUp) steps.push(`ip link set dev ${shellQuote(pf.name)} ${pfUp ? "up" : "down"} || exit 1`);
    const ref: PfRef = { arg: shellQuote(pf.name), carrier: shellQuote(`/sys/class/net/${pf.name}/carrier`) };
    steps.push(...vfCommands(ref, wanted, plan.length ? [] : pf.vfs, label));
    let failure: Error | null = null;
    if (steps.length) await runScript(remote, steps.join("\n"), { timeoutSeconds: TIMEOUTS.vfSettle }).catch((e: Error) => (failure = e));
    const now = steps.length ? await readPf(remote, pf.pciAddress) : pf;
    if (!now) throw failure ?? new Error(`${pf.name} (${pf.pciAddress}) is gone from the host`);
    if (now.numVfs !== numVfs || now.devices.length !== numVfs) {
        throw new Error(`numVfs: asked ${numVfs}, the driver of ${pf.name} enabled ${now.devices.length} (sriov_numvfs reads ${now.numVfs})`);
    }
    if (failure) throw failure;
    return now;
}

function outputs(i: SriovNicInputs, owner: string, pf: PfState, original: Original) {
    return stateOf({
        ...i,
        owner,
        pfName: pf.name,
        pfPciAddress: pf.pciAddress,
        numaNode: pf.numaNode,
        totalVfs: pf.totalVfs,
        vfDevices: pf.devices,
        original,
        networkName: i.libvirtNetwork,
        bootUnit: i.persist ? unitName(pf.name) : undefined,
    });
}

/**
 * Takes the PF to the inputs: checks first (host, owner, network name, running guests), then the
 * count, the settings, the pool network and the persistence. `oldNetwork`: a network an earlier
 * version of the inputs defined, removed when the name changed.
 */
async function converge(remote: Remote, i: SriovNicInputs, pf: PfState, owner: string, oldNetwork?: string): Promise<PfState> {
    const hostname = pf.hostname || remote.name;
    const problems = checkPf(i, pf, hostname);
    const names = [...new Set([i.libvirtNetwork, oldNetwork].filter((n): n is string => !!n))];
    const nets = await readNetworks(remote, names);
    const net = i.libvirtNetwork ? (nets.get(i.libvirtNetwork) as NetworkRead) : null;
    const conflict = net ? networkConflict(i.libvirtNetwork as string, net, owner, hostname) : null;
    if (conflict) problems.push(conflict);
    if (problems.length) throw new Error(`SriovNic on ${hostname}: ${problems.join("; ")}`);
    // The pool network is a knob of its own: the same claim a VhostNetwork of that name takes.
    if (i.libvirtNetwork) await claimKnob(remote, networkClaim(owner, i.libvirtNetwork));
    const oldOurs = oldNetwork && oldNetwork !== i.libvirtNetwork && nets.get(oldNetwork)?.network?.owner === owner ? oldNetwork : undefined;
    await refuseIfHeld(remote, pf, vfsThatGo(pf.numVfs, i.numVfs, pf.devices), oldOurs ? [oldOurs] : [], `numVfs ${pf.numVfs} -> ${i.numVfs} on ${pf.name}`);

    const after = await applyVfs(remote, pf, i.numVfs, wantedVfs(i), i.numVfs > 0 || pf.adminUp, labelFor(i));
    const wrong = mismatches(i, after);
    if (wrong.length) throw new Error(`SriovNic ${pf.name} on ${hostname}: the driver did not take the settings: ${wrong.join("; ")}`);
    if (oldOurs) {
        await removeNetwork(remote, oldOurs, nets.get(oldOurs) as NetworkRead);
        await releaseKnob(remote, networkClaim(owner, oldOurs));
    }
    if (i.libvirtNetwork && net) await ensureVfPoolNetwork(remote, i.libvirtNetwork, after.name, owner, net, countPlan(pf.numVfs, i.numVfs).length > 0);
    const persist = persistScript(owner, after, i);
    if (persist) await runScript(remote, persist);
    return after;
}

/** Puts the PF back as `original` had it, removes the pool network (if ours) and kvmtune's files. */
async function restore(remote: Remote, pf: PfState, original: Original, owner: string, network?: string): Promise<void> {
    if (network) {
        const read = (await readNetworks(remote, [network])).get(network) as NetworkRead;
        if (read.network?.owner === owner) await removeNetwork(remote, network, read);
        await releaseKnob(remote, networkClaim(owner, network));
    }
    const wanted = Array.from({ length: original.numVfs }, (_x, vf) => original.vfs.find((v) => v.vf === vf) ?? defaultVf(vf));
    await applyVfs(remote, pf, original.numVfs, wanted, original.pfUp, (vf) => `original VF ${vf}`);
    await runScript(remote, unpersistScript(pf.name));
}

export const provider = {
    async check(olds: Record<string, unknown>, news: Record<string, unknown>): Promise<pulumi.dynamic.CheckResult> {
        return checkWithPlan(sriovNicSchema, POLICY, olds, news);
    },

    async diff(_id: string, olds: Record<string, unknown>, news: Record<string, unknown>): Promise<pulumi.dynamic.DiffResult> {
        return diffProps(sriovNicSchema, POLICY, olds, news);
    },

    async create(props: Record<string, unknown>): Promise<pulumi.dynamic.CreateResult> {
        const i = inputsOf(props);
        const owner = resourceOwner("SriovNic", i.pf, props);
        const remote = remoteFor(i.connection);
        const pf = await requirePf(remote, i);
        // The PF was already this owner's (an earlier create that failed after claiming): what it has is not the original.
        const hadRecord = pf.owner !== null;
        const { claim, original } = await claimPf(remote, owner, pf);
        let after: PfState;
        try {
            after = await converge(remote, i, pf, owner);
        } catch (err) {
            // Checks throw before anything changes; a failure after them puts the PF back as it was.
            const now = await readPf(remote, pf.pciAddress).catch(() => null);
            const changed = now && (now.numVfs !== original.numVfs || now.adminUp !== original.pfUp || JSON.stringify(now.vfs) !== JSON.stringify(original.vfs));
            if (now && changed && !hadRecord) {
                await restore(remote, now, original, owner, i.libvirtNetwork).catch((e) => {
                    (err as Error).message += `\n(putting the PF back as it was failed too: ${(e as Error).message})`;
                });
            }
            // A failed create leaves no claim behind, unless the PF was this owner's before it.
            if (!hadRecord) {
                await releaseKnob(remote, claim).catch(() => undefined);
                if (i.libvirtNetwork) await releaseKnob(remote, networkClaim(owner, i.libvirtNetwork)).catch(() => undefined);
            }
            throw err;
        }
        return { id: `${after.hostname}/${after.pciAddress}`, outs: outputs(i, owner, after, original) };
    },

    async read(id: string, props: Record<string, unknown>): Promise<pulumi.dynamic.ReadResult> {
        const i = inputsOf(props);
        const owner = resourceOwner("SriovNic", i.pf, props);
        const remote = remoteFor(i.connection);
        // One round trip: the PF, its VFs and, when it has one, its VF pool network.
        const { pf, networks } = await readPfWithNetworks(remote, i.pf, i.libvirtNetwork ? [i.libvirtNetwork] : []);
        if (!pf || pf.totalVfs === null) return { id: "", props: {} }; // the PF is gone: refresh drops the resource
        // Live values in the input fields, so refresh shows a change made behind our back: the
        // listed VFs as they are, and any other VF whose settings are no longer the defaults.
        const listed = i.vfs.map((v) => pf.vfs.find((l) => l.vf === v.vf)).filter((v): v is VfSettings => v !== undefined);
        const strays = pf.vfs.filter((l) => !i.vfs.some((v) => v.vf === l.vf) && JSON.stringify(l) !== JSON.stringify(defaultVf(l.vf)));
        let libvirtNetwork = i.libvirtNetwork;
        if (libvirtNetwork) {
            const n = networks.get(libvirtNetwork) as NetworkRead;
            const fine = n.exists && n.active && n.autostart && n.network?.owner === owner && n.network.mode === "hostdev" && n.network.pf === pf.name;
            if (!fine) libvirtNetwork = undefined;
        }
        const live: SriovNicInputs = { ...i, numVfs: pf.numVfs, vfs: [...listed, ...strays], persist: pf.persisted, libvirtNetwork };
        return { id, props: outputs(live, owner, pf, props.original as Original) };
    },

    async update(_id: string, olds: Record<string, unknown>, news: Record<string, unknown>): Promise<pulumi.dynamic.UpdateResult> {
        const untouched = stateOnlyUpdate(sriovNicSchema, POLICY, olds, news);
        if (untouched) return untouched;
        const i = inputsOf(news);
        const owner = resourceOwner("SriovNic", i.pf, news, olds);
        const remote = remoteFor(i.connection);
        const pf = await requirePf(remote, i);
        // Re-taken on every update: it moves the claim to a new label, before anything changes.
        await claimKnob(remote, pfClaim(owner, pf, formerOwnersOf(olds, owner)));
        // The network the previous inputs named (refresh leaves it out when it was found broken).
        const oldNetwork = typeof olds.networkName === "string" ? olds.networkName : typeof olds.libvirtNetwork === "string" ? olds.libvirtNetwork : undefined;
        const after = await converge(remote, i, pf, owner, oldNetwork);
        return { outs: outputs(i, owner, after, olds.original as Original) };
    },

    async delete(_id: string, props: Record<string, unknown>): Promise<void> {
        const i = inputsOf(props);
        const owner = resourceOwner("SriovNic", i.pf, props);
        const remote = remoteFor(i.connection);
        const original = props.original as Original;
        const pf = await readPf(remote, i.pf);
        if (!pf || pf.totalVfs === null) {
            // The PF is gone (card removed): only kvmtune's files and the claim are left to remove.
            if (typeof props.pfName === "string" && typeof props.pfPciAddress === "string") {
                const pfName = props.pfName;
                await deleteKnob(remote, pfClaim(owner, { name: pfName, pciAddress: props.pfPciAddress }), async () => {
                    await runScript(remote, unpersistScript(pfName));
                });
            }
            return;
        }
        const network = typeof props.networkName === "string" ? props.networkName : undefined;
        await deleteKnob(remote, pfClaim(owner, pf), async () => {
            await refuseIfHeld(remote, pf, vfsThatGo(pf.numVfs, original.numVfs, pf.devices), network ? [network] : [], `deleting SriovNic on ${pf.name}`);
            await restore(remote, pf, original, owner, network);
        });
    },
};
