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
 *
 * This file holds the provider methods. The inputs (schema, policy) are in ./sriovNicSchema.ts, the
 * read of a PF and its claim in ./sriovNicRead.ts, the writes and boot persistence in
 * ./sriovNicWrite.ts and the checks in ./sriovNicChecks.ts.
 */
import type * as pulumi from "@pulumi/pulumi";
import { resourceOwner } from "./owner";
import { gatherFacts } from "../host/facts";
import { udevSettleCommand } from "../host/platformSteps";
import { claimKnob, claimPath, formerOwnersOf, releaseKnob } from "../host/claims";
import { persistedDrift } from "../host/drift";
import { createKnob, deleteKnob, updateKnob } from "../host/knob";
import { shellQuote } from "../host/quote";
import { Remote, runScript, TIMEOUTS } from "../host/remote";
import { remoteFor } from "../host/sshPool";
import { writeSysfsScript } from "../host/sysfs";
import { holdersMessage, runningHolders, VfDevice } from "../libvirt/vfHolders";
import { networkClaim } from "../libvirt/network";
import { ensureVfPoolNetwork, networkConflict, NetworkRead, readNetworks, removeNetwork } from "../libvirt/vfPoolNetwork";
import { checkWithPlan, diffProps, stateOnlyUpdate } from "../policy";
import { found, gone, stateOf } from "../state";
import { inputsFrom } from "../validate";
import { defaultVf, POLICY, SriovNicInputs, sriovNicSchema, VfSettings, wantedVfs } from "./sriovNicSchema";
import { deviceDir, dropInPath, guestVfs, pfClaim, PfState, readPf, readPfWithNetworks, scriptPath, unitName, unitPath } from "./sriovNicRead";
import { bootScript, bootUnit, countPlan, dropInRemoval, dropInScript, labelFor, networkManagerDropIn, PfRef, persistScript, unpersistScript, vfCommands, vfsThatGo } from "./sriovNicWrite";
import { checkPf, mismatches } from "./sriovNicChecks";

/** Re-exported: callers and tests name them from here. */
export { defaultVf, LINK_STATES, MAX_VFS, POLICY, sriovNicSchema, wantedVfs } from "./sriovNicSchema";
export type { SriovNicInputs, VfSettings } from "./sriovNicSchema";
export { parsePfState, parseVfInfo, pfClaim, readPf, readPfScript, readPfWithNetworks, unitName } from "./sriovNicRead";
export type { PfState } from "./sriovNicRead";
export { bootScript, bootUnit, countPlan, netDeviceUnit, networkManagerDropIn, persistScript, unpersistScript, vfCommands, vfsThatGo } from "./sriovNicWrite";
export type { PfRef } from "./sriovNicWrite";
export { checkPf, mismatches } from "./sriovNicChecks";

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
        steps.push(udevSettleCommand(30));
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

/**
 * What refresh finds off what kvmtune keeps for the PF (host/drift.ts): the claim, the
 * NetworkManager drop-in (present with the PF's and VFs' names where NetworkManager runs, absent
 * elsewhere), and with persist on, the boot unit and script as the declared inputs write them.
 */
function driftOf(i: SriovNicInputs, owner: string, pf: PfState): string[] {
    const claim = pfClaim(owner, pf);
    const have = new Map(
        [
            [claimPath(claim.knob), pf.files.claim],
            [unitPath(pf.name), pf.files.unit],
            [scriptPath(pf.name), pf.files.script],
            [dropInPath(pf.name), pf.files.networkManager],
        ].filter((e): e is [string, string] => e[1] !== undefined),
    );
    const kept = i.persist
        ? [
              { path: unitPath(pf.name), want: bootUnit(owner, pf.name) },
              { path: scriptPath(pf.name), want: bootScript(owner, pf.pciAddress, i) },
          ]
        : [];
    return persistedDrift(have, [...kept, networkManagerDropIn(owner, pf, pf.numVfs)], [claim]);
}

function outputs(i: SriovNicInputs, owner: string, pf: PfState, original: Original, drift: string[] = []) {
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
        drift,
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

    // NetworkManager told first: the VFs about to appear are never given a connection, and a PF it
    // lets go (it takes the link down then, seen on the Debian 13 lab host) is brought up below.
    // (`nmcli general reload conf` returns with the PF already down: read it again.)
    const nmFirst = dropInScript(owner, pf, i.numVfs);
    let current = pf;
    if (nmFirst) {
        await runScript(remote, nmFirst);
        current = (await readPf(remote, pf.pciAddress)) ?? pf;
    }
    const after = await applyVfs(remote, current, i.numVfs, wantedVfs(i, guestVfs(pf)), i.numVfs > 0 || pf.adminUp, labelFor(i));
    const wrong = mismatches(i, after);
    if (wrong.length) throw new Error(`SriovNic ${pf.name} on ${hostname}: the driver did not take the settings: ${wrong.join("; ")}`);
    if (oldOurs) {
        await removeNetwork(remote, oldOurs, nets.get(oldOurs) as NetworkRead);
        await releaseKnob(remote, networkClaim(owner, oldOurs));
    }
    if (i.libvirtNetwork && net) await ensureVfPoolNetwork(remote, i.libvirtNetwork, after.name, owner, net, countPlan(pf.numVfs, i.numVfs).length > 0);
    // The boot files, and the drop-in again with the VFs' names as read now (nothing to write where
    // they are named as predicted), in one step.
    const persist = [persistScript(owner, after, i), dropInScript(owner, after, i.numVfs)].filter(Boolean).join("\n");
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
    await runScript(remote, unpersistScript(pf.name) + "\n" + dropInRemoval(pf.name));
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
        // The PF as it is now is the original, unless a create cut off half-way claimed it before:
        // then the claim's record, from before that first attempt, wins (../host/knob.ts).
        const seen: Original = { numVfs: pf.numVfs, vfs: pf.vfs, pfUp: pf.adminUp };
        return createKnob(
            remote,
            { ...pfClaim(owner, pf, [], seen), original: seen },
            async (original) => {
                const after = await converge(remote, i, pf, owner);
                return { id: `${after.hostname}/${after.pciAddress}`, outs: outputs(i, owner, after, original) };
            },
            async (original) => {
                // Checks throw before anything changes; a failure after them puts the PF back as it was.
                const now = await readPf(remote, pf.pciAddress);
                if (now) await restore(remote, now, original, owner, i.libvirtNetwork);
                else if (i.libvirtNetwork) await releaseKnob(remote, networkClaim(owner, i.libvirtNetwork));
            },
        );
    },

    async read(id: string, props: Record<string, unknown>): Promise<pulumi.dynamic.ReadResult> {
        const i = inputsOf(props);
        const owner = resourceOwner("SriovNic", i.pf, props);
        const remote = remoteFor(i.connection);
        // One round trip: the PF, its VFs and, when it has one, its VF pool network.
        const { pf, networks } = await readPfWithNetworks(remote, i.pf, i.libvirtNetwork ? [i.libvirtNetwork] : []);
        if (!pf || pf.totalVfs === null) return gone(); // the PF is gone: refresh drops the resource
        // Live values in the input fields, so refresh shows a change made behind our back: the
        // listed VFs as they are, and any other VF whose settings are no longer the defaults.
        const listed = i.vfs.map((v) => pf.vfs.find((l) => l.vf === v.vf)).filter((v): v is VfSettings => v !== undefined);
        // A VF a guest holds (vfio-pci) has the settings its guest's interface gave it: no stray.
        const held = guestVfs(pf);
        const strays = pf.vfs.filter((l) => !i.vfs.some((v) => v.vf === l.vf) && !held.includes(l.vf) && JSON.stringify(l) !== JSON.stringify(defaultVf(l.vf)));
        let libvirtNetwork = i.libvirtNetwork;
        if (libvirtNetwork) {
            const n = networks.get(libvirtNetwork) as NetworkRead;
            const fine = n.exists && n.active && n.autostart && n.network?.owner === owner && n.network.mode === "hostdev" && n.network.pf === pf.name;
            if (!fine) libvirtNetwork = undefined;
        }
        const live: SriovNicInputs = { ...i, numVfs: pf.numVfs, vfs: [...listed, ...strays], persist: pf.persisted, libvirtNetwork };
        return found(id, outputs(live, owner, pf, props.original as Original, driftOf(i, owner, pf)));
    },

    async update(_id: string, olds: Record<string, unknown>, news: Record<string, unknown>): Promise<pulumi.dynamic.UpdateResult> {
        const untouched = stateOnlyUpdate(sriovNicSchema, POLICY, olds, news);
        if (untouched) return untouched;
        const i = inputsOf(news);
        const owner = resourceOwner("SriovNic", i.pf, news, olds);
        const remote = remoteFor(i.connection);
        const pf = await requirePf(remote, i);
        // Re-taken on every update: it moves the claim to a new label, before anything changes. A
        // claim the host lost (reinstalled) is taken again, recording the PF as it is now.
        const seen: Original = { numVfs: pf.numVfs, vfs: pf.vfs, pfUp: pf.adminUp };
        // The network the previous inputs named (refresh leaves it out when it was found broken).
        const oldNetwork = typeof olds.networkName === "string" ? olds.networkName : typeof olds.libvirtNetwork === "string" ? olds.libvirtNetwork : undefined;
        return updateKnob(remote, { ...pfClaim(owner, pf, formerOwnersOf(olds, owner), seen), original: seen }, olds.original as Original | undefined, async (original) => {
            const after = await converge(remote, i, pf, owner, oldNetwork);
            return { outs: outputs(i, owner, after, original) };
        });
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
                    await runScript(remote, unpersistScript(pfName) + "\n" + dropInRemoval(pfName));
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
