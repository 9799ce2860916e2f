/**
 * SriovNic's writes: the VF count through 0, the `ip link` commands for VF settings, and the boot
 * unit and script that put both back at boot (persist).
 */
import type { PersistedFile } from "../host/drift";
import { atomicWriteScript, managedHeader, removeFileScript } from "../host/files";
import { fileInPlace, fileStepIfChanged, persistFilesScript } from "../host/persist";
import { networkManagerUnmanagedFile } from "../host/platform";
import { beforeLibvirtLine, disableUnitCommand, enableUnitCommand, SYSTEMD_RELOAD } from "../host/platformSteps";
import { shellQuote } from "../host/quote";
import type { VfDevice } from "../libvirt/vfHolders";
import { mountUnitName } from "./hugepagePool";
import { defaultVf, SriovNicInputs, VfSettings, wantedVfs, ZERO_MAC } from "./sriovNicSchema";
import { dropInName, dropInPath, ownerPath, PfState, scriptPath, unitName, unitPath } from "./sriovNicRead";

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
export function labelFor(i: Pick<SriovNicInputs, "vfs">): (vf: number) => string {
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
            // VFs before whatever takes them: guests (QEMU), a hostdev network's VF pool, node
            // devices, in either libvirt layout (host/platformSteps.ts: one text fits both).
            beforeLibvirtLine(["qemu", "network", "nodedev", "guests"]),
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
const sameText = (a: string | undefined, b: string) => fileInPlace({ want: b }, a);

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
        if (unitChanged || !pf.persisted) steps.push(`${enableUnitCommand(unit)} >/dev/null 2>&1 && ${SYSTEMD_RELOAD} || exit 1`);
        return steps.join("\n");
    }
    if (pf.files.unit !== undefined || pf.files.script !== undefined || pf.files.owner !== undefined) steps.push(unpersistScript(pf.name));
    return steps.join("\n");
}

/** Removes the boot unit and script, and an earlier kvmtune's owner file; one reload. */
export function unpersistScript(pf: string): string {
    return [
        `if [ -f ${shellQuote(unitPath(pf))} ]; then ${disableUnitCommand(shellQuote(unitName(pf)))}; reload=1; fi`,
        removeFileScript(unitPath(pf)),
        removeFileScript(scriptPath(pf)),
        removeFileScript(ownerPath(pf)),
        `if [ -n "\${reload:-}" ]; then ${SYSTEMD_RELOAD}; fi`,
    ].join("\n");
}

/**
 * The NetworkManager drop-in that keeps the PF and its VFs unmanaged where NetworkManager runs: it
 * gives every new VF an in-memory "Wired connection N" and sets it up (seen on the Debian 13 lab
 * host), and would take the PF. Where NetworkManager does not run, the file must be absent
 * (persist.ts removes it only if kvmtune wrote it). Kept with or without `persist`: NetworkManager
 * takes the VFs now, not only at boot.
 *
 * The VFs are listed for every index below `numVfs`, by the name a VF has as read, else by the name
 * systemd's predictable naming gives a VF (`<pf>v<N>`, seen on Debian 12 and 13): a VF a guest
 * holds through vfio-pci has no netdev, and gets that name back when the guest lets it go, so the
 * file does not change with guests starting and stopping (seen on the lab before: it did). The same
 * names let the file be written before the VFs exist (converge writes it first).
 */
export function networkManagerDropIn(owner: string, pf: Pick<PfState, "name" | "devices" | "networkManager">, numVfs: number): PersistedFile {
    const vfNames = Array.from({ length: numVfs }, (_x, vf) => pf.devices.find((d) => d.vf === vf)?.netdev ?? `${pf.name}v${vf}`);
    const names = pf.networkManager ? [pf.name, ...vfNames] : [];
    return networkManagerUnmanagedFile(dropInName(pf.name), owner, names);
}

/** The drop-in's removal (delete): only a file kvmtune wrote, then NetworkManager re-reads its configuration. */
export function dropInRemoval(pf: string): string {
    return persistFilesScript([{ path: dropInPath(pf), want: null, reload: "networkManager" }]);
}

/** The drop-in's step through persist.ts, or "" when the host has it as wanted (absent, or the same text). */
export function dropInScript(owner: string, pf: Pick<PfState, "name" | "devices" | "networkManager" | "files">, numVfs: number): string {
    return fileStepIfChanged(networkManagerDropIn(owner, pf, numVfs), pf.files.networkManager);
}
