/**
 * `npm run bench:scale -- --hosts N`: kvmtune's fleet program against N simulated hosts on this
 * machine (bench/scale/simHost.ts: real sshd's on loopback, each in its own mount namespace), through
 * the real Pulumi CLI on a file backend in a temp folder:
 *   1. `pulumi up --yes --skip-preview`: every host converges (HostFacts, a huge page pool, an
 *      elevator per disk, a pinned guest);
 *   2. `pulumi preview --refresh --expect-no-changes`: the no-op check (fails the run if it finds
 *      anything to do);
 *   3. `pulumi stack export`: the state's size.
 * Peak RSS is sampled over the CLI's process tree; SSH connections are counted by each host's sshd.
 * The last line printed is one JSON object (see `Result`). Everything started here is stopped on
 * exit, failure or Ctrl-C, and the temp folder removed (unless --keep).
 *
 * Options: --hosts N (10) --disks D (elevators per host, 5) --parallel P (the engine's --parallel;
 * default: the CLI's own) --keep (leave the temp folder: state, sshd logs, engine logs) --out FILE
 * (append the JSON line, with --label L and the details, to FILE as well) --main FILE (the program's
 * compiled entry point instead of bin/index.js) --upgrade-from DIR (a built checkout of an older
 * kvmtune: the fleet is first converged with it, untimed, then the project switches to this checkout
 * and the timed `up` is the upgrade's; after the preview, `pulumi destroy` runs, so delete meets
 * resources whose state the older version wrote; --expect-no-changes holds on the upgrade `up` too).
 */
import { ChildProcess, execFileSync, spawn } from "node:child_process";
import * as fs from "node:fs";
import * as net from "node:net";
import * as os from "node:os";
import * as path from "node:path";
import { BenchHost, repoRoot, resourcesPerHost, useKvmtune, writeProject, writeStackConfig } from "./program";
import { RssPeak, startRssSampler } from "./rss";
import { breakdown } from "./stateBreakdown";
import { SimHost, startSimHost } from "./simHost";

export interface Result {
    hosts: number;
    resourcesPerHost: number;
    upSeconds: number;
    noopPreviewRefreshSeconds: number;
    /** Peak of the summed RSS of the CLI, language host, program and provider processes, over both steps. */
    peakRssMiB: number;
    /** `pulumi stack export`, bytes. */
    stateBytes: number;
    /** The most connections any host's sshd accepted during one step (up, or preview --refresh). */
    sshConnectionsPerHost: number;
}

interface Options {
    hosts: number;
    disks: number;
    parallel?: number;
    keep: boolean;
    out?: string;
    /** A name for the code that ran, recorded with the result (plot.ts draws one curve per label). */
    label?: string;
    /** The program's compiled entry point (default bin/index.js): to measure an older program beside this one. */
    main?: string;
    /** A built checkout of an older kvmtune to converge with first (see the header). */
    upgradeFrom?: string;
    /** How kvmtune logs in: the key file's text (a secret in state), or an SSH agent the run starts. */
    auth: "key" | "agent";
}

function parseArgs(argv: string[]): Options {
    const o: Options = { hosts: 10, disks: 5, keep: false, auth: "key" };
    for (let i = 0; i < argv.length; i++) {
        const a = argv[i];
        const num = () => {
            const n = Number(argv[++i]);
            if (!Number.isInteger(n) || n < 1) throw new Error(`${a}: want a positive whole number, got ${argv[i]}`);
            return n;
        };
        if (a === "--hosts") o.hosts = num();
        else if (a === "--disks") o.disks = num();
        else if (a === "--parallel") o.parallel = num();
        else if (a === "--keep") o.keep = true;
        else if (a === "--out") o.out = argv[++i];
        else if (a === "--label") o.label = argv[++i];
        else if (a === "--main") o.main = path.resolve(argv[++i]);
        else if (a === "--upgrade-from") o.upgradeFrom = path.resolve(argv[++i]);
        else if (a === "--auth") {
            const v = argv[++i];
            if (v !== "key" && v !== "agent") throw new Error(`--auth: want key or agent, got ${v}`);
            o.auth = v;
        } else throw new Error(`unknown option ${a} (--hosts N --disks D --parallel P --keep --out FILE --label L --main FILE --upgrade-from DIR --auth key|agent)`);
    }
    if (o.disks > 20) throw new Error("--disks: at most 20 (vdb..vdu)");
    return o;
}

const say = (s: string) => process.stderr.write(`bench:scale: ${s}\n`);

/** Free loopback ports: bound at 0 to learn a number, then released (sshd binds them moments later). */
async function freePorts(n: number): Promise<number[]> {
    const servers = await Promise.all(
        Array.from({ length: n }, () => new Promise<net.Server>((resolve, reject) => {
            const s = net.createServer();
            s.once("error", reject);
            s.listen(0, "127.0.0.1", () => resolve(s));
        })),
    );
    const ports = servers.map((s) => (s.address() as net.AddressInfo).port);
    await Promise.all(servers.map((s) => new Promise<void>((r) => s.close(() => r()))));
    return ports;
}

/** Runs `items` through `fn`, `width` at a time. */
async function inBatches<T, R>(items: T[], width: number, fn: (t: T, i: number) => Promise<R>): Promise<R[]> {
    const out: R[] = new Array(items.length);
    let next = 0;
    await Promise.all(Array.from({ length: Math.min(width, items.length) }, async () => {
        while (next < items.length) {
            const i = next++;
            out[i] = await fn(items[i], i);
        }
    }));
    return out;
}

interface Bench {
    dir: string;
    hosts: SimHost[];
    running: Set<ChildProcess>;
    /** The SSH agent of --auth agent. */
    agent?: ChildProcess;
}

/** An OpenSSH agent on a socket in the run's folder, holding the client key (--auth agent). */
async function startAgent(b: Bench, clientKey: string): Promise<string> {
    const socket = path.join(b.dir, "agent.sock");
    b.agent = spawn("ssh-agent", ["-D", "-a", socket], { stdio: "ignore" });
    for (let i = 0; !fs.existsSync(socket); i++) {
        if (i > 100) throw new Error(`ssh-agent made no socket ${socket}`);
        await new Promise((r) => setTimeout(r, 50));
    }
    execFileSync("ssh-add", ["-q", clientKey], { env: { ...process.env, SSH_AUTH_SOCK: socket } });
    return socket;
}

/** One CLI command through scripts/pulumi.sh (the repo's way of picking and running the CLI), timed and sampled. */
function pulumi(b: Bench, env: NodeJS.ProcessEnv, args: string[], logName: string): Promise<{ seconds: number; rss: RssPeak; out: string }> {
    return new Promise((resolve, reject) => {
        const log = path.join(b.dir, `${logName}.log`);
        const started = process.hrtime.bigint();
        // Its own process group, so a Ctrl-C here can stop the CLI and everything it started.
        const child = spawn("bash", [path.join(repoRoot, "scripts", "pulumi.sh"), ...args], { env, detached: true, stdio: ["ignore", "pipe", "pipe"] });
        b.running.add(child);
        const sampler = startRssSampler(child.pid!);
        let out = "";
        child.stdout!.on("data", (d) => (out += d));
        child.stderr!.on("data", (d) => (out += d));
        child.on("error", reject);
        child.on("close", (code) => {
            b.running.delete(child);
            const rss = sampler.stop();
            const seconds = Number(process.hrtime.bigint() - started) / 1e9;
            fs.writeFileSync(log, out);
            if (code !== 0) return reject(new Error(`pulumi ${args.join(" ")} exited ${code} after ${seconds.toFixed(1)} s; last lines:\n${out.split("\n").slice(-40).join("\n")}`));
            resolve({ seconds, rss, out });
        });
    });
}

function stopAll(b: Bench): void {
    for (const c of b.running) {
        try {
            process.kill(-c.pid!, "SIGTERM");
        } catch {
            // gone
        }
    }
    for (const h of b.hosts) h.stop();
    b.agent?.kill();
}

async function main(): Promise<void> {
    const o = parseArgs(process.argv.slice(2));
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "kvmtune-scale-"));
    const b: Bench = { dir, hosts: [], running: new Set() };
    let cleaned = false;
    const cleanup = async () => {
        if (cleaned) return;
        cleaned = true;
        stopAll(b);
        await Promise.race([Promise.all(b.hosts.map((h) => h.exited)), new Promise((r) => setTimeout(r, 5000))]);
        if (o.keep) say(`kept ${dir}`);
        else fs.rmSync(dir, { recursive: true, force: true });
    };
    for (const sig of ["SIGINT", "SIGTERM", "SIGHUP"] as const) {
        process.once(sig, () => {
            say(`${sig}: stopping`);
            void cleanup().then(() => process.exit(130));
        });
    }
    try {
        say(`${o.hosts} hosts x ${resourcesPerHost(o.disks)} resources in ${dir}; load average ${os.loadavg().map((l) => l.toFixed(1)).join(" ")}`);
        const hostKey = path.join(dir, "host_ed25519");
        const clientKey = path.join(dir, "client_ed25519");
        execFileSync("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-C", "kvmtune-scale-host", "-f", hostKey]);
        execFileSync("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-C", "kvmtune-scale-client", "-f", clientKey]);
        // The pin: `SHA256:...`, the second field of `ssh-keygen -lf`.
        const fingerprint = execFileSync("ssh-keygen", ["-lf", `${hostKey}.pub`], { encoding: "utf8" }).split(" ")[1];
        const ports = await freePorts(o.hosts);
        const names = ports.map((_p, i) => `sim${String(i).padStart(3, "0")}`);
        const t0 = Date.now();
        await inBatches(names, 8, async (name, i) => {
            const h = await startSimHost({ dir: path.join(dir, "hosts", name), name, port: ports[i], hostKeyFile: hostKey, clientPublicKey: fs.readFileSync(`${clientKey}.pub`, "utf8"), disks: o.disks });
            b.hosts.push(h);
        });
        say(`${o.hosts} sshd's listening (${((Date.now() - t0) / 1000).toFixed(1)} s)`);

        const project = path.join(dir, "project");
        writeProject(project, o.main, o.upgradeFrom);
        const env: NodeJS.ProcessEnv = {
            ...process.env,
            PULUMI_BACKEND_URL: `file://${path.join(dir, "state")}`,
            PULUMI_CONFIG_PASSPHRASE: "kvmtune-scale-bench",
        };
        fs.mkdirSync(path.join(dir, "state"));
        const cwd = ["--cwd", project, "--stack", "bench", "--non-interactive"];
        await pulumi(b, env, ["stack", "init", "bench", "--cwd", project, "--non-interactive"], "stack-init");
        const benchHosts: BenchHost[] = b.hosts.map((h) => ({ name: h.name, port: h.port })).sort((x, y) => x.name.localeCompare(y.name));
        if (o.auth === "agent") env.SSH_AUTH_SOCK = await startAgent(b, clientKey);
        const login = o.auth === "agent" ? { agent: true as const } : { privateKeyPath: clientKey };
        writeStackConfig(path.join(project, "Pulumi.bench.yaml"), benchHosts, { login, hostKey: fingerprint, disks: o.disks, topologyDir: path.join(dir, "topology") });
        const parallel = o.parallel ? ["--parallel", String(o.parallel)] : [];

        const connections = () => b.hosts.map((h) => h.acceptedConnections());
        let upgradeFromBytes: number | undefined;
        if (o.upgradeFrom) {
            say(`up with ${o.upgradeFrom} (untimed; load average ${os.loadavg()[0].toFixed(1)})`);
            await pulumi(b, env, ["up", "--yes", "--skip-preview", ...parallel, ...cwd], "up-older");
            const older = execFileSync("bash", [path.join(repoRoot, "scripts", "pulumi.sh"), "stack", "export", ...cwd], { env, maxBuffer: 1 << 30 });
            fs.writeFileSync(path.join(dir, "state-older.json"), older);
            upgradeFromBytes = older.length;
            useKvmtune(project, repoRoot, o.main);
            say(`switched the project to ${repoRoot}; state ${older.length} bytes`);
        }
        const before = connections();
        say(`up (load average ${os.loadavg()[0].toFixed(1)})`);
        const up = await pulumi(b, env, ["up", "--yes", "--skip-preview", ...(o.upgradeFrom ? ["--expect-no-changes", "--diff"] : []), ...parallel, ...cwd], "up");
        const afterUp = connections();
        const upLines = up.out.split("\n").length;
        say(`up: ${up.seconds.toFixed(1)} s, peak RSS ${up.rss.peakMiB.toFixed(0)} MiB, ${upLines} lines printed; ${summaryLine(up.out)}`);
        say(`preview --refresh (load average ${os.loadavg()[0].toFixed(1)})`);
        const preview = await pulumi(b, env, ["preview", "--refresh", "--expect-no-changes", "--diff", ...parallel, ...cwd], "preview-refresh");
        const afterPreview = connections();
        say(`preview --refresh: ${preview.seconds.toFixed(1)} s, peak RSS ${preview.rss.peakMiB.toFixed(0)} MiB; ${summaryLine(preview.out)}`);
        const state = execFileSync("bash", [path.join(repoRoot, "scripts", "pulumi.sh"), "stack", "export", ...cwd], { env, maxBuffer: 1 << 30 });
        fs.writeFileSync(path.join(dir, "state.json"), state);

        let destroySeconds: number | undefined;
        if (o.upgradeFrom) {
            say("destroy (delete of what the older version stored)");
            const destroy = await pulumi(b, env, ["destroy", "--yes", "--skip-preview", ...parallel, ...cwd], "destroy");
            destroySeconds = round(destroy.seconds);
            say(`destroy: ${destroy.seconds.toFixed(1)} s; ${summaryLine(destroy.out)}`);
        }

        const perStep = [afterUp.map((n, i) => n - before[i]), afterPreview.map((n, i) => n - afterUp[i])];
        // Engine settings from the environment that change what is measured (Go's GC, checkpoints).
        const engineEnv = Object.fromEntries(["GOMEMLIMIT", "GOGC", "PULUMI_SKIP_CHECKPOINTS"].filter((k) => process.env[k] !== undefined).map((k) => [k, process.env[k]]));
        const detail = {
            loadAverage: os.loadavg(),
            auth: o.auth,
            ...(Object.keys(engineEnv).length ? { engineEnv } : {}),
            ...(o.upgradeFrom ? { upgradeFrom: o.upgradeFrom, stateBytesBeforeUpgrade: upgradeFromBytes, destroySeconds } : {}),
            connectionsUp: range(perStep[0]),
            connectionsPreview: range(perStep[1]),
            commandsPerHost: range(b.hosts.map((h) => h.commands())),
            upLinesPrinted: upLines,
            rssUp: roundAll(up.rss.byProcess),
            rssPreview: roundAll(preview.rss.byProcess),
            stateByType: stateByType(state.toString("utf8")),
            // Bytes per resource as laid out in the export, by type, with the largest fields (stateBreakdown.ts).
            stateExportByType: Object.fromEntries(
                Object.entries(breakdown(state.toString("utf8"))).map(([t, b]) => [t, { count: b.count, bytesEach: b.bytesEach, fields: Object.fromEntries(Object.entries(b.fields).slice(0, 8)) }]),
            ),
        };
        fs.writeFileSync(path.join(dir, "detail.json"), JSON.stringify(detail, null, 2));
        say(`detail: ${JSON.stringify(detail)}`);
        const result: Result = {
            hosts: o.hosts,
            resourcesPerHost: resourcesPerHost(o.disks),
            upSeconds: round(up.seconds),
            noopPreviewRefreshSeconds: round(preview.seconds),
            peakRssMiB: Math.round(Math.max(up.rss.peakMiB, preview.rss.peakMiB)),
            stateBytes: state.length,
            sshConnectionsPerHost: Math.max(...perStep.flat()),
        };
        if (o.out) fs.appendFileSync(o.out, JSON.stringify({ ...result, label: o.label, parallel: o.parallel ?? null, at: new Date().toISOString(), detail }) + "\n");
        await cleanup();
        process.stdout.write(JSON.stringify(result) + "\n");
    } catch (err) {
        await cleanup();
        throw err;
    }
}

const round = (n: number) => Math.round(n * 10) / 10;
const roundAll = (r: Record<string, number>) => Object.fromEntries(Object.entries(r).map(([k, v]) => [k, Math.round(v)]));
const range = (xs: number[]) => ({ min: Math.min(...xs), max: Math.max(...xs) });

/** The engine's `Resources:` summary, on one line. */
function summaryLine(out: string): string {
    const at = out.lastIndexOf("Resources:");
    return at < 0 ? "(no summary)" : out.slice(at).split("\n").slice(0, 6).map((l) => l.trim()).filter(Boolean).join(", ");
}

/** Bytes of state per resource type, and the serialized provider's share (`__provider`). */
function stateByType(text: string): Record<string, { count: number; bytes: number; providerBytes: number }> {
    const resources = (JSON.parse(text).deployment?.resources ?? []) as Array<{ type: string; inputs?: Record<string, unknown>; outputs?: Record<string, unknown> }>;
    const out: Record<string, { count: number; bytes: number; providerBytes: number }> = {};
    for (const r of resources) {
        const t = (out[r.type] ??= { count: 0, bytes: 0, providerBytes: 0 });
        t.count++;
        t.bytes += JSON.stringify(r).length;
        t.providerBytes += JSON.stringify(r.inputs?.__provider ?? "").length + JSON.stringify(r.outputs?.__provider ?? "").length;
    }
    return out;
}

main().catch((err: Error) => {
    process.stderr.write(`bench:scale: ${err.stack ?? err.message}\n`);
    process.exit(1);
});
