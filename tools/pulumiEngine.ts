// Drives the Pulumi Automation API against the CLI tools/pulumi-bin.sh picks:
// KVMTUNE_PULUMI_BIN, else a new enough `pulumi` on PATH, else the one
// tools/build-pulumi.sh builds from Go modules (no prebuilt Pulumi CLI can be
// downloaded on our machines). Tests use it like:
//
//   const stack = await localStack({ stackName: "test", workDir: projectDir, passphrase: "" });
//   await stack.up();   // preview(), refresh(), destroy() likewise
//
// The environment matches scripts/pulumi.sh (keep the two in step):
// PULUMI_SKIP_UPDATE_CHECK, PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION,
// PULUMI_HOME (default ~/.cache/kvmtune/pulumi-home, for the built CLI only:
// a CLI of the user's own keeps the user's PULUMI_HOME), PULUMI_BACKEND_URL
// (default file://<repo>/.pulumi-state), the engine's bin folder first on
// PATH, and the documented `kvmtune-lab` passphrase only for the `lab` stack
// when the user set no PULUMI_CONFIG_PASSPHRASE(_FILE).
import { spawn } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { ConfigMap, LocalWorkspace, PulumiCommand, Stack } from "@pulumi/pulumi/automation";

export const LAB_STACK = "lab";
export const LAB_PASSPHRASE = "kvmtune-lab";

// The repo root is the nearest folder above this file (bin/tools/ when built
// by the repo's tsc, or wherever it was compiled to) with tools/build-pulumi.sh;
// KVMTUNE_REPO overrides when this file was compiled outside the repo.
function repoRoot(): string {
    if (process.env.KVMTUNE_REPO) {
        return path.resolve(process.env.KVMTUNE_REPO);
    }
    for (let dir = __dirname; ; dir = path.dirname(dir)) {
        if (fs.existsSync(path.join(dir, "tools", "build-pulumi.sh"))) {
            return dir;
        }
        if (path.dirname(dir) === dir) {
            throw new Error(`pulumiEngine: no tools/build-pulumi.sh above ${__dirname}; set KVMTUNE_REPO`);
        }
    }
}

/** Where the CLI comes from (tools/pulumi-bin.sh's first line) and its bin folder. */
export interface EngineChoice {
    /** env: KVMTUNE_PULUMI_BIN; path: a `pulumi` on PATH; build: tools/build-pulumi.sh's cache. */
    source: "env" | "path" | "build";
    bin: string;
}

let choicePromise: Promise<EngineChoice> | undefined;

/**
 * Which CLI to run, as tools/pulumi-bin.sh decides for scripts/pulumi.sh too (one rule for
 * both). For `build` it builds first if needed: minutes, once per machine; its progress and the
 * reason for the choice go to our stderr. Computed once per process.
 */
export function engineChoice(): Promise<EngineChoice> {
    choicePromise ??= (async () => {
        const root = repoRoot();
        const stdout = await new Promise<string>((resolve, reject) => {
            const child = spawn("bash", [path.join(root, "tools", "pulumi-bin.sh")], {
                cwd: root,
                stdio: ["ignore", "pipe", "inherit"],
            });
            let out = "";
            child.stdout.setEncoding("utf8").on("data", (chunk: string) => (out += chunk));
            child.on("error", reject);
            child.on("close", (code) =>
                code === 0 ? resolve(out) : reject(new Error(`tools/pulumi-bin.sh exited with ${code} (its reason is above)`)),
            );
        });
        const [source, bin] = stdout.trim().split("\n");
        if ((source !== "env" && source !== "path" && source !== "build") || !bin) {
            throw new Error(`tools/pulumi-bin.sh printed ${JSON.stringify(stdout)}, expected a source line and a bin folder`);
        }
        return { source, bin: path.resolve(bin) };
    })();
    // Let a later call retry after a failed build.
    choicePromise.catch(() => (choicePromise = undefined));
    return choicePromise;
}

/** The folder holding `pulumi` and `pulumi-language-nodejs` (see engineChoice). */
export async function engineBin(): Promise<string> {
    return (await engineChoice()).bin;
}

/** True when the stack name (possibly org/project/name) is the lab stack. */
function isLabStack(stackName: string | undefined): boolean {
    return stackName !== undefined && stackName.split("/").pop() === LAB_STACK;
}

/**
 * Environment for running the engine, as scripts/pulumi.sh sets it. Pass the
 * stack name to get the lab passphrase default for the `lab` stack.
 */
export async function engineEnv(opts: { stackName?: string } = {}): Promise<Record<string, string>> {
    const { source, bin } = await engineChoice();
    const env: Record<string, string> = {
        PULUMI_SKIP_UPDATE_CHECK: "true",
        PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION: "true",
        PATH: [bin, process.env.PATH].filter(Boolean).join(path.delimiter),
    };
    // The built CLI keeps its workspace and plugins out of ~/.pulumi; a CLI of the user's own
    // keeps the user's PULUMI_HOME (logins, plugins), set or not.
    if (source === "build") {
        env.PULUMI_HOME = process.env.PULUMI_HOME || path.join(os.homedir(), ".cache", "kvmtune", "pulumi-home");
        fs.mkdirSync(env.PULUMI_HOME, { recursive: true });
    } else if (process.env.PULUMI_HOME) {
        env.PULUMI_HOME = process.env.PULUMI_HOME;
    }
    if (process.env.PULUMI_BACKEND_URL) {
        env.PULUMI_BACKEND_URL = process.env.PULUMI_BACKEND_URL;
    } else {
        const state = path.join(repoRoot(), ".pulumi-state");
        fs.mkdirSync(state, { recursive: true });
        env.PULUMI_BACKEND_URL = `file://${state}`;
    }
    if (
        isLabStack(opts.stackName) &&
        !process.env.PULUMI_CONFIG_PASSPHRASE &&
        !process.env.PULUMI_CONFIG_PASSPHRASE_FILE
    ) {
        env.PULUMI_CONFIG_PASSPHRASE = LAB_PASSPHRASE;
    }
    return env;
}

/**
 * The engine as an Automation API PulumiCommand. PulumiCommand.get runs
 * `<root>/bin/pulumi version` and, with skipVersionCheck false, refuses a CLI
 * without a proper version (why build-pulumi.sh stamps one in).
 */
export async function pulumiCommand(): Promise<PulumiCommand> {
    const bin = await engineBin();
    let root = path.dirname(bin);
    if (path.resolve(root, "bin") !== path.resolve(bin)) {
        // KVMTUNE_PULUMI_BIN not named "bin": give PulumiCommand a root whose bin/ is it.
        root = fs.mkdtempSync(path.join(os.tmpdir(), "kvmtune-pulumi-root-"));
        fs.symlinkSync(path.resolve(bin), path.join(root, "bin"));
    }
    return PulumiCommand.get({ root, skipVersionCheck: false });
}

export interface LocalStackOptions {
    /** Stack name, e.g. "test" or "lab". */
    stackName: string;
    /** Folder with the Pulumi.yaml of the program to run (runtime: nodejs). */
    workDir: string;
    /** Config to set on the stack (replaces same-named keys). */
    config?: ConfigMap;
    /** Folder for the file backend; default: a new temp folder per call. */
    backendDir?: string;
    /**
     * Passphrase for the stack's secrets. Default: PULUMI_CONFIG_PASSPHRASE(_FILE)
     * from the environment, else `kvmtune-lab` for the lab stack, else none
     * (then creating a stack fails: pass "" for throwaway test stacks).
     */
    passphrase?: string;
}

/** Creates or selects a stack of a local (on-disk) program, on a file backend. */
export async function localStack(opts: LocalStackOptions): Promise<Stack> {
    const backendDir = opts.backendDir ?? fs.mkdtempSync(path.join(os.tmpdir(), "kvmtune-state-"));
    fs.mkdirSync(backendDir, { recursive: true });
    const envVars = await engineEnv({ stackName: opts.stackName });
    envVars.PULUMI_BACKEND_URL = `file://${path.resolve(backendDir)}`;
    if (opts.passphrase !== undefined) {
        envVars.PULUMI_CONFIG_PASSPHRASE = opts.passphrase;
    }
    const stack = await LocalWorkspace.createOrSelectStack(
        { stackName: opts.stackName, workDir: opts.workDir },
        { envVars, pulumiHome: envVars.PULUMI_HOME, pulumiCommand: await pulumiCommand() },
    );
    if (opts.config) {
        await stack.setAllConfig(opts.config);
    }
    return stack;
}
