/**
 * The root program through the real Pulumi engine (built from Go modules) and the Automation API,
 * against the lab hosts, with the lab tuning: up converges every host (checked on the hosts with
 * the system ssh client), the topology picture shows what ended up where, preview and refresh find
 * nothing to do, a change is previewed with its plan, destroy gives the hosts back. The key must
 * never appear in plain text in the state.
 */
import * as assert from "assert";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import type { Stack } from "@pulumi/pulumi/automation";
import { labReboots, labTuning } from "../../fleet/labTuning";
import { localStack } from "../../tools/pulumiEngine";
import { labHostsConfig, withLabWatchdog } from "../helpers/labConnection";
import { cpuCellColours, screenshotSvg, svgSize } from "../helpers/chromium";
import { decodePng } from "../helpers/png";
import { assertDemoDbHasVf, assertLabCmdlineInEffect, hostState, HostState } from "../helpers/labTuningState";
import { labBootId, loadInventory, repoRoot, sshOk } from "../lab/labHosts";

/**
 * Children per host: the component, its facts, one resource per tuning item, and for the kernel
 * command line its KernelCmdline and (kvmtune:reboots is set) its HostReboot.
 */
const perHost = 2 + Object.values(labTuning).reduce((n, items) => n + (Array.isArray(items) ? items.length : 2), 0);

describe("the kvmtune program through the Pulumi CLI", function () {
    this.timeout(20 * 60_000);
    const inventory = loadInventory();
    let stack: Stack;
    // The state at rest: the file backend's folder, read as bytes (the Automation API's exportStack
    // decrypts secrets, so it cannot tell a secret from plain text).
    const backendDir = fs.mkdtempSync(path.join(os.tmpdir(), "kvmtune-e2e-state-"));
    const filesUnder = (dir: string): string[] =>
        fs.readdirSync(dir, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? filesUnder(path.join(dir, e.name)) : [path.join(dir, e.name)]));
    const topologyDir = fs.mkdtempSync(path.join(os.tmpdir(), "kvmtune-e2e-topology-"));
    const originals = new Map<string, HostState>();
    const keyBodies = [...new Set(inventory.hosts.map((h) => fs.readFileSync(h.privateKeyPath, "utf8")))].map(
        (k) => k.split("\n")[1],
    );

    before(async () => {
        // The key is a secret in stack config: encrypted in Pulumi.e2e.yaml and in state.
        const config = labHostsConfig(inventory.hosts);
        // The lab tuning as a user would put it in stack config (a JSON object value).
        config["kvmtune:tuning"] = { value: JSON.stringify(labTuning) };
        // As the lab stack reboots: one host at a time, for the lab's kernel command line.
        config["kvmtune:reboots"] = { value: JSON.stringify(labReboots) };
        config["kvmtune:topologyDir"] = { value: topologyDir };
        stack = await localStack({ stackName: "e2e", workDir: repoRoot, passphrase: "kvmtune-e2e-test", backendDir });
        await stack.setAllConfig(config, true);
        for (const h of inventory.hosts) originals.set(h.name, await hostState(h));
    });

    after(async () => {
        // Leave nothing behind: no stack config file in the repository, no stack in the backend.
        await stack?.workspace.removeStack("e2e", { force: true }).catch(() => undefined);
        fs.rmSync(path.join(repoRoot, "Pulumi.e2e.yaml"), { force: true });
        fs.rmSync(backendDir, { recursive: true, force: true });
        fs.rmSync(topologyDir, { recursive: true, force: true });
    });

    it("up converges every host to the lab tuning, as the hosts themselves tell", async () => {
        // The lab's kernel command line reboots the hosts that lack it, one at a time.
        const boots = await Promise.all(inventory.hosts.map(labBootId));
        const result = await withLabWatchdog(inventory.hosts, boots, () => stack.up({ onOutput: () => undefined }));
        assert.strictEqual(result.summary.result, "succeeded");
        assert.strictEqual(result.summary.resourceChanges?.create, inventory.hosts.length * perHost + 1);
        // `up` prints one line per host; the full detail is the JSON file the line's entry names.
        const hosts = result.outputs.hosts.value as Record<string, { summary: string; detail: string; topology: string }>;
        for (const h of inventory.hosts) {
            const entry = hosts[h.name];
            assert.strictEqual(entry.detail, path.join(topologyDir, `${h.name}.json`));
            const out = JSON.parse(fs.readFileSync(entry.detail, "utf8")) as { facts: { hostname: string; kernel: string; numaNodes: Array<{ cpus: number[] }> }; applied: { guests: Record<string, { state: string; cpuPins: number[][] }> }; topology: string };
            // Literal text in the pattern: Debian 13's kernel release has a "+" (6.12.117+deb13-amd64).
            const literal = (t: string) => t.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
            assert.match(entry.summary, new RegExp(`^${literal(`${out.facts.hostname}: kernel ${out.facts.kernel}; `)}.*guests: demo-db running on CPUs 2-3$`));
            assert.doesNotMatch(entry.summary, /\n/);
            assert.strictEqual(out.facts.hostname, (await sshOk(h, "hostname")).trim());
            assert.strictEqual(out.facts.kernel, (await sshOk(h, "uname -r")).trim());
            assert.deepStrictEqual(out.facts.numaNodes.map((n) => n.cpus), [[0, 1], [2, 3]]);
            assert.deepStrictEqual(out.applied.guests["demo-db"].cpuPins, [[2], [3]]);

            const now = await hostState(h);
            const was = originals.get(h.name)!;
            assert.deepStrictEqual(now.pages, [64, 64], `${h.name}: 2M pages per node`);
            // demo-db's 64 MiB came out of node 1's pool (32 pages), none out of node 0's.
            assert.deepStrictEqual(now.free, [64, 32], `${h.name}: free 2M pages per node`);
            assert.deepStrictEqual([now.vdb, now.readExpire], ["mq-deadline", 100]);
            assert.notStrictEqual(was.vdb, "mq-deadline", "the lab disk already had the tuned scheduler: the test proves nothing");
            assert.match(await sshOk(h, "findmnt -n -o FSTYPE /dev/hugepages"), /hugetlbfs/);
            assert.strictEqual((await sshOk(h, "virsh -c qemu:///system domstate demo-db")).trim(), "running");
            assert.match(await sshOk(h, "virsh -c qemu:///system vcpupin demo-db"), /^\s*0\s+2\s*$[\s\S]*^\s*1\s+3\s*$/m);
            const numatune = await sshOk(h, "virsh -c qemu:///system numatune demo-db");
            assert.match(numatune, /numa_mode\s*:\s*strict/);
            assert.match(numatune, /numa_nodeset\s*:\s*1\s*$/m);
            assert.strictEqual(entry.topology, path.join(topologyDir, `${h.name}.svg`));
            assert.strictEqual(out.topology, entry.topology);

            // The first PF's VFs, and VF 0's settings as the kernel reports them; demo-db's VF of node 1's PF.
            assert.strictEqual(now.numVfs, 4);
            await assertDemoDbHasVf(h);
            // The IOMMU in pass-through mode and CPUs 2-3 isolated: in effect (rebooted for when they were not).
            await assertLabCmdlineInEffect(h);
            assert.match(await sshOk(h, "ip link show enp33s0"), /vf 0\b.*link\/ether 52:54:00:00:00:10.*vlan 100.*trust on/);

            // The vhost network: active with its bridge, and demo-db on it with the in-kernel backend.
            assert.match(await sshOk(h, "virsh -c qemu:///system net-info tuned"), /Active:\s+yes[\s\S]*Autostart:\s+yes[\s\S]*Bridge:\s+kvmt-tuned/);
            assert.match(await sshOk(h, "virsh -c qemu:///system dumpxml demo-db"), /<driver name='vhost' queues='2'\/>/);
            const pid = (await sshOk(h, "cat /run/libvirt/qemu/demo-db.pid")).trim();
            assert.match(await sshOk(h, `ls -l /proc/${pid}/fd`), /\/dev\/vhost-net/, "qemu does not hold /dev/vhost-net open");
            // Threads too (-L): from Linux 6.4 (Debian 13's 6.12) the vhost worker is a thread of QEMU's
            // own process, no longer a kernel thread of its own (Debian 12's 6.1); it is named vhost-PID on both.
            assert.match(await sshOk(h, "ps -eLo comm"), new RegExp(`^vhost-${pid}$`, "m"), "no vhost worker thread for demo-db's qemu");
        }
    });

    it("writes a topology picture per host that shows demo-db on CPUs 2 and 3 (rendered in Chromium)", async () => {
        for (const h of inventory.hosts) {
            const svgFile = path.join(topologyDir, `${h.name}.svg`);
            const svg = fs.readFileSync(svgFile, "utf8");
            const { width, height } = svgSize(svg);
            const pngFile = path.join(topologyDir, `${h.name}.png`);
            screenshotSvg(svgFile, pngFile, width, height);
            const cells = cpuCellColours(svg, decodePng(fs.readFileSync(pngFile)));
            assert.deepStrictEqual([...cells.keys()], [0, 1, 2, 3]);
            assert.strictEqual(cells.get(2)!.drawn, cells.get(2)!.declared);
            assert.strictEqual(cells.get(3)!.drawn, cells.get(2)!.declared, "CPUs 2 and 3 hold one guest: one colour");
            assert.strictEqual(cells.get(0)!.drawn, "#eeeeee", "CPU 0 holds no guest");
            assert.ok(svg.includes("demo-db (running): 2 vCPUs, 64 MiB in 2M pages on node 1"), svg);
            assert.ok(svg.includes("huge pages 2M: 64 (32 used, 32 free)"), "node 1's pool as used by demo-db");
            assert.ok(svg.includes("tuned: bridge kvmt-tuned, active; guests: demo-db"), "the vhost network and its guest");
        }
    });

    it("preview after up expects no changes", async () => {
        const result = await stack.preview({ onOutput: () => undefined });
        const changes = Object.entries(result.changeSummary).filter(([op, n]) => op !== "same" && n > 0);
        assert.deepStrictEqual(changes, []);
    });

    it("refresh after up finds no changes", async () => {
        const result = await stack.refresh({ onOutput: () => undefined });
        assert.strictEqual(result.summary.result, "succeeded");
        const changes = Object.entries(result.summary.resourceChanges ?? {}).filter(([op, n]) => op !== "same" && n > 0);
        assert.deepStrictEqual(changes, []);
    });

    it("a second up changes nothing", async () => {
        const result = await stack.up({ onOutput: () => undefined });
        assert.deepStrictEqual(Object.entries(result.summary.resourceChanges ?? {}).filter(([op, n]) => op !== "same" && n > 0), []);
    });

    it("previews a change with how it will be applied (changePlan), without applying it", async () => {
        const moved = JSON.parse(JSON.stringify(labTuning));
        moved.guests[0].cpuPins = [3, 2];
        await stack.setConfig("kvmtune:tuning", { value: JSON.stringify(moved) });
        try {
            let text = "";
            const result = await stack.preview({ diff: true, onOutput: (o) => (text += o) });
            assert.strictEqual(result.changeSummary.update, inventory.hosts.length);
            assert.match(text, /changePlan/);
            assert.match(text, /cpuPins\s*:\s*"live \(applied to the running system\)"/);
        } finally {
            await stack.setConfig("kvmtune:tuning", { value: JSON.stringify(labTuning) });
        }
        for (const h of inventory.hosts) assert.match(await sshOk(h, "virsh -c qemu:///system vcpupin demo-db"), /^\s*0\s+2\s*$/m, "preview changed the host");
    });

    it("keeps the private key out of state in plain text, and the stored provider small", async () => {
        const stateFiles = filesUnder(backendDir).filter((f) => f.endsWith(".json"));
        assert.ok(stateFiles.some((f) => f.endsWith(`${path.sep}e2e.json`)), `no state file for the stack in ${stateFiles.join(", ")}`);
        const atRest = [...stateFiles, path.join(repoRoot, "Pulumi.e2e.yaml")].map((f) => fs.readFileSync(f, "utf8")).join("\n");
        for (const body of keyBodies) assert.ok(!atRest.includes(body), "a private key is in the state files or stack config in plain text");
        assert.match(atRest, /ciphertext/, "no secret in state: was the key stored at all?");
        const exported = JSON.stringify(await stack.exportStack());
        const state = JSON.parse(exported) as { deployment: { resources: Array<{ type: string; outputs?: Record<string, unknown> }> } };
        const facts = state.deployment.resources.filter((r) => r.type === "pulumi-nodejs:dynamic/kvmtune:HostFacts");
        assert.strictEqual(facts.length, inventory.hosts.length);
        for (const r of facts) {
            const provider = String(r.outputs?.__provider ?? "");
            assert.ok(provider.length > 0 && provider.length < 4096, `stored provider is ${provider.length} bytes`);
        }
    });

    it("destroy removes every resource and gives each host back as it was", async () => {
        const result = await stack.destroy({ onOutput: () => undefined });
        assert.strictEqual(result.summary.result, "succeeded");
        assert.strictEqual(result.summary.resourceChanges?.delete, inventory.hosts.length * perHost + 1);
        const state = await stack.exportStack();
        assert.strictEqual((state.deployment.resources ?? []).length, 0);
        for (const h of inventory.hosts) assert.deepStrictEqual(await hostState(h), originals.get(h.name));
    });
});
