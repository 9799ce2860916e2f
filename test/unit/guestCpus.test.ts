/**
 * Two guests created at once on one host must not take the same CPUs: the guarded "read the other
 * guests, choose CPUs, define" (resources/libvirt/guestCpus.ts), run through this machine's shell
 * with `virsh` stood in by a script that records each definition; then NumaPinnedGuest's own create,
 * twice at once, through the loopback sshd.
 */
import * as assert from "assert";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { gatherFacts } from "../../resources/host/facts";
import { closeAll } from "../../resources/host/sshPool";
import { pinnedCpusOf } from "../../resources/libvirt/domain";
import { defineIfUnchanged, defineWithCpusChosen, readGuestCpusGeneration } from "../../resources/libvirt/guestCpus";
import { provider as guests } from "../../resources/providers/numaPinnedGuest";
import { FakeSshHost, startFakeSshHost } from "../helpers/fakeSshHost";
import { definedDomains, installFakeVirsh } from "../helpers/fakeVirsh";
import { throwawayKey } from "../helpers/fixtures";
import { LocalRemote } from "../helpers/localRemote";

/** A host with CPUs 2-5 free for guests, whose `virsh define` appends the definition to a file. */
function fakeHost() {
    const root = fs.mkdtempSync(path.join(os.tmpdir(), "kvmtune-guest-cpus-"));
    const bin = path.join(root, "bin");
    const defined = path.join(root, "defined");
    fs.mkdirSync(bin);
    fs.writeFileSync(defined, "");
    fs.writeFileSync(path.join(bin, "virsh"), `#!/bin/sh\ncat /dev/stdin >> '${defined}'\n`, { mode: 0o755 });
    const remote = new LocalRemote({ pathFirst: bin });
    /** The CPUs each defined guest holds: one line `name:cpu,cpu` per definition. */
    const guests = async () => {
        const r = await remote.exec(`cat '${defined}'`);
        return r.stdout.split("\n").filter(Boolean).map((l) => ({ name: l.split(":")[0], cpus: l.split(":")[1].split(",").map(Number) }));
    };
    return { root, dir: path.join(root, "run"), remote, guests };
}

describe("guest CPUs chosen under the host's guard", function () {
    this.timeout(30_000);

    it("two guests created at once get distinct CPUs: the one that defined second chose again", async () => {
        const host = fakeHost();
        // Both creates read the host before either defines: the race that gave both CPUs 2-3.
        let arrived = 0;
        let release!: () => void;
        const bothRead = new Promise<void>((r) => (release = r));
        const attempts: Record<string, number> = { a: 0, b: 0 };
        const create = (name: string) =>
            defineWithCpusChosen(
                host.remote,
                async () => {
                    const taken = new Set((await host.guests()).flatMap((g) => g.cpus));
                    attempts[name]++;
                    if (++arrived === 2) release();
                    await bothRead;
                    const pins = [2, 3, 4, 5].filter((c) => !taken.has(c)).slice(0, 2);
                    return { xml: `${name}:${pins.join(",")}`, result: pins };
                },
                { dir: host.dir },
            );
        const [a, b] = await Promise.all([create("a"), create("b")]);
        assert.deepStrictEqual([a, b].flat().sort(), [2, 3, 4, 5], `a got ${a}, b got ${b}`);
        assert.deepStrictEqual((await host.guests()).map((g) => g.cpus.join(",")).sort(), ["2,3", "4,5"]);
        assert.strictEqual(attempts.a + attempts.b, 3, "exactly one of them read the host a second time");
        fs.rmSync(host.root, { recursive: true, force: true });
    });

    it("refuses a define when another guest was defined since the read, and defines nothing", async () => {
        const host = fakeHost();
        const seen = await readGuestCpusGeneration(host.remote, host.dir);
        assert.strictEqual(await defineIfUnchanged(host.remote, "a:2,3", seen, host.dir), true);
        assert.strictEqual(await defineIfUnchanged(host.remote, "b:2,3", seen, host.dir), false);
        assert.deepStrictEqual(await host.guests(), [{ name: "a", cpus: [2, 3] }]);
        fs.rmSync(host.root, { recursive: true, force: true });
    });

    it("gives up after reading and choosing again too often, naming the host", async () => {
        const host = fakeHost();
        // Another guest is defined between every read and define of this one.
        let other = 0;
        const busy = defineWithCpusChosen(
            host.remote,
            async () => {
                const seen = await readGuestCpusGeneration(host.remote, host.dir);
                await defineIfUnchanged(host.remote, `other${other++}:9`, seen, host.dir);
                return { xml: "late:2", result: null };
            },
            { dir: host.dir, attempts: 3 },
        );
        await assert.rejects(busy, /^Error: local: other guests were defined while this one chose its CPUs, 3 times in a row; nothing was defined/);
        assert.ok(!(await host.guests()).some((g) => g.name === "late"));
        fs.rmSync(host.root, { recursive: true, force: true });
    });
});

describe("NumaPinnedGuest creates side by side on one host (loopback sshd, virsh stood in)", function () {
    this.timeout(120_000);
    const key = throwawayKey();
    let etc: string;
    let bin: string;
    let run: string;
    let host: FakeSshHost;

    before(async () => {
        etc = fs.mkdtempSync(path.join(os.tmpdir(), "kvmtune-guests-etc-"));
        bin = fs.mkdtempSync(path.join(os.tmpdir(), "kvmtune-guests-bin-"));
        // The guard's files go to /run/kvmtune: a private /run inside the namespace.
        run = fs.mkdtempSync(path.join(os.tmpdir(), "kvmtune-guests-run-"));
        installFakeVirsh(bin);
        host = await startFakeSshHost({ clientKey: key, remote: new LocalRemote({ etc, binds: [[run, "/run"]], pathFirst: bin }) });
    });
    after(async () => {
        closeAll();
        await host.close();
        for (const d of [etc, bin, run]) fs.rmSync(d, { recursive: true, force: true });
    });

    it("two auto-pinned guests created at once on a node's CPUs get distinct CPUs, never one CPU twice", async () => {
        const node0 = (await gatherFacts(new LocalRemote())).numaNodes.find((n) => n.id === 0)!;
        assert.ok(node0.cpus.length >= 2, `this machine's node 0 has CPUs ${node0.cpus}: two 1-vCPU guests need two`);
        const connection = { host: "127.0.0.1", port: host.port, user: "root", privateKey: key.privateKey, hostKey: host.hostKey };
        const guest = (name: string) => ({ connection, name, vcpus: 1, memoryMiB: 64, numaNode: 0, cpuPins: "auto", running: false, autostart: false, owner: `NumaPinnedGuest ${name} (kvmtune/test)` });
        const create = async (name: string) => {
            const checked = await guests.check({}, guest(name));
            assert.deepStrictEqual(checked.failures ?? [], []);
            return guests.create(checked.inputs!);
        };
        const [a, b] = await Promise.all([create("a"), create("b")]);
        const pins = [a, b].map((r) => (r.outs as { resolvedCpuPins: number[][] }).resolvedCpuPins);
        assert.notDeepStrictEqual(pins[0], pins[1], `both guests were pinned to CPU ${pins[0]}`);
        // As libvirt has them: each CPU in one guest's vcpupin only.
        const held = definedDomains(etc).map((xml) => pinnedCpusOf(xml));
        assert.deepStrictEqual(held.map((d) => d.name).sort(), ["a", "b"]);
        assert.strictEqual(new Set(held.flatMap((d) => d.cpus)).size, 2, JSON.stringify(held));
    });
});

describe("NumaPinnedGuest create on a node whose CPUs are all isolated (loopback sshd, virsh stood in)", function () {
    this.timeout(120_000);
    const key = throwawayKey();
    const dirs: string[] = [];
    let host: FakeSshHost;
    let etc: string;

    before(async () => {
        const [run, bin, sys] = ["run", "bin", "sys"].map((d) => fs.mkdtempSync(path.join(os.tmpdir(), `kvmtune-isolated-${d}-`)));
        etc = fs.mkdtempSync(path.join(os.tmpdir(), "kvmtune-isolated-etc-"));
        dirs.push(run, bin, sys, etc);
        installFakeVirsh(bin);
        // The kernel's isolated CPUs as after isolcpus= of all of node 0, laid over the real file.
        const node0 = (await gatherFacts(new LocalRemote())).numaNodes.find((n) => n.id === 0)!;
        const isolated = path.join(sys, "isolated");
        fs.writeFileSync(isolated, `${node0.cpus.join(",")}\n`);
        const binds: Array<[string, string]> = [[run, "/run"], [isolated, "/sys/devices/system/cpu/isolated"]];
        host = await startFakeSshHost({ clientKey: key, remote: new LocalRemote({ etc, binds, pathFirst: bin }) });
    });
    after(async () => {
        closeAll();
        await host.close();
        for (const d of dirs) fs.rmSync(d, { recursive: true, force: true });
    });

    it("a huge page guest without emulatorPin gets its emulator on its own vCPU CPU, and says why", async () => {
        const connection = { host: "127.0.0.1", port: host.port, user: "root", privateKey: key.privateKey, hostKey: host.hostKey };
        const checked = await guests.check({}, {
            connection, name: "iso", vcpus: 1, memoryMiB: 64, numaNode: 0, cpuPins: "auto", hugepages: "2M", running: false, autostart: false, owner: "NumaPinnedGuest iso (kvmtune/test)",
        });
        assert.deepStrictEqual(checked.failures ?? [], []);
        const outs = (await guests.create(checked.inputs!)).outs as { resolvedCpuPins: number[][]; resolvedEmulatorPin: number[] | null; emulatorPinReason: string | null };
        assert.deepStrictEqual(outs.resolvedEmulatorPin, outs.resolvedCpuPins[0]);
        assert.match(outs.emulatorPinReason ?? "", /the emulator shares the guest's vCPU CPUs .*every CPU of node\(s\) 0 .* is isolated/);
        // As libvirt was given it: the emulator pinned to the vCPU's CPU.
        const [xml] = definedDomains(etc);
        assert.match(xml, new RegExp(`<emulatorpin cpuset=['"]${outs.resolvedCpuPins[0][0]}['"]`));
    });
});
