/**
 * What the lab tuning (fleet/labTuning.ts) touches on a lab host, read with the system ssh client:
 * the e2e suites compare it before and after the program runs.
 */
import * as assert from "assert";
import { LabHost, sshOk } from "../lab/labHosts";

export interface HostState {
    pages: number[];
    free: number[];
    vdb: string;
    readExpire: number;
    domains: string;
    networks: string;
    numVfs: number;
    /** VFs of node 1's PF (demo-db holds VF 0 through vfio-pci). */
    numVfsNode1: number;
}

export async function hostState(h: LabHost): Promise<HostState> {
    const out = await sshOk(
        h,
        [
            "for n in 0 1; do cat /sys/devices/system/node/node$n/hugepages/hugepages-2048kB/nr_hugepages; done",
            "for n in 0 1; do cat /sys/devices/system/node/node$n/hugepages/hugepages-2048kB/free_hugepages; done",
            "cat /sys/block/vdb/queue/scheduler",
            "cat /sys/block/vdb/queue/iosched/read_expire 2>/dev/null || echo -1",
            "virsh -c qemu:///system list --all --name | sort | tr '\\n' ' '; echo",
            "virsh -c qemu:///system net-list --all --name | sort | tr '\\n' ' '; echo",
            "cat /sys/class/net/enp33s0/device/sriov_numvfs",
            "cat /sys/class/net/enp65s0/device/sriov_numvfs",
        ].join("; "),
    );
    const l = out.split("\n");
    return {
        pages: [Number(l[0]), Number(l[1])],
        free: [Number(l[2]), Number(l[3])],
        vdb: /\[([^\]]+)\]/.exec(l[4])![1],
        readExpire: Number(l[5]),
        domains: l[6].trim(),
        networks: l[7].trim(),
        numVfs: Number(l[8]),
        numVfsNode1: Number(l[9]),
    };
}

/** The lab tuning is in effect on the host, as the host itself tells (pools, elevator, VFs, network, demo-db). */
export async function assertLabTuned(h: LabHost): Promise<void> {
    const now = await hostState(h);
    assert.deepStrictEqual(now.pages, [64, 64], `${h.name}: 2M pages per node`);
    // demo-db's 64 MiB came out of node 1's pool (32 pages), none out of node 0's.
    assert.deepStrictEqual(now.free, [64, 32], `${h.name}: free 2M pages per node (demo-db holds 32 of node 1)`);
    assert.deepStrictEqual([now.vdb, now.readExpire], ["mq-deadline", 100], `${h.name}: vdb's scheduler and read_expire`);
    assert.strictEqual(now.numVfs, 4, `${h.name}: VFs of enp33s0`);
    assert.match(await sshOk(h, "ip link show enp33s0"), /vf 0\b.*link\/ether 52:54:00:00:00:10.*vlan 100.*trust on/, `${h.name}: VF 0's settings`);
    assert.match(await sshOk(h, "virsh -c qemu:///system net-info tuned"), /Active:\s+yes[\s\S]*Autostart:\s+yes[\s\S]*Bridge:\s+kvmt-tuned/, `${h.name}: the vhost network`);
    assert.strictEqual((await sshOk(h, "virsh -c qemu:///system domstate demo-db")).trim(), "running", `${h.name}: demo-db`);
    await assertDemoDbHasVf(h);
    await assertLabCmdlineInEffect(h);
    // Node 1's CPUs are all isolated and demo-db's huge pages are preallocated from node 1: kvmtune
    // puts the emulator on the guest's own CPUs (NumaPinnedGuest's emulatorPinReason), not on node 0's.
    assert.match(await sshOk(h, "virsh -c qemu:///system emulatorpin demo-db"), /\*:\s*2-3\b/, `${h.name}: demo-db's emulator is not on its own CPUs 2-3`);
    assert.match(await sshOk(h, `head -n 1 ${ELEVATOR_RULE}`), /^# Managed by kvmtune for BlockElevator /, `${h.name}: vdb's udev rule`);
}

/**
 * demo-db holds VF 0 of node 1's PF through VFIO: the VF is bound to vfio-pci, demo-db's QEMU holds
 * its IOMMU group's /dev/vfio file, and the PF shows the VF with demo-db's MAC and VLAN.
 */
export async function assertDemoDbHasVf(h: LabHost): Promise<void> {
    assert.strictEqual(Number((await sshOk(h, "cat /sys/class/net/enp65s0/device/sriov_numvfs")).trim()), 2, `${h.name}: VFs of enp65s0`);
    const vf = "/sys/class/net/enp65s0/device/virtfn0";
    assert.strictEqual((await sshOk(h, `basename "$(readlink -f ${vf}/driver)"`)).trim(), "vfio-pci", `${h.name}: VF 0 of enp65s0 is not bound to vfio-pci`);
    const group = (await sshOk(h, `basename "$(readlink -f ${vf}/iommu_group)"`)).trim();
    const pid = (await sshOk(h, "cat /run/libvirt/qemu/demo-db.pid")).trim();
    assert.match(await sshOk(h, `ls -l /proc/${pid}/fd`), new RegExp(`/dev/vfio/${group}\\b`), `${h.name}: demo-db's QEMU holds no /dev/vfio/${group}`);
    assert.match(await sshOk(h, "virsh -c qemu:///system dumpxml demo-db"), /<interface type='hostdev' managed='yes'>/, `${h.name}: demo-db has no hostdev interface`);
    assert.match(await sshOk(h, "ip link show enp65s0"), /vf 0\b.*link\/ether 52:54:00:00:01:10.*vlan 200/, `${h.name}: VF 0's MAC and VLAN on enp65s0`);
}

/** The lab tuning's kernel arguments (fleet/labTuning.ts kernelCmdline), as KernelCmdline writes them. */
export const LAB_CMDLINE = ["intel_iommu=on", "iommu=pt", "isolcpus=2-3", "nohz_full=2-3", "rcu_nocbs=2-3", "irqaffinity=0-1"];

/**
 * The running kernel has the lab's arguments (the host was rebooted for them): in /proc/cmdline,
 * CPUs 2-3 isolated as the kernel reports it, and IOMMU groups present.
 */
export async function assertLabCmdlineInEffect(h: LabHost): Promise<void> {
    const running = (await sshOk(h, "cat /proc/cmdline")).trim().split(/\s+/);
    for (const a of LAB_CMDLINE) assert.ok(running.includes(a), `${h.name}: ${a} is not in /proc/cmdline: ${running.join(" ")}`);
    assert.strictEqual((await sshOk(h, "cat /sys/devices/system/cpu/isolated")).trim(), "2-3", `${h.name}: isolated CPUs`);
    assert.ok(Number((await sshOk(h, "ls /sys/kernel/iommu_groups | wc -l")).trim()) > 0, `${h.name}: no IOMMU group`);
}

/** The udev rule that keeps vdb's scheduler across reboots. */
export const ELEVATOR_RULE = "/etc/udev/rules.d/61-kvmtune-elevator-vdb.rules";
