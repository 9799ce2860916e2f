/**
 * The Node.js language host takes every flag the engine can pass it. Under `pulumi --logflow` the
 * engine starts each plugin with `--logtostderr` (when the CLI has it) and `-v=N`, plus
 * `--tracing ADDR` when tracing, before the engine's address (sdk/v3
 * go/common/resource/plugin: buildPluginArguments); upstream's host also knows -root, -binary,
 * -typescript and -nodeargs. Needs no hosts: the program is bench/empty (declares nothing) on a
 * file backend in a temp folder.
 */
import * as assert from "assert";
import { spawn } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { engineChoice, engineEnv } from "../../tools/pulumiEngine";

const repo = path.resolve(__dirname, "..", "..", "..");
const emptyProgram = path.join(repo, "bench", "empty");

interface Ran {
    code: number | null;
    stdout: string;
    stderr: string;
}

function run(file: string, args: string[], opts: { cwd?: string; env?: NodeJS.ProcessEnv; timeoutMs?: number } = {}): Promise<Ran> {
    return new Promise((resolve, reject) => {
        const child = spawn(file, args, { cwd: opts.cwd, env: opts.env, stdio: ["ignore", "pipe", "pipe"] });
        let stdout = "";
        let stderr = "";
        child.stdout.setEncoding("utf8").on("data", (s: string) => (stdout += s));
        child.stderr.setEncoding("utf8").on("data", (s: string) => (stderr += s));
        const timer = setTimeout(() => child.kill("SIGKILL"), opts.timeoutMs ?? 300_000);
        child.on("error", reject);
        child.on("close", (code) => {
            clearTimeout(timer);
            resolve({ code, stdout, stderr });
        });
    });
}

/** Starts the language host as the engine would and returns the first line it prints (its port). */
function firstLine(file: string, args: string[]): Promise<{ line: string; stderr: string }> {
    return new Promise((resolve, reject) => {
        const child = spawn(file, args, { stdio: ["ignore", "pipe", "pipe"] });
        let out = "";
        let err = "";
        const timer = setTimeout(() => {
            child.kill("SIGKILL");
            reject(new Error(`${file} printed no port within 60 s; stderr: ${err}`));
        }, 60_000);
        child.stderr.setEncoding("utf8").on("data", (s: string) => (err += s));
        child.stdout.setEncoding("utf8").on("data", (s: string) => {
            out += s;
            if (out.includes("\n")) {
                clearTimeout(timer);
                // Give stderr a moment for the start-up log line, then stop it.
                setTimeout(() => {
                    child.kill("SIGTERM");
                    resolve({ line: out.split("\n")[0], stderr: err });
                }, 500);
            }
        });
        child.on("close", (code) => {
            clearTimeout(timer);
            if (!out.includes("\n")) reject(new Error(`${file} exited ${code} before printing its port: ${err}`));
        });
    });
}

describe("the Node.js language host and the engine's flags", function () {
    this.timeout(15 * 60_000);
    let bin: string;
    let standIn: boolean;
    let backend: string;
    let env: NodeJS.ProcessEnv;

    before(async () => {
        const choice = await engineChoice();
        bin = choice.bin;
        // Only the stand-in built here logs its own start-up line; a user's upstream host need not.
        standIn = choice.source === "build";
        backend = fs.mkdtempSync(path.join(os.tmpdir(), "kvmtune-langhost-state-"));
        env = { ...process.env, ...(await engineEnv()), PULUMI_BACKEND_URL: `file://${backend}`, PULUMI_CONFIG_PASSPHRASE: "" };
        const init = await run(path.join(bin, "pulumi"), ["stack", "init", "langhost", "--non-interactive"], { cwd: emptyProgram, env });
        assert.strictEqual(init.code, 0, init.stderr);
    });
    after(async () => {
        if (env) await run(path.join(bin, "pulumi"), ["stack", "rm", "--yes", "--force", "langhost"], { cwd: emptyProgram, env });
        fs.rmSync(backend, { recursive: true, force: true });
    });

    it("starts with every flag the engine or an upstream caller may pass, and logs at -v=3", async () => {
        const host = path.join(bin, "pulumi-language-nodejs");
        const flags = ["--logtostderr", "-v=3", "--tracing", "", "-root", emptyProgram, "-binary", "", "-typescript=false", "-nodeargs", "--no-warnings"];
        const { line, stderr } = await firstLine(host, [...flags, "127.0.0.1:1"]);
        assert.match(line, /^\d+$/, `expected a port on the first line, got ${JSON.stringify(line)}; stderr: ${stderr}`);
        assert.doesNotMatch(stderr, /flag provided but not defined/);
        if (standIn) assert.match(stderr, /kvmtune stand-in\) args/, stderr);
    });

    for (const logFlags of [["--logflow", "-v=3"], ["--logflow", "--logtostderr", "-v=3"]]) {
        it(`pulumi up ${logFlags.join(" ")} runs a program`, async () => {
            const up = await run(path.join(bin, "pulumi"), ["up", "--yes", "--non-interactive", "--skip-preview", "--stack", "langhost", ...logFlags], { cwd: emptyProgram, env });
            assert.strictEqual(up.code, 0, `pulumi up ${logFlags.join(" ")} failed:\n${up.stdout}\n${up.stderr.slice(-4000)}`);
            assert.doesNotMatch(up.stdout + up.stderr, /flag provided but not defined/);
            assert.match(up.stdout, /Resources:\s*\n\s*\+?\s*1 (created|unchanged)/);
            if (standIn && logFlags.includes("--logtostderr")) {
                // The engine passed --logtostderr -v=3 on to the language host, which logged with them.
                // The engine relays it as a JSON log record (quotes escaped), on stdout or stderr.
                assert.match(up.stdout + up.stderr, /kvmtune stand-in\) args \[.*--logtostderr.*-v=3/);
            }
        });
    }
});
