/**
 * HostFacts: a read-only view of a KVM host (NUMA nodes and CPUs, huge page pools, disks and their
 * schedulers, NICs and SR-IOV, vhost-net, libvirt), gathered in one SSH round trip.
 * Creating it changes nothing on the host; deleting it leaves the host alone.
 */
import * as pulumi from "@pulumi/pulumi";
import type { BlockDeviceFacts, HostFactsData, NicFacts, NumaNodeFacts } from "./host/facts";
import type { Platform } from "./host/platform";
import { ConnectionInput, secretConnection } from "./connectionInput";
import { KvmtuneResource } from "./lazyProvider";

export interface HostFactsArgs {
    connection: ConnectionInput;
}

export class HostFacts extends KvmtuneResource {
    /** Everything read, in one object. */
    public readonly facts!: pulumi.Output<HostFactsData>;
    public readonly hostname!: pulumi.Output<string>;
    public readonly kernel!: pulumi.Output<string>;
    public readonly numaNodes!: pulumi.Output<NumaNodeFacts[]>;
    public readonly hugepageSizes!: pulumi.Output<string[]>;
    public readonly blockDevices!: pulumi.Output<BlockDeviceFacts[]>;
    public readonly nics!: pulumi.Output<NicFacts[]>;
    public readonly vhostNet!: pulumi.Output<boolean>;
    public readonly libvirtVersion!: pulumi.Output<string | null>;
    /** How the host is run: bootloader tool, libvirt daemon layout, NetworkManager, tuned, SELinux. */
    public readonly platform!: pulumi.Output<Platform>;

    constructor(name: string, args: HostFactsArgs, opts?: pulumi.CustomResourceOptions) {
        super(
            "kvmtune/providers/hostFacts",
            "HostFacts",
            name,
            {
                connection: secretConnection(args.connection),
                facts: undefined,
            },
            opts,
        );
        // Read from `facts` here rather than stored beside it: state holds the facts once (issue 17).
        // A state written before that still has them beside `facts`; they are not read.
        this.hostname = this.facts.apply((f) => f.hostname);
        this.kernel = this.facts.apply((f) => f.kernel);
        this.numaNodes = this.facts.apply((f) => f.numaNodes);
        this.hugepageSizes = this.facts.apply((f) => f.hugepageSizes);
        this.blockDevices = this.facts.apply((f) => f.blockDevices);
        this.nics = this.facts.apply((f) => f.nics);
        this.vhostNet = this.facts.apply((f) => f.vhostNet.device);
        this.libvirtVersion = this.facts.apply((f) => f.libvirt.version);
        this.platform = this.facts.apply((f) => f.platform);
    }
}
