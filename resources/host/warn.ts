/**
 * Warnings from a provider method. The dynamic provider host has no connection to the engine's
 * log service (`pulumi.log.warn` there falls back to the console too); the engine shows a
 * provider's stderr lines in the update's output. One function, so every warning reads the same.
 */
export function warnUser(message: string): void {
    console.warn(`warning: kvmtune: ${message}`);
}
