/**
 * NumaPinnedGuest's spec building: from the inputs to the GuestSpec that ../libvirt/domain.ts turns
 * into a domain's XML, with `auto` pins, VF addresses and network defaults resolved.
 */
import type { DiskSpec, GuestSpec, InterfaceSpec } from "../libvirt/domain";
import { defaultsFor, GuestDefaults } from "../libvirt/network";
import type { NumaPinnedGuestInputs } from "./numaPinnedGuestSchema";

/** The host NUMA nodes the inputs bind memory to, or null. */
export function nodesOf(i: Pick<NumaPinnedGuestInputs, "numaNode" | "nodeset">): number[] | null {
    return i.numaNode !== undefined ? [i.numaNode] : (i.nodeset ?? null);
}

/** Interfaces with each VF as a PCI address (`vfs[n]`, resolved on the host) and network defaults taken (`taken[n]`). */
function interfaceSpecs(i: NumaPinnedGuestInputs, vfs: Array<string | null>, taken: Array<GuestDefaults | null>): InterfaceSpec[] {
    return i.interfaces.map((f, n) => {
        if ("network" in f) return { ...f, ...(taken[n] ?? {}) };
        const pciAddress = "pciAddress" in f.hostdevVf ? f.hostdevVf.pciAddress : (vfs[n] ?? "");
        return { pciAddress, ...(f.mac ? { mac: f.mac } : {}), ...(f.vlan !== undefined ? { vlan: f.vlan } : {}) };
    });
}

function diskSpecs(i: NumaPinnedGuestInputs): DiskSpec[] {
    return i.disks.map((d) => ({
        source: d.path !== undefined ? { path: d.path } : { pool: d.pool as string, volume: d.volume as string },
        target: d.target,
        bus: d.bus,
        format: d.format,
        cache: d.cache,
        io: d.io,
        ...(d.iothread !== undefined ? { iothread: d.iothread } : {}),
    }));
}

/** Per interface: what it takes from its network's guest defaults (a VhostNetwork's metadata); null: nothing. */
export function takenDefaults(i: NumaPinnedGuestInputs, networks: ReadonlyMap<string, GuestDefaults>): Array<GuestDefaults | null> {
    return i.interfaces.map((f) => ("network" in f ? defaultsFor(f, i.vcpus, networks) : null));
}

/**
 * The spec the inputs ask for, with `auto` pins, VF names and network defaults resolved, and the
 * emulator's CPUs as chosen (resolveEmulatorPin; by default `emulatorPin` as given, else unpinned).
 */
export function wantedSpec(
    i: NumaPinnedGuestInputs,
    vcpuPins: number[][],
    vfs: Array<string | null> = [],
    taken: Array<GuestDefaults | null> = [],
    emulatorPin: number[] | null = i.emulatorPin ?? null,
): GuestSpec {
    const nodes = nodesOf(i);
    return {
        name: i.name,
        vcpus: i.vcpus,
        memoryMiB: i.memoryMiB,
        cpuMode: i.cpuMode,
        numa: nodes ? { nodeset: nodes, mode: i.memoryMode } : null,
        vcpuPins,
        emulatorPin,
        iothreads: i.iothreads,
        iothreadPins: Array.from({ length: i.iothreads }, (_x, n) => i.iothreadPins?.[n] ?? []),
        hugepages: i.hugepages ?? null,
        disks: diskSpecs(i),
        interfaces: interfaceSpecs(i, vfs, taken),
    };
}
