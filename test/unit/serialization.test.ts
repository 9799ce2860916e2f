/**
 * Pulumi stores each dynamic resource's provider as serialized JavaScript and runs that copy for
 * delete and refresh. Each provider must survive serializeFunction and still work after it.
 */
import * as assert from "assert";
import * as pulumi from "@pulumi/pulumi";
import { lazyProvider } from "../../resources/lazyProvider";
import { goodConnection, throwawayKey } from "../helpers/fixtures";
// eslint-disable-next-line @typescript-eslint/no-require-imports
const requireFromString: (code: string) => { handler: () => pulumi.dynamic.ResourceProvider } = require("require-from-string");

/** Each provider with inputs it accepts (the connection is added). */
const PROVIDERS: Record<string, Record<string, unknown>> = {
    hostFacts: {},
    hugepagePool: { pageSize: "2M", nodes: { "0": 8 } },
    blockElevator: { device: "vdb", scheduler: "mq-deadline", tunables: { read_expire: 100 } },
    numaPinnedGuest: { name: "g1", vcpus: 2, memoryMiB: 64, numaNode: 1, cpuPins: [2, 3], hugepages: "2M" },
    vhostNetwork: { name: "vhnet0", bridge: "kvbr0", uplink: "kvdummy0", queues: 2, rxQueueSize: 1024 },
    sriovNic: { pf: "enp65s0", numVfs: 4, vfs: [{ vf: 0, mac: "52:54:00:aa:bb:01", vlan: 100 }], libvirtNetwork: "sriov-pool" },
};

describe("provider serialization", () => {
    for (const [name, valid] of Object.entries(PROVIDERS)) {
        it(`${name}: serializes small, without zod or keys, and checks after deserialization`, async () => {
            const shim = lazyProvider(`kvmtune/providers/${name}`);
            const serialized = await pulumi.runtime.serializeFunction(() => shim, { allowSecrets: false });
            assert.ok(serialized.text.length < 4096, `serialized provider is ${serialized.text.length} bytes`);
            assert.ok(!/zod|node-ssh|ssh2/.test(serialized.text), "heavy modules captured in the provider closure");
            assert.ok(!serialized.text.includes(throwawayKey().privateKey.split("\n")[1]));

            // Exactly what the dynamic provider host does with the stored text.
            const revived = requireFromString(serialized.text).handler();
            const bad = await revived.check!({}, { ...valid, connection: goodConnection({ port: 0 }) });
            assert.deepStrictEqual(bad.failures?.map((f) => f.property), ["connection.port"]);
            const good = await revived.check!({}, { ...valid, connection: goodConnection() });
            assert.strictEqual(good.failures, undefined);
        });
    }
});
