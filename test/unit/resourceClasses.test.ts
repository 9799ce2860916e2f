/**
 * The resource classes as a program sees them: every output a class asks the engine for is
 * declared on the class (so a program can read it) and is a real Output (a class field compiled
 * with define semantics would reset it to undefined after the constructor), and the key is a
 * secret before it leaves the program.
 */
import * as assert from "assert";
import * as pulumi from "@pulumi/pulumi";
import { BlockElevator, ConnectionInput, HostFacts, HugepagePool, KernelCmdline, KvmHost, NumaPinnedGuest, SriovNic, VhostNetwork } from "../../resources";
import { secretConnection } from "../../resources/connectionInput";
import { goodConnection } from "../helpers/fixtures";

describe("resource classes", function () {
    this.timeout(30_000);
    before(() => {
        pulumi.runtime.setMocks(
            {
                newResource: (args) => ({ id: `${args.name}-id`, state: args.inputs }),
                call: () => ({}),
            },
            "kvmtune",
            "unit",
            true,
        );
    });

    /**
     * The outputs a resource asks the engine for: the values still unknown in a preview (the mocks
     * run as one and echo the inputs), which `pulumi preview` prints as `[unknown]`. Built from
     * required inputs only, so no input is among them.
     */
    async function outputSlots(resource: pulumi.CustomResource): Promise<string[]> {
        const slots: string[] = [];
        for (const [k, v] of Object.entries(resource)) {
            if (k === "urn" || k === "id" || !pulumi.Output.isInstance(v)) continue;
            if (!(await (v as unknown as { isKnown: Promise<boolean> }).isKnown)) slots.push(k);
        }
        return slots.sort();
    }

    /** Names typed as the class's own members: one it does not declare does not compile. */
    const declared = <T>(_resource: T, names: Array<keyof T & string>) => [...names].sort();

    it("declares every output it asks the engine for, each an Output", async () => {
        const connection = goodConnection() as unknown as ConnectionInput;
        const facts = new HostFacts("f", { connection });
        const pool = new HugepagePool("p", { connection, pageSize: "2M" });
        const elevator = new BlockElevator("e", { connection, device: "vdb", scheduler: "none" });
        const network = new VhostNetwork("n", { connection, name: "vhnet0", bridge: "kvbr0" });
        // networkName only with a network: a preview of a NIC without one shows no `+ networkName: [unknown]`.
        const nic = new SriovNic("s", { connection, pf: "enp65s0", numVfs: 2 });
        const pooled = new SriovNic("s2", { connection, pf: "enp66s0", numVfs: 2, libvirtNetwork: "sriov-pool" });
        const guest = new NumaPinnedGuest("g", { connection, name: "g1", vcpus: 1, memoryMiB: 64 });
        const cmdline = new KernelCmdline("k", { connection, iommu: "pt" });
        const cases: Array<[pulumi.CustomResource, string[]]> = [
            [facts, declared(facts, ["facts", "hostname", "kernel", "numaNodes", "hugepageSizes", "blockDevices", "nics", "vhostNet", "libvirtVersion", "platform"])],
            [pool, declared(pool, ["pools", "totalPages", "freePages", "original", "rebootRequired", "drift"])],
            [elevator, declared(elevator, ["kernelName", "activeScheduler", "availableSchedulers", "currentTunables", "currentNrRequests", "currentReadAheadKb", "original", "drift"])],
            [network, declared(network, ["uuid", "bridgeName", "vhostNetAvailable", "guestDefaults", "active", "autostart", "owned", "drift"])],
            [nic, declared(nic, ["pfName", "pfPciAddress", "numaNode", "totalVfs", "vfDevices", "original", "bootUnit", "drift"])],
            [pooled, declared(pooled, ["pfName", "pfPciAddress", "numaNode", "totalVfs", "vfDevices", "original", "networkName", "bootUnit", "drift"])],
            [guest, declared(guest, ["uuid", "state", "resolvedCpuPins", "resolvedEmulatorPin", "emulatorPinReason", "pendingRestart", "owned", "adopted", "vfAddresses", "interfaceDefaults"])],
            [cmdline, declared(cmdline, ["args", "bootloader", "bootCmdline", "running", "rebootRequired", "notInEffect", "retired", "original", "drift"])],
        ];
        for (const [resource, outputs] of cases) {
            assert.deepStrictEqual(await outputSlots(resource), outputs, `${resource.constructor.name}: outputs asked for vs declared`);
        }
        // Not asked for, yet still an Output a program can read.
        assert.ok(pulumi.Output.isInstance(nic.networkName));
        assert.strictEqual(await (nic.networkName as unknown as { promise(): Promise<unknown> }).promise(), undefined);
    });

    it("KvmHost exposes its facts and its children by key, and applied as an Output", async () => {
        const connection = goodConnection() as unknown as ConnectionInput;
        const host = new KvmHost("h", {
            connection,
            hugepagePools: [{ pageSize: "2M", nodes: { "1": 64 } }],
            elevators: [{ device: "vdb", scheduler: "none" }],
            sriovNics: [{ pf: "enp65s0", numVfs: 2 }],
            vhostNetworks: [{ name: "tuned", bridge: "kvbr0" }],
            guests: [{ name: "g1", vcpus: 1, memoryMiB: 64, numaNode: 1, cpuPins: [2], interfaces: [{ network: "tuned" }] }],
        });
        assert.ok(host.facts instanceof HostFacts);
        assert.ok(host.hugepagePools["2M"] instanceof HugepagePool, Object.keys(host.hugepagePools).join());
        assert.ok(host.elevators.vdb instanceof BlockElevator, Object.keys(host.elevators).join());
        assert.ok(host.sriovNics.enp65s0 instanceof SriovNic, Object.keys(host.sriovNics).join());
        assert.ok(host.vhostNetworks.tuned instanceof VhostNetwork, Object.keys(host.vhostNetworks).join());
        assert.ok(host.guests.g1 instanceof NumaPinnedGuest, Object.keys(host.guests).join());
        // Its value needs the children's outputs, which the mocks leave unset: what it holds is
        // checked through the engine (test/e2e, the `hosts` stack output).
        assert.ok(pulumi.Output.isInstance(host.applied), "applied is an Output");
    });

    it("KvmHost stores only hostname as its output: applied repeats the children's outputs, which state holds already", () => {
        const registered: Array<{ resource: pulumi.ComponentResource; outputs: unknown }> = [];
        const proto = pulumi.ComponentResource.prototype as unknown as { registerOutputs(o?: unknown): void };
        const original = proto.registerOutputs;
        proto.registerOutputs = function (this: pulumi.ComponentResource, outputs?: unknown) {
            registered.push({ resource: this, outputs });
            return original.call(this, outputs);
        };
        try {
            const host = new KvmHost("stored", { connection: goodConnection() as unknown as ConnectionInput, elevators: [{ device: "vdb", scheduler: "none" }] });
            const mine = registered.filter((r) => r.resource === host);
            assert.strictEqual(mine.length, 1);
            assert.deepStrictEqual(Object.keys(mine[0].outputs as object), ["hostname"]);
            assert.ok(pulumi.Output.isInstance(host.applied), "applied is still an Output a program reads");
        } finally {
            proto.registerOutputs = original;
        }
    });

    it("BlockElevator's warning about a legacy scheduler name is attached to the elevator, not the stack", async () => {
        const warnings: Array<{ message: string; resource?: pulumi.Resource }> = [];
        const warn = pulumi.log.warn;
        pulumi.log.warn = (message: string, resource?: pulumi.Resource) => {
            warnings.push({ message, resource });
            return Promise.resolve();
        };
        try {
            const connection = goodConnection() as unknown as ConnectionInput;
            const elevator = new BlockElevator("legacy", { connection, device: "vdb", scheduler: "deadline" });
            await (pulumi.output("deadline") as unknown as { promise(): Promise<unknown> }).promise();
            await new Promise((r) => setImmediate(r));
            assert.strictEqual(warnings.length, 1, JSON.stringify(warnings.map((w) => w.message)));
            assert.strictEqual(warnings[0].message, 'scheduler "deadline" is a single-queue name from before blk-mq; using mq-deadline');
            assert.strictEqual(warnings[0].resource, elevator);
        } finally {
            pulumi.log.warn = warn;
        }
    });

    it("makes the private key a secret even when the program passed plain text", async () => {
        const wrapped = secretConnection(goodConnection() as unknown as ConnectionInput);
        assert.strictEqual(await pulumi.isSecret(pulumi.output(wrapped.privateKey)), true);
        assert.strictEqual(await pulumi.isSecret(pulumi.output(wrapped.host)), false, "only the key is secret");
    });
});

describe("HostFacts' outputs beside facts", function () {
    this.timeout(30_000);
    const facts = {
        hostname: "h1",
        kernel: "6.1.0",
        numaNodes: [{ id: 0, cpus: [0, 1], memoryMiB: 1024, hugepages: {} }],
        hugepageSizes: ["2M", "1G"],
        blockDevices: [{ name: "vdb", scheduler: "none", schedulers: ["none", "mq-deadline"] }],
        nics: [{ name: "eth0", mac: "52:54:00:00:00:01" }],
        vhostNet: { device: true, moduleLoaded: true },
        libvirt: { version: "9.0.0", active: true },
    };
    const stored: Array<Record<string, unknown>> = [];
    before(() => {
        // An `up` (not a preview), where the engine answers with what the provider stored.
        pulumi.runtime.setMocks(
            {
                newResource: (args) => {
                    const state = { connection: args.inputs.connection, facts };
                    stored.push(state);
                    return { id: "h1/m", state };
                },
                call: () => ({}),
            },
            "kvmtune",
            "unit",
            false,
        );
    });

    it("reads hostname, numaNodes, blockDevices, ... out of the one facts object state holds", async () => {
        const r = new HostFacts("f", { connection: goodConnection() as unknown as ConnectionInput });
        const value = <T>(o: pulumi.Output<T>) => (o as unknown as { promise(): Promise<T> }).promise();
        assert.deepStrictEqual(await value(r.facts), facts);
        assert.strictEqual(await value(r.hostname), "h1");
        assert.strictEqual(await value(r.kernel), "6.1.0");
        assert.deepStrictEqual(await value(r.numaNodes), facts.numaNodes);
        assert.deepStrictEqual(await value(r.hugepageSizes), ["2M", "1G"]);
        assert.deepStrictEqual(await value(r.blockDevices), facts.blockDevices);
        assert.deepStrictEqual(await value(r.nics), facts.nics);
        assert.strictEqual(await value(r.vhostNet), true);
        assert.strictEqual(await value(r.libvirtVersion), "9.0.0");
    });
});
