/**
 * SriovNic's whole life on the first lab host through the real engine, on the igb PF of NUMA
 * node 1. Each step is checked by reading the host with the system ssh client: sysfs
 * (`sriov_numvfs`, the `virtfn*` links and their netdevs), `ip link show` for the VF settings,
 * systemctl for the boot unit and virsh for the VF pool network.
 *
 * The running guest that holds a VF here uses it through macvtap (`<interface type='direct'>` on
 * the VF's netdev); a guest handed a VF through vfio-pci has its own suite (deviceAssignment.test.ts).
 */
import * as assert from "assert";
import type { PulumiFn } from "@pulumi/pulumi/automation";
import { SriovNic, SriovNicArgs } from "../../resources";
import { inlineStack, InlineStack } from "../helpers/inlineStack";
import { labConnection, rebootLabHost } from "../helpers/labConnection";
import { sshOk, sshRun, suiteHost } from "./labHosts";

const V = "virsh -c qemu:///system";
const NET = "kvmtune-lab-vfpool";
const GUEST = "kvmtune-lab-vfguest";
const MAC0 = "52:54:00:5e:00:01";

/** VF 0's settings as `ip link show PF` prints them (text, not the JSON the library reads). */
interface Vf0 {
    mac: string;
    vlan: number;
    qos: number;
    spoofchk: boolean;
    trust: boolean;
    maxTxRate: number;
}

interface HostView {
    numVfs: number;
    /** `virtfnN` -> PCI address and netdev, in VF order. */
    vfs: Array<{ pciAddress: string; driver: string | null; netdev: string }>;
    vf0: Vf0 | null;
    pfUp: boolean;
}

describe("SriovNic on a lab host", function () {
    this.timeout(30 * 60_000);
    const h = suiteHost(0);
    const connection = labConnection(h);
    let s: InlineStack;
    let s2: InlineStack | undefined;
    let pf: string;
    let pfPci: string;
    let pfNuma: number;
    let mgmt: string;
    let initial: HostView;
    const ssh = (cmd: string) => sshOk(h, cmd, { timeoutMs: 600_000 });

    /** The PF as the host shows it, read independently of the library. */
    async function host(): Promise<HostView> {
        const out = await ssh(
            `d=/sys/class/net/${pf}/device; cat $d/sriov_numvfs; ` +
                `for v in $(ls -d $d/virtfn* 2>/dev/null | sort -V); do drv=$(readlink $v/driver); drv=\${drv##*/}; ` +
                `echo "virtfn $(basename $(readlink -f $v)) \${drv:-none} $(ls $v/net 2>/dev/null)"; done; ` +
                `cat /sys/class/net/${pf}/flags; ip link show ${pf}`,
        );
        const lines = out.split("\n");
        const vf0line = lines.find((l) => /^\s*vf 0\s/.test(l));
        const vf0: Vf0 | null = vf0line
            ? {
                  mac: /link\/ether (\S+)/.exec(vf0line)![1],
                  vlan: Number(/, vlan (\d+)/.exec(vf0line)?.[1] ?? 0),
                  qos: Number(/, qos (\d+)/.exec(vf0line)?.[1] ?? 0),
                  spoofchk: /spoof checking on/.test(vf0line),
                  trust: /trust on/.test(vf0line),
                  maxTxRate: Number(/max_tx_rate (\d+)Mbps/.exec(vf0line)?.[1] ?? 0),
              }
            : null;
        return {
            numVfs: Number(lines[0].trim()),
            vfs: lines
                .filter((l) => l.startsWith("virtfn "))
                .map((l) => l.split(" "))
                .map((f) => ({ pciAddress: f[1], driver: f[2] === "none" ? null : f[2], netdev: f[3] ?? "" })),
            vf0,
            pfUp: (Number.parseInt(lines.find((l) => /^0x[0-9a-f]+$/.test(l.trim()))!, 16) & 1) === 1,
        };
    }
    const tuned: Vf0 = { mac: MAC0, vlan: 100, qos: 2, spoofchk: false, trust: true, maxTxRate: 100 };
    const unitEnabled = async () => (await sshRun(h, `systemctl is-enabled kvmtune-sriov-${pf}.service`)).stdout.trim();
    async function network(): Promise<{ active: boolean; autostart: boolean; vfs: number } | null> {
        const r = await sshRun(h, `${V} net-info ${NET} && ${V} net-dumpxml ${NET}`);
        if (r.code !== 0) return null;
        return { active: /^Active:\s+yes/m.test(r.stdout), autostart: /^Autostart:\s+yes/m.test(r.stdout), vfs: (r.stdout.match(/<address type='pci'/g) ?? []).length };
    }

    type Args = Partial<Omit<SriovNicArgs, "connection">>;
    const program = (args: Args = {}, extra?: () => void): PulumiFn => async () => {
        extra?.();
        const n = new SriovNic("nic", {
            connection,
            pf,
            numVfs: 3,
            vfs: [{ vf: 0, mac: MAC0, vlan: 100, qos: 2, spoofchk: false, trust: true, maxTxRateMbps: 100 }],
            libvirtNetwork: NET,
            ...args,
        });
        return { pfName: n.pfName, pfPciAddress: n.pfPciAddress, numaNode: n.numaNode, vfDevices: n.vfDevices, original: n.original, networkName: n.networkName, bootUnit: n.bootUnit };
    };
    const outputs = async () => Object.fromEntries(Object.entries(await s.stack.outputs()).map(([k, v]) => [k, v.value]));
    /** The PF's ownership claim (resources/host/claims.ts), by PCI address. */
    const claimFile = () => `/etc/kvmtune/claims/sriov-${pfPci.replace(/:/g, "-")}`;
    const removeGuest = () => sshRun(h, `${V} destroy ${GUEST} >/dev/null 2>&1; ${V} undefine ${GUEST} >/dev/null 2>&1; true`);
    /**
     * What this suite itself may have left on the host when a run was cut short (the host went
     * away before destroy): its pool network, and its boot unit, script and claim, recognized
     * by this suite's owner in their header; then the PF back to no VFs and its link down. Nothing
     * of another owner is touched.
     */
    const removeLeftovers = () =>
        sshRun(
            h,
            [
                `${V} net-dumpxml ${NET} 2>/dev/null | grep -q 'SriovNic nic (kvmtune/lab-sriov)' && { ${V} net-destroy ${NET}; ${V} net-undefine ${NET}; } >/dev/null 2>&1`,
                `for f in /etc/systemd/system/kvmtune-sriov-${pf}.service /etc/kvmtune/sriov-${pf}.sh /etc/kvmtune/sriov-${pf}.owner ${claimFile()}; do`,
                `  grep -qs 'Managed by kvmtune for SriovNic nic (kvmtune/lab-sriov)' $f && { systemctl disable --no-reload $(basename $f) >/dev/null 2>&1; rm -f $f; echo left; }`,
                `done | grep -q left && { systemctl daemon-reload; echo 0 > /sys/class/net/${pf}/device/sriov_numvfs; ip link set ${pf} down; }`,
                `true`,
            ].join("\n"),
        );

    before(async () => {
        // The igb PF on NUMA node 1 and the management NIC (a device without SR-IOV), found by sysfs.
        const pfs = await ssh(`for f in /sys/class/net/*/device/sriov_totalvfs; do n=$(basename $(dirname $(dirname $f))); echo "$n $(cat /sys/class/net/$n/device/numa_node) $(basename $(readlink -f /sys/class/net/$n/device))"; done`);
        const node1 = pfs.trim().split("\n").map((l) => l.split(" ")).find((w) => w[1] === "1");
        assert.ok(node1, `no SR-IOV PF on NUMA node 1: ${pfs}`);
        [pf, pfNuma, pfPci] = [node1[0], Number(node1[1]), node1[2]];
        await removeLeftovers();
        mgmt = (await ssh(`for n in /sys/class/net/*; do [ -e $n/device ] && [ ! -e $n/device/sriov_totalvfs ] && basename $n; done | head -1`)).trim();
        assert.ok(mgmt, "no NIC without SR-IOV");
        initial = await host();
        assert.strictEqual(initial.numVfs, 0, "the suite expects the PF to start with no VFs");
        s = await inlineStack("lab-sriov");
    });
    after(async () => {
        await removeGuest();
        const destroyed = await s?.destroy().then(() => true, () => false);
        if (s && !destroyed) await removeLeftovers();
        await s?.remove();
        await s2?.remove();
    });

    // igb VFs take ~9 s each to probe on a loaded TCG lab host, so the counts stay small: 3, 1, 2.
    it("creates 3 VFs with VF 0's MAC, VLAN, trust, spoof check and rate, a pool network, a boot unit", async () => {
        assert.deepStrictEqual(await s.up(program()), { create: 2 }); // the stack and the nic
        const now = await host();
        assert.strictEqual(now.numVfs, 3);
        assert.strictEqual(now.vfs.length, 3, "three virtfn links");
        assert.deepStrictEqual(now.vf0, tuned);
        assert.strictEqual(now.pfUp, true, "the PF is up while it has VFs");
        const o = await outputs();
        assert.deepStrictEqual(
            o.vfDevices,
            now.vfs.map((v, vf) => ({ vf, pciAddress: v.pciAddress, netdev: v.netdev, driver: v.driver })),
        );
        assert.deepStrictEqual([o.pfName, o.pfPciAddress, o.numaNode], [pf, pfPci, pfNuma]);
        assert.deepStrictEqual([o.original.numVfs, o.original.pfUp], [0, initial.pfUp]);
        assert.strictEqual(await unitEnabled(), "enabled");
        assert.match(await ssh(`head -1 /etc/systemd/system/kvmtune-sriov-${pf}.service /etc/kvmtune/sriov-${pf}.sh`), /Managed by kvmtune for SriovNic nic \(kvmtune\/lab-sriov\)\.[\s\S]*Managed by kvmtune for SriovNic nic/);
        assert.deepStrictEqual(await network(), { active: true, autostart: true, vfs: 3 });
        assert.strictEqual(o.networkName, NET);
    });

    it("a second up changes nothing", async () => {
        assert.deepStrictEqual(await s.up(program()), {});
    });

    it("finds an out-of-band VF change on refresh and undoes it on up", async () => {
        await ssh(`ip link set ${pf} vf 0 mac 52:54:00:de:ad:01 trust off`);
        assert.strictEqual((await host()).vf0?.mac, "52:54:00:de:ad:01");
        assert.deepStrictEqual(await s.refresh(), { update: 1 });
        assert.deepStrictEqual(await s.up(program()), { update: 1 });
        assert.deepStrictEqual((await host()).vf0, tuned);
    });

    it("goes down through 0 to 1 VF (persist off), then up to 2, settings re-applied each time", async () => {
        assert.deepStrictEqual(await s.up(program({ numVfs: 1, persist: false })), { update: 1 });
        let now = await host();
        assert.strictEqual(now.numVfs, 1);
        assert.strictEqual(now.vfs.length, 1);
        // Going through 0 removed VF 0 and its settings; they are back.
        assert.deepStrictEqual(now.vf0, tuned);
        assert.deepStrictEqual(await network(), { active: true, autostart: true, vfs: 1 }, "the pool restarted with the new VFs");
        assert.notStrictEqual(await unitEnabled(), "enabled");
        assert.strictEqual((await sshRun(h, `test -e /etc/systemd/system/kvmtune-sriov-${pf}.service`)).code, 1, "no boot unit with persist off");
        assert.match(await ssh(`cat ${claimFile()}`), /Managed by kvmtune for SriovNic nic \(kvmtune\/lab-sriov\)/, "the owner is still recorded (the claim)");

        assert.deepStrictEqual(await s.up(program({ numVfs: 2 })), { update: 1 });
        now = await host();
        assert.strictEqual(now.numVfs, 2);
        assert.strictEqual(now.vfs.length, 2);
        assert.deepStrictEqual(now.vf0, tuned);
        assert.deepStrictEqual(await network(), { active: true, autostart: true, vfs: 2 });
        assert.strictEqual(await unitEnabled(), "enabled");
        assert.match(await ssh(`cat ${claimFile()}`), /Managed by kvmtune for SriovNic nic \(kvmtune\/lab-sriov\)/, "the claim stays with persist on");
        assert.deepStrictEqual((await outputs()).vfDevices.length, 2);
    });

    it("refuses bad input before the host changes", async () => {
        const was = await host();
        await assert.rejects(
            s.up(program({ numVfs: 2 }, () => new SriovNic("mgmt", { connection, pf: mgmt, numVfs: 1 }))),
            new RegExp(`pf: ${mgmt} on ${h.name} \\(driver \\S+\\) has no SR-IOV`),
        );
        await assert.rejects(s.up(program({ numVfs: 8 })), new RegExp(`numVfs: got 8; ${pf} on ${h.name} offers at most 7 VFs`));
        // Schema errors: all of them in one run, each naming its field.
        const bad = s.up(program({ numVfs: 2, vfs: [{ vf: 0, mac: "52:54:00:zz:00:01", vlan: 4096 }, { vf: 2 }] }));
        await assert.rejects(bad, (e: Error) =>
            /vfs\.0\.mac: got "52:54:00:zz:00:01"; must be a MAC address/.test(e.message) && /vfs\.0\.vlan: got 4096/.test(e.message) && /vfs\.1\.vf: got 2; numVfs is 2: VFs are 0 to 1/.test(e.message));
        assert.deepStrictEqual(await host(), was);
    });

    it("refuses a VF count change while a running guest holds a VF, naming the guest", async () => {
        const vf1 = (await host()).vfs[1].netdev;
        const xml = `<domain type='kvm'><name>${GUEST}</name><memory unit='MiB'>32</memory><vcpu>1</vcpu><os><type>hvm</type></os>` +
            `<devices><interface type='direct'><source dev='${vf1}' mode='passthrough'/><model type='virtio'/></interface><memballoon model='none'/></devices></domain>`;
        try {
            await ssh(`f=$(mktemp) && cat > $f <<'EOF'\n${xml}\nEOF\n${V} define $f >/dev/null && rm -f $f && ${V} start ${GUEST} >/dev/null`);
            assert.strictEqual((await ssh(`${V} domstate ${GUEST}`)).trim(), "running");
            await assert.rejects(s.up(program({ numVfs: 1 })), new RegExp(`numVfs 2 -> 1 on ${pf}: running guest ${GUEST} holds VF 1 \\([0-9a-f:.]+, ${vf1}\\) through macvtap`));
            assert.strictEqual((await host()).numVfs, 2, "the VFs stayed");
        } finally {
            await removeGuest();
        }
    });

    it("refuses a second stack claiming the same PF (by PCI address), naming the owner", async () => {
        s2 = await inlineStack("lab-sriov-b");
        const other: PulumiFn = async () => {
            new SriovNic("nic2", { connection, pf: pfPci, numVfs: 2 });
        };
        await assert.rejects(s2.up(other), new RegExp(`the SR-IOV VFs of \\S+ \\(${pfPci.replace(/\./g, "\\.")}\\) on \\S+ belongs to SriovNic nic \\(kvmtune/lab-sriov\\)`));
        assert.strictEqual((await host()).numVfs, 2);
    });

    it("keeps VFs, settings and the pool network across a host reboot", async () => {
        await rebootLabHost(h);
        const now = await host();
        assert.strictEqual(now.numVfs, 2);
        assert.deepStrictEqual(now.vf0, tuned, "settings restored at boot, the rate after the PF's carrier came up");
        assert.strictEqual(now.pfUp, true);
        assert.deepStrictEqual(await network(), { active: true, autostart: true, vfs: 2 }, "libvirt started the pool after the unit made the VFs");
        const unit = await ssh(`systemctl show -p ActiveState -p Result kvmtune-sriov-${pf}.service`);
        assert.match(unit, /^ActiveState=active$/m);
        assert.match(unit, /^Result=success$/m);
        assert.deepStrictEqual(await s.refresh(), {}, "refresh finds the host as the state has it");
    });

    it("destroy restores the original VF count and link, removes the unit, files and network", async () => {
        assert.deepStrictEqual(await s.destroy(), { delete: 2 });
        const now = await host();
        assert.deepStrictEqual([now.numVfs, now.vfs.length, now.pfUp], [initial.numVfs, 0, initial.pfUp]);
        assert.strictEqual(await network(), null);
        // This PF's files only: the e2e suite's lab tuning manages the other PF of this host.
        assert.strictEqual((await ssh(`ls /etc/systemd/system/kvmtune-sriov-${pf}.service /etc/kvmtune/sriov-${pf}.* ${claimFile()} 2>/dev/null | wc -l`)).trim(), "0");
        assert.notStrictEqual(await unitEnabled(), "enabled");
    });
});
