/**
 * kvmtune as a user consumes it: `npm pack` of this repository, installed into a fresh TypeScript
 * Pulumi project with its own @pulumi/pulumi and ts-node, driven through the Pulumi CLI (not the
 * Automation API) on a lab host. The project declares a HugepagePool, a BlockElevator and a
 * (defined, not started) NumaPinnedGuest; each step is checked on the host with the system ssh
 * client. Then the plan: a guest memory change, a pin change and an elevator tunable change must
 * read as a restart of that guest (memoryMiB), live, and live, under this host's address.
 * `pulumi destroy` gives the host back. Needs the npm registry for the project's dependencies.
 */
import * as assert from "assert";
import { spawn } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { planFromPreview, PreviewDigest } from "../../resources/plan";
import { engineBin, engineEnv } from "../../tools/pulumiEngine";
import { repoRoot, sshOk, suiteHost } from "./labHosts";

/** The project's own SDK: the newest version of the peer range this repository was tested with. */
const CONSUMER_SDK = "3.276.0";
const GUEST = "kvmtune-consumer-g";
const STACK = "consumer";

/** The program a user writes: everything from config, the key as a secret. */
const PROGRAM = `import * as pulumi from "@pulumi/pulumi";
import { BlockElevator, HugepagePool, NumaPinnedGuest } from "kvmtune";

const config = new pulumi.Config();
const connection = {
    host: config.require("host"),
    port: config.requireNumber("port"),
    user: config.require("user"),
    hostKey: config.require("hostKey"),
    privateKey: config.requireSecret("sshKey"),
};
new HugepagePool("consumer-pages", { connection, pageSize: "2M", nodes: { "0": config.requireNumber("pages") } });
const disk = new BlockElevator("consumer-disk", {
    connection,
    device: "vdb",
    scheduler: "mq-deadline",
    tunables: { read_expire: config.requireNumber("readExpire") },
});
new NumaPinnedGuest("consumer-guest", {
    connection,
    name: "${GUEST}",
    vcpus: 1,
    memoryMiB: config.requireNumber("guestMemoryMiB"),
    numaNode: 0,
    cpuPins: [config.requireNumber("guestCpu")],
    running: false,
    autostart: false,
    shutdownTimeoutSeconds: 10,
});
export const kernelName = disk.kernelName;
`;

interface Ran {
    code: number | null;
    stdout: string;
    stderr: string;
}

function run(cmd: string, args: string[], opts: { cwd: string; env?: NodeJS.ProcessEnv; input?: string }): Promise<Ran> {
    return new Promise((resolve, reject) => {
        const child = spawn(cmd, args, { cwd: opts.cwd, env: opts.env ?? process.env, stdio: ["pipe", "pipe", "pipe"] });
        let stdout = "";
        let stderr = "";
        child.stdout.setEncoding("utf8").on("data", (s: string) => (stdout += s));
        child.stderr.setEncoding("utf8").on("data", (s: string) => (stderr += s));
        child.on("error", reject);
        child.on("close", (code) => resolve({ code, stdout, stderr }));
        child.stdin.on("error", () => undefined); // a child that reads no stdin: EPIPE is no news
        child.stdin.end(opts.input ?? "");
    });
}

async function ok(cmd: string, args: string[], opts: { cwd: string; env?: NodeJS.ProcessEnv; input?: string }): Promise<string> {
    const r = await run(cmd, args, opts);
    if (r.code !== 0) throw new Error(`${cmd} ${args.join(" ")} exited ${r.code}:\n${r.stdout.slice(-3000)}\n${r.stderr.slice(-3000)}`);
    return r.stdout;
}

describe("kvmtune in a user's own TypeScript Pulumi project, through the CLI", function () {
    this.timeout(45 * 60_000);
    const h = suiteHost(0);
    let project: string;
    let pulumi: (args: string[], input?: string) => Promise<string>;
    let originalScheduler: string;
    let originalPages: number;
    let cpus: number[];

    const sysfs = async () => {
        const out = await sshOk(h, [
            "cat /sys/block/vdb/queue/scheduler",
            "cat /sys/block/vdb/queue/iosched/read_expire 2>/dev/null || echo -1",
            "cat /sys/devices/system/node/node0/hugepages/hugepages-2048kB/nr_hugepages",
        ].join("; "));
        const [sched, readExpire, pages] = out.trim().split("\n");
        return { scheduler: /\[([^\]]+)\]/.exec(sched)![1], readExpire: Number(readExpire), pages: Number(pages) };
    };
    const guestMemoryKiB = async () => Number((await sshOk(h, `virsh -c qemu:///system dumpxml --inactive ${GUEST} | sed -n 's/.*<memory unit=.KiB.>\\([0-9]*\\)<.*/\\1/p'`)).trim());
    /** vCPU 0's pin in the guest's persistent definition, as `virsh vcpupin --config` lists it. */
    const guestPins = async () => /^\s*0:?\s+(\S+)\s*$/m.exec(await sshOk(h, `virsh -c qemu:///system vcpupin --config ${GUEST}`))?.[1];
    const setConfig = async (values: Record<string, string | number>) => {
        for (const [k, v] of Object.entries(values)) await pulumi(["config", "set", k, String(v)]);
    };

    before(async () => {
        const before = await sysfs();
        originalScheduler = before.scheduler;
        originalPages = before.pages;
        cpus = (await sshOk(h, "cat /sys/devices/system/node/node0/cpulist")).trim().split(",").flatMap((r) => {
            const [a, b] = r.split("-").map(Number);
            return Array.from({ length: (b ?? a) - a + 1 }, (_, i) => a + i);
        });
        assert.ok(cpus.length >= 2, `node 0 of ${h.name} needs two CPUs for the pin change, has ${cpus}`);

        // The package as users get it, into a project of its own.
        const work = fs.mkdtempSync(path.join(os.tmpdir(), "kvmtune-consumer-"));
        const packed = (await ok("npm", ["pack", "--pack-destination", work], { cwd: repoRoot })).trim().split("\n").pop()!;
        project = path.join(work, "project");
        fs.mkdirSync(project);
        fs.writeFileSync(path.join(project, "Pulumi.yaml"), "name: kvmtune-consumer\nruntime:\n  name: nodejs\n  options:\n    typescript: true\n");
        fs.writeFileSync(
            path.join(project, "package.json"),
            JSON.stringify({
                name: "kvmtune-consumer",
                private: true,
                main: "index.ts",
                dependencies: { "@pulumi/pulumi": CONSUMER_SDK, kvmtune: `file:${path.join(work, packed)}` },
                devDependencies: { "@types/node": "20.19.43", "ts-node": "10.9.2", typescript: "5.9.3" },
            }, null, 2),
        );
        // The tsconfig.json of Pulumi's TypeScript template.
        fs.writeFileSync(
            path.join(project, "tsconfig.json"),
            JSON.stringify({
                compilerOptions: {
                    strict: true, outDir: "bin", target: "es2020", module: "commonjs", moduleResolution: "node", sourceMap: true,
                    experimentalDecorators: true, pretty: true, noFallthroughCasesInSwitch: true, noImplicitReturns: true,
                    forceConsistentCasingInFileNames: true,
                },
                files: ["index.ts"],
            }, null, 2),
        );
        fs.writeFileSync(path.join(project, "index.ts"), PROGRAM);
        await ok("npm", ["install", "--no-audit", "--no-fund"], { cwd: project });

        const bin = await engineBin();
        const backend = path.join(work, "state");
        fs.mkdirSync(backend);
        const env = { ...process.env, ...(await engineEnv()), PULUMI_BACKEND_URL: `file://${backend}`, PULUMI_CONFIG_PASSPHRASE: "kvmtune-consumer" };
        pulumi = (args, input) => ok(path.join(bin, "pulumi"), [...args, "--non-interactive", ...(args[0] === "stack" && args[1] === "init" ? [] : ["--stack", STACK])], { cwd: project, env, input });
        await pulumi(["stack", "init", STACK]);
        await setConfig({ host: h.host, port: h.port, user: h.user, hostKey: h.hostKey, pages: 16, readExpire: 100, guestMemoryMiB: 32, guestCpu: cpus[0] });
        // The key from standard input, as a secret: never on a command line.
        await pulumi(["config", "set", "--secret", "sshKey"], fs.readFileSync(h.privateKeyPath, "utf8"));
    });
    after(async () => {
        await pulumi?.(["destroy", "--yes"]).catch(() => undefined);
    });

    it("installs exactly one @pulumi/pulumi: the project's own", async () => {
        const copies = (await ok("find", ["node_modules", "-path", "*/@pulumi/pulumi/package.json"], { cwd: project })).trim().split("\n");
        assert.deepStrictEqual(copies, ["node_modules/@pulumi/pulumi/package.json"]);
        assert.strictEqual(JSON.parse(fs.readFileSync(path.join(project, copies[0]), "utf8")).version, CONSUMER_SDK);
        assert.match(await ok("npm", ["ls", "@pulumi/pulumi", "--all"], { cwd: project }), /kvmtune@[\s\S]*@pulumi\/pulumi@[0-9.]+ deduped/);
    });

    it("pulumi up tunes the host, as the host itself shows", async () => {
        await pulumi(["up", "--yes", "--skip-preview"]);
        assert.deepStrictEqual(await sysfs(), { scheduler: "mq-deadline", readExpire: 100, pages: 16 });
        assert.strictEqual(await guestMemoryKiB(), 32 * 1024);
        assert.strictEqual(await guestPins(), String(cpus[0]));
        assert.strictEqual((await pulumi(["stack", "output", "kernelName"])).trim(), "vdb");
    });

    it("plans a guest memory change, a pin change and a tunable change as restart, live and live on this host", async () => {
        await setConfig({ guestMemoryMiB: 48, guestCpu: cpus[1], readExpire: 200 });
        const digest = JSON.parse(await pulumi(["preview", "--json"])) as PreviewDigest;
        const plan = planFromPreview(digest);
        assert.deepStrictEqual(
            plan.hosts.map((p) => ({ host: p.host, items: p.items.map((i) => [i.action, i.resource, i.guest ?? "", i.fields.join(",")]) })),
            [
                {
                    host: `${h.host}:${h.port}`,
                    items: [
                        ["restart", "consumer-guest", GUEST, "memoryMiB"],
                        ["live", "consumer-disk", "", "tunables"],
                        ["live", "consumer-guest", GUEST, "cpuPins"],
                    ],
                },
            ],
        );
        // The same through the kvmtune-plan command the package installs.
        const previewFile = path.join(project, "preview.json");
        fs.writeFileSync(previewFile, JSON.stringify(digest));
        const text = await ok(path.join(project, "node_modules", ".bin", "kvmtune-plan"), [previewFile], { cwd: project });
        assert.match(text, new RegExp(`^  guest restart  guest ${GUEST} \\(NumaPinnedGuest consumer-guest\\): memoryMiB$`, "m"));
        assert.match(text, /^  live {11}BlockElevator consumer-disk: tunables$/m);
        assert.match(text, new RegExp(`^Guest restarts: ${h.host}:${h.port}: ${GUEST}\\.$`, "m"));
    });

    it("pulumi up applies it: the tunable live, the guest's new definition", async () => {
        await pulumi(["up", "--yes", "--skip-preview"]);
        assert.deepStrictEqual(await sysfs(), { scheduler: "mq-deadline", readExpire: 200, pages: 16 });
        assert.strictEqual(await guestMemoryKiB(), 48 * 1024);
        assert.strictEqual(await guestPins(), String(cpus[1]));
    });

    it("pulumi destroy gives the host back", async () => {
        await pulumi(["destroy", "--yes"]);
        const after = await sysfs();
        assert.strictEqual(after.scheduler, originalScheduler);
        assert.strictEqual(after.pages, originalPages);
        assert.strictEqual((await sshOk(h, `virsh -c qemu:///system list --all --name | grep -cx ${GUEST} || true`)).trim(), "0");
    });
});
