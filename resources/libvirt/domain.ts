/**
 * Domain XML: built from a guest spec, and parsed back from `virsh dumpxml` into the same spec
 * shape, keeping only what kvmtune owns (vcpu, memory, cputune, numatune, memoryBacking, cpu mode,
 * disks and interfaces). libvirt's additions (PCI addresses, aliases, generated MACs, controllers,
 * the emulator path, seclabels) are dropped, so they never show up as changes.
 */
import { formatCpuList } from "../host/sysfs";
import { child, childElements, el, find, localName, namespaceOf, parse, serialize, textOf, XmlElement } from "./xml";

/** The namespace of kvmtune's ownership mark in `<metadata>`. */
export const OWNER_NS = "urn:kvmtune:owner:1";

export type MemoryMode = "strict" | "preferred" | "interleave" | "restrictive";
export type CacheMode = "none" | "writethrough" | "writeback" | "directsync" | "unsafe";
export type IoMode = "native" | "threads" | "io_uring";
export type CpuMode = "host-passthrough" | "host-model" | "default";

export interface DiskSpec {
    /** An absolute path (file or block device) or a storage volume. */
    source: { path: string } | { pool: string; volume: string };
    target: string;
    bus: "virtio" | "scsi" | "sata";
    format: "raw" | "qcow2";
    cache: CacheMode;
    io: IoMode;
    iothread?: number;
}

export interface NetworkInterfaceSpec {
    network: string;
    mac?: string;
    queues?: number;
    rxQueueSize?: number;
    txQueueSize?: number;
}

export interface HostdevInterfaceSpec {
    /** The VF's PCI address, `0000:03:10.2` (resolved from a PF and VF number before building). */
    pciAddress: string;
    mac?: string;
    vlan?: number;
}

export type InterfaceSpec = NetworkInterfaceSpec | HostdevInterfaceSpec;

/** What kvmtune owns of a domain, in one comparable shape. CPU sets are sorted lists. */
export interface GuestSpec {
    name: string;
    vcpus: number;
    memoryMiB: number;
    cpuMode: CpuMode;
    /** Host NUMA nodes the memory is bound to, and how (`<numatune>`); null: no numatune. */
    numa: { nodeset: number[]; mode: MemoryMode } | null;
    /** One CPU set per vCPU (`<vcpupin>`); an empty set: that vCPU is not pinned. */
    vcpuPins: number[][];
    emulatorPin: number[] | null;
    iothreads: number;
    /** One CPU set per I/O thread, by id - 1; an empty set: not pinned. */
    iothreadPins: number[][];
    /** `2M`, `1G`, `default` (a `<hugepages/>` without a size) or null for normal memory. */
    hugepages: string | null;
    disks: DiskSpec[];
    interfaces: InterfaceSpec[];
}

export function isHostdev(i: InterfaceSpec): i is HostdevInterfaceSpec {
    return "pciAddress" in i;
}

/** The `<metadata>` carrying kvmtune's ownership mark (domains and networks alike), and any other marks. */
export function ownerMetadata(owner: string, ...more: Array<XmlElement | null>): XmlElement {
    return el("metadata", {}, el("kvmtune:owner", { "xmlns:kvmtune": OWNER_NS }, owner), ...more);
}

/** The text of kvmtune's ownership mark in a document's `<metadata>`, or null when it has none. */
export function ownerOf(doc: XmlElement): string | null {
    let owner: string | null = null;
    const metadata = child(doc, "metadata");
    for (const m of childElements(metadata)) {
        if (localName(m.name) === "owner" && namespaceOf(m, [doc, metadata!]) === OWNER_NS) owner = textOf(m) ?? "";
    }
    return owner;
}

const PAGE_KIB: Record<string, number> = { "2M": 2048, "1G": 1048576 };

function pciAddressElement(address: string): XmlElement {
    const m = /^([0-9a-f]{4}):([0-9a-f]{2}):([0-9a-f]{2})\.([0-7])$/i.exec(address);
    if (!m) throw new Error(`not a PCI address: ${address}`);
    return el("address", { type: "pci", domain: `0x${m[1]}`, bus: `0x${m[2]}`, slot: `0x${m[3]}`, function: `0x${m[4]}` });
}

/** The domain XML for a spec, with the ownership mark. `type='kvm'`: with `qemu` libvirt drops vhost. */
export function buildDomainXml(spec: GuestSpec, owner: string, uuid?: string): string {
    const pins = spec.vcpuPins.map((cpus, vcpu) => (cpus.length ? el("vcpupin", { vcpu, cpuset: formatCpuList(cpus) }) : null));
    const ioPins = spec.iothreadPins.map((cpus, n) => (cpus.length && n < spec.iothreads ? el("iothreadpin", { iothread: n + 1, cpuset: formatCpuList(cpus) }) : null));
    const cputuneChildren = [
        ...pins.filter((p): p is XmlElement => p !== null),
        spec.emulatorPin && spec.emulatorPin.length ? el("emulatorpin", { cpuset: formatCpuList(spec.emulatorPin) }) : null,
        ...ioPins.filter((p): p is XmlElement => p !== null),
    ].filter((p): p is XmlElement => p !== null);
    const disks = spec.disks.map((d) => {
        const src = "path" in d.source ? d.source : null;
        const type = src ? (src.path.startsWith("/dev/") ? "block" : "file") : "volume";
        return el(
            "disk",
            { type, device: "disk" },
            el("driver", { name: "qemu", type: d.format, cache: d.cache, io: d.io, iothread: d.iothread }),
            src
                ? el("source", type === "block" ? { dev: src.path } : { file: src.path })
                : el("source", { pool: (d.source as { pool: string }).pool, volume: (d.source as { volume: string }).volume }),
            el("target", { dev: d.target, bus: d.bus }),
        );
    });
    const interfaces = spec.interfaces.map((i) =>
        isHostdev(i)
            ? el(
                  "interface",
                  { type: "hostdev", managed: "yes" },
                  i.mac ? el("mac", { address: i.mac }) : null,
                  el("source", {}, pciAddressElement(i.pciAddress)),
                  i.vlan !== undefined ? el("vlan", {}, el("tag", { id: i.vlan })) : null,
              )
            : el(
                  "interface",
                  { type: "network" },
                  i.mac ? el("mac", { address: i.mac }) : null,
                  el("source", { network: i.network }),
                  el("model", { type: "virtio" }),
                  el("driver", { name: "vhost", queues: i.queues, rx_queue_size: i.rxQueueSize, tx_queue_size: i.txQueueSize }),
              ),
    );
    const domain = el(
        "domain",
        { type: "kvm" },
        el("name", {}, spec.name),
        uuid ? el("uuid", {}, uuid) : null,
        ownerMetadata(owner),
        el("memory", { unit: "KiB" }, String(spec.memoryMiB * 1024)),
        el("currentMemory", { unit: "KiB" }, String(spec.memoryMiB * 1024)),
        spec.hugepages
            ? el(
                  "memoryBacking",
                  {},
                  el("hugepages", {}, spec.hugepages === "default" ? null : el("page", { size: PAGE_KIB[spec.hugepages], unit: "KiB" })),
              )
            : null,
        el("vcpu", { placement: "static" }, String(spec.vcpus)),
        spec.iothreads > 0 ? el("iothreads", {}, String(spec.iothreads)) : null,
        cputuneChildren.length ? el("cputune", {}, cputuneChildren) : null,
        spec.numa ? el("numatune", {}, el("memory", { mode: spec.numa.mode, nodeset: formatCpuList(spec.numa.nodeset) })) : null,
        el("os", {}, el("type", {}, "hvm"), el("boot", { dev: "hd" })),
        el("features", {}, el("acpi"), el("apic")),
        spec.cpuMode === "default" ? null : el("cpu", { mode: spec.cpuMode }),
        el("on_poweroff", {}, "destroy"),
        el("on_reboot", {}, "restart"),
        el("on_crash", {}, "destroy"),
        el("devices", {}, disks, interfaces, el("memballoon", { model: "none" })),
    );
    return serialize(domain) + "\n";
}

/** Parses a libvirt cpuset (`0-3,^2,8`) into sorted CPU numbers. */
export function parseCpuset(text: string): number[] {
    const take = new Set<number>();
    const drop = new Set<number>();
    for (const raw of text.split(",")) {
        const part = raw.trim();
        if (!part) continue;
        const neg = part.startsWith("^");
        const m = /^(\d+)(?:-(\d+))?$/.exec(neg ? part.slice(1) : part);
        if (!m) throw new Error(`not a cpuset: ${JSON.stringify(text)}`);
        for (let c = Number(m[1]); c <= Number(m[2] ?? m[1]); c++) (neg ? drop : take).add(c);
    }
    return [...take].filter((c) => !drop.has(c)).sort((a, b) => a - b);
}

const UNIT_KIB: Record<string, number> = {
    b: 1 / 1024, bytes: 1 / 1024, k: 1, kib: 1, kb: 1000 / 1024, m: 1024, mib: 1024, mb: 1e6 / 1024,
    g: 1024 ** 2, gib: 1024 ** 2, gb: 1e9 / 1024, t: 1024 ** 3, tib: 1024 ** 3, tb: 1e12 / 1024,
};

/** A `<memory unit='KiB'>65536</memory>`-style value in KiB. */
export function kibOf(e: XmlElement | undefined, defaultUnit = "KiB"): number | undefined {
    const t = textOf(e);
    if (t === undefined || t === "") return undefined;
    const unit = (e!.attrs.unit ?? defaultUnit).toLowerCase();
    const factor = UNIT_KIB[unit];
    if (factor === undefined) throw new Error(`unknown memory unit ${e!.attrs.unit}`);
    return Number(t) * factor;
}

function pageSizeOf(page: XmlElement | undefined): string {
    if (!page) return "default";
    const kib = Number(page.attrs.size) * (UNIT_KIB[(page.attrs.unit ?? "KiB").toLowerCase()] ?? 1);
    if (kib % (1024 * 1024) === 0) return `${kib / (1024 * 1024)}G`;
    if (kib % 1024 === 0) return `${kib / 1024}M`;
    return `${kib}K`;
}

/** `<address type='pci' domain='0x0000' bus='0x03' slot='0x10' function='0x2'/>` -> `0000:03:10.2`. */
export function pciAddressOf(a: XmlElement | undefined): string | undefined {
    if (!a || a.attrs.type !== "pci") return undefined;
    const hex = (v: string | undefined, width: number) => Number.parseInt(v ?? "0", 16).toString(16).padStart(width, "0");
    return `${hex(a.attrs.domain, 4)}:${hex(a.attrs.bus, 2)}:${hex(a.attrs.slot, 2)}.${Number.parseInt(a.attrs.function ?? "0", 16)}`;
}

/** What a parsed domain carries beside the spec: identity and the ownership mark. */
export interface ParsedDomain {
    spec: GuestSpec;
    uuid: string;
    /** The text of kvmtune's `<metadata>` mark, or null when the domain carries none. */
    owner: string | null;
    /** An NVRAM file (UEFI variables) that undefine must remove too. */
    nvram: boolean;
    /** Disks that are not ours to compare (cdroms, floppies, LUNs): kept out of the spec. */
    otherDevices: number;
}

/** Parses `virsh dumpxml` output into the owned spec. */
export function parseDomainXml(xml: string): ParsedDomain {
    const d = parse(xml);
    if (d.name !== "domain") throw new Error(`not a domain document: <${d.name}>`);
    const vcpus = Number(textOf(child(d, "vcpu")) ?? "1");
    const memKib = kibOf(child(d, "memory")) ?? 0;
    const cputune = child(d, "cputune");
    const vcpuPins: number[][] = Array.from({ length: vcpus }, () => []);
    for (const p of childElements(cputune, "vcpupin")) {
        const n = Number(p.attrs.vcpu);
        if (n >= 0 && n < vcpus) vcpuPins[n] = parseCpuset(p.attrs.cpuset ?? "");
    }
    const emu = child(cputune, "emulatorpin");
    const iothreads = Number(textOf(child(d, "iothreads")) ?? "0");
    const iothreadPins: number[][] = Array.from({ length: iothreads }, () => []);
    for (const p of childElements(cputune, "iothreadpin")) {
        const n = Number(p.attrs.iothread) - 1;
        if (n >= 0 && n < iothreads) iothreadPins[n] = parseCpuset(p.attrs.cpuset ?? "");
    }
    const numaMem = find(d, "numatune", "memory");
    const hp = find(d, "memoryBacking", "hugepages");
    const cpu = child(d, "cpu");
    const devices = child(d, "devices");
    let otherDevices = 0;
    const disks: DiskSpec[] = [];
    for (const disk of childElements(devices, "disk")) {
        if ((disk.attrs.device ?? "disk") !== "disk") {
            otherDevices++;
            continue;
        }
        const drv = child(disk, "driver");
        const src = child(disk, "source");
        const tgt = child(disk, "target");
        const source =
            disk.attrs.type === "volume"
                ? { pool: src?.attrs.pool ?? "", volume: src?.attrs.volume ?? "" }
                : { path: src?.attrs.file ?? src?.attrs.dev ?? "" };
        const spec: DiskSpec = {
            source,
            target: tgt?.attrs.dev ?? "",
            bus: (tgt?.attrs.bus ?? "virtio") as DiskSpec["bus"],
            format: (drv?.attrs.type ?? "raw") as DiskSpec["format"],
            // QEMU's defaults when the XML says nothing: writeback cache, threads AIO.
            cache: (drv?.attrs.cache ?? "writeback") as CacheMode,
            io: (drv?.attrs.io ?? "threads") as IoMode,
        };
        if (drv?.attrs.iothread !== undefined) spec.iothread = Number(drv.attrs.iothread);
        disks.push(spec);
    }
    const interfaces: InterfaceSpec[] = [];
    for (const i of childElements(devices, "interface")) {
        const mac = child(i, "mac")?.attrs.address?.toLowerCase();
        if (i.attrs.type === "network") {
            const drv = child(i, "driver");
            const n: NetworkInterfaceSpec = { network: child(i, "source")?.attrs.network ?? "" };
            if (mac) n.mac = mac;
            if (drv?.attrs.queues !== undefined) n.queues = Number(drv.attrs.queues);
            if (drv?.attrs.rx_queue_size !== undefined) n.rxQueueSize = Number(drv.attrs.rx_queue_size);
            if (drv?.attrs.tx_queue_size !== undefined) n.txQueueSize = Number(drv.attrs.tx_queue_size);
            interfaces.push(n);
        } else if (i.attrs.type === "hostdev") {
            const h: HostdevInterfaceSpec = { pciAddress: pciAddressOf(find(i, "source", "address")) ?? "" };
            if (mac) h.mac = mac;
            const tag = find(i, "vlan", "tag");
            if (tag) h.vlan = Number(tag.attrs.id);
            interfaces.push(h);
        } else {
            otherDevices++;
        }
    }
    const owner = ownerOf(d);
    const spec: GuestSpec = {
        name: textOf(child(d, "name")) ?? "",
        vcpus,
        memoryMiB: Math.round(memKib / 1024),
        cpuMode: (cpu?.attrs.mode ?? (cpu ? "custom" : "default")) as CpuMode,
        numa: numaMem ? { nodeset: parseCpuset(numaMem.attrs.nodeset ?? ""), mode: (numaMem.attrs.mode ?? "strict") as MemoryMode } : null,
        vcpuPins,
        emulatorPin: emu ? parseCpuset(emu.attrs.cpuset ?? "") : null,
        iothreads,
        iothreadPins,
        hugepages: hp ? pageSizeOf(child(hp, "page")) : null,
        disks,
        interfaces,
    };
    return { spec, uuid: textOf(child(d, "uuid")) ?? "", owner, nvram: !!find(d, "os", "nvram"), otherDevices };
}

/** CPUs each vCPU of a domain is pinned to, from its XML (for the "pinned twice" check). */
export function pinnedCpusOf(xml: string): { name: string; uuid: string; cpus: number[] } {
    const p = parseDomainXml(xml);
    return { name: p.spec.name, uuid: p.uuid, cpus: [...new Set(p.spec.vcpuPins.flat())].sort((a, b) => a - b) };
}

/**
 * The spec as it would read back: the same normalization applied to what we ask for, so that a
 * wanted spec and a parsed one compare equal when libvirt did what we asked. Interfaces without a
 * MAC are compared without one (libvirt generates it).
 */
export function projectLive(live: GuestSpec, wanted: GuestSpec): GuestSpec {
    const interfaces = live.interfaces.map((li, n) => {
        const w = wanted.interfaces[n];
        if (w && !w.mac && li.mac) {
            const { mac: _mac, ...rest } = li;
            return rest as InterfaceSpec;
        }
        return li;
    });
    return { ...live, interfaces };
}
