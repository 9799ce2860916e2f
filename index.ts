/**
 * The kvmtune program: a tuned KVM fleet declared from stack config.
 *
 * `kvmtune:hosts` lists the hosts and how to reach them. A stack without hosts uses the lab's
 * (`npm start` boots the lab first), so the repository converges something real out of the box.
 */
import * as pulumi from "@pulumi/pulumi";
import { parseFleet, privateKeyOf } from "./fleet/config";
import { labInventoryPath, readLabInventory } from "./fleet/labInventory";
import { HostFacts } from "./resources";

const config = new pulumi.Config("kvmtune");
const configured = config.getObject<unknown[]>("hosts");
// Lab hosts as config: the inventory's extra fields (sudoUser) are the lab's, not the fleet's.
const lab = configured
    ? undefined
    : readLabInventory()?.map(({ name, host, port, user, privateKeyPath, hostKey }) => ({ name, host, port, user, privateKeyPath, hostKey }));
if (!configured && !lab) {
    throw new Error(`no hosts: set kvmtune:hosts in the stack config, or boot the lab (npm run lab -- up) so ${labInventoryPath()} exists`);
}
const fleet = parseFleet({ hosts: configured ?? lab });

export const hosts: Record<string, pulumi.Output<unknown>> = {};
for (const h of fleet.hosts) {
    const facts = new HostFacts(`${h.name}-facts`, {
        connection: {
            host: h.host,
            port: h.port,
            user: h.user,
            privateKey: pulumi.secret(privateKeyOf(h)),
            hostKey: h.hostKey,
            sudo: h.sudo,
        },
    });
    hosts[h.name] = pulumi.all([facts.hostname, facts.kernel, facts.numaNodes, facts.libvirtVersion, facts.vhostNet]).apply(
        ([hostname, kernel, nodes, libvirt, vhostNet]) => ({
            hostname,
            kernel,
            libvirt,
            vhostNet,
            numaNodes: nodes.map((n) => ({ id: n.id, cpus: n.cpus, memoryMiB: n.memoryMiB, hugepages: n.hugepages })),
        }),
    );
}
