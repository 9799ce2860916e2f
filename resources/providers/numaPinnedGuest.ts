/**
 * NumaPinnedGuest's provider: a libvirt domain driven by `virsh` over the transport, whose vCPUs,
 * emulator and I/O threads are pinned, whose memory is bound to host NUMA nodes and may come from
 * huge pages, and whose disks and NICs use the fast paths.
 *
 * - Everything is checked against the host before anything changes: CPUs exist and sit on the
 *   chosen nodes, no CPU is pinned to vCPUs of two guests, the nodes' pools have the free pages,
 *   networks and VFs exist.
 * - Pins and the numatune nodeset change live (`--live`, after the persistent definition has them);
 *   other changes go to the persistent definition and take effect at the next start: with
 *   `restartPolicy: "restart"` the guest is restarted, otherwise `pendingRestart` lists them.
 * - What we compare is what we own, parsed from `virsh dumpxml` (see ../libvirt/domain.ts), so
 *   libvirt's own additions never show up as changes.
 * - A domain carries an ownership mark in `<metadata>`; a domain without ours is never redefined
 *   unless it was adopted with the `adopt` input (Pulumi's import cannot reach dynamic providers).
 *
 * This file holds the provider methods. The inputs (schema, policy) are in ./numaPinnedGuestSchema.ts,
 * the spec built from them in ./numaPinnedGuestSpec.ts, the checks against the host in
 * ./numaPinnedGuestChecks.ts and the read back in ./numaPinnedGuestRead.ts.
 */
import type * as pulumi from "@pulumi/pulumi";
import { resourceOwner } from "./owner";
import { Remote, TIMEOUTS } from "../host/remote";
import { remoteFor } from "../host/sshPool";
import { formatCpuList } from "../host/sysfs";
import { buildDomainXml, GuestSpec, isHostdev, parseDomainXml, ParsedDomain, projectLive } from "../libvirt/domain";
import { GuestDefaults, networkGuestDefaults } from "../libvirt/network";
import { defineWithCpusChosen } from "../libvirt/guestCpus";
import { DomainRead, readDomain, startDomain, stopDomain, undefineDomain, virsh } from "../libvirt/virsh";
import { canonical, checkWithPlan, diffResult, stateOnlyUpdate } from "../policy";
import { found, gone, stateOf } from "../state";
import { containsUnknown, inputsFrom } from "../validate";
import { NumaPinnedGuestInputs, numaPinnedGuestSchema, POLICY } from "./numaPinnedGuestSchema";
import { takenDefaults, wantedSpec } from "./numaPinnedGuestSpec";
import { checkAgainstHost, EmulatorPlacement, networkNames, pageSizeOf, pagesFor, resolveEmulatorPin, resolvePins, resolveVfs, viewHost } from "./numaPinnedGuestChecks";
import { inputsFromHost, isRunning, movesMemoryLive, observedSpec, pendingRestartOf, same, withModeAwarePlan } from "./numaPinnedGuestRead";

/** Re-exported: callers and tests name them from here. */
export { numaPinnedGuestSchema, POLICY } from "./numaPinnedGuestSchema";
export type { NumaPinnedGuestInputs } from "./numaPinnedGuestSchema";
export { nodesOf, wantedSpec } from "./numaPinnedGuestSpec";
export { checkAgainstHost, pageSizeOf, pagesFor, resolveEmulatorPin, resolvePins } from "./numaPinnedGuestChecks";
export type { EmulatorPlacement, HostView, OtherGuest } from "./numaPinnedGuestChecks";
export { inputsFromHost, movesMemoryLive, observedSpec, pendingRestartOf } from "./numaPinnedGuestRead";

// ---------------------------------------------------------------------------------------------
// The provider

function inputsOf(props: Record<string, unknown>): NumaPinnedGuestInputs {
    return inputsFrom(numaPinnedGuestSchema, props, "NumaPinnedGuest inputs");
}

interface Observed {
    read: DomainRead;
    config: ParsedDomain;
    live: ParsedDomain;
    running: boolean;
    spec: GuestSpec;
}

async function observe(remote: Remote, ref: string): Promise<Observed | null> {
    const read = await readDomain(remote, ref);
    if (!read.exists) return null;
    const config = parseDomainXml(read.configXml);
    const live = parseDomainXml(read.liveXml);
    const running = isRunning(read.state);
    return { read, config, live, running, spec: observedSpec(config.spec, live.spec, running) };
}

/** What an apply resolved from the inputs and the host, kept in state so later reads compare against the same choices. */
interface Resolved {
    cpuPins: number[][];
    emulator: EmulatorPlacement;
    /** Per interface: the VF's PCI address (null for other interfaces). */
    vfs: Array<string | null>;
    /** Per interface: what it took from its network's guest defaults (null: nothing). */
    taken: Array<GuestDefaults | null>;
}

function outputs(i: NumaPinnedGuestInputs, owner: string, o: Observed, resolved: Resolved, adopted: boolean) {
    return stateOf({
        ...i,
        owner,
        uuid: o.config.uuid,
        state: o.read.state,
        resolvedCpuPins: resolved.cpuPins,
        /** The emulator's CPUs as applied: emulatorPin, or chosen by kvmtune (emulatorPinReason says why); null: unpinned. */
        resolvedEmulatorPin: resolved.emulator.cpus,
        emulatorPinReason: resolved.emulator.reason,
        pendingRestart: o.running ? pendingRestartOf(o.config.spec, o.live.spec) : [],
        /** The domain carries this resource's ownership mark (false for an imported, not yet updated guest). */
        owned: o.config.owner === owner,
        adopted,
        /** Each hostdev interface's VF as resolved when last applied (null for other interfaces). */
        vfAddresses: resolved.vfs,
        /** What each network interface took from its network's guest defaults when last applied (null: nothing). */
        interfaceDefaults: resolved.taken,
    });
}

/** Compares what the host has with what was asked, after a change: each mismatch names both. */
function mismatches(wanted: GuestSpec, o: Observed): string[] {
    const seen = projectLive(o.config.spec, wanted);
    const out: string[] = [];
    for (const k of Object.keys(wanted) as Array<keyof GuestSpec>) {
        if (!same(seen[k], wanted[k])) out.push(`${k} (definition): asked ${canonical(wanted[k])}, libvirt has ${canonical(seen[k])}`);
    }
    if (o.running) {
        for (const k of ["vcpuPins", "emulatorPin", "iothreadPins"] as const) {
            if (!same(o.live.spec[k], wanted[k])) out.push(`${k} (running): asked ${canonical(wanted[k])}, the guest has ${canonical(o.live.spec[k])}`);
        }
    }
    return out;
}

async function setAutostart(remote: Remote, name: string, want: boolean, has: boolean): Promise<void> {
    if (want !== has) await virsh(remote, want ? ["autostart", name] : ["autostart", "--disable", name]);
}

/** Applies the pins of `wanted` to the running QEMU where they differ (the definition has them already). */
async function applyLivePins(remote: Remote, name: string, wanted: GuestSpec, live: GuestSpec, allCpus: number[]): Promise<string[]> {
    const done: string[] = [];
    for (let v = 0; v < Math.min(wanted.vcpus, live.vcpus); v++) {
        const want = wanted.vcpuPins[v].length ? wanted.vcpuPins[v] : allCpus;
        if (!same(want, live.vcpuPins[v].length ? live.vcpuPins[v] : allCpus)) {
            await virsh(remote, ["vcpupin", name, v, formatCpuList(want), "--live"]);
            done.push(`vcpu ${v} -> ${formatCpuList(want)}`);
        }
    }
    const emu = wanted.emulatorPin ?? allCpus;
    if (!same(emu, live.emulatorPin ?? allCpus)) {
        await virsh(remote, ["emulatorpin", name, formatCpuList(emu), "--live"]);
        done.push(`emulator -> ${formatCpuList(emu)}`);
    }
    for (let t = 0; t < Math.min(wanted.iothreads, live.iothreads); t++) {
        const want = wanted.iothreadPins[t].length ? wanted.iothreadPins[t] : allCpus;
        if (!same(want, live.iothreadPins[t].length ? live.iothreadPins[t] : allCpus)) {
            await virsh(remote, ["iothreadpin", name, t + 1, formatCpuList(want), "--live"]);
            done.push(`iothread ${t + 1} -> ${formatCpuList(want)}`);
        }
    }
    // libvirt moves a running guest's memory binding only in strict or restrictive mode.
    if (wanted.numa && live.numa && wanted.numa.mode === live.numa.mode && movesMemoryLive(wanted.numa.mode) && !same(wanted.numa.nodeset, live.numa.nodeset)) {
        await virsh(remote, ["numatune", name, "--nodeset", formatCpuList(wanted.numa.nodeset), "--live"], { timeoutSeconds: TIMEOUTS.memoryMove });
        done.push(`numatune nodeset -> ${formatCpuList(wanted.numa.nodeset)}`);
    }
    return done;
}

/** Huge pages a running guest holds now (given back when it stops); `size` is what its `hugepages` means on the host. */
function pagesHeldBy(o: Observed | null, hugepages: NumaPinnedGuestInputs["hugepages"], size: string | null): number {
    if (!o || !o.running || !hugepages || !size || o.live.spec.hugepages !== hugepages) return 0;
    return pagesFor(o.live.spec.memoryMiB, size);
}

/**
 * Adoption: the existing domain must be what the inputs declare (as `pulumi import` demands);
 * nothing is written. The first later update redefines it with this resource's mark.
 */
async function adopt(remote: Remote, i: NumaPinnedGuestInputs, owner: string): Promise<pulumi.dynamic.CreateResult> {
    const ref = i.adopt as string;
    const o = await observe(remote, ref);
    if (!o) throw new Error(`adopt: ${remote.name} has no domain ${ref}`);
    if (o.config.spec.name !== i.name) throw new Error(`adopt: domain ${ref} is named ${o.config.spec.name}, but name is ${i.name}`);
    const pins = i.cpuPins === "auto" ? o.spec.vcpuPins : i.cpuPins;
    const vfs = await resolveVfs(remote, i);
    const taken = takenDefaults(i, await networkGuestDefaults(remote, networkNames(i)));
    const wanted = wantedSpec(i, pins, vfs, taken);
    const seen = inputsFromHost(i, wanted, o.spec, o.read.autostart, o.running) as Record<string, unknown>;
    const declared = i as Record<string, unknown>;
    const differ = (Object.keys(POLICY) as string[]).filter((f) => canonical(seen[f]) !== canonical(declared[f]));
    if (differ.length) {
        throw new Error(
            `adopt: domain ${o.config.spec.name} (${o.config.uuid}) is not what the inputs declare; it was left untouched. ` +
                differ.map((f) => `${f}: declared ${canonical(declared[f])}, the host has ${canonical(seen[f])}`).join("; ") +
                `. Declare the guest as it is to adopt it, then change it.`,
        );
    }
    return { id: o.config.uuid, outs: outputs(i, owner, o, { cpuPins: pins, emulator: { cpus: wanted.emulatorPin, reason: null }, vfs, taken }, true) };
}

export const provider = {
    async check(olds: Record<string, unknown>, news: Record<string, unknown>): Promise<pulumi.dynamic.CheckResult> {
        return withModeAwarePlan(checkWithPlan(numaPinnedGuestSchema, POLICY, olds, news));
    },

    /**
     * Old values come from state as stored (already normalized by check, or read from the host by
     * refresh, which may hold values libvirt allows and the schema does not): compared as they are.
     */
    async diff(_id: string, olds: Record<string, unknown>, news: Record<string, unknown>): Promise<pulumi.dynamic.DiffResult> {
        const unknown = containsUnknown(news);
        const next: Record<string, unknown> = unknown ? news : inputsOf(news);
        const changes = (Object.keys(POLICY) as Array<keyof NumaPinnedGuestInputs>)
            .filter((f) => (unknown && containsUnknown(next[f])) || canonical(olds[f]) !== canonical(next[f]))
            .map((field) => ({ field, kind: POLICY[field] }));
        return diffResult(changes);
    },

    async create(props: Record<string, unknown>): Promise<pulumi.dynamic.CreateResult> {
        const i = inputsOf(props);
        const owner = resourceOwner("NumaPinnedGuest", i.name, props);
        const remote = remoteFor(i.connection);
        if (i.adopt) return adopt(remote, i, owner);
        // Reading the other guests, choosing CPUs and defining is one guarded step: a guest defined
        // meanwhile (a parallel create) makes it read and choose again (../libvirt/guestCpus.ts).
        const { host, existing, before, resolved, wanted } = await defineWithCpusChosen(remote, async () => {
            const host = await viewHost(remote, i);
            const existing = host.domains.find((d) => d.spec.name === i.name);
            if (existing && existing.owner !== owner) {
                throw new Error(
                    `a domain named ${i.name} already exists on ${host.facts.hostname} (uuid ${existing.uuid}) and carries ` +
                        (existing.owner === null ? "no kvmtune ownership mark" : `the mark of "${existing.owner}"`) +
                        `: it was left untouched. Adopt it with the adopt input (adopt: "${existing.uuid}"), or choose another name.`,
                );
            }
            // An existing domain with our own mark is ours from an earlier, interrupted run: converge it.
            const before = existing ? await observe(remote, existing.uuid) : null;
            const others = { ...host, others: host.others.filter((o) => o.uuid !== existing?.uuid) };
            const pins = resolvePins(i, others);
            const problems = checkAgainstHost(i, pins, others, { willStart: i.running && !before?.running, pagesHeld: pagesHeldBy(before, i.hugepages, pageSizeOf(i.hugepages, host.facts)) });
            if (problems.length) throw new Error(`NumaPinnedGuest ${i.name} on ${host.facts.hostname}: ${problems.join("; ")}`);
            const resolved: Resolved = { cpuPins: pins, emulator: resolveEmulatorPin(i, pins, host.facts), vfs: host.vfs, taken: takenDefaults(i, host.netDefaults ?? new Map()) };
            const wanted = wantedSpec(i, pins, resolved.vfs, resolved.taken, resolved.emulator.cpus);
            return { xml: buildDomainXml(wanted, owner, existing?.uuid), result: { host, existing, before, resolved, wanted } };
        });
        try {
            await setAutostart(remote, i.name, i.autostart, before?.read.autostart ?? false);
            if (i.running && !before?.running) await startDomain(remote, i.name);
        } catch (err) {
            // A guest that cannot start is not left behind half made.
            if (!existing) {
                await stopDomain(remote, i.name, 0).catch(() => undefined);
                await undefineDomain(remote, i.name, false).catch(() => undefined);
            }
            throw err;
        }
        const o = (await observe(remote, i.name))!;
        const wrong = mismatches(wanted, o);
        if (wrong.length) throw new Error(`NumaPinnedGuest ${i.name} on ${host.facts.hostname}: libvirt did not take the definition: ${wrong.join("; ")}`);
        return { id: o.config.uuid, outs: outputs(i, owner, o, resolved, false) };
    },

    async read(id: string, props: Record<string, unknown>): Promise<pulumi.dynamic.ReadResult> {
        if (!props.connection) {
            throw new Error(`NumaPinnedGuest ${id}: reading a guest needs its connection, which Pulumi's import does not pass to a dynamic provider (pulumi/pulumi#16175): declare the guest with the adopt input instead`);
        }
        const i = inputsOf(props);
        const owner = resourceOwner("NumaPinnedGuest", i.name, props);
        const remote = remoteFor(i.connection);
        const o = await observe(remote, id);
        if (!o) return gone(); // the domain is gone: refresh drops the resource
        // No outputs in props: this read is an import (the engine passes the program's inputs only).
        const importing = props.uuid === undefined;
        const previous = Array.isArray(props.resolvedCpuPins) ? (props.resolvedCpuPins as number[][]) : undefined;
        // `auto` pins mean "what was chosen": on import, what the guest has.
        const pins = i.cpuPins === "auto" ? (importing || !previous ? o.spec.vcpuPins : previous) : i.cpuPins;
        const vfs = i.interfaces.map((f, n) => {
            const seen = o.spec.interfaces[n];
            return "hostdevVf" in f && seen && isHostdev(seen) ? (importing ? seen.pciAddress : ((props.vfAddresses as string[] | undefined)?.[n] ?? null)) : null;
        });
        // What the interfaces took from their networks when last applied (a network's defaults may have changed since).
        const taken = Array.isArray(props.interfaceDefaults) ? (props.interfaceDefaults as Array<GuestDefaults | null>) : [];
        // An emulator pin kvmtune chose (emulatorPin left out) is compared as chosen; state from before that choice existed: unpinned.
        const emulator: EmulatorPlacement = i.emulatorPin
            ? { cpus: i.emulatorPin, reason: null }
            : { cpus: importing || !Array.isArray(props.resolvedEmulatorPin) ? null : (props.resolvedEmulatorPin as number[]), reason: typeof props.emulatorPinReason === "string" ? props.emulatorPinReason : null };
        const wanted = wantedSpec(i, pins, vfs, taken, emulator.cpus);
        const live = inputsFromHost(i, wanted, o.spec, o.read.autostart, o.running);
        const outs = outputs(live, owner, o, { cpuPins: pins, emulator, vfs, taken }, importing || props.adopted === true);
        return found(id, outs, importing ? stateOf({ ...live, owner }) : undefined);
    },

    async update(id: string, olds: Record<string, unknown>, news: Record<string, unknown>): Promise<pulumi.dynamic.UpdateResult> {
        // restartPolicy is state only, except for a guest with changes waiting for a restart: turning
        // it to `restart` then restarts the guest to apply them, as a user who sets it expects.
        const pending = Array.isArray(olds.pendingRestart) && olds.pendingRestart.length > 0;
        const untouched = pending ? null : stateOnlyUpdate(numaPinnedGuestSchema, POLICY, olds, news);
        if (untouched) return untouched;
        const i = inputsOf(news);
        const owner = resourceOwner("NumaPinnedGuest", i.name, news, olds);
        const remote = remoteFor(i.connection);
        const o = await observe(remote, id);
        if (!o) throw new Error(`NumaPinnedGuest ${i.name}: domain ${id} is gone from the host; run refresh, then up creates it again`);
        if (o.config.owner !== owner && olds.adopted !== true) {
            throw new Error(
                `NumaPinnedGuest ${i.name}: domain ${o.config.uuid} carries ${o.config.owner === null ? "no kvmtune ownership mark" : `the mark of "${o.config.owner}"`}, ` +
                    `not this resource's; it is not redefined. Declare it with the adopt input to take it over.`,
            );
        }
        const previous = Array.isArray(olds.resolvedCpuPins) ? (olds.resolvedCpuPins as number[][]) : undefined;
        // As in create: the other guests are read, pins chosen and the definition written as one guarded step.
        const { host, resolved, wanted, restart, willStart } = await defineWithCpusChosen(remote, async () => {
            const host = await viewHost(remote, i, o.config.uuid);
            const pins = resolvePins(i, host, previous);
            const resolved: Resolved = { cpuPins: pins, emulator: resolveEmulatorPin(i, pins, host.facts), vfs: host.vfs, taken: takenDefaults(i, host.netDefaults ?? new Map()) };
            const wanted = wantedSpec(i, pins, resolved.vfs, resolved.taken, resolved.emulator.cpus);
            const restartParts = pendingRestartOf(wanted, o.live.spec);
            const restart = o.running && i.running && restartParts.length > 0 && i.restartPolicy === "restart";
            const willStart = i.running && (!o.running || restart);
            const problems = checkAgainstHost(i, pins, host, { willStart, pagesHeld: pagesHeldBy(o, i.hugepages, pageSizeOf(i.hugepages, host.facts)) });
            if (problems.length) throw new Error(`NumaPinnedGuest ${i.name} on ${host.facts.hostname}: ${problems.join("; ")}`);
            // 1. The persistent definition: everything, pins included.
            const changed = !same(projectLive(o.config.spec, wanted), wanted) || o.config.owner !== owner;
            return { xml: changed ? buildDomainXml(wanted, owner, o.config.uuid) : null, result: { host, resolved, wanted, restart, willStart } };
        });
        // 2. The running guest: pins and nodeset live; the rest by a restart, or reported.
        if (o.running && i.running && !restart) await applyLivePins(remote, i.name, wanted, o.live.spec, host.facts.cpusOnline);
        if (o.running && (!i.running || restart)) await stopDomain(remote, i.name, i.shutdownTimeoutSeconds);
        if (willStart) await startDomain(remote, i.name);
        await setAutostart(remote, i.name, i.autostart, o.read.autostart);

        const after = (await observe(remote, i.name))!;
        const wrong = mismatches(wanted, after);
        if (wrong.length) throw new Error(`NumaPinnedGuest ${i.name} on ${host.facts.hostname}: the guest did not take the change: ${wrong.join("; ")}`);
        return { outs: outputs(i, owner, after, resolved, olds.adopted === true) };
    },

    async delete(id: string, props: Record<string, unknown>): Promise<void> {
        const i = inputsOf(props);
        const remote = remoteFor(i.connection);
        const o = await observe(remote, id);
        if (!o) return; // already gone
        await stopDomain(remote, o.config.uuid, i.shutdownTimeoutSeconds);
        await undefineDomain(remote, o.config.uuid, o.config.nvram);
    },
};
