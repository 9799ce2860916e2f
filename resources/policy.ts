/**
 * One table per resource says what a change of each input means; `diff` and `update` both read it,
 * so preview and apply never disagree (terraform-provider-libvirt v2's lesson).
 *
 * - replace: the thing must be recreated (a different disk, a different page size).
 * - live:    applied to the running system in place.
 * - restart: applied to the persistent definition; takes effect when the guest restarts.
 * - reboot:  applied to the host's boot configuration; takes effect when the host reboots.
 * - state:   changes how kvmtune reaches or labels the thing; nothing on the host changes.
 */
import type * as pulumi from "@pulumi/pulumi";

export type ChangeKind = "replace" | "live" | "restart" | "reboot" | "state";

export type FieldPolicy<T> = { readonly [K in keyof T]-?: ChangeKind };

export interface Change {
    field: string;
    kind: ChangeKind;
}

/** JSON with sorted keys: two values are the same when their canonical texts are. */
export function canonical(value: unknown): string {
    return JSON.stringify(value, (_k, v) =>
        v && typeof v === "object" && !Array.isArray(v)
            ? Object.fromEntries(Object.entries(v as Record<string, unknown>).sort(([a], [b]) => a.localeCompare(b)))
            : v,
    ) ?? "undefined";
}

/** The fields that differ between two normalized input sets, each with its kind of change. */
export function changedFields<T extends object>(olds: Partial<T>, news: T, policy: FieldPolicy<T>): Change[] {
    return (Object.keys(policy) as Array<keyof T & string>)
        .filter((field) => canonical(olds[field]) !== canonical(news[field]))
        .map((field) => ({ field, kind: policy[field] }));
}

/** Pulumi's diff result from the table: any `replace` field replaces, anything else updates. */
export function diffResult(changes: Change[], deleteBeforeReplace = true): pulumi.dynamic.DiffResult {
    return {
        changes: changes.length > 0,
        replaces: changes.filter((c) => c.kind === "replace").map((c) => c.field),
        // Two owners of one kernel knob cannot coexist, so the old one goes first.
        deleteBeforeReplace,
    };
}
