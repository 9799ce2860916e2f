/**
 * Input validation shared by every provider: zod issues become Pulumi `CheckFailure`s that name the
 * field (its path), the value given and what is allowed, before anything on a host changes.
 */
import type * as pulumi from "@pulumi/pulumi";
import type { z } from "zod";

/** Fields whose values must never be echoed back, even in an error. */
const SECRET_FIELD = /privateKey|password|passphrase|secret|token/i;

function valueAt(input: unknown, path: ReadonlyArray<PropertyKey>): unknown {
    let v: unknown = input;
    for (const key of path) {
        if (v === null || typeof v !== "object") return undefined;
        v = (v as Record<PropertyKey, unknown>)[key];
    }
    return v;
}

function show(value: unknown): string {
    const text = value === undefined ? "nothing" : JSON.stringify(value);
    return text.length > 80 ? text.slice(0, 77) + "..." : text;
}

export function describeIssue(issue: z.core.$ZodIssue, input: unknown): pulumi.dynamic.CheckFailure {
    const property = issue.path.map(String).join(".") || "(inputs)";
    const secret = issue.path.some((k) => typeof k === "string" && SECRET_FIELD.test(k));
    const given = secret ? "a value" : show(valueAt(input, issue.path));
    // Unknown keys are reported once for the object; name them so a typo is easy to spot.
    if (issue.code === "unrecognized_keys") {
        return { property, reason: `${property}: unknown field(s) ${issue.keys.join(", ")}` };
    }
    return { property, reason: `${property}: got ${given}; ${issue.message}` };
}

/** Validates inputs: the parsed value (defaults filled in) or one failure per issue. */
export function validate<S extends z.ZodType>(
    schema: S,
    input: unknown,
): { ok: true; value: z.output<S> } | { ok: false; failures: pulumi.dynamic.CheckFailure[] } {
    const result = schema.safeParse(input);
    if (result.success) return { ok: true, value: result.data };
    return { ok: false, failures: result.error.issues.map((i) => describeIssue(i, input)) };
}

/** For code paths that are not `check` (create after a skipped check, read of imported state). */
export function parseOrThrow<S extends z.ZodType>(schema: S, input: unknown, what: string): z.output<S> {
    const r = validate(schema, input);
    if (!r.ok) throw new Error(`invalid ${what}:\n  ${r.failures.map((f) => f.reason).join("\n  ")}`);
    return r.value;
}
