/**
 * HugepagePool's provider: a huge page pool of one page size, per NUMA node or as a total the
 * kernel spreads, read back after every write because the kernel may allocate fewer pages than
 * asked (fragmentation, a node short of free memory) without failing the write.
 *
 * Persistence at boot (a systemd unit for 2 MiB pools; for 1 GiB ones the kernel command line,
 * which KernelCmdline writes and this provider only checks) and what a boot delivered are in
 * ./hugepagePoolBoot.ts.
 */
import type * as pulumi from "@pulumi/pulumi";
import { z } from "zod";
import { formerOwnersOf, KnobClaim } from "../host/claims";
import { persistedDrift, persistedPaths } from "../host/drift";
import { createKnob, deleteKnob, updateKnob } from "../host/knob";
import { connectionSchema } from "../host/connection";
import { gatherFacts, HostFactsData, pageSizeKb } from "../host/facts";
import { shellQuote } from "../host/quote";
import { Remote, runScript, TIMEOUTS } from "../host/remote";
import { remoteFor } from "../host/sshPool";
import { warnUser } from "../host/warn";
import { BOOT_COMMANDS, BOOT_FILES, parseBootConfig } from "../host/bootloader";
import { buildDumpScript, parseDump, writeSysfsScript } from "../host/sysfs";
import { checkWithPlan, diffProps, FieldPolicy, stateOnlyUpdate } from "../policy";
import { found, gone, stateOf } from "../state";
import { inputsFrom } from "../validate";
import { bootArgs, bootConfigProblem, bootUnitPath, globalPath, mountUnitName, nodePath, pageDir, persistedFiles, persistScript, PoolCounts, rebootRequired, shortfallOf, unpersistScript } from "./hugepagePoolBoot";
import { resourceOwner } from "./owner";

/** Re-exported: callers and tests name them from here. */
export { bootArgs, mountUnitName };

/** Absolute, of plain names, and normalized: no `.` or `..` (systemd refuses such a mount unit's Where=). */
const MOUNT_PATH = /^(?!.*\/\.\.?(?:\/|$))\/(?:[A-Za-z0-9_.-]+\/)*[A-Za-z0-9_.-]+$/;

export const hugepagePoolSchema = z
    .object({
        connection: connectionSchema,
        pageSize: z.enum(["2M", "1G"]),
        /** Pages per NUMA node: `{"0": 512, "1": 512}`. Nodes not named are left alone. */
        nodes: z.record(z.string().regex(/^\d{1,3}$/, "must be a NUMA node number"), z.number().int().min(0).max(4_194_304)).optional(),
        /** Or one total the kernel spreads over the nodes. */
        total: z.number().int().min(0).max(4_194_304).optional(),
        /** A hugetlbfs mount point for this page size (created when missing). */
        mount: z.string().regex(MOUNT_PATH, "must be an absolute path of plain names, without . or .. parts").optional(),
        persist: z.boolean().default(true),
        /** Accept fewer pages than asked; the outputs then show what the kernel gave. */
        allowPartial: z.boolean().default(false),
    })
    .strict()
    .refine((i) => (i.nodes === undefined) !== (i.total === undefined), {
        message: "set exactly one of nodes (pages per NUMA node) and total",
        path: ["nodes"],
    });

export type HugepagePoolInputs = z.output<typeof hugepagePoolSchema>;

const POLICY: FieldPolicy<HugepagePoolInputs> = {
    connection: "state",
    pageSize: "replace",
    nodes: "live",
    total: "live",
    mount: "live",
    persist: "live",
    allowPartial: "state",
};

/** What the host had before create: restored on delete. */
interface Original {
    nodes: Record<string, number>;
    mountWasThere: boolean;
}

/**
 * The knob a HugepagePool owns: its page size's pool on the host, every node of it. One boot unit
 * (for 1G, one `hugepages=` on the command line) persists a size's pool, so a second pool of the
 * same size, even on other nodes, would overwrite the first one's boot configuration: declare all
 * nodes of a size in one HugepagePool. A mount unit belongs to the pool that mounts it. The command
 * line itself is KernelCmdline's knob, not this one's.
 */
export function poolClaim(owner: string, i: Pick<HugepagePoolInputs, "pageSize" | "mount">, formerOwners: string[] = [], original?: Original): KnobClaim {
    const files = [bootUnitPath(i.pageSize), ...(i.mount ? [`/etc/systemd/system/${mountUnitName(i.mount)}`] : [])];
    return { knob: `hugepages-${i.pageSize}`, what: `the ${i.pageSize} huge page pool`, owner, formerOwners, files, original };
}

/** Checks the inputs against what the host has, before anything changes. */
export function checkAgainstHost(i: HugepagePoolInputs, facts: HostFactsData): string[] {
    const problems: string[] = [];
    if (!facts.hugepageSizes.includes(i.pageSize)) {
        problems.push(
            `pageSize: got "${i.pageSize}"; ${facts.hostname} offers ${facts.hugepageSizes.join(", ") || "no huge pages"}` +
                (i.pageSize === "1G" ? " (1G pages need a CPU with pdpe1gb)" : ""),
        );
        return problems;
    }
    const mib = pageSizeKb(i.pageSize) / 1024;
    for (const [id, pages] of Object.entries(i.nodes ?? {})) {
        const node = facts.numaNodes.find((n) => String(n.id) === id);
        if (!node) {
            problems.push(`nodes.${id}: ${facts.hostname} has no NUMA node ${id}; it has ${facts.numaNodes.map((n) => n.id).join(", ")}`);
        } else if (pages * mib > node.memoryMiB) {
            // In pages, the unit the user asked in; the memory behind the limit in brackets.
            problems.push(`nodes.${id}: got ${pages} pages of ${i.pageSize}; node ${id} has room for at most ${Math.floor(node.memoryMiB / mib)} pages of ${i.pageSize} (its ${node.memoryMiB} MiB)`);
        }
    }
    const memory = facts.numaNodes.reduce((s, n) => s + n.memoryMiB, 0);
    if (i.total !== undefined && i.total * mib > memory) {
        problems.push(`total: got ${i.total} pages of ${i.pageSize}; ${facts.hostname} has room for at most ${Math.floor(memory / mib)} pages of ${i.pageSize} (its ${memory} MiB)`);
    }
    return problems;
}

/**
 * Reads every node's pool of one size, the mount, the boot configuration (for a 1G pool: whether
 * the next boot reserves it) and `extraFiles`, in one round trip.
 */
async function readPools(remote: Remote, i: Pick<HugepagePoolInputs, "pageSize" | "mount">, extraFiles: string[] = []) {
    const dump = parseDump(
        await runScript(
            remote,
            buildDumpScript({
                files: [`/sys/devices/system/node/node*/hugepages/${pageDir(i.pageSize)}/*_hugepages`, "/proc/cmdline", ...(i.pageSize === "1G" ? BOOT_FILES : []), ...extraFiles],
                commands: {
                    ...(i.mount ? { mount: `findmnt -n -o FSTYPE,OPTIONS --mountpoint ${shellQuote(i.mount)}` } : {}),
                    ...(i.pageSize === "1G" ? BOOT_COMMANDS : {}),
                },
            }),
        ),
    );
    const pools: Record<string, PoolCounts> = {};
    for (const [path, value] of dump.files) {
        const m = /node(\d+)\/hugepages\/[^/]+\/(nr|free|surplus)_hugepages$/.exec(path);
        if (!m) continue;
        const p = (pools[m[1]] ??= { total: 0, free: 0, surplus: 0 });
        const n = Number(value.trim());
        if (m[2] === "nr") p.total = n;
        else if (m[2] === "free") p.free = n;
        else p.surplus = n;
    }
    const mountLine = dump.commands.get("mount")?.stdout.trim() ?? "";
    const mounted = /^hugetlbfs\s/.test(mountLine) && new RegExp(`pagesize=${i.pageSize}\\b`).test(mountLine);
    const boot = i.pageSize === "1G" ? parseBootConfig(dump) : { cmdline: null, source: "" };
    return { pools, mounted, mountLine, cmdline: dump.files.get("/proc/cmdline")?.trim() ?? "", boot, files: dump.files };
}

/** The pool and mount as found, to be restored on delete. */
function originalOf(found: { pools: Record<string, PoolCounts>; mounted: boolean }): Original {
    return { nodes: Object.fromEntries(Object.entries(found.pools).map(([n, p]) => [n, p.total])), mountWasThere: found.mounted };
}

/** Sets the pool, reads it back, and undoes the write when the kernel gave less than asked. */
async function applyPool(remote: Remote, owner: string, i: HugepagePoolInputs, restoreTo: Record<string, number>): Promise<Record<string, PoolCounts>> {
    const writes = i.nodes
        ? Object.entries(i.nodes).map(([n, c]) => ({ path: nodePath(n, i.pageSize), value: c }))
        : [{ path: globalPath(i.pageSize), value: i.total as number }];
    await runScript(remote, writes.length ? writeSysfsScript(writes) : "true", { timeoutSeconds: TIMEOUTS.hugepageAllocation });
    const { pools, cmdline } = await readPools(remote, i);
    const { error, warning } = shortfallOf(i, pools, cmdline);
    if (error) {
        // Put every node back as it was, so a failed apply changes nothing.
        await runScript(remote, writeSysfsScript(Object.entries(restoreTo).map(([n, c]) => ({ path: nodePath(n, i.pageSize), value: c }))));
        throw new Error(error);
    }
    if (warning) warnUser(`${owner}: ${warning}`);
    return pools;
}

async function ensureMount(remote: Remote, i: HugepagePoolInputs): Promise<void> {
    if (!i.mount) return;
    const { mounted, mountLine } = await readPools(remote, i);
    if (mounted) return;
    if (mountLine) {
        throw new Error(`mount: ${i.mount} is already mounted (${mountLine}), not as hugetlbfs with pagesize=${i.pageSize}`);
    }
    await runScript(remote, `mkdir -p ${shellQuote(i.mount)} && mount -t hugetlbfs -o pagesize=${i.pageSize} hugetlbfs ${shellQuote(i.mount)}`);
}

type BootRead = { cmdline: string; boot: { cmdline: string | null } };

function outputs(i: HugepagePoolInputs, owner: string, pools: Record<string, PoolCounts>, original: Original, read: BootRead, drift: string[] = []) {
    return stateOf({
        ...i,
        owner,
        pools,
        totalPages: Object.values(pools).reduce((s, p) => s + p.total, 0),
        freePages: Object.values(pools).reduce((s, p) => s + p.free, 0),
        original,
        // 1G pools persist on the kernel command line: until a reboot, the running kernel lacks it.
        rebootRequired: rebootRequired(i, read.cmdline, read.boot.cmdline),
        /** What the last read found different from what kvmtune keeps on the host (host/drift.ts). */
        drift,
    });
}

function inputsOf(props: Record<string, unknown>): HugepagePoolInputs {
    return inputsFrom(hugepagePoolSchema, props, "HugepagePool inputs");
}

export const provider = {
    async check(olds: Record<string, unknown>, news: Record<string, unknown>): Promise<pulumi.dynamic.CheckResult> {
        return checkWithPlan(hugepagePoolSchema, POLICY, olds, news);
    },

    async diff(_id: string, olds: Record<string, unknown>, news: Record<string, unknown>): Promise<pulumi.dynamic.DiffResult> {
        return diffProps(hugepagePoolSchema, POLICY, olds, news);
    },

    async create(props: Record<string, unknown>): Promise<pulumi.dynamic.CreateResult> {
        const i = inputsOf(props);
        const owner = resourceOwner("HugepagePool", undefined, props);
        const remote = remoteFor(i.connection);
        const facts = await gatherFacts(remote);
        const problems = checkAgainstHost(i, facts);
        if (problems.length) throw new Error(`HugepagePool on ${facts.hostname}: ${problems.join("; ")}`);
        const before = await readPools(remote, i);
        const bootProblem = bootConfigProblem(i, before.boot);
        if (bootProblem) throw new Error(`HugepagePool on ${facts.hostname}: ${bootProblem}`);
        const seen = originalOf(before);
        // Before anything changes: the pool must not belong to another resource (../host/knob.ts).
        return createKnob(
            remote,
            { ...poolClaim(owner, i, [], seen), original: seen },
            async (original) => {
                // A shortfall puts the pool back to what it is now, before this attempt's write.
                const pools = await applyPool(remote, owner, i, seen.nodes);
                await ensureMount(remote, i);
                await runScript(remote, persistScript(owner, i), { timeoutSeconds: TIMEOUTS.bootConfig });
                const after = await readPools(remote, i);
                return { id: `${facts.hostname}/hugepages-${i.pageSize}`, outs: outputs(i, owner, pools, original, after) };
            },
            (original) => restore(remote, i, original),
        );
    },

    async read(id: string, props: Record<string, unknown>): Promise<pulumi.dynamic.ReadResult> {
        const i = inputsOf(props);
        const owner = resourceOwner("HugepagePool", undefined, props);
        // The files kept for the pool and its claim, read in the same round trip: drift if changed.
        const kept = persistedFiles(owner, i);
        const claim = poolClaim(owner, i);
        const read = await readPools(remoteFor(i.connection), i, persistedPaths(kept, [claim]));
        const { pools, files } = read;
        if (Object.keys(pools).length === 0) {
            // The host no longer offers this page size at all: the pool is gone.
            return gone();
        }
        // Report the live counts as the inputs, so refresh shows a pool changed behind our back.
        const live = i.nodes
            ? { ...i, nodes: Object.fromEntries(Object.keys(i.nodes).map((n) => [n, pools[n]?.total ?? 0])) }
            : { ...i, total: Object.values(pools).reduce((s, p) => s + p.total, 0) };
        const original = props.original as Original;
        // A 1G pool whose arguments left the boot configuration would be gone after the next boot.
        const bootProblem = bootConfigProblem(i, read.boot);
        const drift = [...persistedDrift(files, kept, [claim]), ...(bootProblem ? [bootProblem] : [])];
        return found(id, outputs(live, owner, pools, original, read, drift));
    },

    async update(_id: string, olds: Record<string, unknown>, news: Record<string, unknown>): Promise<pulumi.dynamic.UpdateResult> {
        const untouched = stateOnlyUpdate(hugepagePoolSchema, POLICY, olds, news);
        if (untouched) return untouched;
        const i = inputsOf(news);
        const owner = resourceOwner("HugepagePool", undefined, news, olds);
        const remote = remoteFor(i.connection);
        const facts = await gatherFacts(remote);
        const problems = checkAgainstHost(i, facts);
        if (problems.length) throw new Error(`HugepagePool on ${facts.hostname}: ${problems.join("; ")}`);
        // Re-taken on every update: moves the claim to a new label, and checks a new mount's unit.
        // A claim the host lost (reinstalled) is taken again, recording the pool as it is now.
        const seen = await readPools(remote, i);
        const bootProblem = bootConfigProblem(i, seen.boot);
        if (bootProblem) throw new Error(`HugepagePool on ${facts.hostname}: ${bootProblem}`);
        const claim = { ...poolClaim(owner, i, formerOwnersOf(olds, owner), originalOf(seen)), original: originalOf(seen) };
        return updateKnob(remote, claim, olds.original as Original | undefined, async (original) => {
            const oldInputs = inputsOf(olds);
            // Nodes the pool no longer names go back to what they had before this pool existed.
            const dropped = Object.keys(oldInputs.nodes ?? {}).filter((n) => !(n in (i.nodes ?? original.nodes)));
            if (dropped.length) {
                await runScript(remote, writeSysfsScript(dropped.map((n) => ({ path: nodePath(n, i.pageSize), value: original.nodes[n] ?? 0 }))));
            }
            // The pool as it is before this update's write: read again only if dropped nodes were written.
            const before = dropped.length ? await readPools(remote, i) : seen;
            const pools = await applyPool(remote, owner, i, originalOf(before).nodes);
            if (oldInputs.mount && oldInputs.mount !== i.mount) await runScript(remote, unpersistScript({ ...oldInputs, pageSize: i.pageSize }));
            await ensureMount(remote, i);
            await runScript(remote, persistScript(owner, i), { timeoutSeconds: TIMEOUTS.bootConfig });
            const after = await readPools(remote, i);
            return { outs: outputs(i, owner, pools, original, after) };
        });
    },

    async delete(_id: string, props: Record<string, unknown>): Promise<void> {
        const i = inputsOf(props);
        const remote = remoteFor(i.connection);
        const original = props.original as Original;
        await deleteKnob(remote, poolClaim(resourceOwner("HugepagePool", undefined, props), i), () => restore(remote, i, original));
    },
};

/** Undoes what create did: no boot or mount unit, the nodes this pool set at their counts from before, our mount gone. */
async function restore(remote: Remote, i: HugepagePoolInputs, original: Original): Promise<void> {
    const nodes = i.nodes ? Object.keys(i.nodes) : Object.keys(original.nodes);
    await runScript(remote, unpersistScript(i), { timeoutSeconds: TIMEOUTS.bootConfig });
    await runScript(remote, writeSysfsScript(nodes.map((n) => ({ path: nodePath(n, i.pageSize), value: original.nodes[n] ?? 0 })), { skipSame: true }));
    if (i.mount && !original.mountWasThere) {
        await runScript(remote, `umount ${shellQuote(i.mount)} 2>/dev/null || true`);
    }
}
