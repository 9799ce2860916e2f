/**
 * What a user reads when an input is wrong: the bad key of a record and the rule for keys, every
 * allowed form of a union when the value fits none, the closest form's own complaint when the
 * value clearly meant it, one path spelling in stack config, and names judged alike by every
 * resource (one set of patterns, resources/patterns.ts).
 */
import * as assert from "assert";
import { planFleet } from "../../fleet/config";
import { provider as hugepagePool } from "../../resources/providers/hugepagePool";
import { provider as guest } from "../../resources/providers/numaPinnedGuest";
import { provider as sriovNic } from "../../resources/providers/sriovNic";
import { provider as vhostNetwork } from "../../resources/providers/vhostNetwork";
import { goodConnection, throwawayKey } from "../helpers/fixtures";

type Failures = Array<{ property: string; reason: string }>;

async function guestFailures(over: Record<string, unknown>): Promise<Failures> {
    const r = await guest.check({}, { connection: goodConnection(), name: "g1", vcpus: 2, memoryMiB: 64, numaNode: 1, ...over });
    return r.failures ?? [];
}

/** The one failure at `property`, failing the test when there is none or more. */
function only(failures: Failures, property: string): string {
    const at = failures.filter((f) => f.property === property);
    assert.strictEqual(at.length, 1, `one failure at ${property}: ${JSON.stringify(failures)}`);
    return at[0].reason;
}

describe("validation messages say what is allowed", () => {
    it("a bad key of a record names the key and the rule for keys (HugepagePool nodes)", async () => {
        const r = await hugepagePool.check({}, { connection: goodConnection(), pageSize: "2M", nodes: { node0: 8 } });
        assert.strictEqual(only(r.failures ?? [], "nodes"), 'nodes: got the key "node0"; every key must be a NUMA node number');
    });

    it("cpuPins that fit no form name both forms: auto and the list", async () => {
        for (const cpuPins of [5, "auot", { 0: 2 }]) {
            const reason = only(await guestFailures({ cpuPins }), "cpuPins");
            assert.match(reason, /must be "auto" or a list of CPU sets, one per vCPU \(each a CPU number, a list of CPU numbers, or a CPU list such as "2-3,6"\)$/);
        }
    });

    it("a NIC that fits no form names both: network and hostdevVf", async () => {
        for (const nic of [{ bridge: "br0" }, {}, 5, { hostdevvf: { pf: "eth0", vf: 1 } }]) {
            const reason = only(await guestFailures({ interfaces: [nic] }), "interfaces.0");
            assert.match(reason, /\{network: "<name>"\}.*\{hostdevVf: \{pf, vf\} or \{pciAddress\}\}/, reason);
        }
    });

    it("a value that clearly meant one form gets that form's own complaint, at its full path", async () => {
        assert.match(only(await guestFailures({ interfaces: [{ network: 5 }] }), "interfaces.0.network"), /got 5; .*expected string/);
        assert.match(only(await guestFailures({ interfaces: [{ hostdevVf: { pf: "eth0" } }] }), "interfaces.0.hostdevVf.vf"), /got nothing; .*expected number/);
        // And a VF given neither way names both ways.
        assert.match(only(await guestFailures({ interfaces: [{ hostdevVf: {} }] }), "interfaces.0.hostdevVf"), /\{pf: .*\} or \{pciAddress: /);
    });

    it("ring sizes and CPU sets list what they take", async () => {
        assert.strictEqual(
            only(await guestFailures({ interfaces: [{ network: "n", rxQueueSize: 3 }] }), "interfaces.0.rxQueueSize"),
            "interfaces.0.rxQueueSize: got 3; must be one of 256, 512, 1024",
        );
        assert.match(only(await guestFailures({ emulatorPin: {} }), "emulatorPin"), /must be a CPU number, a list of CPU numbers, or a CPU list such as "2-3,6"$/);
    });

    it("stack config paths have one spelling: [n] for list items, .name for fields", () => {
        const key = throwawayKey();
        const refusal = (raw: unknown) => {
            try {
                planFleet(raw);
            } catch (e) {
                return (e as Error).message.split("\n").slice(1).map((l) => l.trim());
            }
            assert.fail("the config was accepted");
        };
        const lines = refusal({
            hosts: [{ name: "kvm1", host: "10.0.0.5", privateKey: key.privateKey, hostKey: key.fingerprint }],
            tuning: {
                guests: [{ name: "g1", vcpus: 2, memoryMiB: 64, numaNode: 1, cpuPins: [2, "x"], interfaces: [{ network: "n", mac: "zz" }] }],
                hugepagePools: [{ pageSize: "2M", nodes: { node0: 8 } }],
            },
        });
        assert.ok(lines.includes('kvmtune:tuning.guests[0].cpuPins[1]: got "x"; must be a CPU number, a list of CPU numbers, or a CPU list such as "2-3,6"'), lines.join("\n"));
        assert.ok(lines.includes('kvmtune:tuning.guests[0].interfaces[0].mac: got "zz"; must be a MAC address such as 52:54:00:12:34:56'), lines.join("\n"));
        assert.ok(lines.includes('kvmtune:tuning.hugepagePools[0].nodes: got the key "node0"; every key must be a NUMA node number'), lines.join("\n"));
        for (const line of lines) assert.doesNotMatch(line.slice(0, line.indexOf(": ")), /\.\d/, `a .0 path: ${line}`);
        // The hosts list itself (parsed by the fleet's schema, not a resource's) spells paths the same way.
        const hostLines = refusal({ hosts: [{ name: "kvm1", host: "10.0.0.5", privateKey: key.privateKey, hostKey: key.fingerprint, port: "22" }] });
        assert.deepStrictEqual(hostLines, ['kvmtune:hosts[0].port: got "22"; Invalid input: expected number, received string']);
    });

    it("every resource judges interface names, PCI addresses and MACs alike", async () => {
        const sriovFailures = async (pf: string, mac?: string) =>
            ((await sriovNic.check({}, { connection: goodConnection(), pf, numVfs: 2, vfs: mac ? [{ vf: 0, mac }] : [] })).failures ?? []).map((f) => f.property);
        const guestVf = async (hostdevVf: Record<string, unknown>, mac?: string) =>
            (await guestFailures({ interfaces: [{ hostdevVf, ...(mac ? { mac } : {}) }] })).map((f) => f.property);
        const bridgeFailures = async (uplink: string) =>
            ((await vhostNetwork.check({}, { connection: goodConnection(), name: "tuned", bridge: "kvbr0", uplink })).failures ?? []).map((f) => f.property);
        for (const [name, ok] of [["enp65s0", true], ["eth0:1", false], ["a-very-long-name0", false], ["-eth0", false], ["eth/0", false]] as const) {
            assert.strictEqual((await sriovFailures(name)).length === 0, ok, `SriovNic pf ${name}`);
            assert.strictEqual((await guestVf({ pf: name, vf: 0 })).length === 0, ok, `NumaPinnedGuest pf ${name}`);
            assert.strictEqual((await bridgeFailures(name)).length === 0, ok, `VhostNetwork uplink ${name}`);
        }
        for (const [pci, ok] of [["0000:41:00.0", true], ["0000:41:0A.1", true], ["0000:41:00.8", false], ["41:00.0", false]] as const) {
            assert.strictEqual((await sriovFailures(pci)).length === 0, ok, `SriovNic pf ${pci}`);
            assert.strictEqual((await guestVf({ pciAddress: pci })).length === 0, ok, `NumaPinnedGuest pciAddress ${pci}`);
        }
        for (const [mac, ok] of [["52:54:00:12:34:56", true], ["52:54:00:AB:CD:EF", true], ["52:54:00:12:34", false], ["52-54-00-12-34-56", false]] as const) {
            assert.strictEqual((await sriovFailures("enp65s0", mac)).length === 0, ok, `SriovNic mac ${mac}`);
            assert.strictEqual((await guestVf({ pf: "enp65s0", vf: 0 }, mac)).length === 0, ok, `NumaPinnedGuest mac ${mac}`);
        }
    });
});
