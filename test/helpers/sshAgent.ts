/**
 * A real OpenSSH agent for tests (`ssh-agent -D` on a socket in a temp folder), holding the keys it
 * was given: what a user's `eval "$(ssh-agent)"; ssh-add KEYFILE` makes. Stopped and removed by stop().
 */
import { ChildProcess, execFileSync, spawn } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";

export interface SshAgent {
    /** The agent's socket: what SSH_AUTH_SOCK names. */
    socket: string;
    stop(): Promise<void>;
}

export async function startSshAgent(privateKeys: readonly string[]): Promise<SshAgent> {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "kvmtune-agent-"));
    const socket = path.join(dir, "agent.sock");
    const child: ChildProcess = spawn("ssh-agent", ["-D", "-a", socket], { stdio: "ignore" });
    const stop = async () => {
        if (child.exitCode === null) {
            const gone = new Promise((r) => child.once("exit", r));
            child.kill();
            await gone;
        }
        fs.rmSync(dir, { recursive: true, force: true });
    };
    try {
        for (let i = 0; !fs.existsSync(socket); i++) {
            if (i > 100 || child.exitCode !== null) throw new Error(`ssh-agent did not make its socket ${socket}`);
            await new Promise((r) => setTimeout(r, 50));
        }
        privateKeys.forEach((key, i) => {
            const file = path.join(dir, `key${i}`);
            fs.writeFileSync(file, key, { mode: 0o600 });
            execFileSync("ssh-add", ["-q", file], { env: { ...process.env, SSH_AUTH_SOCK: socket }, stdio: "pipe" });
            fs.rmSync(file);
        });
    } catch (err) {
        await stop();
        throw err;
    }
    return { socket, stop };
}
