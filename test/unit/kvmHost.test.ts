/**
 * KvmHost: the cross-resource checks (what no single resource can see) and the component's
 * children as a program declares them (names, parents, guests after their pools).
 */
import * as assert from "assert";
import * as pulumi from "@pulumi/pulumi";
import { ConnectionInput, KvmHost } from "../../resources";
import { autoPinShortfalls, hugepageShortfalls, overlappingPins, remoteVfs } from "../../resources/kvmHostChecks";
import { goodConnection } from "../helpers/fixtures";

describe("KvmHost cross-checks", () => {
    it("finds a CPU that two guests' vCPUs are pinned to, in every CPU set form", () => {
        assert.deepStrictEqual(overlappingPins([{ name: "a", cpuPins: [2, 3] }, { name: "b", cpuPins: ["1-2"] }]), [
            "CPU 2 is pinned to the vCPUs of both guest a and guest b",
        ]);
        assert.deepStrictEqual(overlappingPins([{ name: "a", cpuPins: [[0, 1]] }, { name: "b", cpuPins: [2, "3"] }]), []);
        // auto pins are the provider's to choose among free CPUs: nothing to compare here.
        assert.deepStrictEqual(overlappingPins([{ name: "a", cpuPins: "auto" }, { name: "b", cpuPins: "auto" }]), []);
    });

    it("refuses an emulator or I/O thread pinned on another declared guest's vCPU CPUs, naming field, CPUs and guest", () => {
        const a = { name: "a", cpuPins: [2, 3] };
        assert.deepStrictEqual(overlappingPins([a, { name: "b", cpuPins: [1], emulatorPin: "0,2", iothreadPins: ["2-3", 0] }]), [
            "guest b emulatorPin: CPU 2 is pinned to the vCPUs of guest a; give the thread CPUs no other guest's vCPUs use",
            "guest b iothreadPins.0: CPU 2,3 are pinned to the vCPUs of guest a; give the thread CPUs no other guest's vCPUs use",
        ]);
        // A guest's threads on its own vCPUs' CPUs, or on CPUs no guest's vCPUs hold, are its own affair.
        assert.deepStrictEqual(overlappingPins([{ ...a, emulatorPin: "2" }, { name: "b", cpuPins: [1], emulatorPin: "0", iothreadPins: [[0, 1]] }]), []);
    });

    it("finds auto-pinned guests that cannot all get CPUs of their node, naming them and the guests whose pins hold CPUs", () => {
        const nodes = [{ id: 0, cpus: [0, 1] }, { id: 1, cpus: [2, 3] }];
        const auto = (name: string, vcpus: number, numaNode = 1) => ({ name, vcpus, numaNode, cpuPins: "auto" });
        // The new user's run: two 2-vCPU guests on node 1, which has 2 CPUs.
        assert.deepStrictEqual(autoPinShortfalls([auto("a", 2), auto("b", 2)], nodes), [
            "node 1 has 2 CPU(s) (2,3): guests a (2 vCPUs), b (2 vCPUs) with cpuPins auto need 4 CPUs no other guest holds, 2 remain",
        ]);
        // Explicit pins of another guest take CPUs from the auto guests.
        assert.deepStrictEqual(autoPinShortfalls([{ name: "db", vcpus: 1, numaNode: 1, cpuPins: [3] }, auto("a", 2)], nodes), [
            "node 1 has 2 CPU(s) (2,3), guest db pins 3: guest a (2 vCPUs) with cpuPins auto need 2 CPUs no other guest holds, 1 remain",
        ]);
        // Guests that fit, on one node or on two, are no problem.
        assert.deepStrictEqual(autoPinShortfalls([auto("a", 1), auto("b", 1), auto("c", 2, 0)], nodes), []);
    });

    it("finds guests that need more huge page memory on a node than the pools give", () => {
        const guests = [
            { name: "db", memoryMiB: 96, numaNode: 1, hugepages: "2M" },
            { name: "web", memoryMiB: 64, nodeset: "1", hugepages: "2M" },
            { name: "plain", memoryMiB: 4096, numaNode: 1 },
        ];
        assert.deepStrictEqual(hugepageShortfalls(guests, [{ pageSize: "2M", nodes: { "0": 64, "1": 64 } }]), [
            "node 1: guests db, web need 160 MiB of 2M huge pages, the pools declared for this host give 128 MiB",
        ]);
        assert.deepStrictEqual(hugepageShortfalls(guests, [{ pageSize: "2M", nodes: { "1": 80 } }]), []);
        // No pool of that size at all: every MiB is missing.
        assert.match(hugepageShortfalls([{ name: "g", memoryMiB: 1024, numaNode: 0, hugepages: "1G" }], [])[0], /give 0 MiB/);
        // `default` is the host's default size: unknown before the facts, then counted as that size.
        const byDefault = [{ name: "d", memoryMiB: 2048, numaNode: 0, hugepages: "default" }];
        const twoMeg = [{ pageSize: "2M", nodes: { "0": 1024 } }];
        assert.deepStrictEqual(hugepageShortfalls(byDefault, twoMeg), []);
        assert.deepStrictEqual(hugepageShortfalls(byDefault, twoMeg, "2M"), []);
        assert.deepStrictEqual(hugepageShortfalls(byDefault, twoMeg, "1G"), ["node 0: guests d need 2048 MiB of 1G huge pages, the pools declared for this host give 0 MiB"]);
        // A pool whose size is not known yet (an Output) is left to the provider's own check.
        assert.deepStrictEqual(hugepageShortfalls(guests, [{ pageSize: "2M", nodes: pulumi.output({ "1": 1 }) }]), []);
    });

    it("warns about a VF on another NUMA node than its guest", () => {
        const nics = [{ name: "enp33s0", numaNode: 0 }, { name: "enp65s0", numaNode: 1 }];
        const guest = (pf: string) => ({ name: "g", numaNode: 1, interfaces: [{ network: "tuned" }, { hostdevVf: { pf, vf: 2 } }] });
        assert.deepStrictEqual(remoteVfs([guest("enp65s0")], nics), []);
        assert.deepStrictEqual(remoteVfs([guest("enp33s0")], nics), [
            "guest g interface 1: VF 2 of enp33s0 sits on NUMA node 0, the guest on node 1: its traffic crosses the interconnect",
        ]);
    });
});

describe("KvmHost as a program declares it", function () {
    this.timeout(30_000);
    const declared: Array<{ type: string; name: string; parent?: string; inputs: Record<string, unknown> }> = [];
    before(() => {
        pulumi.runtime.setMocks(
            {
                newResource: (args) => {
                    declared.push({ type: args.type, name: args.name, inputs: args.inputs });
                    // The host's facts: node 0 with CPUs 0-1, node 1 with CPUs 2-3, 1G default huge pages.
                    const nodes = [{ id: 0, cpus: [0, 1] }, { id: 1, cpus: [2, 3] }];
                    const facts = args.name.endsWith("-facts") ? { numaNodes: nodes, facts: { numaNodes: nodes, defaultHugepageSize: "1G" } } : {};
                    return { id: `${args.name}-id`, state: { ...args.inputs, ...facts } };
                },
                call: () => ({}),
            },
            "kvmtune",
            "unit",
            true,
        );
    });

    const connection = () => goodConnection() as unknown as ConnectionInput;

    it("declares one child per pool, elevator and guest, under the host's name", async () => {
        const host = new KvmHost("lab1", {
            connection: connection(),
            hugepagePools: [{ pageSize: "2M", nodes: { "0": 64, "1": 64 } }],
            elevators: [{ device: "/dev/disk/by-id/virtio-lab1-vdb", scheduler: "mq-deadline" }],
            sriovNics: [{ pf: "enp33s0", numVfs: 4 }],
            vhostNetworks: [{ name: "tuned", bridge: "kvmt-tuned" }],
            guests: [{ name: "demo-db", vcpus: 2, memoryMiB: 64, numaNode: 1, cpuPins: [2, 3], hugepages: "2M", interfaces: [{ network: "tuned" }] }],
        });
        const urnOf = (r: pulumi.Resource) => new Promise<string>((resolve) => r.urn.apply(resolve));
        await Promise.all([host, host.facts, ...Object.values(host.hugepagePools), ...Object.values(host.elevators), ...Object.values(host.sriovNics), ...Object.values(host.vhostNetworks), ...Object.values(host.guests)].map(urnOf));
        const names = declared.filter((d) => d.type.startsWith("pulumi-nodejs:dynamic/kvmtune")).map((d) => d.name).sort();
        assert.deepStrictEqual(names, ["lab1-elevator-virtio-lab1-vdb", "lab1-facts", "lab1-guest-demo-db", "lab1-hugepages-2M", "lab1-net-tuned", "lab1-sriov-enp33s0"]);
        assert.ok(declared.some((d) => d.type === "kvmtune:index:KvmHost" && d.name === "lab1"));
        const guest = declared.find((d) => d.name === "lab1-guest-demo-db")!;
        // Every child got the host's connection, sent as a secret (it holds the key).
        const SECRET_SIG = "4dabf18193072939515e22adb298388d";
        const sent = guest.inputs.connection as Record<string, unknown>;
        assert.strictEqual(sent[SECRET_SIG], "1b47061264138c4ac30d75fd1eb44270");
        assert.strictEqual((sent.value as Record<string, unknown>).host, "127.0.0.1");
        assert.deepStrictEqual(Object.keys(host.guests), ["demo-db"]);
    });

    it("refuses two auto-pinned guests that cannot both fit their node once the host's CPUs are known, naming both", async () => {
        const host = new KvmHost("busy", {
            connection: connection(),
            guests: [
                { name: "a", vcpus: 2, memoryMiB: 64, numaNode: 1, cpuPins: "auto" },
                { name: "b", vcpus: 2, memoryMiB: 64, numaNode: 1 },
            ],
        });
        // Each guest takes its connection through the check: its registration fails with the check's message.
        for (const g of Object.values(host.guests)) {
            const urn = (g.urn as unknown as { promise(): Promise<string> }).promise();
            await assert.rejects(
                urn,
                (e: Error) =>
                    e.message.includes("KvmHost busy: the guests do not fit the host") &&
                    e.message.includes("node 1 has 2 CPU(s) (2,3): guests a (2 vCPUs), b (2 vCPUs) with cpuPins auto need 4 CPUs no other guest holds, 2 remain"),
            );
        }
        const names = declared.filter((d) => d.name.startsWith("busy-guest")).map((d) => d.name);
        assert.deepStrictEqual(names, [], "a guest was declared although the auto pins cannot fit");
    });

    it("refuses contradicting tuning before declaring anything, listing every problem", () => {
        const before = declared.length;
        assert.throws(
            () =>
                new KvmHost("bad", {
                    connection: connection(),
                    hugepagePools: [{ pageSize: "2M", nodes: { "1": 16 } }],
                    guests: [
                        { name: "a", vcpus: 2, memoryMiB: 64, numaNode: 1, cpuPins: [2, 3], hugepages: "2M" },
                        { name: "b", vcpus: 1, memoryMiB: 64, numaNode: 1, cpuPins: [3] },
                        { name: "a", vcpus: 1, memoryMiB: 64, numaNode: 0 },
                    ],
                }),
            (e: Error) =>
                /KvmHost bad: the tuning contradicts itself/.test(e.message) &&
                e.message.includes("CPU 3 is pinned to the vCPUs of both guest a and guest b") &&
                e.message.includes("node 1: guests a need 64 MiB of 2M huge pages, the pools declared for this host give 32 MiB") &&
                e.message.includes("two of guest a"),
        );
        assert.strictEqual(declared.length, before, "a child was declared before the checks");
    });

    it("declares a KernelCmdline child, and a HostReboot fed by it only when reboot is given", async () => {
        const urnOf = (r: pulumi.Resource) => new Promise<string>((resolve) => r.urn.apply(resolve));
        const plain = new KvmHost("cmd1", { connection: connection(), kernelCmdline: { iommu: "pt" } });
        assert.ok(plain.kernelCmdline, "no KernelCmdline child");
        assert.strictEqual(plain.reboot, undefined, "a HostReboot without reboot: nothing reboots by default");
        const rebooting = new KvmHost("cmd2", { connection: connection(), kernelCmdline: { iommu: "pt" }, reboot: { policy: "whenRequired", guests: "shutdown" } });
        await Promise.all([plain.kernelCmdline!, rebooting.kernelCmdline!, rebooting.reboot!].map(urnOf));
        const names = declared.filter((d) => /^cmd[12]-/.test(d.name)).map((d) => `${d.type.replace("pulumi-nodejs:dynamic/kvmtune:", "")} ${d.name}`).sort();
        assert.deepStrictEqual(names, ["HostFacts cmd1-facts", "HostFacts cmd2-facts", "HostReboot cmd2-reboot", "KernelCmdline cmd1-cmdline", "KernelCmdline cmd2-cmdline"]);
        const reboot = declared.find((d) => d.name === "cmd2-reboot")!;
        assert.strictEqual(reboot.inputs.policy, "whenRequired");
        assert.strictEqual(reboot.inputs.guests, "shutdown");
    });

    it("refuses reboot without kernelCmdline or a persisted 1G pool", () => {
        assert.throws(() => new KvmHost("cmd3", { connection: connection(), reboot: { policy: "whenRequired" } }), /KvmHost cmd3: the tuning contradicts itself:\n  reboot is given without kernelCmdline/);
        const runtimeOnly = [{ pageSize: "1G" as const, nodes: { "1": 1 }, persist: false }];
        assert.throws(() => new KvmHost("cmd4", { connection: connection(), hugepagePools: runtimeOnly, reboot: { policy: "whenRequired" } }), /reboot is given without kernelCmdline or a 1G hugepage pool that persists/);
    });

    it("puts a persisted 1G pool's count on the host's KernelCmdline, the one owner of the command line", async () => {
        const urnOf = (r: pulumi.Resource) => new Promise<string>((resolve) => r.urn.apply(resolve));
        const host = new KvmHost("gig1", { connection: connection(), kernelCmdline: { iommu: "pt" }, hugepagePools: [{ pageSize: "1G", nodes: { "0": 1, "1": 1 } }] });
        const alone = new KvmHost("gig2", { connection: connection(), hugepagePools: [{ pageSize: "1G", total: 2 }, { pageSize: "2M", total: 8 }] });
        const runtime = new KvmHost("gig3", { connection: connection(), hugepagePools: [{ pageSize: "1G", total: 2, persist: false }] });
        await Promise.all([host.kernelCmdline!, alone.kernelCmdline!, host.hugepagePools["1G"], alone.hugepagePools["1G"], runtime.hugepagePools["1G"]].map(urnOf));
        const inputsOf = (name: string) => declared.find((d) => d.name === name)!.inputs;
        assert.strictEqual(inputsOf("gig1-cmdline").iommu, "pt", "the declared arguments stay");
        assert.deepStrictEqual(inputsOf("gig1-cmdline").hugepages1G, { "0": 1, "1": 1 });
        assert.strictEqual(inputsOf("gig2-cmdline").hugepages1G, 2, "a KernelCmdline is declared for the pool alone");
        assert.strictEqual(runtime.kernelCmdline, undefined, "a pool that does not persist needs no command line");
        assert.throws(
            () => new KvmHost("gig4", { connection: connection(), kernelCmdline: { hugepages1G: 1 }, hugepagePools: [{ pageSize: "1G", total: 1 }] }),
            /kernelCmdline\.hugepages1G is set and so is a 1G hugepage pool that persists: give the count once, in hugepagePools/,
        );
    });
});
