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

export function lazyProvider(moduleId: string): pulumi.dynamic.ResourceProvider {
    // Named exports of a CommonJS module may arrive as the namespace's properties or under default.
    const load = async (): Promise<Provider> => {
        const m = await import(moduleId);
        return (m.provider ?? m.default?.provider) as Provider;
    };
    return {
        async check(olds, news) {
            return (await load()).check(olds, news);
        },
        async diff(id, olds, news) {
            return (await load()).diff(id, olds, news);
        },
        async create(inputs) {
            return (await load()).create(inputs);
        },
        async read(id, props) {
            return (await load()).read(id, props);
        },
        async update(id, olds, news) {
            return (await load()).update(id, olds, news);
        },
        async delete(id, props) {
            return (await load()).delete(id, props);
        },
    };
}
