/**
 * Device assignment on a lab host: a NumaPinnedGuest handed an SR-IOV VF (`hostdevVf`, an
 * `<interface type='hostdev' managed='yes'>`) starts, with the VF bound to vfio-pci, QEMU holding
 * the VFIO group, and the VF's MAC and VLAN set on the PF. The lab hosts have a virtual IOMMU
 * (lab/host.sh); the VFs come from a SriovNic on the PF of NUMA node 1. Each step is read back
 * over the system ssh client: sysfs, /proc, `ip link` and virsh.
 */
import * as assert from "assert";
import type { PulumiFn } from "@pulumi/pulumi/automation";
import { NumaPinnedGuest, NumaPinnedGuestArgs, SriovNic } from "../../resources";
import { inlineStack, InlineStack } from "../helpers/inlineStack";
import { labConnection } from "../helpers/labConnection";
import { sshOk, suiteHost } from "./labHosts";

const V = "virsh -c qemu:///system";
const GUEST = "kvmtune-lab-vfio";
const MAC = "52:54:00:6b:00:01";

describe("device assignment: a guest handed a VF through vfio-pci", function () {
    this.timeout(30 * 60_000);
    const h = suiteHost(1);
    const connection = labConnection(h);
    let s: InlineStack;
    let pf: string;
    let numVfsBefore: number;
    const ssh = (cmd: string) => sshOk(h, cmd, { timeoutMs: 600_000 });
    const domains = async () => (await ssh(`${V} list --all --name`)).split("\n").map((l) => l.trim()).filter(Boolean);

    type GuestArgs = Omit<NumaPinnedGuestArgs, "connection">;
    const guest = (over: Partial<GuestArgs> = {}): GuestArgs => ({
        name: GUEST,
        vcpus: 1,
        memoryMiB: 64,
        numaNode: 1,
        memoryMode: "strict",
        cpuPins: [3],
        emulatorPin: [3],
        interfaces: [{ hostdevVf: { pf, vf: 1 }, mac: MAC, vlan: 200 }],
        running: true,
        // The guest boots no OS, so nothing answers the ACPI shutdown request.
        shutdownTimeoutSeconds: 10,
        ...over,
    });
    const program =
        (...guests: GuestArgs[]): PulumiFn =>
        async () => {
            const nic = new SriovNic("vfio-pf", { connection, pf, numVfs: 2, persist: false });
            const out: Record<string, unknown> = { vfDevices: nic.vfDevices };
            for (const g of guests) {
                const name = g.name as string;
                out[name] = new NumaPinnedGuest(name, { connection, ...g }, { dependsOn: [nic] }).vfAddresses;
            }
            return out;
        };

    before(async () => {
        // The PF of NUMA node 1 (lab/host.sh puts one igb PF behind each node's expander bridge).
        pf = (await ssh('for d in /sys/class/net/*; do [ "$(cat $d/device/numa_node 2>/dev/null)" = 1 ] && [ -e $d/device/sriov_totalvfs ] && echo ${d##*/}; done; true')).trim();
        assert.ok(pf, `${h.name} has no SR-IOV PF on node 1`);
        numVfsBefore = Number((await ssh(`cat /sys/class/net/${pf}/device/sriov_numvfs`)).trim());
        s = await inlineStack("lab-vfio");
    });
    after(async () => {
        await s?.destroy().catch(() => undefined);
        await s?.remove();
    });

    it("starts the guest: its VF bound to vfio-pci, QEMU holding the VFIO group, MAC and VLAN on the PF", async () => {
        assert.deepStrictEqual(await s.up(program(guest())), { create: 3 }); // the stack, the nic and the guest
        const vf = (await ssh(`basename "$(readlink -f /sys/class/net/${pf}/device/virtfn1)"`)).trim();
        assert.strictEqual((await ssh(`basename "$(readlink -f /sys/bus/pci/devices/${vf}/driver)"`)).trim(), "vfio-pci");
        const group = (await ssh(`basename "$(readlink -f /sys/bus/pci/devices/${vf}/iommu_group)"`)).trim();
        const pid = (await ssh(`cat /run/libvirt/qemu/${GUEST}.pid`)).trim();
        assert.match(await ssh(`ls -l /proc/${pid}/fd`), new RegExp(`/dev/vfio/${group}\\b`), `QEMU holds no fd of /dev/vfio/${group}`);
        assert.strictEqual((await ssh(`${V} domstate ${GUEST}`)).trim(), "running");
        assert.match(await ssh(`ip link show ${pf}`), new RegExp(`vf 1\\s+link/ether ${MAC}.*vlan 200`));
        assert.deepStrictEqual((await s.stack.outputs())[GUEST].value, [vf]);
        assert.deepStrictEqual(await s.preview(program(guest())), {}, "a second run would change something");
    });

    it("refuses, before anything changes, a second guest on the same VF and a guest on node 0 given node 1's VF", async () => {
        const second = guest({ name: `${GUEST}-2`, cpuPins: [2], emulatorPin: [2] });
        await assert.rejects(s.up(program(guest(), second)), new RegExp(`interfaces\\.0\\.hostdevVf: VF \\S+ on \\S+ is already handed to guest ${GUEST}`));
        const remote = guest({ name: `${GUEST}-0`, numaNode: 0, cpuPins: [1], emulatorPin: [1], interfaces: [{ hostdevVf: { pf, vf: 0 } }] });
        await assert.rejects(s.up(program(guest(), remote)), /interfaces\.0\.hostdevVf: VF \S+ sits on node 1 \(its PF \S+\), the guest on node\(s\) 0; .*allowOtherNode: true/);
        assert.deepStrictEqual((await domains()).filter((d) => d.startsWith(GUEST)), [GUEST], "a refused guest was defined");
        assert.strictEqual((await ssh(`${V} domstate ${GUEST}`)).trim(), "running");
    });

    it("destroy stops the guest and gives the PF back its VF count", async () => {
        await s.destroy();
        assert.ok(!(await domains()).includes(GUEST), "the guest is still defined");
        assert.strictEqual(Number((await ssh(`cat /sys/class/net/${pf}/device/sriov_numvfs`)).trim()), numVfsBefore);
    });
});
