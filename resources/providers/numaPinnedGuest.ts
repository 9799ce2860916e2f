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
 */
import type * as pulumi from "@pulumi/pulumi";
import { resourceOwner } from "./owner";
import { z } from "zod";
import { connectionSchema } from "../host/connection";
import { gatherFacts, HostFactsData, pageSizeKb } from "../host/facts";
import { shellQuote } from "../host/quote";
import { Remote, runScript, TIMEOUTS } from "../host/remote";
import { remoteFor } from "../host/sshPool";
import { buildDumpScript, formatCpuList, parseCpuList, parseDump } from "../host/sysfs";
import { buildDomainXml, DiskSpec, GuestSpec, InterfaceSpec, isHostdev, parseDomainXml, ParsedDomain, projectLive } from "../libvirt/domain";
import { defaultsFor, GuestDefaults, networkGuestDefaults } from "../libvirt/network";
import { defineWithCpusChosen } from "../libvirt/guestCpus";
import { DomainRead, readAllDomains, readDomain, startDomain, stopDomain, undefineDomain, virsh } from "../libvirt/virsh";
import { canonical, checkWithPlan, diffResult, FieldPolicy, KIND_WORDS, stateOnlyUpdate } from "../policy";
import { stateOf } from "../state";
import { containsUnknown, inputsFrom } from "../validate";
import { interfaceName, LIBVIRT_NAME, libvirtName, macAddress, PCI_ADDRESS, pciAddress, ringSize } from "../patterns";

/** An absolute path of plain names: no `.` or `..` step, so the path libvirt reads back is the one declared. */
const ABS_PATH = /^(?:\/(?!\.\.?(?:\/|$))[A-Za-z0-9_.+@-]+)+$/;

const cpu = z.number().int().min(0).max(8191);
const sorted = (cpus: number[]) => [...new Set(cpus)].sort((a, b) => a - b);

/** A CPU set: one CPU, a list of CPUs, or a kernel CPU list (`"2-3,6"`); normalized to a sorted list. */
const CPUSET_FORMS = 'a CPU number, a list of CPU numbers, or a CPU list such as "2-3,6"';
const cpuset = (allowEmpty: boolean) =>
    z
        .union(
            [
                cpu.transform((c) => [c]),
                z.array(cpu).max(8192),
                z.string().regex(/^\d{1,4}(?:-\d{1,4})?(?:,\d{1,4}(?:-\d{1,4})?)*$/, "must be a CPU list such as 2-3,6").transform((s) => parseCpuList(s)),
            ],
            { error: `must be ${CPUSET_FORMS}` },
        )
        .transform(sorted)
        .refine((s) => allowEmpty || s.length > 0, "must name at least one CPU");

const diskSchema = z
    .object({
        /** A file or block device by absolute path; or a storage volume with `pool`. */
        path: z.string().regex(ABS_PATH, "must be an absolute path of plain names (no . or .. steps)").optional(),
        pool: libvirtName("a storage pool").optional(),
        volume: libvirtName("a volume").optional(),
        /** The guest's device name: `vda` on virtio, `sda` on scsi/sata. */
        target: z.string().regex(/^(?:vd|sd)[a-z]{1,2}$/, "must be a disk name such as vda or sdb"),
        bus: z.enum(["virtio", "scsi", "sata"]).default("virtio"),
        format: z.enum(["raw", "qcow2"]).default("raw"),
        cache: z.enum(["none", "writethrough", "writeback", "directsync", "unsafe"]).default("none"),
        io: z.enum(["native", "threads", "io_uring"]).default("native"),
        /** The I/O thread (1..iothreads) that serves this virtio disk. */
        iothread: z.number().int().min(1).max(64).optional(),
    })
    .strict()
    .superRefine((d, ctx) => {
        if ((d.path === undefined) === (d.pool === undefined || d.volume === undefined) || (d.pool === undefined) !== (d.volume === undefined)) {
            ctx.addIssue({ code: "custom", path: ["path"], message: "set either path, or pool and volume" });
        }
        if (d.io === "native" && d.cache !== "none" && d.cache !== "directsync") {
            ctx.addIssue({ code: "custom", path: ["io"], message: `io native needs cache none or directsync (O_DIRECT); cache is ${d.cache}` });
        }
        if (d.target.startsWith("vd") !== (d.bus === "virtio")) {
            ctx.addIssue({ code: "custom", path: ["target"], message: `vd* names go with bus virtio, sd* with scsi or sata; bus is ${d.bus}` });
        }
        if (d.iothread !== undefined && d.bus !== "virtio") {
            ctx.addIssue({ code: "custom", path: ["iothread"], message: "only virtio disks run in an I/O thread" });
        }
    });

const networkInterface = z
    .object({
        /** A libvirt network by name (e.g. one a VhostNetwork defines). */
        network: libvirtName("a libvirt network"),
        mac: macAddress().optional(),
        /** virtio-net queue pairs (multi-queue); match the guest's vCPUs. */
        queues: z.number().int().min(1).max(256).optional(),
        rxQueueSize: ringSize().optional(),
        /** QEMU honours tx_queue_size for vhost-user only; libvirt passes it on. */
        txQueueSize: ringSize().optional(),
    })
    .strict();

const hostdevInterface = z
    .object({
        /** An SR-IOV VF: by its PF's interface name and VF number, or by PCI address. */
        hostdevVf: z.union(
            [
                z.object({ pf: interfaceName("a network interface"), vf: z.number().int().min(0).max(255) }).strict(),
                z.object({ pciAddress: pciAddress() }).strict(),
            ],
            { error: 'must be {pf: "<PF interface>", vf: <VF number>} or {pciAddress: "<VF PCI address, such as 0000:03:10.2>"}' },
        ),
        mac: macAddress().optional(),
        vlan: z.number().int().min(1).max(4094).optional(),
    })
    .strict();

export const numaPinnedGuestSchema = z
    .object({
        connection: connectionSchema,
        name: libvirtName("a domain"),
        vcpus: z.number().int().min(1).max(512),
        memoryMiB: z.number().int().min(16).max(16 * 1024 * 1024),
        /** The host NUMA node for memory and (with auto pins) vCPUs. Set this or `nodeset`, or neither. */
        numaNode: z.number().int().min(0).max(1023).optional(),
        nodeset: cpuset(false).optional(),
        memoryMode: z.enum(["strict", "preferred", "interleave", "restrictive"]).default("strict"),
        /** One CPU set per vCPU, or `auto`: distinct CPUs of the chosen nodes no other guest's vCPUs hold. */
        cpuPins: z
            .union([z.literal("auto"), z.array(cpuset(true)).max(512)], { error: `must be "auto" or a list of CPU sets, one per vCPU (each ${CPUSET_FORMS})` })
            .default("auto"),
        emulatorPin: cpuset(false).optional(),
        iothreads: z.number().int().min(0).max(64).default(0),
        /** One CPU set per I/O thread (thread 1 first). */
        iothreadPins: z.array(cpuset(true)).max(64).optional(),
        hugepages: z.enum(["2M", "1G", "default"]).optional(),
        cpuMode: z.enum(["host-passthrough", "host-model", "default"]).default("host-passthrough"),
        disks: z.array(diskSchema).max(64).default([]),
        interfaces: z
            .array(
                z.union([networkInterface, hostdevInterface], {
                    error:
                        'must be an interface on a libvirt network, {network: "<name>"} (with optional mac, queues, rxQueueSize, txQueueSize), ' +
                        "or an SR-IOV VF, {hostdevVf: {pf, vf} or {pciAddress}} (with optional mac, vlan)",
                }),
            )
            .max(32)
            .default([]),
        autostart: z.boolean().default(true),
        running: z.boolean().default(true),
        /** `never`: report changes that need a restart in `pendingRestart`; `restart`: restart the guest. */
        restartPolicy: z.enum(["never", "restart"]).default("never"),
        /** How long delete and restarts wait for an ACPI shutdown before forcing the guest off. */
        shutdownTimeoutSeconds: z.number().int().min(0).max(3600).default(120),
        /**
         * Take over an existing domain (by name or UUID) instead of defining one: create then checks
         * that the domain is what the inputs declare and writes nothing. Pulumi's own `import` option
         * cannot reach a dynamic provider's read (pulumi/pulumi#16175: the engine's import read sends no inputs), so adoption is an input.
         */
        adopt: z
            .string()
            .refine((a) => /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/.test(a) || LIBVIRT_NAME.test(a), "must be a domain name or UUID")
            .optional(),
    })
    .strict()
    .superRefine((i, ctx) => {
        if (i.numaNode !== undefined && i.nodeset !== undefined) {
            ctx.addIssue({ code: "custom", path: ["nodeset"], message: "set numaNode or nodeset, not both" });
        }
        if (i.cpuPins === "auto" && i.numaNode === undefined && i.nodeset === undefined) {
            ctx.addIssue({ code: "custom", path: ["cpuPins"], message: "auto pins need numaNode or nodeset to pick CPUs from" });
        }
        if (Array.isArray(i.cpuPins) && i.cpuPins.length !== i.vcpus) {
            ctx.addIssue({ code: "custom", path: ["cpuPins"], message: `must have one CPU set per vCPU: ${i.vcpus}, got ${i.cpuPins.length}` });
        }
        if (i.iothreadPins && i.iothreadPins.length > i.iothreads) {
            ctx.addIssue({ code: "custom", path: ["iothreadPins"], message: `pins ${i.iothreadPins.length} I/O threads, but iothreads is ${i.iothreads}` });
        }
        if (i.hugepages && i.hugepages !== "default" && (i.memoryMiB * 1024) % pageSizeKb(i.hugepages) !== 0) {
            ctx.addIssue({ code: "custom", path: ["memoryMiB"], message: `must be a whole number of ${i.hugepages} pages` });
        }
        const targets = new Set<string>();
        i.disks.forEach((d, n) => {
            if (targets.has(d.target)) ctx.addIssue({ code: "custom", path: ["disks", n, "target"], message: `${d.target} is used by another disk` });
            targets.add(d.target);
            if (d.iothread !== undefined && d.iothread > i.iothreads) {
                ctx.addIssue({ code: "custom", path: ["disks", n, "iothread"], message: `the guest has ${i.iothreads} I/O thread(s)` });
            }
        });
        i.interfaces.forEach((f, n) => {
            if ("network" in f && f.queues !== undefined && f.queues > i.vcpus) {
                ctx.addIssue({ code: "custom", path: ["interfaces", n, "queues"], message: `more queues than the guest's ${i.vcpus} vCPUs` });
            }
        });
    });

export type NumaPinnedGuestInputs = z.output<typeof numaPinnedGuestSchema>;

export const POLICY: FieldPolicy<NumaPinnedGuestInputs> = {
    connection: "state",
    name: "replace",
    vcpus: "restart",
    memoryMiB: "restart",
    numaNode: "live",
    nodeset: "live",
    memoryMode: "restart",
    cpuPins: "live",
    emulatorPin: "live",
    iothreads: "restart",
    iothreadPins: "live",
    hugepages: "restart",
    cpuMode: "restart",
    disks: "restart",
    interfaces: "restart",
    autostart: "live",
    running: "live",
    restartPolicy: "state",
    shutdownTimeoutSeconds: "state",
    adopt: "state",
};

/** GuestSpec parts that take effect only when QEMU starts again. */
const RESTART_PARTS = ["vcpus", "memoryMiB", "cpuMode", "iothreads", "hugepages", "disks", "interfaces"] as const;

// ---------------------------------------------------------------------------------------------
// From inputs to a spec

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
function takenDefaults(i: NumaPinnedGuestInputs, networks: ReadonlyMap<string, GuestDefaults>): Array<GuestDefaults | null> {
    return i.interfaces.map((f) => ("network" in f ? defaultsFor(f, i.vcpus, networks) : null));
}

/** The spec the inputs ask for, with `auto` pins, VF names and network defaults resolved. */
export function wantedSpec(i: NumaPinnedGuestInputs, vcpuPins: number[][], vfs: Array<string | null> = [], taken: Array<GuestDefaults | null> = []): GuestSpec {
    const nodes = nodesOf(i);
    return {
        name: i.name,
        vcpus: i.vcpus,
        memoryMiB: i.memoryMiB,
        cpuMode: i.cpuMode,
        numa: nodes ? { nodeset: nodes, mode: i.memoryMode } : null,
        vcpuPins,
        emulatorPin: i.emulatorPin ?? null,
        iothreads: i.iothreads,
        iothreadPins: Array.from({ length: i.iothreads }, (_x, n) => i.iothreadPins?.[n] ?? []),
        hugepages: i.hugepages ?? null,
        disks: diskSpecs(i),
        interfaces: interfaceSpecs(i, vfs, taken),
    };
}

// ---------------------------------------------------------------------------------------------
// Checks against the host

/** Another domain on the host, as far as pin conflicts go. */
export interface OtherGuest {
    name: string;
    uuid: string;
    /** CPUs its vCPUs are pinned to (none when unpinned). */
    vcpuCpus: number[];
}

export interface HostView {
    facts: HostFactsData;
    others: OtherGuest[];
    /** Networks among those the inputs name that exist. */
    networks: Set<string>;
    /** Their guest defaults (empty for networks without a VhostNetwork's mark). */
    netDefaults?: ReadonlyMap<string, GuestDefaults>;
    /** Per interface: the VF's PCI address when found (null: not found or not a VF interface). */
    vfs: Array<string | null>;
}

/**
 * Resolves the vCPU pins: explicit ones as given; `auto` keeps the previous choice when it is still
 * free and on the nodes, else picks distinct CPUs of the nodes, preferring CPUs the guest's own
 * emulator and I/O threads do not use. Throws when the nodes do not have enough free CPUs.
 */
export function resolvePins(i: NumaPinnedGuestInputs, host: HostView, previous?: number[][]): number[][] {
    if (i.cpuPins !== "auto") return i.cpuPins;
    const nodes = nodesOf(i) ?? [];
    const onNodes = sorted(host.facts.numaNodes.filter((n) => nodes.includes(n.id)).flatMap((n) => n.cpus));
    const taken = new Set(host.others.flatMap((o) => o.vcpuCpus));
    const free = onNodes.filter((c) => !taken.has(c));
    if (previous && previous.length === i.vcpus && previous.every((p) => p.length === 1 && free.includes(p[0])) && new Set(previous.map((p) => p[0])).size === i.vcpus) {
        return previous;
    }
    const ours = new Set([...(i.emulatorPin ?? []), ...(i.iothreadPins ?? []).flat()]);
    const pick = [...free.filter((c) => !ours.has(c)), ...free.filter((c) => ours.has(c))];
    if (pick.length < i.vcpus) {
        throw new Error(
            `cpuPins: auto needs ${i.vcpus} CPUs of node(s) ${formatCpuList(nodes)} that no other guest's vCPUs hold; ` +
                `${host.facts.hostname} has ${pick.length} (${formatCpuList(pick) || "none"}; ${holdersOn(host.others, onNodes)})`,
        );
    }
    return pick.slice(0, i.vcpus).map((c) => [c]);
}

/** Who holds which of these CPUs, by guest name: "held by guest web (2-3)", or "none held by other guests". */
function holdersOn(others: OtherGuest[], cpus: number[]): string {
    const held = others.map((o) => ({ name: o.name, cpus: o.vcpuCpus.filter((c) => cpus.includes(c)) })).filter((o) => o.cpus.length > 0);
    return held.length ? "held by " + held.map((o) => `guest ${o.name} (${formatCpuList(o.cpus)})`).join(", ") : "none held by other guests";
}

/** The page size a guest's `hugepages` means on this host (`default`: the host's default), or null. */
export function pageSizeOf(hugepages: NumaPinnedGuestInputs["hugepages"], facts: Pick<HostFactsData, "defaultHugepageSize">): string | null {
    if (!hugepages) return null;
    return hugepages === "default" ? (facts.defaultHugepageSize ?? null) : hugepages;
}

/** Pages a guest of this size takes from its pool. */
export function pagesFor(memoryMiB: number, size: string): number {
    return Math.ceil((memoryMiB * 1024) / pageSizeKb(size));
}

/**
 * Everything that must hold before the host changes, as messages naming field, value and what the
 * host has. `pagesHeld`: huge pages this guest holds now and gives back before it starts again.
 */
export function checkAgainstHost(
    i: NumaPinnedGuestInputs,
    pins: number[][],
    host: HostView,
    opts: { willStart: boolean; pagesHeld?: number } = { willStart: true },
): string[] {
    const { facts } = host;
    const problems: string[] = [];
    const nodes = nodesOf(i);
    const nodeIds = facts.numaNodes.map((n) => n.id);
    for (const n of nodes ?? []) {
        if (!nodeIds.includes(n)) problems.push(`${i.numaNode !== undefined ? "numaNode" : "nodeset"}: ${facts.hostname} has no NUMA node ${n}; it has ${nodeIds.join(", ")}`);
    }
    const online = new Set(facts.cpusOnline);
    const onNodes = new Set(facts.numaNodes.filter((n) => nodes?.includes(n.id)).flatMap((n) => n.cpus));
    pins.forEach((set, vcpu) => {
        for (const c of set) {
            if (!online.has(c)) problems.push(`cpuPins.${vcpu}: CPU ${c} does not exist on ${facts.hostname} (online: ${formatCpuList(facts.cpusOnline)})`);
            else if (nodes && !onNodes.has(c)) {
                problems.push(`cpuPins.${vcpu}: CPU ${c} is not on node(s) ${formatCpuList(nodes)} (their CPUs: ${formatCpuList([...onNodes]) || "none"})`);
            }
        }
    });
    for (const o of host.others) {
        const clash = sorted(pins.flat().filter((c) => o.vcpuCpus.includes(c)));
        if (clash.length) problems.push(`cpuPins: CPU ${formatCpuList(clash)} already pinned to vCPUs of guest ${o.name} (${o.uuid}); a CPU serves one guest's vCPUs`);
    }
    for (const c of i.emulatorPin ?? []) if (!online.has(c)) problems.push(`emulatorPin: CPU ${c} does not exist on ${facts.hostname} (online: ${formatCpuList(facts.cpusOnline)})`);
    // libvirt 9.0 preallocates huge page memory in a QEMU thread-context bound to the memory's
    // nodes; inside an emulator cgroup with none of those nodes' CPUs, QEMU then dies with
    // "Setting CPU affinity failed: Invalid argument" (seen on the lab: libvirt 9.0, QEMU 7.2).
    if (i.hugepages && nodes && i.emulatorPin && !i.emulatorPin.some((c) => onNodes.has(c))) {
        problems.push(
            `emulatorPin: ${formatCpuList(i.emulatorPin)} has no CPU of node(s) ${formatCpuList(nodes)} (${formatCpuList([...onNodes]) || "none"}); ` +
                `QEMU preallocates the huge pages from a thread bound to those nodes and fails to start when the emulator may not run there`,
        );
    }
    (i.iothreadPins ?? []).forEach((set, n) => {
        for (const c of set) if (!online.has(c)) problems.push(`iothreadPins.${n}: CPU ${c} does not exist on ${facts.hostname}`);
    });
    // `default` is the host's default huge page size (Hugepagesize in /proc/meminfo), not always 2M.
    const size = pageSizeOf(i.hugepages, facts);
    if (i.hugepages && size === null) {
        problems.push(`hugepages: default, but ${facts.hostname} reports no default huge page size (no Hugepagesize in /proc/meminfo)`);
    } else if (size !== null && i.hugepages === "default" && (i.memoryMiB * 1024) % pageSizeKb(size) !== 0) {
        problems.push(`memoryMiB: ${i.memoryMiB} is not a whole number of ${facts.hostname}'s default huge pages (${size})`);
    } else if (size !== null) {
        const label = i.hugepages === "default" ? `${size} (the host's default)` : size;
        if (!facts.hugepageSizes.includes(size)) {
            problems.push(`hugepages: ${facts.hostname} offers ${facts.hugepageSizes.join(", ") || "no huge pages"}, not ${label}`);
        } else if (opts.willStart) {
            const need = pagesFor(i.memoryMiB, size) - (opts.pagesHeld ?? 0);
            const pool = facts.numaNodes.filter((n) => (nodes ?? nodeIds).includes(n.id));
            const free = pool.reduce((s, n) => s + (n.hugepages[size]?.free ?? 0), 0);
            if (need > free) {
                problems.push(
                    `hugepages: the guest needs ${need} free ${label} pages on node(s) ${formatCpuList(pool.map((n) => n.id))}, ` +
                        `${facts.hostname} has ${free} (${pool.map((n) => `node ${n.id}: ${n.hugepages[size]?.free ?? 0} free of ${n.hugepages[size]?.total ?? 0}`).join(", ")}); ` +
                        `grow the pool (HugepagePool) first`,
                );
            }
        }
    }
    i.interfaces.forEach((f, n) => {
        if ("network" in f && !host.networks.has(f.network)) problems.push(`interfaces.${n}.network: ${facts.hostname} has no libvirt network ${f.network}`);
        if ("hostdevVf" in f && !host.vfs[n]) {
            const v = f.hostdevVf;
            problems.push(`interfaces.${n}.hostdevVf: ${"pf" in v ? `${v.pf} has no VF ${v.vf}` : `no PCI device ${v.pciAddress}`} on ${facts.hostname}`);
        }
    });
    return problems;
}

/** Finds each hostdev interface's VF on the host (one round trip). */
async function resolveVfs(remote: Remote, i: NumaPinnedGuestInputs): Promise<Array<string | null>> {
    const commands: Record<string, string> = {};
    i.interfaces.forEach((f, n) => {
        if (!("hostdevVf" in f)) return;
        const v = f.hostdevVf;
        commands[`vf${n}`] =
            "pf" in v
                ? `basename "$(readlink -f ${shellQuote(`/sys/class/net/${v.pf}/device/virtfn${v.vf}`)})"`
                : `test -e ${shellQuote(`/sys/bus/pci/devices/${v.pciAddress}`)} && echo ${shellQuote(v.pciAddress)}`;
    });
    if (Object.keys(commands).length === 0) return i.interfaces.map(() => null);
    const dump = parseDump(await runScript(remote, buildDumpScript({ commands })));
    return i.interfaces.map((_f, n) => {
        const c = dump.commands.get(`vf${n}`);
        const addr = c?.stdout.trim() ?? "";
        return c?.code === 0 && PCI_ADDRESS.test(addr) ? addr : null;
    });
}

const networkNames = (i: NumaPinnedGuestInputs) => [...new Set(i.interfaces.flatMap((f) => ("network" in f ? [f.network] : [])))];

/** Facts, other guests' pins, networks and VFs: what the checks need, read in parallel. */
async function viewHost(remote: Remote, i: NumaPinnedGuestInputs, selfUuid?: string): Promise<HostView & { domains: ParsedDomain[] }> {
    const [facts, all, nets, vfs] = await Promise.all([gatherFacts(remote), readAllDomains(remote), networkGuestDefaults(remote, networkNames(i)), resolveVfs(remote, i)]);
    const domains = [...all.values()].map((xml) => parseDomainXml(xml));
    const others = domains
        .filter((d) => d.uuid !== selfUuid)
        .map((d) => ({ name: d.spec.name, uuid: d.uuid, vcpuCpus: sorted(d.spec.vcpuPins.flat()) }))
        .filter((o) => o.vcpuCpus.length > 0);
    return { facts, others, networks: new Set(nets.keys()), netDefaults: nets, vfs, domains };
}

// ---------------------------------------------------------------------------------------------
// Reading a domain back into the inputs' shape

const isRunning = (state: string) => state !== "shut off" && state !== "crashed" && state !== "";

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

const same = (a: unknown, b: unknown) => canonical(a) === canonical(b);

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
        out.interfaces = seen.interfaces.map((f) =>
            isHostdev(f)
                ? { hostdevVf: { pciAddress: f.pciAddress }, ...(f.mac ? { mac: f.mac } : {}), ...(f.vlan !== undefined ? { vlan: f.vlan } : {}) }
                : ({ ...f } as NumaPinnedGuestInputs["interfaces"][number]),
        );
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
function withModeAwarePlan(result: pulumi.dynamic.CheckResult): pulumi.dynamic.CheckResult {
    const inputs = result.inputs as (NumaPinnedGuestInputs & { changePlan?: Record<string, string> }) | undefined;
    if (!inputs?.changePlan || movesMemoryLive(inputs.memoryMode)) return result;
    const plan = { ...inputs.changePlan };
    for (const f of ["numaNode", "nodeset"]) if (plan[f]) plan[f] = KIND_WORDS.restart;
    return { ...result, inputs: { ...inputs, changePlan: plan } };
}

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

function outputs(i: NumaPinnedGuestInputs, owner: string, o: Observed, resolvedCpuPins: number[][], adopted: boolean, vfAddresses: Array<string | null>, interfaceDefaults: Array<GuestDefaults | null>) {
    return stateOf({
        ...i,
        owner,
        uuid: o.config.uuid,
        state: o.read.state,
        resolvedCpuPins,
        pendingRestart: o.running ? pendingRestartOf(o.config.spec, o.live.spec) : [],
        /** The domain carries this resource's ownership mark (false for an imported, not yet updated guest). */
        owned: o.config.owner === owner,
        adopted,
        /** Each hostdev interface's VF as resolved when last applied (null for other interfaces). */
        vfAddresses,
        /** What each network interface took from its network's guest defaults when last applied (null: nothing). */
        interfaceDefaults,
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
    return { id: o.config.uuid, outs: outputs(i, owner, o, pins, true, vfs, taken) };
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
        const { host, existing, before, pins, taken, wanted } = await defineWithCpusChosen(remote, async () => {
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
            const taken = takenDefaults(i, host.netDefaults ?? new Map());
            const wanted = wantedSpec(i, pins, host.vfs, taken);
            return { xml: buildDomainXml(wanted, owner, existing?.uuid), result: { host, existing, before, pins, taken, wanted } };
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
        return { id: o.config.uuid, outs: outputs(i, owner, o, pins, false, host.vfs, taken) };
    },

    async read(id: string, props: Record<string, unknown>): Promise<pulumi.dynamic.ReadResult> {
        if (!props.connection) {
            throw new Error(`NumaPinnedGuest ${id}: reading a guest needs its connection, which Pulumi's import does not pass to a dynamic provider (pulumi/pulumi#16175): declare the guest with the adopt input instead`);
        }
        const i = inputsOf(props);
        const owner = resourceOwner("NumaPinnedGuest", i.name, props);
        const remote = remoteFor(i.connection);
        const o = await observe(remote, id);
        if (!o) return { id: "", props: {} }; // the domain is gone: refresh drops the resource
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
        const wanted = wantedSpec(i, pins, vfs, taken);
        const live = inputsFromHost(i, wanted, o.spec, o.read.autostart, o.running);
        const outs = outputs(live, owner, o, pins, importing || props.adopted === true, vfs, taken);
        return { id, props: outs, ...(importing ? { inputs: stateOf({ ...live, owner }) } : {}) };
    },

    async update(id: string, olds: Record<string, unknown>, news: Record<string, unknown>): Promise<pulumi.dynamic.UpdateResult> {
        const untouched = stateOnlyUpdate(numaPinnedGuestSchema, POLICY, olds, news);
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
        const { host, pins, taken, wanted, restart, willStart } = await defineWithCpusChosen(remote, async () => {
            const host = await viewHost(remote, i, o.config.uuid);
            const pins = resolvePins(i, host, previous);
            const taken = takenDefaults(i, host.netDefaults ?? new Map());
            const wanted = wantedSpec(i, pins, host.vfs, taken);
            const restartParts = pendingRestartOf(wanted, o.live.spec);
            const restart = o.running && i.running && restartParts.length > 0 && i.restartPolicy === "restart";
            const willStart = i.running && (!o.running || restart);
            const problems = checkAgainstHost(i, pins, host, { willStart, pagesHeld: pagesHeldBy(o, i.hugepages, pageSizeOf(i.hugepages, host.facts)) });
            if (problems.length) throw new Error(`NumaPinnedGuest ${i.name} on ${host.facts.hostname}: ${problems.join("; ")}`);
            // 1. The persistent definition: everything, pins included.
            const changed = !same(projectLive(o.config.spec, wanted), wanted) || o.config.owner !== owner;
            return { xml: changed ? buildDomainXml(wanted, owner, o.config.uuid) : null, result: { host, pins, taken, wanted, restart, willStart } };
        });
        // 2. The running guest: pins and nodeset live; the rest by a restart, or reported.
        if (o.running && i.running && !restart) await applyLivePins(remote, i.name, wanted, o.live.spec, host.facts.cpusOnline);
        if (o.running && (!i.running || restart)) await stopDomain(remote, i.name, i.shutdownTimeoutSeconds);
        if (willStart) await startDomain(remote, i.name);
        await setAutostart(remote, i.name, i.autostart, o.read.autostart);

        const after = (await observe(remote, i.name))!;
        const wrong = mismatches(wanted, after);
        if (wrong.length) throw new Error(`NumaPinnedGuest ${i.name} on ${host.facts.hostname}: the guest did not take the change: ${wrong.join("; ")}`);
        return { outs: outputs(i, owner, after, pins, olds.adopted === true, host.vfs, taken) };
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
