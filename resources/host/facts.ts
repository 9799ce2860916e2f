/**
 * Host facts: what a host has, read in one round trip (one script, one SSH channel). Resources
 * check inputs against these before they change anything: a node or page size the host lacks,
 * a PF without SR-IOV, a scheduler a disk does not offer.
 */
import { buildDumpScript, Dump, parseBracketChoice, parseCpuList, parseDump } from "./sysfs";
import { Remote, runScript } from "./remote";
import { isNvmePath } from "./disk";
import { libvirtRunning, parsePlatform, Platform, PLATFORM_COMMANDS, PLATFORM_FILES, PLATFORM_LINKS, serviceStates } from "./platform";

/** Huge page sizes as users write them: `2M`, `1G` (from the kernel's `hugepages-2048kB`). */
export type PageSize = string;

export interface HugepagePool {
    total: number;
    free: number;
    surplus: number;
}

export interface NumaNodeFacts {
    id: number;
    cpus: number[];
    memoryMiB: number;
    /** Pools of this node by page size. */
    hugepages: Record<PageSize, HugepagePool>;
}

export interface BlockDeviceFacts {
    /** Kernel name: `vdb`, `sda`, `nvme0n1`. */
    name: string;
    /** Stable names resolving to it: `/dev/disk/by-id/...`, `/dev/disk/by-path/...`. */
    ids: string[];
    paths: string[];
    scheduler: string | null;
    schedulers: string[];
    rotational: boolean;
    sizeBytes: number;
    nrRequests: number | null;
    readAheadKb: number | null;
    /**
     * The kernel names whose queues carry this disk's scheduler: the disk itself, or, for an NVMe
     * namespace under native multipath (`nvme0n1`, a bio-based head that takes no scheduler), its
     * hidden per-controller path devices (`nvme0c0n1`), where the I/O is actually queued.
     */
    queues: string[];
    /** For NVMe namespaces: the controller serial and namespace id, stable across renumbering. */
    nvme: { serial: string; nsid: number } | null;
}

export interface NicFacts {
    name: string;
    mac: string | null;
    /** PCI address (`0000:01:00.0`) when the NIC is a PCI function. */
    pciAddress: string | null;
    driver: string | null;
    numaNode: number | null;
    sriovTotalVfs: number | null;
    sriovNumVfs: number | null;
    /** The PF's PCI address when this NIC is itself a virtual function. */
    physfn: string | null;
}

export interface HostFactsData {
    hostname: string;
    machineId: string;
    kernel: string;
    cmdline: string;
    cpusOnline: number[];
    /**
     * CPUs the running kernel isolated at boot (`/sys/devices/system/cpu/isolated`: `isolcpus=`,
     * e.g. from KernelCmdline's isolatedCpus). Empty when none are, or the kernel has no such file.
     */
    isolatedCpus: number[];
    /** Sizes the kernel supports, smallest first. */
    hugepageSizes: PageSize[];
    /**
     * The default huge page size (`Hugepagesize` in /proc/meminfo): what a guest's `hugepages:
     * "default"` gets. 2M on most x86 hosts, 1G with `default_hugepagesz=1G`; null when not read.
     */
    defaultHugepageSize: PageSize | null;
    numaNodes: NumaNodeFacts[];
    blockDevices: BlockDeviceFacts[];
    nics: NicFacts[];
    vhostNet: { device: boolean; moduleLoaded: boolean };
    /**
     * `active`: libvirt answers: libvirtd, or a modular daemon (virtqemud, virtnetworkd), or its
     * socket is active (modular daemons exit when idle and start again on the next connection).
     */
    libvirt: { version: string | null; active: boolean };
    /** How the host is run: bootloader, libvirt layout, NetworkManager, tuned, SELinux (host/platform.ts). */
    platform: Platform;
}

const NODE = "/sys/devices/system/node";
const NET = "/sys/class/net";

/** The facts script's commands; read scripts that need one of these facts reuse the command and its parser. */
export const FACT_COMMANDS = {
    hugepageSizes: "ls -1 /sys/kernel/mm/hugepages",
    vhostNet: "test -c /dev/vhost-net && echo device; test -d /sys/module/vhost_net && echo module",
    libvirtVersion: "virsh --version",
    // Unit states for libvirt (either layout), NetworkManager and tuned, in one `systemctl is-active`.
    services: PLATFORM_COMMANDS.services,
};

/** The read script: kept as data so a host's facts always come from one round trip. */
export const FACTS_SCRIPT = buildDumpScript({
    files: [
        "/etc/hostname",
        "/etc/machine-id",
        "/proc/sys/kernel/osrelease",
        "/proc/cmdline",
        "/proc/meminfo",
        "/sys/devices/system/cpu/online",
        "/sys/devices/system/cpu/isolated",
        `${NODE}/node*/cpulist`,
        `${NODE}/node*/meminfo`,
        `${NODE}/node*/hugepages/hugepages-*/nr_hugepages`,
        `${NODE}/node*/hugepages/hugepages-*/free_hugepages`,
        `${NODE}/node*/hugepages/hugepages-*/surplus_hugepages`,
        "/sys/block/*/queue/scheduler",
        "/sys/block/*/queue/rotational",
        "/sys/block/*/queue/nr_requests",
        "/sys/block/*/queue/read_ahead_kb",
        "/sys/block/*/size",
        "/sys/block/nvme*/nsid",
        "/sys/block/nvme*c*n*/device/serial",
        `${NET}/*/address`,
        `${NET}/*/device/numa_node`,
        `${NET}/*/device/sriov_totalvfs`,
        `${NET}/*/device/sriov_numvfs`,
        ...PLATFORM_FILES,
    ],
    links: [
        "/dev/disk/by-id/*",
        "/dev/disk/by-path/*",
        `${NET}/*/device`,
        `${NET}/*/device/driver`,
        `${NET}/*/device/physfn`,
        ...PLATFORM_LINKS,
    ],
    commands: { ...FACT_COMMANDS, ...PLATFORM_COMMANDS },
});

/** `/dev/vhost-net` and the vhost_net module, from a dump that ran FACT_COMMANDS.vhostNet. */
export function vhostNetOf(dump: Dump): HostFactsData["vhostNet"] {
    const out = dump.commands.get("vhostNet")?.stdout ?? "";
    return { device: /^device$/m.test(out), moduleLoaded: /^module$/m.test(out) };
}

/** libvirt answering (either layout, daemon or socket), from a dump that ran FACT_COMMANDS.services. */
export function libvirtActiveOf(dump: Dump): boolean {
    return libvirtRunning(serviceStates(dump));
}

export async function gatherFacts(remote: Remote): Promise<HostFactsData> {
    // Privileged: some sysfs files (sriov_*) are root-only on some kernels.
    return parseFacts(parseDump(await runScript(remote, FACTS_SCRIPT)));
}

/** `2048kB` -> `2M`, `1048576kB` -> `1G`. */
export function pageSizeName(kB: number): PageSize {
    if (kB % (1024 * 1024) === 0) return `${kB / (1024 * 1024)}G`;
    if (kB % 1024 === 0) return `${kB / 1024}M`;
    return `${kB}K`;
}

/** `Hugepagesize:    2048 kB` in /proc/meminfo -> `2M`; null without it (no huge page support). */
export function defaultHugepageSizeOf(meminfo: string): PageSize | null {
    const m = /^Hugepagesize:\s+(\d+) kB$/m.exec(meminfo);
    return m ? pageSizeName(Number(m[1])) : null;
}

/** `2M` -> 2048 (kB), the inverse of pageSizeName. */
export function pageSizeKb(size: PageSize): number {
    const m = /^(\d+)([KMG])$/.exec(size);
    if (!m) throw new Error(`not a page size: ${size}`);
    return Number(m[1]) * { K: 1, M: 1024, G: 1024 * 1024 }[m[2] as "K" | "M" | "G"];
}

function int(text: string | undefined): number | null {
    if (text === undefined) return null;
    const n = Number(text.trim());
    return Number.isFinite(n) && text.trim() !== "" ? n : null;
}

/** Groups file paths matching `prefix<key>suffix` by key. */
function byPattern(files: Map<string, string>, re: RegExp): Array<{ m: RegExpExecArray; value: string }> {
    const out: Array<{ m: RegExpExecArray; value: string }> = [];
    for (const [path, value] of files) {
        const m = re.exec(path);
        if (m) out.push({ m, value });
    }
    return out;
}

export function parseFacts(dump: Dump): HostFactsData {
    const f = dump.files;
    const nodes = new Map<number, NumaNodeFacts>();
    const node = (id: number): NumaNodeFacts => {
        let n = nodes.get(id);
        if (!n) nodes.set(id, (n = { id, cpus: [], memoryMiB: 0, hugepages: {} }));
        return n;
    };
    for (const { m, value } of byPattern(f, /^\/sys\/devices\/system\/node\/node(\d+)\/cpulist$/)) {
        node(Number(m[1])).cpus = parseCpuList(value);
    }
    for (const { m, value } of byPattern(f, /^\/sys\/devices\/system\/node\/node(\d+)\/meminfo$/)) {
        const total = /MemTotal:\s+(\d+) kB/.exec(value);
        node(Number(m[1])).memoryMiB = total ? Math.floor(Number(total[1]) / 1024) : 0;
    }
    const poolRe = /^\/sys\/devices\/system\/node\/node(\d+)\/hugepages\/hugepages-(\d+)kB\/(nr|free|surplus)_hugepages$/;
    for (const { m, value } of byPattern(f, poolRe)) {
        const size = pageSizeName(Number(m[2]));
        const pools = node(Number(m[1])).hugepages;
        const pool = (pools[size] ??= { total: 0, free: 0, surplus: 0 });
        const n = int(value) ?? 0;
        if (m[3] === "nr") pool.total = n;
        else if (m[3] === "free") pool.free = n;
        else pool.surplus = n;
    }

    const sizesOut = dump.commands.get("hugepageSizes")?.stdout ?? "";
    const hugepageSizes = [...sizesOut.matchAll(/hugepages-(\d+)kB/g)]
        .map((m) => Number(m[1]))
        .sort((a, b) => a - b)
        .map(pageSizeName);

    // NVMe multipath: path nvme<S>c<C>n<H> belongs to head nvme<S>n<H> (the kernel's own naming).
    const nvmePaths = new Map<string, string[]>();
    for (const path of f.keys()) {
        const m = /^\/sys\/block\/(nvme(\d+)c\d+n(\d+))\/queue\/scheduler$/.exec(path);
        if (m) nvmePaths.set(`nvme${m[2]}n${m[3]}`, [...(nvmePaths.get(`nvme${m[2]}n${m[3]}`) ?? []), m[1]].sort());
    }
    const blockDevices: BlockDeviceFacts[] = [];
    for (const { m, value: ownScheduler } of byPattern(f, /^\/sys\/block\/([^/]+)\/queue\/scheduler$/)) {
        const name = m[1];
        if (isNvmePath(name)) continue; // hidden path devices: listed under their head
        const queues = nvmePaths.get(name) ?? [name];
        const value = f.get(`/sys/block/${queues[0]}/queue/scheduler`) ?? ownScheduler;
        const serial = f.get(`/sys/block/${queues[0]}/device/serial`)?.trim();
        const nsid = int(f.get(`/sys/block/${name}/nsid`));
        const sizeBytes = (int(f.get(`/sys/block/${name}/size`)) ?? 0) * 512;
        if (sizeBytes === 0) continue; // unbound loop devices and empty drives are not disks yet
        const { active, available } = parseBracketChoice(value);
        const stable = (dir: string) =>
            [...dump.links.entries()]
                .filter(([link, target]) => link.startsWith(dir) && target === `/dev/${name}`)
                .map(([link]) => link)
                .sort();
        blockDevices.push({
            name,
            ids: stable("/dev/disk/by-id/"),
            paths: stable("/dev/disk/by-path/"),
            scheduler: active,
            schedulers: available,
            rotational: f.get(`/sys/block/${name}/queue/rotational`)?.trim() === "1",
            sizeBytes,
            nrRequests: int(f.get(`/sys/block/${queues[0]}/queue/nr_requests`)),
            readAheadKb: int(f.get(`/sys/block/${name}/queue/read_ahead_kb`)),
            queues,
            nvme: serial && nsid !== null ? { serial, nsid } : null,
        });
    }
    blockDevices.sort((a, b) => a.name.localeCompare(b.name));

    const nics: NicFacts[] = [];
    for (const { m, value } of byPattern(f, /^\/sys\/class\/net\/([^/]+)\/address$/)) {
        const name = m[1];
        const device = dump.links.get(`${NET}/${name}/device`);
        if (!device) continue; // lo, bridges, taps: not hardware
        const pci = /\/([0-9a-f]{4}:[0-9a-f]{2}:[0-9a-f]{2}\.[0-7])$/.exec(device);
        const driver = dump.links.get(`${NET}/${name}/device/driver`);
        const physfn = dump.links.get(`${NET}/${name}/device/physfn`);
        const numa = int(f.get(`${NET}/${name}/device/numa_node`));
        nics.push({
            name,
            mac: value.trim() || null,
            pciAddress: pci ? pci[1] : null,
            driver: driver ? driver.slice(driver.lastIndexOf("/") + 1) : null,
            numaNode: numa === null || numa < 0 ? null : numa,
            sriovTotalVfs: int(f.get(`${NET}/${name}/device/sriov_totalvfs`)),
            sriovNumVfs: int(f.get(`${NET}/${name}/device/sriov_numvfs`)),
            physfn: physfn ? physfn.slice(physfn.lastIndexOf("/") + 1) : null,
        });
    }
    nics.sort((a, b) => a.name.localeCompare(b.name));

    const libvirtVersion = dump.commands.get("libvirtVersion");
    const osrelease = f.get("/proc/sys/kernel/osrelease");
    if (osrelease === undefined) {
        throw new Error("host facts: the read script returned no kernel release; is this a Linux host with /proc?");
    }
    return {
        hostname: (f.get("/etc/hostname") ?? "").trim(),
        machineId: (f.get("/etc/machine-id") ?? "").trim(),
        kernel: osrelease.trim(),
        cmdline: (f.get("/proc/cmdline") ?? "").trim(),
        cpusOnline: parseCpuList(f.get("/sys/devices/system/cpu/online") ?? ""),
        // Missing on kernels without the file (and in older recorded dumps): nothing isolated.
        isolatedCpus: parseCpuList(f.get("/sys/devices/system/cpu/isolated") ?? ""),
        hugepageSizes,
        defaultHugepageSize: defaultHugepageSizeOf(f.get("/proc/meminfo") ?? ""),
        numaNodes: [...nodes.values()].sort((a, b) => a.id - b.id),
        blockDevices,
        nics,
        vhostNet: vhostNetOf(dump),
        libvirt: {
            version: libvirtVersion && libvirtVersion.code === 0 ? libvirtVersion.stdout.trim() || null : null,
            active: libvirtActiveOf(dump),
        },
        platform: parsePlatform(dump),
    };
}
