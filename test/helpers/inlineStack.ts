/**
 * A throw-away stack whose program is a function in the test, run by the real Pulumi engine
 * (Automation API, inline mode) on a file backend in a temp folder. The work folder is the
 * repository, so the engine starts the dynamic provider host where `kvmtune` resolves (package
 * self-reference), exactly as for a user's program with kvmtune installed.
 */
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { LocalWorkspace, PulumiFn, Stack } from "@pulumi/pulumi/automation";
import { engineEnv, pulumiCommand } from "../../tools/pulumiEngine";

export const repoRoot = path.resolve(__dirname, "..", "..", "..");

export interface InlineStack {
    stack: Stack;
    /** The file backend's folder: the state at rest, as bytes (exportStack decrypts secrets). */
    backendDir: string;
    /** What the engine printed during the last operation. */
    output(): string;
    /** Runs `up` with this program; returns the engine's summary of changes. */
    up(program: PulumiFn): Promise<Record<string, number>>;
    /** Runs `preview` with this program; returns the change summary. */
    preview(program: PulumiFn): Promise<Record<string, number>>;
    refresh(): Promise<Record<string, number>>;
    destroy(): Promise<Record<string, number>>;
    /** Removes the stack and its config file. */
    remove(): Promise<void>;
}

/** Changes other than "same", for assertions such as `deepStrictEqual(changes, { update: 1 })`. */
export function changesOf(summary: Record<string, number> | undefined): Record<string, number> {
    return Object.fromEntries(Object.entries(summary ?? {}).filter(([op, n]) => op !== "same" && n > 0));
}

/** A resource as the stack's state records it. */
export interface StateResource {
    urn: string;
    type: string;
    id?: string;
    inputs?: Record<string, unknown>;
    outputs?: Record<string, unknown>;
}

/** The stack's kvmtune resources as state records them (exportStack): URN, type, id, inputs and outputs. */
export async function resourcesOf(s: InlineStack): Promise<StateResource[]> {
    const state = await s.stack.exportStack();
    return ((state.deployment as { resources?: StateResource[] }).resources ?? [])
        .filter((r) => r.type.includes("kvmtune:"))
        .map(({ urn, type, id, inputs, outputs }) => ({ urn, type, id, inputs, outputs }));
}

export async function inlineStack(stackName: string): Promise<InlineStack> {
    const backend = fs.mkdtempSync(path.join(os.tmpdir(), "kvmtune-state-"));
    const envVars = await engineEnv({ stackName });
    envVars.PULUMI_BACKEND_URL = `file://${backend}`;
    envVars.PULUMI_CONFIG_PASSPHRASE = "kvmtune-test";
    const noop: PulumiFn = async () => undefined;
    const stack = await LocalWorkspace.createOrSelectStack(
        { stackName, projectName: "kvmtune", program: noop },
        { workDir: repoRoot, envVars, pulumiHome: envVars.PULUMI_HOME, pulumiCommand: await pulumiCommand() },
    );
    const log: string[] = [];
    const onOutput = (s: string) => log.push(s);
    // On failure, the engine's own words are the best diagnosis: attach them to the error.
    const explain = async <T>(what: string, p: Promise<T>): Promise<T> => {
        try {
            return await p;
        } catch (err) {
            throw new Error(`${what} failed: ${String(err)}\n--- engine output ---\n${log.slice(-60).join("")}`);
        }
    };
    return {
        stack,
        backendDir: backend,
        output: () => log.join(""),
        async up(program) {
            log.length = 0;
            return changesOf((await explain("up", stack.up({ program, onOutput }))).summary.resourceChanges);
        },
        async preview(program) {
            log.length = 0;
            return changesOf((await explain("preview", stack.preview({ program, onOutput }))).changeSummary);
        },
        async refresh() {
            log.length = 0;
            return changesOf((await explain("refresh", stack.refresh({ onOutput }))).summary.resourceChanges);
        },
        async destroy() {
            log.length = 0;
            return changesOf((await explain("destroy", stack.destroy({ onOutput }))).summary.resourceChanges);
        },
        async remove() {
            await stack.workspace.removeStack(stackName, { force: true }).catch(() => undefined);
            fs.rmSync(path.join(repoRoot, `Pulumi.${stackName}.yaml`), { force: true });
            fs.rmSync(backend, { recursive: true, force: true });
        },
    };
}
