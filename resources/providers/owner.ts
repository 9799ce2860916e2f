/**
 * The owner label a provider method works under, from one place. The resource classes always pass
 * `owner` (../owner.ts); state written before they did, and a provider called directly, lack it.
 * Then an update falls back to the label of the old state, and anything else to the resource's kind
 * and name as kvmtune labelled them before owners carried the stack. Never the text "undefined".
 */
export function resourceOwner(kind: string, name: string | undefined, props: Record<string, unknown>, olds?: Record<string, unknown>): string {
    for (const label of [props.owner, olds?.owner]) {
        if (typeof label === "string" && label.trim() !== "") return label;
    }
    return name ? `${kind} ${name}` : kind;
}
