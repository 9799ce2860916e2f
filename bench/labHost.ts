/**
 * A lab host as the bench sees it: reached through the system `ssh` over one ControlMaster
 * connection of the bench's own, whose sessions are left out of the counts (by their client port),
 * and counted from the host's sshd log: "Accepted publickey" lines are connections, "Starting
 * session: command" lines are remote commands (sshd logs both at LogLevel VERBOSE, which
 * `host.sh prepare` sets).
 */
import { spawn } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import type { LabInventoryHost } from "../fleet/labInventory";

/** A host of the lab inventory, in the shape the program reads it. */
export type InventoryHost = LabInventoryHost;

/** What one host's sshd logged during a step, the bench's own sessions left out. */
export interface SshdCounts {
    connections: number;
    commands: number;
}

export interface RunResult {
    code: number | null;
    stdout: string;
    stderr: string;
}

/** Process groups of the programs running now, so an interrupted bench can end them (and theirs). */
export const running = new Set<number>();

/**
 * Runs a program to the end, collecting its output; never throws for a non-zero exit. It runs in
 * its own process group: past `timeoutSeconds` the whole group is ended (a Pulumi CLI leaves a
 * language host and a provider process behind it otherwise).
 */
export function runProgram(
    cmd: string,
    args: string[],
    opts: { cwd?: string; env?: NodeJS.ProcessEnv; stdin?: string; background?: boolean; timeoutSeconds?: number } = {},
): Promise<RunResult> {
    return new Promise((resolve, reject) => {
        if (opts.background) {
            // A program that leaves a child in the background (ssh -f) would hold our pipes open.
            const child = spawn(cmd, args, { cwd: opts.cwd, env: opts.env ?? process.env, stdio: "ignore" });
            child.on("error", reject);
            child.on("exit", (code) => resolve({ code, stdout: "", stderr: code === 0 ? "" : `${cmd} exited ${code}` }));
            return;
        }
        const child = spawn(cmd, args, { cwd: opts.cwd, env: opts.env ?? process.env, stdio: ["pipe", "pipe", "pipe"], detached: true });
        const group = child.pid;
        if (group !== undefined) running.add(group);
        let stdout = "";
        let stderr = "";
        const timer = opts.timeoutSeconds
            ? setTimeout(() => {
                  stderr += `\n[bench: ${cmd} ran past ${opts.timeoutSeconds} s; ended]`;
                  if (group !== undefined) killGroup(group);
              }, opts.timeoutSeconds * 1000)
            : undefined;
        child.stdout.setEncoding("utf8").on("data", (c: string) => (stdout += c));
        child.stderr.setEncoding("utf8").on("data", (c: string) => (stderr += c));
        child.on("error", reject);
        child.on("close", (code) => {
            if (timer) clearTimeout(timer);
            if (group !== undefined) running.delete(group);
            resolve({ code, stdout, stderr });
        });
        child.stdin.end(opts.stdin ?? "");
    });
}

/** Ends a process group we started (by its id, never by name). */
export function killGroup(group: number): void {
    try {
        process.kill(-group, "SIGTERM");
    } catch {
        // already gone
    }
}

const ACCEPTED = /^Accepted publickey for \S+ from \S+ port (\d+)\b/;
const COMMAND = /^Starting session: command for \S+ from \S+ port (\d+)\b/;

/** Counts connections and commands in sshd's log lines, except those of the client port `own`. */
export function countSshd(lines: string[], own: number | undefined): SshdCounts {
    let connections = 0;
    let commands = 0;
    for (const line of lines) {
        const a = ACCEPTED.exec(line);
        if (a && Number(a[1]) !== own) connections++;
        const c = COMMAND.exec(line);
        if (c && Number(c[1]) !== own) commands++;
    }
    return { connections, commands };
}

export class LabHost {
    private readonly control: string;
    private ownPort: number | undefined;
    private cursor = "";

    constructor(
        readonly inv: InventoryHost,
        private readonly knownHosts: string,
        controlDir: string,
    ) {
        this.control = path.join(controlDir, inv.name);
    }

    get name(): string {
        return this.inv.name;
    }

    /** ssh options that pin the host key as the lab's known_hosts has it (no trust on first use). */
    sshOptions(): string[] {
        return [
            "-i", this.inv.privateKeyPath,
            "-p", String(this.inv.port),
            "-o", `UserKnownHostsFile=${this.knownHosts}`,
            "-o", "StrictHostKeyChecking=yes",
            "-o", "BatchMode=yes",
            "-o", "ConnectTimeout=60",
        ];
    }

    get target(): string {
        return `${this.inv.user}@${this.inv.host}`;
    }

    /** Opens the bench's own connection, and learns its client port to leave it out of the counts. */
    async open(): Promise<void> {
        const r = await runProgram("ssh", [...this.sshOptions(), "-o", "ControlMaster=yes", "-o", `ControlPath=${this.control}`, "-o", "ControlPersist=yes", "-N", "-f", this.target], { background: true });
        if (r.code !== 0) throw new Error(`${this.name}: no SSH connection: ${r.stderr.trim()}`);
        const client = (await this.run('echo "$SSH_CLIENT"')).trim().split(/\s+/);
        this.ownPort = Number(client[1]);
    }

    /** Closes the bench's own connection (no control master of ours outlives the run). */
    async close(): Promise<void> {
        if (!fs.existsSync(this.control)) return;
        await runProgram("ssh", ["-o", `ControlPath=${this.control}`, "-O", "exit", this.target]);
    }

    /** Runs a command over the bench's connection; a non-zero exit throws. */
    async run(command: string, stdin?: string): Promise<string> {
        const r = await runProgram("ssh", [...this.sshOptions(), "-o", "ControlMaster=no", "-o", `ControlPath=${this.control}`, this.target, command], { stdin });
        if (r.code !== 0) throw new Error(`${this.name}: \`${command}\` exited ${r.code}: ${r.stderr.trim()}`);
        return r.stdout;
    }

    /** Runs bench/host.sh ACTION on the host. */
    hostScript(script: string, ...args: string[]): Promise<string> {
        return this.run(`bash -s -- ${args.join(" ")}`, script);
    }

    /** Marks the present end of sshd's log: the next `counts()` sees only what comes after. */
    async mark(): Promise<void> {
        const out = await this.run("journalctl -q -t sshd -n 0 --show-cursor");
        this.cursor = /^-- cursor: (\S+)/m.exec(out)?.[1] ?? "";
    }

    /** Connections and commands since the last mark (or counts); moves the mark to now. */
    async counts(): Promise<SshdCounts> {
        // journald takes sshd's lines from a socket; let it catch up before reading.
        const after = this.cursor ? `--after-cursor='${this.cursor}'` : "";
        const out = await this.run(`journalctl --sync 2>/dev/null; journalctl -q -t sshd -o cat --show-cursor ${after}`);
        const lines = out.split("\n");
        const c = /^-- cursor: (\S+)/.exec(lines.filter((l) => l.startsWith("-- cursor: ")).pop() ?? "");
        if (c) this.cursor = c[1];
        return countSshd(lines, this.ownPort);
    }
}
