import * as assert from "assert";
import * as fs from "fs";
import * as path from "path";
import type { BlockDeviceFacts } from "../../resources/host/facts";
import { blockElevatorSchema, mismatches, provider, resolveDevice, sameTunable, udevRule } from "../../resources/providers/blockElevator";
import { parseDiskRead, readDisk } from "../../resources/host/disk";
import { parseDump } from "../../resources/host/sysfs";
import { closeAll } from "../../resources/host/sshPool";
import { diskOfThisMachine, FakeDiskHost, startFakeDiskHost } from "../helpers/fakeSshHost";
import { goodConnection, throwawayKey } from "../helpers/fixtures";
import { tunedProfile } from "../helpers/recordedPlatforms";
import { LocalRemote } from "../helpers/localRemote";

const disk = (name: string, ids: string[] = [], paths: string[] = []): BlockDeviceFacts => ({
    name, ids, paths, scheduler: "none", schedulers: ["none", "mq-deadline"], rotational: false, sizeBytes: 1 << 30, nrRequests: 256, readAheadKb: 128,
    queues: [name], nvme: null,
});
const parse = (i: Record<string, unknown>) => blockElevatorSchema.parse({ connection: goodConnection(), ...i });

describe("BlockElevator inputs", () => {
    it("maps legacy scheduler names", () => {
        assert.strictEqual(parse({ device: "vdb", scheduler: "deadline" }).scheduler, "mq-deadline");
        assert.strictEqual(parse({ device: "vdb", scheduler: "cfq" }).scheduler, "bfq");
        assert.strictEqual(parse({ device: "vdb", scheduler: "noop" }).scheduler, "none");
    });

    it("refuses an unknown scheduler, naming the allowed ones", async () => {
        const r = await provider.check({}, { connection: goodConnection(), device: "vdb", scheduler: "anticipatory" });
        assert.strictEqual(r.failures?.[0].property, "scheduler");
        assert.match(r.failures![0].reason, /"anticipatory".*mq-deadline, bfq, kyber, none/s);
    });

    it("checks tunable names per scheduler", async () => {
        const r = await provider.check({}, { connection: goodConnection(), device: "vdb", scheduler: "mq-deadline", tunables: { slice_idle: 0 } });
        assert.strictEqual(r.failures?.[0].property, "tunables.slice_idle");
        assert.match(r.failures![0].reason, /mq-deadline has no tunable slice_idle; it has read_expire/);
        const ok = await provider.check({}, { connection: goodConnection(), device: "vdb", scheduler: "bfq", tunables: { slice_idle: 0, low_latency: 1 } });
        assert.strictEqual(ok.failures, undefined);
    });

    it("accepts kernel names and stable links, nothing else", async () => {
        for (const device of ["vdb", "sda", "nvme0n1", "/dev/disk/by-id/nvme-QEMU_NVMe_Ctrl_kvmtune-nvme", "/dev/disk/by-path/pci-0000:00:05.0"]) {
            assert.strictEqual((await provider.check({}, { connection: goodConnection(), device, scheduler: "none" })).failures, undefined, device);
        }
        for (const device of ["vdb1", "/dev/vdb", "../vdb", "vdb;reboot", "/dev/disk/by-id/../../sda", "nvme0n1p1"]) {
            const r = await provider.check({}, { connection: goodConnection(), device, scheduler: "none" });
            assert.strictEqual(r.failures?.[0].property, "device", device);
        }
    });

    it("resolves a stable link to its disk, and lists the disks when it cannot", () => {
        const disks = [disk("vdb", ["/dev/disk/by-id/virtio-data"]), disk("nvme0n1", ["/dev/disk/by-id/nvme-x"])];
        assert.strictEqual(resolveDevice("/dev/disk/by-id/nvme-x", disks, "lab1").name, "nvme0n1");
        assert.strictEqual(resolveDevice("vdb", disks, "lab1").name, "vdb");
        assert.throws(() => resolveDevice("sdz", disks, "lab1"), /lab1 has no whole disk sdz.*vdb = \/dev\/disk\/by-id\/virtio-data/);
    });

    it("names asked and kept values when the kernel did less", () => {
        const i = parse({ device: "vdb", scheduler: "mq-deadline", tunables: { read_expire: 100 }, nrRequests: 64 });
        assert.deepStrictEqual(
            mismatches(i, { scheduler: "mq-deadline", available: [], tunables: { read_expire: 500 }, nrRequests: 32, readAheadKb: 128 }),
            ["tunables.read_expire: asked 100, the kernel kept 500", "nrRequests: asked 64, the kernel kept 32"],
        );
    });

    it("treats a millisecond tunable rounded to the kernel's tick as the value asked for", () => {
        const i = parse({ device: "vdb", scheduler: "mq-deadline", tunables: { read_expire: 250, fifo_batch: 8 } });
        assert.deepStrictEqual(mismatches(i, { scheduler: "mq-deadline", available: [], tunables: { read_expire: 252, fifo_batch: 8 }, nrRequests: 1, readAheadKb: 1 }), []);
        assert.deepStrictEqual(
            mismatches(i, { scheduler: "mq-deadline", available: [], tunables: { read_expire: 500, fifo_batch: 9 }, nrRequests: 1, readAheadKb: 1 }),
            ["tunables.read_expire: asked 250, the kernel kept 500", "tunables.fifo_batch: asked 8, the kernel kept 9"],
        );
        assert.strictEqual(sameTunable("fifo_batch", 8, 9), false, "counts are exact");
    });

    it("writes a udev rule that matches the stable link the user named", () => {
        const rule = udevRule("BlockElevator db", parse({ device: "/dev/disk/by-id/virtio-data", scheduler: "mq-deadline", tunables: { read_expire: 100 } }), disk("vdb"));
        assert.match(rule, /^# Managed by kvmtune for BlockElevator db\./);
        assert.match(rule, /SYMLINK=="disk\/by-id\/virtio-data", ATTR\{queue\/scheduler\}="mq-deadline", ATTR\{queue\/iosched\/read_expire\}="100"/);
        assert.match(udevRule("x", parse({ device: "vdb", scheduler: "none" }), disk("vdb")), /KERNEL=="vdb"/);
    });

    it("persists NVMe multipath paths by controller serial and namespace id", () => {
        const nvme = { name: "nvme0n1", queues: ["nvme0c0n1"], nvme: { serial: "lab1-nvme", nsid: 1 } };
        const rule = udevRule("x", parse({ device: "/dev/disk/by-id/nvme-QEMU_NVMe_Ctrl_lab1-nvme", scheduler: "bfq", tunables: { slice_idle: 0 }, readAheadKb: 256 }), nvme);
        const lines = rule.split("\n").filter((l) => l.startsWith("ACTION"));
        assert.match(lines[0], /KERNEL=="nvme\*c\*n\*", ATTRS\{serial\}=="lab1-nvme", ATTR\{nsid\}=="1", ATTR\{queue\/scheduler\}="bfq", ATTR\{queue\/iosched\/slice_idle\}="0"$/);
        assert.match(lines[1], /SYMLINK=="disk\/by-id\/nvme-QEMU_NVMe_Ctrl_lab1-nvme", ATTR\{queue\/read_ahead_kb\}="256"$/);
        assert.throws(() => udevRule("x", parse({ device: "nvme0n1", scheduler: "bfq" }), { ...nvme, nvme: { serial: 'a"b', nsid: 1 } }), /no plain controller serial/);
    });
});

describe("BlockElevator's one-disk read (resources/host/disk.ts)", () => {
    const F = (path: string, body: string) => `\x1eF\x1f${path}\n${body}\n`;
    it("finds an NVMe namespace's multipath path queues, serial and nsid", () => {
        const text = [
            F("/etc/hostname", "lab1"),
            F("/sys/block/nvme0n1/size", "2097152"),
            F("/sys/block/nvme0n1/nsid", "1"),
            F("/sys/block/nvme0n1/queue/scheduler", "none"),
            F("/sys/block/nvme0n1/queue/read_ahead_kb", "128"),
            F("/sys/block/nvme0c0n1/queue/scheduler", "[bfq] none mq-deadline"),
            F("/sys/block/nvme0c0n1/queue/nr_requests", "1023"),
            F("/sys/block/nvme0c0n1/queue/iosched/slice_idle", "0"),
            F("/sys/block/nvme0c0n1/device/serial", "lab1-nvme  "),
        ].join("");
        const r = parseDiskRead(parseDump(text));
        assert.deepStrictEqual(r.disk, { name: "nvme0n1", queues: ["nvme0c0n1"], nvme: { serial: "lab1-nvme", nsid: 1 } });
        assert.deepStrictEqual(r.queues, [{ scheduler: "bfq", available: ["bfq", "none", "mq-deadline"], tunables: { slice_idle: 0 }, nrRequests: 1023, readAheadKb: 128 }]);
    });

    it("says gone for no disk, and for an empty drive (size 0)", () => {
        assert.strictEqual(parseDiskRead(parseDump(F("/etc/hostname", "h"))).disk, null);
        const empty = F("/sys/block/loop3/size", "0") + F("/sys/block/loop3/queue/scheduler", "[none] mq-deadline");
        assert.strictEqual(parseDiskRead(parseDump(empty)).disk, null);
    });

    it("reads this machine's disk by kernel name as fs does, and no disk for a name it lacks", async () => {
        const fs = await import("fs");
        const name = diskOfThisMachine();
        const r = await readDisk(new LocalRemote(), name);
        assert.strictEqual(r.disk?.name, name);
        assert.strictEqual(r.queues[0].readAheadKb, Number(fs.readFileSync(`/sys/block/${name}/queue/read_ahead_kb`, "utf8")));
        assert.strictEqual(`[${r.queues[0].scheduler}]`, /\[[^\]]+\]/.exec(fs.readFileSync(`/sys/block/${name}/queue/scheduler`, "utf8"))?.[0]);
        assert.strictEqual((await readDisk(new LocalRemote(), "sdzz")).disk, null);
        assert.strictEqual((await readDisk(new LocalRemote(), "/dev/disk/by-id/kvmtune-no-such-disk")).disk, null);
    });
});

describe("BlockElevator and a running tuned that sets the same queue setting (a loopback host)", function () {
    this.timeout(120_000);
    const key = throwawayKey();
    let host: FakeDiskHost;
    const connection = () => ({ host: "127.0.0.1", port: host.ssh.port, user: "root", privateKey: key.privateKey, hostKey: host.ssh.hostKey });
    const queueFile = (f: string) => fs.readFileSync(path.join(host.queue, f), "utf8").trim();
    const claim = () => path.join(host.etc, "kvmtune", "claims", `block-elevator-${host.disk}`);
    async function create(inputs: Record<string, unknown>) {
        const checked = await provider.check({}, { connection: connection(), owner: "BlockElevator db (shop/prod)", ...inputs });
        assert.strictEqual(checked.failures, undefined, JSON.stringify(checked.failures));
        return provider.create(checked.inputs!);
    }
    /** tuned.service as `systemctl is-active` answers for it (every other unit inactive). */
    const tunedIs = (state: "active" | "inactive") =>
        fs.writeFileSync(
            path.join(host.bin, "systemctl"),
            `#!/bin/sh\nif [ "$1" = is-active ]; then shift; for u in "$@"; do if [ "$u" = tuned.service ]; then echo ${state}; else echo inactive; fi; done; fi\nexit 0\n`,
            { mode: 0o755 },
        );
    const profile = (name: string, text: string) => {
        fs.mkdirSync(path.join(host.etc, "tuned", "profiles", name), { recursive: true });
        fs.writeFileSync(path.join(host.etc, "tuned", "profiles", name, "tuned.conf"), text);
    };

    before(async () => {
        host = await startFakeDiskHost(key);
        // tuned 2.25's shipped profiles, in /etc/tuned/profiles (the private /etc is all a test can lay them in).
        profile("virtual-host", tunedProfile("virtual-host"));
        profile("throughput-performance", tunedProfile("throughput-performance"));
    });
    beforeEach(() => {
        host.resetQueue();
        fs.writeFileSync(path.join(host.etc, "tuned", "active_profile"), "virtual-host\n");
        tunedIs("active");
    });
    after(async () => {
        closeAll();
        await host?.dispose();
    });

    it("refuses readAheadKb under virtual-host before anything changes, naming the profile, tuned's setting, the field and both ways to choose", async () => {
        await assert.rejects(create({ device: host.disk, scheduler: "mq-deadline", readAheadKb: 8192 }), (err: Error) => {
            assert.match(err.message, new RegExp(`^BlockElevator ${host.disk} on fakehost: tuned is active with profile virtual-host`));
            assert.match(err.message, /readAheadKb: tuned's profile throughput-performance sets \[disk\] readahead=>4096/);
            assert.match(err.message, /To let tuned win, leave readAheadKb out/);
            assert.match(err.message, /include=virtual-host/);
            return true;
        });
        assert.strictEqual(queueFile("scheduler"), "[none] mq-deadline", "the refused create changed the scheduler");
        assert.strictEqual(queueFile("read_ahead_kb"), "128", "the refused create changed the read-ahead");
        assert.ok(!fs.existsSync(claim()), "the refused create took the disk's claim");
    });

    it("leaves tuned the read-ahead when readAheadKb is left out, and sets the rest", async () => {
        const r = await create({ device: host.disk, scheduler: "mq-deadline" });
        assert.strictEqual(queueFile("scheduler"), "mq-deadline");
        await provider.delete(r.id, r.outs!);
    });

    it("sets readAheadKb where the active profile includes virtual-host without its readahead (the winner chosen), or tuned is stopped", async () => {
        profile("virtual-host-kvmtune", "[main]\ninclude=virtual-host\n\n[disk]\ndrop=readahead\n");
        fs.writeFileSync(path.join(host.etc, "tuned", "active_profile"), "virtual-host-kvmtune\n");
        let r = await create({ device: host.disk, scheduler: "mq-deadline", readAheadKb: 8192 });
        assert.strictEqual(queueFile("read_ahead_kb"), "8192");
        await provider.delete(r.id, r.outs!);

        fs.writeFileSync(path.join(host.etc, "tuned", "active_profile"), "virtual-host\n");
        tunedIs("inactive");
        r = await create({ device: host.disk, scheduler: "mq-deadline", readAheadKb: 8192 });
        assert.strictEqual(queueFile("read_ahead_kb"), "8192");
        await provider.delete(r.id, r.outs!);
    });
});
