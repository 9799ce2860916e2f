/**
 * The provider every kvmtune resource stores in its state is a short text that imports the real
 * provider by package name and calls it.
 *
 * Why: Pulumi runs delete and refresh with the provider copy stored in state. A shim that imports
 * `kvmtune/providers/<name>` captures no zod schema or SSH client (which do not serialize), and
 * makes delete/refresh run the installed kvmtune, not a stale copy. The engine starts the provider
 * host in the program's folder, where `kvmtune` resolves: through node_modules for a user's
 * program, through package self-reference in this repository.
 *
 * Why a text written here rather than `pulumi.dynamic.Resource`'s serialized closure: the dynamic
 * provider host copies `__provider` from the inputs into the outputs, so the text is stored twice in
 * every resource's state, and the closure serializer wraps each of the six methods in its own
 * scope boilerplate: 2.4 KB per copy, 4.8 KB of every resource (more than half a BlockElevator's
 * state; issue 17). The host only needs what `require-from-string` can load and whose
 * `handler()` returns the provider (@pulumi/pulumi cmd/dynamic-provider getProvider): about 120
 * bytes.
 */
import * as pulumi from "@pulumi/pulumi";

/** The methods the dynamic provider host calls (cmd/dynamic-provider/index.js). */
export const PROVIDER_METHODS = ["check", "diff", "create", "read", "update", "delete"] as const;

/**
 * The module text stored as `__provider`: `exports.handler()` loads `moduleId` and returns its
 * `provider`. require-from-string compiles the text as a module with no file name, so its own
 * `require` would not see this package's self-reference (`kvmtune/...` inside this repository); a
 * require made for the provider host's folder (the program's, where the engine starts it) resolves
 * `kvmtune` as the program does: through node_modules, or by self-reference. Node caches the module:
 * one load per process however many resources share the text.
 */
export function providerText(moduleId: string): string {
    return `exports.handler = () => require("module").createRequire(process.cwd() + "/")(${JSON.stringify(moduleId)}).provider;\n`;
}

/**
 * The base of every kvmtune custom resource: what `pulumi.dynamic.Resource` does (the type
 * `pulumi-nodejs:dynamic/kvmtune:<type>`, served by Pulumi's Node.js dynamic provider host), with
 * `providerText(moduleId)` as the stored provider instead of a serialized closure.
 */
export abstract class KvmtuneResource extends pulumi.CustomResource {
    constructor(moduleId: string, type: string, name: string, props: pulumi.Inputs, opts?: pulumi.CustomResourceOptions) {
        if (props.__provider !== undefined) throw new Error("A dynamic resource must not define the __provider key");
        super(`pulumi-nodejs:dynamic/kvmtune:${type}`, name, { ...props, __provider: providerText(moduleId) }, opts);
    }
}
