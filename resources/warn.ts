/**
 * A warning for the person running `pulumi up`, from provider code: the one place providers warn.
 *
 * In the provider process @pulumi/pulumi has no engine connection, so `pulumi.log.warn` writes the
 * line to stderr, which the engine shows in the update's output (as a diagnostic without a
 * resource). A dynamic provider's methods are not given their resource's URN, so messages name
 * the resource by its owner label instead.
 */
export async function warnUser(message: string): Promise<void> {
    const pulumi = await import("@pulumi/pulumi");
    await pulumi.log.warn(message);
}
