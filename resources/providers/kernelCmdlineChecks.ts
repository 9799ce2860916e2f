/**
 * KernelCmdline's checks against the host, before anything changes. A wrong boot argument is found
 * only at the next boot, when the host may not come back to say what went wrong: every problem
 * found here names the field, the value and what the host allows.
 */
import { argKey } from "../host/bootloader";
import type { HostFactsData } from "../host/facts";
import { formatCpuList, parseCpuList } from "../host/sysfs";
import { hugepagesValue, KernelCmdlineInputs } from "./kernelCmdlineSchema";

/** The first kernel with `hugepages=<node>:<count>` (commit b5389086, merged for 5.16). */
const NODE_FORMAT_SINCE: [number, number] = [5, 16];

function kernelAtLeast(release: string, [major, minor]: [number, number]): boolean {
    const m = /^(\d+)\.(\d+)/.exec(release);
    return !!m && (Number(m[1]) > major || (Number(m[1]) === major && Number(m[2]) >= minor));
}

export function checkAgainstHost(i: KernelCmdlineInputs, facts: HostFactsData): string[] {
    const problems: string[] = [];
    const online = facts.cpusOnline;
    if (i.isolatedCpus !== undefined) {
        const asked = parseCpuList(i.isolatedCpus);
        const missing = asked.filter((c) => !online.includes(c));
        if (missing.length) {
            problems.push(`isolatedCpus: got "${i.isolatedCpus}"; ${facts.hostname} has CPUs ${formatCpuList(online)}, not ${formatCpuList(missing)}`);
        } else if (online.every((c) => asked.includes(c))) {
            problems.push(`isolatedCpus: got "${i.isolatedCpus}"; that is every CPU of ${facts.hostname} (${formatCpuList(online)}): at least one must stay for the host's own work (interrupts, kernel threads, SSH)`);
        } else if (asked.includes(online[0])) {
            // The kernel keeps its boot CPU for housekeeping: nohz_full would drop it (or, on older
            // kernels, the whole list), and /sys/devices/system/cpu/isolated would never read as asked.
            problems.push(`isolatedCpus: got "${i.isolatedCpus}"; CPU ${online[0]} is the boot CPU of ${facts.hostname}, which the kernel keeps for housekeeping: isolate CPUs from ${formatCpuList(online.slice(1))}`);
        }
    }
    if (i.hugepages1G !== undefined) {
        if (!facts.hugepageSizes.includes("1G")) {
            problems.push(`hugepages1G: ${facts.hostname} offers huge pages of ${facts.hugepageSizes.join(", ") || "no size"}, not 1G (1G pages need a CPU with pdpe1gb)`);
        } else {
            problems.push(...hugepageProblems(i.hugepages1G, facts));
        }
    }
    return problems;
}

/**
 * Whether each node has room for its 1 GiB pages. A node's MemTotal leaves out the 1 GiB pages
 * reserved at this boot (the kernel took them before it counted memory), so those count as room:
 * else a pool that is in effect would be refused at the next update.
 */
function hugepageProblems(h: number | Record<string, number>, facts: HostFactsData): string[] {
    const room = (n: HostFactsData["numaNodes"][number]) => n.memoryMiB + (n.hugepages["1G"]?.total ?? 0) * 1024;
    if (typeof h === "number") {
        const mib = facts.numaNodes.reduce((s, n) => s + room(n), 0);
        return h * 1024 > mib ? [`hugepages1G: got ${h} pages of 1G; ${facts.hostname} has room for at most ${Math.floor(mib / 1024)} (its ${mib} MiB)`] : [];
    }
    const problems: string[] = [];
    if (!kernelAtLeast(facts.kernel, NODE_FORMAT_SINCE)) {
        problems.push(`hugepages1G: got pages per node (hugepages=${hugepagesValue(h)}); ${facts.hostname} runs Linux ${facts.kernel}, which reads that format from 5.16 on: give a total instead`);
    }
    for (const [id, pages] of Object.entries(h)) {
        const node = facts.numaNodes.find((n) => String(n.id) === id);
        if (!node) {
            problems.push(`hugepages1G.${id}: ${facts.hostname} has no NUMA node ${id}; it has ${facts.numaNodes.map((n) => n.id).join(", ")}`);
        } else if (pages * 1024 > room(node)) {
            problems.push(`hugepages1G.${id}: got ${pages} pages of 1G; node ${id} has room for at most ${Math.floor(room(node) / 1024)} (its ${room(node)} MiB)`);
        }
    }
    return problems;
}

/**
 * Arguments kvmtune would own that someone else already sets on the boot command line (`foreign`:
 * the boot configuration's arguments less kvmtune's own). kvmtune never touches an argument it
 * does not own, and two of one name with different values (`isolcpus=1 ... isolcpus=2-3`) leave
 * the kernel to pick one: refused, naming where the other one is.
 */
export function conflicts(foreign: readonly string[], owned: readonly string[], source: string): string[] {
    const ownedKeys = new Set(owned.map(argKey));
    return foreign
        // The same word is no conflict: it means the same, and kvmtune never removes the other copy.
        .filter((a) => ownedKeys.has(argKey(a)) && !owned.includes(a))
        .map(
            (a) =>
                `${argKey(a)}: the boot command line already has "${a}" (in ${source}), which kvmtune did not put there and does not touch; ` +
                `remove it there (or from the tool that set it) to let KernelCmdline own ${argKey(a)}, or leave it out of KernelCmdline`,
        );
}
