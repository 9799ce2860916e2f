/**
 * The label naming a resource in what it leaves on a host: the header of every file it writes, its
 * ownership claims (host/claims.ts), a guest's `<metadata>` mark. Resource names are unique only
 * within a stack, so the label carries the project and stack too: two stacks that both declare a
 * `BlockElevator db` are two owners, and the second is refused the knob the first holds.
 */
import * as pulumi from "@pulumi/pulumi";

export function ownerLabel(kind: string, name: string): string {
    return `${kind} ${name} (${pulumi.getProject()}/${pulumi.getStack()})`;
}
