/**
 * SriovNic's checks: the PF against the inputs before anything changes, and what the driver kept
 * against what was asked after a write.
 */
import { SriovNicInputs, wantedVfs, ZERO_MAC } from "./sriovNicSchema";
import { guestVfs, PfState } from "./sriovNicRead";
import { labelFor } from "./sriovNicWrite";

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
    for (const w of wantedVfs(i, guestVfs(pf))) {
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
