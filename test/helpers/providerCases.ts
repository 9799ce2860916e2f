/**
 * Every provider, with inputs its check() accepts: the table the bad-input, shell-injection and
 * serialization tests walk. A new provider adds a row here and is tested like the others.
 */
import { goodConnection } from "./fixtures";

export interface ProviderCase {
    /** Its module: resources/providers/<module>.ts, loaded as kvmtune/providers/<module>. */
    module: string;
    /** Inputs check() accepts (the connection is added); together they set every optional field. */
    valid: Array<Record<string, unknown>>;
    /**
     * String fields that may hold any printable text (dotted paths, `*` for any key or index), and
     * why that is safe. Every other string a check accepts must be a plain shell word, inert as it is.
     */
    freeText: Record<string, string>;
    /** Fields that also take values of another type (a CPU set as a number, a list or a text). */
    alsoTakes?: Record<string, Array<"number" | "string" | "array">>;
}

/** Every resource class passes its owner label through check; it is free text by design. */
const OWNER_AND_CONNECTION: Record<string, string> = {
    owner: "the label in file headers and claims: one printable line, base64 in files, quoted in the claim script",
    "connection.privateKey": "handed to the SSH client, never to a shell or a message",
    "connection.hostKey": "parsed into a fingerprint and compared; never sent anywhere",
    "connection.user": "the SSH login name (may end in $); in messages, never in a command",
};

const CPU_SET: Array<"number" | "string" | "array"> = ["number", "string", "array"];

export const PROVIDER_CASES: Record<string, ProviderCase> = {
    hostFacts: {
        module: "hostFacts",
        valid: [{}],
        freeText: OWNER_AND_CONNECTION,
    },
    hugepagePool: {
        module: "hugepagePool",
        valid: [
            { pageSize: "2M", nodes: { "0": 8, "1": 16 }, mount: "/dev/hugepages", persist: true, allowPartial: false, owner: "HugepagePool p (kvmtune/test)" },
            { pageSize: "1G", total: 2, persist: false },
        ],
        freeText: OWNER_AND_CONNECTION,
    },
    kernelCmdline: {
        module: "kernelCmdline",
        valid: [
            { iommu: "pt", isolatedCpus: "2-3", hugepages1G: { "1": 1 }, extra: ["transparent_hugepage=never", "mitigations=auto,nosmt"], owner: "KernelCmdline k (kvmtune/test)" },
            { iommu: "off", hugepages1G: 2 },
        ],
        freeText: OWNER_AND_CONNECTION,
        // A total or pages per node.
        alsoTakes: { hugepages1G: ["number"] },
    },
    hostReboot: {
        module: "hostReboot",
        valid: [
            // required false first: the state-only update test changes the connection of valid[0],
            // which must not be a reboot.
            { policy: "whenRequired", guests: "shutdown", guestShutdownTimeoutSeconds: 60, timeoutSeconds: 900, expect: ["intel_iommu=on", "iommu=pt"], expectGone: ["isolcpus=2-3"], required: false },
            { policy: "never", required: true },
        ],
        freeText: {
            ...OWNER_AND_CONNECTION,
            rebootReason: "check's own words for the preview, from the checked arguments; never sent to a host",
        },
    },
    blockElevator: {
        module: "blockElevator",
        valid: [
            { device: "vdb", scheduler: "mq-deadline", tunables: { read_expire: 100, fifo_batch: 8 }, nrRequests: 64, readAheadKb: 256, persist: true, owner: "BlockElevator db (kvmtune/test)" },
            { device: "/dev/disk/by-id/nvme-QEMU_NVMe_Ctrl_lab1-nvme", scheduler: "bfq", tunables: { slice_idle: 0 }, persist: false },
        ],
        freeText: OWNER_AND_CONNECTION,
    },
    numaPinnedGuest: {
        module: "numaPinnedGuest",
        valid: [
            {
                name: "g1",
                vcpus: 2,
                memoryMiB: 64,
                numaNode: 1,
                memoryMode: "strict",
                cpuPins: [[2], [3]],
                emulatorPin: [2, 3],
                iothreads: 1,
                iothreadPins: [[3]],
                hugepages: "2M",
                cpuMode: "host-passthrough",
                disks: [{ path: "/var/lib/libvirt/images/g1.img", target: "vda", bus: "virtio", format: "raw", cache: "none", io: "native", iothread: 1 }],
                interfaces: [
                    { network: "kvmtune-net", mac: "52:54:00:12:34:56", queues: 2, rxQueueSize: 1024, txQueueSize: 256 },
                    { hostdevVf: { pf: "enp1s0", vf: 1 }, mac: "52:54:00:12:34:57", vlan: 100 },
                ],
                autostart: true,
                running: true,
                restartPolicy: "never",
                shutdownTimeoutSeconds: 30,
                owner: "NumaPinnedGuest g1 (kvmtune/test)",
            },
            {
                name: "g2",
                vcpus: 1,
                memoryMiB: 32,
                nodeset: "0-1",
                cpuPins: "auto",
                disks: [{ pool: "default", volume: "g2.qcow2", target: "sda", bus: "scsi", format: "qcow2", cache: "writeback", io: "threads" }],
                interfaces: [{ hostdevVf: { pciAddress: "0000:20:10.1" } }],
                adopt: "0f8fad5b-d9cb-469f-a165-70867728950e",
            },
        ],
        freeText: OWNER_AND_CONNECTION,
        alsoTakes: { emulatorPin: CPU_SET, nodeset: CPU_SET, "cpuPins.*": CPU_SET, "iothreadPins.*": CPU_SET, cpuPins: ["string"] },
    },
    sriovNic: {
        module: "sriovNic",
        valid: [
            {
                pf: "enp65s0",
                numVfs: 4,
                vfs: [{ vf: 0, mac: "52:54:00:aa:bb:01", vlan: 100, qos: 2, spoofchk: true, trust: true, linkState: "auto", maxTxRateMbps: 100 }],
                persist: true,
                libvirtNetwork: "sriov-pool",
                owner: "SriovNic n (kvmtune/test)",
            },
            { pf: "0000:41:00.0", numVfs: 0, persist: false },
        ],
        freeText: OWNER_AND_CONNECTION,
    },
    vhostNetwork: {
        module: "vhostNetwork",
        valid: [
            { name: "vhnet0", bridge: "kvbr0", uplink: "kvdummy0", queues: 2, rxQueueSize: 1024, txQueueSize: 256, persist: true, owner: "VhostNetwork n (kvmtune/test)" },
            { name: "vhnet1", bridge: "br0", existingBridge: true, persist: false, adopt: true },
        ],
        freeText: OWNER_AND_CONNECTION,
    },
};

/** A case's inputs as check() receives them from the engine. */
export function withConnection(inputs: Record<string, unknown>, overrides: Record<string, unknown> = {}): Record<string, unknown> {
    return { connection: goodConnection(overrides), ...inputs };
}

export type Path = Array<string | number>;

/** Every path below the root of an input: object fields, record keys, list elements. */
export function fieldsOf(value: unknown, at: Path = []): Array<{ path: Path; value: unknown }> {
    if (value === null || typeof value !== "object") return [];
    const entries: Array<[string | number, unknown]> = Array.isArray(value) ? value.map((v, n) => [n, v]) : Object.entries(value);
    return entries.flatMap(([k, v]) => [{ path: [...at, k], value: v }, ...fieldsOf(v, [...at, k])]);
}

/** The objects (not lists) in an input, by path, the root included. */
export function objectsOf(value: unknown, at: Path = []): Path[] {
    if (value === null || typeof value !== "object") return [];
    const own = Array.isArray(value) ? [] : [at];
    const entries: Array<[string | number, unknown]> = Array.isArray(value) ? value.map((v, n) => [n, v]) : Object.entries(value);
    return [...own, ...entries.flatMap(([k, v]) => objectsOf(v, [...at, k]))];
}

/** A copy of an input with the value at `at` replaced (or a key added). */
export function setAt(root: Record<string, unknown>, at: Path, v: unknown): Record<string, unknown> {
    const copy = structuredClone(root);
    let node: Record<string | number, unknown> = copy;
    at.slice(0, -1).forEach((k) => (node = node[k] as Record<string | number, unknown>));
    node[at[at.length - 1]] = v;
    return copy;
}
