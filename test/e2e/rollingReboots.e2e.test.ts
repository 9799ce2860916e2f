/**
 * Rolling reboots through the root program and the Pulumi CLI, on both lab hosts: stack config
 * gives every host a kernelCmdline and `kvmtune:reboots` with `maxDown: 1`. The hosts reboot one
 * after the other, each checked before the next goes down; a host that does not come back in time
 * (its power cut as its kernel restarts) fails the deployment and the host after it is not rebooted. The hosts themselves tell: boot ids,
 * boot times (/proc/stat btime), /proc/cmdline and /boot/grub/grub.cfg over the system ssh client.
 */
import * as assert from "assert";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import type { Stack } from "@pulumi/pulumi/automation";
import { localStack } from "../../tools/pulumiEngine";
import { labHostsConfig, powerOffWhenRebooting, powerOnLabHost, withLabWatchdog } from "../helpers/labConnection";
import { labBootId, LabHost, loadInventory, repoRoot, sshOk } from "../lab/labHosts";

/** Arguments of no effect: what matters is whether each host's running kernel has them. */
const FIRST = "kvmtune.roll=1";
const SECOND = "kvmtune.roll2=1";

describe("rolling reboots through the Pulumi CLI: one host at a time, and a host that does not come back stops the roll", function () {
    this.timeout(40 * 60_000);
    const inventory = loadInventory();
    const [first, second] = inventory.hosts;
    let stack: Stack;
    const backendDir = fs.mkdtempSync(path.join(os.tmpdir(), "kvmtune-e2e-roll-"));
    const topologyDir = fs.mkdtempSync(path.join(os.tmpdir(), "kvmtune-e2e-roll-topology-"));
    const ssh = (h: LabHost, cmd: string) => sshOk(h, cmd, { timeoutMs: 600_000 });
    const bootTime = async (h: LabHost) => Number((await ssh(h, "awk '/^btime/ {print $2}' /proc/stat")).trim());
    const cmdline = async (h: LabHost) => (await ssh(h, "cat /proc/cmdline")).trim().split(/\s+/);
    const inBootConfig = async (h: LabHost, arg: string) => Number((await ssh(h, `grep -c -- ' ${arg.replace(/\./g, "\\.")}' /boot/grub/grub.cfg || true`)).trim()) > 0;
    const reboots = (timeoutSeconds: number) => ({ value: JSON.stringify({ policy: "whenRequired", maxDown: 1, guests: "refuse", timeoutSeconds }) });
    /** A HostReboot's outputs as state holds them, by its KvmHost's name. */
    const rebootOutputs = async (host: string) => {
        const state = (await stack.exportStack()).deployment as { resources: Array<{ urn: string; outputs?: Record<string, unknown> }> };
        return state.resources.find((r) => r.urn.endsWith(`::${host}-reboot`))?.outputs ?? {};
    };

    before(async () => {
        assert.ok(second, "the rolling reboot test needs two lab hosts");
        const config = labHostsConfig(inventory.hosts);
        config["kvmtune:tuning"] = { value: JSON.stringify({ kernelCmdline: { extra: [FIRST] } }) };
        config["kvmtune:reboots"] = reboots(900);
        config["kvmtune:topologyDir"] = { value: topologyDir };
        stack = await localStack({ stackName: "e2e-roll", workDir: repoRoot, passphrase: "kvmtune-e2e-roll", backendDir });
        await stack.setAllConfig(config, true);
    });

    after(async () => {
        await stack?.destroy({ onOutput: () => undefined }).catch(() => undefined);
        await stack?.workspace.removeStack("e2e-roll", { force: true }).catch(() => undefined);
        fs.rmSync(path.join(repoRoot, "Pulumi.e2e-roll.yaml"), { force: true });
        fs.rmSync(backendDir, { recursive: true, force: true });
        fs.rmSync(topologyDir, { recursive: true, force: true });
    });

    it("reboots both hosts one after the other: the second boots only after the first is back and checked", async () => {
        const before = await Promise.all(inventory.hosts.map(labBootId));
        const result = await withLabWatchdog(inventory.hosts, before, () => stack.up({ onOutput: () => undefined }));
        assert.strictEqual(result.summary.result, "succeeded");
        for (const [i, h] of inventory.hosts.entries()) {
            assert.notStrictEqual(await labBootId(h), before[i], `${h.name} did not reboot`);
            assert.ok((await cmdline(h)).includes(FIRST), `${FIRST} is not in ${h.name}'s /proc/cmdline`);
        }
        const firstBack = Date.parse(String((await rebootOutputs(first.name)).rebooted));
        assert.ok(Number.isFinite(firstBack), `${first.name}'s HostReboot says no reboot`);
        // btime is when the second host's new kernel started; the first was back and checked before.
        const secondBooted = (await bootTime(second)) * 1000;
        assert.ok(secondBooted > firstBack, `${second.name} booted at ${new Date(secondBooted).toISOString()}, before ${first.name} was back (${new Date(firstBack).toISOString()})`);
    });

    it("a host whose power is cut during its reboot fails the up after timeoutSeconds, and the host after it is not rebooted", async () => {
        const [firstBoot, secondBoot] = [await labBootId(first), await labBootId(second)];
        await stack.setConfig("kvmtune:tuning", { value: JSON.stringify({ kernelCmdline: { extra: [FIRST, SECOND] } }) });
        await stack.setConfig("kvmtune:reboots", reboots(60));
        // The first host's power goes the moment its kernel restarts: it never comes back by itself.
        const powerCut = powerOffWhenRebooting(first);
        try {
            await assert.rejects(withLabWatchdog([second], [secondBoot], () => stack.up({ onOutput: () => undefined })), new RegExp(`127\\.0\\.0\\.1:${first.port} did not come back within 60 s \\(timeoutSeconds\\)`));
        } finally {
            powerCut.cancel();
        }
        assert.strictEqual(await powerCut.cut, true, `${first.name}'s kernel never restarted: the up failed for another reason`);
        // The second host got its boot configuration, and no reboot.
        assert.strictEqual(await labBootId(second), secondBoot, `${second.name} was rebooted after ${first.name} failed`);
        assert.ok(await inBootConfig(second, SECOND), `${second.name}'s boot configuration lacks ${SECOND}`);
        assert.ok(!(await cmdline(second)).includes(SECOND));
        // Powered on again, the first host boots the configuration kvmtune wrote before its reboot.
        await powerOnLabHost(first, firstBoot);
        assert.ok((await cmdline(first)).includes(SECOND), `${SECOND} is not in ${first.name}'s /proc/cmdline`);
    });

    it("destroy takes the arguments off both boot configurations and reboots nothing", async () => {
        const boots = await Promise.all(inventory.hosts.map(labBootId));
        await stack.destroy({ onOutput: () => undefined });
        for (const [i, h] of inventory.hosts.entries()) {
            assert.ok(!(await inBootConfig(h, FIRST)) && !(await inBootConfig(h, SECOND)), `${h.name}'s boot configuration still has kvmtune's arguments`);
            assert.strictEqual(await labBootId(h), boots[i], `destroy rebooted ${h.name}`);
        }
    });
});
