/**
 * The provider object Pulumi serializes into every resource's state is a thin shim: each method
 * imports the real provider by package name and calls it.
 *
 * Why: Pulumi runs delete and refresh with the provider copy stored in state. A shim that imports
 * `kvmtune/providers/<name>` keeps state small (under a kilobyte), captures no zod schema or SSH
 * client (which do not serialize), and makes delete/refresh run the installed kvmtune, not a stale
 * copy. The engine starts the provider host in the program's folder, where `kvmtune` resolves:
 * through node_modules for a user's program, through package self-reference in this repository.
 */
import type * as pulumi from "@pulumi/pulumi";

type Provider = Required<
    Pick<pulumi.dynamic.ResourceProvider, "check" | "diff" | "create" | "read" | "update" | "delete">
>;

/** One shim per provider module, shared by every resource of that type (see lazyProvider). */
const shims = new Map<string, pulumi.dynamic.ResourceProvider>();

/**
 * The shim for `moduleId`, the same object for every resource of a type: the SDK caches a
 * provider's serialized text by the provider object, so a shared shim is serialized once per type
 * instead of once per resource (800 times for a fleet of 100 hosts: CPU in the program on every
 * `up` and `preview`; issue 17). Each method is one arrow capturing only `moduleId`, which keeps
 * the text stored twice in every resource's state (inputs and outputs) about 15% smaller than
 * methods sharing a loader function.
 */
export function lazyProvider(moduleId: string): pulumi.dynamic.ResourceProvider {
    let shim = shims.get(moduleId);
    if (shim) return shim;
    // Named exports of a CommonJS module may arrive as the namespace's properties or under default.
    type M = { provider?: Provider; default?: { provider: Provider } };
    shim = {
        check: (olds, news) => import(moduleId).then((m: M) => (m.provider ?? m.default!.provider).check(olds, news)),
        diff: (id, olds, news) => import(moduleId).then((m: M) => (m.provider ?? m.default!.provider).diff(id, olds, news)),
        create: (inputs) => import(moduleId).then((m: M) => (m.provider ?? m.default!.provider).create(inputs)),
        read: (id, props) => import(moduleId).then((m: M) => (m.provider ?? m.default!.provider).read(id, props)),
        update: (id, olds, news) => import(moduleId).then((m: M) => (m.provider ?? m.default!.provider).update(id, olds, news)),
        delete: (id, props) => import(moduleId).then((m: M) => (m.provider ?? m.default!.provider).delete(id, props)),
    } satisfies Provider;
    shims.set(moduleId, shim);
    return shim;
}
