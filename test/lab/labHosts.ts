// Reads the lab's hosts independently of the library: the inventory written by `npm run lab -- up`
// and the system `ssh` binary with the lab's pinned host keys (StrictHostKeyChecking=yes).
import { spawn } from "node:child_process";
import { createHash } from "node:crypto";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import type { LabInventoryHost } from "../../fleet/labInventory";

/** A host of the inventory (the shape the program reads too), with its sudo user checked present. */
export interface LabHost extends LabInventoryHost {
  sudoUser: string;
  /** The lab image flavor the host runs (lab/image/flavors/): "bookworm" unless the inventory says. */
  flavor: string;
}

export interface LabInventory {
  /** Where the inventory was read from. */
  path: string;
  /** known_hosts file with every host's pinned key ([127.0.0.1]:PORT entries). */
  knownHostsPath: string;
  hosts: LabHost[];
}

export interface SshResult {
  stdout: string;
  stderr: string;
  code: number;
}

export interface SshOptions {
  /** Log in as this user instead of host.user. */
  user?: string;
  /** Written to the remote command's stdin. */
  input?: string;
  /** Kill ssh after this many milliseconds (default 300000). */
  timeoutMs?: number;
}

/** The repository root, from bin/test/lab (compiled) or test/lab (sources). */
export const repoRoot: string = path.resolve(__dirname, "../../..");

export function inventoryPath(): string {
  return process.env.KVMTUNE_LAB_INVENTORY ?? path.join(repoRoot, ".lab", "inventory.json");
}

/**
 * The lab host a suite runs on: the inventory's host at `index`, or its last host when it lists
 * fewer. `npm test` runs the suites of the first and second host side by side, each group with an
 * inventory of its one host; a whole inventory gives each suite the host it names.
 */
export function suiteHost(index: number): LabHost {
  const hosts = loadInventory().hosts;
  return hosts[Math.min(index, hosts.length - 1)];
}

function fail(file: string, why: string): never {
  throw new Error(`lab inventory ${file}: ${why}`);
}

/** Loads and checks the inventory; throws a clear error when the lab is not up. */
export function loadInventory(file: string = inventoryPath()): LabInventory {
  let text: string;
  try {
    text = fs.readFileSync(file, "utf8");
  } catch (e) {
    throw new Error(
      `no lab inventory at ${file} (${(e as NodeJS.ErrnoException).code ?? String(e)}): ` +
        `start the lab hosts with "npm run lab -- up", or set KVMTUNE_LAB_INVENTORY`,
    );
  }
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (e) {
    fail(file, `not JSON: ${(e as Error).message}`);
  }
  if (typeof raw !== "object" || raw === null || !Array.isArray((raw as { hosts?: unknown }).hosts)) {
    fail(file, `expected {"hosts": [...]}`);
  }
  const obj = raw as { hosts: unknown[]; knownHostsPath?: unknown };
  const hosts = obj.hosts.map((h, i): LabHost => {
    const o = h as Record<string, unknown>;
    const str = (k: string): string => {
      if (typeof o?.[k] !== "string" || o[k] === "") fail(file, `hosts[${i}].${k} must be a non-empty string`);
      return o[k] as string;
    };
    const port = o?.port;
    if (typeof port !== "number" || !Number.isInteger(port) || port < 1 || port > 65535) {
      fail(file, `hosts[${i}].port must be a TCP port`);
    }
    const hostKey = str("hostKey");
    if (!/^SHA256:[A-Za-z0-9+/]{43}$/.test(hostKey)) fail(file, `hosts[${i}].hostKey is not a SHA256 fingerprint`);
    return {
      name: str("name"),
      host: str("host"),
      port,
      user: str("user"),
      privateKeyPath: str("privateKeyPath"),
      hostKey,
      sudoUser: str("sudoUser"),
      // Inventories from before flavors name none: their hosts are all the first flavor.
      flavor: o?.flavor === undefined ? "bookworm" : str("flavor"),
    };
  });
  if (hosts.length === 0) fail(file, `lists no hosts: start them with "npm run lab -- up"`);
  const knownHostsPath =
    typeof obj.knownHostsPath === "string" ? obj.knownHostsPath : path.join(path.dirname(file), "known_hosts");
  const inv: LabInventory = { path: file, knownHostsPath, hosts };
  checkPins(inv);
  return inv;
}

/** SHA256 fingerprint of an OpenSSH public key blob, in `ssh-keygen -lf` form. */
export function fingerprint(base64Blob: string): string {
  return "SHA256:" + createHash("sha256").update(Buffer.from(base64Blob, "base64")).digest("base64").replace(/=+$/, "");
}

/** The known_hosts file must pin, for each host, exactly the key the inventory names. */
function checkPins(inv: LabInventory): void {
  let lines: string[];
  try {
    lines = fs.readFileSync(inv.knownHostsPath, "utf8").split("\n");
  } catch (e) {
    throw new Error(`lab known_hosts ${inv.knownHostsPath} unreadable: ${(e as Error).message}`);
  }
  for (const h of inv.hosts) {
    const pattern = h.port === 22 ? h.host : `[${h.host}]:${h.port}`;
    const keys = lines
      .map((l) => l.trim().split(/\s+/))
      .filter((f) => f.length >= 3 && f[0].split(",").includes(pattern))
      .map((f) => fingerprint(f[2]));
    if (!keys.includes(h.hostKey)) {
      throw new Error(`lab known_hosts ${inv.knownHostsPath} has no key for ${pattern} with fingerprint ${h.hostKey}`);
    }
  }
}

let knownHostsFor: string | undefined;
function knownHosts(): string {
  return (knownHostsFor ??= loadInventory().knownHostsPath);
}

/** Connection sharing: a fresh SSH handshake costs ~0.6 s of emulated crypto on a lab host. */
function controlDir(): string {
  const dir = path.join(os.tmpdir(), `kvmtune-lab-ssh-${process.getuid?.() ?? "u"}`);
  fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
  return dir;
}

export function sshArgs(host: LabHost, user: string = host.user): string[] {
  return [
    "-i", host.privateKeyPath,
    "-p", String(host.port),
    "-o", "IdentitiesOnly=yes",
    "-o", "StrictHostKeyChecking=yes",
    "-o", `UserKnownHostsFile=${process.env.KVMTUNE_LAB_KNOWN_HOSTS ?? knownHosts()}`,
    "-o", "GlobalKnownHostsFile=/dev/null",
    "-o", "BatchMode=yes",
    "-o", "ConnectTimeout=30",
    "-o", "ServerAliveInterval=10",
    "-o", "ServerAliveCountMax=6",
    "-o", "LogLevel=ERROR",
    "-o", "ControlMaster=auto",
    "-o", `ControlPath=${path.join(controlDir(), "%C")}`,
    "-o", "ControlPersist=60",
    `${user}@${host.host}`,
  ];
}

/** Runs a command (a shell line, run by the remote user's shell) on a lab host. */
export function sshRun(host: LabHost, command: string, opts: SshOptions = {}): Promise<SshResult> {
  return new Promise((resolve, reject) => {
    const child = spawn("ssh", [...sshArgs(host, opts.user), command], { stdio: ["pipe", "pipe", "pipe"] });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on("data", (b: Buffer) => out.push(b));
    child.stderr.on("data", (b: Buffer) => err.push(b));
    const timer = setTimeout(() => child.kill("SIGKILL"), opts.timeoutMs ?? 300_000);
    child.on("error", (e) => {
      clearTimeout(timer);
      reject(e);
    });
    child.on("close", (code, signal) => {
      clearTimeout(timer);
      resolve({
        stdout: Buffer.concat(out).toString("utf8"),
        stderr: Buffer.concat(err).toString("utf8") + (signal ? `\n(ssh killed by ${signal})` : ""),
        code: code ?? 255,
      });
    });
    // ssh may close its stdin before reading it (a command that reads none, a quick failure): the
    // write then fails with EPIPE, which is no news (the exit code tells) and must not be uncaught.
    child.stdin.on("error", () => undefined);
    child.stdin.end(opts.input ?? "");
  });
}

/** Like sshRun, but throws (with the command, exit code and stderr) unless it exits 0; returns stdout. */
export async function sshOk(host: LabHost, command: string, opts: SshOptions = {}): Promise<string> {
  const r = await sshRun(host, command, opts);
  if (r.code !== 0) {
    throw new Error(`${host.name}: \`${command}\` exited ${r.code}: ${r.stderr.trim() || r.stdout.trim()}`);
  }
  return r.stdout;
}

/** The host's boot id (/proc/sys/kernel/random/boot_id): a new one after every boot. */
export async function labBootId(host: LabHost): Promise<string> {
  return (await sshOk(host, "cat /proc/sys/kernel/random/boot_id", { timeoutMs: 600_000 })).trim();
}
