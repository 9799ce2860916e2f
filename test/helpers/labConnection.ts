/** Connections to lab hosts, as the library's inputs, from the lab inventory. */
import { execFile } from "child_process";
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
 * The lab's own commands run with the lab's state: the folder of the inventory in use, so a git
 * worktree can act on the hosts of the lab another checkout started (KVMTUNE_LAB_INVENTORY there).
 */
function labScript(script: "lab.sh" | "host.sh", args: string[]): Promise<unknown> {
    const file = path.resolve(__dirname, "..", "..", "..", "lab", script);
    const env = { ...process.env, KVMTUNE_LAB_STATE: process.env.KVMTUNE_LAB_STATE ?? path.dirname(inventoryPath()) };
    return promisify(execFile)("bash", [file, ...args], { timeout: 15 * 60_000, env });
}

/** Reboots a lab host through the guest and waits until SSH answers again (the lab's own command). */
export async function rebootLabHost(h: LabHost): Promise<void> {
    await labScript("lab.sh", ["reboot", h.name]);
}

/** Waits until a lab host answers SSH with a boot id other than `oldBootId` (it rebooted). */
export async function waitForLabHost(h: LabHost, oldBootId: string): Promise<void> {
    await labScript("host.sh", ["wait", h.name, oldBootId]);
}
