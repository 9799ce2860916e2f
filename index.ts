/**
 * The kvmtune program: a tuned KVM fleet declared from stack config.
 *
 * `kvmtune:hosts` lists the hosts, how to reach them and (per host, or for all in `kvmtune:tuning`)
 * their tuning. A stack without hosts uses the lab's hosts and the lab tuning (`npm start` boots
 * the lab first), so the repository converges something real out of the box.
 */
import * as pulumi from "@pulumi/pulumi";
import { maxDownOf, planFleet } from "./fleet/config";
import { labInventoryPath, readLabInventory } from "./fleet/labInventory";
import { labReboots, labTuning } from "./fleet/labTuning";
import { RollingReboots } from "./fleet/rollingReboots";
import { AppliedView, topologyFromApplied } from "./fleet/topology";
import { HostDetail, HostEntry, hostSummary, writeHostDetail } from "./fleet/summary";
import { writeTopology } from "./fleet/writeTopology";
import { KvmHost, KvmHostArgs } from "./resources";
import { secretConnection } from "./resources/connectionInput";

const config = new pulumi.Config("kvmtune");
const configured = config.getObject<unknown[]>("hosts");
const tuning = config.getObject<unknown>("tuning");
/** Where `up` writes each host's topology picture (`<host>.svg`) and full detail (`<host>.json`); empty: neither. */
const topologyDir = config.get("topologyDir") ?? "out/topology";
// Lab hosts as config: the inventory's extra fields (sudoUser) are the lab's, not the fleet's.
const lab = configured
    ? undefined
    : readLabInventory()?.map(({ name, host, port, user, privateKeyPath, hostKey }) => ({ name, host, port, user, privateKeyPath, hostKey }));
if (!configured && !lab) {
    throw new Error(`no hosts: set kvmtune:hosts in the stack config, or boot the lab (npm run lab -- up) so ${labInventoryPath()} exists`);
}
const fleetConfig = { hosts: configured ?? lab, tuning: tuning ?? (configured ? undefined : labTuning), reboots: config.getObject<unknown>("reboots") ?? (configured ? undefined : labReboots) };
const fleet = planFleet(fleetConfig);
// Hosts reboot for their kernelCmdline only under kvmtune:reboots, at most maxDown at a time.
const rolling = new RollingReboots(maxDownOf(fleetConfig));

export const hosts: Record<string, pulumi.Output<unknown>> = {};
for (const h of fleet) {
    // The tuning items were checked against the resources' own schemas by planFleet.
    const reboot = h.reboot ? { reboot: h.reboot, rebootAfter: rolling.next() } : {};
    const args = { connection: secretConnection(h.connection), ...h.tuning, ...reboot } as unknown as KvmHostArgs;
    const host = new KvmHost(h.name, args);
    if (host.reboot) rolling.add(host.reboot);
    const f = host.facts;
    // After everything on the host is applied (not in preview), the picture of what ended up where,
    // drawn from what the host's resources read back: no second SSH connection (issue 10).
    const picture = pulumi.all([f.hostname, f.numaNodes, f.nics, host.applied]).apply(([hostname, numaNodes, nics, applied]) => {
        if (pulumi.runtime.isDryRun() || !topologyDir) return null;
        try {
            const topology = topologyFromApplied({ hostname, numaNodes, nics }, applied as unknown as AppliedView, h.tuning.guests ?? []);
            return writeTopology(topology, topologyDir, h.name);
        } catch (e) {
            pulumi.log.warn(`${h.name}: no topology picture: ${(e as Error).message}`, host);
            return null;
        }
    });
    // What `up` prints: one line per host. The full detail (every node's CPUs, every pool, VF and
    // tunable: about 270 lines a host) goes to a JSON file beside the picture instead of the
    // output, so a fleet of 100 does not print 27,000 lines (issue 17).
    hosts[h.name] = pulumi.all([f.hostname, f.kernel, f.numaNodes, f.libvirtVersion, f.vhostNet, host.applied, picture]).apply(
        ([hostname, kernel, nodes, libvirt, vhostNet, applied, topology]): HostEntry => {
            const detail: HostDetail = {
                facts: {
                    hostname,
                    kernel,
                    libvirt,
                    vhostNet,
                    numaNodes: nodes.map((n) => ({ id: n.id, cpus: n.cpus, memoryMiB: n.memoryMiB, hugepages: n.hugepages })),
                },
                applied,
            };
            const file = pulumi.runtime.isDryRun() || !topologyDir ? null : writeHostDetail({ ...detail, topology }, topologyDir, h.name);
            return { summary: hostSummary(detail), detail: file, topology };
        },
    );
}
