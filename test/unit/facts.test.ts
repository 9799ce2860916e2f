import * as assert from "assert";
import * as fs from "fs";
import * as os from "os";
import { defaultHugepageSizeOf, FACTS_SCRIPT, gatherFacts, pageSizeKb, pageSizeName, parseFacts } from "../../resources/host/facts";
import { buildDumpScript, formatCpuList, parseBracketChoice, parseCpuList, parseDump } from "../../resources/host/sysfs";
import { LocalRemote } from "../helpers/localRemote";

describe("sysfs helpers", () => {
    it("parses and formats CPU lists", () => {
        assert.deepStrictEqual(parseCpuList("0-3,8,10-11\n"), [0, 1, 2, 3, 8, 10, 11]);
        assert.strictEqual(formatCpuList([11, 0, 1, 2, 3, 8, 10]), "0-3,8,10-11");
        assert.throws(() => parseCpuList("zero"), /not a CPU list/);
    });

    it("reads bracketed choices", () => {
        assert.deepStrictEqual(parseBracketChoice("[none] mq-deadline kyber\n"), {
            active: "none",
            available: ["none", "mq-deadline", "kyber"],
        });
        // A queue that takes no scheduler (an NVMe multipath head) prints a bare "none".
        assert.deepStrictEqual(parseBracketChoice("none"), { active: "none", available: ["none"] });
        assert.deepStrictEqual(parseBracketChoice(""), { active: null, available: [] });
    });

    it("names page sizes both ways", () => {
        assert.strictEqual(pageSizeName(2048), "2M");
        assert.strictEqual(pageSizeName(1048576), "1G");
        assert.strictEqual(pageSizeKb("1G"), 1048576);
    });

    it("round-trips files, links and commands through a real shell", async () => {
        const script = buildDumpScript({
            files: ["/proc/sys/kernel/osrelease", "/nonexistent/*"],
            links: ["/proc/self/exe"],
            commands: { ok: "echo hello; echo world", fails: "exit 3" },
        });
        const out = await new LocalRemote().exec("sh -s", { stdin: script });
        const dump = parseDump(out.stdout);
        assert.strictEqual(dump.files.get("/proc/sys/kernel/osrelease"), os.release());
        assert.strictEqual(dump.files.size, 1);
        assert.match(dump.links.get("/proc/self/exe") ?? "", /^\//);
        assert.deepStrictEqual(dump.commands.get("ok"), { stdout: "hello\nworld", code: 0 });
        assert.deepStrictEqual(dump.commands.get("fails"), { stdout: "", code: 3 });
    });
});

describe("host facts", function () {
    // The facts script runs virsh and systemctl: seconds on a loaded 2-core machine, not a failure.
    this.timeout(30_000);
    it("reads this machine's kernel, CPUs and NUMA nodes in one script", async () => {
        // Node's own view of the machine is the independent reference.
        const facts = await gatherFacts(new LocalRemote());
        assert.strictEqual(facts.kernel, os.release());
        assert.strictEqual(facts.cpusOnline.length, os.cpus().length);
        assert.ok(facts.numaNodes.length >= 1, "no NUMA node read");
        const cpusInNodes = facts.numaNodes.flatMap((n) => n.cpus).sort((a, b) => a - b);
        assert.deepStrictEqual(cpusInNodes, facts.cpusOnline);
        const isolatedFile = "/sys/devices/system/cpu/isolated";
        const isolated = fs.existsSync(isolatedFile) ? parseCpuList(fs.readFileSync(isolatedFile, "utf8")) : [];
        assert.deepStrictEqual(facts.isolatedCpus, isolated);
        // Per-node memory as the kernel reports it, read here with fs rather than the script.
        // (Not os.totalmem(): memory hot-plugged into a VM shows in /proc/meminfo but not per node.)
        for (const node of facts.numaNodes) {
            const meminfo = fs.readFileSync(`/sys/devices/system/node/node${node.id}/meminfo`, "utf8");
            const kb = Number(/MemTotal:\s+(\d+) kB/.exec(meminfo)![1]);
            assert.strictEqual(node.memoryMiB, Math.floor(kb / 1024));
        }
        assert.ok(facts.hugepageSizes.includes("2M"));
        // The default huge page size, as this machine's /proc/meminfo says it (read here with fs).
        const kb = Number(/^Hugepagesize:\s+(\d+) kB$/m.exec(fs.readFileSync("/proc/meminfo", "utf8"))![1]);
        assert.strictEqual(facts.defaultHugepageSize, pageSizeName(kb));
        assert.strictEqual(defaultHugepageSizeOf("MemTotal: 1 kB\nHugepagesize:    1048576 kB\n"), "1G");
        assert.strictEqual(defaultHugepageSizeOf("MemTotal: 1 kB\n"), null);
    });

    it("parses a two-node host with SR-IOV, disks and pools", () => {
        const F = (path: string, body: string) => `\x1eF\x1f${path}\n${body}\n`;
        const L = (path: string, target: string) => `\x1eL\x1f${path}\n${target}\n`;
        const C = (name: string, out: string, code = 0) => `\x1eC\x1f${name}\n${out}\n\x1eX\x1f${name}\n${code}\n`;
        const n = "/sys/devices/system/node";
        const text = [
            F("/etc/hostname", "lab1"),
            F("/etc/machine-id", "abc"),
            F("/proc/sys/kernel/osrelease", "6.1.0-28-amd64"),
            F("/proc/cmdline", "BOOT_IMAGE=/boot/vmlinuz root=UUID=x hugepagesz=1G hugepages=1"),
            F("/sys/devices/system/cpu/online", "0-3"),
            F("/sys/devices/system/cpu/isolated", "2-3"),
            F(`${n}/node0/cpulist`, "0-1"),
            F(`${n}/node1/cpulist`, "2-3"),
            F(`${n}/node0/meminfo`, "Node 0 MemTotal:        1531920 kB\nNode 0 MemFree:  1000 kB"),
            F(`${n}/node1/meminfo`, "Node 1 MemTotal:        1548288 kB"),
            F(`${n}/node1/hugepages/hugepages-2048kB/nr_hugepages`, "64"),
            F(`${n}/node1/hugepages/hugepages-2048kB/free_hugepages`, "32"),
            F(`${n}/node1/hugepages/hugepages-2048kB/surplus_hugepages`, "0"),
            F(`${n}/node0/hugepages/hugepages-1048576kB/nr_hugepages`, "0"),
            F("/sys/block/vdb/queue/scheduler", "[mq-deadline] kyber bfq none"),
            F("/sys/block/vdb/queue/rotational", "0"),
            F("/sys/block/vdb/queue/nr_requests", "256"),
            F("/sys/block/vdb/queue/read_ahead_kb", "128"),
            F("/sys/block/vdb/size", "2097152"),
            F("/sys/block/loop0/queue/scheduler", "[none] mq-deadline"),
            // NVMe under native multipath: the head takes no scheduler, its path queue does.
            F("/sys/block/nvme0n1/queue/scheduler", "none"),
            F("/sys/block/nvme0n1/queue/read_ahead_kb", "128"),
            F("/sys/block/nvme0n1/size", "2097152"),
            F("/sys/block/nvme0n1/nsid", "1"),
            F("/sys/block/nvme0c0n1/queue/scheduler", "[none] mq-deadline bfq"),
            F("/sys/block/nvme0c0n1/queue/nr_requests", "1023"),
            F("/sys/block/nvme0c0n1/size", "2097152"),
            F("/sys/block/nvme0c0n1/device/serial", "lab1-nvme  "),
            L("/dev/disk/by-id/nvme-QEMU_NVMe_Ctrl_lab1-nvme", "/dev/nvme0n1"),
            F("/sys/block/loop0/size", "0"),
            L("/dev/disk/by-id/virtio-data1", "/dev/vdb"),
            L("/dev/disk/by-path/pci-0000:00:05.0", "/dev/vdb"),
            L("/dev/disk/by-id/virtio-data1-part1", "/dev/vdb1"),
            F("/sys/class/net/enp1s0/address", "52:54:00:12:34:56"),
            L("/sys/class/net/enp1s0/device", "/sys/devices/pci0000:00/0000:00:02.0/0000:01:00.0"),
            L("/sys/class/net/enp1s0/device/driver", "/sys/bus/pci/drivers/igb"),
            F("/sys/class/net/enp1s0/device/numa_node", "1"),
            F("/sys/class/net/enp1s0/device/sriov_totalvfs", "7"),
            F("/sys/class/net/enp1s0/device/sriov_numvfs", "0"),
            F("/sys/class/net/lo/address", "00:00:00:00:00:00"),
            C("hugepageSizes", "hugepages-1048576kB\nhugepages-2048kB"),
            C("vhostNet", "device\nmodule"),
            C("libvirtVersion", "9.0.0"),
            // `systemctl is-active` over the platform's units, one state per line (host/platform.ts SERVICE_UNITS).
            C("services", "active\nactive\ninactive\ninactive\ninactive\ninactive\ninactive\ninactive"),
        ].join("");
        const facts = parseFacts(parseDump(text));
        assert.deepStrictEqual(facts.hugepageSizes, ["2M", "1G"]);
        assert.deepStrictEqual(facts.isolatedCpus, [2, 3]);
        assert.deepStrictEqual(facts.numaNodes.map((x) => [x.id, x.cpus, x.memoryMiB]), [[0, [0, 1], 1496], [1, [2, 3], 1512]]);
        assert.deepStrictEqual(facts.numaNodes[1].hugepages["2M"], { total: 64, free: 32, surplus: 0 });
        assert.deepStrictEqual(facts.blockDevices.map((b) => b.name), ["nvme0n1", "vdb"], "empty loop devices and hidden NVMe paths are not disks");
        const nvme = facts.blockDevices[0];
        assert.deepStrictEqual(
            { queues: nvme.queues, scheduler: nvme.scheduler, schedulers: nvme.schedulers, nrRequests: nvme.nrRequests, readAheadKb: nvme.readAheadKb, nvme: nvme.nvme },
            { queues: ["nvme0c0n1"], scheduler: "none", schedulers: ["none", "mq-deadline", "bfq"], nrRequests: 1023, readAheadKb: 128, nvme: { serial: "lab1-nvme", nsid: 1 } },
        );
        assert.deepStrictEqual(facts.blockDevices[1].queues, ["vdb"]);
        assert.deepStrictEqual(facts.blockDevices[1].ids, ["/dev/disk/by-id/virtio-data1"]);
        assert.strictEqual(facts.blockDevices[1].scheduler, "mq-deadline");
        assert.deepStrictEqual(facts.nics, [
            { name: "enp1s0", mac: "52:54:00:12:34:56", pciAddress: "0000:01:00.0", driver: "igb", numaNode: 1, sriovTotalVfs: 7, sriovNumVfs: 0, physfn: null },
        ]);
        assert.deepStrictEqual(facts.vhostNet, { device: true, moduleLoaded: true });
        assert.deepStrictEqual(facts.libvirt, { version: "9.0.0", active: true });
    });

    it("reads no isolated CPUs from an empty or missing isolated file", () => {
        const F = (path: string, body: string) => `\x1eF\x1f${path}\n${body}\n`;
        const host = [F("/proc/sys/kernel/osrelease", "6.1.0-28-amd64"), F("/sys/devices/system/cpu/online", "0-3")].join("");
        // A kernel booted without isolcpus= has the file, empty; an old kernel (or a recorded dump) has none.
        assert.deepStrictEqual(parseFacts(parseDump(host + F("/sys/devices/system/cpu/isolated", ""))).isolatedCpus, []);
        assert.deepStrictEqual(parseFacts(parseDump(host)).isolatedCpus, []);
    });

    it("says what is wrong when the script returned nothing usable", () => {
        assert.throws(() => parseFacts(parseDump("")), /no kernel release/);
    });

    it("is one script", () => {
        assert.ok(FACTS_SCRIPT.startsWith("#!/bin/sh"));
    });
});
