/**
 * A nested guest on a lab host that answers an ACPI shutdown request, as a guest with an OS does:
 * the host's own kernel booted directly with a busybox initramfs (the lab image has busybox-static)
 * whose init waits on the power button's input device and powers off when it is pressed. The lab's
 * other guests boot no OS, so nothing in them answers ACPI; this one lets a test see a guest shut
 * down gracefully for a reboot and started again after it.
 */
import { shellQuote } from "../../resources/host/quote";
import type { LabHost } from "../lab/labHosts";
import { sshOk } from "../lab/labHosts";

const V = "virsh -c qemu:///system";
const DIR = "/var/lib/libvirt/boot/kvmtune-acpi";
/** The guest's serial console, read to know it booted and is waiting on the button. */
export const acpiGuestConsole = (name: string) => `/var/log/libvirt/qemu/${name}-console.log`;

/** The init: mount what the kernel needs, load the button and evdev drivers, wait for a press, power off. */
const INIT = `#!/bin/busybox sh
/bin/busybox --install -s /bin
mount -t proc proc /proc; mount -t sysfs sysfs /sys; mount -t devtmpfs devtmpfs /dev
for m in /lib/modules/*.ko; do insmod "$m" 2>/dev/null; done
dev=
for e in /sys/class/input/event*; do grep -q "Power Button" "$e/device/name" 2>/dev/null && dev=/dev/input/\${e##*/}; done
[ -n "$dev" ] || { echo "kvmtune-acpi: no power button input device"; exec sh; }
echo "kvmtune-acpi: waiting on $dev"
head -c 1 "$dev" >/dev/null
echo "kvmtune-acpi: power button pressed, powering off"
poweroff -f
`;

/**
 * Builds the initramfs on the host (once per kernel) and defines and starts `name` with autostart
 * on, then waits until its init waits on the power button.
 */
export async function startAcpiGuest(h: LabHost, name: string, opts: { autostart: boolean }): Promise<void> {
    const script = [
        "set -e",
        `d=${DIR}; kver=$(uname -r); mkdir -p $d/root/bin $d/root/proc $d/root/sys $d/root/dev $d/root/lib/modules`,
        "cp /bin/busybox $d/root/bin/busybox",
        // Drivers the Debian kernel builds as modules; built-in ones have no file and need none.
        "for m in button evdev; do f=$(modinfo -n $m 2>/dev/null || true); case \"$f\" in /*.ko) cp \"$f\" $d/root/lib/modules/;; /*.ko.xz) xz -dc \"$f\" > $d/root/lib/modules/$m.ko;; /*.ko.zst) zstd -qdc \"$f\" > $d/root/lib/modules/$m.ko;; esac; done",
        `printf '%s' ${JSON.stringify(Buffer.from(INIT).toString("base64"))} | base64 -d > $d/root/init && chmod 755 $d/root/init`,
        "(cd $d/root && find . | busybox cpio -o -H newc 2>/dev/null | gzip -1 > $d/initrd.img)",
        "cp /boot/vmlinuz-$kver $d/vmlinuz",
        `cat > $d/${name}.xml <<XML
<domain type='kvm'>
  <name>${name}</name>
  <memory unit='MiB'>128</memory>
  <vcpu>1</vcpu>
  <os><type arch='x86_64' machine='pc'>hvm</type><kernel>$d/vmlinuz</kernel><initrd>$d/initrd.img</initrd><cmdline>console=ttyS0 panic=-1</cmdline></os>
  <features><acpi/></features>
  <on_poweroff>destroy</on_poweroff>
  <devices><serial type='file'><source path='${acpiGuestConsole(name)}' append='off'/><target port='0'/></serial></devices>
</domain>
XML`,
        `${V} destroy ${name} >/dev/null 2>&1 || true; ${V} undefine ${name} >/dev/null 2>&1 || true`,
        `${V} define $d/${name}.xml >/dev/null`,
        opts.autostart ? `${V} autostart ${name} >/dev/null` : "true",
        `${V} start ${name} >/dev/null`,
    ].join("\n");
    await sshOk(h, `sh -c ${shellQuote(script)}`, { timeoutMs: 300_000 });
    await waitForConsole(h, name, /kvmtune-acpi: waiting on \/dev\/input\/event\d+/);
}

/** Waits (up to 10 min: a nested guest on an emulated CPU boots slowly) until the guest's console matches. */
export async function waitForConsole(h: LabHost, name: string, line: RegExp): Promise<void> {
    const deadline = Date.now() + 600_000;
    let seen = "";
    while (Date.now() < deadline) {
        seen = await sshOk(h, `cat ${acpiGuestConsole(name)} 2>/dev/null || true`);
        if (line.test(seen)) return;
        await new Promise((r) => setTimeout(r, 3000));
    }
    throw new Error(`${h.name}: guest ${name}'s console never showed ${line}; it shows:\n${seen.slice(-2000)}`);
}

/** Destroys and undefines the guest, and removes its files. */
export async function removeAcpiGuest(h: LabHost, name: string): Promise<void> {
    await sshOk(h, `${V} destroy ${name} >/dev/null 2>&1; ${V} undefine ${name} >/dev/null 2>&1; rm -rf ${DIR} ${acpiGuestConsole(name)}; true`);
}
