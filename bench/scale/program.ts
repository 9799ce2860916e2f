/**
 * The bench's Pulumi project, in a temp folder: the repository's own program (bin/index.js, the
 * fleet from stack config that `npm start` runs) behind a one-line `index.js`, with
 * `node_modules/kvmtune` and `node_modules/@pulumi` linked to this checkout, so the program and
 * the dynamic provider host (which the engine starts in the project folder) resolve `kvmtune` by
 * name exactly as in a user's project with kvmtune installed.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { diskNames } from "./simHost";

export const repoRoot = path.resolve(__dirname, "..", "..", "..");

export interface BenchHost {
    name: string;
    port: number;
}

/** Per host: HostFacts, one 2 MiB pool on both nodes, an elevator per disk, one stopped pinned guest. */
export function benchTuning(disks: number): Record<string, unknown> {
    return {
        hugepagePools: [{ pageSize: "2M", nodes: { "0": 64, "1": 64 } }],
        elevators: diskNames(disks).map((device) => ({ device, scheduler: "mq-deadline", tunables: { read_expire: 100 } })),
        guests: [{ name: "bench-db", vcpus: 1, cpuPins: [1], numaNode: 1, memoryMiB: 64, running: false }],
    };
}

/** kvmtune resources per host that `benchTuning(disks)` declares (the KvmHost component not counted). */
export function resourcesPerHost(disks: number): number {
    return 1 + 1 + disks + 1;
}

export function writeProject(dir: string, main?: string, kvmtune = repoRoot): void {
    fs.mkdirSync(path.join(dir, "node_modules"), { recursive: true });
    fs.writeFileSync(path.join(dir, "Pulumi.yaml"), "name: kvmtune-scale\nruntime: nodejs\nmain: index.js\ndescription: kvmtune's fleet program on simulated hosts (bench/scale)\n");
    fs.writeFileSync(path.join(dir, "package.json"), JSON.stringify({ name: "kvmtune-scale-bench", private: true, dependencies: { kvmtune: "*" } }, null, 2));
    useKvmtune(dir, kvmtune, main);
    fs.symlinkSync(path.join(repoRoot, "node_modules", "@pulumi"), path.join(dir, "node_modules", "@pulumi"));
}

/**
 * Points the project at a kvmtune checkout (built: its bin/ present) and a program: what `npm
 * install` of another kvmtune version does to a user's project. The provider host resolves
 * `kvmtune/providers/...` through this link, so after a switch, delete and refresh of resources
 * the older version stored run the stored provider text against this checkout.
 */
export function useKvmtune(dir: string, kvmtune: string, main = path.join(kvmtune, "bin", "index.js")): void {
    const link = path.join(dir, "node_modules", "kvmtune");
    fs.rmSync(link, { force: true });
    fs.symlinkSync(kvmtune, link);
    fs.writeFileSync(path.join(dir, "index.js"), `module.exports = require(${JSON.stringify(main)});\n`);
}

/**
 * Adds the fleet to the stack's config file that `pulumi stack init` wrote (it holds the
 * passphrase's salt). JSON is YAML, so the config is written as JSON.
 */
export function writeStackConfig(file: string, hosts: BenchHost[], o: { login: { privateKeyPath: string } | { agent: true }; hostKey: string; disks: number; topologyDir: string }): void {
    const init = fs.existsSync(file) ? fs.readFileSync(file, "utf8").trim() : "";
    const config = {
        "kvmtune:hosts": hosts.map((h) => ({ name: h.name, host: "127.0.0.1", port: h.port, user: "root", ...o.login, hostKey: o.hostKey })),
        "kvmtune:tuning": benchTuning(o.disks),
        "kvmtune:topologyDir": o.topologyDir,
    };
    fs.writeFileSync(file, `${init}\nconfig: ${JSON.stringify(config)}\n`);
}
