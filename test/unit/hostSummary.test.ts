/**
 * The `hosts` output: what `up` prints per host is one line a person reads (the host, its kernel,
 * CPUs, pages, elevators, VFs, networks and guests as applied), and the full detail is a JSON file
 * beside the topology picture, not hundreds of printed lines.
 */
import * as assert from "assert";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { cpuList, HostDetail, hostSummary, writeHostDetail } from "../../fleet/summary";

/** A lab host after `up` with the lab tuning, as its KvmHost's children report it. */
function labHost(): HostDetail {
    return {
        facts: {
            hostname: "lab1",
            kernel: "6.1.0-28-amd64",
            libvirt: "9.0.0",
            vhostNet: true,
            numaNodes: [
                { id: 0, cpus: [0, 1], memoryMiB: 1496, hugepages: { "2M": { total: 0, free: 0 } } },
                { id: 1, cpus: [2, 3], memoryMiB: 1512, hugepages: { "2M": { total: 0, free: 0 } } },
            ],
        },
        applied: {
            hugepagePools: { "2M": { "0": { total: 64, free: 64 }, "1": { total: 64, free: 32 } } },
            elevators: { vdb: { disk: "vdb", scheduler: "mq-deadline", tunables: { read_expire: 100 } } },
            sriovNics: { enp33s0: { pf: "enp33s0", numaNode: 0, vfs: [0, 1, 2, 3].map((vf) => ({ vf, pciAddress: `0000:21:10.${vf}` })) } },
            vhostNetworks: { tuned: { bridge: "kvmt-tuned", active: true, vhostNet: true, guestDefaults: { queues: 2 } } },
            guests: { "demo-db": { state: "running", cpuPins: [[2], [3]], pendingRestart: [] } },
        },
    };
}

describe("the hosts output: one line per host", () => {
    it("says what was applied on the host, on one line", () => {
        const line = hostSummary(labHost());
        assert.strictEqual(
            line,
            "lab1: kernel 6.1.0-28-amd64; libvirt 9.0.0; 2 NUMA nodes, CPUs 0-3; 2M pages 64+64 (free 64+32); " +
                "elevators: mq-deadline vdb; enp33s0: 4 VFs; networks: active tuned (kvmt-tuned); guests: demo-db running on CPUs 2-3",
        );
    });

    it("stays one short line for a host with many disks and guests", () => {
        const d = labHost();
        const disks = Array.from({ length: 40 }, (_v, i) => `nvme${i}n1`);
        d.applied.elevators = Object.fromEntries(disks.map((disk, i) => [disk, { disk, scheduler: i % 2 ? "bfq" : "mq-deadline", tunables: {} }]));
        d.applied.guests = Object.fromEntries(Array.from({ length: 30 }, (_v, i) => [`g${String(i).padStart(2, "0")}`, { state: "shut off", cpuPins: [[i % 4]], pendingRestart: [] }]));
        const line = hostSummary(d);
        assert.doesNotMatch(line, /\n/);
        assert.ok(line.length < 400, `${line.length} characters: ${line}`);
        assert.match(line, /elevators: mq-deadline nvme0n1, nvme10n1, nvme12n1 \+17 more; bfq nvme11n1, nvme13n1, nvme15n1 \+17 more;/);
        assert.match(line, /guests: g00 shut off on CPUs 0, g01 shut off on CPUs 1, g02 shut off on CPUs 2 \+27 more/);
    });

    it("names a host without tuning or libvirt plainly", () => {
        const d = labHost();
        d.facts.libvirt = null;
        d.applied = { hugepagePools: {}, elevators: {}, sriovNics: {}, vhostNetworks: {}, guests: {} };
        assert.strictEqual(hostSummary(d), "lab1: kernel 6.1.0-28-amd64; libvirt absent; 2 NUMA nodes, CPUs 0-3");
    });

    it("writes CPU sets as the kernel lists them", () => {
        assert.strictEqual(cpuList([3, 0, 1, 2, 8, 10, 11]), "0-3,8,10-11");
        assert.strictEqual(cpuList([]), "");
        assert.strictEqual(cpuList([5]), "5");
    });

    it("keeps the full detail in a JSON file beside the picture", () => {
        const dir = fs.mkdtempSync(path.join(os.tmpdir(), "kvmtune-detail-"));
        try {
            const detail = { ...labHost(), topology: path.join(dir, "lab1.svg") };
            const file = writeHostDetail(detail, dir, "lab1");
            assert.strictEqual(file, path.join(dir, "lab1.json"));
            assert.deepStrictEqual(JSON.parse(fs.readFileSync(file, "utf8")), detail);
            assert.deepStrictEqual(fs.readdirSync(dir), ["lab1.json"], "the temp file was left behind");
        } finally {
            fs.rmSync(dir, { recursive: true, force: true });
        }
    });
});
