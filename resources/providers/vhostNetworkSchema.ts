/**
 * VhostNetwork's inputs: the zod schema (the only source of the input types) and the field policy;
 * the network's claim, and the files it keeps on the host (modules-load file, uplink hook).
 */
import { z } from "zod";
import { connectionSchema } from "../host/connection";
import type { PersistedFile } from "../host/drift";
import { managedHeader } from "../host/files";
import { networkManagerDropInName, networkManagerDropInPath, networkManagerUnmanagedFile } from "../host/platform";
import { shellQuote } from "../host/quote";
import { networkClaim } from "../libvirt/network";
import type { FieldPolicy } from "../policy";
import { interfaceName, ringSize } from "../patterns";

/** Network names: plain, and without `+` (NumaPinnedGuest allows it) since the name also names the hook file. */
const NETWORK_NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/;
export const vhostNetworkSchema = z
    .object({
        connection: connectionSchema,
        /** The libvirt network name guests' interfaces name. */
        name: z.string().regex(NETWORK_NAME, "must be a network name of letters, digits and _.- (at most 64)"),
        /** The Linux bridge: created by libvirt, or (existingBridge) one the host has. */
        bridge: interfaceName("a bridge"),
        /** Attach to a bridge the host already has (`<forward mode='bridge'/>`) instead of creating one. */
        existingBridge: z.boolean().default(false),
        /** An interface put into the created bridge (a NIC, bond, VLAN or veth without addresses). */
        uplink: interfaceName("an interface").optional(),
        /** Guest defaults: virtio-net queue pairs (at most the guest's vCPUs are used). */
        queues: z.number().int().min(1).max(256).optional(),
        rxQueueSize: ringSize().optional(),
        /** QEMU honours tx_queue_size for vhost-user only; libvirt passes it on. */
        txQueueSize: ringSize().optional(),
        /** Keep it across host reboots: network autostart, the modules-load file, the uplink hook. */
        persist: z.boolean().default(true),
        /** Take over an existing network of this name (it must have the declared bridge and forward mode). */
        adopt: z.boolean().default(false),
    })
    .strict()
    .superRefine((i, ctx) => {
        if (i.uplink !== undefined && i.existingBridge) {
            ctx.addIssue({ code: "custom", path: ["uplink"], message: "an existing bridge's ports are the host's own; uplink goes with a bridge the network creates (existingBridge: false)" });
        }
        if (i.uplink !== undefined && i.uplink === i.bridge) {
            ctx.addIssue({ code: "custom", path: ["uplink"], message: "the uplink cannot be the bridge itself" });
        }
    });

export type VhostNetworkInputs = z.output<typeof vhostNetworkSchema>;

export const POLICY: FieldPolicy<VhostNetworkInputs> = {
    connection: "state",
    name: "replace",
    // Another bridge means another network: guests' taps would have to move.
    bridge: "replace",
    existingBridge: "replace",
    uplink: "live",
    // Stored in the network's metadata; guests take them when they are next defined.
    queues: "live",
    rxQueueSize: "live",
    txQueueSize: "live",
    persist: "live",
    adopt: "state",
};

export const MODULES_FILE = "/etc/modules-load.d/kvmtune-vhost-net.conf";
export const MODULES_CONTENT =
    managedHeader("the VhostNetwork resources on this host") +
    "# One file for every kvmtune vhost network on this host: removed with the last of them.\nvhost_net\n";

/** libvirt runs the executables in hooks/network.d on every network's start and stop. */
export const hookPath = (network: string) => `/etc/libvirt/hooks/network.d/kvmtune-${network}`;

/** The NetworkManager drop-in of the network whose bridge is `bridge` (networkManagerDropIn). */
export const dropInPath = (bridge: string) => networkManagerDropInPath(networkManagerDropInName("vhost", bridge));

/**
 * Where NetworkManager runs, the bridge libvirt creates and the uplink kvmtune puts into it are
 * marked unmanaged by a drop-in kvmtune owns: NetworkManager gives every NIC it manages a "Wired
 * connection" and would take the uplink out of the bridge when it (re)activates one. An existing
 * bridge (existingBridge) is the host's own, NetworkManager's perhaps, and stays as it is: no file.
 * Absent where NetworkManager does not run. Kept with or without `persist`: NetworkManager acts now.
 */
export function networkManagerDropIn(owner: string, i: Pick<VhostNetworkInputs, "bridge" | "uplink" | "existingBridge">, networkManager: boolean): PersistedFile {
    const names = networkManager && !i.existingBridge ? [i.bridge, ...(i.uplink !== undefined ? [i.uplink] : [])] : [];
    return networkManagerUnmanagedFile(networkManagerDropInName("vhost", i.bridge), owner, names);
}

/**
 * The network's claim. The hook is not one of its files: its first line is `#!/bin/sh`, and the
 * claim check reads first lines; the network's own mark covers a network kvmtune did not define.
 */
export const vhostNetworkClaim = (owner: string, name: string, formerOwners: string[] = []) => networkClaim(owner, name, [], formerOwners);

/** The hook that puts the uplink into the bridge whenever libvirt starts the network (at boot, after net-start). */
export function hookScript(owner: string, i: Pick<VhostNetworkInputs, "name" | "bridge"> & { uplink: string }): string {
    const [name, bridge, uplink] = [shellQuote(i.name), shellQuote(i.bridge), shellQuote(i.uplink)];
    return (
        "#!/bin/sh\n" +
        managedHeader(owner) +
        [
            "# libvirt runs it as: SCRIPT NETWORK OPERATION SUB-OPERATION - (the network's XML on stdin).",
            `# When ${i.name} has started (its bridge exists), put ${i.uplink} into ${i.bridge}, as kvmtune does on each up.`,
            "# libvirt looks for hook scripts when libvirtd starts: a new one takes effect from then.",
            "PATH=/usr/sbin:/usr/bin:/sbin:/bin",
            `[ "$1" = ${name} ] && [ "$2" = started ] || exit 0`,
            `ip link set dev ${uplink} master ${bridge} && ip link set dev ${uplink} up || logger -t kvmtune ${shellQuote(`VhostNetwork ${i.name}: could not put ${i.uplink} into ${i.bridge}`)}`,
            "exit 0",
        ].join("\n") +
        "\n"
    );
}
