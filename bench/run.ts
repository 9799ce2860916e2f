/**
 * `npm run bench`: kvmtune against an Ansible playbook of the same lab tuning (issue 10), on the
 * same lab hosts, in one run. For each cell of hosts x bench elevators and each tool, from the
 * same reset state: first apply, a no-op check (`pulumi preview --refresh` / `ansible-playbook
 * --check`), one small change applied (vdb read_expire 100 -> 200). Each step: wall time, and per
 * host the SSH connections and remote commands its sshd logged. Floors: `pulumi preview` of an
 * empty program, one `ssh host true` per host.
 *
 *   npm run bench                      the whole matrix: 1,2,3 hosts x 5,20,50 elevators (lab reset)
 *   npm run bench -- --quick           1 host, 5 elevators, reset by host.sh (development)
 *   options: --hosts 1,2 --resources 5,20 --reset lab|teardown --repeat N (no-op checks, default 1) --out DIR
 *            --cells 1x5,3x5,1x20   these cells only, in this order (hosts x elevators), instead of the
 *                                   rectangle: both curves' arms for a fraction of the full matrix
 *            --tools kvmtune,ansible --ansible-scope auto|full
 *
 * The hosts are those of $KVMTUNE_LAB_INVENTORY (default .lab/inventory.json), in its order.
 *
 * The kvmtune side is the root program (index.ts) with its stack config, not a bench program:
 * what users run is what is measured (KvmHost, HostFacts, the topology picture), and the lab
 * tuning is fleet/labTuning.ts itself, so SR-IOV and vhost-net join the bench when they join it.
 */
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { labInventoryPath } from "../fleet/labInventory";
import { labTuning } from "../fleet/labTuning";
import type { Tuning } from "../fleet/tuning";
import { engineBin, engineEnv } from "../tools/pulumiEngine";
import { InventoryHost, killGroup, LabHost, runProgram, RunResult, running, SshdCounts } from "./labHost";
import { FloorResult, Results, StepResult, Tool, writeResults } from "./report";

const repo = path.resolve(__dirname, "..", "..");
const benchDir = path.join(repo, "bench");
const hostScript = fs.readFileSync(path.join(benchDir, "host.sh"), "utf8");
const STACK = "bench";
const PASSPHRASE = "kvmtune-bench";
/** The small change: a multiple of every kernel tick (1, 4, 10 ms), so it reads back exactly. */
const CHANGED_READ_EXPIRE = 200;
/** No single step may hang the unattended run (a stuck deployment is recorded as failed). */
const STEP_TIMEOUT_SECONDS = 45 * 60;

interface Options {
    mode: string;
    hosts: number[];
    resources: number[];
    /** The (hosts, elevators) cells to measure, in order: the rectangle hosts x resources unless --cells. */
    cells: Array<{ hosts: number; resources: number }>;
    reset: "lab" | "teardown";
    repeat: number;
    out: string;
    tools: Tool[];
    ansibleScope: "auto" | "full";
}

function parseOptions(argv: string[]): Options {
    const quick = argv.includes("--quick");
    const o: Options = {
        mode: quick ? "quick mode: 1 host, 5 elevators" : "full matrix",
        hosts: quick ? [1] : [1, 2, 3],
        resources: quick ? [5] : [5, 20, 50],
        cells: [],
        reset: quick ? "teardown" : "lab",
        // One of each: a full run is hours on a 2-core machine already (see bench/README.md).
        repeat: 1,
        out: benchDir,
        tools: ["kvmtune", "ansible"],
        ansibleScope: "auto",
    };
    const list = (s: string) => s.split(",").map((x) => Number(x.trim()));
    for (let i = 0; i < argv.length; i++) {
        const a = argv[i];
        const next = () => {
            const v = argv[++i];
            if (v === undefined) throw new Error(`${a} needs a value`);
            return v;
        };
        if (a === "--quick") continue;
        else if (a === "--hosts") o.hosts = list(next());
        else if (a === "--resources") o.resources = list(next());
        else if (a === "--cells") o.cells = next().split(",").map(parseCell);
        else if (a === "--reset") o.reset = next() === "lab" ? "lab" : "teardown";
        else if (a === "--repeat") o.repeat = Math.max(1, Number(next()));
        else if (a === "--out") o.out = path.resolve(next());
        else if (a === "--tools") o.tools = next().split(",") as Tool[];
        else if (a === "--ansible-scope") o.ansibleScope = next() === "full" ? "full" : "auto";
        else throw new Error(`unknown option ${a} (see bench/run.ts)`);
    }
    if (!quick && argv.some((a) => a === "--hosts" || a === "--resources")) o.mode = `hosts ${o.hosts.join(",")} x elevators ${o.resources.join(",")}`;
    if (o.cells.length) o.mode = `cells ${o.cells.map((c) => `${c.hosts}x${c.resources}`).join(", ")} (hosts x elevators)`;
    else o.cells = o.hosts.flatMap((hosts) => o.resources.map((resources) => ({ hosts, resources })));
    return o;
}

/** "3x20": 3 hosts, 20 bench elevators each. */
function parseCell(text: string): { hosts: number; resources: number } {
    const m = /^\s*(\d+)x(\d+)\s*$/.exec(text);
    if (!m || Number(m[1]) < 1) throw new Error(`--cells: "${text}" is not HOSTSxELEVATORS, such as 3x20`);
    return { hosts: Number(m[1]), resources: Number(m[2]) };
}

const log = (msg: string) => process.stderr.write(`[bench ${new Date().toISOString().slice(11, 19)}] ${msg}\n`);

async function timed<T>(f: () => Promise<T>): Promise<{ seconds: number; value: T }> {
    const t0 = process.hrtime.bigint();
    const value = await f();
    return { seconds: Number(process.hrtime.bigint() - t0) / 1e9, value };
}

/** The per-host elevators of the bench: one mq-deadline elevator per loop device. */
type Elevator = { device: string; scheduler: string; tunables: Record<string, number> };

class Bench {
    readonly tmp = fs.mkdtempSync(path.join(os.tmpdir(), "kvmtune-bench-"));
    readonly controlDir = path.join(this.tmp, "c");
    readonly results: Results;
    hosts: LabHost[] = [];
    private cleaned = false;
    private readonly inventoryFile = labInventoryPath();
    private knownHosts = "";

    constructor(readonly o: Options) {
        fs.mkdirSync(this.controlDir);
        const scopeSriov = o.ansibleScope === "full" || Object.keys(labTuning).some((k) => /sriov/i.test(k));
        const scopeVhost = o.ansibleScope === "full" || Object.keys(labTuning).some((k) => /vhost/i.test(k));
        this.results = {
            startedAt: new Date().toISOString(),
            mode: o.mode,
            machine: {
                nproc: os.cpus().length,
                memoryGiB: os.totalmem() / 2 ** 30,
                loadAtStart: os.loadavg().map((l) => l.toFixed(1)).join(" "),
                lab: "qemu TCG (software emulation), 4 vCPUs, 2 NUMA nodes, 3 GiB each; see lab/README.md",
            },
            versions: {},
            scope: {
                sriov: scopeSriov,
                vhost: scopeVhost,
                note:
                    `lab tuning (fleet/labTuning.ts: 2M huge pages 64+64 mounted at /dev/hugepages, vdb mq-deadline read_expire 100, guest demo-db pinned to node 1 on 2M pages${scopeVhost ? ", on the vhost-net network with 2 queues" : ""})` +
                    ` plus N bench elevators per host (mq-deadline, read_expire 100, on loop devices). SR-IOV: ${scopeSriov ? "on in both" : "off in both (not in kvmtune's lab tuning yet; the playbook has it: --ansible-scope full)"}.` +
                    ` vhost-net network: ${scopeVhost ? "on in both" : "off in both (not in kvmtune's lab tuning yet; the playbook has it)"}.`,
            },
            method: [],
            floors: [],
            steps: [],
        };
    }

    save(): void {
        writeResults(this.o.out, this.results);
    }

    async setUp(): Promise<void> {
        const inv = JSON.parse(fs.readFileSync(this.inventoryFile, "utf8")) as { knownHostsPath: string; hosts: InventoryHost[] };
        this.knownHosts = inv.knownHostsPath;
        const need = Math.max(...this.o.cells.map((c) => c.hosts));
        if (inv.hosts.length < need) throw new Error(`${this.inventoryFile} has ${inv.hosts.length} host(s); the bench asks for ${need}`);
        this.hosts = inv.hosts.slice(0, need).map((h) => new LabHost(h, this.knownHosts, this.controlDir));
        log(`hosts ${this.hosts.map((h) => h.name).join(", ")} from ${this.inventoryFile}`);
        await this.openAll();
        const v = (await runProgram("ansible", ["--version"])).stdout.split("\n")[0];
        const p = (await runProgram(path.join(await engineBin(), "pulumi"), ["version"])).stdout.trim();
        this.results.versions = { "pulumi CLI": p, ansible: v.replace(/^ansible /, ""), node: process.version };
        this.results.method = [
            `Reset before each tool's run: ${this.o.reset === "lab" ? "`npm run lab -- reset` (fresh disks, hosts restarted), then bench/host.sh prepare" : "bench/host.sh reset (undoes what either tool changed, the way a fresh lab host has it; no reboot)"}.`,
            "kvmtune: the root program (index.ts) with stack config kvmtune:hosts (per host: the lab tuning plus the bench elevators) on a fresh file backend. apply = `pulumi up --yes --skip-preview`; check = `pulumi preview --refresh`; change = `pulumi up --yes --skip-preview` after the config change.",
            "Ansible: bench/ansible/lab-tuning.yml with an inventory made from the lab inventory (pinned known_hosts, StrictHostKeyChecking=yes). ansible.cfg: pipelining on, ControlMaster/ControlPersist 60 s, interpreter fixed (no discovery), forks 10. The bench closes Ansible's control masters after every step, so each step opens its connections cold, as a Pulumi deployment does. apply = `ansible-playbook`; check = `--check`; change = `-e vdb_read_expire=200`.",
            "Counted on each host: sshd at LogLevel VERBOSE (bench/host.sh prepare); `Accepted publickey` lines = SSH connections, `Starting session: command` lines = remote commands, read with journalctl after a cursor. The bench's own SSH connection (one ControlMaster per host) is left out by its client port.",
            `The small change: vdb read_expire 100 -> ${CHANGED_READ_EXPIRE} (not 150: the kernel keeps it in 4 ms ticks and reads 150 back as 152, which a plain Ansible comparison would report as changed forever).`,
            `No-op checks repeated ${this.o.repeat} time(s); the tables show medians. kvmtune's own poolStats() counters live in the provider process the engine starts and exits, so the sshd counts stand in for them.`,
        ];
    }

    async openAll(): Promise<void> {
        await Promise.all(this.hosts.map(async (h) => {
            await h.open();
            await h.hostScript(hostScript, "prepare");
        }));
    }

    async closeAll(): Promise<void> {
        await Promise.all(this.hosts.map((h) => h.close()));
    }

    /** Puts the hosts of a cell back to a fresh lab host's state, and gives each `n` loop devices. */
    async reset(hosts: LabHost[], n: number): Promise<Map<string, string[]>> {
        if (this.o.reset === "lab") {
            const labRepo = path.dirname(path.dirname(this.inventoryFile));
            if (path.basename(path.dirname(this.inventoryFile)) !== ".lab" || !fs.existsSync(path.join(labRepo, "lab", "lab.sh"))) {
                throw new Error(`--reset lab needs the lab's own inventory (<repo>/.lab/inventory.json), not ${this.inventoryFile}`);
            }
            await this.closeAll();
            log("lab reset (restarts every lab host: minutes)");
            const r = await runProgram("bash", [path.join(labRepo, "lab", "lab.sh"), "reset"], { cwd: labRepo });
            if (r.code !== 0) throw new Error(`lab reset failed: ${r.stderr.slice(-2000)}`);
            await this.openAll();
        } else {
            await Promise.all(hosts.map((h) => h.hostScript(hostScript, "reset")));
        }
        const devices = new Map<string, string[]>();
        await Promise.all(hosts.map(async (h) => {
            const out = await h.hostScript(hostScript, "loops", String(n));
            devices.set(h.name, out.trim().split("\n").filter(Boolean).map((l) => l.split(" ")[1]));
        }));
        return devices;
    }

    /** Times `f` and counts what each host's sshd logged meanwhile. */
    async measure(hosts: LabHost[], f: () => Promise<{ ok: boolean; changed: number | null }>) {
        await Promise.all(hosts.map((h) => h.mark()));
        const { seconds, value } = await timed(f);
        const sshd: Record<string, SshdCounts> = {};
        await Promise.all(hosts.map(async (h) => (sshd[h.name] = await h.counts())));
        return { seconds, sshd, ...value };
    }

    record(r: Omit<StepResult, "rep"> & { rep?: number }): void {
        const row: StepResult = { rep: 0, ...r };
        this.results.steps.push(row);
        const counts = Object.entries(row.sshd).map(([h, c]) => `${h} ${c.connections} conn ${c.commands} cmds`).join(", ");
        log(`${row.tool} ${row.step} (${row.hosts} host(s), ${row.resources} elevators): ${row.seconds.toFixed(1)} s, changed ${row.changed}, ${counts}${row.ok ? "" : " FAILED"}`);
        this.save();
    }

    // ---- floors ------------------------------------------------------------------------------

    async floors(): Promise<void> {
        const env = await this.pulumiEnv(path.join(this.tmp, "empty-state"));
        const cwd = path.join(benchDir, "empty");
        await this.pulumi(["stack", "init", "empty", "--non-interactive"], env, cwd);
        try {
            const r = await timed(() => this.pulumi(["preview", "--non-interactive", "--stack", "empty"], env, cwd));
            if (r.value.code !== 0) throw new Error(`preview of the empty program failed: ${r.value.stdout}${r.value.stderr}`);
            this.results.floors.push({ what: "`pulumi preview` of an empty program", seconds: r.seconds });
        } finally {
            fs.rmSync(path.join(cwd, "Pulumi.empty.yaml"), { force: true });
        }
        const perHost: Record<string, number> = {};
        const m = await this.measure(this.hosts, async () => {
            await Promise.all(this.hosts.map(async (h) => {
                const t = await timed(() => runProgram("ssh", [...h.sshOptions(), "-o", "ControlMaster=no", "-o", "ControlPath=none", h.target, "true"]));
                if (t.value.code !== 0) throw new Error(`${h.name}: ssh true failed: ${t.value.stderr}`);
                perHost[h.name] = t.seconds;
            }));
            return { ok: true, changed: null };
        });
        const floor: FloorResult = { what: "one `ssh host true` per host (in parallel)", seconds: m.seconds, perHost, sshd: m.sshd };
        this.results.floors.push(floor);
        log(`floors: ${this.results.floors.map((f) => `${f.what} ${f.seconds.toFixed(1)} s`).join("; ")}`);
        this.save();
    }

    // ---- kvmtune -----------------------------------------------------------------------------

    async pulumiEnv(backend: string): Promise<NodeJS.ProcessEnv> {
        fs.mkdirSync(backend, { recursive: true });
        return { ...process.env, ...(await engineEnv()), PULUMI_BACKEND_URL: `file://${backend}`, PULUMI_CONFIG_PASSPHRASE: PASSPHRASE };
    }

    async pulumi(args: string[], env: NodeJS.ProcessEnv, cwd = repo): Promise<RunResult> {
        const r = await runProgram(path.join(await engineBin(), "pulumi"), args, { cwd, env, timeoutSeconds: STEP_TIMEOUT_SECONDS });
        fs.appendFileSync(path.join(this.tmp, "pulumi.log"), `$ pulumi ${args.join(" ")}\n${r.stdout}${r.stderr}\n`);
        return r;
    }

    /** Stack config for the cell: per host, its connection and the lab tuning plus its elevators. */
    stackConfig(hosts: LabHost[], devices: Map<string, string[]>, readExpire: number): string {
        const configured = hosts.map((h) => {
            const lab = JSON.parse(JSON.stringify(labTuning)) as Tuning;
            const elevators = (lab.elevators ?? []).map((e) => (e.device === "vdb" ? { ...e, tunables: { ...(e.tunables as object), read_expire: readExpire } } : e));
            const bench: Elevator[] = (devices.get(h.name) ?? []).map((d) => ({ device: d, scheduler: "mq-deadline", tunables: { read_expire: 100 } }));
            return {
                name: h.name,
                host: h.inv.host,
                port: h.inv.port,
                user: h.inv.user,
                privateKeyPath: h.inv.privateKeyPath,
                hostKey: h.inv.hostKey,
                tuning: { ...lab, elevators: [...elevators, ...bench] },
            };
        });
        // JSON is YAML: structured config as a flow mapping.
        return [
            "config:",
            `  kvmtune:hosts: ${JSON.stringify(configured)}`,
            `  kvmtune:topologyDir: ${JSON.stringify(path.join(this.tmp, "topology"))}`,
            "",
        ].join("\n");
    }

    async kvmtune(hosts: LabHost[], devices: Map<string, string[]>, n: number): Promise<void> {
        const env = await this.pulumiEnv(path.join(this.tmp, `state-${hosts.length}-${n}`));
        const stackFile = path.join(repo, `Pulumi.${STACK}.yaml`);
        const init = await this.pulumi(["stack", "init", STACK, "--non-interactive"], env);
        if (init.code !== 0) throw new Error(`pulumi stack init: ${init.stderr}`);
        const salt = fs.readFileSync(stackFile, "utf8").split("\n").filter((l) => l.startsWith("encryptionsalt:"));
        const setConfig = (readExpire: number) => fs.writeFileSync(stackFile, [...salt, this.stackConfig(hosts, devices, readExpire)].join("\n"));
        // The engine's closing summary ("Resources:\n    + 11 created\n    2 unchanged").
        const changedIn = (text: string) => {
            let total = 0;
            for (const m of text.slice(text.lastIndexOf("Resources:")).matchAll(/(\d+) (?:to )?(create|created|update|updated|delete|deleted|replace|replaced)\b/g)) total += Number(m[1]);
            return total;
        };
        const up = async () => {
            const r = await this.pulumi(["up", "--yes", "--skip-preview", "--non-interactive", "--suppress-progress", "--stack", STACK], env);
            return { ok: r.code === 0, changed: r.code === 0 ? changedIn(r.stdout) : null };
        };
        const base = { tool: "kvmtune" as Tool, hosts: hosts.length, resources: n };
        try {
            setConfig(100);
            this.record({ ...base, step: "apply", ...(await this.measure(hosts, up)) });
            for (let rep = 0; rep < this.o.repeat; rep++) {
                const m = await this.measure(hosts, async () => {
                    const r = await this.pulumi(["preview", "--refresh", "--non-interactive", "--json", "--stack", STACK], env);
                    let changed: number | null = null;
                    try {
                        const summary = (JSON.parse(r.stdout) as { changeSummary?: Record<string, number> }).changeSummary ?? {};
                        changed = Object.entries(summary).filter(([op]) => op !== "same").reduce((a, [, c]) => a + c, 0);
                    } catch {
                        changed = null;
                    }
                    return { ok: r.code === 0, changed };
                });
                this.record({ ...base, step: "check", rep, ...m });
            }
            setConfig(CHANGED_READ_EXPIRE);
            this.record({ ...base, step: "change", ...(await this.measure(hosts, up)) });
        } finally {
            await this.pulumi(["stack", "rm", STACK, "--yes", "--force", "--non-interactive"], env);
            fs.rmSync(stackFile, { force: true });
        }
    }

    // ---- Ansible -----------------------------------------------------------------------------

    async ansible(hosts: LabHost[], devices: Map<string, string[]>, n: number): Promise<void> {
        const dir = path.join(this.tmp, `ansible-${hosts.length}-${n}`);
        fs.mkdirSync(path.join(dir, "host_vars"), { recursive: true });
        const inventory = [
            "[lab]",
            ...hosts.map((h) => `${h.name} ansible_host=${h.inv.host} ansible_port=${h.inv.port} ansible_user=${h.inv.user} ansible_ssh_private_key_file=${h.inv.privateKeyPath}`),
            "",
            "[lab:vars]",
            `ansible_ssh_common_args='-o UserKnownHostsFile=${this.knownHosts} -o StrictHostKeyChecking=yes'`,
            "",
        ].join("\n");
        fs.writeFileSync(path.join(dir, "inventory.ini"), inventory);
        for (const h of hosts) {
            const bench: Elevator[] = (devices.get(h.name) ?? []).map((d) => ({ device: d, scheduler: "mq-deadline", tunables: { read_expire: 100 } }));
            fs.writeFileSync(path.join(dir, "host_vars", `${h.name}.json`), JSON.stringify({ bench_elevators: bench }, null, 2));
        }
        const scope = JSON.stringify({ sriov_enabled: this.results.scope.sriov, vhost_enabled: this.results.scope.vhost });
        const control = path.join(this.tmp, "a");
        fs.mkdirSync(control, { recursive: true });
        const env = {
            ...process.env,
            ANSIBLE_CONFIG: path.join(benchDir, "ansible", "ansible.cfg"),
            ANSIBLE_SSH_CONTROL_PATH_DIR: control,
            ANSIBLE_NOCOLOR: "1",
        };
        const closeMasters = async () => {
            for (const s of fs.readdirSync(control)) await runProgram("ssh", ["-o", `ControlPath=${path.join(control, s)}`, "-O", "exit", "x"]);
        };
        const play = async (extra: string[]) => {
            const args = ["-i", path.join(dir, "inventory.ini"), path.join(benchDir, "ansible", "lab-tuning.yml"), "-e", scope, ...extra];
            const r = await runProgram("ansible-playbook", args, { cwd: path.join(benchDir, "ansible"), env, timeoutSeconds: STEP_TIMEOUT_SECONDS });
            fs.appendFileSync(path.join(this.tmp, "ansible.log"), `$ ansible-playbook ${args.join(" ")}\n${r.stdout}${r.stderr}\n`);
            // Closed inside the timed step: ControlPersist would otherwise keep them for the next step.
            await closeMasters();
            const recap = [...r.stdout.matchAll(/changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)/g)];
            const changed = recap.reduce((a, m) => a + Number(m[1]), 0);
            const failed = recap.some((m) => m[2] !== "0" || m[3] !== "0");
            return { ok: r.code === 0 && !failed && recap.length === hosts.length, changed: recap.length ? changed : null };
        };
        const base = { tool: "ansible" as Tool, hosts: hosts.length, resources: n };
        this.record({ ...base, step: "apply", ...(await this.measure(hosts, () => play([])))});
        for (let rep = 0; rep < this.o.repeat; rep++) {
            this.record({ ...base, step: "check", rep, ...(await this.measure(hosts, () => play(["--check"]))) });
        }
        this.record({ ...base, step: "change", ...(await this.measure(hosts, () => play(["-e", `vdb_read_expire=${CHANGED_READ_EXPIRE}`]))) });
    }

    // ---- the run -----------------------------------------------------------------------------

    async run(): Promise<void> {
        await this.setUp();
        this.save();
        try {
            await this.floors();
            for (const { hosts: h, resources: n } of this.o.cells) {
                const hosts = this.hosts.slice(0, h);
                for (const tool of this.o.tools) {
                    log(`${tool}: ${h} host(s), ${n} bench elevators each: reset`);
                    const devices = await this.reset(hosts, n);
                    await (tool === "kvmtune" ? this.kvmtune(hosts, devices, n) : this.ansible(hosts, devices, n));
                }
            }
        } finally {
            await this.cleanUp();
        }
    }

    /** The hosts as they were (no bench loops, sshd's log level), our SSH masters closed. */
    async cleanUp(): Promise<void> {
        if (this.cleaned) return;
        this.cleaned = true;
        log("cleaning up the hosts");
        fs.rmSync(path.join(repo, `Pulumi.${STACK}.yaml`), { force: true });
        fs.rmSync(path.join(benchDir, "empty", "Pulumi.empty.yaml"), { force: true });
        await Promise.all(this.hosts.map((h) => h.hostScript(hostScript, "cleanup").catch((e) => log(`${h.name}: cleanup: ${(e as Error).message}`))));
        await this.closeAll();
        this.results.finishedAt = new Date().toISOString();
        this.results.machine.loadAtEnd = os.loadavg().map((l) => l.toFixed(1)).join(" ");
        this.save();
        // Ansible's ControlPersist masters leave its process group: close them by their sockets.
        const ansibleControl = path.join(this.tmp, "a");
        for (const s of fs.existsSync(ansibleControl) ? fs.readdirSync(ansibleControl) : []) {
            await runProgram("ssh", ["-o", `ControlPath=${path.join(ansibleControl, s)}`, "-O", "exit", "x"]);
        }
        fs.rmSync(this.controlDir, { recursive: true, force: true });
        fs.rmSync(ansibleControl, { recursive: true, force: true });
        log(`logs of this run: ${this.tmp} (pulumi.log, ansible.log); results in ${this.o.out}`);
    }
}

async function main(): Promise<void> {
    const o = parseOptions(process.argv.slice(2));
    const bench = new Bench(o);
    // Interrupted: end what runs, then clean the hosts up as a finished run does.
    const stop = (signal: NodeJS.Signals) => {
        log(`${signal}: stopping`);
        for (const g of running) killGroup(g);
        void bench.cleanUp().finally(() => process.exit(130));
    };
    process.once("SIGINT", stop);
    process.once("SIGTERM", stop);
    try {
        await bench.run();
    } catch (err) {
        log(`failed: ${(err as Error).stack ?? String(err)}`);
        process.exitCode = 1;
    }
}

void main();
