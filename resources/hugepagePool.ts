/**
 * HugepagePool: 2 MiB or 1 GiB huge pages, sized per NUMA node (or as a total the kernel spreads),
 * optionally mounted, persistent across reboots.
 *
 * A change of `nodes`/`total`/`mount`/`persist` is applied live; a change of `pageSize` replaces
 * the pool. For 1 GiB pages the boot command line is updated too, and `rebootRequired` says when
 * the running kernel does not have it yet.
 */
import * as pulumi from "@pulumi/pulumi";
import { ConnectionInput, secretConnection } from "./connectionInput";
import { KvmtuneResource } from "./lazyProvider";
import { ownerLabel } from "./owner";

export interface HugepagePoolArgs {
    connection: ConnectionInput;
    /** `2M` or `1G`. Changing it replaces the pool. */
    pageSize: pulumi.Input<"2M" | "1G">;
    /** Pages per NUMA node, e.g. `{ "0": 512, "1": 512 }`. Set this or `total`. */
    nodes?: pulumi.Input<Record<string, pulumi.Input<number>>>;
    /** Pages in all, spread over the nodes by the kernel. Set this or `nodes`. */
    total?: pulumi.Input<number>;
    /** Mount point of a hugetlbfs for this page size, e.g. `/dev/hugepages`. */
    mount?: pulumi.Input<string>;
    /** Keep the pool across reboots (default true). */
    persist?: pulumi.Input<boolean>;
    /** Accept fewer pages than asked instead of failing (default false). */
    allowPartial?: pulumi.Input<boolean>;
}

export interface HugepagePoolCounts {
    total: number;
    free: number;
    surplus: number;
}

export class HugepagePool extends KvmtuneResource {
    public readonly pageSize!: pulumi.Output<"2M" | "1G">;
    /** Per node, as read from the host after the last change. */
    public readonly pools!: pulumi.Output<Record<string, HugepagePoolCounts>>;
    public readonly totalPages!: pulumi.Output<number>;
    public readonly freePages!: pulumi.Output<number>;
    /** What the host had before create; delete puts it back. */
    public readonly original!: pulumi.Output<{ nodes: Record<string, number>; mountWasThere: boolean }>;
    /** True when the boot configuration has a pool the running kernel does not (1G pools). */
    public readonly rebootRequired!: pulumi.Output<boolean>;
    /** What refresh found different from what kvmtune keeps on the host (a persistence file, the claim); the next up puts it back. Empty when in sync. */
    public readonly drift!: pulumi.Output<string[]>;

    constructor(name: string, args: HugepagePoolArgs, opts?: pulumi.CustomResourceOptions) {
        super(
            "kvmtune/providers/hugepagePool",
            "HugepagePool",
            name,
            {
                ...args,
                connection: secretConnection(args.connection),
                // Names this resource (and its project and stack) in the files and claims it leaves on the host.
                owner: ownerLabel("HugepagePool", name),
                pools: undefined,
                totalPages: undefined,
                freePages: undefined,
                original: undefined,
                rebootRequired: undefined,
                drift: undefined,
            },
            opts,
        );
    }
}
