/**
 * Warnings from a provider method. The dynamic provider host has no connection to the engine's
 * log service (`pulumi.log.warn` there falls back to the console too); the engine shows a
 * provider's stderr lines in the update's output. One function, so every warning reads the same.
 */
export function warnUser(message: string): void {
    console.warn(`warning: kvmtune: ${message}`);
}

/**
 * Progress of a long provider step (a host rebooting). On stderr like warnings: `pulumi.log.info`
 * in the dynamic provider host has no engine to talk to and falls back to console.log
 * (@pulumi/pulumi/log/index.js), and stderr is what the engine is known here to show.
 */
export function progressUser(message: string): void {
    console.error(`info: kvmtune: ${message}`);
}
