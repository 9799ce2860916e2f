/**
 * NumaPinnedGuest's read back: a domain as libvirt has it, in the inputs' shape (what refresh
 * shows), the changes waiting for a restart, and the memory mode's say in the plan.
 */
import type * as pulumi from "@pulumi/pulumi";
import { GuestSpec, isHostdev, projectLive } from "../libvirt/domain";
import { canonical, KIND_WORDS } from "../policy";
import { NumaPinnedGuestInputs, RESTART_PARTS } from "./numaPinnedGuestSchema";

export const isRunning = (state: string) => state !== "shut off" && state !== "crashed" && state !== "";

/** The owned spec as the host has it: persistent definition, with the live pins when it runs. */
export function observedSpec(config: GuestSpec, live: GuestSpec, running: boolean): GuestSpec {
    if (!running) return config;
    return {
        ...config,
        vcpuPins: live.vcpuPins,
        emulatorPin: live.emulatorPin,
        iothreadPins: live.iothreadPins,
        numa: config.numa && live.numa ? { ...config.numa, nodeset: live.numa.nodeset } : config.numa,
    };
}

export const same = (a: unknown, b: unknown) => canonical(a) === canonical(b);

/**
 * The inputs that describe what the host has: each field keeps the user's form (`auto`, a VF by PF
 * name, `numaNode`) when the host matches what it asks for, and becomes the host's value otherwise,
 * so `refresh` shows exactly the fields changed behind our back.
 */
export function inputsFromHost(i: NumaPinnedGuestInputs, wanted: GuestSpec, observed: GuestSpec, autostart: boolean, running: boolean): NumaPinnedGuestInputs {
    const seen = projectLive(observed, wanted);
    const out: NumaPinnedGuestInputs = { ...i, name: seen.name, vcpus: seen.vcpus, memoryMiB: seen.memoryMiB, autostart, running };
    if (!same(seen.cpuMode, wanted.cpuMode)) out.cpuMode = (["host-passthrough", "host-model"].includes(seen.cpuMode) ? seen.cpuMode : "default") as NumaPinnedGuestInputs["cpuMode"];
    if (!same(seen.numa, wanted.numa)) {
        out.numaNode = seen.numa && seen.numa.nodeset.length === 1 && i.numaNode !== undefined ? seen.numa.nodeset[0] : undefined;
        out.nodeset = seen.numa && out.numaNode === undefined ? seen.numa.nodeset : undefined;
        out.memoryMode = seen.numa?.mode ?? i.memoryMode;
    }
    if (!same(seen.vcpuPins, wanted.vcpuPins)) out.cpuPins = seen.vcpuPins;
    if (!same(seen.emulatorPin, wanted.emulatorPin)) out.emulatorPin = seen.emulatorPin && seen.emulatorPin.length ? seen.emulatorPin : undefined;
    if (seen.iothreads !== wanted.iothreads) out.iothreads = seen.iothreads;
    if (!same(seen.iothreadPins, wanted.iothreadPins)) out.iothreadPins = seen.iothreadPins;
    if (!same(seen.hugepages, wanted.hugepages)) out.hugepages = (seen.hugepages ?? undefined) as NumaPinnedGuestInputs["hugepages"];
    if (!same(seen.disks, wanted.disks)) {
        out.disks = seen.disks.map((d) => ({
            ...("path" in d.source ? { path: d.source.path } : { pool: d.source.pool, volume: d.source.volume }),
            target: d.target,
            bus: d.bus,
            format: d.format,
            cache: d.cache,
            io: d.io,
            ...(d.iothread !== undefined ? { iothread: d.iothread } : {}),
        }));
    }
    if (!same(seen.interfaces, wanted.interfaces)) {
        out.interfaces = seen.interfaces.map((f, n) => {
            if (!isHostdev(f)) return { ...f } as NumaPinnedGuestInputs["interfaces"][number];
            // allowOtherNode is a choice of the inputs, not something the host has: kept as declared.
            const declared = i.interfaces[n];
            const allow = declared && "hostdevVf" in declared && declared.allowOtherNode !== undefined ? { allowOtherNode: declared.allowOtherNode } : {};
            return { hostdevVf: { pciAddress: f.pciAddress }, ...(f.mac ? { mac: f.mac } : {}), ...(f.vlan !== undefined ? { vlan: f.vlan } : {}), ...allow };
        });
    }
    // Leave out fields that are undefined, as check does, so states compare field by field.
    return Object.fromEntries(Object.entries(out).filter(([, v]) => v !== undefined)) as NumaPinnedGuestInputs;
}

/** Parts of the spec that differ between the running QEMU and the persistent definition. */
export function pendingRestartOf(config: GuestSpec, live: GuestSpec): string[] {
    const seen = projectLive(live, config);
    const parts: string[] = RESTART_PARTS.filter((p) => {
        if (p === "cpuMode" && config.cpuMode === "host-model") return false; // a running host-model guest reads back as custom
        return !same(seen[p], config[p]);
    });
    if (!same(live.numa?.mode, config.numa?.mode)) parts.push("memoryMode");
    else if (config.numa && !movesMemoryLive(config.numa.mode) && !same(live.numa?.nodeset, config.numa.nodeset)) parts.push("nodeset");
    return parts;
}

/**
 * libvirt moves a running guest's memory binding (`numatune --live`) only in strict or restrictive
 * mode; in preferred or interleave mode a new nodeset waits for the guest's next start.
 */
export function movesMemoryLive(mode: string): boolean {
    return mode === "strict" || mode === "restrictive";
}

/** The node fields' plan follows the memory mode: live where libvirt can move memory, else restart. */
export function withModeAwarePlan(result: pulumi.dynamic.CheckResult): pulumi.dynamic.CheckResult {
    const inputs = result.inputs as (NumaPinnedGuestInputs & { changePlan?: Record<string, string> }) | undefined;
    if (!inputs?.changePlan || movesMemoryLive(inputs.memoryMode)) return result;
    const plan = { ...inputs.changePlan };
    for (const f of ["numaNode", "nodeset"]) if (plan[f]) plan[f] = KIND_WORDS.restart;
    return { ...result, inputs: { ...inputs, changePlan: plan } };
}
