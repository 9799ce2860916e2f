import * as assert from "assert";
import { spawnSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import type { HostFactsData } from "../../resources/host/facts";
import { buildDomainXml, GuestSpec, parseDomainXml } from "../../resources/libvirt/domain";
import {
    checkAgainstHost,
    HostView,
    inputsFromHost,
    numaPinnedGuestSchema,
    pendingRestartOf,
    provider,
    resolveEmulatorPin,
    resolvePins,
    wantedSpec,
} from "../../resources/providers/numaPinnedGuest";
import { parseVfFacts, VfFacts } from "../../resources/providers/numaPinnedGuestChecks";
import { goodConnection } from "../helpers/fixtures";
import { labPlatform } from "../helpers/recordedPlatforms";

/** The lab host's shape: node 0 has CPUs 0-1, node 1 has 2-3. */
const facts: HostFactsData = {
    hostname: "lab2",
    machineId: "m",
    kernel: "6.1.0",
    cmdline: "",
    cpusOnline: [0, 1, 2, 3],
    isolatedCpus: [],
    hugepageSizes: ["2M", "1G"],
    defaultHugepageSize: "2M",
    numaNodes: [
        { id: 0, cpus: [0, 1], memoryMiB: 1496, hugepages: { "2M": { total: 0, free: 0, surplus: 0 } } },
        { id: 1, cpus: [2, 3], memoryMiB: 1512, hugepages: { "2M": { total: 48, free: 48, surplus: 0 } } },
    ],
    blockDevices: [],
    nics: [],
    vhostNet: { device: true, moduleLoaded: true },
    libvirt: { version: "9.0.0", active: true },
    platform: labPlatform(),
};

const host = (over: Partial<HostView> = {}): HostView => ({ facts, others: [], networks: new Set(["default"]), vfs: [], ...over });

const base = { name: "g1", vcpus: 2, memoryMiB: 64, numaNode: 1, cpuPins: [2, 3], emulatorPin: [2, 3], hugepages: "2M" };
const parse = (i: Record<string, unknown>) => numaPinnedGuestSchema.parse({ connection: goodConnection(), ...i });

describe("NumaPinnedGuest inputs", () => {
    it("fills defaults and normalizes CPU sets to sorted lists", () => {
        const i = parse({ ...base, cpuPins: [3, "2"], emulatorPin: "3,2", disks: [{ path: "/var/lib/g1.img", target: "vda" }] });
        assert.deepStrictEqual(i.cpuPins, [[3], [2]]);
        assert.deepStrictEqual(i.emulatorPin, [2, 3]);
        assert.deepStrictEqual(i.disks[0], { path: "/var/lib/g1.img", target: "vda", bus: "virtio", format: "raw", cache: "none", io: "native" });
        assert.strictEqual(i.memoryMode, "strict");
        assert.strictEqual(i.restartPolicy, "never");
        // Normalized inputs parse to themselves: state read back compares equal.
        assert.deepStrictEqual(numaPinnedGuestSchema.parse(i), i);
    });

    it("refuses bad inputs, naming the field, the value and what is allowed", async () => {
        const r = await provider.check({}, {
            connection: goodConnection(),
            name: "bad name",
            vcpus: 2,
            memoryMiB: 63,
            numaNode: 1,
            nodeset: [1],
            cpuPins: [[2]],
            hugepages: "2M",
            disks: [{ path: "/x.img", target: "vda", cache: "writeback", io: "native" }, { path: "/y.img", target: "sdb", bus: "virtio" }],
            interfaces: [{ network: "default", queues: 8 }, { hostdevVf: { pf: "eth0", vf: 1 }, mac: "zz" }],
            color: "red",
        });
        const byField = Object.fromEntries((r.failures ?? []).map((f) => [f.property, f.reason]));
        assert.match(byField.name, /got "bad name"; must be a domain name/);
        assert.match(byField.nodeset, /numaNode or nodeset, not both/);
        assert.match(byField.cpuPins, /one CPU set per vCPU: 2, got 1/);
        assert.match(byField.memoryMiB, /whole number of 2M pages/);
        assert.match(byField["disks.0.io"], /io native needs cache none or directsync/);
        assert.match(byField["disks.1.target"], /vd\* names go with bus virtio/);
        assert.match(byField["interfaces.0.queues"], /more queues than the guest's 2 vCPUs/);
        assert.ok(Object.keys(byField).some((k) => k.startsWith("interfaces.1")), JSON.stringify(byField));
        assert.match(byField["(inputs)"], /unknown field\(s\) color/);
    });

    it("adopts by domain name or UUID only", () => {
        assert.strictEqual(parse({ ...base, adopt: "5d3435a2-7e0d-41ae-9b93-5edca55574ac" }).adopt, "5d3435a2-7e0d-41ae-9b93-5edca55574ac");
        assert.strictEqual(parse({ ...base, adopt: "g1" }).adopt, "g1");
        assert.throws(() => parse({ ...base, adopt: "g1; virsh destroy x" }), /must be a domain name or UUID/);
    });

    it("takes a disk path only as plain names, so libvirt reads back the path declared", () => {
        assert.strictEqual(parse({ ...base, disks: [{ path: "/var/lib/.img/a..b.img", target: "vda" }] }).disks[0].path, "/var/lib/.img/a..b.img");
        for (const bad of ["/var/lib/../../etc/shadow", "/var/./lib/a.img", "/var/lib/", "var/lib/a.img", "/var//a.img"]) {
            assert.throws(() => parse({ ...base, disks: [{ path: bad, target: "vda" }] }), /disks\.0\.path|no \. or \.\. steps/, bad);
        }
    });

    it("wants a node for auto pins", async () => {
        const r = await provider.check({}, { connection: goodConnection(), name: "g", vcpus: 1, memoryMiB: 64 });
        assert.deepStrictEqual(r.failures?.map((f) => f.property), ["cpuPins"]);
    });
});

describe("NumaPinnedGuest field policy", () => {
    const olds = { ...parse(base), owner: "o" };
    const diff = (news: Record<string, unknown>) => provider.diff("id", olds, { ...olds, ...news });

    it("no change is no change", async () => {
        assert.strictEqual((await diff({})).changes, false);
    });
    it("pins, nodeset, autostart and running change in place", async () => {
        for (const news of [{ cpuPins: [3, 2] }, { emulatorPin: [2] }, { numaNode: 0 }, { autostart: false }, { running: false }]) {
            const d = await diff(news);
            assert.deepStrictEqual([d.changes, d.replaces], [true, []], JSON.stringify(news));
        }
    });
    it("memory, vCPUs, huge pages, disks and NICs update the definition (restart), without replacing", async () => {
        for (const news of [{ memoryMiB: 128 }, { vcpus: 1, cpuPins: [2] }, { hugepages: undefined }, { disks: [{ path: "/a.img", target: "vda" }] }]) {
            const d = await diff(news);
            assert.deepStrictEqual([d.changes, d.replaces], [true, []], JSON.stringify(news));
        }
    });
    it("a new name replaces the guest; a new connection does not", async () => {
        assert.deepStrictEqual((await diff({ name: "g2" })).replaces, ["name"]);
        assert.deepStrictEqual((await diff({ connection: goodConnection({ port: 2203 }) })).replaces, []);
    });
    it("check tells the preview how each change will be applied (live, guest restart, replace)", async () => {
        const r = await provider.check(olds, { ...olds, cpuPins: [3, 2], memoryMiB: 128, name: "g2" });
        assert.deepStrictEqual(r.inputs?.changePlan, {
            name: "replace",
            memoryMiB: "guest restart (restartPolicy: restart now, or listed in pendingRestart)",
            cpuPins: "live (applied to the running system)",
        });
        // The plan is for previews of changes: none on create, none when nothing changes, and
        // a plan left in state from the last update is not itself a change.
        assert.strictEqual((await provider.check({}, olds)).inputs?.changePlan, undefined);
        assert.strictEqual((await provider.check(olds, olds)).inputs?.changePlan, undefined);
        assert.strictEqual((await provider.diff("id", { ...olds, changePlan: { memoryMiB: "x" } }, olds)).changes, false);
    });
    it("a new node is live in strict mode, a guest restart in preferred or interleave mode (libvirt moves memory only in strict)", async () => {
        const strict = await provider.check(olds, { ...olds, numaNode: 0 });
        assert.strictEqual((strict.inputs?.changePlan as Record<string, string>).numaNode, "live (applied to the running system)");
        for (const memoryMode of ["preferred", "interleave"]) {
            const before = { ...olds, memoryMode };
            const r = await provider.check(before, { ...before, numaNode: 0, cpuPins: [3, 2] });
            assert.deepStrictEqual(r.inputs?.changePlan, {
                numaNode: "guest restart (restartPolicy: restart now, or listed in pendingRestart)",
                cpuPins: "live (applied to the running system)",
            }, memoryMode);
        }
    });
    it("an unknown value during preview counts as changed", async () => {
        const d = await diff({ memoryMiB: "04da6b54-80e4-46f7-96ec-b56ff0331ba9" });
        assert.strictEqual(d.changes, true);
    });
});

describe("NumaPinnedGuest checks against the host", () => {
    const problems = (i: Record<string, unknown>, h = host(), opts?: { willStart: boolean; pagesHeld?: number }) => {
        const p = parse({ ...base, ...i });
        return checkAgainstHost(p, resolvePins(p, h), h, opts).join("\n");
    };

    it("accepts the lab guest", () => {
        assert.strictEqual(problems({}), "");
    });
    it("refuses a CPU that is not on the chosen node, or does not exist", () => {
        assert.match(problems({ cpuPins: [1, 3] }), /cpuPins\.0: CPU 1 is not on node\(s\) 1 \(their CPUs: 2-3\)/);
        assert.match(problems({ cpuPins: [2, 9] }), /cpuPins\.1: CPU 9 does not exist on lab2/);
        assert.match(problems({ emulatorPin: [7] }), /emulatorPin: CPU 7 does not exist/);
        assert.match(problems({ numaNode: 4 }), /no NUMA node 4; it has 0, 1/);
    });
    it("refuses a CPU already pinned to another guest's vCPUs", () => {
        const h = host({ others: [{ name: "other", uuid: "u-1", vcpuCpus: [3] }] });
        assert.match(problems({}, h), /CPU 3 already pinned to vCPUs of guest other \(u-1\)/);
    });
    it("refuses emulator and I/O thread pins on another guest's vCPU CPUs, naming the field, the CPUs and the guest", () => {
        const h = host({ others: [{ name: "web", uuid: "u-2", vcpuCpus: [0, 1] }] });
        const p = problems({ emulatorPin: [1, 2], iothreads: 2, iothreadPins: [[3], [0]] }, h);
        assert.match(p, /^emulatorPin: CPU 1 already pinned to vCPUs of guest web \(u-2\)/m);
        assert.match(p, /^iothreadPins\.1: CPU 0 already pinned to vCPUs of guest web \(u-2\)/m);
        assert.doesNotMatch(p, /iothreadPins\.0/);
        // The guest's own vCPU CPUs are not another guest's.
        assert.strictEqual(problems({ emulatorPin: [2, 3], iothreads: 1, iothreadPins: [[3]] }, h), "");
    });
    it("refuses too few free huge pages on the node, counting pages the guest gives back", () => {
        assert.match(problems({ memoryMiB: 128 }), /needs 64 free 2M pages on node\(s\) 1, lab2 has 48 \(node 1: 48 free of 48\)/);
        assert.strictEqual(problems({ memoryMiB: 128 }, host(), { willStart: true, pagesHeld: 32 }), "");
        assert.strictEqual(problems({ memoryMiB: 128 }, host(), { willStart: false }), "");
        assert.match(problems({ numaNode: 0 , cpuPins: [0, 1], emulatorPin: [0] }), /needs 32 free 2M pages on node\(s\) 0, lab2 has 0/);
    });
    it("hugepages default means the host's default page size (Hugepagesize), not 2M", () => {
        // 2M by default: 48 free 2M pages on node 1 hold the 64 MiB guest.
        assert.strictEqual(problems({ hugepages: "default" }), "");
        // A host booted with default_hugepagesz=1G: the guest's memory comes from the 1G pool, which is empty.
        const oneGig = host({ facts: { ...facts, defaultHugepageSize: "1G", numaNodes: facts.numaNodes.map((n) => ({ ...n, hugepages: { ...n.hugepages, "1G": { total: 0, free: 0, surplus: 0 } } })) } });
        assert.match(problems({ hugepages: "default" }, oneGig), /memoryMiB: 64 is not a whole number of lab2's default huge pages \(1G\)/);
        assert.match(problems({ hugepages: "default", memoryMiB: 1024 }, oneGig), /needs 1 free 1G \(the host's default\) pages on node\(s\) 1, lab2 has 0/);
        assert.match(problems({ hugepages: "default" }, host({ facts: { ...facts, defaultHugepageSize: null } })), /hugepages: default, but lab2 reports no default huge page size/);
    });
    it("refuses an emulator pinned off the node of a huge page guest (QEMU cannot preallocate there)", () => {
        assert.match(problems({ emulatorPin: [0, 1] }), /emulatorPin: 0-1 has no CPU of node\(s\) 1/);
        assert.strictEqual(problems({ emulatorPin: [0, 1], hugepages: undefined }), "");
    });
    it("refuses an unknown network and a missing VF", () => {
        assert.match(problems({ interfaces: [{ network: "nope" }] }), /interfaces\.0\.network: lab2 has no libvirt network nope/);
        assert.match(problems({ interfaces: [{ hostdevVf: { pf: "eth1", vf: 3 } }] }, host({ vfs: [null] })), /interfaces\.0\.hostdevVf: eth1 has no VF 3/);
    });
    it("hands a VF over only with an IOMMU group, to one guest, on the guest's node, its PF up", () => {
        // As the lab's node-1 PF reports its VF 1 (resolveVfFacts' line: address, group, node, PF, flags).
        const vf: VfFacts = parseVfFacts("0000:41:10.2 14 1 enp65s0 0x1003")!;
        assert.deepStrictEqual(vf, { pciAddress: "0000:41:10.2", iommuGroup: "14", numaNode: 1, pf: "enp65s0", pfUp: true });
        const nic = { interfaces: [{ hostdevVf: { pf: "enp65s0", vf: 1 } }] };
        const withVf = (v: VfFacts | null, more: Record<string, unknown> = {}) => host({ vfs: [v?.pciAddress ?? null], vfFacts: [v], ...more });
        assert.strictEqual(problems(nic, withVf(vf), { willStart: true }), "");
        assert.match(problems(nic, withVf(parseVfFacts("0000:41:10.2 1 enp65s0 0x1003"))), /VF 0000:41:10\.2 on lab2 is in no IOMMU group: the host's IOMMU is off/);
        assert.match(problems(nic, withVf(vf, { vfHolders: new Map([["0000:41:10.2", "web"]]) })), /VF 0000:41:10\.2 on lab2 is already handed to guest web/);
        const onNode0 = { ...nic, numaNode: 0, cpuPins: [0, 1], hugepages: undefined };
        assert.match(problems(onNode0, withVf(vf)), /VF 0000:41:10\.2 sits on node 1 \(its PF enp65s0\), the guest on node\(s\) 0; .*allowOtherNode/);
        assert.strictEqual(problems({ ...onNode0, interfaces: [{ hostdevVf: { pf: "enp65s0", vf: 1 }, allowOtherNode: true }] }, withVf(vf)), "");
        const down = parseVfFacts("0000:41:10.2 14 1 enp65s0 0x1002");
        assert.match(problems(nic, withVf(down), { willStart: true }), /the PF enp65s0 of VF 0000:41:10\.2 is down on lab2/);
        assert.strictEqual(problems(nic, withVf(down), { willStart: false }), "", "a guest that does not start needs no PF up");
    });
});

describe("NumaPinnedGuest auto pins", () => {
    const auto = parse({ ...base, cpuPins: "auto", emulatorPin: [2] });
    it("picks distinct CPUs of the node, the emulator's last", () => {
        assert.deepStrictEqual(resolvePins(auto, host()), [[3], [2]]);
    });
    it("skips CPUs other guests' vCPUs hold, and says so when too few remain", () => {
        assert.throws(() => resolvePins(auto, host({ others: [{ name: "o", uuid: "u", vcpuCpus: [2] }] })), /auto needs 2 CPUs of node\(s\) 1 .* lab2 has 1 \(3; held by guest o \(2\)\)/);
    });
    it("keeps an earlier choice that is still free", () => {
        assert.deepStrictEqual(resolvePins(auto, host(), [[2], [3]]), [[2], [3]]);
    });
    describe("on a host with isolated CPUs", () => {
        /** Node 1 with CPUs 4-7, of which the kernel isolated 6-7 (isolcpus=6-7). */
        const isolatedHost = (over: Partial<HostView> = {}) =>
            host({ facts: { ...facts, cpusOnline: [0, 1, 2, 3, 4, 5, 6, 7], isolatedCpus: [6, 7], numaNodes: [facts.numaNodes[0], { ...facts.numaNodes[1], cpus: [4, 5, 6, 7] }] }, ...over });
        const onNode1 = (vcpus: number, more: Record<string, unknown> = {}) => parse({ ...base, vcpus, cpuPins: "auto", emulatorPin: undefined, hugepages: undefined, ...more });

        it("picks the node's isolated CPUs first, then the rest of the node", () => {
            assert.deepStrictEqual(resolvePins(onNode1(2), isolatedHost()), [[6], [7]]);
            assert.deepStrictEqual(resolvePins(onNode1(3), isolatedHost()), [[6], [7], [4]]);
        });
        it("skips isolated CPUs other guests' vCPUs hold", () => {
            assert.deepStrictEqual(resolvePins(onNode1(2), isolatedHost({ others: [{ name: "o", uuid: "u", vcpuCpus: [6] }] })), [[7], [4]]);
        });
        it("still leaves the guest's own emulator CPU for last", () => {
            assert.deepStrictEqual(resolvePins(onNode1(2, { emulatorPin: [6] }), isolatedHost()), [[7], [4]]);
        });
        it("keeps an earlier choice that is still free, isolated or not", () => {
            assert.deepStrictEqual(resolvePins(onNode1(2), isolatedHost(), [[4], [5]]), [[4], [5]]);
        });
    });
});

describe("NumaPinnedGuest emulator on a node whose CPUs are all isolated", () => {
    /** The lab's shape after KernelCmdline isolatedCpus "2-3": every CPU of node 1 isolated. */
    const node1Isolated = { ...facts, isolatedCpus: [2, 3] };
    const guest = (more: Record<string, unknown> = {}) => parse({ ...base, cpuPins: "auto", emulatorPin: undefined, ...more });

    it("a huge page guest without emulatorPin gets its emulator on its own vCPU CPUs, and the reason", () => {
        const i = guest();
        const pins = resolvePins(i, host({ facts: node1Isolated }));
        const emulator = resolveEmulatorPin(i, pins, node1Isolated);
        assert.deepStrictEqual(emulator.cpus, [2, 3]);
        assert.match(emulator.reason ?? "", /^the emulator shares the guest's vCPU CPUs 2-3: every CPU of node\(s\) 1 \(2-3\) is isolated/);
        assert.deepStrictEqual(parseDomainXml(buildDomainXml(wantedSpec(i, pins, [], [], emulator.cpus), "o")).spec.emulatorPin, [2, 3]);
    });
    it("leaves the emulator unpinned when the node keeps a CPU that is not isolated, or the guest has no huge pages", () => {
        assert.deepStrictEqual(resolveEmulatorPin(guest(), [[2], [3]], { ...facts, isolatedCpus: [3] }), { cpus: null, reason: null });
        assert.deepStrictEqual(resolveEmulatorPin(guest(), [[2], [3]], facts), { cpus: null, reason: null });
        assert.deepStrictEqual(resolveEmulatorPin(guest({ hugepages: undefined }), [[2], [3]], node1Isolated), { cpus: null, reason: null });
    });
    it("keeps an emulatorPin the inputs give, with no reason", () => {
        assert.deepStrictEqual(resolveEmulatorPin(guest({ emulatorPin: [0, 2] }), [[2], [3]], node1Isolated), { cpus: [0, 2], reason: null });
    });
});

describe("NumaPinnedGuest spec, XML and read-back", () => {
    const i = parse({
        ...base,
        iothreads: 1,
        iothreadPins: [[3]],
        disks: [{ path: "/var/lib/libvirt/images/g1.img", target: "vda", iothread: 1 }],
        interfaces: [{ network: "default", queues: 2, rxQueueSize: 1024 }, { hostdevVf: { pf: "eth1", vf: 0 }, vlan: 10 }],
    });
    const wanted = wantedSpec(i, [[2], [3]], [null, "0000:01:10.0"]);

    it("builds XML that libvirt's virt-xml-validate accepts", () => {
        const dir = fs.mkdtempSync(path.join(os.tmpdir(), "kvmtune-guest-"));
        const file = path.join(dir, "g1.xml");
        fs.writeFileSync(file, buildDomainXml(wanted, "NumaPinnedGuest g1 (kvmtune/test)"));
        const r = spawnSync("virt-xml-validate", [file, "domain"], { encoding: "utf8" });
        fs.rmSync(dir, { recursive: true, force: true });
        assert.strictEqual(r.status, 0, r.stdout + r.stderr);
    }).timeout(60_000);

    it("reads back a host that matches as the inputs themselves: no diff", async () => {
        const seen = parseDomainXml(buildDomainXml(wanted, "o")).spec;
        const back = inputsFromHost(i, wanted, seen, true, true);
        assert.deepStrictEqual(back, i);
        assert.strictEqual((await provider.diff("id", { ...back, owner: "o" }, { ...i, owner: "o" })).changes, false);
    });

    it("reads back a pin changed behind our back as that field only, a live change", async () => {
        const seen = { ...parseDomainXml(buildDomainXml(wanted, "o")).spec, vcpuPins: [[3], [3]] };
        const back = inputsFromHost(i, wanted, seen, true, true);
        assert.deepStrictEqual(back.cpuPins, [[3], [3]]);
        assert.deepStrictEqual({ ...back, cpuPins: i.cpuPins }, i);
        const d = await provider.diff("id", { ...back, owner: "o" }, { ...i, owner: "o" });
        assert.deepStrictEqual([d.changes, d.replaces], [true, []]);
    });

    it("keeps auto pins and a VF named by its PF when the host has what they resolved to", () => {
        const a = parse({ ...base, cpuPins: "auto" });
        const w = wantedSpec(a, [[3], [2]]);
        assert.strictEqual(inputsFromHost(a, w, parseDomainXml(buildDomainXml(w, "o")).spec, true, true).cpuPins, "auto");
        assert.deepStrictEqual(inputsFromHost(i, wanted, parseDomainXml(buildDomainXml(wanted, "o")).spec, true, true).interfaces, i.interfaces);
    });

    it("reports what the running guest lacks from its definition", () => {
        const live = parseDomainXml(buildDomainXml(wanted, "o")).spec;
        assert.deepStrictEqual(pendingRestartOf(wanted, live), []);
        assert.deepStrictEqual(pendingRestartOf({ ...wanted, memoryMiB: 128, disks: [] }, live), ["memoryMiB", "disks"]);
        // A running guest keeps its memory binding in preferred mode until it restarts; strict moves live.
        const preferred = { ...wanted, numa: { nodeset: [1], mode: "preferred" } } as GuestSpec;
        const preferredLive = parseDomainXml(buildDomainXml(preferred, "o")).spec;
        assert.deepStrictEqual(pendingRestartOf({ ...preferred, numa: { nodeset: [0], mode: "preferred" } } as GuestSpec, preferredLive), ["nodeset"]);
        assert.deepStrictEqual(pendingRestartOf({ ...wanted, numa: { nodeset: [0], mode: "strict" } } as GuestSpec, live), []);
    });
});
