// Drives the Pulumi Automation API against the engine that
// tools/build-pulumi.sh builds from Go modules (no prebuilt Pulumi CLI can be
// downloaded on our machines). Tests use it like:
//
//   const stack = await localStack({ stackName: "test", workDir: projectDir, passphrase: "" });
//   await stack.up();   // preview(), refresh(), destroy() likewise
//
// The environment matches scripts/pulumi.sh (keep the two in step):
// PULUMI_SKIP_UPDATE_CHECK, PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION,
// PULUMI_HOME (default ~/.cache/kvmtune/pulumi-home), PULUMI_BACKEND_URL
// (default file://<repo>/.pulumi-state), the engine's bin folder first on
// PATH, and the documented `kvmtune-lab` passphrase only for the `lab` stack
// when the user set no PULUMI_CONFIG_PASSPHRASE(_FILE).
// KVMTUNE_PULUMI_BIN=/path/to/bin uses an existing Pulumi install instead.
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

let binPromise: Promise<string> | undefined;

/**
 * The folder holding `pulumi`, `pulumi-language-nodejs` and
 * `pulumi-resource-pulumi-nodejs`: KVMTUNE_PULUMI_BIN, or the cached build of
 * tools/build-pulumi.sh (which builds it first if needed: minutes, once per
 * machine; its progress goes to our stderr). Computed once per process.
 */
export function engineBin(): Promise<string> {
    binPromise ??= (async () => {
        const fromUser = process.env.KVMTUNE_PULUMI_BIN;
        if (fromUser) {
            return path.resolve(fromUser);
        }
        const root = repoRoot();
        const stdout = await new Promise<string>((resolve, reject) => {
            const child = spawn("bash", [path.join(root, "tools", "build-pulumi.sh")], {
                cwd: root,
                stdio: ["ignore", "pipe", "inherit"],
            });
            let out = "";
            child.stdout.setEncoding("utf8").on("data", (chunk: string) => (out += chunk));
            child.on("error", reject);
            child.on("close", (code) =>
                code === 0 ? resolve(out) : reject(new Error(`tools/build-pulumi.sh exited with ${code}`)),
            );
        });
        const lines = stdout.trim().split("\n");
        return lines[lines.length - 1];
    })();
    // Let a later call retry after a failed build.
    binPromise.catch(() => (binPromise = undefined));
    return binPromise;
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
    const bin = await engineBin();
    const env: Record<string, string> = {
        PULUMI_SKIP_UPDATE_CHECK: "true",
        PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION: "true",
        PULUMI_HOME: process.env.PULUMI_HOME || path.join(os.homedir(), ".cache", "kvmtune", "pulumi-home"),
        PATH: [bin, process.env.PATH].filter(Boolean).join(path.delimiter),
    };
    fs.mkdirSync(env.PULUMI_HOME, { recursive: true });
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
