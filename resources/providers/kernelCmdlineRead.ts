/**
 * KernelCmdline's read: in one round trip, what the boot configuration holds (through the host's
 * bootloader, ../host/bootloader.ts) and what the running kernel has (`/proc/cmdline`, the isolated
 * CPUs, the IOMMU groups, the 1 GiB pools per node), and from both whether the host must reboot.
 * `rebootRequired` is computed from the host every time, never remembered: a host rebooted by hand
 * (or by kvmtune's roll) is seen as such at the next refresh.
 */
import { BOOT_COMMANDS, BOOT_FILES, BootConfig, parseBootConfig, splitArgs } from "../host/bootloader";
import { Remote, runScript } from "../host/remote";
import { buildDumpScript, Dump, formatCpuList, parseCpuList, parseDump } from "../host/sysfs";
import { hugepagesValue, KernelCmdlineInputs } from "./kernelCmdlineSchema";

export const ISOLATED = "/sys/devices/system/cpu/isolated";
const ONLINE = "/sys/devices/system/cpu/online";
const GIG_POOLS = "/sys/devices/system/node/node*/hugepages/hugepages-1048576kB/nr_hugepages";

/** What the running kernel shows of the settings KernelCmdline owns. */
export interface RunningKernel {
    /** `/proc/cmdline`: the arguments this boot was given. */
    cmdline: string;
    /** `/sys/devices/system/cpu/isolated` as a CPU list (empty: none). */
    isolatedCpus: string;
    /** Entries of /sys/kernel/iommu_groups: 0 when no IOMMU is active. */
    iommuGroups: number;
    /** 1 GiB pages per NUMA node (`nr_hugepages`); empty when the host has no 1 GiB pool. */
    hugepages1G: Record<string, number>;
}

export interface CmdlineRead {
    boot: BootConfig;
    running: RunningKernel;
    /** The online CPUs, for the `irqaffinity=` complement. */
    online: number[];
    /** Every file read, by path (persistence files and claims the caller asked for included). */
    files: Map<string, string>;
}

/** The one read script: boot configuration, running kernel, and the caller's files (drift). */
export function readScript(extraFiles: readonly string[] = []): string {
    return buildDumpScript({
        files: ["/proc/cmdline", ISOLATED, ONLINE, GIG_POOLS, ...BOOT_FILES, ...extraFiles],
        commands: { ...BOOT_COMMANDS, iommuGroups: "ls -1 /sys/kernel/iommu_groups | wc -l" },
    });
}

export function parseCmdlineRead(dump: Dump): CmdlineRead {
    const hugepages1G: Record<string, number> = {};
    for (const [path, value] of dump.files) {
        const m = /\/node(\d+)\/hugepages\/hugepages-1048576kB\/nr_hugepages$/.exec(path);
        if (m) hugepages1G[m[1]] = Number(value.trim());
    }
    const isolated = (dump.files.get(ISOLATED) ?? "").trim();
    return {
        boot: parseBootConfig(dump),
        running: {
            cmdline: (dump.files.get("/proc/cmdline") ?? "").trim(),
            isolatedCpus: isolated ? formatCpuList(parseCpuList(isolated)) : "",
            iommuGroups: Number(dump.commands.get("iommuGroups")?.stdout.trim() || 0),
            hugepages1G,
        },
        online: parseCpuList(dump.files.get(ONLINE) ?? ""),
        files: dump.files,
    };
}

export async function readCmdline(remote: Remote, extraFiles: readonly string[] = []): Promise<CmdlineRead> {
    return parseCmdlineRead(parseDump(await runScript(remote, readScript(extraFiles))));
}

export interface Effect {
    /** kvmtune's arguments the boot configuration lacks (drift, or an apply that did not take). */
    bootLacks: string[];
    /** The boot configuration and the running kernel differ in kvmtune's arguments: a reboot applies them. */
    rebootRequired: boolean;
    /** Each setting not in effect in the running kernel, and why: empty when all are. */
    notInEffect: string[];
}

/**
 * Compares what kvmtune owns (`args`) with the boot configuration and the running kernel.
 * `retired`: arguments kvmtune took off the boot configuration that the running kernel may still
 * have (an update removed them; until a reboot they are still in force).
 *
 * A setting whose arguments the running kernel booted with is then checked for its effect: the
 * kernel takes `isolcpus=` or `hugepages=` without complaint and may do less (1 GiB pages it could
 * not find at boot, an IOMMU the firmware keeps off). That is not a reboot away: another reboot
 * gives the same, so it is listed in notInEffect without asking for one.
 */
export function effectOf(i: KernelCmdlineInputs, args: readonly string[], retired: readonly string[], read: Pick<CmdlineRead, "boot" | "running">): Effect {
    const boot = splitArgs(read.boot.cmdline ?? "");
    const running = splitArgs(read.running.cmdline);
    const bootLacks = args.filter((a) => !boot.includes(a));
    const pending = args.filter((a) => boot.includes(a) && !running.includes(a));
    const stale = retired.filter((a) => !boot.includes(a) && running.includes(a));
    const notInEffect = [
        ...pending.map((a) => `${a}: in the boot configuration, not in the running kernel yet (reboot the host)`),
        ...stale.map((a) => `${a}: taken off the boot configuration, still in the running kernel (reboot the host)`),
    ];
    const booted = (...want: string[]) => want.every((a) => running.includes(a));
    const r = read.running;
    if ((i.iommu === "on" || i.iommu === "pt") && booted("intel_iommu=on") && r.iommuGroups === 0) {
        notInEffect.push(`iommu: the kernel booted with intel_iommu=on but /sys/kernel/iommu_groups is empty: the platform has no IOMMU, or the firmware keeps it off (VT-d, AMD-Vi)`);
    }
    if (i.iommu === "off" && booted("intel_iommu=off", "amd_iommu=off") && r.iommuGroups > 0) {
        notInEffect.push(`iommu: the kernel booted with intel_iommu=off amd_iommu=off but has ${r.iommuGroups} IOMMU groups`);
    }
    if (i.isolatedCpus !== undefined && booted(`isolcpus=${i.isolatedCpus}`) && r.isolatedCpus !== i.isolatedCpus) {
        notInEffect.push(`isolatedCpus: the kernel booted with isolcpus=${i.isolatedCpus} but ${ISOLATED} reads "${r.isolatedCpus}"`);
    }
    if (i.hugepages1G !== undefined && booted("hugepagesz=1G", `hugepages=${hugepagesValue(i.hugepages1G)}`)) {
        const short =
            typeof i.hugepages1G === "number"
                ? sum(r.hugepages1G) < i.hugepages1G
                    ? [`all nodes: asked ${i.hugepages1G}, got ${sum(r.hugepages1G)}`]
                    : []
                : Object.entries(i.hugepages1G)
                      .filter(([n, want]) => (r.hugepages1G[n] ?? 0) < want)
                      .map(([n, want]) => `node ${n}: asked ${want}, got ${r.hugepages1G[n] ?? 0}`);
        if (short.length) {
            notInEffect.push(
                `hugepages1G: the kernel booted with hugepages=${hugepagesValue(i.hugepages1G)} and reserved fewer 1G pages (${short.join("; ")}): ` +
                    `the node had too little memory at boot; another reboot will not help: ask for fewer pages`,
            );
        }
    }
    return { bootLacks, rebootRequired: pending.length > 0 || stale.length > 0, notInEffect };
}

const sum = (r: Record<string, number>) => Object.values(r).reduce((s, n) => s + n, 0);
