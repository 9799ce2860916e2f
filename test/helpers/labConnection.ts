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
 * Reboots a lab host through the guest and waits until SSH answers again (the lab's own command).
 * The lab's state is the folder of the inventory in use, so a git worktree can reboot the hosts
 * of the lab another checkout started (KVMTUNE_LAB_INVENTORY pointing there).
 */
export async function rebootLabHost(h: LabHost): Promise<void> {
    const lab = path.resolve(__dirname, "..", "..", "..", "lab", "lab.sh");
    const env = { ...process.env, KVMTUNE_LAB_STATE: process.env.KVMTUNE_LAB_STATE ?? path.dirname(inventoryPath()) };
    await promisify(execFile)("bash", [lab, "reboot", h.name], { timeout: 15 * 60_000, env });
}
