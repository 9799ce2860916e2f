/**
 * HugepagePool's paths, its persistence at boot, and what a boot delivered.
 *
 * 2 MiB pools are set at boot by a oneshot systemd unit ordered before libvirt. 1 GiB pools are
 * reserved at boot from the kernel command line, since the kernel finds 1 GiB of contiguous memory
 * reliably only before memory fragments; the command line has one owner in kvmtune, KernelCmdline
 * (its `hugepages1G`), so a 1 GiB pool persists by checking that the boot configuration carries its
 * arguments, not by writing them. A hugetlbfs mount is persisted as a systemd mount unit.
 */
import type { PersistedFile } from "../host/drift";
import { pageSizeKb } from "../host/facts";
import { managedHeader } from "../host/files";
import { beforeLibvirtLine } from "../host/platformSteps";
import { persistFilesScript } from "../host/persist";
import type { HugepagePoolInputs } from "./hugepagePool";
import { hugepagesValue } from "./kernelCmdlineSchema";

export interface PoolCounts {
    total: number;
    free: number;
    surplus: number;
}

export const pageDir = (size: string) => `hugepages-${pageSizeKb(size)}kB`;
export const nodePath = (node: string, size: string, file = "nr_hugepages") => `/sys/devices/system/node/node${node}/hugepages/${pageDir(size)}/${file}`;
export const globalPath = (size: string) => `/sys/kernel/mm/hugepages/${pageDir(size)}/nr_hugepages`;
const bootUnitName = (size: string) => `kvmtune-hugepages-${size}.service`;
export const bootUnitPath = (size: string) => `/etc/systemd/system/${bootUnitName(size)}`;
/**
 * Where kvmtune before KernelCmdline wrote a 1G pool's arguments. Nothing writes it now; a copy
 * kvmtune wrote is taken away (with update-grub) when such a pool is updated or deleted, once its
 * arguments are on KernelCmdline's fragment, so the command line keeps a single owner.
 */
export const legacyGrubFragmentPath = "/etc/default/grub.d/kvmtune-hugepages.cfg";

/** systemd's name for a mount unit: `/dev/hugepages` -> `dev-hugepages.mount`. */
export function mountUnitName(path: string): string {
    const escaped = path
        .replace(/^\/+|\/+$/g, "")
        .split("/")
        .map((part) => part.replace(/[^A-Za-z0-9:_.]|^\./g, (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, "0")}`))
        .join("-");
    return `${escaped}.mount`;
}

/**
 * The kernel command line arguments of a 1G pool, spelled as KernelCmdline writes its
 * `hugepages1G` (hugepagesValue): the pool looks for exactly the words KernelCmdline put there.
 */
export function bootArgs(i: Pick<HugepagePoolInputs, "pageSize" | "nodes" | "total">): string {
    return `hugepagesz=${i.pageSize} hugepages=${hugepagesValue(i.nodes ?? (i.total as number))}`;
}

/**
 * Whether the running kernel booted with this pool's boot arguments (`/proc/cmdline`): its
 * `hugepagesz=` followed by its `hugepages=`, wherever they sit among other arguments.
 */
export function bootedWith(i: Pick<HugepagePoolInputs, "pageSize" | "nodes" | "total">, cmdline: string): boolean {
    const [size, count] = bootArgs(i).split(" ");
    const words = cmdline.trim().split(/\s+/);
    return words.some((w, n) => w === size && words.slice(n + 1).find((x) => x.startsWith("hugepagesz=") || x.startsWith("hugepages=")) === count);
}

/**
 * A 1G pool whose arguments the boot configuration holds (`bootCmdline`, the default entry's, read
 * through host/bootloader.ts) and the running kernel (`cmdline`, /proc/cmdline) did not boot with.
 */
export function rebootRequired(i: HugepagePoolInputs, cmdline: string, bootCmdline: string | null): boolean {
    return i.pageSize === "1G" && bootCmdline !== null && bootedWith(i, bootCmdline) && !bootedWith(i, cmdline);
}

/**
 * Why a 1G pool that persists cannot: the boot configuration lacks its arguments. The arguments
 * are KernelCmdline's to write (one owner of the command line); the message says how to give them.
 * Null when the pool needs nothing from the boot (2M, persist off) or the boot holds the arguments.
 */
export function bootConfigProblem(i: HugepagePoolInputs, boot: { cmdline: string | null; source: string }): string | null {
    if (i.pageSize !== "1G" || !i.persist || (boot.cmdline !== null && bootedWith(i, boot.cmdline))) return null;
    const count = i.nodes ? JSON.stringify(Object.fromEntries(Object.entries(i.nodes).sort(([a], [b]) => Number(a) - Number(b)))) : String(i.total);
    const found = boot.cmdline === null ? `could not be read from ${boot.source}` : `(${boot.source}) lacks "${bootArgs(i)}"`;
    return (
        `persist: a 1G pool is kept across boots by the kernel command line, and the next boot's command line ${found}. ` +
        `kvmtune writes the command line through KernelCmdline only: declare a KernelCmdline with hugepages1G: ${count} and make this pool depend on it ` +
        `(KvmHost does both for its 1G pool), or set persist: false to keep the pool until the next boot only.`
    );
}

/**
 * What a pool the kernel filled short means. Without allowPartial an error; with it a warning, so
 * accepting less is never silent. Each names node, asked and got, and the way to the pages: for
 * 1G pages that is the boot (the kernel command line), unless the host already booted with this
 * pool's arguments: then the boot did not deliver either, and another reboot will not help.
 */
export function shortfallOf(i: HugepagePoolInputs, pools: Record<string, PoolCounts>, cmdline: string): { error?: string; warning?: string } {
    const short: string[] = [];
    if (i.nodes) {
        for (const [n, want] of Object.entries(i.nodes)) {
            const got = pools[n]?.total ?? 0;
            if (got < want) short.push(`node ${n}: asked ${want}, got ${got}`);
        }
    } else {
        const got = Object.values(pools).reduce((s, p) => s + p.total, 0);
        if (got < (i.total ?? 0)) short.push(`all nodes: asked ${i.total}, got ${got}`);
    }
    if (short.length === 0) return {};
    const what = `the kernel allocated fewer ${i.pageSize} huge pages than asked (${short.join("; ")})`;
    const oneGig = i.pageSize === "1G";
    if (oneGig && bootedWith(i, cmdline)) {
        const text =
            `${what}, and the host booted with "${bootArgs(i)}" on its kernel command line: the boot did not deliver them either, ` +
            `so another reboot will not help. The node has too little memory for them at boot: ask for fewer pages, or free memory reserved by other boot arguments.`;
        return i.allowPartial ? { warning: `${text} allowPartial accepts what the kernel gave.` } : { error: text };
    }
    const args = `"${bootArgs(i)}"`;
    if (i.allowPartial) {
        const route = !oneGig ? "" : i.persist ? ` ${args} is on the kernel command line: reboot the host to get the rest.` : ` 1G pages are found reliably only at boot: KernelCmdline's hugepages1G puts ${args} on the kernel command line.`;
        return { warning: `${what}; allowPartial accepts what the kernel gave.${route}` };
    }
    const route = oneGig
        ? ` 1G pages are found reliably only at boot: with allowPartial: true the pool takes what the kernel gives now, and with ${args} on the kernel command line (KernelCmdline's hugepages1G) a reboot gets them all.`
        : "";
    return {
        error:
            `${what}: memory on the node is too fragmented or too little is free. The pool was put back as it was. ` +
            `Free memory on the node, ask for fewer pages, or set allowPartial: true to accept what the kernel gives.${route}`,
    };
}

function bootUnit(owner: string, i: HugepagePoolInputs): string {
    const writes = i.nodes
        ? Object.entries(i.nodes).map(([n, c]) => `ExecStart=/bin/sh -c 'echo ${c} > ${nodePath(n, i.pageSize)}'`)
        : [`ExecStart=/bin/sh -c 'echo ${i.total} > ${globalPath(i.pageSize)}'`];
    return (
        managedHeader(owner) +
        [
            "[Unit]",
            `Description=kvmtune: ${i.pageSize} huge page pool (${owner})`,
            "DefaultDependencies=no",
            "After=systemd-sysctl.service",
            // Pools before QEMU allocates guest memory, in either libvirt layout (host/platformSteps.ts).
            beforeLibvirtLine(["qemu", "guests"], ["sysinit.target"]),
            "",
            "[Service]",
            "Type=oneshot",
            "RemainAfterExit=yes",
            ...writes,
            "",
            "[Install]",
            "WantedBy=sysinit.target",
            "",
        ].join("\n")
    );
}

function mountUnit(owner: string, i: HugepagePoolInputs): string {
    return (
        managedHeader(owner) +
        [
            "[Unit]",
            `Description=kvmtune: hugetlbfs for ${i.pageSize} pages (${owner})`,
            "DefaultDependencies=no",
            beforeLibvirtLine(["qemu"], ["sysinit.target"]),
            "",
            "[Mount]",
            "What=hugetlbfs",
            `Where=${i.mount}`,
            "Type=hugetlbfs",
            `Options=pagesize=${i.pageSize}`,
            "",
            "[Install]",
            "WantedBy=sysinit.target",
            "",
        ].join("\n")
    );
}

/** systemd's enablement link of a unit wanted by sysinit.target (what `systemctl enable` makes). */
const enabledLink = (unit: string) => `/etc/systemd/system/sysinit.target.wants/${unit}`;

/**
 * The files that keep a pool at boot, as kvmtune writes them: persistScript writes this list and
 * refresh compares the host with it (host/drift.ts). An enablement link is read through to its
 * unit: missing means the unit is not enabled. A pool that does not persist leaves no boot unit or
 * mount unit behind (one it finds is removed when kvmtune wrote it). A 1G pool wants the legacy
 * GRUB fragment gone: KernelCmdline holds its arguments now.
 */
export function persistedFiles(owner: string, i: HugepagePoolInputs): PersistedFile[] {
    const files: PersistedFile[] = [];
    const boot = i.persist && i.pageSize === "2M" ? bootUnit(owner, i) : null;
    files.push({ path: bootUnitPath(i.pageSize), want: boot, reload: "systemd" });
    if (boot !== null) files.push({ path: enabledLink(bootUnitName(i.pageSize)), want: boot, enables: bootUnitName(i.pageSize) });
    if (i.pageSize === "1G") files.push({ path: legacyGrubFragmentPath, want: null, reload: "bootloader" });
    if (i.mount) files.push(...mountUnitFiles(i.mount, i.persist ? mountUnit(owner, i) : null));
    return files;
}

function mountUnitFiles(mount: string, unit: string | null): PersistedFile[] {
    const name = mountUnitName(mount);
    const files: PersistedFile[] = [{ path: `/etc/systemd/system/${name}`, want: unit, reload: "systemd" }];
    if (unit !== null) files.push({ path: enabledLink(name), want: unit, enables: name });
    return files;
}

/**
 * Writes the persistence files for the inputs, or removes them when persist is off; only what
 * differs on the host changes, and systemd and GRUB re-read their files once (host/persist.ts). A
 * persist turned off leaves the mount mounted for now; it no longer comes back at boot.
 */
export function persistScript(owner: string, i: HugepagePoolInputs): string {
    return persistFilesScript(persistedFiles(owner, i));
}

/** Removes every persistence file of the inputs (delete, or a mount moved elsewhere). */
export function unpersistScript(i: HugepagePoolInputs): string {
    const files: PersistedFile[] = [{ path: bootUnitPath(i.pageSize), want: null, reload: "systemd" }];
    if (i.pageSize === "1G") files.push({ path: legacyGrubFragmentPath, want: null, reload: "bootloader" });
    // The owner is not needed to remove: a mount unit is removed when any kvmtune resource wrote it.
    if (i.mount) files.push({ path: `/etc/systemd/system/${mountUnitName(i.mount)}`, want: null, reload: "systemd" });
    return persistFilesScript(files);
}
