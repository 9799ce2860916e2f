/**
 * The kinds of change of the field policy (resources/policy.ts) and the words the preview shows for
 * them. Apart from policy.ts so that the plan (resources/plan.ts, `kvmtune/plan`) reads the same
 * words without pulling zod's types into a consumer's compilation.
 */
export type ChangeKind = "replace" | "live" | "restart" | "reboot" | "state";

/** How each kind of change is applied, in the words the preview shows. */
export const KIND_WORDS: Record<ChangeKind, string> = {
    replace: "replace",
    live: "live (applied to the running system)",
    restart: "guest restart (restartPolicy: restart now, or listed in pendingRestart)",
    reboot: "host reboot (boot configuration)",
    state: "state only (nothing on the host changes)",
};
