/**
 * KernelCmdline: the kernel command line arguments kvmtune owns on a host (the IOMMU, CPU isolation
 * for pinned guests, 1 GiB huge pages reserved at boot, extra arguments), merged with everything
 * else on the command line, which it never touches. Persisted through the host's bootloader
 * (update-grub, or grubby on the RHEL family); delete takes them off again.
 *
 * Every change takes effect at the next boot: `rebootRequired` says, from the host, whether the
 * running kernel still lacks what the boot configuration holds. kvmtune does not reboot here.
 */
import * as pulumi from "@pulumi/pulumi";
import { ConnectionInput, secretConnection } from "./connectionInput";
import { KvmtuneResource } from "./lazyProvider";
import { ownerLabel } from "./owner";

export interface KernelCmdlineArgs {
    connection: ConnectionInput;
    /**
     * `on`: `intel_iommu=on`. `pt`: `intel_iommu=on iommu=pt` (translation only for assigned
     * devices: the choice for SR-IOV VFs handed to guests). `off`: `intel_iommu=off amd_iommu=off`.
     */
    iommu?: pulumi.Input<"on" | "pt" | "off">;
    /**
     * CPUs for pinned guests, e.g. `"2-3"`: `isolcpus=`, `nohz_full=` and `rcu_nocbs=` of them, and
     * `irqaffinity=` of the host's other CPUs. The boot CPU and at least one CPU stay the host's.
     */
    isolatedCpus?: pulumi.Input<string>;
    /** 1 GiB pages reserved at boot: a total, or per NUMA node (`{ "1": 2 }`, Linux 5.16+). */
    hugepages1G?: pulumi.Input<number | Record<string, pulumi.Input<number>>>;
    /** More arguments, `name` or `name=value` each, e.g. `["transparent_hugepage=never"]`. */
    extra?: pulumi.Input<pulumi.Input<string>[]>;
}

export interface KernelCmdlineRunning {
    /** `/proc/cmdline`. */
    cmdline: string;
    /** `/sys/devices/system/cpu/isolated` ("" when none). */
    isolatedCpus: string;
    /** Entries in /sys/kernel/iommu_groups. */
    iommuGroups: number;
    /** 1 GiB pages per NUMA node. */
    hugepages1G: Record<string, number>;
}

export class KernelCmdline extends KvmtuneResource {
    /** The arguments kvmtune owns on the host, as written to the boot configuration. */
    public readonly args!: pulumi.Output<string[]>;
    /** `update-grub` or `grubby`: how this host's boot configuration is kept. */
    public readonly bootloader!: pulumi.Output<"update-grub" | "grubby">;
    /** The default boot entry's command line: what the next boot gets. */
    public readonly bootCmdline!: pulumi.Output<string>;
    /** What the running kernel has, read from the host. */
    public readonly running!: pulumi.Output<KernelCmdlineRunning>;
    /** True when the boot configuration and the running kernel differ in kvmtune's arguments. */
    public readonly rebootRequired!: pulumi.Output<boolean>;
    /** Each setting not in effect in the running kernel, and why (a pending reboot, or a kernel that did less). */
    public readonly notInEffect!: pulumi.Output<string[]>;
    /** Arguments kvmtune took off the boot configuration that the running kernel still has. */
    public readonly retired!: pulumi.Output<string[]>;
    /** The boot configuration found before create; delete gives it back. */
    public readonly original!: pulumi.Output<{ flavor: "update-grub" | "grubby"; cmdline: string }>;
    /** What refresh found different from what kvmtune keeps on the host; the next up puts it back. Empty when in sync. */
    public readonly drift!: pulumi.Output<string[]>;

    constructor(name: string, args: KernelCmdlineArgs, opts?: pulumi.CustomResourceOptions) {
        super(
            "kvmtune/providers/kernelCmdline",
            "KernelCmdline",
            name,
            {
                ...args,
                connection: secretConnection(args.connection),
                owner: ownerLabel("KernelCmdline", name),
                args: undefined,
                bootloader: undefined,
                bootCmdline: undefined,
                running: undefined,
                rebootRequired: undefined,
                notInEffect: undefined,
                retired: undefined,
                original: undefined,
                drift: undefined,
            },
            opts,
        );
    }
}
