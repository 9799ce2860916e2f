/**
 * Ownership claims (resources/host/claims.ts), run for real: every script goes through a shell
 * whose /etc is a temp folder (LocalRemote with `etc`), so the files land where a test can read them.
 * The knobs are the providers' own (diskClaim, poolClaim): what BlockElevator and HugepagePool claim.
 */
import * as assert from "assert";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { ClaimError, claimKnob, holdForDelete, KnobClaim, reclaimForUpdate, releaseKnob } from "../../resources/host/claims";
import type { BlockDeviceFacts } from "../../resources/host/facts";
import { managedHeader } from "../../resources/host/files";
import { closeAll } from "../../resources/host/sshPool";
import { diskClaim, provider as elevator, resolveDevice } from "../../resources/providers/blockElevator";
import { hugepagePoolSchema, poolClaim, provider as pool } from "../../resources/providers/hugepagePool";
import { networkClaim } from "../../resources/libvirt/network";
import { pfClaim } from "../../resources/providers/sriovNic";
import { vhostNetworkClaim } from "../../resources/providers/vhostNetwork";
import { FakeDiskHost, startFakeDiskHost } from "../helpers/fakeSshHost";
import { goodConnection, throwawayKey } from "../helpers/fixtures";
import { LocalRemote } from "../helpers/localRemote";
import { stderrOf } from "../helpers/stderr";

const A = "BlockElevator db (shop/prod)";
const B = "BlockElevator db (shop/staging)";

describe("ownership claims on a host", function () {
    this.timeout(60_000);
    let etc: string;
    let remote: LocalRemote;
    /** A file under the host's /etc, as the host sees it. */
    const onHost = (p: string) => path.join(etc, p.replace(/^\/etc\//, ""));
    const claimFile = (knob: string) => onHost(`/etc/kvmtune/claims/${knob}`);

    beforeEach(() => {
        etc = fs.mkdtempSync(path.join(os.tmpdir(), "kvmtune-etc-"));
        remote = new LocalRemote({ etc });
    });
    afterEach(() => fs.rmSync(etc, { recursive: true, force: true }));

    async function refusal(c: KnobClaim): Promise<ClaimError> {
        const err = await claimKnob(remote, c).then(
            () => assert.fail(`the claim of ${c.owner} on ${c.knob} was granted`),
            (e: unknown) => e,
        );
        assert.ok(err instanceof ClaimError, String(err));
        return err;
    }

    it("SriovNic: one PF, named by interface or by PCI address, has one owner; an earlier kvmtune's owner file counts", async () => {
        const pf = { name: "enp65s0", pciAddress: "0000:41:00.0" };
        await claimKnob(remote, pfClaim("SriovNic nic (shop/prod)", pf));
        assert.match(fs.readFileSync(claimFile("sriov-0000-41-00.0"), "utf8"), /^# Managed by kvmtune for SriovNic nic \(shop\/prod\)\.\n/);
        const err = await refusal(pfClaim("SriovNic nic (shop/staging)", { name: "0000:41:00.0", pciAddress: "0000:41:00.0" }));
        assert.strictEqual(err.holder, "SriovNic nic (shop/prod)");
        assert.match(err.message, /^the SR-IOV VFs of 0000:41:00\.0 \(0000:41:00\.0\) on .* belongs to SriovNic nic \(shop\/prod\) \(\/etc\/kvmtune\/claims\/sriov-0000-41-00\.0\)/);
        await releaseKnob(remote, pfClaim("SriovNic nic (shop/prod)", pf));
        assert.ok(!fs.existsSync(claimFile("sriov-0000-41-00.0")));

        // No claim yet, but the owner file an earlier kvmtune wrote with persist off names another owner.
        fs.writeFileSync(onHost("/etc/kvmtune/sriov-enp65s0.owner"), managedHeader("SriovNic old (shop/prod)"));
        const old = await refusal(pfClaim("SriovNic nic (shop/staging)", pf));
        assert.deepStrictEqual([old.holder, old.file], ["SriovNic old (shop/prod)", "/etc/kvmtune/sriov-enp65s0.owner"]);
        assert.ok(!fs.existsSync(claimFile("sriov-0000-41-00.0")), "a refused claim was recorded");
        // Its own old file is no obstacle.
        await claimKnob(remote, pfClaim("SriovNic old (shop/prod)", pf));
    });

    it("VhostNetwork and a SriovNic pool network of the same name meet at one claim", async () => {
        await claimKnob(remote, vhostNetworkClaim("VhostNetwork net (shop/prod)", "vh0"));
        const err = await refusal(networkClaim("SriovNic nic (shop/staging)", "vh0"));
        assert.strictEqual(err.holder, "VhostNetwork net (shop/prod)");
        assert.match(err.message, /^the libvirt network vh0 on .* belongs to VhostNetwork net \(shop\/prod\)/);
        await refusal(vhostNetworkClaim("VhostNetwork net (shop/staging)", "vh0"));
        // A network name with + (SriovNic allows it) makes a plain knob name too.
        await claimKnob(remote, networkClaim("SriovNic nic (p/s)", "pool+1"));
        assert.ok(fs.existsSync(claimFile("libvirt-network-pool@1")));

        // A hook begins with #!/bin/sh, so it cannot be a claim's file (the check reads first lines): its own hook is no obstacle.
        fs.mkdirSync(onHost("/etc/libvirt/hooks/network.d"), { recursive: true });
        fs.writeFileSync(onHost("/etc/libvirt/hooks/network.d/kvmtune-vh1"), "#!/bin/sh\n" + managedHeader("VhostNetwork net (shop/prod)"));
        await claimKnob(remote, vhostNetworkClaim("VhostNetwork net (shop/prod)", "vh1"));
    });

    it("records a claim as a root-owned 0644 file whose header names the owner", async () => {
        await claimKnob(remote, diskClaim(A, "vdb"));
        const file = claimFile("block-elevator-vdb");
        assert.match(fs.readFileSync(file, "utf8"), /^# Managed by kvmtune for BlockElevator db \(shop\/prod\)\.\n/);
        const st = fs.statSync(file);
        assert.strictEqual(st.uid, 0);
        assert.strictEqual(st.mode & 0o777, 0o644);
        assert.deepStrictEqual(fs.readdirSync(path.dirname(file)), ["block-elevator-vdb"], "a temp file was left behind");
    });

    it("records the original with the first claim; the owner's later claims return that one, not their own", async () => {
        // What a create cut off after it changed the disk leaves: its claim, recording the disk as it was.
        assert.deepStrictEqual(await claimKnob(remote, diskClaim(A, "vdb", [], { scheduler: "none", tunables: {}, nrRequests: 256, readAheadKb: 128 })), {
            original: { scheduler: "none", tunables: {}, nrRequests: 256, readAheadKb: 128 },
            taken: true,
        });
        // The retry sees the disk as the first attempt left it; the claim keeps the first reading.
        const retry = await claimKnob(remote, diskClaim(A, "vdb", [], { scheduler: "mq-deadline", tunables: {}, nrRequests: 256, readAheadKb: 128 }));
        assert.deepStrictEqual(retry.original, { scheduler: "none", tunables: {}, nrRequests: 256, readAheadKb: 128 });
        assert.strictEqual(retry.taken, false, "the retry found the claim in place");
        // A claim taken without one (an update) records none, and another owner learns nothing of it.
        assert.deepStrictEqual(await claimKnob(remote, diskClaim(A, "vdc")), { original: undefined, taken: true });
        await refusal(diskClaim(B, "vdb", [], { scheduler: "kyber", tunables: {}, nrRequests: 1, readAheadKb: 1 }));
    });

    it("an update on a host that lost the claim (reinstalled) takes it again and records the values found now, with a warning", async () => {
        const inState = { scheduler: "bfq", tunables: {}, nrRequests: 64, readAheadKb: 128 };
        const now = { scheduler: "none", tunables: {}, nrRequests: 256, readAheadKb: 128 };
        // The claim is in place: the original in state stands, whatever the disk has now.
        await claimKnob(remote, diskClaim(A, "vdb", [], inState));
        let kept: unknown;
        assert.strictEqual(await stderrOf(async () => (kept = await reclaimForUpdate(remote, diskClaim(A, "vdb", [], now), inState))), "", "an update with its claim in place warned");
        assert.deepStrictEqual(kept, inState);
        // /etc reinstalled: no claim. The update claims again and the values found now become the original.
        fs.rmSync(onHost("/etc/kvmtune"), { recursive: true });
        let again: unknown;
        const warning = await stderrOf(async () => (again = await reclaimForUpdate(remote, diskClaim(A, "vdb", [], now), inState)));
        assert.deepStrictEqual(again, now);
        assert.match(warning, /^warning: kvmtune: the I\/O scheduler of vdb on .* had no ownership claim \(\/etc\/kvmtune\/claims\/block-elevator-vdb\): the host was reinstalled/);
        assert.match(fs.readFileSync(claimFile("block-elevator-vdb"), "utf8"), /^# Managed by kvmtune for BlockElevator db \(shop\/prod\)\./);
        // And the claim records it, for a create retried later.
        assert.deepStrictEqual((await claimKnob(remote, diskClaim(A, "vdb"))).original, now);
    });

    it("a delete that finds its claim gone says so: the original it restores was recorded on the host before", async () => {
        const warnings = await stderrOf(async () => {
            await claimKnob(remote, diskClaim(A, "vdb"));
            assert.strictEqual(await holdForDelete(remote, diskClaim(A, "vdb")), null);
        });
        assert.strictEqual(warnings, "", "a delete with its claim in place warned");
        fs.rmSync(onHost("/etc/kvmtune"), { recursive: true });
        const gone = await stderrOf(async () => assert.strictEqual(await holdForDelete(remote, diskClaim(A, "vdb")), null));
        assert.match(gone, /^warning: kvmtune: the I\/O scheduler of vdb on .* had no ownership claim \(\/etc\/kvmtune\/claims\/block-elevator-vdb\) when it was deleted: the host was reinstalled/);
    });

    it("refuses a second owner, naming the first, and leaves the claim as it was", async () => {
        await claimKnob(remote, diskClaim(A, "vdb"));
        const before = fs.readFileSync(claimFile("block-elevator-vdb"), "utf8");
        const err = await refusal(diskClaim(B, "vdb"));
        assert.strictEqual(err.holder, A);
        assert.strictEqual(err.file, "/etc/kvmtune/claims/block-elevator-vdb");
        assert.match(err.message, /^the I\/O scheduler of vdb on local .* belongs to BlockElevator db \(shop\/prod\) \(\/etc\/kvmtune\/claims\/block-elevator-vdb\)\. A knob has one owner/);
        assert.strictEqual(fs.readFileSync(claimFile("block-elevator-vdb"), "utf8"), before);
    });

    it("meets two names of one disk (kernel name, by-id link) at one claim", async () => {
        const disks = [{ name: "vdb", ids: ["/dev/disk/by-id/virtio-data"], paths: [] } as unknown as BlockDeviceFacts];
        await claimKnob(remote, diskClaim(A, resolveDevice("vdb", disks, "h").name));
        const err = await refusal(diskClaim(B, resolveDevice("/dev/disk/by-id/virtio-data", disks, "h").name));
        assert.strictEqual(err.holder, A);
    });

    it("lets the owner claim again, and moves the claim to the owner's new label", async () => {
        await claimKnob(remote, diskClaim("BlockElevator db", "vdb"));
        await claimKnob(remote, diskClaim("BlockElevator db", "vdb"));
        // What an update does after the label gained the stack: the old label counts as the owner's.
        await claimKnob(remote, diskClaim(A, "vdb", ["BlockElevator db"]));
        assert.match(fs.readFileSync(claimFile("block-elevator-vdb"), "utf8"), /^# Managed by kvmtune for BlockElevator db \(shop\/prod\)\./);
        assert.strictEqual((await refusal(diskClaim("BlockElevator db", "vdb"))).holder, A);
    });

    it("refuses when the knob's persistence file names another owner (a udev rule, a boot unit)", async () => {
        const rule = "/etc/udev/rules.d/61-kvmtune-elevator-vdb.rules";
        fs.mkdirSync(path.dirname(onHost(rule)), { recursive: true });
        fs.writeFileSync(onHost(rule), managedHeader("BlockElevator old (shop/legacy)") + 'ACTION=="add"\n');
        const err = await refusal(diskClaim(A, "vdb"));
        assert.deepStrictEqual([err.holder, err.file], ["BlockElevator old (shop/legacy)", rule]);
        assert.ok(!fs.existsSync(claimFile("block-elevator-vdb")), "a refused claim was recorded");

        const unit = "/etc/systemd/system/kvmtune-hugepages-2M.service";
        fs.mkdirSync(path.dirname(onHost(unit)), { recursive: true });
        fs.writeFileSync(onHost(unit), managedHeader("HugepagePool other (shop/prod)") + "[Unit]\n");
        const pool = hugepagePoolSchema.parse({ connection: goodConnection(), pageSize: "2M", nodes: { "1": 8 } });
        const poolErr = await refusal(poolClaim("HugepagePool mine (shop/prod)", pool));
        assert.deepStrictEqual([poolErr.holder, poolErr.file], ["HugepagePool other (shop/prod)", unit]);
        assert.match(poolErr.message, /^the 2M huge page pool on local/);
    });

    it("refuses a file kvmtune did not write, quoting its first line", async () => {
        const rule = "/etc/udev/rules.d/61-kvmtune-elevator-sda.rules";
        fs.mkdirSync(path.dirname(onHost(rule)), { recursive: true });
        fs.writeFileSync(onHost(rule), 'ACTION=="add", KERNEL=="sda", ATTR{queue/scheduler}="bfq"\n');
        const err = await refusal(diskClaim(A, "sda"));
        assert.strictEqual(err.holder, null);
        assert.match(err.message, /\/etc\/udev\/rules\.d\/61-kvmtune-elevator-sda\.rules exists but kvmtune did not write it \(its first line is "ACTION==\\"add\\", KERNEL/);
    });

    it("gives one pool per page size on a host, whichever nodes; another size and another disk are other knobs", async () => {
        const pool = (i: Record<string, unknown>) => hugepagePoolSchema.parse({ connection: goodConnection(), ...i });
        await claimKnob(remote, poolClaim("HugepagePool a (p/s)", pool({ pageSize: "2M", nodes: { "0": 8 } })));
        const err = await refusal(poolClaim("HugepagePool b (p/s)", pool({ pageSize: "2M", nodes: { "1": 8 } })));
        assert.strictEqual(err.holder, "HugepagePool a (p/s)");
        await claimKnob(remote, poolClaim("HugepagePool b (p/s)", pool({ pageSize: "1G", total: 1 })));
        await claimKnob(remote, diskClaim(B, "vdc"));
        assert.deepStrictEqual(fs.readdirSync(path.join(etc, "kvmtune", "claims")).sort(), ["block-elevator-vdc", "hugepages-1G", "hugepages-2M"]);
    });

    it("a mount point's unit belongs to the pool that mounts it", async () => {
        const pool = (size: string) => hugepagePoolSchema.parse({ connection: goodConnection(), pageSize: size, total: 1, mount: "/mnt/huge-pages" });
        const unit = "/etc/systemd/system/mnt-huge\\x2dpages.mount";
        assert.ok(poolClaim("x", pool("2M")).files!.includes(unit));
        fs.mkdirSync(path.dirname(onHost(unit)), { recursive: true });
        fs.writeFileSync(onHost(unit), managedHeader("HugepagePool a (p/s)") + "[Mount]\n");
        assert.strictEqual((await refusal(poolClaim("HugepagePool b (p/s)", pool("1G")))).file, unit);
    });

    it("of many owners racing for one free knob, exactly one wins and the others are told who", async () => {
        const owners = Array.from({ length: 6 }, (_, n) => `BlockElevator racer${n} (p/s)`);
        const results = await Promise.all(owners.map((o) => claimKnob(remote, diskClaim(o, "vdd")).then(() => null, (e: unknown) => e)));
        const winners = owners.filter((_, n) => results[n] === null);
        assert.strictEqual(winners.length, 1, `winners: ${winners.join(", ")}`);
        for (const r of results.filter((x) => x !== null)) {
            assert.ok(r instanceof ClaimError, String(r));
            assert.strictEqual(r.holder, winners[0]);
        }
        assert.match(fs.readFileSync(claimFile("block-elevator-vdd"), "utf8"), new RegExp(`for ${winners[0].replace(/[()]/g, "\\$&")}\\.`));
    });

    it("releases the owner's claim, so another resource may take the knob", async () => {
        await claimKnob(remote, diskClaim(A, "vdb"));
        assert.strictEqual(await releaseKnob(remote, diskClaim(A, "vdb")), null);
        assert.ok(!fs.existsSync(claimFile("block-elevator-vdb")));
        assert.strictEqual(await releaseKnob(remote, diskClaim(A, "vdb")), null, "releasing twice is fine");
        await claimKnob(remote, diskClaim(B, "vdb"));
    });

    it("never releases another owner's claim; delete learns the knob is not its own", async () => {
        await claimKnob(remote, diskClaim(B, "vdb"));
        const released = await releaseKnob(remote, diskClaim(A, "vdb"));
        assert.strictEqual(released?.holder, B);
        assert.strictEqual((await holdForDelete(remote, diskClaim(A, "vdb")))?.holder, B);
        assert.match(fs.readFileSync(claimFile("block-elevator-vdb"), "utf8"), /for BlockElevator db \(shop\/staging\)\./);
    });

    it("keeps owner labels inert: quotes, $(...) and backticks are matched as text, never run", async () => {
        const canary = path.join(etc, "canary");
        const evil = `x' $(touch ${canary}) \`touch ${canary}\` "; touch ${canary}; echo '`;
        await claimKnob(remote, diskClaim(evil, "vdb"));
        await claimKnob(remote, diskClaim(evil, "vdb"));
        assert.strictEqual((await refusal(diskClaim(A, "vdb"))).holder, evil);
        assert.strictEqual(await releaseKnob(remote, diskClaim(evil, "vdb")), null);
        assert.ok(!fs.existsSync(canary), "an owner label ran as a command");
    });

    it("refuses an owner label that would add a line to a file header", async () => {
        await assert.rejects(claimKnob(remote, diskClaim('db\nACTION=="add", RUN+="/bin/sh -c reboot"', "vdb")), /one line without control characters/);
        assert.ok(!fs.existsSync(claimFile("block-elevator-vdb")));
    });
});

describe("BlockElevator and HugepagePool keep to their claims (a loopback host)", function () {
    this.timeout(120_000);
    const key = throwawayKey();
    let host: FakeDiskHost;
    const connection = () => ({ host: "127.0.0.1", port: host.ssh.port, user: "root", privateKey: key.privateKey, hostKey: host.ssh.hostKey });
    const claimOnHost = (knob: string) => path.join(host.etc, "kvmtune", "claims", knob);
    const scheduler = () => fs.readFileSync(path.join(host.queue, "scheduler"), "utf8").trim();
    /** What the engine does: check, then create with the checked inputs. */
    async function create(p: { check(o: unknown, n: Record<string, unknown>): Promise<{ inputs?: Record<string, unknown>; failures?: unknown[] }>; create(i: Record<string, unknown>): Promise<{ id: string; outs?: Record<string, unknown> }> }, inputs: Record<string, unknown>) {
        const checked = await p.check({}, { connection: connection(), ...inputs });
        assert.strictEqual(checked.failures, undefined, JSON.stringify(checked.failures));
        return p.create(checked.inputs!);
    }

    before(async () => {
        host = await startFakeDiskHost(key);
    });
    beforeEach(() => host.resetQueue());
    after(async () => {
        closeAll();
        await host?.dispose();
    });

    it("BlockElevator with persist: false still records its claim, and delete releases it", async () => {
        const owner = "BlockElevator db (shop/prod)";
        const r = await create(elevator, { device: host.disk, scheduler: "mq-deadline", persist: false, owner });
        assert.strictEqual(scheduler(), "mq-deadline");
        assert.match(fs.readFileSync(claimOnHost(`block-elevator-${host.disk}`), "utf8"), /^# Managed by kvmtune for BlockElevator db \(shop\/prod\)\./);
        assert.ok(!fs.existsSync(path.join(host.etc, "udev", "rules.d", `61-kvmtune-elevator-${host.disk}.rules`)), "persist: false wrote a rule");

        // A second resource on the same disk is refused before it writes, naming the owner.
        await assert.rejects(create(elevator, { device: host.disk, scheduler: "none", owner: "BlockElevator other (shop/staging)" }), (err: Error) => {
            assert.ok(err instanceof ClaimError, String(err));
            assert.match(err.message, new RegExp(`^the I/O scheduler of ${host.disk} on root@127\\.0\\.0\\.1:\\d+ belongs to BlockElevator db \\(shop/prod\\)`));
            return true;
        });
        assert.strictEqual(scheduler(), "mq-deadline", "the refused resource changed the disk");

        await elevator.delete(r.id, r.outs!);
        assert.ok(!fs.existsSync(claimOnHost(`block-elevator-${host.disk}`)), "delete left the claim");
        assert.strictEqual(scheduler(), "none", "delete did not restore the scheduler");
    });

    it("BlockElevator: refresh reports a udev rule and a claim removed by hand as drift; diff makes it an update, which puts both back", async () => {
        const owner = "BlockElevator db (shop/prod)";
        const r = await create(elevator, { device: host.disk, scheduler: "mq-deadline", persist: true, owner });
        const rule = path.join(host.etc, "udev", "rules.d", `61-kvmtune-elevator-${host.disk}.rules`);
        const ruleText = fs.readFileSync(rule, "utf8");
        const inSync = await elevator.read(r.id, r.outs!);
        assert.deepStrictEqual(inSync.props!.drift, []);
        assert.strictEqual((await elevator.diff(r.id, inSync.props!, r.outs!)).changes, false, "a host in sync is a change");

        // By hand (or a reinstall of /etc): the rule edited, the claim gone. The scheduler itself is as declared.
        fs.writeFileSync(rule, ruleText.replace("mq-deadline", "bfq"));
        fs.rmSync(claimOnHost(`block-elevator-${host.disk}`));
        const drifted = await elevator.read(r.id, r.outs!);
        assert.deepStrictEqual(drifted.props!.drift, [
            `/etc/udev/rules.d/61-kvmtune-elevator-${host.disk}.rules was changed`,
            `the ownership claim /etc/kvmtune/claims/block-elevator-${host.disk} is missing (host reinstalled, or removed by hand)`,
        ]);
        assert.strictEqual(drifted.props!.scheduler, "mq-deadline", "the live scheduler is unchanged: only the kept files drifted");
        assert.strictEqual((await elevator.diff(r.id, drifted.props!, r.outs!)).changes, true, "drift did not make an update");

        fs.rmSync(rule);
        assert.deepStrictEqual((await elevator.read(r.id, r.outs!)).props!.drift, [
            `/etc/udev/rules.d/61-kvmtune-elevator-${host.disk}.rules is missing`,
            `the ownership claim /etc/kvmtune/claims/block-elevator-${host.disk} is missing (host reinstalled, or removed by hand)`,
        ]);
        const checked = await elevator.check(r.outs!, { connection: connection(), device: host.disk, scheduler: "mq-deadline", persist: true, owner });
        assert.strictEqual(checked.failures, undefined, JSON.stringify(checked.failures));
        const updated = await elevator.update(r.id, drifted.props!, checked.inputs!);
        assert.strictEqual(fs.readFileSync(rule, "utf8"), ruleText, "update did not write the rule back");
        assert.match(fs.readFileSync(claimOnHost(`block-elevator-${host.disk}`), "utf8"), /^# Managed by kvmtune for BlockElevator db \(shop\/prod\)\./);
        assert.deepStrictEqual(updated.outs!.drift, []);
        assert.deepStrictEqual((await elevator.read(r.id, updated.outs!)).props!.drift, []);
        await elevator.delete(r.id, updated.outs!);
    });

    it("BlockElevator: a create whose answer was lost (connection cut after the write) and is retried restores the disk as it was before the first attempt", async () => {
        const owner = "BlockElevator db (shop/prod)";
        assert.match(scheduler(), /^\[none\]/);
        // The first attempt changes the disk, then its answer never reaches the engine: no state.
        await create(elevator, { device: host.disk, scheduler: "mq-deadline", persist: true, owner });
        assert.strictEqual(scheduler(), "mq-deadline");
        // The retry finds the disk already changed; its original must still be the disk before the first attempt.
        const retry = await create(elevator, { device: host.disk, scheduler: "mq-deadline", persist: true, owner });
        assert.strictEqual((retry.outs!.original as { scheduler: string }).scheduler, "none");
        await elevator.delete(retry.id, retry.outs!);
        assert.strictEqual(scheduler(), "none", "delete put back what the first attempt found");
        assert.ok(!fs.existsSync(claimOnHost(`block-elevator-${host.disk}`)), "delete left the claim");
    });

    it("BlockElevator delete leaves alone a disk that another resource has taken since", async () => {
        const r = await create(elevator, { device: host.disk, scheduler: "mq-deadline", persist: true, owner: "BlockElevator a (p/s)" });
        const rule = path.join(host.etc, "udev", "rules.d", `61-kvmtune-elevator-${host.disk}.rules`);
        assert.match(fs.readFileSync(rule, "utf8"), /^# Managed by kvmtune for BlockElevator a \(p\/s\)\.\n/);
        // By hand: the claim and rule removed, another stack takes the disk.
        fs.rmSync(claimOnHost(`block-elevator-${host.disk}`));
        fs.rmSync(rule);
        await create(elevator, { device: host.disk, scheduler: "mq-deadline", persist: false, owner: "BlockElevator b (p/s)" });
        // Provider warnings go to the console (host/warn.ts): what the user reads in the update's output.
        const warnings: string[] = [];
        const consoleWarn = console.warn;
        console.warn = (...args: unknown[]) => void warnings.push(args.join(" "));
        try {
            await elevator.delete(r.id, r.outs!);
        } finally {
            console.warn = consoleWarn;
        }
        assert.deepStrictEqual(warnings, [
            `warning: kvmtune: BlockElevator a (p/s): delete left the I/O scheduler of ${host.disk} on root@127.0.0.1:${host.ssh.port} as it is: ` +
                `it belongs to BlockElevator b (p/s) now (/etc/kvmtune/claims/block-elevator-${host.disk}), so nothing was restored and no claim released.`,
        ]);
        assert.match(fs.readFileSync(claimOnHost(`block-elevator-${host.disk}`), "utf8"), /for BlockElevator b \(p\/s\)\./);
        assert.strictEqual(scheduler(), "mq-deadline", "a's delete undid b's setting");
        fs.rmSync(claimOnHost(`block-elevator-${host.disk}`));
    });

    it("HugepagePool is refused a page size another pool owns, before it writes", async () => {
        await claimKnob(new LocalRemote({ etc: host.etc }), { ...poolClaim("HugepagePool first (p/s)", { pageSize: "2M" }) });
        await assert.rejects(create(pool, { pageSize: "2M", nodes: { "0": 1 }, persist: false, owner: "HugepagePool second (p/s)" }), /the 2M huge page pool on root@127\.0\.0\.1:\d+ belongs to HugepagePool first \(p\/s\)/);
        fs.rmSync(claimOnHost("hugepages-2M"));
    });

    it("a HugepagePool create that fails leaves no claim behind", async () => {
        // The host's /sys is read-only here, so the kernel "refuses" the pool after the claim was taken.
        await assert.rejects(create(pool, { pageSize: "2M", nodes: { "0": 1 }, persist: false, owner: "HugepagePool p (p/s)" }), /refused|Read-only/);
        assert.ok(!fs.existsSync(claimOnHost("hugepages-2M")), "a failed create left its claim");
    });
});
