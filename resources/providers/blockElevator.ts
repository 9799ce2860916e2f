/**
 * BlockElevator's provider: a disk's I/O scheduler, its tunables and queue settings, applied to
 * sysfs live and persisted as a udev rule that matches the disk by the name the user gave (a
 * stable /dev/disk/by-id or by-path link, or the kernel name), so the setting comes back at boot
 * and on hot-plug.
 */
import type * as pulumi from "@pulumi/pulumi";
import { resourceOwner } from "./owner";
import { z } from "zod";
import { CLAIMS_DIR, formerOwnersOf, KnobClaim, releaseKnob } from "../host/claims";
import { createKnob, deleteKnob, updateKnob } from "../host/knob";
import { connectionSchema } from "../host/connection";
import { DiskQueues, DiskRead, diskReadRequest, parseDiskRead, queueDir, QueueState, readDisk } from "../host/disk";
import { PersistedFile, persistedDrift } from "../host/drift";
import { BlockDeviceFacts, gatherFacts } from "../host/facts";
import { managedHeader } from "../host/files";
import { persistFilesScript } from "../host/persist";
import { Platform, TUNED_READ, tunedDevicesMatch, TunedKnob, TunedOverlap, tunedOf, tunedOverlapMessage, tunedSettingsOf } from "../host/platform";
import { loadModuleCommand } from "../host/platformSteps";
import { Remote, runScript } from "../host/remote";
import { remoteFor } from "../host/sshPool";
import { buildDumpScript, parseDump, writeSysfsScript } from "../host/sysfs";
import { checkWithPlan, diffProps, FieldPolicy, stateOnlyUpdate } from "../policy";
import { found, gone, stateOf } from "../state";
import { inputsFrom } from "../validate";

export const SCHEDULERS = ["mq-deadline", "bfq", "kyber", "none"] as const;
export type Scheduler = (typeof SCHEDULERS)[number];

/** Single-queue names from before blk-mq, and what replaced them. */
export const LEGACY_SCHEDULERS: Record<string, Scheduler> = { deadline: "mq-deadline", cfq: "bfq", noop: "none" };

/** Tunables each scheduler has under queue/iosched (Linux 6.1). */
export const TUNABLES: Record<Scheduler, readonly string[]> = {
    "mq-deadline": ["read_expire", "write_expire", "writes_starved", "front_merges", "fifo_batch", "async_depth", "prio_aging_expire"],
    bfq: [
        "slice_idle", "slice_idle_us", "low_latency", "strict_guarantees", "timeout_sync", "max_budget",
        "back_seek_max", "back_seek_penalty", "fifo_expire_async", "fifo_expire_sync",
    ],
    kyber: ["read_lat_nsec", "write_lat_nsec"],
    none: [],
};

/**
 * Tunables the kernel keeps in jiffies although they are written in milliseconds: it rounds them
 * to its tick (4 ms on Debian's HZ=250), so 250 reads back as 252. One tick of difference (at most
 * 10 ms, HZ=100) is the same setting; normalizing here keeps refresh from reporting a change forever.
 */
const JIFFY_TUNABLES = new Set(["read_expire", "write_expire", "prio_aging_expire", "fifo_expire_sync", "fifo_expire_async", "timeout_sync"]);
const MAX_TICK_MS = 10;

export function sameTunable(name: string, asked: number, kept: number | undefined): boolean {
    if (kept === undefined) return false;
    return JIFFY_TUNABLES.has(name) ? Math.abs(asked - kept) < MAX_TICK_MS : asked === kept;
}

/** Kernel modules that provide each scheduler, loaded when a disk does not list it yet. */
const MODULES: Record<Scheduler, string | null> = { "mq-deadline": "mq-deadline", bfq: "bfq", kyber: "kyber-iosched", none: null };

const KERNEL_NAME = /^(?:[sv]d[a-z]{1,3}|xvd[a-z]{1,3}|nvme\d{1,3}n\d{1,3}|mmcblk\d{1,3}|loop\d{1,4}|md\d{1,4}|dm-\d{1,4}|nbd\d{1,4}|rbd\d{1,4}|zd\d{1,4})$/;
const STABLE_PATH = /^\/dev\/disk\/by-(?:id|path)\/[A-Za-z0-9:._+@-]{1,200}$/;

export const blockElevatorSchema = z
    .object({
        connection: connectionSchema,
        /** A kernel name (`vdb`, `nvme0n1`) or a stable path (`/dev/disk/by-id/...`, `/dev/disk/by-path/...`). */
        device: z.string().refine((d) => KERNEL_NAME.test(d) || STABLE_PATH.test(d), {
            message: "must be a whole-disk kernel name (vdb, sda, nvme0n1, ...) or a /dev/disk/by-id/ or /dev/disk/by-path/ link",
        }),
        /** The legacy names deadline, cfq and noop are accepted and mapped. */
        scheduler: z
            .string()
            .transform((s) => LEGACY_SCHEDULERS[s] ?? s)
            .pipe(z.enum(SCHEDULERS, { message: `must be one of ${SCHEDULERS.join(", ")} (or legacy deadline, cfq, noop)` })),
        tunables: z.record(z.string(), z.number().int().min(0).max(2 ** 31 - 1)).default({}),
        nrRequests: z.number().int().min(4).max(65536).optional(),
        readAheadKb: z.number().int().min(0).max(1048576).optional(),
        persist: z.boolean().default(true),
    })
    .strict()
    .superRefine((i, ctx) => {
        const allowed = TUNABLES[i.scheduler];
        for (const name of Object.keys(i.tunables)) {
            if (!allowed.includes(name)) {
                ctx.addIssue({
                    code: "custom",
                    path: ["tunables", name],
                    message: allowed.length
                        ? `${i.scheduler} has no tunable ${name}; it has ${allowed.join(", ")}`
                        : `${i.scheduler} has no tunables`,
                });
            }
        }
    });

export type BlockElevatorInputs = z.output<typeof blockElevatorSchema>;

const POLICY: FieldPolicy<BlockElevatorInputs> = {
    connection: "state",
    device: "replace",
    scheduler: "live",
    tunables: "live",
    nrRequests: "live",
    readAheadKb: "live",
    persist: "live",
};

export type { QueueState } from "../host/disk";

/** What the disk had before create: restored on delete. */
interface Original {
    scheduler: string | null;
    tunables: Record<string, number>;
    nrRequests: number | null;
    readAheadKb: number | null;
}

/** The disk's settings as found, to be restored on delete. */
function originalOf(i: BlockElevatorInputs, before: QueueState): Original {
    return {
        scheduler: before.scheduler,
        // Only the tunables we set need restoring: a scheduler switch back resets the rest.
        tunables: before.scheduler === i.scheduler ? Object.fromEntries(Object.keys(i.tunables).map((k) => [k, before.tunables[k]])) : {},
        nrRequests: before.nrRequests,
        readAheadKb: before.readAheadKb,
    };
}

/** Finds the disk a device input names, among the host's disks. */
export function resolveDevice(device: string, disks: BlockDeviceFacts[], hostname: string): BlockDeviceFacts {
    const disk = device.startsWith("/dev/")
        ? disks.find((d) => d.ids.includes(device) || d.paths.includes(device))
        : disks.find((d) => d.name === device);
    if (!disk) {
        const known = disks.map((d) => [d.name, ...d.ids, ...d.paths].join(" = ")).join("; ");
        throw new Error(`device: ${hostname} has no whole disk ${device}. Its disks: ${known || "none"}`);
    }
    return disk;
}

/** BlockElevator's inputs and the tuned knob each one is (host/tuned.ts), with whether the inputs set it. */
const TUNED_FIELDS: Array<{ field: keyof BlockElevatorInputs; knob: TunedKnob; asked: (i: BlockElevatorInputs) => boolean }> = [
    { field: "scheduler", knob: "BlockElevator.scheduler", asked: () => true },
    { field: "readAheadKb", knob: "BlockElevator.readAheadKb", asked: (i) => i.readAheadKb !== undefined },
    { field: "nrRequests", knob: "BlockElevator.nrRequests", asked: (i) => i.nrRequests !== undefined },
    { field: "tunables", knob: "BlockElevator.tunables", asked: (i) => Object.keys(i.tunables).length > 0 },
];

/**
 * The refusal when the running tuned's profile sets, on this disk, a queue setting the inputs ask
 * for (tuned's virtual-host sets read-ahead on every disk, and sets it again when tuned restarts):
 * null when none overlaps. What the profile sets through [sysfs] names its disk in the path.
 */
export function tunedConflict(i: BlockElevatorInputs, tuned: Platform["tuned"], kernelName: string, hostname: string): string | null {
    const overlaps: TunedOverlap[] = [];
    for (const { field, knob, asked } of TUNED_FIELDS) {
        if (!asked(i)) continue;
        for (const setting of tunedSettingsOf({ tuned }, knob)) {
            // [sysfs] names the disk in its path (a glob allowed); [disk] in its `devices=`.
            const sysfsDisk = /^\/sys\/block\/([^/]+)\//.exec(setting.option);
            const onThisDisk = tunedDevicesMatch(sysfsDisk ? sysfsDisk[1] : setting.devices, kernelName);
            if (onThisDisk) overlaps.push({ field, setting });
        }
    }
    return tunedOverlapMessage(`BlockElevator ${kernelName} on ${hostname}`, tuned.profile, overlaps);
}

/**
 * The disk a device input names, with its queues, and tuned's state, in one round trip. When there
 * is no disk, the error lists the host's disks: that takes the whole facts script, but only on this
 * failing path. A queue setting the running tuned also sets is refused here, before anything changes.
 */
async function requireDisk(remote: Remote, i: BlockElevatorInputs): Promise<DiskRead & { disk: DiskQueues }> {
    const device = i.device;
    const dump = parseDump(await runScript(remote, buildDumpScript({ ...diskReadRequest(device, TUNED_READ.files), commands: TUNED_READ.commands })));
    const found = parseDiskRead(dump);
    if (found.disk) {
        const conflict = tunedConflict(i, tunedOf(dump), found.disk.name, found.hostname || remote.name);
        if (conflict) throw new Error(conflict);
        return found as DiskRead & { disk: DiskQueues };
    }
    const facts = await gatherFacts(remote);
    resolveDevice(device, facts.blockDevices, facts.hostname); // throws, naming the disks there are
    // The disk came between the two reads: the error is no worse than the next run's.
    throw new Error(`device: ${device} on ${facts.hostname} was not a whole disk when it was read; run again`);
}

type QueueSettings = { scheduler: string | null; tunables: Record<string, number>; nrRequests?: number | null; readAheadKb?: number | null };

/** Writes scheduler, queue settings and tunables on every queue of a disk, in the order the kernel needs. */
function applyScript(disk: DiskQueues, s: QueueSettings): string {
    const writes: Array<{ path: string; value: string | number }> = [];
    for (const q of disk.queues) {
        if (s.scheduler) writes.push({ path: `${queueDir(q)}/scheduler`, value: s.scheduler });
        // After the scheduler: switching schedulers resets the queue depth and the iosched folder.
        if (s.nrRequests !== undefined && s.nrRequests !== null) writes.push({ path: `${queueDir(q)}/nr_requests`, value: s.nrRequests });
        for (const [name, value] of Object.entries(s.tunables)) writes.push({ path: `${queueDir(q)}/iosched/${name}`, value });
    }
    if (s.readAheadKb !== undefined && s.readAheadKb !== null) writes.push({ path: `${queueDir(disk.name)}/read_ahead_kb`, value: s.readAheadKb });
    return writeSysfsScript(writes);
}

/** Differences between what was asked and what the kernel kept, each naming both values. */
export function mismatches(i: BlockElevatorInputs, q: QueueState): string[] {
    const out: string[] = [];
    if (q.scheduler !== i.scheduler) out.push(`scheduler: asked ${i.scheduler}, the disk runs ${q.scheduler}`);
    for (const [name, want] of Object.entries(i.tunables)) {
        if (!sameTunable(name, want, q.tunables[name])) out.push(`tunables.${name}: asked ${want}, the kernel kept ${q.tunables[name]}`);
    }
    if (i.nrRequests !== undefined && q.nrRequests !== i.nrRequests) out.push(`nrRequests: asked ${i.nrRequests}, the kernel kept ${q.nrRequests}`);
    if (i.readAheadKb !== undefined && q.readAheadKb !== i.readAheadKb) out.push(`readAheadKb: asked ${i.readAheadKb}, the kernel kept ${q.readAheadKb}`);
    return out;
}

/** The udev match for the device as the user named it: a stable link survives renumbering. */
export function udevMatch(device: string, kernelName: string): string {
    if (device.startsWith("/dev/disk/")) return `SYMLINK=="${device.slice("/dev/".length)}"`;
    return `KERNEL=="${kernelName}"`;
}

/**
 * The rule that puts the settings back at boot and on hot-plug. NVMe multipath paths get no
 * /dev/disk links, so their rule matches the controller's serial and the namespace id instead.
 */
export function udevRule(owner: string, i: BlockElevatorInputs, disk: Pick<BlockDeviceFacts, "name" | "queues" | "nvme">): string {
    const queueAssigns = [`ATTR{queue/scheduler}="${i.scheduler}"`];
    if (i.nrRequests !== undefined) queueAssigns.push(`ATTR{queue/nr_requests}="${i.nrRequests}"`);
    for (const [name, value] of Object.entries(i.tunables)) queueAssigns.push(`ATTR{queue/iosched/${name}}="${value}"`);
    const readAhead = i.readAheadKb !== undefined ? [`ATTR{queue/read_ahead_kb}="${i.readAheadKb}"`] : [];
    const head = `ACTION=="add|change", SUBSYSTEM=="block", ENV{DEVTYPE}=="disk", ${udevMatch(i.device, disk.name)}`;
    const multipath = disk.queues.length > 0 && disk.queues[0] !== disk.name;
    if (!multipath) return managedHeader(owner) + `${head}, ${[...queueAssigns, ...readAhead].join(", ")}\n`;
    const serial = disk.nvme?.serial ?? "";
    if (!disk.nvme || !/^[A-Za-z0-9 ._-]+$/.test(serial)) {
        throw new Error(`${disk.name}: cannot persist settings for its multipath paths: no plain controller serial to match (${JSON.stringify(serial)})`);
    }
    const path = `ACTION=="add|change", SUBSYSTEM=="block", KERNEL=="nvme*c*n*", ATTRS{serial}=="${serial.trim()}", ATTR{nsid}=="${disk.nvme.nsid}"`;
    return managedHeader(owner) + `${path}, ${queueAssigns.join(", ")}\n` + (readAhead.length ? `${head}, ${readAhead.join(", ")}\n` : "");
}

/** One rule file per disk: the name comes from the kernel name, which the schema keeps plain. */
const rulePath = (kernelName: string) => `/etc/udev/rules.d/61-kvmtune-elevator-${kernelName}.rules`;

/** The files a BlockElevator keeps for a disk: its udev rule, or none when persist is off. */
function persistedFiles(owner: string, i: BlockElevatorInputs, disk: DiskQueues): PersistedFile[] {
    return [{ path: rulePath(disk.name), want: i.persist ? udevRule(owner, i, disk) : null, reload: "udev" }];
}

/** For read: the rule and the claim of whichever disk the device resolves to on the host (`$k`, host/disk.ts). */
const KEPT_FILE_PATTERNS = [rulePath("$k"), `${CLAIMS_DIR}/block-elevator-$k`];

/**
 * The knob a BlockElevator owns: the disk's queue, by kernel name like its rule file, so two
 * resources naming one disk differently (`vdb`, a by-id link) still meet at one claim.
 */
export function diskClaim(owner: string, kernelName: string, formerOwners: string[] = [], original?: Original): KnobClaim {
    return { knob: `block-elevator-${kernelName}`, what: `the I/O scheduler of ${kernelName}`, owner, formerOwners, files: [rulePath(kernelName)], original };
}

/**
 * The writes and their read-back in one script (the read-back runs only when every write was
 * taken), after loading the scheduler's module if the disk does not offer it yet. The udev rule is
 * written after, by its own script: only once the kernel is known to have kept the settings.
 */
async function converge(remote: Remote, i: BlockElevatorInputs, disk: DiskQueues, before: QueueState, owner: string, hostname: string): Promise<QueueState> {
    const module = before.available.includes(i.scheduler) ? null : MODULES[i.scheduler];
    const load = module ? `${loadModuleCommand(module)} >/dev/null 2>&1 || true\n` : "";
    let read: DiskRead;
    try {
        read = parseDiskRead(parseDump(await runScript(remote, load + applyScript(disk, i) + "\n" + buildDumpScript(diskReadRequest(disk.name)))));
    } catch (err) {
        // Put the scheduler and queue settings back, so a refused write changes nothing.
        await runScript(remote, applyScript(disk, { scheduler: before.scheduler, tunables: {}, nrRequests: before.nrRequests, readAheadKb: before.readAheadKb })).catch(() => undefined);
        const again = await readDisk(remote, disk.name).catch(() => null);
        const offered = again?.queues[0]?.available;
        if (offered && !offered.includes(i.scheduler)) {
            throw new Error(`scheduler: ${disk.name} on ${hostname} does not offer ${i.scheduler}${module ? ` (even after modprobe ${module})` : ""}; it offers ${offered.join(", ")}`);
        }
        throw err;
    }
    if (!read.disk || read.disk.queues.join(",") !== disk.queues.join(",")) {
        throw new Error(`${disk.name} on ${hostname} changed while it was written (queues now ${read.disk?.queues.join(", ") ?? "gone"}); run again`);
    }
    const after = read.queues;
    const wrong = after.flatMap((q, n) => mismatches(i, q).map((m) => (disk.queues.length > 1 ? `${disk.queues[n]}: ${m}` : m)));
    if (wrong.length) {
        throw new Error(`${disk.name} on ${hostname} did not take the settings: ${wrong.join("; ")}`);
    }
    await runScript(remote, persistFilesScript(persistedFiles(owner, i, disk)));
    return after[0];
}

function outputs(i: BlockElevatorInputs, owner: string, disk: DiskQueues, q: QueueState, original: Original, drift: string[] = []) {
    return stateOf({
        ...i,
        owner,
        kernelName: disk.name,
        /** Where the scheduler lives: the disk, or its NVMe multipath paths. */
        queues: disk.queues,
        activeScheduler: q.scheduler,
        availableSchedulers: q.available,
        currentTunables: q.tunables,
        currentNrRequests: q.nrRequests,
        currentReadAheadKb: q.readAheadKb,
        original,
        /** What the last read found different from what kvmtune keeps on the host (host/drift.ts). */
        drift,
    });
}

function inputsOf(props: Record<string, unknown>): BlockElevatorInputs {
    return inputsFrom(blockElevatorSchema, props, "BlockElevator inputs");
}

export const provider = {
    async check(olds: Record<string, unknown>, news: Record<string, unknown>): Promise<pulumi.dynamic.CheckResult> {
        return checkWithPlan(blockElevatorSchema, POLICY, olds, news);
    },

    async diff(_id: string, olds: Record<string, unknown>, news: Record<string, unknown>): Promise<pulumi.dynamic.DiffResult> {
        return diffProps(blockElevatorSchema, POLICY, olds, news);
    },

    async create(props: Record<string, unknown>): Promise<pulumi.dynamic.CreateResult> {
        const i = inputsOf(props);
        const owner = resourceOwner("BlockElevator", undefined, props);
        const remote = remoteFor(i.connection);
        const { hostname, disk, queues: [before] } = await requireDisk(remote, i);
        // Before anything changes: the disk must not belong to another resource (../host/knob.ts).
        const seen = originalOf(i, before);
        return createKnob(
            remote,
            { ...diskClaim(owner, disk.name, [], seen), original: seen },
            async (original) => {
                const after = await converge(remote, i, disk, before, owner, hostname);
                return { id: `${hostname}/${disk.name}`, outs: outputs(i, owner, disk, after, original) };
            },
            (original) => restore(remote, disk.name, original),
        );
    },

    async read(id: string, props: Record<string, unknown>): Promise<pulumi.dynamic.ReadResult> {
        const i = inputsOf(props);
        const remote = remoteFor(i.connection);
        // One round trip: the device resolved on the host and its queue read in the same script.
        const { disk, queues: [q], files } = await readDisk(remote, i.device, KEPT_FILE_PATTERNS);
        if (!disk) return gone(); // the disk is gone: refresh drops the resource
        const owner = resourceOwner("BlockElevator", undefined, props);
        // Live values in the input fields, so refresh shows a change made behind our back.
        const live: BlockElevatorInputs = {
            ...i,
            scheduler: (q.scheduler ?? "none") as Scheduler,
            // Within a tick is the value asked for (see JIFFY_TUNABLES); anything else is a change.
            tunables: Object.fromEntries(Object.entries(i.tunables).map(([k, v]) => [k, sameTunable(k, v, q.tunables[k]) ? v : q.tunables[k]])),
            nrRequests: i.nrRequests === undefined ? undefined : (q.nrRequests ?? undefined),
            readAheadKb: i.readAheadKb === undefined ? undefined : (q.readAheadKb ?? undefined),
        };
        const drift = persistedDrift(files, persistedFiles(owner, i, disk), [diskClaim(owner, disk.name)]);
        return found(id, outputs(live, owner, disk, q, props.original as Original, drift));
    },

    async update(_id: string, olds: Record<string, unknown>, news: Record<string, unknown>): Promise<pulumi.dynamic.UpdateResult> {
        const untouched = stateOnlyUpdate(blockElevatorSchema, POLICY, olds, news);
        if (untouched) return untouched;
        const i = inputsOf(news);
        const owner = resourceOwner("BlockElevator", undefined, news, olds);
        const remote = remoteFor(i.connection);
        const { hostname, disk, queues: [before] } = await requireDisk(remote, i);
        // Re-taken on every update: it moves the claim to a new label, and a by-id device that now
        // resolves to another kernel name takes that disk's claim before writing to it. A claim the
        // host lost (reinstalled) is taken again, recording the disk as it is now.
        const seen = originalOf(i, before);
        const recorded = olds.kernelName === disk.name ? (olds.original as Original | undefined) : undefined;
        return updateKnob(remote, { ...diskClaim(owner, disk.name, formerOwnersOf(olds, owner), seen), original: seen }, recorded, async (original) => {
            const after = await converge(remote, i, disk, before, owner, hostname);
            if (typeof olds.kernelName === "string" && olds.kernelName !== disk.name) {
                await releaseKnob(remote, diskClaim(owner, olds.kernelName, formerOwnersOf(olds, owner)));
            }
            return { outs: outputs(i, owner, disk, after, original) };
        });
    },

    async delete(_id: string, props: Record<string, unknown>): Promise<void> {
        const i = inputsOf(props);
        const remote = remoteFor(i.connection);
        const original = props.original as Original;
        const kernelName = String(props.kernelName);
        await deleteKnob(remote, diskClaim(resourceOwner("BlockElevator", undefined, props), kernelName), () => restore(remote, kernelName, original));
    },
};

/**
 * The disk as it was: the rule goes and the original settings come back, in one script (a gone disk
 * has nothing to restore). Shared by delete and by a create that failed half-way.
 */
async function restore(remote: Remote, kernelName: string, original: Original): Promise<void> {
    const { disk } = await readDisk(remote, kernelName);
    const settings = disk ? "\n" + applyScript(disk, original) : "";
    await runScript(remote, persistFilesScript([{ path: rulePath(kernelName), want: null, reload: "udev" }]) + settings);
}
