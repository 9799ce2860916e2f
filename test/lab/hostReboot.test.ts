/**
 * A boot-time setting taken all the way on a lab host: KernelCmdline writes CPU isolation to the
 * boot configuration (update-grub), HostReboot reboots the host because of it, waits for it with
 * the pinned host key and checks the new kernel has it; taking the setting off reboots again and
 * the new kernel has it no more. Before that, the two ways a reboot is held back by a running
 * guest: refused (guests: "refuse"), and a guest that ignores the shutdown request (the lab's
 * guests boot no OS, so nothing answers ACPI) started again with the host not rebooted. A host
 * that comes back without an argument (grub.cfg edited behind kvmtune's back) fails the up. And a
 * guest that does answer ACPI (busybox on the host's kernel, test/helpers/acpiGuest.ts) is shut
 * down for a reboot and runs again after it.
 *
 * Every check reads the host over the system ssh client: the boot id, /proc/cmdline,
 * /sys/devices/system/cpu/isolated, /boot/grub/grub.cfg and virsh.
 */
import * as assert from "assert";
import type { PulumiFn } from "@pulumi/pulumi/automation";
import { HostReboot, KernelCmdline } from "../../resources";
import { inlineStack, InlineStack, resourcesOf } from "../helpers/inlineStack";
import { removeAcpiGuest, startAcpiGuest } from "../helpers/acpiGuest";
import { labConnection, withLabWatchdog } from "../helpers/labConnection";
import { labBootId, sshOk, suiteHost } from "./labHosts";

const V = "virsh -c qemu:///system";
const GUEST = "kvmtune-lab-reboot";
/** A guest that boots busybox and powers off on ACPI (test/helpers/acpiGuest.ts). */
const ACPI_GUEST = "kvmtune-lab-acpi";
/** An argument of no effect that keeps the KernelCmdline owning something when isolation is off. */
const MARK = "kvmtune.lab=1";
const ISOLATION = ["isolcpus=3", "nohz_full=3", "rcu_nocbs=3", "irqaffinity=0-2"];

describe("HostReboot on a lab host: a kernel argument written, the host rebooted, the argument in effect", function () {
    this.timeout(40 * 60_000);
    const h = suiteHost(0);
    const connection = labConnection(h);
    let s: InlineStack;
    const ssh = (cmd: string) => sshOk(h, cmd, { timeoutMs: 600_000 });
    const bootId = () => labBootId(h);
    const cmdline = async () => (await ssh("cat /proc/cmdline")).trim().split(/\s+/);

    const program =
        (opts: { isolatedCpus?: string; guests: "refuse" | "shutdown"; guestShutdownTimeoutSeconds?: number }): PulumiFn =>
        async () => {
            const cmd = new KernelCmdline("cmdline", { connection, isolatedCpus: opts.isolatedCpus, extra: [MARK] });
            const reboot = new HostReboot(
                "reboot",
                {
                    connection,
                    policy: "whenRequired",
                    guests: opts.guests,
                    guestShutdownTimeoutSeconds: opts.guestShutdownTimeoutSeconds ?? 10,
                    timeoutSeconds: 900,
                    expect: cmd.args,
                    expectGone: cmd.retired,
                    required: cmd.rebootRequired,
                },
                { dependsOn: [cmd] },
            );
            return { args: cmd.args, rebootRequired: cmd.rebootRequired, rebooted: reboot.rebooted, reason: reboot.reason, guestsRestarted: reboot.guestsRestarted };
        };
    const outputs = async () => Object.fromEntries(Object.entries(await s.stack.outputs()).map(([k, v]) => [k, v.value]));

    before(async () => {
        assert.strictEqual((await ssh("cat /sys/devices/system/cpu/isolated")).trim(), "", `${h.name} starts with isolated CPUs`);
        // A guest of the user's own, defined with virsh: no OS, so it ignores an ACPI shutdown.
        const xml = `<domain type='qemu'><name>${GUEST}</name><memory unit='MiB'>64</memory><vcpu>1</vcpu><os><type arch='x86_64'>hvm</type></os><devices/></domain>`;
        await ssh(`${V} destroy ${GUEST} >/dev/null 2>&1; ${V} undefine ${GUEST} >/dev/null 2>&1; echo "${xml}" > /tmp/${GUEST}.xml && ${V} define /tmp/${GUEST}.xml >/dev/null && ${V} start ${GUEST} >/dev/null`);
        s = await inlineStack("lab-reboot");
    });
    after(async () => {
        await removeAcpiGuest(h, ACPI_GUEST).catch(() => undefined);
        await ssh(`${V} destroy ${GUEST} >/dev/null 2>&1; ${V} undefine ${GUEST} >/dev/null 2>&1; rm -f /tmp/${GUEST}.xml; true`).catch(() => undefined);
        await s?.destroy().catch(() => undefined);
        await s?.remove();
    });

    it("refuses to reboot while a guest runs (guests: refuse), naming it; the host keeps its boot", async () => {
        const boot = await bootId();
        await assert.rejects(s.up(program({ isolatedCpus: "3", guests: "refuse" })), new RegExp(`a reboot is due .*guests are running: ${GUEST}\\b.*The host was not rebooted`, "s"));
        assert.strictEqual(await bootId(), boot, "the host rebooted");
        // KernelCmdline did its part: the boot configuration waits for the next boot.
        assert.match(await ssh("grep -m1 -o 'isolcpus=3 [^ ]* [^ ]* [^ ]*' /boot/grub/grub.cfg"), /isolcpus=3/);
        assert.strictEqual((await ssh(`${V} domstate ${GUEST}`)).trim(), "running");
    });

    it("a guest that ignores the shutdown request (guests: shutdown) is started again and the host not rebooted", async () => {
        const boot = await bootId();
        await assert.rejects(s.up(program({ isolatedCpus: "3", guests: "shutdown" })), new RegExp(`guests ${GUEST} did not shut down within 10 s .*the host was not rebooted`, "s"));
        assert.strictEqual(await bootId(), boot, "the host rebooted");
        assert.strictEqual((await ssh(`${V} domstate ${GUEST}`)).trim(), "running", "the guest was left shut down");
    });

    it("a host that comes back without an argument fails the up, naming the argument and what it booted with", async () => {
        await ssh(`${V} destroy ${GUEST} >/dev/null`);
        // Behind kvmtune's back, the entry that boots loses one of its arguments (as GRUB's saved
        // default or a fallback entry would): KernelCmdline still holds that the boot has it.
        await ssh(`sed -i 's/ ${MARK.replace(/\./g, "\\.")}//' /boot/grub/grub.cfg`);
        const boot = await bootId();
        await assert.rejects(
            withLabWatchdog([h], [boot], () => s.up(program({ isolatedCpus: "3", guests: "shutdown" }))),
            new RegExp(`the host came back \\(boot id [0-9a-f-]+\\), but its kernel lacks ${MARK.replace(/\./g, "\\.")}; /proc/cmdline reads: .*isolcpus=3`),
        );
        assert.notStrictEqual(await bootId(), boot, "the host did not reboot");
        assert.ok(!(await cmdline()).includes(MARK), `${MARK} is in /proc/cmdline though grub.cfg lost it`);
        // The refresh sees the boot configuration lacks the argument; the next up writes it again.
        await s.refresh();
        const cmdlineState = (await resourcesOf(s)).find((r) => r.urn.endsWith("::cmdline"));
        assert.match(JSON.stringify(cmdlineState?.outputs?.drift), new RegExp(MARK.replace(/\./g, "\\.")));
    });

    it("with the guest stopped, reboots the host; the new kernel has CPU 3 isolated; nothing waits any more", async () => {
        const boot = await bootId();
        await withLabWatchdog([h], [boot], () => s.up(program({ isolatedCpus: "3", guests: "shutdown" })));
        assert.notStrictEqual(await bootId(), boot, "the host did not reboot");
        const now = await cmdline();
        for (const a of [...ISOLATION, MARK]) assert.ok(now.includes(a), `${a} is not in /proc/cmdline: ${now.join(" ")}`);
        assert.strictEqual((await ssh("cat /sys/devices/system/cpu/isolated")).trim(), "3");
        const o = await outputs();
        assert.match(String(o.rebooted), /^\d{4}-\d\d-\d\dT/);
        assert.strictEqual(o.reason, "");
        // The refresh reads the new boot: KernelCmdline agrees, and a second run changes nothing.
        await s.refresh();
        const cmdlineState = (await resourcesOf(s)).find((r) => r.urn.endsWith("::cmdline"));
        assert.deepStrictEqual([cmdlineState?.outputs?.rebootRequired, cmdlineState?.outputs?.notInEffect], [false, []]);
        const again = await bootId();
        assert.deepStrictEqual(await s.up(program({ isolatedCpus: "3", guests: "shutdown" })), {});
        assert.strictEqual(await bootId(), again, "a second up rebooted the host");
    });

    it("taking the isolation off reboots again with a guest that answers ACPI running: it is shut down, the host rebooted, the guest started again; the new kernel has no isolation", async () => {
        await startAcpiGuest(h, ACPI_GUEST, { autostart: true });
        // libvirt-guests is off on the lab: only HostReboot can shut the guest down gracefully before the
        // boot (without it, systemd kills QEMU at the host's shutdown and libvirt logs no reason=shutdown).
        assert.match(await ssh("systemctl is-enabled libvirt-guests 2>&1 || true"), /disabled|masked|not-found/);
        const boot = await bootId();
        await withLabWatchdog([h], [boot], () => s.up(program({ guests: "shutdown", guestShutdownTimeoutSeconds: 300 })));
        assert.notStrictEqual(await bootId(), boot, "the host did not reboot");
        // The guest powered itself off on the ACPI request (libvirt logs why its QEMU ended), and runs again.
        assert.match(await ssh(`grep 'shutting down, reason=' /var/log/libvirt/qemu/${ACPI_GUEST}.log | tail -n 1`), /reason=shutdown\b/);
        assert.strictEqual((await ssh(`${V} domstate ${ACPI_GUEST}`)).trim(), "running", "the guest was not started again");
        assert.deepStrictEqual((await outputs()).guestsRestarted, [ACPI_GUEST]);
        const now = await cmdline();
        for (const a of ISOLATION) assert.ok(!now.includes(a), `${a} is still in /proc/cmdline: ${now.join(" ")}`);
        assert.ok(now.includes(MARK), `${MARK} went too`);
        assert.strictEqual((await ssh("cat /sys/devices/system/cpu/isolated")).trim(), "");
    });

    it("destroy takes kvmtune's argument off the boot configuration and reboots nothing", async () => {
        const boot = await bootId();
        await s.destroy();
        assert.strictEqual((await ssh(`grep -c 'kvmtune\\.lab=1' /boot/grub/grub.cfg || true`)).trim(), "0");
        assert.strictEqual(await bootId(), boot, "destroy rebooted the host");
    });
});
