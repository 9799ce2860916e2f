/**
 * HostReboot's provider: reboots a host when its boot-time settings wait for a boot, under a
 * policy, and checks after the boot that they are in effect.
 *
 * - Never by default (`policy: "never"`): the resource then only reports, in `reason`, which
 *   arguments wait for a boot.
 * - `whenRequired`: a reboot is due when `required` (KernelCmdline's `rebootRequired`) is true AND
 *   the host agrees: an argument of `expect` is not in /proc/cmdline, or one of `expectGone` still
 *   is. The host is asked because `required` may be stale: after kvmtune's own reboot, KernelCmdline's
 *   state says "required" until the next refresh, and trusting it would reboot on every `up`.
 * - Guests first: `refuse` fails before anything changes, naming the running guests; `shutdown`
 *   shuts them down and, after the boot, makes sure those with autostart run again.
 * - The boot is watched, not assumed: the boot id must change within `timeoutSeconds`, and every
 *   expected argument must be in the new kernel's command line, else the step fails saying why.
 *
 * Host operations are in ./hostRebootHost.ts, the inputs in ./hostRebootSchema.ts.
 */
import type * as pulumi from "@pulumi/pulumi";
import { KIND_WORDS } from "../changeKind";
import { KvmtuneError } from "../host/errors";
import { remoteFor } from "../host/sshPool";
import { progressUser } from "../host/warn";
import { canonical, diffProps, stateOnlyUpdate } from "../policy";
import { found, stateOf } from "../state";
import { checkInputs, containsUnknown, inputsFrom } from "../validate";
import { BootState, notInEffect, readBootState, reasonText, shutdownGuests, startGuests, startReboot, waitForNewBoot } from "./hostRebootHost";
import { HostRebootInputs, hostRebootSchema, POLICY } from "./hostRebootSchema";

export { hostRebootSchema, POLICY } from "./hostRebootSchema";
export type { HostRebootInputs } from "./hostRebootSchema";

const KIND = "HostReboot";

function inputsOf(props: Record<string, unknown>): HostRebootInputs {
    return inputsFrom(hostRebootSchema, props, "HostReboot inputs");
}

/** What the last reboot kvmtune did left in state: kept by steps that do not reboot. */
interface LastReboot {
    rebooted: string | null;
    guestsRestarted: string[];
}

function lastRebootOf(props: Record<string, unknown> | undefined): LastReboot {
    return {
        rebooted: typeof props?.rebooted === "string" ? props.rebooted : null,
        guestsRestarted: Array.isArray(props?.guestsRestarted) ? (props!.guestsRestarted as string[]) : [],
    };
}

function outputs(i: HostRebootInputs, state: BootState, last: LastReboot): Record<string, unknown> {
    const reason = reasonText(state.cmdline, i.expect, i.expectGone);
    return stateOf({
        ...i,
        /** /proc/sys/kernel/random/boot_id at the last look: changes with every boot. */
        lastBootId: state.bootId,
        /** When kvmtune last rebooted this host (ISO time), or null. */
        rebooted: last.rebooted,
        /** Which arguments are not in effect in the running kernel, in words; "" when all are. */
        reason,
        /** The host's own answer: a boot would change what the running kernel has. */
        rebootPending: reason !== "",
        /** Guests shut down for the last reboot that run again (by libvirt's autostart or by kvmtune). */
        guestsRestarted: last.guestsRestarted,
    });
}

/**
 * Whether the inputs ask for a reboot, as far as diff can tell without the host. An unknown
 * `policy` or `required` (preview, before KernelCmdline is known) may be one. A `required` that
 * the last look at the host already found satisfied, for the same arguments, is stale (see the
 * file comment) and is no change.
 */
export function rebootAsked(olds: Record<string, unknown>, news: Record<string, unknown>): boolean {
    if (containsUnknown(news.policy)) return true;
    if (news.policy !== "whenRequired") return false;
    if (containsUnknown(news.required) || containsUnknown(news.expect) || containsUnknown(news.expectGone)) return true;
    if (news.required !== true) return false;
    const sameArgs = canonical(olds.expect ?? []) === canonical(news.expect ?? []) && canonical(olds.expectGone ?? []) === canonical(news.expectGone ?? []);
    return !(sameArgs && olds.rebootPending === false);
}

/** What the preview says about a reboot the inputs ask for: why, and what will be checked after it. */
function rebootReasonOf(i: HostRebootInputs): string {
    return [
        "KernelCmdline reports rebootRequired",
        i.expect.length ? `after the boot /proc/cmdline must hold ${i.expect.join(" ")}` : "",
        i.expectGone.length ? `and lack ${i.expectGone.join(" ")}` : "",
        `guests: ${i.guests}`,
    ]
        .filter(Boolean)
        .join("; ");
}

/** create and update: read the host; reboot only when the policy, `required` and the host all say so. */
async function apply(i: HostRebootInputs, olds?: Record<string, unknown>): Promise<Record<string, unknown>> {
    const remote = remoteFor(i.connection);
    const before = await readBootState(remote);
    const reason = reasonText(before.cmdline, i.expect, i.expectGone);
    if (i.policy !== "whenRequired" || !i.required || reason === "") {
        if (i.policy === "whenRequired" && i.required) {
            progressUser(`${remote.name}: not rebooting: every expected argument is in effect already (KernelCmdline's rebootRequired is from before the last boot; a refresh updates it)`);
        }
        return outputs(i, before, lastRebootOf(olds));
    }
    // Before anything changes: a refused reboot leaves the host untouched.
    if (before.running.length > 0 && i.guests === "refuse") {
        throw new KvmtuneError(
            `${KIND} on ${remote.name}: a reboot is due (${reason}), but guests are running: ${before.running.join(", ")}. ` +
                `guests is "refuse": stop them first, or set guests: "shutdown" to have kvmtune shut them down and start the autostarted ones again after the boot. The host was not rebooted`,
        );
    }
    const toRunAgain = before.running.filter((g) => before.autostart.includes(g));
    const stayDown = before.running.filter((g) => !before.autostart.includes(g));
    progressUser(`rebooting ${remote.name}: ${reason}` + (before.running.length ? `; shutting down guests ${before.running.join(", ")}` : ""));
    await shutdownGuests(remote, remote.name, before.running, i.guestShutdownTimeoutSeconds);
    await startReboot(remote);
    const after = await waitForNewBoot(i.connection, before.bootId, i.timeoutSeconds, progressUser);
    progressUser(`${remote.name} is back (boot id ${after.bootId})`);
    // Guests first, even when the check below fails: the host is up, and they ran before.
    await startGuests(remoteFor(i.connection), toRunAgain.filter((g) => !after.running.includes(g)));
    if (stayDown.length) progressUser(`${remote.name}: guests ${stayDown.join(", ")} were shut down for the reboot and have no autostart: left off`);
    const { missing, stillThere } = notInEffect(after.cmdline, i.expect, i.expectGone);
    if (missing.length || stillThere.length) {
        throw new KvmtuneError(
            `${KIND} on ${remote.name}: the host came back (boot id ${after.bootId}), but its kernel ` +
                [missing.length ? `lacks ${missing.join(" ")}` : "", stillThere.length ? `still has ${stillThere.join(" ")}` : ""].filter(Boolean).join(" and ") +
                `; /proc/cmdline reads: ${after.cmdline.join(" ")}. The entry that booted is not the one KernelCmdline wrote (GRUB's saved default, a fallback after a failed boot, another kernel): ` +
                `compare it with KernelCmdline's bootCmdline, fix the boot configuration, then run pulumi up again (which reboots again while the arguments are not in effect; set policy: "never" to stop that)`,
        );
    }
    return outputs(i, after, { rebooted: new Date().toISOString(), guestsRestarted: toRunAgain });
}

export const provider = {
    async check(_olds: Record<string, unknown>, news: Record<string, unknown>): Promise<pulumi.dynamic.CheckResult> {
        const checked = checkInputs(hostRebootSchema, news);
        if (!checked.inputs || containsUnknown(checked.inputs)) return checked;
        const i = checked.inputs as HostRebootInputs;
        if (i.policy !== "whenRequired" || !i.required) return checked;
        // The preview's words (the per-host plan reads changePlan: resources/plan.ts); a dynamic
        // provider's detailed diff does not reach the engine (pulumi#3080).
        return { inputs: { ...checked.inputs, changePlan: { required: KIND_WORDS.reboot }, rebootReason: rebootReasonOf(i) } };
    },

    async diff(_id: string, olds: Record<string, unknown>, news: Record<string, unknown>): Promise<pulumi.dynamic.DiffResult> {
        // Every input's own change is state only (an update that reboots nothing unless due). A
        // `required` that went false is no change: it follows KernelCmdline (true until the refresh
        // after a boot), and an update for it alone would show after every reboot.
        if (!rebootAsked(olds, news)) {
            const required = news.required === false && olds.required !== undefined ? olds.required : news.required;
            return { ...diffProps(hostRebootSchema, POLICY, olds, { ...news, required }), deleteBeforeReplace: false };
        }
        // An update, never a replace: the host is the same host after its boot.
        return { changes: true, replaces: [], deleteBeforeReplace: false, detailedDiff: { required: { kind: "update", inputDiff: true } } } as pulumi.dynamic.DiffResult;
    },

    async create(props: Record<string, unknown>): Promise<pulumi.dynamic.CreateResult> {
        const i = inputsOf(props);
        const outs = await apply(i);
        return { id: `${i.connection.host}:${i.connection.port}/reboot`, outs };
    },

    async read(id: string, props: Record<string, unknown>): Promise<pulumi.dynamic.ReadResult> {
        const i = inputsOf(props);
        const state = await readBootState(remoteFor(i.connection));
        return found(id, outputs(i, state, lastRebootOf(props)));
    },

    async update(_id: string, olds: Record<string, unknown>, news: Record<string, unknown>): Promise<pulumi.dynamic.UpdateResult> {
        // A new connection or timeout with no reboot asked leaves the host alone, as every provider's does.
        if (!rebootAsked(olds, news)) {
            const untouched = stateOnlyUpdate(hostRebootSchema, POLICY, olds, news);
            if (untouched) return untouched;
        }
        return { outs: await apply(inputsOf(news), olds) };
    },

    /** Nothing on the host: a reboot cannot be undone, and the resource keeps no file or claim there. */
    async delete(): Promise<void> {},
};
