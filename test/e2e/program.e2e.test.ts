/**
 * The root program through the real Pulumi engine (built from Go modules) and the Automation API,
 * against the lab hosts: up, preview and refresh with no changes, destroy. The key must never
 * appear in plain text in the exported state.
 */
import * as assert from "assert";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import type { Stack } from "@pulumi/pulumi/automation";
import { localStack } from "../../tools/pulumiEngine";
import { loadInventory, repoRoot, sshOk } from "../lab/labHosts";

describe("the kvmtune program through the Pulumi CLI", function () {
    this.timeout(20 * 60_000);
    const inventory = loadInventory();
    let stack: Stack;
    // The state at rest: the file backend's folder, read as bytes (the Automation API's exportStack
    // decrypts secrets, so it cannot tell a secret from plain text).
    const backendDir = fs.mkdtempSync(path.join(os.tmpdir(), "kvmtune-e2e-state-"));
    const filesUnder = (dir: string): string[] =>
        fs.readdirSync(dir, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? filesUnder(path.join(dir, e.name)) : [path.join(dir, e.name)]));
    const keyBodies = [...new Set(inventory.hosts.map((h) => fs.readFileSync(h.privateKeyPath, "utf8")))].map(
        (k) => k.split("\n")[1],
    );

    before(async () => {
        const config: Record<string, { value: string; secret?: boolean }> = {};
        inventory.hosts.forEach((h, i) => {
            const at = `kvmtune:hosts[${i}]`;
            config[`${at}.name`] = { value: h.name };
            config[`${at}.host`] = { value: h.host };
            config[`${at}.port`] = { value: String(h.port) };
            config[`${at}.user`] = { value: h.user };
            config[`${at}.hostKey`] = { value: h.hostKey };
            // The key as a secret in stack config: encrypted in Pulumi.e2e.yaml and in state.
            config[`${at}.privateKey`] = { value: fs.readFileSync(h.privateKeyPath, "utf8"), secret: true };
        });
        stack = await localStack({ stackName: "e2e", workDir: repoRoot, passphrase: "kvmtune-e2e-test", backendDir });
        await stack.setAllConfig(config, true);
    });

    after(async () => {
        // Leave nothing behind: no stack config file in the repository, no stack in the backend.
        await stack?.workspace.removeStack("e2e", { force: true }).catch(() => undefined);
        fs.rmSync(path.join(repoRoot, "Pulumi.e2e.yaml"), { force: true });
        fs.rmSync(backendDir, { recursive: true, force: true });
    });

    it("up creates HostFacts for every host and reports what the hosts say", async () => {
        const result = await stack.up({ onOutput: () => undefined });
        assert.strictEqual(result.summary.result, "succeeded");
        assert.strictEqual(result.summary.resourceChanges?.create, inventory.hosts.length + 1);
        const hosts = result.outputs.hosts.value as Record<string, { hostname: string; kernel: string; numaNodes: Array<{ id: number; cpus: number[] }> }>;
        for (const h of inventory.hosts) {
            assert.strictEqual(hosts[h.name].hostname, (await sshOk(h, "hostname")).trim());
            assert.strictEqual(hosts[h.name].kernel, (await sshOk(h, "uname -r")).trim());
            assert.deepStrictEqual(hosts[h.name].numaNodes.map((n) => n.cpus), [[0, 1], [2, 3]]);
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

    it("destroy removes every resource and leaves the hosts alone", async () => {
        const before = await Promise.all(inventory.hosts.map((h) => sshOk(h, "hostname")));
        const result = await stack.destroy({ onOutput: () => undefined });
        assert.strictEqual(result.summary.result, "succeeded");
        assert.strictEqual(result.summary.resourceChanges?.delete, inventory.hosts.length + 1);
        const state = await stack.exportStack();
        assert.strictEqual((state.deployment.resources ?? []).length, 0);
        assert.deepStrictEqual(await Promise.all(inventory.hosts.map((h) => sshOk(h, "hostname"))), before);
    });
});
