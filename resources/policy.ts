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
import type { z } from "zod";
import { driftIn } from "./host/drift";
import { checkInputs, containsUnknown, inputsFrom } from "./validate";

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

/**
 * `diff` for every provider: old inputs from state against new inputs, through the field policy.
 * During preview a new value may be unknown (computed by another resource): it counts as changed.
 * Whatever the last read found different on the host beyond the inputs (`drift`: a persistence
 * file edited or removed, a claim gone with a reinstalled /etc, see host/drift.ts) is a live change
 * too, so `up --refresh` puts it back.
 */
export function diffProps<S extends z.ZodObject>(
    schema: S,
    policy: FieldPolicy<z.output<S>>,
    olds: Record<string, unknown>,
    news: Record<string, unknown>,
): pulumi.dynamic.DiffResult {
    const before = inputsFrom(schema, olds, "previous inputs") as Partial<z.output<S>> & Record<string, unknown>;
    const drift: Change[] = driftIn(olds).length > 0 ? [{ field: "drift", kind: "live" }] : [];
    if (!containsUnknown(news)) {
        return diffResult([...changedFields(before, inputsFrom(schema, news, "inputs"), policy), ...drift]);
    }
    const changes = (Object.keys(policy) as string[])
        .filter((f) => containsUnknown(news[f]) || canonical(before[f]) !== canonical(news[f]))
        .map((field) => ({ field, kind: (policy as Record<string, ChangeKind>)[field] }));
    return diffResult([...changes, ...drift]);
}

/** How each kind of change is applied, in the words the preview shows. */
export const KIND_WORDS: Record<ChangeKind, string> = {
    replace: "replace",
    live: "live (applied to the running system)",
    restart: "guest restart (restartPolicy: restart now, or listed in pendingRestart)",
    reboot: "host reboot (boot configuration)",
    state: "state only (nothing on the host changes)",
};

/**
 * `check` with the change plan: validates like checkInputs and, when an existing resource's inputs
 * change, adds `changePlan` (field → how it will be applied) to the checked inputs.
 *
 * Why: a dynamic provider cannot return a detailed diff (the Node.js dynamic provider host drops
 * it), so `pulumi preview` alone would say "update" without saying whether the guest restarts.
 * The plan travels as an input the preview prints (`pulumi preview --diff`); diff and update read
 * only the policy's fields, so it never causes a change itself.
 */
export function checkWithPlan<S extends z.ZodObject>(
    schema: S,
    policy: FieldPolicy<z.output<S>>,
    olds: Record<string, unknown>,
    news: Record<string, unknown>,
): pulumi.dynamic.CheckResult {
    const checked = checkInputs(schema, news);
    const isUpdate = olds && Object.keys(policy).some((f) => olds[f] !== undefined);
    if (checked.failures?.length || !checked.inputs || !isUpdate || containsUnknown(news)) return checked;
    let before: Partial<z.output<S>>;
    try {
        before = inputsFrom(schema, olds, "previous inputs") as Partial<z.output<S>>;
    } catch {
        return checked; // state from an older kvmtune: diff will judge it
    }
    const changes = changedFields(before, checked.inputs as z.output<S>, policy);
    if (changes.length === 0) return checked;
    return { inputs: { ...checked.inputs, changePlan: Object.fromEntries(changes.map((c) => [c.field, KIND_WORDS[c.kind]])) } };
}
