/**
 * HugepagePool's whole life on a lab host through the real engine, each step checked by reading
 * the host with the system ssh client.
 */
import * as assert from "assert";
import type * as pulumi from "@pulumi/pulumi";
import type { PulumiFn } from "@pulumi/pulumi/automation";
import { HugepagePool, KernelCmdline } from "../../resources";
import { inlineStack, InlineStack } from "../helpers/inlineStack";
import { labConnection, rebootLabHost } from "../helpers/labConnection";
import { sshOk, suiteHost } from "./labHosts";

describe("HugepagePool on a lab host", function () {
    this.timeout(30 * 60_000);
    const h = suiteHost(0);
    const connection = labConnection(h);
    let s: InlineStack;
    let originals: Record<string, number>;
    /** As many 2M pages as node 1's whole memory: within it on paper, more than the kernel can free. */
    let tooMany: number;

    /** Pages of a size per node, as the host's sysfs says. */
    async function pools(size = "2048kB"): Promise<Record<string, number>> {
        const out = await sshOk(h, `for n in /sys/devices/system/node/node*; do echo $(basename $n) $(cat $n/hugepages/hugepages-${size}/nr_hugepages); done`);
        return Object.fromEntries(out.trim().split("\n").map((l) => [l.split(" ")[0].replace("node", ""), Number(l.split(" ")[1])]));
    }
    const unitState = () => sshOk(h, "systemctl is-enabled kvmtune-hugepages-2M.service 2>&1 || true").then((o) => o.trim());

    const pool2M = (nodes: Record<string, number>, extra: Record<string, unknown> = {}): PulumiFn => async () => {
        const p = new HugepagePool("pool-2m", { connection, pageSize: "2M", nodes, mount: "/dev/hugepages", ...extra });
        return { pools: p.pools, original: p.original, rebootRequired: p.rebootRequired };
    };

    before(async () => {
        s = await inlineStack("lab-hugepages");
        originals = await pools();
        const memKb = Number(/MemTotal:\s+(\d+) kB/.exec(await sshOk(h, "cat /sys/devices/system/node/node1/meminfo"))![1]);
        tooMany = Math.floor(memKb / 2048);
    });
    after(async () => {
        await s?.destroy().catch(() => undefined);
        await s?.remove();
    });

    it("creates 2M pools on both nodes, persisted at boot and mounted", async () => {
        assert.deepStrictEqual(await s.up(pool2M({ "0": 64, "1": 64 })), { create: 2 });
        assert.deepStrictEqual(await pools(), { ...originals, "0": 64, "1": 64 });
        assert.strictEqual(await unitState(), "enabled");
        assert.match(await sshOk(h, "head -1 /etc/systemd/system/kvmtune-hugepages-2M.service"), /Managed by kvmtune for HugepagePool pool-2m/);
        assert.match(await sshOk(h, "findmnt -n -o FSTYPE,OPTIONS --mountpoint /dev/hugepages"), /^hugetlbfs .*pagesize=2M/);
        const outputs = await s.stack.outputs();
        assert.deepStrictEqual(outputs.original.value.nodes, originals);
        assert.strictEqual((outputs.pools.value as Record<string, { total: number }>)["1"].total, 64);
    });

    it("a second up changes nothing", async () => {
        assert.deepStrictEqual(await s.preview(pool2M({ "0": 64, "1": 64 })), {});
        assert.deepStrictEqual(await s.up(pool2M({ "0": 64, "1": 64 })), {});
    });

    it("finds an out-of-band change on refresh and undoes it on up", async () => {
        await sshOk(h, "echo 10 > /sys/devices/system/node/node1/hugepages/hugepages-2048kB/nr_hugepages");
        assert.deepStrictEqual(await s.refresh(), { update: 1 });
        assert.deepStrictEqual(await s.up(pool2M({ "0": 64, "1": 64 })), { update: 1 });
        assert.deepStrictEqual(await pools(), { ...originals, "0": 64, "1": 64 });
    });

    it("updates the pools in place", async () => {
        assert.deepStrictEqual(await s.up(pool2M({ "0": 32, "1": 96 })), { update: 1 });
        assert.deepStrictEqual(await pools(), { ...originals, "0": 32, "1": 96 });
        assert.match(await sshOk(h, "cat /etc/systemd/system/kvmtune-hugepages-2M.service"), /echo 96 > \/sys\/devices\/system\/node\/node1\//);
    });

    it("keeps the pools across a host reboot", async () => {
        await rebootLabHost(h);
        assert.deepStrictEqual(await pools(), { ...originals, "0": 32, "1": 96 });
        assert.match(await sshOk(h, "findmnt -n -o FSTYPE --mountpoint /dev/hugepages"), /hugetlbfs/);
        assert.deepStrictEqual(await s.preview(pool2M({ "0": 32, "1": 96 })), {});
    });

    it("refuses a shortfall, naming node, asked and got, and leaves the pools as they were", async () => {
        await assert.rejects(s.up(pool2M({ "0": 32, "1": tooMany })), new RegExp(`node 1: asked ${tooMany}, got \\d+`));
        assert.deepStrictEqual(await pools(), { ...originals, "0": 32, "1": 96 });
        assert.deepStrictEqual(await s.preview(pool2M({ "0": 32, "1": 96 })), {});
    });

    it("accepts a shortfall with allowPartial and reports what the kernel gave", async () => {
        assert.deepStrictEqual(await s.up(pool2M({ "0": 32, "1": tooMany }, { allowPartial: true })), { update: 1 });
        const got = (await pools())["1"];
        assert.ok(got < tooMany && got >= 96, `node 1 has ${got}`);
        const outputs = await s.stack.outputs();
        assert.strictEqual((outputs.pools.value as Record<string, { total: number }>)["1"].total, got);
        assert.deepStrictEqual(await s.up(pool2M({ "0": 32, "1": 96 })), { update: 1 });
        assert.deepStrictEqual(await pools(), { ...originals, "0": 32, "1": 96 });
    });

    it("refuses bad input before the host changes", async () => {
        await assert.rejects(s.up(pool2M({ "0": 32, "7": 8 })), /no NUMA node 7; it has 0, 1/);
        await assert.rejects(s.up(pool2M({ "0": -1 })), /nodes\.0: got -1/);
        await assert.rejects(s.up(pool2M({ "0": 32, "1": 96 }, { mount: "hugepages" })), /mount: got "hugepages"; must be an absolute path/);
        assert.deepStrictEqual(await pools(), { ...originals, "0": 32, "1": 96 });
    });

    it("a 1G pool per node goes on the kernel command line through KernelCmdline; after the reboot the kernel has reserved it; removal gives grub.cfg back byte for byte", async () => {
        const sizes = await sshOk(h, "ls /sys/kernel/mm/hugepages");
        const gigPool = (allowPartial: boolean) => (opts?: pulumi.CustomResourceOptions) =>
            new HugepagePool("pool-1g", { connection, pageSize: "1G", nodes: { "0": 1, "1": 1 }, allowPartial }, opts);
        const program = (allowPartial: boolean): PulumiFn => async () => {
            new HugepagePool("pool-2m", { connection, pageSize: "2M", nodes: { "0": 32, "1": 96 }, mount: "/dev/hugepages" });
            const cmdline = new KernelCmdline("cmdline-1g", { connection, hugepages1G: { "0": 1, "1": 1 } });
            const g = gigPool(allowPartial)({ dependsOn: [cmdline] });
            return { pools1G: g.pools, rebootRequired: g.rebootRequired };
        };
        const told = async () => {
            const o = await s.stack.outputs();
            const p = o.pools1G.value as Record<string, { total: number }>;
            return { node0: p["0"].total, node1: p["1"].total, rebootRequired: o.rebootRequired.value as boolean };
        };
        const grubCfgSum = () => sshOk(h, "sha256sum /boot/grub/grub.cfg").then((o) => o.split(" ")[0]);
        // The lab's CPU (`-cpu max`, lab/host.sh) has pdpe1gb: without 1G pages the boot path below
        // would never run, and the test would pass on a refusal alone.
        assert.match(sizes, /hugepages-1048576kB/, "the lab host offers no 1G pages: the boot path cannot be tested (check lab/host.sh's -cpu)");
        const grubBefore = await grubCfgSum();
        const gigBefore = await pools("1048576kB");

        // The command line has one owner: a 1G pool that persists without KernelCmdline's arguments
        // is refused, saying how to get them there, and nothing changes.
        const alone: PulumiFn = async () => {
            new HugepagePool("pool-2m", { connection, pageSize: "2M", nodes: { "0": 32, "1": 96 }, mount: "/dev/hugepages" });
            gigPool(true)();
        };
        await assert.rejects(s.up(alone), /next boot's command line \(\/boot\/grub\/grub\.cfg\) lacks "hugepagesz=1G hugepages=0:1,1:1"\. kvmtune writes the command line through KernelCmdline only/);
        assert.deepStrictEqual(await pools("1048576kB"), gigBefore, "the refused pool changed the host");
        assert.strictEqual(await grubCfgSum(), grubBefore, "the refused pool changed grub.cfg");

        // Before the reboot, the kernel gives what it can free at run time; allowPartial accepts that.
        assert.deepStrictEqual(await s.up(program(true)), { create: 2 });
        const before = await pools("1048576kB");
        assert.deepStrictEqual(await told(), { node0: before["0"], node1: before["1"], rebootRequired: true });
        assert.match(await sshOk(h, "grep -c 'hugepagesz=1G hugepages=0:1,1:1' /boot/grub/grub.cfg"), /^[1-9]/);
        assert.match(await sshOk(h, "cat /etc/default/grub.d/kvmtune-cmdline.cfg"), /Managed by kvmtune for KernelCmdline cmdline-1g/);
        assert.strictEqual((await sshOk(h, "ls /etc/default/grub.d")).includes("kvmtune-hugepages.cfg"), false, "the pool wrote a GRUB fragment of its own");

        // After the reboot the pages were reserved at boot, on each node (lab/host.sh lays memory
        // out so each node has an aligned GiB), and the host, not kvmtune's memory, says so.
        await rebootLabHost(h);
        assert.match(await sshOk(h, "cat /proc/cmdline"), /hugepagesz=1G hugepages=0:1,1:1/);
        assert.deepStrictEqual(await pools("1048576kB"), { "0": 1, "1": 1 });
        // Refresh reads the new boot; without allowPartial now, since the pool is whole.
        await s.refresh();
        assert.deepStrictEqual(await s.up(program(false)), { update: 1 });
        assert.deepStrictEqual(await told(), { node0: 1, node1: 1, rebootRequired: false });
        assert.deepStrictEqual(await s.preview(program(false)), {}, "a booted pool still shows a change");

        // Delete takes kvmtune's argument off and grub.cfg is again what it was, byte for byte.
        assert.deepStrictEqual(await s.up(pool2M({ "0": 32, "1": 96 })), { delete: 2 });
        assert.strictEqual((await sshOk(h, "grep -c 'hugepagesz=1G' /boot/grub/grub.cfg || true")).trim(), "0");
        assert.strictEqual(await grubCfgSum(), grubBefore, "grub.cfg differs from before the pool");
        assert.deepStrictEqual(await pools("1048576kB"), { "0": 0, "1": 0 });
    });

    it("destroy restores the original pools and removes what it persisted", async () => {
        assert.deepStrictEqual(await s.destroy(), { delete: 2 });
        assert.deepStrictEqual(await pools(), originals);
        assert.match(await unitState(), /not-found|No such file|disabled/);
        // Files kvmtune wrote carry its header (the lab's own kvmtune-* units do not).
        assert.strictEqual((await sshOk(h, "grep -rl 'Managed by kvmtune' /etc/systemd/system /etc/default/grub.d 2>/dev/null | wc -l")).trim(), "0");
        // systemd's own /dev/hugepages mount was there before and stays.
        assert.match(await sshOk(h, "findmnt -n -o FSTYPE --mountpoint /dev/hugepages"), /hugetlbfs/);
    });
});
