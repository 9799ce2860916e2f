/**
 * NumaPinnedGuest's whole life on the SECOND lab host (other suites use the first) through the
 * real engine, each step checked by reading the host with the system ssh client: virsh's own
 * views, the QEMU threads' affinity from /proc, and the per-node huge page counters in sysfs.
 *
 * The guests boot no OS (no disk): they only have to start. QEMU runs nested (KVM inside a TCG
 * lab host), so every step gets a generous timeout.
 */
import * as assert from "assert";
import type { PulumiFn } from "@pulumi/pulumi/automation";
import { HugepagePool, NumaPinnedGuest, NumaPinnedGuestArgs } from "../../resources";
import { inlineStack, InlineStack } from "../helpers/inlineStack";
import { labConnection } from "../helpers/labConnection";
import { sshOk, sshRun, suiteHost } from "./labHosts";

const V = "virsh -c qemu:///system";
const G1 = "kvmtune-lab-g1";
const G2 = "kvmtune-lab-g2";
const HAND = "kvmtune-lab-hand";
/** g1's disk: a raw file, served by I/O thread 1 with cache=none and native AIO. */
const IMG = "/var/lib/libvirt/images/kvmtune-lab-g1.img";

/** A guest made by hand, the way an operator writes one: on node 0, 16 huge pages of 2M. */
const HAND_XML = `<domain type='kvm'>
  <name>${HAND}</name>
  <memory unit='MiB'>32</memory>
  <memoryBacking><hugepages><page size='2' unit='M'/></hugepages></memoryBacking>
  <vcpu>1</vcpu>
  <cputune><vcpupin vcpu='0' cpuset='0'/><emulatorpin cpuset='0-1'/></cputune>
  <numatune><memory nodeset='0'/></numatune>
  <os><type>hvm</type></os>
  <cpu mode='host-passthrough'/>
  <devices><memballoon model='none'/></devices>
</domain>
`;

describe("NumaPinnedGuest on a lab host", function () {
    this.timeout(60 * 60_000);
    const h = suiteHost(1);
    const connection = labConnection(h);
    let s: InlineStack;

    // ---- independent reads of the host --------------------------------------------------------
    const ssh = (cmd: string) => sshOk(h, cmd, { timeoutMs: 600_000 });
    /** `virsh vcpupin NAME` as {vcpu: cpulist}. */
    async function vcpupin(name: string): Promise<Record<string, string>> {
        const out = await ssh(`${V} vcpupin ${name}`);
        return Object.fromEntries([...out.matchAll(/^\s*(\d+)\s+(\S+)\s*$/gm)].map((m) => [m[1], m[2]]));
    }
    const emulatorpin = async (name: string) => /\*:\s*(\S+)/.exec(await ssh(`${V} emulatorpin ${name}`))?.[1];
    const numatune = async (name: string) => {
        const out = await ssh(`${V} numatune ${name}`);
        return { mode: /numa_mode\s*:\s*(\S+)/.exec(out)?.[1], nodeset: /numa_nodeset\s*:\s*(\S+)/.exec(out)?.[1] };
    };
    const qemuPid = async (name: string) => (await ssh(`cat /run/libvirt/qemu/${name}.pid`)).trim();
    /** Each QEMU thread's name and Cpus_allowed_list, from /proc. */
    async function threads(name: string): Promise<Array<{ comm: string; cpus: string }>> {
        const pid = await qemuPid(name);
        const out = await ssh(`for t in /proc/${pid}/task/*; do printf '%s|%s\\n' "$(cat $t/comm)" "$(awk '/^Cpus_allowed_list/ {print $2}' $t/status)"; done`);
        return out.trim().split("\n").map((l) => ({ comm: l.split("|")[0], cpus: l.split("|")[1] }));
    }
    /** Free and total 2M pages per node. */
    async function pages(): Promise<Record<string, { free: number; total: number }>> {
        const out = await ssh(`for n in 0 1; do d=/sys/devices/system/node/node$n/hugepages/hugepages-2048kB; echo $n $(cat $d/free_hugepages) $(cat $d/nr_hugepages); done`);
        return Object.fromEntries(out.trim().split("\n").map((l) => l.split(" ")).map(([n, f, t]) => [n, { free: Number(f), total: Number(t) }]));
    }
    const domains = async () => (await ssh(`${V} list --all --name`)).split("\n").map((l) => l.trim()).filter(Boolean).sort();
    const inactiveXml = (name: string) => ssh(`${V} dumpxml --inactive ${name}`);
    const state = async (name: string) => (await ssh(`${V} domstate ${name}`)).trim();

    // ---- the program ----------------------------------------------------------------------------
    type GuestArgs = Omit<NumaPinnedGuestArgs, "connection">;
    const g1Args: GuestArgs = {
        name: G1,
        vcpus: 2,
        memoryMiB: 64,
        numaNode: 1,
        memoryMode: "strict",
        cpuPins: [2, 3],
        emulatorPin: [2, 3],
        iothreads: 1,
        iothreadPins: [3],
        hugepages: "2M",
        disks: [{ path: IMG, target: "vda", cache: "none", io: "native", iothread: 1 }],
        shutdownTimeoutSeconds: 5,
    };
    const handArgs: GuestArgs = { name: HAND, vcpus: 1, memoryMiB: 32, numaNode: 0, cpuPins: [0], emulatorPin: [0, 1], hugepages: "2M", autostart: false, shutdownTimeoutSeconds: 5 };
    interface Others {
        g2?: GuestArgs;
        hand?: Partial<GuestArgs>;
    }
    /** The pool, g1 (its args over g1Args; null: no g1), and optionally g2 and the hand-made guest. */
    const program = (g1: Partial<GuestArgs> | null = {}, shape: Others = {}): PulumiFn => async () => {
        // Pages on both nodes, so "node 0's did not drop" means something.
        const pool = new HugepagePool("guest-pool", { connection, pageSize: "2M", nodes: { "0": 16, "1": 48 }, persist: false });
        const out: Record<string, unknown> = { pools: pool.pools };
        if (g1 !== null) {
            const g = new NumaPinnedGuest("g1", { connection, ...g1Args, ...g1 }, { dependsOn: pool });
            Object.assign(out, { uuid: g.uuid, pins: g.resolvedCpuPins, pendingRestart: g.pendingRestart, owned: g.owned });
        }
        if (shape.g2) new NumaPinnedGuest("g2", { connection, ...shape.g2 }, { dependsOn: pool });
        if (shape.hand) {
            const g = new NumaPinnedGuest("hand", { connection, ...handArgs, ...shape.hand }, { dependsOn: pool });
            Object.assign(out, { handOwned: g.owned, handAdopted: g.adopted, handUuid: g.uuid });
        }
        return out;
    };
    const outputs = async () => Object.fromEntries(Object.entries(await s.stack.outputs()).map(([k, v]) => [k, v.value]));

    /** Nothing on the host changed: same domains, same definition, same QEMU. */
    async function unchanged(before: { domains: string[]; xml: string; pid: string; pages: unknown }) {
        assert.deepStrictEqual(await domains(), before.domains);
        assert.strictEqual(await inactiveXml(G1), before.xml);
        assert.strictEqual(await qemuPid(G1), before.pid);
        assert.deepStrictEqual(await pages(), before.pages);
    }
    const snapshot = async () => ({ domains: await domains(), xml: await inactiveXml(G1), pid: await qemuPid(G1), pages: await pages() });

    let pagesBefore: Record<string, { free: number; total: number }>;
    let pid1: string;

    before(async () => {
        // Leftovers of an interrupted run would skew the page counts.
        for (const n of [G1, G2, HAND]) await sshRun(h, `${V} destroy ${n}; ${V} undefine ${n}`, { timeoutMs: 300_000 });
        await ssh(`truncate -s 16M ${IMG}`);
        s = await inlineStack("lab-numaguest");
        pagesBefore = await pages();
    });
    after(async () => {
        await s?.destroy().catch((e) => console.error(String(e).slice(0, 2000)));
        await s?.remove();
        for (const n of [G1, G2, HAND]) await sshRun(h, `${V} destroy ${n}; ${V} undefine ${n}`, { timeoutMs: 300_000 });
        await sshRun(h, `rm -f ${IMG}`);
    });

    it("starts a guest pinned to CPUs 2 and 3, its memory in node 1's huge pages only", async () => {
        // The pool, the guest, and (a new stack) the stack itself.
        assert.deepStrictEqual(await s.up(program()), { create: 3 });
        assert.strictEqual(await state(G1), "running");
        pid1 = await qemuPid(G1);
        assert.deepStrictEqual(await vcpupin(G1), { "0": "2", "1": "3" });
        assert.strictEqual(await emulatorpin(G1), "2-3");
        assert.deepStrictEqual(await numatune(G1), { mode: "strict", nodeset: "1" });
        const t = await threads(G1);
        assert.strictEqual(t.find((x) => x.comm === "CPU 0/KVM")?.cpus, "2", JSON.stringify(t));
        assert.strictEqual(t.find((x) => x.comm === "CPU 1/KVM")?.cpus, "3", JSON.stringify(t));
        assert.strictEqual(t.find((x) => x.comm === "IO iothread1")?.cpus, "3", JSON.stringify(t));
        // Every other QEMU thread stays on node 1's CPUs: the emulator's own on 2-3, and AIO workers
        // that I/O thread 1 spawned inherit its CPU 3 (seen in CI), so "within 2-3" is the claim.
        for (const x of t.filter((x) => !x.comm.startsWith("CPU ") && x.comm !== "IO iothread1")) {
            assert.ok(["2-3", "2", "3"].includes(x.cpus), `QEMU thread ${x.comm} may run on ${x.cpus}, outside node 1's CPUs 2-3`);
        }
        assert.strictEqual(t.filter((x) => !x.comm.startsWith("CPU ") && x.comm !== "IO iothread1" && x.cpus === "2-3").length > 0, true, "no emulator thread on 2-3");
        assert.match(await ssh(`${V} iothreadinfo ${G1}`), /^\s*1\s+3\s*$/m);
        // The disk as QEMU opened it: O_DIRECT (cache none) with native AIO, in I/O thread 1.
        const cmdline = await ssh(`tr '\\0' ' ' < /proc/${await qemuPid(G1)}/cmdline`);
        assert.match(cmdline, /"filename":"\/var\/lib\/libvirt\/images\/kvmtune-lab-g1\.img"/);
        assert.match(cmdline, /"aio":"native"/);
        assert.match(cmdline, /"cache":\{"direct":true,"no-flush":false\}/);
        assert.match(cmdline, /"iothread":"iothread1"/);
        // 64 MiB = 32 pages of 2M, from node 1's 48; node 0's 16 untouched.
        const p = await pages();
        console.log(`      pages before the stack ${JSON.stringify(pagesBefore)}, with the guest running ${JSON.stringify(p)}`);
        assert.deepStrictEqual(p, { "0": { free: 16, total: 16 }, "1": { free: 16, total: 48 } });
        assert.match(await inactiveXml(G1), /<kvmtune:owner xmlns:kvmtune="urn:kvmtune:owner:1">NumaPinnedGuest g1 \(kvmtune\/lab-numaguest\)<\/kvmtune:owner>/);
        const o = await outputs();
        assert.deepStrictEqual(o.pins, [[2], [3]]);
        assert.deepStrictEqual(o.pendingRestart, []);
        assert.strictEqual(o.owned, true);
    });

    it("a second up changes nothing", async () => {
        assert.deepStrictEqual(await s.preview(program()), {});
        assert.deepStrictEqual(await s.up(program()), {});
        assert.deepStrictEqual(await s.refresh(), {});
    });

    it("re-pins a running guest live: the vCPUs swap CPUs, QEMU keeps running", async () => {
        assert.deepStrictEqual(await s.up(program({ cpuPins: [3, 2] })), { update: 1 });
        assert.deepStrictEqual(await vcpupin(G1), { "0": "3", "1": "2" });
        const t = await threads(G1);
        assert.strictEqual(t.find((x) => x.comm === "CPU 0/KVM")?.cpus, "3");
        assert.strictEqual(t.find((x) => x.comm === "CPU 1/KVM")?.cpus, "2");
        assert.strictEqual(await qemuPid(G1), pid1, "the guest was not restarted");
        assert.match(await inactiveXml(G1), /<vcpupin vcpu='0' cpuset='3'\/>\s*<vcpupin vcpu='1' cpuset='2'\/>/, "the definition has the new pins too");
        assert.deepStrictEqual(await s.up(program({ cpuPins: [3, 2] })), {});
    });

    it("finds an out-of-band virsh vcpupin on refresh and undoes it on up", async () => {
        await ssh(`${V} vcpupin ${G1} 0 2 --live`);
        assert.deepStrictEqual(await vcpupin(G1), { "0": "2", "1": "2" });
        assert.deepStrictEqual(await s.refresh(), { update: 1 });
        assert.deepStrictEqual(await s.up(program({ cpuPins: [3, 2] })), { update: 1 });
        assert.deepStrictEqual(await vcpupin(G1), { "0": "3", "1": "2" });
        assert.strictEqual(await qemuPid(G1), pid1);
    });

    it("finds a definition edited behind our back (as virsh edit does) and puts it back", async () => {
        await ssh(`${V} dumpxml --inactive ${G1} | sed 's/65536/131072/g' > /tmp/g1-edit.xml && ${V} define /tmp/g1-edit.xml && rm /tmp/g1-edit.xml`);
        assert.match(await inactiveXml(G1), /<memory unit='KiB'>131072<\/memory>/);
        assert.deepStrictEqual(await s.refresh(), { update: 1 });
        assert.deepStrictEqual(await s.up(program({ cpuPins: [3, 2] })), { update: 1 });
        assert.match(await inactiveXml(G1), /<memory unit='KiB'>65536<\/memory>/);
        assert.deepStrictEqual((await outputs()).pendingRestart, []);
        assert.strictEqual(await qemuPid(G1), pid1);
    });

    it("reports a change that needs a restart, and restarts when the policy allows", async () => {
        // 48 MiB: the definition changes now; the running QEMU keeps its 64 MiB until a restart.
        assert.deepStrictEqual(await s.up(program({ cpuPins: [3, 2], memoryMiB: 48 })), { update: 1 });
        assert.deepStrictEqual((await outputs()).pendingRestart, ["memoryMiB"]);
        assert.strictEqual(await qemuPid(G1), pid1);
        assert.strictEqual((await pages())["1"].free, 16);
        assert.deepStrictEqual(await s.up(program({ cpuPins: [3, 2], memoryMiB: 48, restartPolicy: "restart" })), { update: 1 });
        const pid2 = await qemuPid(G1);
        assert.notStrictEqual(pid2, pid1, "the guest was restarted");
        assert.deepStrictEqual((await outputs()).pendingRestart, []);
        assert.deepStrictEqual(await pages(), { "0": { free: 16, total: 16 }, "1": { free: 24, total: 48 } }, "48 MiB = 24 pages");
        assert.deepStrictEqual(await vcpupin(G1), { "0": "3", "1": "2" });
        assert.deepStrictEqual(await s.up(program({ cpuPins: [3, 2], restartPolicy: "restart" })), { update: 1 });
        assert.deepStrictEqual(await pages(), { "0": { free: 16, total: 16 }, "1": { free: 16, total: 48 } });
        pid1 = await qemuPid(G1);
    });

    it("refuses bad inputs before the host changes", async () => {
        const g1 = { cpuPins: [3, 2], restartPolicy: "restart" as const };
        const before = await snapshot();
        await assert.rejects(s.up(program({ ...g1, cpuPins: [1, 3] })), /cpuPins\.0: CPU 1 is not on node\(s\) 1 \(their CPUs: 2-3\)/);
        await unchanged(before);
        await assert.rejects(
            s.up(program(g1, { g2: { name: G2, vcpus: 1, memoryMiB: 32, numaNode: 1, cpuPins: [2] } })),
            /CPU 2 already pinned to vCPUs of guest kvmtune-lab-g1/,
        );
        await unchanged(before);
        await assert.rejects(s.up(program({ ...g1, memoryMiB: 128 })), /the guest needs 32 free 2M pages on node\(s\) 1, lab2 has 16/);
        await unchanged(before);
        await assert.rejects(s.up(program({ ...g1, interfaces: [{ network: "no-such-net" }] })), /interfaces\.0\.network: lab2 has no libvirt network no-such-net/);
        await unchanged(before);
        assert.deepStrictEqual(await s.preview(program(g1)), {});
    });

    it("never takes over a guest made by hand; adopts it when told to, if it is what the program declares", async () => {
        const g1 = { cpuPins: [3, 2], restartPolicy: "restart" as const };
        await ssh(`cat > /tmp/hand.xml <<'EOF'\n${HAND_XML}EOF\n${V} define /tmp/hand.xml && rm /tmp/hand.xml && ${V} start ${HAND}`);
        const handXml = await inactiveXml(HAND);
        const handPid = await qemuPid(HAND);
        await assert.rejects(s.up(program(g1, { hand: {} })), /a domain named kvmtune-lab-hand already exists on lab2 .* no kvmtune ownership mark: it was left untouched/);
        assert.strictEqual(await inactiveXml(HAND), handXml);
        assert.strictEqual(await qemuPid(HAND), handPid);

        // Adoption (Pulumi's import option cannot reach a dynamic provider: the `adopt` input does it).
        const uuid = (await ssh(`${V} domuuid ${HAND}`)).trim();
        await assert.rejects(s.up(program(g1, { hand: { adopt: uuid, cpuPins: [1] } })), /adopt: domain kvmtune-lab-hand .* is not what the inputs declare; it was left untouched\. cpuPins: declared \[\[1\]\], the host has \[\[0\]\]/);
        assert.strictEqual(await inactiveXml(HAND), handXml);
        assert.deepStrictEqual(await s.up(program(g1, { hand: { adopt: uuid } })), { create: 1 });
        let o = await outputs();
        assert.deepStrictEqual([o.handOwned, o.handAdopted, o.handUuid], [false, true, uuid]);
        assert.strictEqual(await inactiveXml(HAND), handXml, "adoption reads, it does not write");
        assert.strictEqual(await qemuPid(HAND), handPid);
        assert.deepStrictEqual(await s.up(program(g1, { hand: { adopt: uuid } })), {});
        assert.deepStrictEqual(await s.refresh(), {});

        // An adopted guest is ours to change: the first update marks it.
        assert.deepStrictEqual(await s.up(program(g1, { hand: { adopt: uuid, cpuPins: [1] } })), { update: 1 });
        assert.deepStrictEqual(await vcpupin(HAND), { "0": "1" });
        assert.strictEqual(await qemuPid(HAND), handPid);
        o = await outputs();
        assert.strictEqual(o.handOwned, true);
        assert.match(await inactiveXml(HAND), /NumaPinnedGuest hand \(kvmtune\/lab-numaguest\)/);
    });

    it("delete stops and undefines the guest and gives its pages back; destroy removes the rest", async () => {
        const g1 = null;
        const uuid = (await ssh(`${V} domuuid ${HAND}`)).trim();
        assert.deepStrictEqual(await s.up(program(g1, { hand: { adopt: uuid, cpuPins: [1] } })), { delete: 1 });
        assert.ok(!(await domains()).includes(G1));
        const p = await pages();
        console.log(`      pages after deleting g1 ${JSON.stringify(p)}`);
        assert.deepStrictEqual(p["1"], { free: 48, total: 48 });
        assert.deepStrictEqual(await s.destroy(), { delete: 3 }, "the adopted guest, the pool and the stack");
        assert.deepStrictEqual((await domains()).filter((d) => d.startsWith("kvmtune-lab-")), []);
        assert.deepStrictEqual(await pages(), pagesBefore);
    });
});
