import * as assert from "assert";
import { closeAll } from "../../resources/host/sshPool";
import { provider, rebootAsked } from "../../resources/providers/hostReboot";
import { clock } from "../../resources/providers/hostRebootHost";
import { planFromPreview, renderPlan } from "../../resources/plan";
import { UNKNOWN } from "../../resources/validate";
import { FakeRebootHost, FakeRebootHostOptions, startFakeRebootHost } from "../helpers/fakeRebootHost";
import { goodConnection, throwawayKey } from "../helpers/fixtures";

const failuresOf = async (i: Record<string, unknown>) =>
    Object.fromEntries(((await provider.check({}, { connection: goodConnection(), ...i })).failures ?? []).map((f) => [f.property, f.reason]));

describe("HostReboot inputs and preview", () => {
    it("refuses a bad policy, guest policy and timeouts naming field, value and what is allowed", async () => {
        const f = await failuresOf({ policy: "sometimes", guests: "kill", timeoutSeconds: 5, expect: ["a b"] });
        assert.match(f.policy, /^policy: got "sometimes"; .*"never".*"whenRequired"/);
        assert.match(f.guests, /^guests: got "kill"; .*"shutdown".*"refuse"/);
        assert.match(f.timeoutSeconds, /^timeoutSeconds: got 5; must be at least 60 s/);
        assert.match((await failuresOf({ timeoutSeconds: 7200 })).timeoutSeconds, /^timeoutSeconds: got 7200; must be at most 3600 s/);
        assert.match(f["expect.0"], /^expect\.0: got "a b"; must be one kernel argument/);
        assert.deepStrictEqual(await failuresOf({}), {}, "every input but the connection has a default");
    });

    const olds = { connection: goodConnection(), policy: "whenRequired", guests: "refuse", guestShutdownTimeoutSeconds: 120, timeoutSeconds: 600, expect: ["intel_iommu=on"], expectGone: [], required: false, rebootPending: false };

    it("diff: policy never is never a reboot, whatever required says", async () => {
        // The host last said a boot is pending: only the policy keeps this from being a reboot.
        const pending = { ...olds, policy: "never", required: true, rebootPending: true };
        assert.strictEqual(rebootAsked(pending, pending), false);
        assert.strictEqual((await provider.diff("id", pending, pending)).changes, false);
        assert.strictEqual((await provider.diff("id", pending, { ...pending, policy: "whenRequired" })).changes, true);
    });

    it("diff: whenRequired and required is an update (not a replace) whose detailed diff names required", async () => {
        const d = await provider.diff("id", { ...olds, rebootPending: true }, { ...olds, required: true });
        assert.strictEqual(d.changes, true);
        assert.deepStrictEqual(d.replaces, []);
        assert.deepStrictEqual((d as { detailedDiff?: unknown }).detailedDiff, { required: { kind: "update", inputDiff: true } });
        // Before KernelCmdline is known (preview of its change), required is unknown: possibly a reboot.
        assert.strictEqual((await provider.diff("id", olds, { ...olds, required: UNKNOWN })).changes, true);
        assert.strictEqual((await provider.diff("id", olds, { ...olds, required: true, expect: UNKNOWN })).changes, true);
    });

    it("diff: a required the last look at the host found satisfied for the same arguments is stale, no change", async () => {
        // After kvmtune's own reboot KernelCmdline still says rebootRequired until a refresh.
        const after = { ...olds, required: true, rebootPending: false };
        assert.strictEqual((await provider.diff("id", after, { ...olds, required: true })).changes, false);
        // The refresh after the boot: KernelCmdline's rebootRequired goes false. Nothing to update.
        assert.strictEqual((await provider.diff("id", after, { ...olds, required: false })).changes, false);
        // New arguments to expect: the host has not been asked about them yet.
        assert.strictEqual((await provider.diff("id", after, { ...olds, required: true, expect: ["intel_iommu=on", "iommu=pt"] })).changes, true);
    });

    it("preview: the plan says the host reboots and why", async () => {
        const { inputs } = await provider.check(olds, { ...olds, rebootPending: undefined, required: true });
        assert.deepStrictEqual((inputs as Record<string, unknown>).changePlan, { required: "host reboot (boot configuration)" });
        assert.strictEqual((inputs as Record<string, unknown>).rebootReason, "KernelCmdline reports rebootRequired; after the boot /proc/cmdline must hold intel_iommu=on; guests: refuse");
        const urn = "urn:pulumi:s::p::kvmtune:index:KvmHost$pulumi-nodejs:dynamic/kvmtune:HostReboot::db1-reboot";
        const text = renderPlan(planFromPreview({ steps: [{ op: "update", urn, newState: { type: "pulumi-nodejs:dynamic/kvmtune:HostReboot", inputs } }] }));
        assert.match(text, /host reboot  HostReboot db1-reboot: required/);
        // policy never: no plan, nothing said about a reboot.
        const never = await provider.check(olds, { ...olds, rebootPending: undefined, policy: "never", required: true });
        assert.strictEqual((never.inputs as Record<string, unknown>).changePlan, undefined);
    });
});

describe("HostReboot on a host (loopback SSH, a reboot made of files)", function () {
    this.timeout(60_000);
    const key = throwawayKey();
    const BEFORE = "BOOT_IMAGE=/vmlinuz root=UUID=4f1c ro quiet";
    const AFTER = `${BEFORE} intel_iommu=on iommu=pt`;
    const expect = ["intel_iommu=on", "iommu=pt"];
    let h: FakeRebootHost | undefined;
    let realClock: typeof clock.now;
    let realSleep: typeof clock.sleep;
    let virtualMs = 0;

    before(() => {
        realClock = clock.now;
        realSleep = clock.sleep;
        // The wait's clock runs 25 times faster: a 60 s timeout takes about 2.4 s of real time.
        clock.now = () => virtualMs;
        clock.sleep = async (ms: number) => {
            await realSleep(ms / 25);
            virtualMs += ms;
        };
    });
    after(() => {
        clock.now = realClock;
        clock.sleep = realSleep;
    });
    afterEach(async () => {
        closeAll();
        await h?.dispose();
        h = undefined;
    });

    async function host(options: FakeRebootHostOptions = {}) {
        h = await startFakeRebootHost(key, BEFORE, { nextCmdline: AFTER, ...options });
        return h;
    }
    async function create(i: Record<string, unknown>) {
        const r = await provider.check({}, { connection: h!.connection(), expect, required: true, ...i });
        assert.strictEqual(r.failures, undefined, JSON.stringify(r.failures));
        return provider.create(r.inputs!);
    }

    it("policy never reboots nothing and still reports what waits for a boot", async () => {
        await host();
        const bootId = h!.bootId();
        const { outs } = await create({ policy: "never" });
        assert.strictEqual(h!.reboots, 0);
        assert.strictEqual(outs!.lastBootId, bootId);
        assert.strictEqual(outs!.rebooted, null);
        assert.strictEqual(outs!.reason, "not in the running kernel yet: intel_iommu=on iommu=pt");
        assert.strictEqual(outs!.rebootPending, true);
    });

    it("refuses while guests run, naming them, and reboots nothing", async () => {
        await host({ guests: [{ name: "db1", running: true, autostart: true }, { name: "web1", running: true, autostart: false }, { name: "idle", running: false, autostart: true }] });
        const bootId = h!.bootId();
        await assert.rejects(create({ policy: "whenRequired" }), (err: Error) => {
            assert.match(err.message, /^HostReboot on root@127\.0\.0\.1:\d+: a reboot is due \(not in the running kernel yet: intel_iommu=on iommu=pt\), but guests are running: db1, web1\. guests is "refuse"/);
            assert.match(err.message, /The host was not rebooted$/);
            return true;
        });
        assert.strictEqual(h!.reboots, 0, "a refused reboot ran the reboot command");
        assert.strictEqual(h!.bootId(), bootId);
        assert.deepStrictEqual(h!.guestStates(), { db1: "running", web1: "running", idle: "shut off" });
    });

    it("shuts guests down, reboots, and starts the autostarted ones libvirt did not start", async () => {
        await host({ libvirtAutostarts: false, guests: [{ name: "db1", running: true, autostart: true }, { name: "web1", running: true, autostart: false }, { name: "idle", running: false, autostart: true }] });
        const bootId = h!.bootId();
        const { outs } = await create({ policy: "whenRequired", guests: "shutdown" });
        assert.strictEqual(h!.reboots, 1);
        assert.notStrictEqual(h!.bootId(), bootId);
        assert.strictEqual(outs!.lastBootId, h!.bootId());
        assert.match(String(outs!.rebooted), /^\d{4}-\d\d-\d\dT/);
        assert.strictEqual(outs!.reason, "");
        assert.deepStrictEqual(outs!.guestsRestarted, ["db1"]);
        // db1 ran and has autostart: running again. web1 has no autostart: left off. idle was off.
        assert.deepStrictEqual(h!.guestStates(), { db1: "running", web1: "shut off", idle: "shut off" });
        assert.deepStrictEqual(h!.started(), ["db1"], "kvmtune started db1 itself, since libvirt did not");
    });

    it("leaves a guest libvirt autostarted alone", async () => {
        await host({ guests: [{ name: "db1", running: true, autostart: true }] });
        const { outs } = await create({ policy: "whenRequired", guests: "shutdown" });
        assert.deepStrictEqual(outs!.guestsRestarted, ["db1"]);
        assert.deepStrictEqual(h!.guestStates(), { db1: "running" });
        assert.deepStrictEqual(h!.started(), [], "libvirt had started db1");
    });

    it("a host that never comes back fails naming the host and the timeout", async () => {
        await host({ comesBack: false });
        await assert.rejects(create({ policy: "whenRequired", timeoutSeconds: 60 }), (err: Error) => {
            assert.match(err.message, /^HostReboot: root@127\.0\.0\.1:\d+ did not come back within 60 s \(timeoutSeconds\) after the reboot was started; the last attempt to reach it: cannot connect/);
            assert.match(err.message, /Look at its console/);
            return true;
        });
        assert.strictEqual(h!.reboots, 1);
    });

    it("a host that comes back without an argument fails naming it", async () => {
        await host({ nextCmdline: `${BEFORE} intel_iommu=on` });
        await assert.rejects(create({ policy: "whenRequired" }), (err: Error) => {
            assert.match(err.message, /^HostReboot on root@127\.0\.0\.1:\d+: the host came back \(boot id [0-9a-f-]+\), but its kernel lacks iommu=pt; \/proc\/cmdline reads: BOOT_IMAGE=\/vmlinuz root=UUID=4f1c ro quiet intel_iommu=on\./);
            assert.match(err.message, /compare it with KernelCmdline's bootCmdline, fix the boot configuration/);
            return true;
        });
        assert.strictEqual(h!.reboots, 1);
    });

    it("refresh reads the new boot; a stale required after the reboot reboots nothing", async () => {
        await host();
        const { id, outs } = await create({ policy: "whenRequired" });
        assert.strictEqual(h!.reboots, 1);
        const read = (await provider.read(id, outs!)).props as Record<string, unknown>;
        assert.strictEqual(read.lastBootId, h!.bootId());
        assert.strictEqual(read.rebootPending, false);
        assert.strictEqual(read.rebooted, outs!.rebooted, "refresh keeps when kvmtune rebooted");
        // KernelCmdline not refreshed yet: required still true. The host says every argument is in effect.
        const news = (await provider.check(read, { connection: h!.connection(), expect, required: true, policy: "whenRequired" })).inputs!;
        assert.strictEqual((await provider.diff(id, read, news)).changes, false);
        await provider.update(id, read, news);
        assert.strictEqual(h!.reboots, 1, "a stale required rebooted the host again");
    });
});
