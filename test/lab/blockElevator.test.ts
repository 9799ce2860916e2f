/**
 * BlockElevator's whole life on a lab host through the real engine, on all three kinds of data
 * disk: virtio by kernel name, NVMe by /dev/disk/by-id, virtio-scsi by /dev/disk/by-path. Each step
 * is checked by reading sysfs with the system ssh client.
 */
import * as assert from "assert";
import type { PulumiFn } from "@pulumi/pulumi/automation";
import { BlockElevator } from "../../resources";
import { inlineStack, InlineStack } from "../helpers/inlineStack";
import { labConnection, rebootLabHost } from "../helpers/labConnection";
import { sshOk, suiteHost } from "./labHosts";

interface DiskState {
    scheduler: string;
    tunables: Record<string, number>;
}

describe("BlockElevator on a lab host", function () {
    this.timeout(30 * 60_000);
    const h = suiteHost(0);
    const connection = labConnection(h);
    let s: InlineStack;
    let nvmeId: string;
    let scsiPath: string;
    let scsiName: string;
    /** Where nvme0n1's scheduler lives: its multipath path device when native multipath is on. */
    let nvmeQueue: string;
    const originals: Record<string, DiskState> = {};

    /** A disk's scheduler and tunables, as the host's sysfs says. */
    async function disk(name: string): Promise<DiskState> {
        const out = await sshOk(h, `cat /sys/block/${name}/queue/scheduler; for f in /sys/block/${name}/queue/iosched/*; do [ -f "$f" ] && echo "$(basename $f)=$(cat $f)"; done; true`);
        const [sched, ...rest] = out.trim().split("\n");
        return {
            scheduler: /\[([^\]]+)\]/.exec(sched)![1],
            tunables: Object.fromEntries(rest.filter((l) => l.includes("=")).map((l) => [l.split("=")[0], Number(l.split("=")[1])])),
        };
    }

    /** The tuned disks; `dbOverrides` bends the first one's inputs, `extra` declares more. */
    const tuned = (readExpire = 100, dbOverrides: Record<string, unknown> = {}, extra?: () => void): PulumiFn => async () => {
        extra?.();
        const db = new BlockElevator("db-disk", { connection, device: "vdb", scheduler: "mq-deadline", tunables: { read_expire: readExpire, fifo_batch: 8 }, ...dbOverrides });
        const nvme = new BlockElevator("nvme-disk", { connection, device: nvmeId, scheduler: "bfq", tunables: { slice_idle: 0, low_latency: 0 } });
        const scsi = new BlockElevator("scsi-disk", { connection, device: scsiPath, scheduler: "kyber", tunables: { read_lat_nsec: 1_000_000 } });
        return { db: db.kernelName, nvme: nvme.kernelName, scsi: scsi.kernelName, nvmeSchedulers: nvme.availableSchedulers, dbOriginal: db.original };
    };

    before(async () => {
        // Stable names as the host's udev made them, found independently of the library.
        nvmeId = (await sshOk(h, "ls -d /dev/disk/by-id/nvme-* | grep -v -e eui -e nvme-nvme -e part | head -1")).trim();
        scsiPath = (await sshOk(h, "for l in /dev/disk/by-path/*; do case $(readlink -f $l) in /dev/sd?) echo $l; break;; esac; done")).trim();
        scsiName = (await sshOk(h, `basename $(readlink -f ${scsiPath})`)).trim();
        assert.ok(nvmeId && scsiPath && scsiName, "the lab host lacks an NVMe by-id link or a SCSI by-path link");
        nvmeQueue = (await sshOk(h, "ls /sys/block | grep -E '^nvme0c[0-9]+n1$' | head -1")).trim() || "nvme0n1";
        for (const d of ["vdb", nvmeQueue, scsiName]) originals[d] = await disk(d);
        s = await inlineStack("lab-elevator");
    });
    after(async () => {
        await s?.destroy().catch(() => undefined);
        await s?.remove();
    });

    async function assertTuned(readExpire = 100) {
        const vdb = await disk("vdb");
        assert.strictEqual(vdb.scheduler, "mq-deadline");
        assert.strictEqual(vdb.tunables.read_expire, readExpire);
        assert.strictEqual(vdb.tunables.fifo_batch, 8);
        const nvme = await disk(nvmeQueue);
        assert.strictEqual(nvme.scheduler, "bfq");
        assert.strictEqual(nvme.tunables.slice_idle, 0);
        assert.strictEqual(nvme.tunables.low_latency, 0);
        const scsi = await disk(scsiName);
        assert.strictEqual(scsi.scheduler, "kyber");
        assert.strictEqual(scsi.tunables.read_lat_nsec, 1_000_000);
    }

    it("sets three disks by kernel name, by-id and by-path, and persists udev rules", async () => {
        assert.deepStrictEqual(await s.up(tuned()), { create: 4 });
        await assertTuned();
        const outputs = await s.stack.outputs();
        assert.deepStrictEqual([outputs.db.value, outputs.nvme.value, outputs.scsi.value], ["vdb", "nvme0n1", scsiName]);
        assert.ok((outputs.nvmeSchedulers.value as string[]).includes("bfq"));
        assert.strictEqual(outputs.dbOriginal.value.scheduler, originals.vdb.scheduler);
        const rule = await sshOk(h, "cat /etc/udev/rules.d/61-kvmtune-elevator-nvme0n1.rules");
        assert.match(rule, /Managed by kvmtune for BlockElevator nvme-disk/);
        // Multipath paths have no /dev/disk links: the rule matches the controller's serial instead.
        const serial = (await sshOk(h, `cat /sys/block/${nvmeQueue}/device/serial 2>/dev/null || true`)).trim();
        assert.ok(nvmeQueue === "nvme0n1" ? rule.includes(`SYMLINK=="${nvmeId.slice(5)}"`) : rule.includes(`ATTRS{serial}=="${serial}"`), rule);
    });

    it("a second up changes nothing", async () => {
        assert.deepStrictEqual(await s.preview(tuned()), {});
        assert.deepStrictEqual(await s.up(tuned()), {});
    });

    it("finds an out-of-band change on refresh and undoes it on up", async () => {
        await sshOk(h, "echo none > /sys/block/vdb/queue/scheduler");
        assert.deepStrictEqual(await s.refresh(), { update: 1 });
        assert.deepStrictEqual(await s.up(tuned()), { update: 1 });
        await assertTuned();
    });

    // 200 ms is a whole number of ticks at HZ 100, 250 and 1000, so it reads back exactly.
    it("updates a tunable in place", async () => {
        assert.deepStrictEqual(await s.up(tuned(200)), { update: 1 });
        await assertTuned(200);
        assert.match(await sshOk(h, "cat /etc/udev/rules.d/61-kvmtune-elevator-vdb.rules"), /read_expire\}="200"/);
    });

    it("keeps every disk's settings across a host reboot (udev rules)", async () => {
        await rebootLabHost(h);
        await assertTuned(200);
        assert.deepStrictEqual(await s.preview(tuned(200)), {});
    });

    it("refuses bad input before the host changes", async () => {
        const bad = (args: Record<string, unknown>) => tuned(200, args);
        await assert.rejects(s.up(bad({ tunables: { slice_idle: 0 } })), /mq-deadline has no tunable slice_idle/);
        await assert.rejects(s.up(bad({ scheduler: "cfq-classic" })), /scheduler: got "cfq-classic"/);
        await assert.rejects(s.up(bad({ device: "/dev/vdb" })), /device: got "\/dev\/vdb"/);
        await assert.rejects(s.up(bad({ nrRequests: 1 })), /nrRequests: got 1/);
        await assertTuned(200);
    });

    it("refuses a disk the host does not have, listing the ones it has", async () => {
        const program = tuned(200, {}, () => {
            new BlockElevator("ghost", { connection, device: "/dev/disk/by-id/virtio-nonexistent", scheduler: "none" });
        });
        await assert.rejects(s.up(program), /has no whole disk \/dev\/disk\/by-id\/virtio-nonexistent\. Its disks: .*vdb/);
        await assertTuned(200);
    });

    it("destroy restores the original schedulers and removes the rules", async () => {
        assert.deepStrictEqual(await s.destroy(), { delete: 4 });
        for (const d of ["vdb", nvmeQueue, scsiName]) assert.strictEqual((await disk(d)).scheduler, originals[d].scheduler, d);
        assert.strictEqual((await sshOk(h, "grep -rl 'Managed by kvmtune' /etc/udev/rules.d 2>/dev/null | wc -l")).trim(), "0");
    });
});
