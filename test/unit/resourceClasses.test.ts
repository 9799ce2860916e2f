/**
 * The resource classes as a program sees them: every declared output is a real Output (a class
 * field compiled with define semantics would reset it to undefined after the constructor), and the
 * key is a secret before it leaves the program.
 */
import * as assert from "assert";
import * as pulumi from "@pulumi/pulumi";
import { BlockElevator, ConnectionInput, HostFacts, HugepagePool, SriovNic, VhostNetwork } from "../../resources";
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

    it("exposes every declared output as an Output", async () => {
        const connection = goodConnection() as unknown as ConnectionInput;
        const cases: Array<[object, string[]]> = [
            [new HostFacts("f", { connection }), ["facts", "hostname", "kernel", "numaNodes", "hugepageSizes", "blockDevices", "nics", "vhostNet", "libvirtVersion"]],
            [new HugepagePool("p", { connection, pageSize: "2M", total: 8 }), ["pools", "totalPages", "freePages", "original", "rebootRequired"]],
            [new BlockElevator("e", { connection, device: "vdb", scheduler: "none" }), ["kernelName", "activeScheduler", "availableSchedulers", "currentTunables", "original"]],
            [
                new VhostNetwork("n", { connection, name: "vhnet0", bridge: "kvbr0", queues: 2 }),
                ["name", "uuid", "bridgeName", "vhostNetAvailable", "guestDefaults", "active", "autostart", "owned", "drift"],
            ],
            [new SriovNic("n", { connection, pf: "enp65s0", numVfs: 2 }), ["pfName", "pfPciAddress", "numaNode", "totalVfs", "vfDevices", "original", "networkName", "bootUnit"]],
        ];
        for (const [resource, outputs] of cases) {
            for (const name of outputs) {
                assert.ok(pulumi.Output.isInstance((resource as Record<string, unknown>)[name]), `${resource.constructor.name}.${name} is not an Output`);
            }
        }
    });

    it("makes the private key a secret even when the program passed plain text", async () => {
        const wrapped = secretConnection(goodConnection() as unknown as ConnectionInput);
        assert.strictEqual(await pulumi.isSecret(pulumi.output(wrapped.privateKey)), true);
        assert.strictEqual(await pulumi.isSecret(pulumi.output(wrapped.host)), false, "only the key is secret");
    });
});
