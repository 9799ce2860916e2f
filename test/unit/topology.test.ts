/**
 * The topology picture: built from what a host reports (facts, domain XML, VF links, networks),
 * drawn as SVG, and looked at the way a person would, rendered by headless Chromium.
 */
import * as assert from "assert";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { AppliedView, topologyFromApplied } from "../../fleet/topology";
import { renderTopologySvg } from "../../fleet/topologySvg";
import type { HostFactsData } from "../../resources/host/facts";
import { cpuCellColours, screenshotSvg, svgSize } from "../helpers/chromium";
import { decodePng } from "../helpers/png";
import { labPlatform } from "../helpers/recordedPlatforms";

const facts: HostFactsData = {
    hostname: "lab1",
    machineId: "m",
    kernel: "6.1.0",
    cmdline: "",
    cpusOnline: [0, 1, 2, 3],
    isolatedCpus: [],
    hugepageSizes: ["2M", "1G"],
    defaultHugepageSize: "2M",
    numaNodes: [
        { id: 0, cpus: [0, 1], memoryMiB: 1496, hugepages: { "2M": { total: 64, free: 64, surplus: 0 }, "1G": { total: 0, free: 0, surplus: 0 } } },
        { id: 1, cpus: [2, 3], memoryMiB: 1512, hugepages: { "2M": { total: 64, free: 32, surplus: 0 }, "1G": { total: 0, free: 0, surplus: 0 } } },
    ],
    blockDevices: [],
    nics: [
        { name: "enp33s0", mac: "52:54:00:00:01:00", pciAddress: "0000:21:00.0", driver: "igb", numaNode: 0, sriovTotalVfs: 7, sriovNumVfs: 2, physfn: null },
        { name: "enp65s0", mac: "52:54:00:00:02:00", pciAddress: "0000:41:00.0", driver: "igb", numaNode: 1, sriovTotalVfs: 7, sriovNumVfs: 0, physfn: null },
        { name: "enp0s5", mac: "52:54:00:12:34:56", pciAddress: "0000:00:05.0", driver: "virtio_net", numaNode: null, sriovTotalVfs: null, sriovNumVfs: null, physfn: null },
    ],
    vhostNet: { device: true, moduleLoaded: true },
    libvirt: { version: "9.0.0", active: true },
    platform: labPlatform(),
} as HostFactsData;

describe("topology from the resources' outputs (what `up` draws: no SSH of its own)", () => {
    // The same host as above, as its KvmHost's children report it after `up`.
    const applied: AppliedView = {
        // Read when the pool was applied, before demo-db started on node 1: no page used yet.
        hugepagePools: { "2M": { "0": { total: 64, free: 64 }, "1": { total: 64, free: 64 } } },
        sriovNics: { enp33s0: { pf: "enp33s0", numaNode: 0, vfs: [{ vf: 1, pciAddress: "0000:21:10.2" }, { vf: 0, pciAddress: "0000:21:10.0" }] } },
        vhostNetworks: { tuned: { bridge: "kvmt-tuned", active: true } },
        guests: { "demo-db": { state: "running", cpuPins: [[2], [3]] }, web: { state: "shut off", cpuPins: [[0]] } },
    };
    const declared = [
        { name: "demo-db", vcpus: 2, memoryMiB: 64, numaNode: 1, cpuPins: "auto", hugepages: "2M", interfaces: [{ network: "tuned", queues: 2 }] },
        { name: "web", vcpus: 1, memoryMiB: 64, cpuPins: [[0]], emulatorPin: "0", interfaces: [{ hostdevVf: { pf: "enp33s0", vf: 1 } }] },
    ];
    // Facts as read before the pools were applied: the pools' own counts must win.
    const stale = structuredClone(facts);
    stale.numaNodes[1].hugepages["2M"] = { total: 0, free: 0, surplus: 0 };
    const t = topologyFromApplied(stale, applied, declared);

    it("shows the pins and state the guests read back, the VFs' holders, the networks and the pools' counts", () => {
        assert.deepStrictEqual(
            t.guests.map((g) => [g.name, g.running, g.vcpuPins, g.emulatorPin, g.nodeset, g.hugepages]),
            [["demo-db", true, [[2], [3]], null, [1], "2M"], ["web", false, [[0]], [0], null, null]],
        );
        assert.deepStrictEqual(t.pfs.map((p) => [p.name, p.numaNode, p.vfs.map((v) => [v.index, v.pciAddress, v.guest])]), [
            ["enp33s0", 0, [[0, "0000:21:10.0", null], [1, "0000:21:10.2", "web"]]],
            ["enp65s0", 1, []],
        ]);
        assert.deepStrictEqual(t.networks, [{ name: "tuned", bridge: "kvmt-tuned", active: true, guests: ["demo-db"] }]);
        assert.deepStrictEqual(t.nodes[1].hugepages["2M"], { total: 64, free: 32 }, "running demo-db's 64 MiB are 32 pages of node 1's pool");
        assert.deepStrictEqual(t.nodes[0].hugepages["2M"], { total: 64, free: 64 });
        assert.deepStrictEqual(t.nodes[1].hugepages["1G"], { total: 0, free: 0 }, "a size no pool manages comes from the facts");
        // Counts read while the guest ran (after a refresh) already show it: not counted twice.
        const refreshed = structuredClone(applied);
        refreshed.hugepagePools["2M"]["1"] = { total: 64, free: 32 };
        assert.deepStrictEqual(topologyFromApplied(stale, refreshed, declared).nodes[1].hugepages["2M"], { total: 64, free: 32 });
        const svg = renderTopologySvg(t);
        for (const words of ["demo-db (running)", "web (shut off)", "tuned: bridge kvmt-tuned, active; guests: demo-db", "huge pages 2M: 64 (32 used, 32 free)"]) {
            assert.ok(svg.includes(words), `the picture lacks "${words}"`);
        }
    });

    it("draws it so a person reads it: rendered in headless Chromium, pinned CPUs in their guest's colour", function () {
        this.timeout(120_000);
        const svg = renderTopologySvg(t);
        const dir = fs.mkdtempSync(path.join(os.tmpdir(), "kvmtune-topology-"));
        const svgFile = path.join(dir, "lab1.svg");
        const pngFile = path.join(dir, "lab1.png");
        fs.writeFileSync(svgFile, svg);
        const { width, height } = svgSize(svg);
        screenshotSvg(svgFile, pngFile, width, height);
        const image = decodePng(fs.readFileSync(pngFile));
        assert.deepStrictEqual([image.width, image.height], [width, height]);

        const cells = cpuCellColours(svg, image);
        assert.deepStrictEqual([...cells.keys()], [0, 1, 2, 3]);
        const pixel = (cpu: number) => cells.get(cpu)!.drawn;
        const demoColour = cells.get(2)!.declared;
        assert.strictEqual(pixel(2), demoColour, "CPU 2 is not drawn in demo-db's colour");
        assert.strictEqual(pixel(3), demoColour, "CPU 3 is not drawn in demo-db's colour");
        assert.strictEqual(pixel(1), "#eeeeee", "CPU 1 holds no guest and should be drawn free");
        assert.notStrictEqual(pixel(0), "#eeeeee", "CPU 0 holds web's vCPU");
        assert.notStrictEqual(pixel(0), demoColour, "two guests share a colour");
        for (const words of ["demo-db (running)", "web (shut off)", "tuned: bridge kvmt-tuned, active; guests: demo-db", "huge pages 2M: 64 (32 used, 32 free)", "PF enp33s0 0000:21:00.0  2/7 VFs"]) {
            assert.ok(svg.includes(words), `the picture lacks "${words}"`);
        }
        if (process.env.KVMTUNE_KEEP_PICTURE) fs.copyFileSync(pngFile, process.env.KVMTUNE_KEEP_PICTURE);
        fs.rmSync(dir, { recursive: true, force: true });
    });
});
