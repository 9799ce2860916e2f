/**
 * Rolling reboots: at most `maxDown` hosts of a fleet reboot at once. The hosts that have a
 * HostReboot, in a stable order (the order of `kvmtune:hosts`), form `maxDown` chains: the i-th
 * reboot depends on the (i − maxDown)-th, so the first `maxDown` start together and each later one
 * starts when the one `maxDown` places before it has finished (rebooted and checked, or found
 * nothing to do).
 *
 * Why a failed host stops the roll: the engine starts no new step after one failed. Checked in
 * the engine this repository builds (github.com/pulumi/pulumi/pkg/v3 v3.274.1,
 * resource/deploy/step_executor.go, `cancelDueToError`): a failed step rejects the deployment's
 * error promise and, unless `--continue-on-error` is given, cancels the deployment's context, so
 * steps already running finish and no new one starts. With `--continue-on-error` the failed step's
 * dependents are skipped (resource/deploy/step_generator.go, `dependsOnSkipped`): the failed
 * host's chain stops there, the other chains go on. Either
 * way a host that did not come back, or came back without its arguments, is never followed by
 * another reboot in its chain.
 */
import type * as pulumi from "@pulumi/pulumi";

/** The index of the reboot the i-th one waits for, or undefined for the first `maxDown`. */
export function predecessorOf(index: number, maxDown: number): number | undefined {
    if (!Number.isInteger(maxDown) || maxDown < 1) throw new Error(`maxDown: got ${maxDown}; must be a whole number of at least 1`);
    return index >= maxDown ? index - maxDown : undefined;
}

/** Who waits for whom, by name: each name to the name it depends on (undefined: starts at once). */
export function rollingOrder(names: readonly string[], maxDown: number): Array<[string, string | undefined]> {
    return names.map((name, i) => {
        const p = predecessorOf(i, maxDown);
        return [name, p === undefined ? undefined : names[p]];
    });
}

/**
 * Hands out the `dependsOn` of each host's HostReboot as the hosts are declared, in order:
 * `next()` before declaring a host's reboot, `add(reboot)` after. A host declared without a
 * reboot (`add` not called) takes no place in the chains.
 */
export class RollingReboots {
    private readonly reboots: pulumi.Resource[] = [];

    constructor(readonly maxDown: number) {
        predecessorOf(0, maxDown); // refuses a bad maxDown before any host is declared
    }

    /** What the next reboot must wait for: the reboot `maxDown` places before it, if any. */
    next(): pulumi.Resource[] {
        const p = predecessorOf(this.reboots.length, this.maxDown);
        return p === undefined ? [] : [this.reboots[p]];
    }

    add(reboot: pulumi.Resource): void {
        this.reboots.push(reboot);
    }
}
