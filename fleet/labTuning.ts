/**
 * The tuning the `lab` stack declares on every lab host when the stack config names no hosts:
 * a small but complete tuned KVM host (huge pages on both nodes, a database disk's elevator,
 * SR-IOV VFs, a vhost network and a guest pinned to node 1 that is also handed a VF of node 1's PF
 * through vfio-pci), sized for the lab's nodes of 4 and 2 GiB; and on the kernel command line the
 * IOMMU in pass-through mode and node 1's CPUs isolated for demo-db, which `npm start` applies by
 * rebooting the lab hosts one at a time (labReboots).
 */
import type { RebootsConfig } from "./config";
import type { Tuning } from "./tuning";

export const labTuning: Tuning = {
    // iommu=pt: translation only for devices handed to guests (demo-db's VF). CPUs 2-3 (node 1,
    // demo-db's) isolated: no other task, timer tick or RCU callback, and no IRQ, runs there.
    kernelCmdline: { iommu: "pt", isolatedCpus: "2-3" },
    hugepagePools: [{ pageSize: "2M", nodes: { "0": 64, "1": 64 }, mount: "/dev/hugepages" }],
    elevators: [{ device: "vdb", scheduler: "mq-deadline", tunables: { read_expire: 100 } }],
    // The first igb PF (node 0): 4 VFs, VF 0 with a fixed MAC, VLAN 100 and trust on.
    sriovNics: [
        { pf: "enp33s0", numVfs: 4, vfs: [{ vf: 0, mac: "52:54:00:00:00:10", vlan: 100, trust: true }] },
        // Node 1's PF, for demo-db (on node 1): a VF of the guest's own node.
        { pf: "enp65s0", numVfs: 2 },
    ],
    vhostNetworks: [{ name: "tuned", bridge: "kvmt-tuned", queues: 2 }],
    guests: [
        {
            name: "demo-db",
            vcpus: 2,
            cpuPins: [2, 3],
            numaNode: 1,
            memoryMode: "strict",
            memoryMiB: 64,
            hugepages: "2M",
            // Its vhost NIC, and VF 0 of node 1's PF handed over through vfio-pci (libvirt sets the
            // VF's MAC and VLAN on the PF when the guest starts).
            interfaces: [
                { network: "tuned", queues: 2 },
                { hostdevVf: { pf: "enp65s0", vf: 0 }, mac: "52:54:00:00:01:10", vlan: 200 },
            ],
            running: true,
            // The demo guest boots no OS, so nothing answers the ACPI shutdown request: do not
            // wait the default two minutes before forcing it off on delete.
            shutdownTimeoutSeconds: 10,
        },
    ],
};

/**
 * How the lab stack reboots a host whose kernel command line changed: one host at a time, and
 * refused while a guest runs (demo-db boots no OS, so it would not answer a shutdown request). On
 * a fresh lab nothing runs yet: every other resource of a host waits for its reboot (KvmHost).
 */
export const labReboots: RebootsConfig = { policy: "whenRequired", maxDown: 1, guests: "refuse", timeoutSeconds: 900, guestShutdownTimeoutSeconds: 120 };
