/**
 * The plan an operator reads before saying yes: from a `pulumi preview --json` document, per host,
 * what happens and how: replaced, deleted, created, a host reboot (which settings), a guest restart
 * (which guest, which fields), applied live, or state only.
 *
 * How each field is applied is not decided here: it is the `changePlan` that each resource's `check`
 * adds to an update's inputs from its field policy (resources/policy.ts), the same table `diff` and
 * `update` read. Its words are KIND_WORDS (resources/changeKind.ts); this file only maps them back
 * to their kinds, so preview, plan and apply cannot disagree.
 */
import { ChangeKind, KIND_WORDS } from "./changeKind";
import { driftIn } from "./host/drift";

/** The parts of the engine's preview document (`pulumi preview --json`) the plan reads. */
export interface PreviewDigest {
    steps?: PreviewStep[];
    diagnostics?: Array<{ urn?: string; message?: string; severity?: string }>;
    changeSummary?: Record<string, number>;
}

export interface PreviewStep {
    /** same, create, update, delete, replace, create-replacement, delete-replaced, read, refresh, ... */
    op: string;
    urn: string;
    oldState?: StepState;
    newState?: StepState;
    diffReasons?: string[];
    replaceReasons?: string[];
}

export interface StepState {
    type?: string;
    parent?: string;
    inputs?: Record<string, unknown>;
    outputs?: Record<string, unknown>;
}

/** What happens to one resource: a kind of the field policy, or a whole-resource step. */
export type PlanAction = ChangeKind | "create" | "delete" | "update";

export interface PlanItem {
    action: PlanAction;
    /** The resource's type without its package, e.g. NumaPinnedGuest. */
    type: string;
    /** The resource's name (the last part of its URN). */
    resource: string;
    /** For a NumaPinnedGuest: the libvirt domain's name. */
    guest?: string;
    /** The fields this action is for (empty for create and delete). */
    fields: string[];
    /** For an update without a changePlan: why there is none. */
    why?: "unknown-input" | "host-differs";
}

export interface HostPlan {
    /** The KvmHost's name, else the connection's host:port. */
    host: string;
    /** host:port when the inputs show it in plain text. */
    address?: string;
    items: PlanItem[];
}

export interface Plan {
    hosts: HostPlan[];
    /** Error diagnostics of the preview: a plan with errors is not what `up` will do. */
    errors: string[];
    /** The preview's count per operation (same, create, update, ...). */
    changeSummary: Record<string, number>;
}

/** The action's name as the plan prints it: KIND_WORDS up to its explanation in parentheses. */
export function actionLabel(action: PlanAction): string {
    if (action === "create" || action === "delete" || action === "update") return action;
    return KIND_WORDS[action].replace(/ \(.*$/, "");
}

/** Most disruptive first: what an operator must weigh comes at the top of each host. */
const ACTION_ORDER: PlanAction[] = ["replace", "delete", "create", "reboot", "restart", "live", "update", "state"];

const KIND_OF_WORDS: Record<string, ChangeKind> = Object.fromEntries(
    (Object.entries(KIND_WORDS) as Array<[ChangeKind, string]>).map(([kind, words]) => [words, kind]),
);

/** A changePlan value's kind; words this kvmtune does not know (another version's) count as "update". */
function kindOfWords(words: unknown): PlanAction {
    return (typeof words === "string" && KIND_OF_WORDS[words]) || "update";
}

/** The URN's last part: the resource's name. */
export function nameOfUrn(urn: string): string {
    return urn.slice(urn.lastIndexOf("::") + 2);
}

/** The URN's own type: the last `$`-separated type before the name. */
export function typeOfUrn(urn: string): string {
    const parts = urn.split("::");
    const types = parts.length >= 2 ? parts[parts.length - 2] : "";
    return types.slice(types.lastIndexOf("$") + 1);
}

const KVMHOST_TYPE = "kvmtune:index:KvmHost";

/** kvmtune's dynamic resources have types like pulumi-nodejs:dynamic/kvmtune:BlockElevator. */
function kvmtuneType(type: string): string | undefined {
    const m = /^pulumi-nodejs:dynamic\/kvmtune:(\w+)$/.exec(type);
    return m?.[1];
}

/** host:port from a connection input, when it is there in plain text (not a secret or unknown). */
function addressOf(inputs: Record<string, unknown> | undefined): string | undefined {
    const c = inputs?.connection as Record<string, unknown> | undefined;
    if (!c || typeof c !== "object" || typeof c.host !== "string") return undefined;
    const port = typeof c.port === "number" ? c.port : 22;
    return `${c.host}:${port}`;
}

/** How the engine's JSON shows a value not known until apply (an output of another resource). */
const UNKNOWN = "04da6b54-80e4-46f7-96ec-b56ff0331ba9";

function containsUnknown(value: unknown): boolean {
    if (value === UNKNOWN) return true;
    if (value && typeof value === "object") return Object.values(value).some(containsUnknown);
    return false;
}

/** Without changePlan itself: it is an input whose own change means nothing on the host. */
const realFields = (fields: string[] | undefined): string[] => (fields ?? []).filter((f) => f !== "changePlan");

/** The plan items of one step (none for steps that change nothing on a host). */
function itemsOf(step: PreviewStep, type: string): PlanItem[] {
    const state = step.newState ?? step.oldState;
    const guestName = type === "NumaPinnedGuest" ? (state?.inputs?.name ?? step.oldState?.inputs?.name) : undefined;
    const base = { type, resource: nameOfUrn(step.urn), ...(typeof guestName === "string" ? { guest: guestName } : {}) };
    switch (step.op) {
        case "create":
            return [{ ...base, action: "create", fields: [] }];
        case "delete":
            return [{ ...base, action: "delete", fields: [] }];
        case "replace":
        case "create-replacement":
        case "delete-replaced":
            return [{ ...base, action: "replace", fields: realFields(step.replaceReasons ?? step.diffReasons) }];
        case "update": {
            const changePlan = step.newState?.inputs?.changePlan;
            // What the refresh found off on the host (a kept file, a claim: host/drift.ts) is put back live.
            const drift = driftIn(step.oldState?.outputs ?? {});
            const driftItems: PlanItem[] = drift.length > 0 ? [{ ...base, action: "live", fields: [`put back: ${drift.join("; ")}`] }] : [];
            if (!changePlan || typeof changePlan !== "object") {
                if (driftItems.length > 0) return driftItems;
                // check adds no changePlan while an input is unknown, nor when no input changed and
                // diff found the host differing from state (what a refresh read back).
                const why = containsUnknown(step.newState?.inputs) ? "unknown-input" : "host-differs";
                return [{ ...base, action: "update", fields: realFields(step.diffReasons), why }];
            }
            const byAction = new Map<PlanAction, string[]>();
            for (const [field, words] of Object.entries(changePlan as Record<string, unknown>)) {
                const action = kindOfWords(words);
                byAction.set(action, [...(byAction.get(action) ?? []), field]);
            }
            return [...[...byAction].map(([action, fields]) => ({ ...base, action, fields: fields.sort() })), ...driftItems];
        }
        default:
            return []; // same, read, refresh, import, discard: nothing changes on a host
    }
}

/** The plan from a preview document: kvmtune's resources only, grouped by host. */
export function planFromPreview(digest: PreviewDigest): Plan {
    const hosts = new Map<string, HostPlan>();
    const seen = new Set<string>(); // a replacement may show as several steps of one URN
    for (const step of digest.steps ?? []) {
        const state = step.newState ?? step.oldState;
        const type = kvmtuneType(state?.type ?? typeOfUrn(step.urn));
        if (!type) continue; // the stack, KvmHost components, other packages' resources
        const items = itemsOf(step, type);
        if (items.length === 0) continue;
        const stepKey = `${step.urn}\u0000${items[0].action}`;
        if (seen.has(stepKey)) continue;
        seen.add(stepKey);
        // One host, one group: by its address when the inputs show it, so a KvmHost's children and
        // resources declared beside it on the same host land together; named after the KvmHost.
        const address = addressOf(step.newState?.inputs) ?? addressOf(step.oldState?.inputs);
        const parent = state?.parent ?? step.oldState?.parent;
        const kvmHost = parent && typeOfUrn(parent) === KVMHOST_TYPE ? nameOfUrn(parent) : undefined;
        const key = address ?? kvmHost ?? "host not known (its connection is secret or computed)";
        const host = hosts.get(key) ?? { host: key, items: [] };
        if (kvmHost && host.host === address) {
            host.host = kvmHost;
            host.address = address;
        }
        host.items.push(...items);
        hosts.set(key, host);
    }
    for (const h of hosts.values()) {
        h.items.sort((a, b) => ACTION_ORDER.indexOf(a.action) - ACTION_ORDER.indexOf(b.action) || a.resource.localeCompare(b.resource));
    }
    return {
        hosts: [...hosts.values()].sort((a, b) => a.host.localeCompare(b.host)),
        // The engine's messages start with their own "error: ", which the plan's lines already say.
        errors: (digest.diagnostics ?? []).filter((d) => d.severity === "error").map((d) => (d.message ?? "").trim().replace(/^error: /, "")),
        changeSummary: digest.changeSummary ?? {},
    };
}

/** One line of a host's plan, e.g. `guest restart  guest db1 (NumaPinnedGuest kvm1-guest-db1): memoryMiB`. */
function itemLine(item: PlanItem, width: number): string {
    const what = item.guest ? `guest ${item.guest} (${item.type} ${item.resource})` : `${item.type} ${item.resource}`;
    const fields = item.fields.length > 0 ? `: ${item.fields.join(", ")}` : "";
    const why =
        item.why === "unknown-input"
            ? " (how: not known before apply, an input is computed)"
            : item.why === "host-differs"
              ? " (no input changed: the host differs from state and is put back)"
              : "";
    return `  ${actionLabel(item.action).padEnd(width)}  ${what}${fields}${why}`;
}

/** The plan as text: per host its lines, then what the operator says yes to in one paragraph. */
export function renderPlan(plan: Plan, stackName?: string): string {
    const out: string[] = [];
    const counts = Object.entries(plan.changeSummary)
        .filter(([, n]) => n > 0)
        .map(([op, n]) => `${n} ${op}`)
        .join(", ");
    out.push(`kvmtune plan${stackName ? ` for stack ${stackName}` : ""}${counts ? ` (preview: ${counts})` : ""}`);
    if (plan.errors.length > 0) {
        out.push("", "The preview failed; `up` would stop at these errors:", ...plan.errors.map((e) => `  error: ${e}`));
    }
    if (plan.hosts.length === 0) {
        // After a failed preview, "no changes" would be a claim the preview could not make.
        if (plan.errors.length === 0) out.push("", "No changes on any host.");
        return out.join("\n") + "\n";
    }
    const width = Math.max(...plan.hosts.flatMap((h) => h.items.map((i) => actionLabel(i.action).length)));
    for (const h of plan.hosts) {
        out.push("", `${h.host}${h.address ? ` (${h.address})` : ""}`, ...h.items.map((i) => itemLine(i, width)));
    }
    const all = plan.hosts.flatMap((h) => h.items.map((item) => ({ host: h.host, item })));
    const list = (action: PlanAction, label: (i: PlanItem) => string) => {
        const hits = all.filter((x) => x.item.action === action);
        return hits.length === 0 ? "none" : hits.map((x) => `${x.host}: ${label(x.item)}`).join("; ");
    };
    out.push(
        "",
        `Guest restarts: ${list("restart", (i) => i.guest ?? i.resource)}.`,
        `Host reboots: ${list("reboot", (i) => `${i.resource} (${i.fields.join(", ")})`)}.`,
        `Replaced: ${list("replace", (i) => i.resource)}.`,
    );
    return out.join("\n") + "\n";
}
