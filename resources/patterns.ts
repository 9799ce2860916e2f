/**
 * The patterns every schema checks names and addresses with, kept once: a PF, a MAC or a libvirt
 * name given to two resources is judged the same way by both. (Each provider had its own copy and
 * they had drifted: NumaPinnedGuest let a PF name hold `:`, SriovNic did not; SriovNic took an
 * upper-case PCI address, NumaPinnedGuest lower-cases first.)
 */
import { z } from "zod";

/**
 * A libvirt domain, network, storage pool or volume name: plain, so it is safe in messages, paths
 * and shell words without further thought.
 */
export const LIBVIRT_NAME = /^[A-Za-z0-9][A-Za-z0-9_.+-]{0,63}$/;

/**
 * A network interface name: what the kernel allows (15 bytes, IFNAMSIZ less the NUL), without `:`
 * (alias syntax) or `/`, since such names also name files (udev rules, systemd units, hooks).
 */
export const IFNAME = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,14}$/;

/** A PCI address in sysfs's spelling (domain:bus:slot.function), upper-case accepted. */
export const PCI_ADDRESS = /^[0-9a-f]{4}:[0-9a-f]{2}:[0-9a-f]{2}\.[0-7]$/i;

/** A MAC address, lower-case (the schemas lower-case it first), as `ip link` and libvirt print it. */
export const MAC = /^[0-9a-f]{2}(?::[0-9a-f]{2}){5}$/;

/** virtio-net ring sizes QEMU accepts for rx_queue_size and tx_queue_size. */
export const RING_SIZES = [256, 512, 1024] as const;
export type RingSize = (typeof RING_SIZES)[number];

/** A libvirt name, `what` naming which kind in the message. */
export const libvirtName = (what: string) => z.string().regex(LIBVIRT_NAME, `must be ${what} name of letters, digits and _.+- (at most 64)`);

/** An interface name, `what` naming which kind in the message ("a network interface", "a bridge"). */
export const interfaceName = (what: string) =>
    z
        .string()
        .max(15, "must be at most 15 characters (the kernel's IFNAMSIZ less the terminating NUL)")
        .regex(/^[A-Za-z0-9][A-Za-z0-9_.-]*$/, `must be ${what} name of letters, digits and _.- starting with a letter or digit`);

/** A PCI address, lower-cased as sysfs names it. */
export const pciAddress = () => z.string().toLowerCase().regex(PCI_ADDRESS, "must be a PCI address such as 0000:03:10.2");

/** A MAC address in any case, lower-cased. */
export const macAddress = () => z.string().toLowerCase().regex(MAC, "must be a MAC address such as 52:54:00:12:34:56");

/** A ring size, saying which ones there are. */
export const ringSize = () => z.literal(RING_SIZES, `must be one of ${RING_SIZES.join(", ")}`);
