import * as assert from "assert";
import type { HostFactsData } from "../../resources/host/facts";
import { bootArgs, checkAgainstHost, hugepagePoolSchema, mountUnitName, provider } from "../../resources/providers/hugepagePool";
import { goodConnection } from "../helpers/fixtures";

const host: HostFactsData = {
    hostname: "lab1",
    machineId: "m",
    kernel: "6.1.0",
    cmdline: "",
    cpusOnline: [0, 1, 2, 3],
    hugepageSizes: ["2M"],
    numaNodes: [
        { id: 0, cpus: [0, 1], memoryMiB: 1496, hugepages: {} },
        { id: 1, cpus: [2, 3], memoryMiB: 1512, hugepages: {} },
    ],
    blockDevices: [],
    nics: [],
    vhostNet: { device: true, moduleLoaded: true },
    libvirt: { version: "9.0.0", active: true },
};

const parse = (i: Record<string, unknown>) => hugepagePoolSchema.parse({ connection: goodConnection(), ...i });

describe("HugepagePool inputs", () => {
    it("wants exactly one of nodes and total", async () => {
        for (const bad of [{ pageSize: "2M" }, { pageSize: "2M", total: 8, nodes: { "0": 8 } }]) {
            const r = await provider.check({}, { connection: goodConnection(), ...bad });
            assert.deepStrictEqual(r.failures?.map((f) => f.property), ["nodes"]);
            assert.match(r.failures![0].reason, /exactly one of nodes/);
        }
    });

    it("names the field and the allowed values", async () => {
        const r = await provider.check({}, { connection: goodConnection(), pageSize: "4M", nodes: { x: -1 }, mount: "rel/path" });
        const byField = Object.fromEntries((r.failures ?? []).map((f) => [f.property, f.reason]));
        assert.match(byField.pageSize, /"4M".*"2M".*"1G"/s);
        assert.ok(Object.keys(byField).some((k) => k.startsWith("nodes")), JSON.stringify(byField));
        assert.match(byField.mount, /absolute path/);
    });

    it("refuses, before the host changes, a node, size or page size the host lacks", () => {
        assert.deepStrictEqual(checkAgainstHost(parse({ pageSize: "2M", nodes: { "0": 64, "1": 64 } }), host), []);
        assert.match(checkAgainstHost(parse({ pageSize: "2M", nodes: { "2": 8 } }), host).join(), /no NUMA node 2; it has 0, 1/);
        assert.match(checkAgainstHost(parse({ pageSize: "2M", nodes: { "1": 800 } }), host).join(), /^nodes\.1: got 800 pages of 2M; node 1 has room for at most 756 pages of 2M \(its 1512 MiB\)$/);
        assert.match(checkAgainstHost(parse({ pageSize: "1G", total: 1 }), host).join(), /offers 2M/);
        assert.match(checkAgainstHost(parse({ pageSize: "2M", total: 2000 }), host).join(), /^total: got 2000 pages of 2M; lab1 has room for at most 1504 pages of 2M \(its 3008 MiB\)$/);
    });

    it("writes per-node boot arguments for 1G pools", () => {
        assert.strictEqual(bootArgs(parse({ pageSize: "1G", nodes: { "1": 2, "0": 1 } })), "hugepagesz=1G hugepages=0:1,1:2");
        assert.strictEqual(bootArgs(parse({ pageSize: "1G", total: 4 })), "hugepagesz=1G hugepages=4");
    });

    it("names mount units as systemd does", () => {
        assert.strictEqual(mountUnitName("/dev/hugepages"), "dev-hugepages.mount");
        assert.strictEqual(mountUnitName("/mnt/huge-1G"), "mnt-huge\\x2d1G.mount");
    });

    it("replaces on a page size change, updates in place otherwise", async () => {
        const olds = { connection: goodConnection(), pageSize: "2M", nodes: { "0": 8 } };
        assert.deepStrictEqual(await provider.diff("id", olds, { ...olds, nodes: { "0": 16 } }), { changes: true, replaces: [], deleteBeforeReplace: true });
        assert.deepStrictEqual((await provider.diff("id", olds, { ...olds, pageSize: "1G" })).replaces, ["pageSize"]);
        assert.strictEqual((await provider.diff("id", olds, { ...olds })).changes, false);
        assert.strictEqual((await provider.diff("id", olds, { ...olds, connection: goodConnection({ port: 2202 }) })).replaces?.length, 0);
    });
});
