/**
 * One disk, found and read in one round trip: the disk a `device` names (a kernel name, or a
 * /dev/disk/by-id or by-path link resolved on the host), its queue and, for an NVMe namespace under
 * native multipath, the path queues that carry its scheduler. The script reads only that disk's
 * files, so its cost does not grow with the host's disks (the facts script reads them all).
 */
import type { BlockDeviceFacts } from "./facts";
import { shellQuote } from "./quote";
import { Remote, runScript } from "./remote";
import { buildDumpScript, Dump, DumpRequest, parseBracketChoice, parseDump } from "./sysfs";

/** A disk's queue as read from sysfs. */
export interface QueueState {
    scheduler: string | null;
    available: string[];
    tunables: Record<string, number>;
    nrRequests: number | null;
    readAheadKb: number | null;
}

/** What a resource needs to know of a disk to write its queues and persist them. */
export type DiskQueues = Pick<BlockDeviceFacts, "name" | "queues" | "nvme">;

export interface DiskRead {
    hostname: string;
    /** null: the device names no whole disk on the host (no link, a partition, an empty drive). */
    disk: DiskQueues | null;
    /** One per `disk.queues`, in that order. */
    queues: QueueState[];
    /** Every file the read script read, by path (the extra files among them). */
    files: ReadonlyMap<string, string>;
}

/** An NVMe multipath path device (nvme<S>c<C>n<H>, hidden under its head nvme<S>n<H>), not a disk. */
export const isNvmePath = (name: string) => /^nvme\d+c\d+n\d+$/.test(name);

/** The sysfs folder of a disk's (or an NVMe path's) request queue. */
export const queueDir = (disk: string) => `/sys/block/${disk}/queue`;

/**
 * Sets `k` to the disk's kernel name and `p` to a glob of its NVMe multipath paths (the kernel's
 * naming: head nvme<S>n<H>, paths nvme<S>c<C>n<H>), or to `-`, which names no file.
 */
function resolvePrelude(device: string): string {
    return [
        `d=${shellQuote(device)} k=- p=-`,
        // A link must exist as a link: `readlink -f` of a missing path would return the path itself.
        `case "$d" in /dev/*) if [ -L "$d" ]; then k=$(readlink -f -- "$d" 2>/dev/null); k=\${k#/dev/}; fi ;; *) k=$d ;; esac`,
        `case "$k" in ''|*[!A-Za-z0-9_-]*) k=- ;; esac`,
        `case "$k" in nvme*n*) s=\${k#nvme}; p="nvme\${s%%n*}c*n\${k##*n}" ;; esac`,
    ].join("\n");
}

/**
 * The read script of one disk: files only, under /sys/block/$k and /sys/block/$p, and `extraFiles`
 * (patterns that may use `$k`, the disk's kernel name: the files a resource keeps for the disk).
 */
export function diskReadRequest(device: string, extraFiles: readonly string[] = []): DumpRequest {
    const own = ["size", "queue/scheduler", "queue/nr_requests", "queue/read_ahead_kb", "queue/iosched/*"];
    const paths = ["queue/scheduler", "queue/nr_requests", "queue/iosched/*", "device/serial"];
    return {
        prelude: resolvePrelude(device),
        files: ["/etc/hostname", "/sys/block/$k/nsid", ...own.map((f) => `/sys/block/$k/${f}`), ...paths.map((f) => `/sys/block/$p/${f}`), ...extraFiles],
    };
}

/** A queue's state from a dump that read its files; `disk` gives the read-ahead (the disk's bdi). */
export function queueFromDump(dump: Dump, queueName: string, disk = queueName): QueueState | null {
    const sched = dump.files.get(`${queueDir(queueName)}/scheduler`);
    if (sched === undefined) return null;
    const { active, available } = parseBracketChoice(sched);
    const tunables: Record<string, number> = {};
    const prefix = `${queueDir(queueName)}/iosched/`;
    for (const [path, value] of dump.files) {
        if (!path.startsWith(prefix)) continue;
        const name = path.slice(prefix.length);
        if (/^[a-z_]+$/.test(name) && /^\d+$/.test(value.trim())) tunables[name] = Number(value.trim());
    }
    const num = (p: string) => (dump.files.has(p) ? Number(dump.files.get(p)!.trim()) : null);
    return { scheduler: active, available, tunables, nrRequests: num(`${queueDir(queueName)}/nr_requests`), readAheadKb: num(`${queueDir(disk)}/read_ahead_kb`) };
}

/** Parses what diskReadRequest's script printed. */
export function parseDiskRead(dump: Dump): DiskRead {
    const hostname = (dump.files.get("/etc/hostname") ?? "").trim();
    const names = new Set<string>();
    for (const path of dump.files.keys()) {
        const m = /^\/sys\/block\/([^/]+)\//.exec(path);
        if (m) names.add(m[1]);
    }
    const name = [...names].find((n) => !isNvmePath(n));
    const size = name === undefined ? 0 : Number((dump.files.get(`/sys/block/${name}/size`) ?? "0").trim());
    // As in the host facts: an unbound loop device or an empty drive is not a disk yet.
    if (name === undefined || !(size > 0)) return { hostname, disk: null, queues: [], files: dump.files };
    const paths = [...names].filter(isNvmePath).sort();
    const queues = paths.length > 0 ? paths : [name];
    const serial = dump.files.get(`/sys/block/${queues[0]}/device/serial`)?.trim();
    const nsidText = dump.files.get(`/sys/block/${name}/nsid`)?.trim();
    const nvme = serial && nsidText && /^\d+$/.test(nsidText) ? { serial, nsid: Number(nsidText) } : null;
    const states = queues.map((q) => queueFromDump(dump, q, name));
    if (states.some((q) => q === null)) return { hostname, disk: null, queues: [], files: dump.files };
    return { hostname, disk: { name, queues, nvme }, queues: states as QueueState[], files: dump.files };
}

/** Finds the disk `device` names and reads its queues (and `extraFiles`, see diskReadRequest): one round trip. */
export async function readDisk(remote: Remote, device: string, extraFiles: readonly string[] = []): Promise<DiskRead> {
    return parseDiskRead(parseDump(await runScript(remote, buildDumpScript(diskReadRequest(device, extraFiles)))));
}
