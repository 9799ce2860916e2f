/**
 * Issue 11's security and ownership rows on the first lab host, through the real engine:
 *
 * - S9: every resource (HostFacts, HugepagePool, BlockElevator, NumaPinnedGuest, SriovNic,
 *   VhostNetwork) created, refreshed and destroyed as the lab's non-root user (`tuner`) through
 *   sudo, each change read back over plain ssh, and sudo's own journal showing the commands came
 *   from that user.
 * - O9/O10: a second stack declaring the same disk, the same pool, the same PF, the same domain
 *   name and the same libvirt network is refused on every one, naming the first stack's resource,
 *   and the host keeps the first stack's settings.
 * - Injection: shell breakouts in every string input that reaches the host are refused by check;
 *   resource names (owner labels, free text that does reach the host, in claims, file headers and
 *   libvirt metadata) hold breakouts through the whole life of stack A. A canary file on the host
 *   stays absent throughout; the first test shows the check sees it when it is there.
 *
 * Three stacks, no reboot; stack A carries all six resources at once.
 */
import * as assert from "assert";
import type { PulumiFn } from "@pulumi/pulumi/automation";
import { BlockElevator, HostFacts, HugepagePool, NumaPinnedGuest, SriovNic, VhostNetwork } from "../../resources";
import type { Connection } from "../../resources/host/connection";
import { shellBreakouts } from "../helpers/fixtures";
import { inlineStack, InlineStack, resourcesOf } from "../helpers/inlineStack";
import { labConnection } from "../helpers/labConnection";
import { provider as elevator } from "../../resources/providers/blockElevator";
import { provider as factsProvider } from "../../resources/providers/hostFacts";
import { provider as pool } from "../../resources/providers/hugepagePool";
import { provider as guestProvider } from "../../resources/providers/numaPinnedGuest";
import { provider as nicProvider } from "../../resources/providers/sriovNic";
import { provider as netProvider } from "../../resources/providers/vhostNetwork";
import { sshOk, sshRun, suiteHost } from "./labHosts";

type Check = (olds: Record<string, unknown>, news: Record<string, unknown>) => Promise<{ failures?: Array<{ property: string }> }>;

const V = "virsh -c qemu:///system";
const CANARY = "/tmp/kvmtune-canary";
const DISK = "vdb";
const GUEST = "kvmtune-sec-guest";
const NET = "kvmtune-sec-net";
const BRIDGE = "kvsecbr0";
const MAC0 = "52:54:00:5e:c0:01";
const POOL_PAGES = 16;

/** Shell breakouts, each of which would create the canary if a shell ran it (the unit tests use the same list). */
const ATTACKS = shellBreakouts(CANARY);

/**
 * Stack A's resource names: each becomes an owner label (`Kind NAME (kvmtune/sec-a)`) that goes
 * into claim files, udev rules, systemd units, boot scripts and libvirt metadata. A newline is
 * refused in a name (B7), so the one-line breakouts only.
 */
const NAMES = {
    facts: `facts ${ATTACKS[7]}`,
    pool: `pool ${ATTACKS[0]}`,
    disk: `disk ${ATTACKS[1]}`,
    guest: `guest ${ATTACKS[2]}`,
    nic: `nic ${ATTACKS[3]}`,
    net: `net ${ATTACKS[4]}`,
};

describe("Security and ownership on a lab host (S9, O9, O10, injection canary)", function () {
    this.timeout(60 * 60_000);
    const h = suiteHost(1);
    const asTuner = labConnection(h, { user: h.sudoUser, sudo: true });
    const asRoot = labConnection(h);
    let a: InlineStack;
    let b: InlineStack;
    let c: InlineStack;
    let pf: string;
    let pfPci: string;
    let sudoLinesBefore: number;
    let original: HostState;
    const ssh = (cmd: string) => sshOk(h, cmd, { timeoutMs: 600_000 });
    const canaryThere = async () => (await sshRun(h, `test -e ${CANARY}`)).code === 0;

    /** What the six resources drive, read over plain ssh as root. */
    interface HostState {
        scheduler: string;
        pool0: number;
        numVfs: number;
        vf0: string;
        guest: string;
        net: string;
        bridge: boolean;
        claims: string[];
        /** Files named kvmtune where kvmtune writes (the lab image has a few of its own), and every file under /etc/kvmtune. */
        files: string[];
    }
    async function hostState(): Promise<HostState> {
        const out = await ssh(
            [
                `echo "scheduler=$(cat /sys/block/${DISK}/queue/scheduler)"`,
                `echo "pool0=$(cat /sys/devices/system/node/node0/hugepages/hugepages-2048kB/nr_hugepages)"`,
                `echo "numVfs=$(cat /sys/class/net/${pf}/device/sriov_numvfs)"`,
                `echo "vf0=$(ip link show ${pf} | grep -E '^\\s*vf 0 ' | tr -s ' ')"`,
                `echo "guest=$(${V} dumpxml --inactive ${GUEST} 2>/dev/null | grep -E -o "<vcpupin [^>]*>|<memory mode=[^>]*>" | tr '\\n' ' ')"`,
                `echo "net=$(${V} net-info ${NET} 2>/dev/null | grep -E '^(Active|Autostart|Bridge):' | tr -s ' ' | tr '\\n' ' ')"`,
                `echo "bridge=$(test -d /sys/class/net/${BRIDGE}/bridge && echo yes)"`,
                `echo "claims=$(ls /etc/kvmtune/claims 2>/dev/null | tr '\\n' ' ')"`,
                `echo "files=$({ find /etc/udev/rules.d /etc/systemd/system /etc/modules-load.d /etc/libvirt/hooks -name '*kvmtune*'; find /etc/kvmtune -type f; } 2>/dev/null | sort | tr '\\n' ' ')"`,
            ].join("; "),
        );
        const v = Object.fromEntries(out.trim().split("\n").map((l) => [l.slice(0, l.indexOf("=")), l.slice(l.indexOf("=") + 1).trim()]));
        return {
            scheduler: v.scheduler,
            pool0: Number(v.pool0),
            numVfs: Number(v.numVfs),
            vf0: v.vf0,
            guest: v.guest,
            net: v.net,
            bridge: v.bridge === "yes",
            claims: v.claims.split(" ").filter(Boolean).sort(),
            files: v.files.split(" ").filter(Boolean),
        };
    }
    /** Lines sudo logged for the lab's non-root user running a shell. */
    const sudoLines = async () => Number((await ssh(`journalctl -q _COMM=sudo --no-pager | grep -c ' ${h.sudoUser} : .*COMMAND=.*sh -c' || true`)).trim());

    /** All six resources on one host, each knob the same across stacks; `names` makes the owner labels. */
    const sixResources = (connection: Connection, names: typeof NAMES, guestAfterPool = true): PulumiFn => async () => {
        const facts = new HostFacts(names.facts, { connection });
        const pool = new HugepagePool(names.pool, { connection, pageSize: "2M", nodes: { "0": POOL_PAGES }, persist: true });
        const disk = new BlockElevator(names.disk, { connection, device: DISK, scheduler: "mq-deadline", tunables: { fifo_batch: 8 }, persist: true });
        const guest = new NumaPinnedGuest(
            names.guest,
            { connection, name: GUEST, vcpus: 1, memoryMiB: 32, numaNode: 0, cpuPins: [0], emulatorPin: [0, 1], hugepages: "2M", running: false, autostart: false },
            guestAfterPool ? { dependsOn: pool } : {},
        );
        const nic = new SriovNic(names.nic, { connection, pf, numVfs: 2, vfs: [{ vf: 0, mac: MAC0, vlan: 100 }], persist: true });
        const net = new VhostNetwork(names.net, { connection, name: NET, bridge: BRIDGE, persist: true });
        return { hostname: facts.hostname, numaNodes: facts.numaNodes, kernelName: disk.kernelName, guestUuid: guest.uuid, pfPci: nic.pfPciAddress, netUuid: net.uuid, pools: pool.pools };
    };

    before(async () => {
        // The igb PF on NUMA node 1, found by sysfs (as test/lab/sriovNic.test.ts does).
        const pfs = await ssh(`for f in /sys/class/net/*/device/sriov_totalvfs; do n=$(basename $(dirname $(dirname $f))); echo "$n $(cat /sys/class/net/$n/device/numa_node) $(basename $(readlink -f /sys/class/net/$n/device))"; done`);
        const node1 = pfs.trim().split("\n").map((l) => l.split(" ")).find((w) => w[1] === "1");
        assert.ok(node1, `no SR-IOV PF on NUMA node 1: ${pfs}`);
        [pf, pfPci] = [node1[0], node1[2]];
        await ssh(`rm -f ${CANARY}`);
        original = await hostState();
        assert.strictEqual(original.numVfs, 0, "the suite expects the PF to start with no VFs");
        assert.deepStrictEqual(original.claims, [], "the suite expects a host without kvmtune claims");
        assert.strictEqual(original.guest, "", `the host already has a domain ${GUEST}`);
        a = await inlineStack("sec-a");
        b = await inlineStack("sec-b");
        c = await inlineStack("sec-c");
    });
    after(async () => {
        await a?.destroy().catch(() => undefined);
        for (const s of [a, b, c]) await s?.remove();
        await sshRun(h, `rm -f ${CANARY}`);
    });

    it("the canary check sees a file at the canary path, made by the sudo user or by root", async () => {
        assert.strictEqual(await canaryThere(), false);
        await sshOk(h, `touch ${CANARY}`, { user: h.sudoUser });
        assert.strictEqual(await canaryThere(), true, "a file the non-root user made is not seen");
        await ssh(`rm -f ${CANARY} && sudo -u ${h.sudoUser} true && touch ${CANARY}`);
        assert.strictEqual(await canaryThere(), true, "a file root made is not seen");
        await ssh(`rm -f ${CANARY}`);
        assert.strictEqual(await canaryThere(), false);
    });

    it("S9: all six resources are created as the non-root user through sudo; owner labels with shell breakouts stay text", async () => {
        sudoLinesBefore = await sudoLines();
        const changes = await a.up(sixResources(asTuner, NAMES));
        assert.deepStrictEqual(changes, { create: 7 }, "six resources and the stack itself");
        const now = await hostState();
        assert.match(now.scheduler, /\[mq-deadline\]/);
        assert.strictEqual(now.pool0, POOL_PAGES);
        assert.strictEqual(now.numVfs, 2);
        assert.match(now.vf0, new RegExp(`link/ether ${MAC0} .*, vlan 100,`));
        assert.match(now.guest, /<vcpupin vcpu='0' cpuset='0'\/>/);
        assert.match(now.guest, /<memory mode='strict' nodeset='0'\/>/);
        assert.match(now.net, /Active: yes Autostart: yes Bridge: kvsecbr0/);
        assert.ok(now.bridge, `${BRIDGE} is not a bridge on the host`);
        assert.ok(now.files.length > original.files.length, "no file was written (udev rule, boot units, modules-load file)");
        assert.deepStrictEqual(now.claims, ["block-elevator-vdb", "hugepages-2M", `libvirt-network-${NET}`, `sriov-${pfPci.replace(/:/g, "-")}`]);
        // The owner labels reached the host as text: each claim's first line names the resource, breakout and all.
        const heads = await ssh(`head -qn 1 /etc/kvmtune/claims/*`);
        for (const [kind, name] of [["BlockElevator", NAMES.disk], ["HugepagePool", NAMES.pool], ["SriovNic", NAMES.nic], ["VhostNetwork", NAMES.net]]) {
            assert.ok(heads.includes(`# Managed by kvmtune for ${kind} ${name} (kvmtune/sec-a).`), `no claim header for ${kind} ${name}:\n${heads}`);
        }
        assert.ok((await ssh(`${V} dumpxml --inactive ${GUEST}`)).includes(`NumaPinnedGuest ${NAMES.guest} (kvmtune/sec-a)`), "the guest's ownership mark does not hold the resource's name as text");
        // HostFacts read the host as it is.
        const outs = await a.stack.outputs();
        const nodes = (await ssh("ls -d /sys/devices/system/node/node[0-9]* | wc -l")).trim();
        assert.strictEqual(String((outs.numaNodes.value as unknown[]).length), nodes);
        assert.strictEqual(outs.hostname.value, (await ssh("cat /etc/hostname")).trim());
        // The commands came from the non-root user through sudo.
        assert.ok((await sudoLines()) > sudoLinesBefore, "sudo logged no command of the non-root user during up");
        assert.strictEqual(await canaryThere(), false, "a shell breakout in a resource name ran on the host");
    });

    it("S9: refresh as the non-root user finds the host as declared", async () => {
        assert.deepStrictEqual(await a.refresh(), {});
        assert.deepStrictEqual(await a.preview(sixResources(asTuner, NAMES)), {});
        assert.strictEqual(await canaryThere(), false);
    });

    it("O9/O10: a second stack declaring the same disk, pool, PF, domain and network is refused on each, naming the first; the host keeps the first's settings", async () => {
        const before = await hostState();
        // Plain names in stack b: the refusals must name stack a's resources, whose labels carry sec-a.
        // No dependency between pool and guest here: a refused pool would keep the engine from trying the guest.
        const plain = { facts: "facts", pool: "pool", disk: "disk", guest: "guest", nic: "nic", net: "net" };
        const log: string[] = [];
        const err = await b.stack.up({ program: sixResources(asRoot, plain, false), continueOnError: true, onOutput: (s) => log.push(s) }).then(
            () => assert.fail("the second stack's up succeeded"),
            (e: unknown) => e,
        );
        const text = `${String(err)}\n${log.join("")}`;
        const expected: Array<[string, RegExp]> = [
            ["disk", new RegExp(`the I/O scheduler of ${DISK} on \\S+ belongs to BlockElevator disk \\$\\(touch ${CANARY}\\) \\(kvmtune/sec-a\\)`)],
            ["pool", /the 2M huge page pool on \S+ belongs to HugepagePool pool ; touch \/tmp\/kvmtune-canary \(kvmtune\/sec-a\)/],
            ["nic", new RegExp(`the SR-IOV VFs of ${pf} \\(${pfPci.replace(/\./g, "\\.")}\\) on \\S+ belongs to SriovNic nic ' ; touch /tmp/kvmtune-canary ; ' \\(kvmtune/sec-a\\)`)],
            ["net", /the libvirt network kvmtune-sec-net on \S+ belongs to VhostNetwork net " ; touch \/tmp\/kvmtune-canary ; " \(kvmtune\/sec-a\)/],
            ["guest", /a domain named kvmtune-sec-guest already exists on .* carries the mark of "NumaPinnedGuest guest `touch \/tmp\/kvmtune-canary` \(kvmtune\/sec-a\)"/],
        ];
        for (const [what, re] of expected) assert.match(text, re, `the refusal of ${what} does not name stack a's owner:\n${text.slice(-3000)}`);
        // Stack b holds nothing but what reads (HostFacts); the host is as stack a left it.
        const kinds = (await resourcesOf(b)).map((r) => r.type);
        assert.deepStrictEqual(kinds, ["pulumi-nodejs:dynamic/kvmtune:HostFacts"], `stack b recorded ${kinds.join(", ")}`);
        assert.deepStrictEqual(await hostState(), before);
        assert.deepStrictEqual(await a.refresh(), {}, "stack a sees a change");
        assert.strictEqual(await canaryThere(), false);
    });

    it("injection: a breakout in any string input that reaches the host is refused by check, before any connection; nothing runs", async () => {
        // Through the engine: refused at check. The engine stops at the first check failure (also
        // with --continue-on-error), so every field and breakout is put to the providers' own check
        // below: the function the engine runs, with the same inputs.
        const before = await sudoLines();
        await assert.rejects(
            c.up(async () => {
                new BlockElevator("bad-device", { connection: asTuner, device: `${DISK}${ATTACKS[0]}`, scheduler: "none" });
            }),
            /BlockElevator resource 'bad-device': property device value .* has a problem: device: /,
        );
        assert.deepStrictEqual((await resourcesOf(c)).map((r) => r.urn), [], "a resource with a breakout in its inputs was created");
        assert.strictEqual(await sudoLines(), before, "the refused up ran a command on the host");

        const conn = { connection: asTuner };
        const guest = { ...conn, name: "g", vcpus: 1, memoryMiB: 32, running: false };
        const cases: Array<{ field: string; check: Check; inputs: (x: string) => Record<string, unknown> }> = [
            { field: "device", check: elevator.check, inputs: (x) => ({ ...conn, device: x, scheduler: "none" }) },
            { field: "scheduler", check: elevator.check, inputs: (x) => ({ ...conn, device: DISK, scheduler: x }) },
            { field: "tunables", check: elevator.check, inputs: (x) => ({ ...conn, device: DISK, scheduler: "mq-deadline", tunables: { [x]: 1 } }) },
            { field: "pageSize", check: pool.check, inputs: (x) => ({ ...conn, pageSize: x, nodes: { "0": 1 } }) },
            { field: "nodes", check: pool.check, inputs: (x) => ({ ...conn, pageSize: "2M", nodes: { [x]: 1 } }) },
            { field: "mount", check: pool.check, inputs: (x) => ({ ...conn, pageSize: "2M", nodes: { "0": 1 }, mount: `/mnt/x${x}` }) },
            { field: "name", check: guestProvider.check, inputs: (x) => ({ ...guest, name: x }) },
            { field: "disks.0.path", check: guestProvider.check, inputs: (x) => ({ ...guest, disks: [{ path: `/var/lib/libvirt/images/${x}`, target: "vda" }] }) },
            { field: "disks.0.target", check: guestProvider.check, inputs: (x) => ({ ...guest, disks: [{ path: "/var/lib/libvirt/images/g.img", target: x }] }) },
            { field: "interfaces.0", check: guestProvider.check, inputs: (x) => ({ ...guest, interfaces: [{ network: x }] }) },
            { field: "interfaces.0", check: guestProvider.check, inputs: (x) => ({ ...guest, interfaces: [{ network: NET, mac: x }] }) },
            { field: "interfaces.0", check: guestProvider.check, inputs: (x) => ({ ...guest, interfaces: [{ hostdevVf: { pf: x, vf: 0 } }] }) },
            { field: "nodeset", check: guestProvider.check, inputs: (x) => ({ ...guest, nodeset: x }) },
            { field: "emulatorPin", check: guestProvider.check, inputs: (x) => ({ ...guest, emulatorPin: x }) },
            { field: "adopt", check: guestProvider.check, inputs: (x) => ({ ...guest, adopt: x }) },
            { field: "pf", check: nicProvider.check, inputs: (x) => ({ ...conn, pf: x, numVfs: 1 }) },
            { field: "vfs.0.mac", check: nicProvider.check, inputs: (x) => ({ ...conn, pf, numVfs: 1, vfs: [{ vf: 0, mac: x }] }) },
            { field: "libvirtNetwork", check: nicProvider.check, inputs: (x) => ({ ...conn, pf, numVfs: 1, libvirtNetwork: x }) },
            { field: "name", check: netProvider.check, inputs: (x) => ({ ...conn, name: x, bridge: "kvx0" }) },
            { field: "bridge", check: netProvider.check, inputs: (x) => ({ ...conn, name: "x", bridge: x }) },
            { field: "uplink", check: netProvider.check, inputs: (x) => ({ ...conn, name: "x", bridge: "kvx0", uplink: x }) },
            { field: "connection.host", check: factsProvider.check, inputs: (x) => ({ connection: { ...asTuner, host: `127.0.0.1${x}` } }) },
        ];
        const accepted: string[] = [];
        for (const k of cases) {
            // Each breakout alone and after a valid value.
            for (const x of ATTACKS.flatMap((a) => [a, `vdb${a}`])) {
                const r = await k.check({}, k.inputs(x));
                const at = (r.failures ?? []).map((f) => String(f.property));
                if (!at.some((p) => p === k.field || p.startsWith(`${k.field}.`))) accepted.push(`${k.field} = ${JSON.stringify(x)} (failures at ${at.join(", ") || "none"})`);
            }
        }
        assert.ok(cases.length * ATTACKS.length * 2 >= 300);
        assert.deepStrictEqual(accepted, [], "check let a shell breakout through to the host");
        assert.strictEqual(await canaryThere(), false, "a shell breakout in an input ran on the host");
    });

    it("S9: destroy as the non-root user puts the host back as it was", async () => {
        assert.deepStrictEqual(await a.destroy(), { delete: 7 }, "six resources and the stack itself");
        const now = await hostState();
        assert.deepStrictEqual(now, original);
        assert.strictEqual(await canaryThere(), false);
    });
});
