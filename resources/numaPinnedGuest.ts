/**
 * NumaPinnedGuest: a libvirt guest (driven by `virsh` over SSH) whose vCPUs, emulator and I/O
 * threads are pinned, whose memory is bound to host NUMA nodes and may come from huge pages, and
 * whose disks and NICs use the fast paths (cache=none with native/io_uring AIO, vhost-net
 * multi-queue, SR-IOV VFs).
 *
 * Pins and the numatune nodeset change live; other changes go to the persistent definition and
 * take effect when the guest restarts (`restartPolicy: "restart"`), or are listed in
 * `pendingRestart`. A change of `name` replaces the guest.
 */
import * as pulumi from "@pulumi/pulumi";
import { ConnectionInput, secretConnection } from "./connectionInput";
import { KvmtuneResource } from "./lazyProvider";
import { ownerLabel } from "./owner";

/** A CPU set: one CPU, a list of CPUs, or a kernel CPU list such as `"2-3,6"`. */
export type CpuSetInput = number | number[] | string;

export interface GuestDiskArgs {
    /** A file or block device (`/dev/...`) by absolute path. Set this, or `pool` and `volume`. */
    path?: pulumi.Input<string>;
    pool?: pulumi.Input<string>;
    volume?: pulumi.Input<string>;
    /** The guest's device name: `vda` (virtio), `sda` (scsi, sata). */
    target: pulumi.Input<string>;
    bus?: pulumi.Input<"virtio" | "scsi" | "sata">;
    format?: pulumi.Input<"raw" | "qcow2">;
    /** Default `none` (O_DIRECT, no host page cache). */
    cache?: pulumi.Input<"none" | "writethrough" | "writeback" | "directsync" | "unsafe">;
    /** Default `native` (needs cache none or directsync). */
    io?: pulumi.Input<"native" | "threads" | "io_uring">;
    /** The I/O thread (1..iothreads) serving this virtio disk. */
    iothread?: pulumi.Input<number>;
}

/** A virtio NIC on a libvirt network (e.g. a VhostNetwork's), with vhost-net. */
export interface GuestNetworkInterfaceArgs {
    network: pulumi.Input<string>;
    mac?: pulumi.Input<string>;
    /** Queue pairs (multi-queue virtio-net); at most the guest's vCPUs. */
    queues?: pulumi.Input<number>;
    rxQueueSize?: pulumi.Input<256 | 512 | 1024>;
    /** QEMU honours it for vhost-user only. */
    txQueueSize?: pulumi.Input<256 | 512 | 1024>;
}

/** An SR-IOV VF handed to the guest (`<interface type='hostdev' managed='yes'>`). */
export interface GuestVfInterfaceArgs {
    hostdevVf: pulumi.Input<{ pf: pulumi.Input<string>; vf: pulumi.Input<number> } | { pciAddress: pulumi.Input<string> }>;
    mac?: pulumi.Input<string>;
    vlan?: pulumi.Input<number>;
    /**
     * Hand over a VF whose PF sits on another NUMA node than the guest's (every packet then
     * crosses the interconnect). Without it, such a VF is refused before anything changes.
     */
    allowOtherNode?: pulumi.Input<boolean>;
}

export interface NumaPinnedGuestArgs {
    connection: ConnectionInput;
    /** The libvirt domain name. Changing it replaces the guest. */
    name: pulumi.Input<string>;
    vcpus: pulumi.Input<number>;
    memoryMiB: pulumi.Input<number>;
    /** The host NUMA node for memory (and auto pins). Set this or `nodeset`. */
    numaNode?: pulumi.Input<number>;
    nodeset?: pulumi.Input<CpuSetInput>;
    /** `<numatune>` mode (default `strict`). */
    memoryMode?: pulumi.Input<"strict" | "preferred" | "interleave" | "restrictive">;
    /** One CPU set per vCPU, or `auto` (default): distinct CPUs of the node no other guest's vCPUs hold. */
    cpuPins?: pulumi.Input<"auto" | pulumi.Input<CpuSetInput>[]>;
    emulatorPin?: pulumi.Input<CpuSetInput>;
    iothreads?: pulumi.Input<number>;
    /** One CPU set per I/O thread, thread 1 first. */
    iothreadPins?: pulumi.Input<pulumi.Input<CpuSetInput>[]>;
    /** Back the memory with huge pages of this size, from the bound node's pool. */
    hugepages?: pulumi.Input<"2M" | "1G" | "default">;
    /** Default `host-passthrough`. */
    cpuMode?: pulumi.Input<"host-passthrough" | "host-model" | "default">;
    disks?: pulumi.Input<pulumi.Input<GuestDiskArgs>[]>;
    interfaces?: pulumi.Input<pulumi.Input<GuestNetworkInterfaceArgs | GuestVfInterfaceArgs>[]>;
    /** Start with the host (default true). */
    autostart?: pulumi.Input<boolean>;
    /** Keep the guest running (default true). */
    running?: pulumi.Input<boolean>;
    /** `never` (default): changes needing a restart are listed in `pendingRestart`; `restart`: restart the guest. */
    restartPolicy?: pulumi.Input<"never" | "restart">;
    /** How long to wait for an ACPI shutdown before forcing the guest off (default 120). */
    shutdownTimeoutSeconds?: pulumi.Input<number>;
    /**
     * Adopt an existing domain (name or UUID) instead of defining one: it must match these inputs;
     * nothing is written until the next change. (Pulumi's `import` option cannot reach a dynamic
     * provider's read: pulumi/pulumi#16175.)
     */
    adopt?: pulumi.Input<string>;
}

export class NumaPinnedGuest extends KvmtuneResource {
    public readonly name!: pulumi.Output<string>;
    public readonly uuid!: pulumi.Output<string>;
    /** `virsh domstate`: running, shut off, ... */
    public readonly state!: pulumi.Output<string>;
    /** The CPU set of each vCPU, `auto` resolved. */
    public readonly resolvedCpuPins!: pulumi.Output<number[][]>;
    /** The emulator's CPUs as applied: `emulatorPin`, or chosen by kvmtune (see emulatorPinReason); null: unpinned. */
    public readonly resolvedEmulatorPin!: pulumi.Output<number[] | null>;
    /** Why kvmtune chose the emulator's CPUs when `emulatorPin` was left out (a huge page guest on a node whose CPUs are all isolated); null otherwise. */
    public readonly emulatorPinReason!: pulumi.Output<string | null>;
    /** Parts of the definition the running guest does not have yet (it needs a restart). */
    public readonly pendingRestart!: pulumi.Output<string[]>;
    /** The domain carries this resource's ownership mark. */
    public readonly owned!: pulumi.Output<boolean>;
    /** The guest was adopted (the `adopt` input) rather than defined by this resource. */
    public readonly adopted!: pulumi.Output<boolean>;
    /** Per interface: the PCI address of the VF it holds (hostdevVf interfaces); null for the others. */
    public readonly vfAddresses!: pulumi.Output<Array<string | null>>;
    /** Per interface: what it took from its network's guest defaults (a VhostNetwork's queues, ring sizes); null: nothing. */
    public readonly interfaceDefaults!: pulumi.Output<Array<{ queues?: number; rxQueueSize?: number; txQueueSize?: number } | null>>;

    constructor(name: string, args: NumaPinnedGuestArgs, opts?: pulumi.CustomResourceOptions) {
        super(
            "kvmtune/providers/numaPinnedGuest",
            "NumaPinnedGuest",
            name,
            {
                ...args,
                connection: secretConnection(args.connection),
                // The ownership mark in the domain's <metadata>: resource, project and stack.
                owner: ownerLabel("NumaPinnedGuest", name),
                uuid: undefined,
                state: undefined,
                resolvedCpuPins: undefined,
                resolvedEmulatorPin: undefined,
                emulatorPinReason: undefined,
                pendingRestart: undefined,
                owned: undefined,
                adopted: undefined,
                vfAddresses: undefined,
                interfaceDefaults: undefined,
            },
            opts,
        );
    }
}
