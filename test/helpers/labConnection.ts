/** Connections to lab hosts, as the library's inputs, from the lab inventory. */
import { ChildProcess, execFile, spawn } from "child_process";
import * as fs from "fs";
import * as path from "path";
import { promisify } from "util";
import { Connection, connectionSchema } from "../../resources/host/connection";
import { inventoryPath, LabHost } from "../lab/labHosts";

/** The connection a resource takes (validated, defaults filled). */
export function labConnection(h: LabHost, overrides: Partial<Connection> = {}): Connection {
    return connectionSchema.parse({
        host: h.host,
        port: h.port,
        user: h.user,
        privateKey: fs.readFileSync(h.privateKeyPath, "utf8"),
        hostKey: h.hostKey,
        ...overrides,
    });
}

/**
 * The lab hosts as the root program's stack config wants them (`kvmtune:hosts[i].*`), the private
 * key as a secret: encrypted in the stack's config file and in state.
 */
export function labHostsConfig(hosts: LabHost[]): Record<string, { value: string; secret?: boolean }> {
    const config: Record<string, { value: string; secret?: boolean }> = {};
    hosts.forEach((h, i) => {
        const at = `kvmtune:hosts[${i}]`;
        config[`${at}.name`] = { value: h.name };
        config[`${at}.host`] = { value: h.host };
        config[`${at}.port`] = { value: String(h.port) };
        config[`${at}.user`] = { value: h.user };
        config[`${at}.hostKey`] = { value: h.hostKey };
        config[`${at}.privateKey`] = { value: fs.readFileSync(h.privateKeyPath, "utf8"), secret: true };
    });
    return config;
}

/**
 * The lab's own commands run with the lab's state: the folder of the inventory in use, so a git
 * worktree can act on the hosts of the lab another checkout started (KVMTUNE_LAB_INVENTORY there).
 */
function labScriptPath(script: "lab.sh" | "host.sh"): string {
    return path.resolve(__dirname, "..", "..", "..", "lab", script);
}
function labEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
    return { ...process.env, KVMTUNE_LAB_STATE: process.env.KVMTUNE_LAB_STATE ?? path.dirname(inventoryPath()), ...extra };
}
function labScript(script: "lab.sh" | "host.sh", args: string[]): Promise<unknown> {
    return promisify(execFile)("bash", [labScriptPath(script), ...args], { timeout: 15 * 60_000, env: labEnv() });
}

/** Reboots a lab host through the guest and waits until SSH answers again (the lab's own command). */
export async function rebootLabHost(h: LabHost): Promise<void> {
    await labScript("lab.sh", ["reboot", h.name]);
}

/** Waits until a lab host answers SSH with a boot id other than `oldBootId` (it rebooted). */
export async function waitForLabHost(h: LabHost, oldBootId: string): Promise<void> {
    await labScript("host.sh", ["wait", h.name, oldBootId]);
}

/**
 * Runs `fn` (an `up` that reboots lab hosts through HostReboot) with a stand-in for a BMC watchdog
 * on each host: a TCG guest now and then hangs on its way down or up, its vCPU never waking from
 * HLT (RCU stalls on the console; seen in CI on a reboot with nothing but `kvmtune.roll=1` added).
 * A real server does not do that, and kvmtune cannot power-cycle a host; the lab's own
 * `host.sh wait NAME BOOT_ID` can: it returns once the host answers with a new boot id and
 * power-cycles it when its console shows the kernel stuck. Its own timeout is set past any test,
 * so a host that does not reboot in `fn` is never power-cycled; every watchdog stops when `fn` settles.
 */
export async function withLabWatchdog<T>(hosts: LabHost[], bootIds: string[], fn: () => Promise<T>): Promise<T> {
    const env = labEnv({ KVMTUNE_LAB_BOOT_TIMEOUT: "7200" });
    const watchdogs: ChildProcess[] = hosts.map((h, i) => spawn("bash", [labScriptPath("host.sh"), "wait", h.name, bootIds[i]], { env, detached: true, stdio: "ignore" }));
    try {
        return await fn();
    } finally {
        for (const w of watchdogs) {
            if (w.exitCode === null && w.pid) {
                try {
                    process.kill(-w.pid, "SIGTERM");
                } catch {
                    // already gone
                }
            }
        }
    }
}

/**
 * Cuts a lab host's power the moment its kernel restarts (the console's `reboot: Restarting
 * system`), as a host that dies during a rolling reboot would: its QEMU process is killed, so
 * nothing boots until powerOnLabHost. Returns a promise of the cut (true) and a way to stop
 * watching (the promise then gives false).
 */
export function powerOffWhenRebooting(h: LabHost): { cut: Promise<boolean>; cancel: () => void } {
    const dir = path.join(labEnv().KVMTUNE_LAB_STATE!, "hosts", h.name);
    const restarts = () => (fs.readFileSync(path.join(dir, "console.log"), "utf8").match(/reboot: Restarting system/g) ?? []).length;
    const seen = restarts();
    let cancelled = false;
    const cut = (async () => {
        while (!cancelled) {
            if (restarts() > seen) {
                process.kill(Number(fs.readFileSync(path.join(dir, "qemu.pid"), "utf8").trim()), "SIGKILL");
                return true;
            }
            await new Promise((r) => setTimeout(r, 250));
        }
        return false;
    })();
    return { cut, cancel: () => (cancelled = true) };
}

/** Powers a lab host on again (a new QEMU process) and waits until it answers with a boot id other than `oldBootId`. */
export async function powerOnLabHost(h: LabHost, oldBootId: string): Promise<void> {
    await labScript("host.sh", ["start", h.name]);
    await waitForLabHost(h, oldBootId);
}
