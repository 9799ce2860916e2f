/** Inputs that pass validation, for tests that need a well-formed connection. */
import { execFileSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";

let cached: { privateKey: string; fingerprint: string } | undefined;

/** A real (throw-away) ed25519 key pair and its fingerprint, made once per test run. */
export function throwawayKey(): { privateKey: string; fingerprint: string } {
    if (!cached) {
        const dir = fs.mkdtempSync(path.join(os.tmpdir(), "kvmtune-key-"));
        const keyPath = path.join(dir, "id");
        execFileSync("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-f", keyPath]);
        const fingerprint = execFileSync("ssh-keygen", ["-lf", keyPath + ".pub"], { encoding: "utf8" }).split(" ")[1];
        cached = { privateKey: fs.readFileSync(keyPath, "utf8"), fingerprint };
        fs.rmSync(dir, { recursive: true });
    }
    return cached;
}

export function goodConnection(overrides: Record<string, unknown> = {}): Record<string, unknown> {
    const key = throwawayKey();
    return { host: "127.0.0.1", port: 2201, user: "root", privateKey: key.privateKey, hostKey: key.fingerprint, ...overrides };
}
