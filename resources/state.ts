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
