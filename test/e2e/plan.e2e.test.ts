/**
 * The plan from the real engine's `pulumi preview --json`, without hosts: a preview runs only
 * `check` and `diff`, which work from inputs and state. The state of a guest and an elevator is
 * written with `pulumi stack import` (the inputs the engine's own preview of their creation
 * showed), then the config changes the guest's memory and pin and the elevator's tunable. The plan
 * must say: a restart of that guest for memoryMiB, the pin live, the tunable live, under the
 * connection's host:port. (test/lab/consumer.test.ts does the same after a real `up`.)
 */
import * as assert from "assert";
import { execFileSync, spawn } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { planFromPreview, PreviewDigest, renderPlan } from "../../resources/plan";
import { engineBin, engineEnv } from "../../tools/pulumiEngine";
import { throwawayKey } from "../helpers/fixtures";

const repo = path.resolve(__dirname, "..", "..", "..");
const STACK = "plan-e2e";
const SECRET_SIG = "4dabf18193072939515e22adb298388d";

// Inside the repository, so `kvmtune` resolves by package self-reference, as in node_modules.
const PROGRAM = `const pulumi = require("@pulumi/pulumi");
const { BlockElevator, NumaPinnedGuest } = require("kvmtune");
const config = new pulumi.Config();
const connection = { host: "192.0.2.10", port: 2299, hostKey: config.require("hostKey"), privateKey: config.requireSecret("sshKey") };
new BlockElevator("plan-disk", { connection, device: "vdb", scheduler: "mq-deadline", tunables: { read_expire: config.requireNumber("readExpire") } });
new NumaPinnedGuest("plan-guest", { connection, name: "plan-g", vcpus: 1, memoryMiB: config.requireNumber("memoryMiB"), numaNode: 0, cpuPins: [config.requireNumber("cpu")], running: false });
`;

interface StateResource {
    urn: string;
    custom: boolean;
    type: string;
    id?: string;
    inputs?: Record<string, unknown>;
    outputs?: Record<string, unknown>;
    parent?: string;
    provider?: string;
}

describe("the plan from the engine's preview (no hosts)", function () {
    this.timeout(15 * 60_000);
    let dir: string;
    let pulumi: (args: string[], input?: string) => Promise<string>;
    const key = throwawayKey();

    before(async () => {
        dir = fs.mkdtempSync(path.join(repo, "bin", "test", "e2e", "plan-program-"));
        fs.writeFileSync(path.join(dir, "Pulumi.yaml"), "name: kvmtune-plan-e2e\nruntime:\n  name: nodejs\n  options:\n    typescript: false\nmain: index.js\n");
        fs.writeFileSync(path.join(dir, "index.js"), PROGRAM);
        const backend = fs.mkdtempSync(path.join(os.tmpdir(), "kvmtune-plan-state-"));
        const bin = await engineBin();
        const env = { ...process.env, ...(await engineEnv()), PULUMI_BACKEND_URL: `file://${backend}`, PULUMI_CONFIG_PASSPHRASE: "plan-e2e" };
        pulumi = (args, input) =>
            new Promise((resolve, reject) => {
                const child = spawn(path.join(bin, "pulumi"), [...args, "--non-interactive"], { cwd: dir, env, stdio: ["pipe", "pipe", "pipe"] });
                let out = "";
                let err = "";
                child.stdout.setEncoding("utf8").on("data", (s: string) => (out += s));
                child.stderr.setEncoding("utf8").on("data", (s: string) => (err += s));
                child.on("error", reject);
                child.on("close", (code) => (code === 0 ? resolve(out) : reject(new Error(`pulumi ${args.join(" ")} exited ${code}:\n${out.slice(-3000)}\n${err.slice(-3000)}`))));
                child.stdin.end(input ?? "");
            });
        await pulumi(["stack", "init", STACK]);
        for (const [k, v] of Object.entries({ hostKey: key.fingerprint, readExpire: 100, memoryMiB: 32, cpu: 0 })) await pulumi(["config", "set", k, String(v)]);
        await pulumi(["config", "set", "--secret", "sshKey"], key.privateKey);
    });
    after(() => {
        if (dir) fs.rmSync(dir, { recursive: true, force: true });
    });

    it("reads a guest memory, a pin and a tunable change as guest restart, live and live", async () => {
        // The state `up` would have left: each resource with the inputs its creation's preview showed.
        const created = JSON.parse(await pulumi(["preview", "--json"])) as { steps: Array<{ newState: StateResource }> };
        const exported = JSON.parse(await pulumi(["stack", "export"]));
        const stackUrn = created.steps.find((s) => s.newState.type === "pulumi:pulumi:Stack")!.newState.urn;
        const providerUrn = stackUrn.replace(/::pulumi:pulumi:Stack::.*$/, "::pulumi:providers:pulumi-nodejs::default");
        const providerId = "00000000-0000-4000-8000-000000000001";
        const sshKey = (await pulumi(["config", "get", "sshKey"])).replace(/\n$/, "");
        const resources: StateResource[] = [
            { urn: stackUrn, custom: false, type: "pulumi:pulumi:Stack", outputs: {} },
            { urn: providerUrn, custom: true, id: providerId, type: "pulumi:providers:pulumi-nodejs", inputs: {}, outputs: {} },
        ];
        for (const { newState: n } of created.steps.filter((s) => s.newState.custom)) {
            const inputs = JSON.parse(JSON.stringify(n.inputs)) as Record<string, Record<string, unknown>>;
            inputs.connection.privateKey = { [SECRET_SIG]: "1b47061264138c4ac30d75fd1eb44270", plaintext: JSON.stringify(sshKey) };
            resources.push({ urn: n.urn, custom: true, id: `id-${n.urn.split("::").pop()}`, type: n.type, inputs, outputs: inputs, parent: n.parent, provider: `${providerUrn}::${providerId}` });
        }
        assert.strictEqual(resources.length, 4, "expected the stack, the provider, the elevator and the guest");
        exported.deployment.resources = resources;
        const stateFile = path.join(dir, "state.json");
        fs.writeFileSync(stateFile, JSON.stringify(exported));
        await pulumi(["stack", "import", "--file", stateFile]);
        assert.deepStrictEqual(planFromPreview(JSON.parse(await pulumi(["preview", "--json"])) as PreviewDigest).hosts, [], "the imported state should match the program");

        for (const [k, v] of Object.entries({ memoryMiB: 48, cpu: 1, readExpire: 200 })) await pulumi(["config", "set", k, String(v)]);
        const digest = JSON.parse(await pulumi(["preview", "--json"])) as PreviewDigest;
        const plan = planFromPreview(digest);
        assert.deepStrictEqual(
            plan.hosts.map((h) => ({ host: h.host, items: h.items.map((i) => [i.action, i.resource, i.guest ?? "", i.fields.join(",")]) })),
            [
                {
                    host: "192.0.2.10:2299",
                    items: [
                        ["restart", "plan-guest", "plan-g", "memoryMiB"],
                        ["live", "plan-disk", "", "tunables"],
                        ["live", "plan-guest", "plan-g", "cpuPins"],
                    ],
                },
            ],
        );
        // And the words kvmtune-plan prints for it.
        const text = execFileSync(process.execPath, [path.join(repo, "bin", "resources", "planCli.js")], { input: JSON.stringify(digest), encoding: "utf8" });
        assert.strictEqual(text, renderPlan(plan));
        assert.match(text, /^Guest restarts: 192\.0\.2\.10:2299: plan-g\.$/m);
    });
});
