/**
 * A Remote that runs commands on this machine: unit tests run the library's real read scripts
 * through it, so the parsers meet a real kernel's sysfs without needing a lab host.
 */
import { spawn } from "child_process";
import type { ExecOptions, ExecResult, Remote } from "../../resources/host/remote";

export class LocalRemote implements Remote {
    readonly name = "local";
    exec(command: string, options: ExecOptions = {}): Promise<ExecResult> {
        return new Promise((resolve, reject) => {
            const child = spawn("/bin/sh", ["-c", command], { stdio: ["pipe", "pipe", "pipe"] });
            let stdout = "";
            let stderr = "";
            child.stdout.on("data", (d) => (stdout += d));
            child.stderr.on("data", (d) => (stderr += d));
            // A command that exits without reading its stdin is not an error (no EPIPE).
            child.stdin.on("error", () => undefined);
            child.on("error", reject);
            child.on("close", (code) => resolve({ stdout, stderr, code }));
            child.stdin.end(options.stdin ?? "");
        });
    }
}
