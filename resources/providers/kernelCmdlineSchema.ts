/**
 * KernelCmdline's inputs: the zod schema (the only source of the input types), the field policy,
 * and the arguments the inputs stand for on a given host.
 */
import { z } from "zod";
import { connectionSchema } from "../host/connection";
import { argKey } from "../host/bootloader";
import { formatCpuList, parseCpuList } from "../host/sysfs";
import type { FieldPolicy } from "../policy";

/** A kernel CPU list in ascending ranges: `2-3`, `2,4-7`. */
const CPU_LIST = /^\d{1,4}(?:-\d{1,4})?(?:,\d{1,4}(?:-\d{1,4})?)*$/;

/**
 * One extra argument: a name of letters, digits, `_`, `.` and `-` (not first), optionally `=` and a
 * value without spaces, quotes, `$`, backslash or backquote. Such a word is inert in a shell, in
 * GRUB_CMDLINE_LINUX's double quotes and in grub.cfg, and the kernel reads it as one argument.
 * No `..`: no kernel argument needs a parent folder, and one that has it is more likely a mistake.
 */
export const EXTRA_ARG = /^(?!.*\.\.)[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}(?:=[A-Za-z0-9_.,:/+@%=-]{1,190})?$/;

/** Arguments the typed inputs own: set them there, so kvmtune knows what they mean and checks them. */
export const TYPED_KEYS: Record<string, string> = {
    intel_iommu: "iommu",
    amd_iommu: "iommu",
    iommu: "iommu",
    isolcpus: "isolatedCpus",
    nohz_full: "isolatedCpus",
    rcu_nocbs: "isolatedCpus",
    irqaffinity: "isolatedCpus",
    hugepagesz: "hugepages1G",
    hugepages: "hugepages1G",
};

/** Arguments that choose what boots at all: kvmtune never owns them (a typo would leave a host that does not boot). */
const NEVER_OWNED = ["root", "init", "rdinit", "ro", "rw", "BOOT_IMAGE", "initrd", "--"];

const cpuList = z
    .string()
    .regex(CPU_LIST, "must be a CPU list such as 2-3 or 2,4-7 (numbers and ascending ranges)")
    .superRefine((s, ctx) => {
        for (const part of s.split(",")) {
            const [a, b] = part.split("-").map(Number);
            if (b !== undefined && b < a) ctx.addIssue({ code: "custom", message: `range ${part} runs backwards: write it low-high` });
        }
    })
    // One spelling per set, so `3,2` and `2-3` are the same input (and the same argument on the host).
    .transform((s) => formatCpuList(parseCpuList(s)));

export const kernelCmdlineSchema = z
    .object({
        connection: connectionSchema,
        /**
         * The IOMMU: `on` adds `intel_iommu=on` (AMD's IOMMU is on by default and ignores it), `pt`
         * adds `iommu=pt` too (pass-through for the host's own devices, translation for assigned
         * ones: Red Hat's choice for device assignment), `off` adds `intel_iommu=off amd_iommu=off`.
         */
        iommu: z.enum(["on", "pt", "off"]).optional(),
        /**
         * CPUs taken away from the host's scheduler, timer ticks, RCU callbacks and interrupts, for
         * pinned guests: `isolcpus=`, `nohz_full=`, `rcu_nocbs=` of this list and `irqaffinity=` of
         * the host's other CPUs.
         */
        isolatedCpus: cpuList.optional(),
        /**
         * 1 GiB huge pages reserved at boot: a total the kernel spreads over the nodes, or pages per
         * NUMA node (`{"0": 1, "1": 2}`, the kernel's `hugepages=0:1,1:2` node format, Linux 5.16+).
         */
        hugepages1G: z
            .union([
                z.number().int().min(1, "must be at least 1 page (leave hugepages1G out for none)").max(4096),
                z
                    .record(z.string().regex(/^\d{1,3}$/, "must be a NUMA node number"), z.number().int().min(0).max(4096))
                    .refine((r) => Object.keys(r).length > 0, "must name at least one NUMA node (leave hugepages1G out for none)"),
            ], { error: "must be a number of pages (at least 1) or pages per NUMA node such as {\"0\": 1, \"1\": 2}" })
            .optional(),
        /** More arguments, each `name` or `name=value` of plain characters, owned like the typed ones. */
        extra: z
            .array(z.string().regex(EXTRA_ARG, "must be one kernel argument, name or name=value, of letters, digits and _.,:/+@%=- (no spaces, quotes or ..)"))
            .max(64)
            .default([]),
    })
    .strict()
    .superRefine((i, ctx) => {
        const seen = new Map<string, number>();
        i.extra.forEach((arg, n) => {
            const key = argKey(arg);
            if (TYPED_KEYS[key]) {
                ctx.addIssue({ code: "custom", path: ["extra", n], message: `got "${arg}"; ${key}= is set through ${TYPED_KEYS[key]}, which checks it against the host` });
            } else if (NEVER_OWNED.includes(key)) {
                ctx.addIssue({ code: "custom", path: ["extra", n], message: `got "${arg}"; kvmtune does not own ${key}: it decides what boots, and stays the administrator's` });
            } else if (seen.has(key)) {
                ctx.addIssue({ code: "custom", path: ["extra", n], message: `got "${arg}"; ${key} is already extra.${seen.get(key)}: give each argument once` });
            }
            seen.set(key, n);
        });
        if (i.iommu === undefined && i.isolatedCpus === undefined && i.hugepages1G === undefined && i.extra.length === 0) {
            ctx.addIssue({ code: "custom", path: ["iommu"], message: "set at least one of iommu, isolatedCpus, hugepages1G and extra: a KernelCmdline with no arguments owns nothing" });
        }
    });

export type KernelCmdlineInputs = z.output<typeof kernelCmdlineSchema>;

/** Every argument kvmtune owns takes effect at the next boot. */
export const POLICY: FieldPolicy<KernelCmdlineInputs> = {
    connection: "state",
    iommu: "reboot",
    isolatedCpus: "reboot",
    hugepages1G: "reboot",
    extra: "reboot",
};

/** `hugepages=` of a per-node count: `0:1,1:2`, nodes in order; or the total. */
export function hugepagesValue(h: number | Record<string, number>): string {
    if (typeof h === "number") return String(h);
    return Object.entries(h)
        .sort(([a], [b]) => Number(a) - Number(b))
        .map(([n, c]) => `${n}:${c}`)
        .join(",");
}

/**
 * The arguments the inputs stand for on a host whose online CPUs are `online`, in a fixed order
 * (iommu, isolation, huge pages, extra). `hugepagesz=1G` comes right before its `hugepages=`: the
 * kernel pairs a count with the size before it.
 */
export function ownedArgs(i: Pick<KernelCmdlineInputs, "iommu" | "isolatedCpus" | "hugepages1G" | "extra">, online: readonly number[]): string[] {
    const args: string[] = [];
    if (i.iommu === "on" || i.iommu === "pt") args.push("intel_iommu=on");
    if (i.iommu === "pt") args.push("iommu=pt");
    if (i.iommu === "off") args.push("intel_iommu=off", "amd_iommu=off");
    if (i.isolatedCpus !== undefined) {
        const isolated = parseCpuList(i.isolatedCpus);
        const housekeeping = online.filter((c) => !isolated.includes(c));
        args.push(`isolcpus=${i.isolatedCpus}`, `nohz_full=${i.isolatedCpus}`, `rcu_nocbs=${i.isolatedCpus}`);
        if (housekeeping.length) args.push(`irqaffinity=${formatCpuList(housekeeping)}`);
    }
    if (i.hugepages1G !== undefined) args.push("hugepagesz=1G", `hugepages=${hugepagesValue(i.hugepages1G)}`);
    return [...args, ...i.extra];
}
