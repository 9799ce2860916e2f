/**
 * The lab's hosts as fleet config: when a stack configures no hosts, the program uses the hosts
 * `npm run lab -- up` booted, from `.lab/inventory.json`.
 */
import * as fs from "fs";
import * as path from "path";

export interface LabInventoryHost {
    name: string;
    host: string;
    port: number;
    user: string;
    privateKeyPath: string;
    /** SHA256 fingerprint of the host's ed25519 key, as `ssh-keygen -lf` prints it. */
    hostKey: string;
    /** A non-root user with password-less sudo. */
    sudoUser?: string;
}

export function labInventoryPath(): string {
    return process.env.KVMTUNE_LAB_INVENTORY ?? path.resolve(__dirname, "..", "..", ".lab", "inventory.json");
}

export function readLabInventory(): LabInventoryHost[] | undefined {
    const file = labInventoryPath();
    if (!fs.existsSync(file)) return undefined;
    return (JSON.parse(fs.readFileSync(file, "utf8")) as { hosts: LabInventoryHost[] }).hosts;
}
