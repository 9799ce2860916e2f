/**
 * Input validation shared by every provider: zod issues become Pulumi `CheckFailure`s that name the
 * field (its path), the value given and what is allowed, before anything on a host changes.
 */
import type * as pulumi from "@pulumi/pulumi";
import type { z } from "zod";
import { InvalidInputsError } from "./host/errors";
import { ownerProblem } from "./host/files";

/** Fields whose values must never be echoed back, even in an error. */
const SECRET_FIELD = /privateKey|password|passphrase|secret|token/i;

/**
 * Key text wherever it sits: a key pasted into the wrong field, used as an object key (which then
 * is part of an issue's path), or echoed by a custom message. From the BEGIN line to the END line,
 * or to the end of the text when the END line was cut off.
 */
const KEY_TEXT = /-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----[\s\S]*?(?:-----END [A-Z0-9 ]*PRIVATE KEY-----|$)|PuTTY-User-Key-File-[\s\S]*/g;

/** Text with any private key in it replaced by a placeholder. */
export function scrubKeys(text: string): string {
    return text.replace(KEY_TEXT, "(a private key)");
}

/** A value for display: secret fields and private keys replaced, at any depth. */
function redact(value: unknown): unknown {
    if (typeof value === "string") return scrubKeys(value);
    if (Array.isArray(value)) return value.map(redact);
    if (value && typeof value === "object") {
        return Object.fromEntries(
            Object.entries(value as Record<string, unknown>).map(([k, v]) => [scrubKeys(k), SECRET_FIELD.test(k) ? "(secret)" : redact(v)]),
        );
    }
    return value;
}

function valueAt(input: unknown, path: ReadonlyArray<PropertyKey>): unknown {
    let v: unknown = input;
    for (const key of path) {
        if (v === null || typeof v !== "object") return undefined;
        v = (v as Record<PropertyKey, unknown>)[key];
    }
    return v;
}

function show(value: unknown): string {
    const text = value === undefined ? "nothing" : JSON.stringify(redact(value));
    return text.length > 80 ? text.slice(0, 77) + "..." : text;
}

export interface Failure extends pulumi.dynamic.CheckFailure {
    /** The value at the failing path is not known yet (preview): not a real failure. */
    unknown?: boolean;
    /** The failing field's path, for callers that spell it their own way (stack config). */
    path: PropertyKey[];
    /** The reason without the property in front: `got 0; ...`. */
    detail: string;
}

/**
 * A path as stack config spells it, one form throughout: `hosts[0].tuning.guests[1].vcpus`, after
 * `prefix` when given (`kvmtune:hosts[0].tuning.guests[1]` + `cpuPins.0` = `...guests[1].cpuPins[0]`).
 */
export function configPath(path: ReadonlyArray<PropertyKey>, prefix = ""): string {
    return path.reduce<string>((p, k) => (typeof k === "number" ? `${p}[${k}]` : p === "" ? String(k) : `${p}.${String(k)}`), prefix);
}

export function describeIssue(issue: z.core.$ZodIssue, input: unknown): Failure {
    // A bad key of a record (`nodes: { node0: 8 }`) is the record's problem: name the key and the rule for keys.
    if (issue.code === "invalid_key") {
        const path = issue.path.slice(0, -1);
        const key = String(issue.path[issue.path.length - 1]);
        const rule = [...new Set(issue.issues.map((i) => i.message))].join("; ");
        return failure(path, scrubKeys(`got the key ${JSON.stringify(key)}; every key ${rule}`));
    }
    const secret = issue.path.some((k) => typeof k === "string" && SECRET_FIELD.test(k));
    const value = valueAt(input, issue.path);
    const unknown = containsUnknown(value) || issue.path.length === 0 && containsUnknown(input);
    // A secret field says only that it has a value; an absent one says "nothing", like any field.
    const given = secret && value !== undefined ? "a value" : show(value);
    // Unknown keys are reported once for the object; name them so a typo is easy to spot.
    if (issue.code === "unrecognized_keys") return failure(issue.path, `unknown field(s) ${issue.keys.join(", ")}`);
    return { ...failure(issue.path, `got ${given}; ${issue.message}`), ...(unknown ? { unknown } : {}) };
}

function failure(path: PropertyKey[], detail: string): Failure {
    const property = scrubKeys(path.map(String).join(".") || "(inputs)");
    const scrubbed = scrubKeys(detail);
    return { property, reason: `${property}: ${scrubbed}`, path, detail: scrubbed };
}

/** Validates inputs: the parsed value (defaults filled in) or one failure per issue. */
export function validate<S extends z.ZodType>(
    schema: S,
    input: unknown,
): { ok: true; value: z.output<S> } | { ok: false; failures: Failure[] } {
    const result = schema.safeParse(input);
    if (result.success) return { ok: true, value: result.data };
    return { ok: false, failures: result.error.issues.flatMap((i) => closestBranch(i, input)).map((i) => describeIssue(i, input)) };
}

type Issue = z.core.$ZodIssue;

/**
 * A value that fits no form of a union (a NIC given as `{network}` or `{hostdevVf}`, a CPU set as
 * a number, a list or a string) fails as one issue at the union, "Invalid input". When one form
 * comes clearly closest, report what it says with its full path
 * (`interfaces.0.hostdevVf.vf: expected number`): the form without unknown keys at the union's
 * level, with the fewest issues, deepest, in which the value at least had the right type. When
 * none does (forms tie, or the value is wrong for every form at the union itself, as `cpuPins: 5`),
 * say every allowed form: the union's own message if it has one, else each form's.
 */
export function closestBranch(issue: Issue, input: unknown, prefix: ReadonlyArray<PropertyKey> = []): Issue[] {
    const path = [...prefix, ...issue.path];
    if (issue.code !== "invalid_union" || issue.errors.length === 0) return [{ ...issue, path } as Issue];
    const branches = issue.errors.map((b) => b.flatMap((i) => closestBranch(i, input, path)));
    const score = (b: Issue[]) => [
        b.filter((i) => i.code === "unrecognized_keys" && i.path.length === path.length).length,
        b.length,
        -Math.max(...b.map((i) => i.path.length)),
        b.filter((i) => i.code === "invalid_type").length,
    ];
    const cmp = (a: number[], b: number[]) => {
        const n = a.findIndex((x, k) => x !== b[k]);
        return n < 0 ? 0 : a[n] - b[n];
    };
    const ranked = branches.map((b) => ({ b, s: score(b) })).sort((x, y) => cmp(x.s, y.s));
    const best = ranked.filter((r) => cmp(r.s, ranked[0].s) === 0).map((r) => r.b);
    // A form the value got into says more than a list of forms: one that found fault with a value
    // that is there (`{network: 5}`), or an object all of whose keys it knows (`{pf: "eth0"}`).
    const value = valueAt(input, path);
    const gotIn =
        best[0].some((i) => i.path.length > path.length && valueAt(input, i.path) !== undefined) ||
        (isObject(value) && Object.keys(value).length > 0 && best[0].every((i) => i.path.length > path.length));
    if (best.length === 1 && gotIn) return best[0];
    return [{ ...issue, code: "invalid_union", path, message: everyForm(issue, branches) } as Issue];
}

function isObject(v: unknown): v is Record<string, unknown> {
    return v !== null && typeof v === "object" && !Array.isArray(v);
}

/** zod's own message for a union that was given none. */
const DEFAULT_UNION_MESSAGE = "Invalid input";

/** Every allowed form: the union's own message (`z.union([...], { error })`), else each form's messages. */
function everyForm(issue: Extract<Issue, { code: "invalid_union" }>, branches: Issue[][]): string {
    if (issue.message && issue.message !== DEFAULT_UNION_MESSAGE) return issue.message;
    return [...new Set(branches.map((b) => b.map((i) => i.message).join(", ")))].join("; or ");
}

/** For code paths that are not `check` (create after a skipped check, read of imported state). */
export function parseOrThrow<S extends z.ZodType>(schema: S, input: unknown, what: string): z.output<S> {
    const r = validate(schema, input);
    if (!r.ok) throw new InvalidInputsError(`invalid ${what}:\n  ${r.failures.map((f) => f.reason).join("\n  ")}`);
    return r.value;
}

/** The props a schema knows, from a bag that also holds outputs (state) or the owner label. */
function pick(schema: z.ZodObject, props: Record<string, unknown>): Record<string, unknown> {
    return Object.fromEntries(Object.keys(schema.shape).filter((k) => props[k] !== undefined).map((k) => [k, props[k]]));
}

/** A provider's inputs from its state or news: the schema's fields only, validated. */
export function inputsFrom<S extends z.ZodObject>(schema: S, props: Record<string, unknown>, what: string): z.output<S> {
    return parseOrThrow(schema, pick(schema, props), what);
}

/**
 * `check` for every provider: validates the schema's fields and keeps `owner` (the label the
 * resource class sets, naming the resource in files it writes on hosts).
 */
export function checkInputs(schema: z.ZodObject, news: Record<string, unknown>): pulumi.dynamic.CheckResult {
    // Keys the schema does not know are typos, except the engine's and the resource class's own.
    const strays = Object.keys(news).filter((k) => !RESERVED.has(k) && !(k in schema.shape) && news[k] !== undefined);
    const input = { ...pick(schema, news), ...Object.fromEntries(strays.map((k) => [k, news[k]])) };
    const r = validate(schema, input);
    const ownerFailure = checkOwner(news.owner);
    if (r.ok && !ownerFailure) return { inputs: news.owner === undefined ? r.value : { ...r.value, owner: news.owner } };
    // During preview a value computed by another resource is not known yet: judge it at apply time.
    const failures = [...(r.ok ? [] : r.failures.filter((f) => !f.unknown)), ...(ownerFailure ? [ownerFailure] : [])];
    if (failures.length === 0 && containsUnknown(input)) return { inputs: news };
    return { failures: failures.map(({ property, reason }) => ({ property, reason })) };
}

/** The owner label goes into headers of files on hosts: one printable line (see host/files.ts). */
function checkOwner(owner: unknown): Failure | null {
    if (owner === undefined) return null;
    const problem = typeof owner === "string" ? ownerProblem(owner) : "the owner label must be a string";
    return problem ? failure(["owner"], `got ${show(owner)}; ${problem}`) : null;
}

/** Props that are not user inputs: the serialized provider, the owner label, the change plan. */
const RESERVED = new Set(["__provider", "owner", "changePlan"]);

/** The engine's placeholder for a value not known during preview. */
export const UNKNOWN = "04da6b54-80e4-46f7-96ec-b56ff0331ba9";

export function containsUnknown(v: unknown): boolean {
    if (v === UNKNOWN) return true;
    if (v && typeof v === "object") return Object.values(v as Record<string, unknown>).some(containsUnknown);
    return false;
}
