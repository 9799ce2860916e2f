/**
 * KernelCmdline's provider: the kernel command line arguments kvmtune owns on one host (IOMMU, CPU
 * isolation, 1 GiB pages reserved at boot, extra arguments), merged with everything else on the
 * command line, which it never touches.
 *
 * - Persisted through the host's bootloader (../host/bootloader.ts): a GRUB fragment and
 *   update-grub on Debian and Ubuntu, grubby on the RHEL family (not lab-proven).
 * - One owner per host: the shared claim `kernel-cmdline` (../host/claims.ts), taken before the
 *   boot configuration changes, recording the default entry's command line as found. Delete takes
 *   kvmtune's arguments off again and checks the command line is back to that record.
 * - Every change takes effect at the next boot. The read compares the boot configuration with the
 *   running kernel (./kernelCmdlineRead.ts): `rebootRequired` is the host's answer, not a memory of
 *   what was written. kvmtune does not reboot the host here.
 *
 * The inputs (schema, policy, arguments) are in ./kernelCmdlineSchema.ts, the checks in
 * ./kernelCmdlineChecks.ts, the read in ./kernelCmdlineRead.ts.
 */
import type * as pulumi from "@pulumi/pulumi";
import { BootFlavor, CMDLINE_FRAGMENT, foreignArgs, persistedBootFiles, removeArgsScript, setArgsScript, splitArgs } from "../host/bootloader";
import { formerOwnersOf, KnobClaim, reclaimForUpdate } from "../host/claims";
import { persistedDrift, persistedPaths } from "../host/drift";
import { gatherFacts } from "../host/facts";
import { createKnob, deleteKnob } from "../host/knob";
import { Remote, runScript, TIMEOUTS } from "../host/remote";
import { remoteFor } from "../host/sshPool";
import { warnUser } from "../host/warn";
import { checkWithPlan, diffProps, stateOnlyUpdate } from "../policy";
import { found, stateOf } from "../state";
import { inputsFrom } from "../validate";
import { checkAgainstHost, conflicts } from "./kernelCmdlineChecks";
import { CmdlineRead, effectOf, readCmdline } from "./kernelCmdlineRead";
import { KernelCmdlineInputs, kernelCmdlineSchema, ownedArgs, POLICY } from "./kernelCmdlineSchema";
import { resourceOwner } from "./owner";

/** Re-exported: callers and tests name them from here. */
export { kernelCmdlineSchema, ownedArgs, POLICY } from "./kernelCmdlineSchema";
export type { KernelCmdlineInputs } from "./kernelCmdlineSchema";
export { checkAgainstHost, conflicts } from "./kernelCmdlineChecks";
export { effectOf, parseCmdlineRead, readCmdline, readScript } from "./kernelCmdlineRead";

/** The boot configuration as found before create: delete gives this back. */
export interface Original {
    flavor: BootFlavor;
    /** The default entry's arguments, exactly as the boot configuration held them. */
    cmdline: string;
}

export const KNOB = "kernel-cmdline";

/** The one knob: the arguments kvmtune owns on the host's kernel command line (and its fragment). */
export function cmdlineClaim(owner: string, flavor: BootFlavor, formerOwners: string[] = [], original?: Original): KnobClaim {
    return {
        knob: KNOB,
        what: "the kernel command line arguments kvmtune owns",
        owner,
        formerOwners,
        files: flavor === "update-grub" ? [CMDLINE_FRAGMENT] : [],
        original,
    };
}

const KIND = "KernelCmdline";

function inputsOf(props: Record<string, unknown>): KernelCmdlineInputs {
    return inputsFrom(kernelCmdlineSchema, props, "KernelCmdline inputs");
}

const strings = (v: unknown): string[] => (Array.isArray(v) ? v.filter((s): s is string => typeof s === "string") : []);

/** The boot configuration's tool and default entry, or an error saying what kvmtune could not find. */
function bootOf(r: CmdlineRead, host: string): { flavor: BootFlavor; cmdline: string; source: string } {
    if (r.boot.flavor === null) {
        throw new Error(
            `${KIND} on ${host}: found no bootloader tool kvmtune supports: neither update-grub (Debian, Ubuntu) nor grubby with BLS entries in /boot/loader/entries (RHEL family)`,
        );
    }
    if (r.boot.cmdline === null) {
        throw new Error(`${KIND} on ${host}: cannot read the default boot entry's command line from ${r.boot.source} (${r.boot.flavor}): run ${r.boot.flavor === "grubby" ? "grubby --info=DEFAULT" : "update-grub"} on the host to see why`);
    }
    return { flavor: r.boot.flavor, cmdline: r.boot.cmdline, source: r.boot.source };
}

/**
 * After a write: the boot configuration must hold every argument kvmtune owns now, and none it
 * gave up (unless the original had it). update-grub succeeds when a later grub.d fragment drops
 * ours (GRUB_CMDLINE_LINUX set without $GRUB_CMDLINE_LINUX): only the generated file tells.
 */
function verifyBoot(host: string, r: CmdlineRead, args: readonly string[], gone: readonly string[], keep: readonly string[]): void {
    const boot = splitArgs(r.boot.cmdline ?? "");
    const lacking = args.filter((a) => !boot.includes(a));
    const left = gone.filter((a) => boot.includes(a) && !keep.includes(a));
    if (lacking.length === 0 && left.length === 0) return;
    const why =
        r.boot.flavor === "update-grub"
            ? ` A file in /etc/default/grub.d sorted after ${CMDLINE_FRAGMENT.split("/").pop()} may set GRUB_CMDLINE_LINUX without "$GRUB_CMDLINE_LINUX", or the default entry is not the first one.`
            : "";
    throw new Error(
        `${KIND} on ${host}: after the write, the default boot entry (${r.boot.source}) ` +
            [lacking.length ? `lacks ${lacking.join(" ")}` : "", left.length ? `still has ${left.join(" ")}` : ""].filter(Boolean).join(" and ") +
            `; it reads: ${r.boot.cmdline}.${why}`,
    );
}

function outputs(i: KernelCmdlineInputs, owner: string, args: string[], r: CmdlineRead, original: Original | undefined, retired: readonly string[], drift: string[] = []) {
    const effect = effectOf(i, args, retired, r);
    const running = splitArgs(r.running.cmdline);
    return stateOf({
        ...i,
        owner,
        /** The arguments kvmtune owns on the host, as written. */
        args,
        bootloader: r.boot.flavor,
        /** The default boot entry's command line: what the next boot gets. */
        bootCmdline: r.boot.cmdline ?? "",
        running: r.running,
        rebootRequired: effect.rebootRequired,
        notInEffect: effect.notInEffect,
        // Arguments kvmtune took off that the running kernel still has: kept until a reboot drops them.
        retired: retired.filter((a) => running.includes(a) && !args.includes(a)),
        original,
        drift,
    });
}

export const provider = {
    async check(olds: Record<string, unknown>, news: Record<string, unknown>): Promise<pulumi.dynamic.CheckResult> {
        return checkWithPlan(kernelCmdlineSchema, POLICY, olds, news);
    },

    async diff(_id: string, olds: Record<string, unknown>, news: Record<string, unknown>): Promise<pulumi.dynamic.DiffResult> {
        return diffProps(kernelCmdlineSchema, POLICY, olds, news);
    },

    async create(props: Record<string, unknown>): Promise<pulumi.dynamic.CreateResult> {
        const i = inputsOf(props);
        const owner = resourceOwner(KIND, undefined, props);
        const remote = remoteFor(i.connection);
        const facts = await gatherFacts(remote);
        const before = await readCmdline(remote);
        const boot = bootOf(before, facts.hostname);
        const args = ownedArgs(i, before.online);
        // Arguments already there that kvmtune would own: refused before the claim or any write.
        const problems = [...checkAgainstHost(i, facts), ...conflicts(foreignArgs(boot.cmdline, args), args, boot.source)];
        if (problems.length) throw new Error(`${KIND} on ${facts.hostname}: ${problems.join("; ")}`);
        const seen: Original = { flavor: boot.flavor, cmdline: boot.cmdline };
        return createKnob(
            remote,
            cmdlineClaim(owner, boot.flavor, [], seen) as KnobClaim & { original: Original },
            async (original) => {
                const keep = splitArgs(original.cmdline);
                await runScript(remote, setArgsScript(original.flavor, owner, args, [], keep), { timeoutSeconds: TIMEOUTS.bootConfig });
                const after = await readCmdline(remote);
                verifyBoot(facts.hostname, after, args, [], keep);
                return { id: `${facts.hostname}/${KNOB}`, outs: outputs(i, owner, args, after, original, []) };
            },
            (original) => runScript(remote, removeArgsScript(original.flavor, args, splitArgs(original.cmdline)), { timeoutSeconds: TIMEOUTS.bootConfig }).then(() => undefined),
        );
    },

    async read(id: string, props: Record<string, unknown>): Promise<pulumi.dynamic.ReadResult> {
        const i = inputsOf(props);
        const owner = resourceOwner(KIND, undefined, props);
        // Absent from state imported by hand or cut off before create returned: judged by the host's tool.
        const original = props.original as Original | undefined;
        // The fragment and the claim in the same round trip. The fragment's path is read whatever the
        // flavor (absent on grubby hosts): its text depends on the CPUs read, so it is judged after.
        const claimPaths = persistedPaths(persistedBootFiles("update-grub", owner, []), [cmdlineClaim(owner, "update-grub")]);
        const r = await readCmdline(remoteFor(i.connection), claimPaths);
        const flavor = original?.flavor ?? r.boot.flavor;
        const args = ownedArgs(i, r.online);
        const effect = effectOf(i, args, strings(props.retired), r);
        const drift = [
            ...(r.boot.flavor !== flavor || flavor === null ? [`the host's bootloader tool is ${r.boot.flavor ?? "none kvmtune supports"} now${flavor ? `, not ${flavor}` : ""}`] : []),
            ...(flavor ? persistedDrift(r.files, persistedBootFiles(flavor, owner, args), [cmdlineClaim(owner, flavor)]) : []),
            ...effect.bootLacks.map((a) => `the default boot entry (${r.boot.source}) lacks ${a}`),
        ];
        return found(id, outputs(i, owner, args, r, original, strings(props.retired), drift));
    },

    async update(_id: string, olds: Record<string, unknown>, news: Record<string, unknown>): Promise<pulumi.dynamic.UpdateResult> {
        const untouched = stateOnlyUpdate(kernelCmdlineSchema, POLICY, olds, news);
        if (untouched) return untouched;
        const i = inputsOf(news);
        const owner = resourceOwner(KIND, undefined, news, olds);
        const remote = remoteFor(i.connection);
        const facts = await gatherFacts(remote);
        const before = await readCmdline(remote);
        const boot = bootOf(before, facts.hostname);
        const args = ownedArgs(i, before.online);
        const oldArgs = strings(olds.args);
        const problems = [...checkAgainstHost(i, facts), ...conflicts(foreignArgs(boot.cmdline, oldArgs), args, boot.source)];
        if (problems.length) throw new Error(`${KIND} on ${facts.hostname}: ${problems.join("; ")}`);
        // Re-taken on every update: moves the claim to a new label; a claim the host lost is taken
        // again, recording the command line as it is now (less kvmtune's arguments, when they are there).
        const now: Original = { flavor: boot.flavor, cmdline: foreignArgs(boot.cmdline, oldArgs).join(" ") };
        const original = await reclaimForUpdate(remote, cmdlineClaim(owner, boot.flavor, formerOwnersOf(olds, owner), now), olds.original as Original | undefined);
        const keep = splitArgs(original.cmdline);
        await runScript(remote, setArgsScript(boot.flavor, owner, args, oldArgs, keep), { timeoutSeconds: TIMEOUTS.bootConfig });
        const after = await readCmdline(remote);
        const gone = oldArgs.filter((a) => !args.includes(a));
        verifyBoot(facts.hostname, after, args, gone, keep);
        return { outs: outputs(i, owner, args, after, original, [...strings(olds.retired), ...gone]) };
    },

    async delete(_id: string, props: Record<string, unknown>): Promise<void> {
        const i = inputsOf(props);
        const remote = remoteFor(i.connection);
        const original = props.original as Original;
        const owner = resourceOwner(KIND, undefined, props);
        await deleteKnob(remote, cmdlineClaim(owner, original.flavor), () => restore(remote, owner, original, strings(props.args)));
    },
};

/** Takes kvmtune's arguments off and checks the default entry reads as it did before create. */
async function restore(remote: Remote, owner: string, original: Original, args: readonly string[]): Promise<void> {
    await runScript(remote, removeArgsScript(original.flavor, args, splitArgs(original.cmdline)), { timeoutSeconds: TIMEOUTS.bootConfig });
    const after = await readCmdline(remote);
    if (after.boot.cmdline !== original.cmdline) {
        // Not an error: the resource is gone either way, and kvmtune does not touch what it does not
        // own. But the operator expects the command line found at create: say what differs.
        warnUser(
            `${owner}: kvmtune's arguments are off the boot configuration of ${remote.name}, but its default entry (${after.boot.source}) does not read as it did before create: ` +
                `it was ${JSON.stringify(original.cmdline)}, it is ${JSON.stringify(after.boot.cmdline)} (changed since by someone else?)`,
        );
    }
}
