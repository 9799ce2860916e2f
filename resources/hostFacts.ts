/**
 * HostFacts: a read-only view of a KVM host (NUMA nodes and CPUs, huge page pools, disks and their
 * schedulers, NICs and SR-IOV, vhost-net, libvirt), gathered in one SSH round trip.
 * Creating it changes nothing on the host; deleting it leaves the host alone.
 */
import * as pulumi from "@pulumi/pulumi";
import type { BlockDeviceFacts, HostFactsData, NicFacts, NumaNodeFacts } from "./host/facts";
import { ConnectionInput, secretConnection } from "./connectionInput";
import { lazyProvider } from "./lazyProvider";

export interface HostFactsArgs {
    connection: ConnectionInput;
}

export class HostFacts extends pulumi.dynamic.Resource {
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

    constructor(name: string, args: HostFactsArgs, opts?: pulumi.CustomResourceOptions) {
        super(
            lazyProvider("kvmtune/providers/hostFacts"),
            name,
            {
                connection: secretConnection(args.connection),
                facts: undefined,
                hostname: undefined,
                kernel: undefined,
                numaNodes: undefined,
                hugepageSizes: undefined,
                blockDevices: undefined,
                nics: undefined,
                vhostNet: undefined,
                libvirtVersion: undefined,
            },
            opts,
            "kvmtune",
            "HostFacts",
        );
    }
}
