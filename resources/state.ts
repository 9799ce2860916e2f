/**
 * What a provider returns as state goes through protobuf's Struct, which refuses `undefined`
 * ("Unexpected struct type"). Optional inputs the user left out are simply absent from state.
 */
export function stateOf<T>(value: T): T {
    if (Array.isArray(value)) return value.map(stateOf) as T;
    if (value && typeof value === "object") {
        return Object.fromEntries(
            Object.entries(value as Record<string, unknown>)
                .filter(([, v]) => v !== undefined)
                .map(([k, v]) => [k, stateOf(v)]),
        ) as T;
    }
    return value;
}

/**
 * What every provider's `read` returns: one rule for refresh, in one place.
 * - Gone (the disk, PF, network or domain no longer exists): an empty id. Refresh drops the
 *   resource, and the next `up` creates it again.
 * - Found: the host's state as the outputs. Live values sit in the outputs' input-named fields,
 *   so diff (olds are the outputs) shows what changed behind kvmtune's back. No `inputs`: the
 *   stored inputs stay what the program declared, and the next `up` puts the host back to them.
 * - Imported (the engine passed the program's inputs only, no outputs): `inputs` read from the
 *   host as well, so the imported resource's inputs describe what it adopted.
 */
export function gone(): ReadResult {
    return { id: "", props: {} };
}

export function found(id: string, outputs: Record<string, unknown>, importedInputs?: Record<string, unknown>): ReadResult {
    return importedInputs === undefined ? { id, props: outputs } : { id, props: outputs, inputs: importedInputs };
}

/** pulumi.dynamic.ReadResult, without importing @pulumi/pulumi at run time (it is a peer dependency). */
interface ReadResult {
    id?: string;
    props?: Record<string, unknown>;
    inputs?: Record<string, unknown>;
}
