import * as assert from "assert";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import type { HostFactsData } from "../../resources/host/facts";
import { runScript } from "../../resources/host/remote";
import { bootArgs, checkAgainstHost, hugepagePoolSchema, mountUnitName, provider } from "../../resources/providers/hugepagePool";
import { bootConfigProblem, bootedWith, legacyGrubFragmentPath, persistedFiles, persistScript, rebootRequired, shortfallOf } from "../../resources/providers/hugepagePoolBoot";
import { goodConnection } from "../helpers/fixtures";
import { LocalRemote } from "../helpers/localRemote";
import { labPlatform } from "../helpers/recordedPlatforms";

const host: HostFactsData = {
    hostname: "lab1",
    machineId: "m",
    kernel: "6.1.0",
    cmdline: "",
    cpusOnline: [0, 1, 2, 3],
    isolatedCpus: [],
    hugepageSizes: ["2M"],
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

const parse = (i: Record<string, unknown>) => hugepagePoolSchema.parse({ connection: goodConnection(), ...i });

describe("HugepagePool inputs", () => {
    it("wants exactly one of nodes and total", async () => {
        for (const bad of [{ pageSize: "2M" }, { pageSize: "2M", total: 8, nodes: { "0": 8 } }]) {
            const r = await provider.check({}, { connection: goodConnection(), ...bad });
            assert.deepStrictEqual(r.failures?.map((f) => f.property), ["nodes"]);
            assert.match(r.failures![0].reason, /exactly one of nodes/);
        }
    });

    it("names the field and the allowed values", async () => {
        const r = await provider.check({}, { connection: goodConnection(), pageSize: "4M", nodes: { x: -1 }, mount: "rel/path" });
        const byField = Object.fromEntries((r.failures ?? []).map((f) => [f.property, f.reason]));
        assert.match(byField.pageSize, /"4M".*"2M".*"1G"/s);
        assert.ok(Object.keys(byField).some((k) => k.startsWith("nodes")), JSON.stringify(byField));
        assert.match(byField.mount, /absolute path/);
    });

    it("refuses, before the host changes, a node, size or page size the host lacks", () => {
        assert.deepStrictEqual(checkAgainstHost(parse({ pageSize: "2M", nodes: { "0": 64, "1": 64 } }), host), []);
        assert.match(checkAgainstHost(parse({ pageSize: "2M", nodes: { "2": 8 } }), host).join(), /no NUMA node 2; it has 0, 1/);
        assert.match(checkAgainstHost(parse({ pageSize: "2M", nodes: { "1": 800 } }), host).join(), /^nodes\.1: got 800 pages of 2M; node 1 has room for at most 756 pages of 2M \(its 1512 MiB\)$/);
        assert.match(checkAgainstHost(parse({ pageSize: "1G", total: 1 }), host).join(), /offers 2M/);
        assert.match(checkAgainstHost(parse({ pageSize: "2M", total: 2000 }), host).join(), /^total: got 2000 pages of 2M; lab1 has room for at most 1504 pages of 2M \(its 3008 MiB\)$/);
    });

    it("writes per-node boot arguments for 1G pools", () => {
        assert.strictEqual(bootArgs(parse({ pageSize: "1G", nodes: { "1": 2, "0": 1 } })), "hugepagesz=1G hugepages=0:1,1:2");
        assert.strictEqual(bootArgs(parse({ pageSize: "1G", total: 4 })), "hugepagesz=1G hugepages=4");
    });

    it("names mount units as systemd does", () => {
        assert.strictEqual(mountUnitName("/dev/hugepages"), "dev-hugepages.mount");
        assert.strictEqual(mountUnitName("/mnt/huge-1G"), "mnt-huge\\x2d1G.mount");
    });

    it("replaces on a page size change, updates in place otherwise", async () => {
        const olds = { connection: goodConnection(), pageSize: "2M", nodes: { "0": 8 } };
        assert.deepStrictEqual(await provider.diff("id", olds, { ...olds, nodes: { "0": 16 } }), { changes: true, replaces: [], deleteBeforeReplace: true });
        assert.deepStrictEqual((await provider.diff("id", olds, { ...olds, pageSize: "1G" })).replaces, ["pageSize"]);
        assert.strictEqual((await provider.diff("id", olds, { ...olds })).changes, false);
        assert.strictEqual((await provider.diff("id", olds, { ...olds, connection: goodConnection({ port: 2202 }) })).replaces?.length, 0);
    });
});

describe("HugepagePool: pages the kernel did not give", () => {
    const oneGig = (over: Record<string, unknown> = {}) => parse({ pageSize: "1G", nodes: { "1": 2 }, ...over });
    const got = (n: number) => ({ "1": { total: n, free: n, surplus: 0 } });
    const booted = "BOOT_IMAGE=/vmlinuz-6.1.0 root=UUID=x ro quiet hugepagesz=1G hugepages=1:2";

    it("knows whether the running kernel booted with the pool's arguments, wherever they sit", () => {
        assert.strictEqual(bootedWith(oneGig(), booted), true);
        assert.strictEqual(bootedWith(oneGig(), "ro hugepagesz=1G default_hugepagesz=1G hugepages=1:2 quiet"), true);
        assert.strictEqual(bootedWith(oneGig(), "ro hugepagesz=1G hugepages=1:1"), false, "another count");
        assert.strictEqual(bootedWith(oneGig(), "ro hugepagesz=2M hugepages=1:2"), false, "another size's count");
        assert.strictEqual(bootedWith(oneGig(), "ro quiet"), false);
    });

    it("waits for a reboot only when the boot configuration holds the pool's arguments and the running kernel lacks them", () => {
        assert.strictEqual(rebootRequired(oneGig(), booted, booted), false, "booted with them");
        assert.strictEqual(rebootRequired(oneGig(), "ro quiet", booted), true, "the next boot has them, this one did not");
        assert.strictEqual(rebootRequired(oneGig(), "ro quiet", "ro quiet"), false, "nothing on the boot command line to wait for");
        assert.strictEqual(rebootRequired(oneGig(), "ro quiet", null), false, "an unreadable boot configuration promises nothing");
        assert.strictEqual(rebootRequired(parse({ pageSize: "2M", nodes: { "1": 2 } }), "ro", "ro hugepagesz=2M hugepages=1:2"), false, "2M pools are set at run time");
    });


    it("a host that booted with the pool's arguments and still lacks pages is an error naming node, asked and got", () => {
        const r = shortfallOf(oneGig(), got(0), booted);
        assert.deepStrictEqual(Object.keys(r), ["error"]);
        assert.match(r.error!, /^the kernel allocated fewer 1G huge pages than asked \(node 1: asked 2, got 0\), and the host booted with "hugepagesz=1G hugepages=1:2" on its kernel command line: the boot did not deliver them either, so another reboot will not help/);
        // With allowPartial it is a warning, with the same facts.
        const partial = shortfallOf(oneGig({ allowPartial: true }), got(1), booted);
        assert.deepStrictEqual(Object.keys(partial), ["warning"]);
        assert.match(partial.warning!, /node 1: asked 2, got 1\), and the host booted with .* allowPartial accepts what the kernel gave\.$/);
    });

    it("before a reboot, the refusal shows the boot-time route for 1G pages; allowPartial warns and says to reboot", () => {
        const refused = shortfallOf(oneGig(), got(0), "ro quiet");
        assert.match(refused.error!, /node 1: asked 2, got 0.*set allowPartial: true to accept what the kernel gives\. 1G pages are found reliably only at boot: with allowPartial: true the pool takes what the kernel gives now, and with "hugepagesz=1G hugepages=1:2" on the kernel command line \(KernelCmdline's hugepages1G\) a reboot gets them all\.$/);
        const accepted = shortfallOf(oneGig({ allowPartial: true }), got(0), "ro quiet");
        assert.strictEqual(
            accepted.warning,
            `the kernel allocated fewer 1G huge pages than asked (node 1: asked 2, got 0); allowPartial accepts what the kernel gave. "hugepagesz=1G hugepages=1:2" is on the kernel command line: reboot the host to get the rest.`,
        );
        assert.deepStrictEqual(shortfallOf(oneGig(), got(2), "ro quiet"), {}, "a full pool is no shortfall");
        assert.doesNotMatch(shortfallOf(parse({ pageSize: "2M", total: 8 }), {}, "").error!, /boot/, "2M pools are had at run time");
    });
});

describe("HugepagePool persistence", function () {
    this.timeout(20_000);

    it("a 1G pool persists only when KernelCmdline's arguments for it are on the next boot's command line, and says how to get them there", () => {
        const pool = parse({ pageSize: "1G", nodes: { "1": 2, "0": 1 } });
        const grub = "/boot/grub/grub.cfg";
        assert.strictEqual(bootConfigProblem(pool, { cmdline: "root=UUID=x ro hugepagesz=1G hugepages=0:1,1:2 quiet", source: grub }), null);
        assert.strictEqual(
            bootConfigProblem(pool, { cmdline: "root=UUID=x ro hugepagesz=1G hugepages=0:1", source: grub }),
            `persist: a 1G pool is kept across boots by the kernel command line, and the next boot's command line (/boot/grub/grub.cfg) lacks "hugepagesz=1G hugepages=0:1,1:2". ` +
                `kvmtune writes the command line through KernelCmdline only: declare a KernelCmdline with hugepages1G: {"0":1,"1":2} and make this pool depend on it ` +
                `(KvmHost does both for its 1G pool), or set persist: false to keep the pool until the next boot only.`,
        );
        assert.match(bootConfigProblem(parse({ pageSize: "1G", total: 3 }), { cmdline: null, source: grub })!, /could not be read from \/boot\/grub\/grub\.cfg.*hugepages1G: 3 /);
        assert.strictEqual(bootConfigProblem(parse({ pageSize: "1G", total: 3, persist: false }), { cmdline: "ro", source: grub }), null, "persist off asks nothing of the boot");
        assert.strictEqual(bootConfigProblem(parse({ pageSize: "2M", total: 3 }), { cmdline: "ro", source: grub }), null, "2M pools persist through their own unit");
    });

    it("a 1G pool writes nothing on the command line's behalf: the only boot file it names is the old fragment, to be taken away", () => {
        const files = persistedFiles("HugepagePool p (kvmtune/test)", parse({ pageSize: "1G", nodes: { "0": 1 } }));
        assert.deepStrictEqual(
            files.filter((f) => f.reload === "bootloader"),
            [{ path: legacyGrubFragmentPath, want: null, reload: "bootloader" }],
        );
        assert.ok(files.every((f) => f.want === null), JSON.stringify(files));
    });

    it("turning persist off disables and removes the pool's mount unit (the administrator's own stays)", async () => {
        const etc = fs.mkdtempSync(path.join(os.tmpdir(), "kvmtune-hugepages-persist-"));
        const bin = fs.mkdtempSync(path.join(os.tmpdir(), "kvmtune-hugepages-bin-"));
        // Only the private /etc is writable inside the namespace: the stand-in records its calls there.
        const calls = path.join(etc, "systemctl-calls");
        fs.writeFileSync(path.join(bin, "systemctl"), `#!/bin/sh\necho "$*" >> /etc/systemctl-calls\n`, { mode: 0o755 });
        fs.mkdirSync(path.join(etc, "systemd", "system"), { recursive: true });
        const unit = path.join(etc, "systemd", "system", "dev-hugepages.mount");
        const owner = "HugepagePool p (kvmtune/test)";
        const remote = new LocalRemote({ etc, pathFirst: bin });
        await runScript(remote, persistScript(owner, parse({ pageSize: "2M", nodes: { "0": 8 }, mount: "/dev/hugepages", persist: true })));
        assert.match(fs.readFileSync(unit, "utf8"), /^# Managed by kvmtune for HugepagePool p/);
        fs.writeFileSync(calls, "");

        await runScript(remote, persistScript(owner, parse({ pageSize: "2M", nodes: { "0": 8 }, mount: "/dev/hugepages", persist: false })));
        assert.ok(!fs.existsSync(unit), "the mount unit is still there");
        assert.ok(fs.readFileSync(calls, "utf8").split("\n").includes("--no-reload disable dev-hugepages.mount"), fs.readFileSync(calls, "utf8"));

        const mine = "[Mount]\nWhat=hugetlbfs\nWhere=/dev/hugepages\n";
        fs.writeFileSync(unit, mine);
        await runScript(remote, persistScript(owner, parse({ pageSize: "2M", nodes: { "0": 8 }, mount: "/dev/hugepages", persist: false })));
        assert.strictEqual(fs.readFileSync(unit, "utf8"), mine);
        fs.rmSync(etc, { recursive: true, force: true });
        fs.rmSync(bin, { recursive: true, force: true });
    });
});
