/**
 * VhostNetwork: a libvirt network on a Linux bridge for virtio guests with the in-kernel vhost-net
 * backend: vhost_net loaded now and at boot, the network defined, started and autostarted, and the
 * guest defaults (queue pairs, ring sizes) that NumaPinnedGuest interfaces on it take when they
 * leave them out.
 *
 * libvirt creates the bridge (an isolated network, optionally with an uplink put into it), or the
 * network uses a bridge the host already has (`existingBridge: true`). Changing `name`, `bridge` or
 * `existingBridge` replaces the network; the uplink, the guest defaults and `persist` change live.
 */
import * as pulumi from "@pulumi/pulumi";
import { ConnectionInput, secretConnection } from "./connectionInput";
import { KvmtuneResource } from "./lazyProvider";
import { ownerLabel } from "./owner";

export type RingSizeInput = 256 | 512 | 1024;

export interface VhostNetworkArgs {
    connection: ConnectionInput;
    /** The libvirt network name (guests' interfaces name it). Changing it replaces the network. */
    name: pulumi.Input<string>;
    /** The Linux bridge (at most 15 characters). Changing it replaces the network. */
    bridge: pulumi.Input<string>;
    /**
     * `false` (default): libvirt creates the bridge when the network starts (no forward, no
     * addresses: isolated). `true`: attach to a bridge the host already has (`<forward mode='bridge'/>`).
     */
    existingBridge?: pulumi.Input<boolean>;
    /** An interface without addresses put into the created bridge (a NIC, bond, VLAN, veth). */
    uplink?: pulumi.Input<string>;
    /** Default virtio-net queue pairs for guests on this network (a guest uses at most its vCPUs). */
    queues?: pulumi.Input<number>;
    /** Default virtio-net RX ring size for guests on this network. */
    rxQueueSize?: pulumi.Input<RingSizeInput>;
    /** Default TX ring size (QEMU honours it for vhost-user only). */
    txQueueSize?: pulumi.Input<RingSizeInput>;
    /** Keep it across host reboots: autostart, the modules-load file, the uplink hook (default true). */
    persist?: pulumi.Input<boolean>;
    /** Take over an existing network of this name that has the declared bridge and forward mode. */
    adopt?: pulumi.Input<boolean>;
}

/** The defaults guests' interfaces on the network take, as stored in its metadata. */
export interface VhostGuestDefaults {
    queues?: number;
    rxQueueSize?: RingSizeInput;
    txQueueSize?: RingSizeInput;
}

export class VhostNetwork extends KvmtuneResource {
    /** The libvirt network name: pass it to a guest's interface (`{ network: net.name }`) to order the guest after it. */
    public readonly name!: pulumi.Output<string>;
    public readonly uuid!: pulumi.Output<string>;
    /** The bridge the network uses, as libvirt reports it. */
    public readonly bridgeName!: pulumi.Output<string>;
    /** `/dev/vhost-net` exists: guests get the in-kernel backend. */
    public readonly vhostNetAvailable!: pulumi.Output<boolean>;
    public readonly guestDefaults!: pulumi.Output<VhostGuestDefaults>;
    public readonly active!: pulumi.Output<boolean>;
    public readonly autostart!: pulumi.Output<boolean>;
    /** The network carries this resource's ownership mark. */
    public readonly owned!: pulumi.Output<boolean>;
    /** What refresh found different from the declaration (the next up puts it back); empty when in sync. */
    public readonly drift!: pulumi.Output<string[]>;

    constructor(name: string, args: VhostNetworkArgs, opts?: pulumi.CustomResourceOptions) {
        super(
            "kvmtune/providers/vhostNetwork",
            "VhostNetwork",
            name,
            {
                ...args,
                connection: secretConnection(args.connection),
                // The ownership claim and the mark in the network's <metadata>: resource, project and stack.
                owner: ownerLabel("VhostNetwork", name),
                uuid: undefined,
                bridgeName: undefined,
                vhostNetAvailable: undefined,
                guestDefaults: undefined,
                active: undefined,
                autostart: undefined,
                owned: undefined,
                drift: undefined,
            },
            opts,
        );
    }
}
