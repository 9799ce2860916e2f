/**
 * SriovNic: the SR-IOV virtual functions of one PF: how many, and each VF's MAC, VLAN and priority,
 * trust, spoof checking, link state and transmit rate limit; optionally a libvirt VF pool network
 * on the PF. Count and settings are put back at boot by a systemd unit ordered before libvirt.
 *
 * Changing `pf` replaces the resource; every other change is applied live. A change of a non-zero
 * VF count goes through 0 (the kernel's rule), which is refused while a running guest holds a VF.
 */
import * as pulumi from "@pulumi/pulumi";
import { ConnectionInput, secretConnection } from "./connectionInput";
import { KvmtuneResource } from "./lazyProvider";
import { ownerLabel } from "./owner";

export interface SriovVfArgs {
    /** The VF number, 0 to numVfs - 1. */
    vf: pulumi.Input<number>;
    /** The VF's MAC, set from the PF; left out, the VF picks its own. */
    mac?: pulumi.Input<string>;
    /** 802.1Q VLAN the PF tags the VF's traffic with (0-4095; default 0: none). */
    vlan?: pulumi.Input<number>;
    /** 802.1p priority on that VLAN (0-7, needs vlan). */
    qos?: pulumi.Input<number>;
    /** Drop frames sent from another MAC (default true). */
    spoofchk?: pulumi.Input<boolean>;
    /** Let the guest change the MAC and go promiscuous (default false). */
    trust?: pulumi.Input<boolean>;
    /** `auto` (default) follows the PF's link; `enable`/`disable` force it where the driver can. */
    linkState?: pulumi.Input<"auto" | "enable" | "disable">;
    /** Transmit limit in Mbit/s (default 0: none). */
    maxTxRateMbps?: pulumi.Input<number>;
}

export interface SriovNicArgs {
    connection: ConnectionInput;
    /** The PF by interface name (`enp65s0`) or PCI address (`0000:41:00.0`). Changing it replaces the resource. */
    pf: pulumi.Input<string>;
    /** How many VFs (at most the PF's sriov_totalvfs); 0 removes them. */
    numVfs: pulumi.Input<number>;
    /** Settings per VF; VFs not listed keep the kernel's defaults. */
    vfs?: pulumi.Input<pulumi.Input<SriovVfArgs>[]>;
    /** Put count and settings back at boot, before libvirt (default true). */
    persist?: pulumi.Input<boolean>;
    /** Also define, start and autostart a libvirt VF pool network of this name on the PF. */
    libvirtNetwork?: pulumi.Input<string>;
}

/** One VF as the host has it. */
export interface SriovVfDevice {
    vf: number;
    pciAddress: string;
    /** Its netdev on the host; null while it is bound to vfio (in a guest). */
    netdev: string | null;
    /** The driver it is bound to (`igbvf`, `vfio-pci` while a guest holds it); null when unbound. */
    driver: string | null;
}

/** A VF's settings as kvmtune reads them (defaults filled in; no mac: none set). */
export interface SriovVfSettings {
    vf: number;
    mac?: string;
    vlan: number;
    qos: number;
    spoofchk: boolean;
    trust: boolean;
    linkState: "auto" | "enable" | "disable";
    maxTxRateMbps: number;
}

export class SriovNic extends KvmtuneResource {
    /** The PF's interface name (resolved from a PCI address). */
    public readonly pfName!: pulumi.Output<string>;
    public readonly pfPciAddress!: pulumi.Output<string>;
    /** The PF's NUMA node (null on a host without NUMA): place guests using its VFs there. */
    public readonly numaNode!: pulumi.Output<number | null>;
    /** `sriov_totalvfs`: the most VFs the PF offers. */
    public readonly totalVfs!: pulumi.Output<number>;
    /** Every VF's PCI address and netdev. */
    public readonly vfDevices!: pulumi.Output<SriovVfDevice[]>;
    /** What the PF had before create (VF count, VF settings, link up); delete puts it back. */
    public readonly original!: pulumi.Output<{ numVfs: number; vfs: SriovVfSettings[]; pfUp: boolean }>;
    /** The VF pool network's name, when `libvirtNetwork` is set. */
    public readonly networkName!: pulumi.Output<string | undefined>;
    /** The systemd unit that restores the VFs at boot, when `persist` is on. */
    public readonly bootUnit!: pulumi.Output<string | undefined>;
    /** What refresh found different from what kvmtune keeps on the host (the boot unit or script, the claim); the next up puts it back. Empty when in sync. */
    public readonly drift!: pulumi.Output<string[]>;

    constructor(name: string, args: SriovNicArgs, opts?: pulumi.CustomResourceOptions) {
        super(
            "kvmtune/providers/sriovNic",
            "SriovNic",
            name,
            {
                ...args,
                connection: secretConnection(args.connection),
                // The PF's ownership claim on the host names resource, project and stack, so a
                // second stack claiming the same PF is told whose it is.
                owner: ownerLabel("SriovNic", name),
                pfName: undefined,
                pfPciAddress: undefined,
                numaNode: undefined,
                totalVfs: undefined,
                vfDevices: undefined,
                original: undefined,
                // Asked for only with a network: a declared output shows in every preview as
                // `+ networkName: [unknown]`, which promised a network nobody configured.
                ...(args.libvirtNetwork !== undefined ? { networkName: undefined } : {}),
                bootUnit: undefined,
                drift: undefined,
            },
            opts,
        );
        // Without a network, still an Output (of undefined), so a program can read it either way.
        if (args.libvirtNetwork === undefined) this.networkName = pulumi.output(undefined);
    }
}
