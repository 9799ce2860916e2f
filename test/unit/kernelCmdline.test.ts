import * as assert from "assert";
import * as fs from "fs";
import * as path from "path";
import type { HostFactsData } from "../../resources/host/facts";
import { closeAll } from "../../resources/host/sshPool";
import { checkAgainstHost, conflicts, kernelCmdlineSchema, ownedArgs, provider } from "../../resources/providers/kernelCmdline";
import { planFromPreview, renderPlan } from "../../resources/plan";
import { BLS_OPTIONS, FakeBootHost, KERNEL, startFakeBootHost } from "../helpers/fakeBootHost";
import { goodConnection, throwawayKey } from "../helpers/fixtures";
import { labPlatform } from "../helpers/recordedPlatforms";

const host: HostFactsData = {
    hostname: "lab1",
    machineId: "m",
    kernel: "6.1.0-13-amd64",
    cmdline: "",
    cpusOnline: [0, 1, 2, 3],
    isolatedCpus: [],
    hugepageSizes: ["2M", "1G"],
    defaultHugepageSize: "2M",
    numaNodes: [
        { id: 0, cpus: [0, 1], memoryMiB: 1496, hugepages: {} },
        { id: 1, cpus: [2, 3], memoryMiB: 1512, hugepages: {} },
    ],
    blockDevices: [],
    nics: [],
    vhostNet: { device: true, moduleLoaded: true },
    libvirt: { version: "9.0.0", active: true },
    platform: labPlatform(),
};

const parse = (i: Record<string, unknown>) => kernelCmdlineSchema.parse({ connection: goodConnection(), ...i });
const check = (i: Record<string, unknown>) => provider.check({}, { connection: goodConnection(), ...i });
const failuresOf = async (i: Record<string, unknown>) => Object.fromEntries(((await check(i)).failures ?? []).map((f) => [f.property, f.reason]));

describe("KernelCmdline inputs", () => {
    it("turns each typed input into its kernel arguments, in a fixed order, irqaffinity the host's other CPUs", () => {
        assert.deepStrictEqual(ownedArgs(parse({ iommu: "pt", isolatedCpus: "3,2", hugepages1G: { "1": 2, "0": 1 }, extra: ["transparent_hugepage=never"] }), [0, 1, 2, 3]), [
            "intel_iommu=on",
            "iommu=pt",
            "isolcpus=2-3",
            "nohz_full=2-3",
            "rcu_nocbs=2-3",
            "irqaffinity=0-1",
            "hugepagesz=1G",
            "hugepages=0:1,1:2",
            "transparent_hugepage=never",
        ]);
        assert.deepStrictEqual(ownedArgs(parse({ iommu: "on" }), [0, 1]), ["intel_iommu=on"]);
        assert.deepStrictEqual(ownedArgs(parse({ iommu: "off", hugepages1G: 4 }), [0, 1]), ["intel_iommu=off", "amd_iommu=off", "hugepagesz=1G", "hugepages=4"]);
    });

    it("refuses bad syntax naming field, value and what is allowed", async () => {
        const f = await failuresOf({ isolatedCpus: "3-2", extra: ["quiet splash", "a=$(reboot)", "isolcpus=1", "root=/dev/sdb", "mitigations=off", "mitigations=auto"], hugepages1G: 0 });
        assert.match(f.isolatedCpus, /range 3-2 runs backwards/);
        assert.match(f["extra.0"], /"quiet splash".*must be one kernel argument, name or name=value/s);
        assert.match(f["extra.1"], /must be one kernel argument/);
        assert.match(f["extra.2"], /got "isolcpus=1"; isolcpus= is set through isolatedCpus/);
        assert.match(f["extra.3"], /got "root=\/dev\/sdb"; kvmtune does not own root/);
        assert.strictEqual(f["extra.4"], undefined, "mitigations=off is a fine argument");
        assert.match(f["extra.5"], /got "mitigations=auto"; mitigations is already extra\.4/);
        assert.match(f.hugepages1G, /got 0; must be at least 1 page \(leave hugepages1G out for none\)/);
        assert.match((await failuresOf({ hugepages1G: "two" })).hugepages1G, /must be a number of pages \(at least 1\) or pages per NUMA node/);
        assert.match((await failuresOf({ isolatedCpus: "two" })).isolatedCpus, /"two".*must be a CPU list such as 2-3/s);
        assert.match((await failuresOf({ iommu: "yes" })).iommu, /"yes".*"on".*"pt".*"off"/s);
    });

    it("refuses a KernelCmdline that owns no argument", async () => {
        assert.match((await failuresOf({})).iommu, /set at least one of iommu, isolatedCpus, hugepages1G and extra/);
    });

    it("calls every owned argument a host reboot in the plan; a new address is no change on the host", async () => {
        const olds = { connection: goodConnection(), iommu: "pt", extra: [] };
        const r = await provider.check(olds, { ...olds, isolatedCpus: "2-3", iommu: "on" });
        assert.deepStrictEqual((r.inputs as Record<string, unknown>).changePlan, { iommu: "host reboot (boot configuration)", isolatedCpus: "host reboot (boot configuration)" });
        assert.deepStrictEqual(await provider.diff("id", olds, { ...olds, isolatedCpus: "2-3" }), { changes: true, replaces: [], deleteBeforeReplace: true });
        assert.strictEqual((await provider.diff("id", olds, { ...olds, connection: goodConnection({ port: 2202 }) })).replaces?.length, 0);
    });

    it("shows up in the per-host plan as a host reboot, with the fields that cause it", async () => {
        const olds = { connection: goodConnection(), iommu: "pt", extra: [] };
        const { inputs } = await provider.check(olds, { ...olds, isolatedCpus: "2-3" });
        const urn = "urn:pulumi:s::p::kvmtune:index:KvmHost$pulumi-nodejs:dynamic/kvmtune:KernelCmdline::db1-cmdline";
        const text = renderPlan(
            planFromPreview({
                steps: [{ op: "update", urn, newState: { type: "pulumi-nodejs:dynamic/kvmtune:KernelCmdline", parent: "urn:pulumi:s::p::kvmtune:index:KvmHost::db1", inputs } }],
            }),
        );
        assert.match(text, /^  host reboot  KernelCmdline db1-cmdline: isolatedCpus$/m);
        assert.match(text, /^Host reboots: .*db1-cmdline \(isolatedCpus\)\.$/m);
    });
});

describe("KernelCmdline checks against the host", () => {
    const problems = (i: Record<string, unknown>, facts: HostFactsData = host) => checkAgainstHost(parse(i), facts).join("; ");

    it("accepts CPUs the host has, leaving the boot CPU and one more", () => {
        assert.strictEqual(problems({ isolatedCpus: "2-3", hugepages1G: { "1": 1 } }), "");
    });

    it("refuses CPUs the host lacks, every CPU, and the boot CPU", () => {
        assert.strictEqual(problems({ isolatedCpus: "2-9" }), 'isolatedCpus: got "2-9"; lab1 has CPUs 0-3, not 4-9');
        assert.match(problems({ isolatedCpus: "0-3" }), /^isolatedCpus: got "0-3"; that is every CPU of lab1 \(0-3\): at least one must stay for the host's own work/);
        assert.match(problems({ isolatedCpus: "0,2" }), /^isolatedCpus: got "0,2"; CPU 0 is the boot CPU of lab1, which the kernel keeps for housekeeping: isolate CPUs from 1-3$/);
    });

    it("refuses 1 GiB pages that do not fit a node, a node the host lacks, a host without 1G pages, and the node format on old kernels", () => {
        assert.strictEqual(problems({ hugepages1G: { "1": 2 } }), "hugepages1G.1: got 2 pages of 1G; node 1 has room for at most 1 (its 1512 MiB)");
        assert.match(problems({ hugepages1G: { "2": 1 } }), /^hugepages1G\.2: lab1 has no NUMA node 2; it has 0, 1$/);
        assert.strictEqual(problems({ hugepages1G: 3 }), "hugepages1G: got 3 pages of 1G; lab1 has room for at most 2 (its 3008 MiB)");
        assert.match(problems({ hugepages1G: 1 }, { ...host, hugepageSizes: ["2M"] }), /^hugepages1G: lab1 offers huge pages of 2M, not 1G \(1G pages need a CPU with pdpe1gb\)$/);
        assert.match(problems({ hugepages1G: { "1": 1 } }, { ...host, kernel: "5.15.0-91-generic" }), /runs Linux 5\.15\.0-91-generic, which reads that format from 5\.16 on: give a total instead/);
        // Pages reserved at this boot are out of MemTotal: they still count as the node's room.
        const booted = { ...host, numaNodes: [host.numaNodes[0], { ...host.numaNodes[1], memoryMiB: 488, hugepages: { "1G": { total: 1, free: 1, surplus: 0 } } }] };
        assert.strictEqual(problems({ hugepages1G: { "1": 1 } }, booted), "");
    });

    it("refuses an argument it would own that someone else sets with another value, not the same word", () => {
        assert.deepStrictEqual(conflicts(["root=UUID=1", "ro", "iommu=pt"], ["intel_iommu=on", "iommu=pt"], "/boot/grub/grub.cfg"), []);
        const c = conflicts(["ro", "isolcpus=1"], ["isolcpus=2-3", "nohz_full=2-3"], "/boot/grub/grub.cfg");
        assert.strictEqual(c.length, 1);
        assert.match(c[0], /^isolcpus: the boot command line already has "isolcpus=1" \(in \/boot\/grub\/grub\.cfg\), which kvmtune did not put there and does not touch/);
    });
});

describe("KernelCmdline on a host (loopback SSH, update-grub, a boot made of files)", function () {
    this.timeout(120_000);
    const key = throwawayKey();
    let h: FakeBootHost;
    const owner = "KernelCmdline k (kvmtune/test)";
    const fragment = () => path.join(h.etc, "default", "grub.d", "kvmtune-cmdline.cfg");
    const claim = () => path.join(h.etc, "kvmtune", "claims", "kernel-cmdline");
    const grubCfg = () => fs.readFileSync(h.grubCfg, "utf8");
    const defaultLine = () => /^\tlinux\t(.*)$/m.exec(grubCfg())![1];
    type Outs = Record<string, unknown> & { rebootRequired: boolean; notInEffect: string[]; running: Record<string, unknown>; bootCmdline: string; drift: string[]; retired: string[] };

    async function checked(inputs: Record<string, unknown>, olds: Record<string, unknown> = {}) {
        const r = await provider.check(olds, { connection: h.connection(), owner, ...inputs });
        assert.strictEqual(r.failures, undefined, JSON.stringify(r.failures));
        return r.inputs as Record<string, unknown>;
    }
    async function create(inputs: Record<string, unknown>) {
        const r = await provider.create(await checked(inputs));
        return { id: r.id, outs: r.outs as Outs };
    }
    const read = async (id: string, outs: Record<string, unknown>) => (await provider.read(id, outs)).props as Outs;

    before(async () => {
        h = await startFakeBootHost(key);
    });
    beforeEach(async () => h.reset());
    after(async () => {
        closeAll();
        await h?.dispose();
    });

    it("create puts the arguments in the boot configuration, says a reboot is required, and after the boot reads them in effect", async () => {
        const original = grubCfg();
        const { id, outs } = await create({ iommu: "pt", isolatedCpus: "2-3", hugepages1G: { "1": 1 } });
        const args = "intel_iommu=on iommu=pt isolcpus=2-3 nohz_full=2-3 rcu_nocbs=2-3 irqaffinity=0-1 hugepagesz=1G hugepages=1:1";
        assert.strictEqual(defaultLine(), `${KERNEL} root=UUID=4f1c ro  ${args} quiet`);
        assert.match(fs.readFileSync(fragment(), "utf8"), /^# Managed by kvmtune for KernelCmdline k \(kvmtune\/test\)\./);
        assert.match(fs.readFileSync(claim(), "utf8"), /^# Managed by kvmtune for KernelCmdline k/);
        assert.strictEqual(outs.bootloader, "update-grub");
        assert.strictEqual(outs.bootCmdline, `root=UUID=4f1c ro  ${args} quiet`);
        assert.deepStrictEqual(outs.original, { flavor: "update-grub", cmdline: parseLine(original) });
        assert.strictEqual(outs.rebootRequired, true);
        assert.strictEqual(outs.notInEffect.length, 8);
        assert.match(outs.notInEffect[2], /^isolcpus=2-3: in the boot configuration, not in the running kernel yet \(reboot the host\)$/);
        assert.deepStrictEqual(outs.running, { cmdline: `BOOT_IMAGE=${KERNEL} root=UUID=4f1c ro  quiet`, isolatedCpus: "", iommuGroups: 13, hugepages1G: { "0": 0, "1": 0 } });

        h.boot();
        const after = await read(id, outs);
        assert.strictEqual(after.rebootRequired, false);
        assert.deepStrictEqual(after.notInEffect, []);
        assert.deepStrictEqual(after.running, { cmdline: `BOOT_IMAGE=${KERNEL} root=UUID=4f1c ro  ${args} quiet`, isolatedCpus: "2-3", iommuGroups: 13, hugepages1G: { "0": 0, "1": 1 } });
        assert.deepStrictEqual(after.drift, []);
    });

    it("update adds, changes and removes arguments; what the running kernel still has stays listed until the reboot", async () => {
        const { id, outs } = await create({ iommu: "pt", isolatedCpus: "2-3" });
        h.boot();
        const booted = await read(id, outs);
        const r = await provider.update(id, booted, await checked({ isolatedCpus: "3", extra: ["transparent_hugepage=never"] }, booted));
        const updated = r.outs as Outs;
        assert.strictEqual(defaultLine(), `${KERNEL} root=UUID=4f1c ro  isolcpus=3 nohz_full=3 rcu_nocbs=3 irqaffinity=0-2 transparent_hugepage=never quiet`);
        assert.deepStrictEqual(updated.retired, ["intel_iommu=on", "iommu=pt", "isolcpus=2-3", "nohz_full=2-3", "rcu_nocbs=2-3", "irqaffinity=0-1"]);
        assert.strictEqual(updated.rebootRequired, true);
        assert.ok(updated.notInEffect.includes("iommu=pt: taken off the boot configuration, still in the running kernel (reboot the host)"), updated.notInEffect.join("\n"));

        h.boot();
        const after = await read(id, updated);
        assert.strictEqual(after.rebootRequired, false);
        assert.deepStrictEqual(after.retired, []);
        assert.strictEqual((after.running as { isolatedCpus: string }).isolatedCpus, "3");

        // Only a removal: nothing new waits for the boot, yet the running kernel still has the old argument.
        const removed = (await provider.update(id, after, await checked({ isolatedCpus: "3" }, after))).outs as Outs;
        assert.strictEqual(defaultLine(), `${KERNEL} root=UUID=4f1c ro  isolcpus=3 nohz_full=3 rcu_nocbs=3 irqaffinity=0-2 quiet`);
        assert.deepStrictEqual(removed.retired, ["transparent_hugepage=never"]);
        assert.strictEqual(removed.rebootRequired, true, "the running kernel still has transparent_hugepage=never");
    });

    it("delete gives back grub.cfg byte for byte and leaves the administrator's own arguments, the same word included", async () => {
        await h.reset("console=ttyS0 iommu=pt");
        const grubBefore = grubCfg();
        const defaultsBefore = fs.readFileSync(path.join(h.etc, "default", "grub"), "utf8");
        const { id, outs } = await create({ iommu: "pt", extra: ["mitigations=off"] });
        assert.strictEqual(defaultLine(), `${KERNEL} root=UUID=4f1c ro console=ttyS0 iommu=pt intel_iommu=on iommu=pt mitigations=off quiet`);
        await provider.delete(id, outs);
        assert.strictEqual(grubCfg(), grubBefore);
        assert.strictEqual(fs.readFileSync(path.join(h.etc, "default", "grub"), "utf8"), defaultsBefore);
        assert.ok(!fs.existsSync(fragment()), "delete left the fragment");
        assert.ok(!fs.existsSync(claim()), "delete left the claim");
    });

    it("refresh reports a fragment edited or removed by hand as drift; diff makes it an update, which puts it back", async () => {
        const { id, outs } = await create({ isolatedCpus: "2-3" });
        const text = fs.readFileSync(fragment(), "utf8");
        fs.writeFileSync(fragment(), text.replace("isolcpus=2-3", "isolcpus=1-3"));
        assert.deepStrictEqual((await read(id, outs)).drift, [`/etc/default/grub.d/kvmtune-cmdline.cfg was changed`]);

        fs.rmSync(fragment());
        await h.updateGrub();
        const drifted = await read(id, outs);
        assert.deepStrictEqual(drifted.drift, [
            "/etc/default/grub.d/kvmtune-cmdline.cfg is missing",
            ...["isolcpus=2-3", "nohz_full=2-3", "rcu_nocbs=2-3", "irqaffinity=0-1"].map((a) => `the default boot entry (/boot/grub/grub.cfg) lacks ${a}`),
        ]);
        assert.strictEqual((await provider.diff(id, drifted, await checked({ isolatedCpus: "2-3" }))).changes, true);
        const fixed = (await provider.update(id, drifted, await checked({ isolatedCpus: "2-3" }, drifted))).outs as Outs;
        assert.strictEqual(fs.readFileSync(fragment(), "utf8"), text);
        assert.deepStrictEqual((await read(id, fixed)).drift, []);
    });

    it("refuses, before anything on the host changes, an argument someone else sets and CPUs or pages the host cannot give", async () => {
        await h.reset("isolcpus=1");
        const before = grubCfg();
        await assert.rejects(create({ isolatedCpus: "2-3" }), /^Error: KernelCmdline on bootlab: isolcpus: the boot command line already has "isolcpus=1" \(in \/boot\/grub\/grub\.cfg\)/);
        // Every problem at once, host checks first.
        await assert.rejects(create({ iommu: "pt", isolatedCpus: "1-7" }), /: isolatedCpus: got "1-7"; bootlab has CPUs 0-3, not 4-7; isolcpus: the boot command line already has "isolcpus=1"/);
        assert.strictEqual(grubCfg(), before, "a refused create changed the boot configuration");
        await h.reset();
        const plain = grubCfg();
        await assert.rejects(create({ isolatedCpus: "0-3" }), /isolatedCpus: got "0-3"; that is every CPU of bootlab/);
        await assert.rejects(create({ hugepages1G: { "1": 4 } }), /hugepages1G\.1: got 4 pages of 1G; node 1 has room for at most 3 \(its 3072 MiB\)/);
        assert.strictEqual(grubCfg(), plain, "a refused create changed the boot configuration");
        assert.ok(!fs.existsSync(fragment()) && !fs.existsSync(claim()), "a refused create left a fragment or a claim");
    });

    it("a create whose update-grub fails, or whose arguments a later grub.d file drops, fails naming why and leaves the boot configuration as found", async () => {
        const grubD = path.join(h.etc, "default", "grub.d");
        const before = grubCfg();
        // A file of the administrator's that sh cannot source: update-grub fails, its stderr in the error.
        fs.writeFileSync(path.join(grubD, "50-broken.cfg"), 'GRUB_CMDLINE_LINUX="\n');
        await assert.rejects(create({ iommu: "pt" }), (err: Error) => {
            assert.match(err.message, /^command failed on root@127\.0\.0\.1:\d+ \(exit \d+\): sh -s <<script/);
            assert.match(err.message, /\nstderr: .*(unterminated|Unterminated|EOF)/s);
            return true;
        });
        assert.ok(!fs.existsSync(fragment()), "the failed create left its fragment");
        assert.strictEqual(grubCfg(), before);
        // Undoing needs update-grub too, which still fails: the claim stays with the original it
        // recorded, for the retry (host/knob.ts), and the retry below releases it.
        assert.match(fs.readFileSync(claim(), "utf8"), /^original=/m);
        fs.rmSync(path.join(grubD, "50-broken.cfg"));

        // One that sets GRUB_CMDLINE_LINUX without "$GRUB_CMDLINE_LINUX", sorted after kvmtune's: update-grub works, the arguments are not there.
        fs.writeFileSync(path.join(grubD, "zz-console.cfg"), 'GRUB_CMDLINE_LINUX="console=ttyS0"\n');
        await assert.rejects(
            create({ iommu: "pt" }),
            /^Error: KernelCmdline on bootlab: after the write, the default boot entry \(\/boot\/grub\/grub\.cfg\) lacks intel_iommu=on iommu=pt; it reads: root=UUID=4f1c ro console=ttyS0 quiet\. A file in \/etc\/default\/grub\.d sorted after kvmtune-cmdline\.cfg may set GRUB_CMDLINE_LINUX without "\$GRUB_CMDLINE_LINUX"/,
        );
        assert.ok(!fs.existsSync(fragment()) && !fs.existsSync(claim()), "the failed create left its fragment or claim");
        fs.rmSync(path.join(grubD, "zz-console.cfg"));
        await h.updateGrub();
        assert.strictEqual(grubCfg(), before);
    });

    it("a kernel that booted with the pages and reserved fewer is no reboot away: notInEffect says so", async () => {
        const { id, outs } = await create({ hugepages1G: { "0": 1, "1": 2 } });
        h.boot({ "1": 1 });
        const r = await read(id, outs);
        assert.strictEqual(r.rebootRequired, false);
        assert.deepStrictEqual(r.notInEffect, [
            "hugepages1G: the kernel booted with hugepages=0:1,1:2 and reserved fewer 1G pages (node 1: asked 2, got 1): the node had too little memory at boot; another reboot will not help: ask for fewer pages",
        ]);
    });
});

describe("KernelCmdline on a grubby host (NOT lab-proven: a stand-in grubby on a BLS entry)", function () {
    this.timeout(120_000);
    const key = throwawayKey();
    let h: FakeBootHost;
    const owner = "KernelCmdline k (kvmtune/test)";
    const options = () => /^options (.*)$/m.exec(fs.readFileSync(h.blsEntry, "utf8"))![1];

    before(async () => {
        h = await startFakeBootHost(key, { bootloader: "grubby" });
    });
    after(async () => {
        closeAll();
        await h?.dispose();
    });

    it("adds with grubby, reads args= back, updates, and delete leaves the entry byte for byte as found, the entry's own iommu=pt included", async () => {
        await h.reset(`${BLS_OPTIONS} iommu=pt`);
        const entryBefore = fs.readFileSync(h.blsEntry, "utf8");
        const checked = await provider.check({}, { connection: h.connection(), owner, iommu: "pt", isolatedCpus: "2-3" });
        const created = await provider.create(checked.inputs!);
        const outs = created.outs as Record<string, unknown>;
        assert.strictEqual(outs.bootloader, "grubby");
        assert.strictEqual(options(), `${BLS_OPTIONS} iommu=pt intel_iommu=on isolcpus=2-3 nohz_full=2-3 rcu_nocbs=2-3 irqaffinity=0-1`);
        assert.strictEqual(outs.bootCmdline, options());
        assert.strictEqual(outs.rebootRequired, true);

        h.boot();
        const read = (await provider.read(created.id, outs)).props as Record<string, unknown>;
        assert.strictEqual(read.rebootRequired, false);
        assert.deepStrictEqual(read.drift, []);

        const next = await provider.check(read, { connection: h.connection(), owner, iommu: "pt", isolatedCpus: "3" });
        const updated = (await provider.update(created.id, read, next.inputs!)).outs as Record<string, unknown>;
        assert.strictEqual(options(), `${BLS_OPTIONS} iommu=pt intel_iommu=on isolcpus=3 nohz_full=3 rcu_nocbs=3 irqaffinity=0-2`);
        assert.deepStrictEqual(updated.retired, ["isolcpus=2-3", "nohz_full=2-3", "rcu_nocbs=2-3", "irqaffinity=0-1"]);

        await provider.delete(created.id, updated);
        assert.strictEqual(fs.readFileSync(h.blsEntry, "utf8"), entryBefore);
    });

    it("reports an argument removed from the entry by hand as drift", async () => {
        await h.reset();
        const checked = await provider.check({}, { connection: h.connection(), owner, extra: ["transparent_hugepage=never"] });
        const created = await provider.create(checked.inputs!);
        fs.writeFileSync(h.blsEntry, fs.readFileSync(h.blsEntry, "utf8").replace(" transparent_hugepage=never", ""));
        const read = (await provider.read(created.id, created.outs!)).props as Record<string, unknown>;
        assert.deepStrictEqual(read.drift, ["the default boot entry (grubby --info=DEFAULT) lacks transparent_hugepage=never"]);
        await provider.delete(created.id, read);
        assert.strictEqual(options(), BLS_OPTIONS);
    });
});

/** The arguments of a grub.cfg's default `linux` line, after the image. */
function parseLine(cfg: string): string {
    return /^\tlinux\t\S+ (.*)$/m.exec(cfg)![1];
}
