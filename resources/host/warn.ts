/**
 * Warnings from a provider method. The dynamic provider host has no connection to the engine's
 * log service, so `pulumi.log.warn` there falls back to the console; the engine shows a provider's
 * stderr lines in the update's output. One function, so every warning reads the same.
 */
export function warnUser(message: string): void {
    process.stderr.write(`warning: kvmtune: ${message}\n`);
}
