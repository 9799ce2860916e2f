/**
 * BlockElevator: a disk's I/O scheduler (mq-deadline, bfq, kyber, none), its tunables and queue
 * settings, applied live and persisted as a udev rule matching the disk by a stable name.
 *
 * Changing `device` replaces the resource (another disk); every other change is applied live.
 */
import * as pulumi from "@pulumi/pulumi";
import { ConnectionInput, secretConnection } from "./connectionInput";
import { KvmtuneResource } from "./lazyProvider";
import { ownerLabel } from "./owner";

export type SchedulerName = "mq-deadline" | "bfq" | "kyber" | "none";

export interface BlockElevatorArgs {
    connection: ConnectionInput;
    /** A whole disk: kernel name (`vdb`, `nvme0n1`) or `/dev/disk/by-id/...` / `/dev/disk/by-path/...`. */
    device: pulumi.Input<string>;
    /** The scheduler. The legacy names `deadline`, `cfq` and `noop` are mapped, with a warning. */
    scheduler: pulumi.Input<SchedulerName | "deadline" | "cfq" | "noop">;
    /**
     * Tunables under `queue/iosched/`, checked against the scheduler: mq-deadline has `read_expire`,
     * `write_expire`, `writes_starved`, `front_merges`, `fifo_batch`, ...; bfq has `slice_idle`,
     * `low_latency`, ...; kyber has `read_lat_nsec`, `write_lat_nsec`.
     */
    tunables?: pulumi.Input<Record<string, pulumi.Input<number>>>;
    /** `queue/nr_requests`. */
    nrRequests?: pulumi.Input<number>;
    /** `queue/read_ahead_kb`. */
    readAheadKb?: pulumi.Input<number>;
    /** Keep the settings across reboots and hot-plug with a udev rule (default true). */
    persist?: pulumi.Input<boolean>;
}

const LEGACY: Record<string, SchedulerName> = { deadline: "mq-deadline", cfq: "bfq", noop: "none" };

export class BlockElevator extends KvmtuneResource {
    /** The disk's kernel name, resolved on the host from `device`. */
    public readonly kernelName!: pulumi.Output<string>;
    public readonly activeScheduler!: pulumi.Output<string>;
    public readonly availableSchedulers!: pulumi.Output<string[]>;
    /** Every tunable of the active scheduler as read back. */
    public readonly currentTunables!: pulumi.Output<Record<string, number>>;
    public readonly currentNrRequests!: pulumi.Output<number>;
    public readonly currentReadAheadKb!: pulumi.Output<number>;
    /** What the disk had before create; delete puts it back. */
    public readonly original!: pulumi.Output<{ scheduler: string; tunables: Record<string, number>; nrRequests: number; readAheadKb: number }>;
    /** What refresh found different from what kvmtune keeps on the host (a persistence file, the claim); the next up puts it back. Empty when in sync. */
    public readonly drift!: pulumi.Output<string[]>;

    constructor(name: string, args: BlockElevatorArgs, opts?: pulumi.CustomResourceOptions) {
        super(
            "kvmtune/providers/blockElevator",
            "BlockElevator",
            name,
            {
                ...args,
                connection: secretConnection(args.connection),
                // Names this resource (and its project and stack) in the files and claims it leaves on the host.
                owner: ownerLabel("BlockElevator", name),
                kernelName: undefined,
                activeScheduler: undefined,
                availableSchedulers: undefined,
                currentTunables: undefined,
                currentNrRequests: undefined,
                currentReadAheadKb: undefined,
                original: undefined,
                drift: undefined,
            },
            opts,
        );
        // On the resource, so the CLI shows it under this elevator rather than the stack.
        pulumi.output(args.scheduler).apply((s) => {
            if (LEGACY[s]) {
                pulumi.log.warn(`scheduler "${s}" is a single-queue name from before blk-mq; using ${LEGACY[s]}`, this);
            }
        });
    }
}
