/**
 * NumaPinnedGuest's inputs: the zod schema (the only source of the input types), CPU sets, disks and
 * interfaces, the field policy, and the spec parts that change only at the guest's next start.
 */
import { z } from "zod";
import { connectionSchema } from "../host/connection";
import { pageSizeKb } from "../host/facts";
import { parseCpuList } from "../host/sysfs";
import type { FieldPolicy } from "../policy";
import { interfaceName, LIBVIRT_NAME, libvirtName, macAddress, pciAddress, ringSize } from "../patterns";

/** An absolute path of plain names: no `.` or `..` step, so the path libvirt reads back is the one declared. */
const ABS_PATH = /^(?:\/(?!\.\.?(?:\/|$))[A-Za-z0-9_.+@-]+)+$/;

const cpu = z.number().int().min(0).max(8191);
export const sorted = (cpus: number[]) => [...new Set(cpus)].sort((a, b) => a - b);

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
        /**
         * Hand over a VF whose PF sits on another NUMA node than the guest's (every packet then
         * crosses the interconnect). Without it such a VF is refused before anything changes.
         */
        allowOtherNode: z.boolean().optional(),
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
export const RESTART_PARTS = ["vcpus", "memoryMiB", "cpuMode", "iothreads", "hugepages", "disks", "interfaces"] as const;
