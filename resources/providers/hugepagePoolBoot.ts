/**
 * HugepagePool's paths, its persistence at boot, and what a boot delivered.
 *
 * 2 MiB pools are set at boot by a oneshot systemd unit ordered before libvirt; 1 GiB pools go on
 * the kernel command line (a GRUB fragment), since the kernel finds 1 GiB of contiguous memory
 * reliably only before memory fragments. A hugetlbfs mount is persisted as a systemd mount unit.
 */
import type { PersistedFile } from "../host/drift";
import { pageSizeKb } from "../host/facts";
import { managedHeader } from "../host/files";
import { persistFilesScript } from "../host/persist";
import type { HugepagePoolInputs } from "./hugepagePool";

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
export const grubFragmentPath = "/etc/default/grub.d/kvmtune-hugepages.cfg";

/** systemd's name for a mount unit: `/dev/hugepages` -> `dev-hugepages.mount`. */
export function mountUnitName(path: string): string {
    const escaped = path
        .replace(/^\/+|\/+$/g, "")
        .split("/")
        .map((part) => part.replace(/[^A-Za-z0-9:_.]|^\./g, (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, "0")}`))
        .join("-");
    return `${escaped}.mount`;
}

/** The kernel command line fragment for 1G pools. */
export function bootArgs(i: Pick<HugepagePoolInputs, "pageSize" | "nodes" | "total">): string {
    const count = i.nodes
        ? Object.entries(i.nodes)
              .sort(([a], [b]) => Number(a) - Number(b))
              .map(([n, c]) => `${n}:${c}`)
              .join(",")
        : String(i.total);
    return `hugepagesz=${i.pageSize} hugepages=${count}`;
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

/** A 1G pool persisted on the command line that the running kernel did not boot with. */
export function rebootRequired(i: HugepagePoolInputs, cmdline: string): boolean {
    return i.pageSize === "1G" && i.persist && !bootedWith(i, cmdline);
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
        const route = !oneGig ? "" : i.persist ? ` ${args} is on the kernel command line: reboot the host to get the rest.` : ` 1G pages are found reliably only at boot: with persist: true kvmtune puts ${args} on the kernel command line.`;
        return { warning: `${what}; allowPartial accepts what the kernel gave.${route}` };
    }
    const route = oneGig
        ? ` 1G pages are found reliably only at boot: with allowPartial: true the pool takes what the kernel gives now and, with persist: true, ${args} goes on the kernel command line; then reboot the host to get them all.`
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
            "Before=sysinit.target libvirtd.service virtqemud.service libvirt-guests.service",
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
            "Before=sysinit.target libvirtd.service virtqemud.service",
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

function grubFragment(owner: string, i: HugepagePoolInputs): string {
    return managedHeader(owner) + `GRUB_CMDLINE_LINUX="$GRUB_CMDLINE_LINUX ${bootArgs(i)}"\n`;
}

/**
 * The files that keep a pool at boot, as kvmtune writes them: persistScript writes this list and
 * refresh compares the host with it (host/drift.ts). An enablement link is read through to its
 * unit: missing means the unit is not enabled. A pool that does not persist leaves no boot unit,
 * GRUB fragment or mount unit behind (one it finds is removed when kvmtune wrote it).
 */
export function persistedFiles(owner: string, i: HugepagePoolInputs): PersistedFile[] {
    const files: PersistedFile[] = [];
    const boot = i.persist && i.pageSize === "2M" ? bootUnit(owner, i) : null;
    files.push({ path: bootUnitPath(i.pageSize), want: boot, reload: "systemd" });
    if (boot !== null) files.push({ path: enabledLink(bootUnitName(i.pageSize)), want: boot, enables: bootUnitName(i.pageSize) });
    if (i.pageSize === "1G") files.push({ path: grubFragmentPath, want: i.persist ? grubFragment(owner, i) : null, reload: "bootloader" });
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
    if (i.pageSize === "1G") files.push({ path: grubFragmentPath, want: null, reload: "bootloader" });
    // The owner is not needed to remove: a mount unit is removed when any kvmtune resource wrote it.
    if (i.mount) files.push({ path: `/etc/systemd/system/${mountUnitName(i.mount)}`, want: null, reload: "systemd" });
    return persistFilesScript(files);
}
