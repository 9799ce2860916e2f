/**
 * Issue 10: "at most one round trip per resource when reading". Every provider's `read` (what
 * `pulumi refresh` and `preview --refresh` call once per resource) runs against a loopback SSH host
 * that counts the commands it is sent; each read must send at most one. And a read that finds what
 * it manages returns it whole: a read that threw or said "gone" would count commands and prove
 * nothing, so each provider also reads something the fake host has (its disk, its huge page
 * pools, a domain and a network a fake virsh answers for, a fake SR-IOV PF laid over a real PCI
 * device's sysfs folder) and the props it returns are checked.
 */
import * as assert from "assert";
import * as fs from "fs";
import { buildDomainXml } from "../../resources/libvirt/domain";
import { buildNetworkXml } from "../../resources/libvirt/network";
import { closeAll } from "../../resources/host/sshPool";
import { numaPinnedGuestSchema, wantedSpec } from "../../resources/providers/numaPinnedGuest";
import { vhostNetworkSchema, wantedNetwork } from "../../resources/providers/vhostNetwork";
import { FakeLibvirt, installFakeVirsh } from "../helpers/fakeLibvirt";
import { FakeSriovPf, makeFakeSriovPf } from "../helpers/fakeSriovPf";
import { FakeDiskHost, startFakeDiskHost } from "../helpers/fakeSshHost";
import { throwawayKey } from "../helpers/fixtures";
import { PROVIDER_CASES } from "../helpers/providerCases";

interface Provider {
    check(olds: unknown, news: Record<string, unknown>): Promise<{ inputs?: Record<string, unknown>; failures?: unknown[] }>;
    create(inputs: Record<string, unknown>): Promise<{ id: string; outs?: Record<string, unknown> }>;
    read(id: string, props: Record<string, unknown>): Promise<unknown>;
}
interface ReadResult {
    id: string;
    props: Record<string, unknown>;
    inputs?: Record<string, unknown>;
}

// eslint-disable-next-line @typescript-eslint/no-require-imports
const providerOf = (module: string) => require(`../../resources/providers/${module}`).provider as Provider;
/** Inputs without the owner label, which the resource class adds and the schemas do not know. */
const withoutOwner = ({ owner: _owner, ...rest }: Record<string, unknown>) => rest;
const GUEST_UUID = "0f8fad5b-d9cb-469f-a165-70867728950e";
const NETWORK_UUID = "5b1ad3a4-1f1f-4a3e-9d7e-0c2f4a7e1b11";

/**
 * Inputs that make a read find something on the loopback host where it can: the fake host's disk
 * for BlockElevator (so the read resolves and reads a queue, not only learns the disk is gone).
 */
const ON_THIS_HOST: Record<string, (host: FakeDiskHost) => Record<string, unknown>> = {
    blockElevator: (host) => ({ device: host.disk }),
};

describe("every provider's read is at most one round trip", function () {
    this.timeout(180_000);
    const key = throwawayKey();
    let host: FakeDiskHost;
    let virsh: FakeLibvirt;
    let pf: FakeSriovPf;
    /** VF 0 as SriovNic sets it, VF 1 as the kernel leaves it; as `ip -j link show` prints them. */
    const IP_VFS = [
        { vf: 0, address: "52:54:00:aa:bb:01", vlan_list: [{ vlan: 100, qos: 2 }], spoofchk: true, trust: true, link_state: "auto", rate: { max_tx: 100 } },
        { vf: 1, address: "00:00:00:00:00:00", vlan_list: [{}], spoofchk: true, trust: false, link_state: "auto", rate: { max_tx: 0 } },
    ];
    const connection = () => ({ host: "127.0.0.1", port: host.ssh.port, user: "root", privateKey: key.privateKey, hostKey: host.ssh.hostKey });

    before(async () => {
        pf = makeFakeSriovPf(IP_VFS);
        host = await startFakeDiskHost(key, { binds: [pf.bind] });
        virsh = installFakeVirsh(host.bin);
        pf.installIp(host.bin);
    });
    after(async () => {
        closeAll();
        await host?.dispose();
        pf?.dispose();
    });

    for (const [name, c] of Object.entries(PROVIDER_CASES)) {
        c.valid.forEach((inputs, n) => {
            it(`${name} (inputs ${n + 1})`, async () => {
                // eslint-disable-next-line @typescript-eslint/no-require-imports
                const provider = require(`../../resources/providers/${c.module}`).provider as Provider;
                const checked = await provider.check({}, { ...inputs, ...(ON_THIS_HOST[name]?.(host) ?? {}), connection: connection() });
                assert.strictEqual(checked.failures, undefined, JSON.stringify(checked.failures));
                // The connection is opened (and counted) by a first read; the second one is the measure.
                await provider.read(`kvmtune-read-test-${n}`, checked.inputs!).catch(() => undefined);
                const before = host.ssh.stats.commands;
                let outcome = "returned";
                await provider.read(`kvmtune-read-test-${n}`, checked.inputs!).catch((err: Error) => (outcome = `threw: ${err.message.split("\n")[0]}`));
                const sent = host.ssh.stats.commands - before;
                assert.ok(sent >= 1, `the read sent no command (${outcome}): the count would prove nothing`);
                assert.ok(sent <= 1, `the read sent ${sent} commands (${outcome}); at most 1 allowed`);
            });
        });
    }

    it("BlockElevator's read found the disk and its queue (the path that used to take two)", async () => {
        const provider = providerOf("blockElevator");
        const checked = await provider.check({}, { device: host.disk, scheduler: "mq-deadline", connection: connection() });
        const r = (await provider.read("x", checked.inputs!)) as ReadResult;
        assert.strictEqual(r.id, "x");
        assert.strictEqual(r.props.kernelName, host.disk);
        // The fake queue says `[none] mq-deadline`: read from the file, not assumed.
        assert.strictEqual(r.props.activeScheduler, "none");
    });

    it("HostFacts' read of the host it was created on returns the same host and its facts", async () => {
        const provider = providerOf("hostFacts");
        const checked = await provider.check({}, { connection: connection() });
        const created = await provider.create(checked.inputs!);
        const r = (await provider.read(created.id, { ...checked.inputs!, ...created.outs })) as ReadResult;
        assert.strictEqual(r.id, created.id);
        const facts = r.props.facts as { hostname: string; numaNodes: unknown };
        assert.strictEqual(facts.hostname, "fakehost");
        assert.deepStrictEqual(facts.numaNodes, (created.outs?.facts as { numaNodes: unknown }).numaNodes);
    });

    it("HugepagePool's read returns the node's pool as this machine's sysfs has it", async () => {
        const provider = providerOf("hugepagePool");
        const checked = await provider.check({}, { connection: connection(), pageSize: "2M", nodes: { "0": 8 } });
        const r = (await provider.read("p", checked.inputs!)) as ReadResult;
        const total = Number(fs.readFileSync("/sys/devices/system/node/node0/hugepages/hugepages-2048kB/nr_hugepages", "utf8"));
        assert.strictEqual(r.id, "p");
        assert.strictEqual((r.props.pools as Record<string, { total: number }>)["0"].total, total);
        // Live values in the input field, so a refresh shows a pool changed behind kvmtune's back.
        assert.deepStrictEqual(r.props.nodes, { "0": total });
    });

    it("NumaPinnedGuest's read of a domain virsh has returns its inputs, pins and state", async () => {
        const provider = providerOf("numaPinnedGuest");
        const checked = await provider.check({}, { ...PROVIDER_CASES.numaPinnedGuest.valid[0], connection: connection() });
        const inputs = checked.inputs!;
        // The domain as kvmtune defined it: its own XML from the same inputs, pins and VF.
        const vfs = [null, "0000:01:10.1"];
        const xml = buildDomainXml(wantedSpec(numaPinnedGuestSchema.parse(withoutOwner(inputs)), [[2], [3]], vfs, [null, null]), String(inputs.owner), GUEST_UUID);
        virsh.answer("dominfo", GUEST_UUID, `Id: 1\nName: g1\nUUID: ${GUEST_UUID}\nState: running\nPersistent: yes\nAutostart: enable\n`);
        virsh.answer("dumpxml", GUEST_UUID, xml);
        virsh.answer("dumpxml --inactive", GUEST_UUID, xml);
        virsh.answer("domstate", GUEST_UUID, "running\n");
        // What state holds after an apply: the inputs and the outputs.
        const state: Record<string, unknown> = {
            ...inputs,
            uuid: GUEST_UUID,
            state: "running",
            resolvedCpuPins: [[2], [3]],
            resolvedEmulatorPin: inputs.emulatorPin,
            emulatorPinReason: null,
            pendingRestart: [],
            owned: true,
            adopted: false,
            vfAddresses: vfs,
            interfaceDefaults: [null, null],
        };
        const r = (await provider.read(GUEST_UUID, state)) as ReadResult;
        assert.strictEqual(r.id, GUEST_UUID);
        assert.strictEqual(r.inputs, undefined, "a refresh, not an import");
        const { connection: _c, ...props } = r.props;
        const { connection: _i, ...expected } = state;
        assert.deepStrictEqual(props, expected);
    });

    it("NumaPinnedGuest's refresh compares an emulator pin kvmtune chose (emulatorPin left out) as chosen: no drift", async () => {
        const provider = providerOf("numaPinnedGuest");
        const { emulatorPin: _e, ...declared } = PROVIDER_CASES.numaPinnedGuest.valid[0];
        const inputs = (await provider.check({}, { ...declared, connection: connection() })).inputs!;
        // As create leaves a huge page guest on a node whose CPUs are all isolated: the emulator on the vCPUs' CPUs.
        const chosen = [2, 3];
        const reason = "the emulator shares the guest's vCPU CPUs 2-3: every CPU of node(s) 1 (2-3) is isolated, ...";
        const vfs = [null, "0000:01:10.1"];
        const xml = buildDomainXml(wantedSpec(numaPinnedGuestSchema.parse(withoutOwner(inputs)), [[2], [3]], vfs, [null, null], chosen), String(inputs.owner), GUEST_UUID);
        virsh.answer("dominfo", GUEST_UUID, `Id: 1\nName: g1\nUUID: ${GUEST_UUID}\nState: running\nPersistent: yes\nAutostart: enable\n`);
        virsh.answer("dumpxml", GUEST_UUID, xml);
        virsh.answer("dumpxml --inactive", GUEST_UUID, xml);
        virsh.answer("domstate", GUEST_UUID, "running\n");
        const state = { ...inputs, uuid: GUEST_UUID, state: "running", resolvedCpuPins: [[2], [3]], resolvedEmulatorPin: chosen, emulatorPinReason: reason, pendingRestart: [], owned: true, adopted: false, vfAddresses: vfs, interfaceDefaults: [null, null] };
        const r = (await provider.read(GUEST_UUID, state)) as ReadResult;
        assert.strictEqual(r.props.emulatorPin, undefined, "the chosen pin is not drift of emulatorPin");
        assert.deepStrictEqual([r.props.resolvedEmulatorPin, r.props.emulatorPinReason], [chosen, reason]);
    });

    it("VhostNetwork's read of a network virsh has returns it, and says what the host lacks as drift", async () => {
        const provider = providerOf("vhostNetwork");
        const checked = await provider.check({}, { ...PROVIDER_CASES.vhostNetwork.valid[0], connection: connection() });
        const inputs = vhostNetworkSchema.parse(withoutOwner(checked.inputs!));
        const xml = buildNetworkXml(wantedNetwork(inputs), String(checked.inputs!.owner), NETWORK_UUID);
        virsh.answer("net-info", inputs.name, `Name: ${inputs.name}\nUUID: ${NETWORK_UUID}\nActive: yes\nPersistent: yes\nAutostart: yes\nBridge: ${inputs.bridge}\n`);
        virsh.answer("net-dumpxml", inputs.name, xml);
        virsh.answer("net-dumpxml --inactive", inputs.name, xml);
        const r = (await provider.read("vhnet0", checked.inputs!)) as ReadResult;
        assert.strictEqual(r.id, "vhnet0");
        assert.strictEqual(r.props.uuid, NETWORK_UUID);
        assert.strictEqual(r.props.owned, true);
        assert.strictEqual(r.props.active, true);
        assert.deepStrictEqual(r.props.guestDefaults, { queues: 2, rxQueueSize: 1024, txQueueSize: 256 });
        // The fake host has no such bridge, uplink or hook: a refresh reports each.
        const drift = r.props.drift as string[];
        assert.ok(drift.includes("bridge kvbr0 is missing from the host"), drift.join("; "));
        assert.ok(drift.includes("uplink kvdummy0 is gone"), drift.join("; "));
    });

    it("SriovNic's read of a PF with VFs returns the PF, its VFs and their settings as the host has them", async () => {
        const provider = providerOf("sriovNic");
        const vf0 = { vf: 0, mac: "52:54:00:aa:bb:01", vlan: 100, qos: 2, spoofchk: true, trust: true, linkState: "auto", maxTxRateMbps: 100 };
        const checked = await provider.check({}, { connection: connection(), pf: pf.pciAddress, numVfs: 2, vfs: [vf0], persist: false });
        assert.strictEqual(checked.failures, undefined, JSON.stringify(checked.failures));
        const original = { numVfs: 0, vfs: [], pfUp: true };
        const r = (await provider.read(`fakehost/${pf.pciAddress}`, { ...checked.inputs!, original })) as ReadResult;
        assert.strictEqual(r.id, `fakehost/${pf.pciAddress}`);
        assert.strictEqual(r.props.pfName, pf.netdev);
        assert.strictEqual(r.props.pfPciAddress, pf.pciAddress);
        assert.strictEqual(r.props.totalVfs, 7);
        assert.strictEqual(r.props.numaNode, 0);
        assert.strictEqual(r.props.numVfs, 2);
        // The listed VF as the host has it; VF 1 has the kernel's defaults, so it is no drift.
        assert.deepStrictEqual(r.props.vfs, [vf0]);
        assert.deepStrictEqual(
            (r.props.vfDevices as Array<{ vf: number; pciAddress: string }>).map((d) => [d.vf, d.pciAddress]),
            [
                [0, "0000:41:10.0"],
                [1, "0000:41:10.1"],
            ],
        );
        assert.deepStrictEqual(r.props.original, original);
        // No claim on the host for this PF (nothing created it here): refresh says so, and diff makes it an update.
        const claim = `/etc/kvmtune/claims/sriov-${pf.pciAddress.toLowerCase().replace(/:/g, "-")}`;
        assert.deepStrictEqual(r.props.drift, [`the ownership claim ${claim} is missing (host reinstalled, or removed by hand)`]);
        const diff = (await (provider as unknown as { diff(id: string, o: unknown, n: unknown): Promise<{ changes: boolean }> }).diff(r.id, r.props, checked.inputs!));
        assert.strictEqual(diff.changes, true, "a missing claim did not make an update");
    });
});
