/**
 * SriovNic's inputs: the zod schema (the only source of the input types), the field policy, and
 * every VF as the inputs want it (listed settings, the kernel's defaults for the rest).
 */
import { z } from "zod";
import { connectionSchema } from "../host/connection";
import type { FieldPolicy } from "../policy";
import { IFNAME, libvirtName, macAddress, PCI_ADDRESS } from "../patterns";

// Names and addresses are judged as in every other resource: ../patterns.
export const PCI = PCI_ADDRESS;
/** VFs per PF: the largest NICs offer 256. */
export const MAX_VFS = 256;
export const ZERO_MAC = "00:00:00:00:00:00";

export const LINK_STATES = ["auto", "enable", "disable"] as const;

const vfSchema = z
    .object({
        /** The VF number, 0 to numVfs - 1. */
        vf: z.number().int().min(0).max(MAX_VFS - 1),
        /** The VF's MAC, set from the PF (the guest cannot change it unless trusted). Unset: the VF picks its own. */
        mac: macAddress()
            .refine((m) => m !== ZERO_MAC, "must not be all zeros (leave mac out to let the VF choose)")
            .refine((m) => (parseInt(m.slice(0, 2), 16) & 1) === 0, "must be a unicast address (the first octet's lowest bit clear)")
            .optional(),
        /** 802.1Q VLAN the PF tags the VF's traffic with; 0: none. */
        vlan: z.number().int().min(0).max(4095).default(0),
        /** 802.1p priority for that VLAN (needs a VLAN). */
        qos: z.number().int().min(0).max(7).default(0),
        /** Drop frames the VF sends from a MAC that is not its own (default true, the kernel's default). */
        spoofchk: z.boolean().default(true),
        /** Let the VF change its MAC and enter promiscuous mode (default false). */
        trust: z.boolean().default(false),
        /** `auto` follows the PF's link; `enable`/`disable` force it (not every driver can). */
        linkState: z.enum(LINK_STATES).default("auto"),
        /** Transmit limit in Mbit/s; 0: none. Needs the PF's link up on some drivers (igb). */
        maxTxRateMbps: z.number().int().min(0).max(1_000_000).default(0),
    })
    .strict()
    .superRefine((v, ctx) => {
        if (v.qos > 0 && v.vlan === 0) ctx.addIssue({ code: "custom", path: ["qos"], message: "a priority needs a VLAN: set vlan too" });
    });

export const sriovNicSchema = z
    .object({
        connection: connectionSchema,
        /** The PF: its interface name (`enp65s0`) or PCI address (`0000:41:00.0`). */
        pf: z
            .string()
            .refine((p) => IFNAME.test(p) || PCI.test(p), { message: "must be a network interface name (at most 15 of A-Z a-z 0-9 _ . -) or a PCI address such as 0000:41:00.0" })
            .transform((p) => (PCI.test(p) ? p.toLowerCase() : p)),
        /** How many VFs; 0 removes them all. At most the PF's `sriov_totalvfs`. */
        numVfs: z.number().int().min(0).max(MAX_VFS),
        /** Settings per VF; VFs not listed get the kernel's defaults. */
        vfs: z.array(vfSchema).max(MAX_VFS).default([]),
        /** Put count and settings back at boot, before libvirt (default true). */
        persist: z.boolean().default(true),
        /** Define, start and autostart a libvirt VF pool network of this name on the PF. */
        libvirtNetwork: libvirtName("a libvirt network").optional(),
    })
    .strict()
    .superRefine((i, ctx) => {
        const seenVf = new Map<number, number>();
        const seenMac = new Map<string, number>();
        i.vfs.forEach((v, n) => {
            if (v.vf >= i.numVfs) {
                ctx.addIssue({ code: "custom", path: ["vfs", n, "vf"], message: i.numVfs === 0 ? "numVfs is 0: there are no VFs to set" : `numVfs is ${i.numVfs}: VFs are 0 to ${i.numVfs - 1}` });
            }
            if (seenVf.has(v.vf)) ctx.addIssue({ code: "custom", path: ["vfs", n, "vf"], message: `VF ${v.vf} is already set by vfs.${seenVf.get(v.vf)}` });
            seenVf.set(v.vf, n);
            if (v.mac !== undefined) {
                if (seenMac.has(v.mac)) ctx.addIssue({ code: "custom", path: ["vfs", n, "mac"], message: `${v.mac} is already the MAC of vfs.${seenMac.get(v.mac)}` });
                seenMac.set(v.mac, n);
            }
        });
        if (i.libvirtNetwork !== undefined && i.numVfs === 0) {
            ctx.addIssue({ code: "custom", path: ["libvirtNetwork"], message: "a VF pool network needs VFs: libvirt does not start it on a PF with numVfs 0" });
        }
    });

export type SriovNicInputs = z.output<typeof sriovNicSchema>;
export type VfSettings = SriovNicInputs["vfs"][number];

export const POLICY: FieldPolicy<SriovNicInputs> = {
    connection: "state",
    pf: "replace",
    numVfs: "live",
    vfs: "live",
    persist: "live",
    libvirtNetwork: "live",
};

/** What a VF has when nothing set it: the kernel's defaults (no MAC, no VLAN, spoof checking on). */
export function defaultVf(vf: number): VfSettings {
    return { vf, vlan: 0, qos: 0, spoofchk: true, trust: false, linkState: "auto", maxTxRateMbps: 0 };
}

/** Every VF of a PF with `numVfs` VFs as the inputs want it: listed settings, defaults for the rest. */
export function wantedVfs(i: Pick<SriovNicInputs, "numVfs" | "vfs">, guestVfs: readonly number[] = []): VfSettings[] {
    // An undeclared VF a guest holds keeps the settings its guest's interface gave it.
    return Array.from({ length: i.numVfs }, (_x, vf) => i.vfs.find((v) => v.vf === vf) ?? (guestVfs.includes(vf) ? null : defaultVf(vf))).filter(
        (v): v is VfSettings => v !== null,
    );
}
