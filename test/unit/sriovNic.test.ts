/**
 * SriovNic without a host: the schema and its errors, the field policy, the way through 0 VFs, the
 * VF commands (run through a local shell against a stand-in `ip`), parsing of iproute2's JSON and
 * of the PF read, ownership, the boot script and unit, the VF pool network XML checked by libvirt's
 * `virt-xml-validate`, and which running guests hold VFs.
 */
import * as assert from "assert";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { managedHeader } from "../../resources/host/files";
import { runScript } from "../../resources/host/remote";
import { buildDomainXml, GuestSpec } from "../../resources/libvirt/domain";
import { holdersIn, holdersMessage } from "../../resources/libvirt/vfHolders";
import { buildVfPoolNetworkXml, networkConflict, parseVfPoolNetworkXml } from "../../resources/libvirt/vfPoolNetwork";
import {
    bootScript,
    bootUnit,
    checkPf,
    countPlan,
    defaultVf,
    mismatches,
    parsePfState,
    parseVfInfo,
    persistScript,
    pfClaim,
    PfState,
    provider,
    readPfScript,
    sriovNicSchema,
    vfCommands,
    vfsThatGo,
    VfSettings,
    wantedVfs,
} from "../../resources/providers/sriovNic";
import { goodConnection, throwawayKey } from "../helpers/fixtures";
import { closeAll } from "../../resources/host/sshPool";
import { FakeDiskHost, startFakeDiskHost } from "../helpers/fakeSshHost";
import { FakeSriovPf, makeFakeSriovPf } from "../helpers/fakeSriovPf";
import { createKnob } from "../../resources/host/knob";
import { LocalRemote } from "../helpers/localRemote";
import { virtXmlValidate } from "../helpers/virtXmlValidate";

const check = (i: Record<string, unknown>) => provider.check({}, { connection: goodConnection(), pf: "enp65s0", numVfs: 4, ...i });
const props = async (i: Record<string, unknown>) => (await check(i)).failures?.map((f) => f.property) ?? [];
const parse = (i: Record<string, unknown>) => sriovNicSchema.parse({ connection: goodConnection(), pf: "enp65s0", numVfs: 4, ...i });
const vf0 = (v: Record<string, unknown>) => ({ vfs: [{ vf: 0, ...v }] });

/** `ip -j link show enp65s0` on the lab's igb PF with 2 VFs: VF 0 set, VF 1 at the defaults. */
const IP_JSON = JSON.stringify([
    {
        ifindex: 3, ifname: "enp65s0", flags: ["BROADCAST", "MULTICAST", "UP", "LOWER_UP"], address: "52:54:00:01:11:00",
        vfinfo_list: [
            { vf: 0, link_type: "ether", address: "52:54:00:aa:bb:01", broadcast: "ff:ff:ff:ff:ff:ff", vlan_list: [{ vlan: 100, qos: 3 }], rate: { max_tx: 100, min_tx: 0 }, spoofchk: false, link_state: "auto", trust: true },
            { vf: 1, link_type: "ether", address: "00:00:00:00:00:00", broadcast: "ff:ff:ff:ff:ff:ff", vlan_list: [{}], rate: { max_tx: 0, min_tx: 0 }, spoofchk: true, link_state: "auto", trust: false },
        ],
    },
]);

/** A read script's output, in sysfs.ts's record format. */
function dumpText(d: { files?: Record<string, string>; links?: Record<string, string>; commands?: Record<string, [string, number]> }): string {
    let out = "";
    for (const [k, v] of Object.entries(d.files ?? {})) out += `\x1eF\x1f${k}\n${v}\n`;
    for (const [k, v] of Object.entries(d.links ?? {})) out += `\x1eL\x1f${k}\n${v}\n`;
    for (const [k, [v, rc]] of Object.entries(d.commands ?? {})) out += `\x1eC\x1f${k}\n${v}\n\x1eX\x1f${k}\n${rc}\n`;
    return out;
}

const DEV = "/sys/class/net/enp65s0/device";
/** The lab PF as the read script returns it, with kvmtune's records given in `records`. */
function labPf(records: Record<string, string> = {}, enabled = "", links: Record<string, string> = {}): string {
    return dumpText({
        files: {
            "/etc/hostname": "lab1",
            [`${DEV}/sriov_numvfs`]: "2",
            [`${DEV}/sriov_totalvfs`]: "7",
            [`${DEV}/numa_node`]: "1",
            [`${DEV}/net/enp65s0/flags`]: "0x1003",
            [`${DEV}/net/enp65s0/carrier`]: "1",
            [`${DEV}/virtfn0/net/enp65s0v0/ifindex`]: "5",
            ...records,
        },
        links: {
            [DEV]: "/sys/devices/pci0000:40/0000:40:00.0/0000:41:00.0",
            [`${DEV}/driver`]: "/sys/bus/pci/drivers/igb",
            [`${DEV}/virtfn0`]: "/sys/devices/pci0000:40/0000:40:00.0/0000:41:10.0",
            [`${DEV}/virtfn1`]: "/sys/devices/pci0000:40/0000:40:00.0/0000:41:10.2",
            ...links,
        },
        commands: { ip: [IP_JSON, 0], enabled: [enabled, 0] },
    });
}

describe("SriovNic inputs", () => {
    it("takes a PF by interface name or PCI address (normalized to lower case)", async () => {
        assert.deepStrictEqual(await props({ pf: "enp65s0" }), []);
        assert.deepStrictEqual(await props({ pf: "ens1f0.100" }), []);
        assert.strictEqual(parse({ pf: "0000:41:00.0" }).pf, "0000:41:00.0");
        assert.strictEqual(parse({ pf: "0000:AF:00.1" }).pf, "0000:af:00.1");
    });

    it("refuses PF names that are not interface names or PCI addresses, naming the field", async () => {
        for (const pf of ["", "eth0;reboot", "../eth0", "eth 0", "enp65s0f0np0abcd" /* 16 */, "0000:41:00", "0000:41:00.8", "$(id)", "a/b", "-eth0"]) {
            const r = await check({ pf });
            assert.deepStrictEqual(r.failures?.map((f) => f.property), ["pf"], pf);
            assert.match(r.failures![0].reason, /network interface name .* or a PCI address/, pf);
        }
    });

    it("takes 0 to 256 VFs, whole numbers only", async () => {
        for (const numVfs of [0, 1, 7, 256]) assert.deepStrictEqual(await props({ numVfs }), [], String(numVfs));
        for (const numVfs of [-1, 1.5, 257, "4", null]) assert.deepStrictEqual(await props({ numVfs }), ["numVfs"], String(numVfs));
    });

    it("refuses settings for a VF the count does not create, and a VF set twice", async () => {
        const r = await check({ numVfs: 2, vfs: [{ vf: 2 }] });
        assert.deepStrictEqual(r.failures?.map((f) => f.property), ["vfs.0.vf"]);
        assert.match(r.failures![0].reason, /numVfs is 2: VFs are 0 to 1/);
        assert.match((await check({ numVfs: 0, vfs: [{ vf: 0 }] })).failures![0].reason, /numVfs is 0: there are no VFs to set/);
        const twice = await check({ vfs: [{ vf: 1 }, { vf: 1, trust: true }] });
        assert.deepStrictEqual(twice.failures?.map((f) => [f.property, /already set by vfs.0/.test(f.reason)]), [["vfs.1.vf", true]]);
    });

    it("refuses bad MACs: malformed, multicast, all zeros, used twice", async () => {
        for (const mac of ["52:54:00:zz:00:01", "52-54-00-00-00-01", "52:54:00:00:00", "01:00:5e:00:00:01", "ff:ff:ff:ff:ff:ff", "00:00:00:00:00:00", "52:54:00:00:00:01\n"]) {
            assert.deepStrictEqual(await props(vf0({ mac })), ["vfs.0.mac"], mac);
        }
        assert.match((await check(vf0({ mac: "03:00:00:00:00:01" }))).failures![0].reason, /unicast/);
        const twice = await check({ vfs: [{ vf: 0, mac: "52:54:00:00:00:01" }, { vf: 1, mac: "52:54:00:00:00:01" }] });
        assert.deepStrictEqual(twice.failures?.map((f) => f.property), ["vfs.1.mac"]);
        assert.strictEqual(parse(vf0({ mac: "52:54:00:AA:BB:CC" })).vfs[0].mac, "52:54:00:aa:bb:cc");
    });

    it("takes VLAN 0-4095 and priority 0-7 (a priority needs a VLAN)", async () => {
        for (const vlan of [0, 1, 4094, 4095]) assert.deepStrictEqual(await props(vf0({ vlan })), [], String(vlan));
        for (const vlan of [-1, 4096, 1.5, "100"]) assert.deepStrictEqual(await props(vf0({ vlan })), ["vfs.0.vlan"], String(vlan));
        assert.deepStrictEqual(await props(vf0({ vlan: 10, qos: 7 })), []);
        assert.deepStrictEqual(await props(vf0({ vlan: 10, qos: 8 })), ["vfs.0.qos"]);
        const r = await check(vf0({ qos: 3 }));
        assert.deepStrictEqual(r.failures?.map((f) => f.property), ["vfs.0.qos"]);
        assert.match(r.failures![0].reason, /a priority needs a VLAN/);
    });

    it("takes rates in whole Mbit/s, link states by name, and no unknown VF fields", async () => {
        for (const maxTxRateMbps of [0, 100, 1_000_000]) assert.deepStrictEqual(await props(vf0({ maxTxRateMbps })), []);
        for (const maxTxRateMbps of [-1, 0.5, 1_000_001]) assert.deepStrictEqual(await props(vf0({ maxTxRateMbps })), ["vfs.0.maxTxRateMbps"], String(maxTxRateMbps));
        assert.deepStrictEqual(await props(vf0({ linkState: "up" })), ["vfs.0.linkState"]);
        const stray = await check(vf0({ minTxRate: 10 }));
        assert.match(stray.failures![0].reason, /unknown field\(s\) minTxRate/);
    });

    it("fills in the kernel's defaults for what a VF entry leaves out", () => {
        assert.deepStrictEqual(parse(vf0({})).vfs[0], defaultVf(0));
        const i = parse({ persist: undefined });
        assert.strictEqual(i.persist, true);
        assert.deepStrictEqual(i.vfs, []);
    });

    it("checks the pool network's name, and that there are VFs for it", async () => {
        assert.deepStrictEqual(await props({ libvirtNetwork: "sriov-pool1" }), []);
        assert.deepStrictEqual(await props({ libvirtNetwork: "bad name" }), ["libvirtNetwork"]);
        const r = await check({ numVfs: 0, libvirtNetwork: "pool" });
        assert.deepStrictEqual(r.failures?.map((f) => f.property), ["libvirtNetwork"]);
        assert.match(r.failures![0].reason, /needs VFs/);
    });
});

describe("SriovNic field policy", () => {
    const olds = { connection: goodConnection(), pf: "enp65s0", numVfs: 4, vfs: [{ vf: 0, mac: "52:54:00:00:00:01" }], owner: "SriovNic n", pfName: "enp65s0", original: { numVfs: 0, vfs: [], pfUp: false } };
    const news = (change: Record<string, unknown>) => ({ connection: goodConnection(), pf: "enp65s0", numVfs: 4, vfs: [{ vf: 0, mac: "52:54:00:00:00:01" }], owner: "SriovNic n", ...change });

    it("replaces for another PF; everything else is an update in place", async () => {
        assert.strictEqual((await provider.diff("id", olds, news({}))).changes, false, "defaults and outputs are not changes");
        assert.deepStrictEqual((await provider.diff("id", olds, news({ pf: "enp33s0" }))).replaces, ["pf"]);
        for (const change of [{ numVfs: 2 }, { vfs: [{ vf: 0, mac: "52:54:00:00:00:02" }] }, { vfs: [] }, { persist: false }, { libvirtNetwork: "pool" }]) {
            const d = await provider.diff("id", olds, news(change));
            assert.deepStrictEqual([d.changes, d.replaces], [true, []], JSON.stringify(change));
        }
        const moved = await provider.diff("id", olds, news({ connection: goodConnection({ host: "10.0.0.9" }) }));
        assert.deepStrictEqual([moved.changes, moved.replaces], [true, []], "a host's new address is the same host");
    });
});

describe("SriovNic VF count", () => {
    it("goes through 0 between two non-zero counts, and only then", () => {
        assert.deepStrictEqual(countPlan(4, 2), [0, 2]);
        assert.deepStrictEqual(countPlan(2, 3), [0, 3]);
        assert.deepStrictEqual(countPlan(0, 3), [3]);
        assert.deepStrictEqual(countPlan(3, 0), [0]);
        assert.deepStrictEqual(countPlan(3, 3), []);
    });

    it("counts every present VF as going when the count changes off a non-zero value", () => {
        const devices = [0, 1, 2].map((vf) => ({ vf, pciAddress: `0000:41:10.${vf * 2}`, netdev: `enp65s0v${vf}` }));
        assert.deepStrictEqual(vfsThatGo(3, 4, devices).map((d) => d.vf), [0, 1, 2], "growing goes through 0 too");
        assert.deepStrictEqual(vfsThatGo(3, 2, devices).length, 3);
        assert.deepStrictEqual(vfsThatGo(3, 0, devices).length, 3);
        assert.deepStrictEqual(vfsThatGo(3, 3, devices), []);
        assert.deepStrictEqual(vfsThatGo(0, 3, []), []);
    });

    it("reports a driver that enabled fewer VFs than asked with both numbers", () => {
        const pf = parsePfState("enp65s0", labPf()) as PfState;
        assert.deepStrictEqual(mismatches(parse({ numVfs: 4 }), pf), ["numVfs: asked 4, the driver enabled 2 (sriov_numvfs reads 2)"]);
    });
});

describe("SriovNic VF settings", function () {
    this.timeout(60_000);
    const ref = { arg: "enp65s0", carrier: "/sys/class/net/enp65s0/carrier" };
    const label = (vf: number) => `vfs.${vf}`;
    const want = (v: Partial<VfSettings> & { vf: number }): VfSettings => ({ ...defaultVf(v.vf), ...v });

    it("sets only what differs, one setting per command, in the order drivers take them", () => {
        const live = parseVfInfo(IP_JSON);
        assert.deepStrictEqual(vfCommands(ref, live, live, label), [], "nothing differs: nothing runs");
        const lines = vfCommands(ref, [want({ vf: 0, mac: "52:54:00:aa:bb:01", vlan: 200, qos: 3, spoofchk: false, trust: true, maxTxRateMbps: 100 }), want({ vf: 1, trust: true })], live, label);
        const sets = lines.map((l) => /ip link set dev enp65s0 (vf \d+ [^)]*?) 2>&1/.exec(l)?.[1]).filter(Boolean);
        assert.deepStrictEqual(sets, ["vf 0 vlan 200 qos 3", "vf 1 trust on"]);
        // Back to the defaults: MAC cleared with zeros, VLAN 0, checks on, limit off.
        const reset = vfCommands(ref, [defaultVf(0)], live, label).map((l) => /vf 0 ([^)]*?) 2>&1/.exec(l)?.[1]);
        assert.deepStrictEqual(reset, ["mac 00:00:00:00:00:00", "vlan 0 qos 0", "spoofchk on", "trust off", "max_tx_rate 0"]);
    });

    it("waits for the PF's carrier before a rate limit (igb refuses one while the link is down)", () => {
        const lines = vfCommands(ref, [want({ vf: 0, maxTxRateMbps: 100 }), want({ vf: 1, maxTxRateMbps: 50 })], [], label);
        assert.match(lines[0], /while \[ "\$\(cat \/sys\/class\/net\/enp65s0\/carrier 2>\/dev\/null\)" != 1 \]/);
        assert.strictEqual(lines.filter((l) => l.includes("carrier")).length, 1, "waits once");
    });

    it("runs the commands; a refusal names the field, the command and the driver's answer", async () => {
        const dir = fs.mkdtempSync(path.join(os.tmpdir(), "kvmtune-ip-"));
        try {
            // A stand-in ip: logs its arguments, refuses `state` as igb does.
            fs.writeFileSync(
                path.join(dir, "ip"),
                `#!/bin/sh\necho "$*" >> ${dir}/calls\ncase "$*" in *" state "*) echo "RTNETLINK answers: Operation not supported" >&2; exit 2;; esac\n`,
                { mode: 0o755 },
            );
            const run = (lines: string[]) => runScript(new LocalRemote(), `PATH=${dir}:$PATH\n${lines.join("\n")}`);
            await run(vfCommands(ref, [want({ vf: 2, mac: "52:54:00:00:00:02", trust: true })], [], (vf) => `vfs.${vf - 2}`));
            assert.deepStrictEqual(fs.readFileSync(path.join(dir, "calls"), "utf8").trim().split("\n"), [
                "link set dev enp65s0 vf 2 mac 52:54:00:00:00:02",
                "link set dev enp65s0 vf 2 trust on",
            ]);
            await assert.rejects(
                run(vfCommands(ref, [want({ vf: 0, linkState: "enable", trust: true })], [], label)),
                (e: Error) => /vfs\.0\.linkState: the driver refused `state enable` for VF 0: RTNETLINK answers: Operation not supported/.test(e.message),
            );
        } finally {
            fs.rmSync(dir, { recursive: true, force: true });
        }
    });

    it("parses iproute2's JSON, old and new VLAN forms; an unset MAC is no MAC", () => {
        const [v0, v1] = parseVfInfo(IP_JSON);
        assert.deepStrictEqual(v0, { vf: 0, mac: "52:54:00:aa:bb:01", vlan: 100, qos: 3, spoofchk: false, trust: true, linkState: "auto", maxTxRateMbps: 100 });
        assert.deepStrictEqual(v1, defaultVf(1));
        const old = JSON.stringify([{ vfinfo_list: [{ vf: 0, address: "52:54:00:00:00:09", vlan: 7, qos: 1, max_tx_rate: 10, link_state: "disable" }] }]);
        assert.deepStrictEqual(parseVfInfo(old)[0], { vf: 0, mac: "52:54:00:00:00:09", vlan: 7, qos: 1, spoofchk: true, trust: false, linkState: "disable", maxTxRateMbps: 10 });
        assert.deepStrictEqual(parseVfInfo(JSON.stringify([{ ifname: "eth0" }])), [], "a NIC without VFs");
    });
});

describe("SriovNic PF read and ownership", () => {
    it("reads the PF, its VFs' addresses and netdevs, NUMA node and link from one dump", () => {
        const pf = parsePfState("enp65s0", labPf()) as PfState;
        assert.deepStrictEqual(
            { name: pf.name, pci: pf.pciAddress, driver: pf.driver, numVfs: pf.numVfs, total: pf.totalVfs, numa: pf.numaNode, up: pf.adminUp, carrier: pf.carrier, host: pf.hostname },
            { name: "enp65s0", pci: "0000:41:00.0", driver: "igb", numVfs: 2, total: 7, numa: 1, up: true, carrier: true, host: "lab1" },
        );
        assert.deepStrictEqual(pf.devices, [
            { vf: 0, pciAddress: "0000:41:10.0", netdev: "enp65s0v0" },
            { vf: 1, pciAddress: "0000:41:10.2", netdev: null },
        ]);
        assert.strictEqual(pf.vfs[0].vlan, 100);
        assert.strictEqual(parsePfState("nope0", dumpText({ files: { "/etc/hostname": "lab1" } })), null, "a missing PF reads as null");
    });

    it("reads a PF named by PCI address under /sys/bus/pci, the netdev from its net folder", () => {
        const d = "/sys/bus/pci/devices/0000:41:00.0";
        const text = dumpText({ files: { [`${d}/sriov_numvfs`]: "0", [`${d}/sriov_totalvfs`]: "7", [`${d}/net/enp65s0/flags`]: "0x1002" }, links: { [d]: "/sys/devices/pci0000:40/0000:40:00.0/0000:41:00.0" } });
        const pf = parsePfState("0000:41:00.0", text) as PfState;
        assert.deepStrictEqual([pf.name, pf.numVfs, pf.adminUp, pf.numaNode], ["enp65s0", 0, false, null]);
        assert.match(readPfScript("0000:41:00.0"), /\/sys\/bus\/pci\/devices\/0000:41:00\.0\/sriov_numvfs/);
    });

    it("finds the owner in the PF's claim first, then in the boot unit, its script, or an earlier kvmtune's owner file", () => {
        const header = managedHeader("SriovNic a (kvmtune/s1)");
        const claim = "/etc/kvmtune/claims/sriov-0000-41-00.0";
        for (const file of [claim, "/etc/systemd/system/kvmtune-sriov-enp65s0.service", "/etc/kvmtune/sriov-enp65s0.sh", "/etc/kvmtune/sriov-enp65s0.owner"]) {
            const pf = parsePfState("enp65s0", labPf({ [file]: header + "x\n" })) as PfState;
            assert.deepStrictEqual(pf.owner, { owner: "SriovNic a (kvmtune/s1)", file }, file);
        }
        const both = parsePfState("enp65s0", labPf({ [claim]: managedHeader("SriovNic b (p/s)"), "/etc/kvmtune/sriov-enp65s0.sh": header })) as PfState;
        assert.deepStrictEqual(both.owner, { owner: "SriovNic b (p/s)", file: claim }, "the claim is the record");
        // Another PF's records are not this PF's; a file whose first line is not kvmtune's names nobody.
        assert.strictEqual((parsePfState("enp65s0", labPf({ "/etc/kvmtune/sriov-enp33s0.owner": header, "/etc/kvmtune/claims/sriov-0000-21-00.0": header })) as PfState).owner, null);
        assert.strictEqual((parsePfState("enp65s0", labPf({ "/etc/kvmtune/sriov-enp65s0.sh": "#!/bin/sh\n" + header })) as PfState).owner, null);
        assert.match(readPfScript("enp65s0"), /\/etc\/kvmtune\/claims\/sriov-\*/);
    });

    it("claims the PF by PCI address, with its boot files and the old owner file as the knob's files", () => {
        const byName = pfClaim("SriovNic a (p/s)", { name: "enp65s0", pciAddress: "0000:41:00.0" });
        const byAddress = pfClaim("SriovNic b (p/s)", { name: "enp65s0", pciAddress: "0000:41:00.0".toUpperCase() });
        assert.strictEqual(byName.knob, "sriov-0000-41-00.0");
        assert.strictEqual(byAddress.knob, byName.knob, "one PF, one knob");
        assert.deepStrictEqual(byName.files, ["/etc/systemd/system/kvmtune-sriov-enp65s0.service", "/etc/kvmtune/sriov-enp65s0.sh", "/etc/kvmtune/sriov-enp65s0.owner"]);
        assert.match(byName.what, /SR-IOV VFs of enp65s0 \(0000:41:00\.0\)/);
    });

    it("a create retried after one cut off half-way records the PF as it was before the first attempt, not the half-applied VFs", async function () {
        this.timeout(20_000);
        // A private /etc (as root, in a mount namespace) holds the claims.
        const etc = fs.mkdtempSync(path.join(os.tmpdir(), "kvmtune-sriov-claim-"));
        const remote = new LocalRemote({ etc });
        const owner = "SriovNic nic (kvmtune/s1)";
        const untouched = parsePfState("enp65s0", labPf()) as PfState;
        const seenNow = (pf: PfState) => ({ numVfs: pf.numVfs, vfs: pf.vfs, pfUp: pf.adminUp });
        // The create's own sequence (host/knob.ts), as the provider runs it: the first attempt is
        // cut after it changed the PF, so neither its undo nor its release reaches the host.
        const cut = () => Promise.reject(new Error("the connection to the host was lost"));
        const firstAttempt = createKnob(remote, { ...pfClaim(owner, untouched, [], seenNow(untouched)), original: seenNow(untouched) }, cut, cut);
        await assert.rejects(firstAttempt, /connection to the host was lost/);
        // That attempt had enabled 4 VFs and brought the PF down.
        const halfApplied: PfState = { ...untouched, numVfs: 4, adminUp: false, vfs: [...untouched.vfs, defaultVf(2), defaultVf(3)] };
        const recorded = await createKnob(
            remote,
            { ...pfClaim(owner, halfApplied, [], seenNow(halfApplied)), original: seenNow(halfApplied) },
            async (original) => original,
            cut,
        );
        assert.deepStrictEqual(recorded, { numVfs: 2, vfs: untouched.vfs, pfUp: true }, "the retry took the half-applied PF for the original");
        fs.rmSync(etc, { recursive: true, force: true });
    });

    it("leaves alone a VF a guest holds through vfio-pci (its interface set MAC and VLAN), unless it declares that VF", () => {
        // VF 0 carries 52:54:00:aa:bb:01 and VLAN 100 (IP_JSON), bound to vfio-pci: a guest's hostdev interface set them.
        const held = parsePfState("enp65s0", labPf({}, "", { [`${DEV}/virtfn0/driver`]: "/sys/bus/pci/drivers/vfio-pci" })) as PfState;
        assert.strictEqual(held.devices[0].driver, "vfio-pci");
        const undeclared = parse({ pf: "enp65s0", numVfs: 2 });
        assert.deepStrictEqual(mismatches(undeclared, held), [], "SriovNic would fight the guest's interface over VF 0");
        assert.deepStrictEqual(wantedVfs(undeclared, [0]).map((v) => v.vf), [1]);
        // Not held (igbvf): VF 0's settings are off the defaults SriovNic keeps.
        const free = parsePfState("enp65s0", labPf({}, "", { [`${DEV}/virtfn0/driver`]: "/sys/bus/pci/drivers/igbvf" })) as PfState;
        assert.match(mismatches(undeclared, free).join("; "), /VF 0|vfs\.0|mac/);
        // Declared: SriovNic's settings stand, held or not.
        const declared = parse({ pf: "enp65s0", numVfs: 2, vfs: [{ vf: 0, mac: "52:54:00:aa:bb:02" }] });
        assert.match(mismatches(declared, held).join("; "), /mac: asked 52:54:00:aa:bb:02/);
    });

    it("refuses more VFs than the PF offers, a NIC without SR-IOV, and a VF as PF", () => {
        const pf = parsePfState("enp65s0", labPf()) as PfState;
        assert.deepStrictEqual(checkPf(parse({ numVfs: 8 }), pf, "lab1"), ["numVfs: got 8; enp65s0 on lab1 offers at most 7 VFs (sriov_totalvfs)"]);
        assert.match(checkPf(parse({ pf: "enp0s5" }), { ...pf, totalVfs: null, driver: "virtio_net" }, "lab1")[0], /pf: enp0s5 on lab1 \(driver virtio_net\) has no SR-IOV/);
        assert.match(checkPf(parse({ pf: "enp65s0v0" }), { ...pf, isVf: true, totalVfs: null }, "lab1")[0], /is itself a VF/);
    });

    it("treats a persisted PF as persisted only with script, unit and the unit enabled", () => {
        const files = { "/etc/systemd/system/kvmtune-sriov-enp65s0.service": "u", "/etc/kvmtune/sriov-enp65s0.sh": "s" };
        assert.strictEqual((parsePfState("enp65s0", labPf(files, "kvmtune-sriov-enp65s0.service enabled")) as PfState).persisted, true);
        assert.strictEqual((parsePfState("enp65s0", labPf(files, "kvmtune-sriov-enp65s0.service disabled")) as PfState).persisted, false);
        assert.strictEqual((parsePfState("enp65s0", labPf({ "/etc/kvmtune/sriov-enp65s0.sh": "s" }, "")) as PfState).persisted, false);
    });
});

describe("SriovNic boot persistence", function () {
    this.timeout(60_000);
    const i = parse({ numVfs: 3, vfs: [{ vf: 0, mac: "52:54:00:aa:bb:01", vlan: 100, trust: true, spoofchk: false }] });

    it("orders the unit before libvirt in either daemon layout and names the owner", () => {
        const unit = bootUnit("SriovNic nic (kvmtune/lab)", "enp65s0");
        assert.match(unit, /^# Managed by kvmtune for SriovNic nic \(kvmtune\/lab\)\./);
        // Monolithic libvirtd, or the modular daemons that take VFs: QEMU's, the network's (a hostdev
        // pool of VFs) and the node devices'; then libvirt-guests, which starts guests at boot.
        assert.match(unit, /^Before=libvirtd\.service virtqemud\.service virtnetworkd\.service virtnodedevd\.service libvirt-guests\.service$/m);
        assert.match(unit, /^Wants=sys-subsystem-net-devices-enp65s0\.device$/m, "waits for udev to have named the PF");
        assert.match(unit, /^After=sys-subsystem-net-devices-enp65s0\.device /m);
        assert.match(bootUnit("o", "br-lan0"), /^Wants=sys-subsystem-net-devices-br\\x2dlan0\.device$/m, "escaped as systemd does");
        assert.match(unit, /^Type=oneshot$/m);
        assert.match(unit, /^ExecStart=\/bin\/sh \/etc\/kvmtune\/sriov-enp65s0\.sh$/m);
        assert.match(unit, /^WantedBy=multi-user\.target$/m);
    });

    it("the boot script finds the PF by PCI address at each use, goes through 0, brings the PF up and sets the VFs", async () => {
        const dir = fs.mkdtempSync(path.join(os.tmpdir(), "kvmtune-boot-"));
        try {
            // A stand-in PCI device with 2 VFs whose netdev is still eth1, and a stand-in ip that
            // logs its arguments and, like udev at boot, renames the PF to enp65s0 after the first call.
            fs.mkdirSync(path.join(dir, "dev", "net", "eth1"), { recursive: true });
            fs.writeFileSync(path.join(dir, "dev", "sriov_numvfs"), "2\n");
            fs.writeFileSync(
                path.join(dir, "ip"),
                `#!/bin/sh\necho "ip $*" >> ${dir}/calls\n[ -d ${dir}/dev/net/eth1 ] && mv ${dir}/dev/net/eth1 ${dir}/dev/net/enp65s0\nexit 0\n`,
                { mode: 0o755 },
            );
            const script = bootScript("SriovNic nic (kvmtune/lab)", "0000:41:00.0", i);
            assert.match(script, /^# Managed by kvmtune for SriovNic nic \(kvmtune\/lab\)\./);
            assert.match(script, /^\s*if \[ "\$cur" != 0 \]; then echo 0 > "\$dev\/sriov_numvfs"/m, "a non-zero count goes to 0 first");
            const local = script.replace(/^dev=.*$/m, `dev=${dir}/dev`);
            assert.notStrictEqual(local, script);
            await runScript(new LocalRemote(), `PATH=${dir}:$PATH\n${local}`);
            assert.strictEqual(fs.readFileSync(path.join(dir, "dev", "sriov_numvfs"), "utf8").trim(), "3");
            assert.deepStrictEqual(fs.readFileSync(path.join(dir, "calls"), "utf8").trim().split("\n"), [
                "ip link set dev eth1 up",
                // Renamed meanwhile: the PF is found again by its PCI address, never the stale name.
                "ip link set dev enp65s0 vf 0 mac 52:54:00:aa:bb:01",
                "ip link set dev enp65s0 vf 0 vlan 100 qos 0",
                "ip link set dev enp65s0 vf 0 spoofchk off",
                "ip link set dev enp65s0 vf 0 trust on",
            ]);
        } finally {
            fs.rmSync(dir, { recursive: true, force: true });
        }
    });
});

describe("SriovNic persistence writes", () => {
    const owner = "SriovNic nic (kvmtune/lab)";
    const i = parse({ numVfs: 2, vfs: [{ vf: 0, trust: true }] });
    const pf = { name: "enp65s0", pciAddress: "0000:41:00.0", persisted: false, files: {} };

    it("writes script and unit, enables the unit and reloads systemd once", () => {
        const script = persistScript(owner, pf, i);
        assert.match(script, /\/etc\/kvmtune\/sriov-enp65s0\.sh/);
        assert.match(script, /\/etc\/systemd\/system\/kvmtune-sriov-enp65s0\.service/);
        assert.strictEqual(script.match(/daemon-reload/g)?.length, 1);
        assert.match(script, /systemctl --no-reload enable kvmtune-sriov-enp65s0\.service/);
    });

    it("leaves files that are already as wanted alone: nothing to run, no reload", () => {
        const unit = bootUnit(owner, "enp65s0");
        const script = bootScript(owner, "0000:41:00.0", i);
        // The read drops trailing newlines, as the dump does.
        const written = { ...pf, persisted: true, files: { unit: unit.trimEnd(), script: script.trimEnd() } };
        assert.strictEqual(persistScript(owner, written, i), "");
        const changed = persistScript(owner, written, { ...i, numVfs: 3 });
        assert.match(changed, /sriov-enp65s0\.sh/);
        assert.doesNotMatch(changed, /daemon-reload|kvmtune-sriov-enp65s0\.service/, "only the script changed");
    });

    it("with persist off writes nothing (the claim records the owner), and removes a unit or an old owner file left from before", () => {
        const off = { ...i, persist: false };
        assert.strictEqual(persistScript(owner, pf, off), "");
        const was = persistScript(owner, { ...pf, persisted: true, files: { unit: "u", script: "s" } }, off);
        assert.match(was, /systemctl --no-reload disable kvmtune-sriov-enp65s0\.service/);
        assert.match(was, /rm -f \/etc\/systemd\/system\/kvmtune-sriov-enp65s0\.service/);
        assert.match(persistScript(owner, { ...pf, files: { owner: managedHeader(owner) } }, off), /rm -f \/etc\/kvmtune\/sriov-enp65s0\.owner/);
        assert.match(persistScript(owner, { ...pf, files: { owner: managedHeader(owner) } }, i), /rm -f \/etc\/kvmtune\/sriov-enp65s0\.owner/);
    });
});

describe("SriovNic libvirt XML", function () {
    this.timeout(60_000); // virt-xml-validate runs xmllint: slow on a busy machine

    it("builds a VF pool network that passes virt-xml-validate, hostile owner text escaped", () => {
        for (const owner of ["SriovNic nic (kvmtune/lab)", `o <x> 'q' "d" & more`]) {
            const xml = buildVfPoolNetworkXml("kvmtune-pool", "enp65s0", owner);
            const r = virtXmlValidate(xml, "network");
            assert.ok(r.ok, r.out);
            assert.match(xml, /<forward mode='hostdev' managed='yes'>\s*<pf dev='enp65s0'\/>/);
            const back = parseVfPoolNetworkXml(xml);
            assert.deepStrictEqual([back.name, back.mode, back.pf, back.owner], ["kvmtune-pool", "hostdev", "enp65s0", owner]);
        }
    });

    it("reads libvirt's net-dumpxml of a running pool: uuid and the VFs it lists are not ours to compare", () => {
        const dumped = `<network>
  <name>kvmtune-pool</name>
  <uuid>5ff6e431-18fb-4275-b196-9c7d7b5085c8</uuid>
  <metadata>
    <kvmtune:owner xmlns:kvmtune="urn:kvmtune:owner:1">SriovNic nic (kvmtune/lab)</kvmtune:owner>
  </metadata>
  <forward mode='hostdev' managed='yes'>
    <pf dev='enp65s0'/>
    <address type='pci' domain='0x0000' bus='0x41' slot='0x10' function='0x0'/>
    <address type='pci' domain='0x0000' bus='0x41' slot='0x10' function='0x2'/>
  </forward>
</network>`;
        const n = parseVfPoolNetworkXml(dumped);
        assert.deepStrictEqual(n, {
            name: "kvmtune-pool", uuid: "5ff6e431-18fb-4275-b196-9c7d7b5085c8", owner: "SriovNic nic (kvmtune/lab)", mode: "hostdev", pf: "enp65s0",
            vfs: ["0000:41:10.0", "0000:41:10.2"],
        });
        const read = { exists: true, active: true, autostart: true, network: n };
        assert.strictEqual(networkConflict("kvmtune-pool", read, "SriovNic nic (kvmtune/lab)", "lab1"), null);
        assert.match(networkConflict("kvmtune-pool", read, "SriovNic other (kvmtune/x)", "lab1")!, /already has a libvirt network kvmtune-pool that belongs to "SriovNic nic \(kvmtune\/lab\)"/);
        const foreign = { ...read, network: { ...n, owner: null } };
        assert.match(networkConflict("kvmtune-pool", foreign, "me", "lab1")!, /carries no kvmtune ownership mark/);
    });

    it("a guest's VF as <interface type='hostdev'> carries its MAC and VLAN and passes virt-xml-validate", () => {
        const spec: GuestSpec = {
            name: "vfguest", vcpus: 1, memoryMiB: 64, cpuMode: "host-passthrough", numa: { nodeset: [1], mode: "strict" }, vcpuPins: [[2]], emulatorPin: null,
            iothreads: 0, iothreadPins: [], hugepages: null, disks: [], interfaces: [{ pciAddress: "0000:41:10.0", mac: "52:54:00:aa:bb:01", vlan: 100 }, { network: "kvmtune-pool" }],
        };
        const xml = buildDomainXml(spec, "NumaPinnedGuest g (kvmtune/lab)");
        const r = virtXmlValidate(xml, "domain");
        assert.ok(r.ok, r.out);
        assert.match(xml, /<interface type='hostdev' managed='yes'>\s*<mac address='52:54:00:aa:bb:01'\/>\s*<source>\s*<address type='pci' domain='0x0000' bus='0x41' slot='0x10' function='0x0'\/>\s*<\/source>\s*<vlan>\s*<tag id='100'\/>/);
    });
});

describe("SriovNic running guests holding VFs", () => {
    const vfs = [
        { vf: 0, pciAddress: "0000:41:10.0", netdev: "enp65s0v0" },
        { vf: 1, pciAddress: "0000:41:10.2", netdev: "enp65s0v1" },
    ];
    const domain = (name: string, running: boolean, devices: string) =>
        `<domain type='kvm'${running ? " id='4'" : ""}><name>${name}</name><devices>${devices}</devices></domain>`;
    const pci = (fn: number) => `<address type='pci' domain='0x0000' bus='0x41' slot='0x10' function='0x${fn}'/>`;

    it("finds hostdev interfaces, PCI hostdevs, macvtap on a VF and pool networks; running guests only", () => {
        const xmls = [
            domain("g-iface", true, `<interface type='hostdev' managed='yes'><source>${pci(0)}</source></interface>`),
            domain("g-hostdev", true, `<hostdev mode='subsystem' type='pci' managed='yes'><source>${pci(2)}</source></hostdev>`),
            domain("g-macvtap", true, `<interface type='direct'><source dev='enp65s0v1' mode='passthrough'/></interface>`),
            domain("g-pool", true, `<interface type='network'><source network='kvmtune-pool'/></interface>`),
            domain("g-off", false, `<interface type='hostdev' managed='yes'><source>${pci(0)}</source></interface>`),
            domain("g-other", true, `<interface type='direct'><source dev='enp33s0v0' mode='passthrough'/></interface><interface type='network'><source network='default'/></interface>`),
        ];
        const holders = holdersIn(xmls, vfs, ["kvmtune-pool"]);
        assert.deepStrictEqual(holders, [
            { guest: "g-iface", holds: "VF 0 (0000:41:10.0, enp65s0v0) as a hostdev interface" },
            { guest: "g-hostdev", holds: "VF 1 (0000:41:10.2, enp65s0v1) as a PCI hostdev" },
            { guest: "g-macvtap", holds: "VF 1 (0000:41:10.2, enp65s0v1) through macvtap (passthrough)" },
            { guest: "g-pool", holds: "an interface on VF pool network kvmtune-pool" },
        ]);
        assert.deepStrictEqual(holdersIn(xmls, [], []), [], "no VFs going, no pools: nobody holds anything");
    });

    it("names each guest and what it holds in the refusal", () => {
        const one = holdersMessage("numVfs 3 -> 2 on enp65s0", [{ guest: "vm1", holds: "VF 1 (0000:41:10.2, enp65s0v1) through macvtap (passthrough)" }]);
        assert.strictEqual(one, "numVfs 3 -> 2 on enp65s0: running guest vm1 holds VF 1 (0000:41:10.2, enp65s0v1) through macvtap (passthrough). Stop the guest or move it off these VFs first; nothing on the host was changed.");
        const two = holdersMessage("x", [{ guest: "a", holds: "h1" }, { guest: "b", holds: "h2" }]);
        assert.match(two, /running guests a, b hold a: h1; b: h2\./);
    });
});

describe("SriovNic and NetworkManager: a drop-in keeps the PF and its VFs unmanaged (a loopback host)", function () {
    this.timeout(120_000);
    const key = throwawayKey();
    let host: FakeDiskHost;
    let pf: FakeSriovPf;
    /** VF 0 as the create below sets it, VF 1 at the kernel's defaults. */
    const IP_VFS = [
        { vf: 0, address: "52:54:00:aa:bb:01", vlan_list: [{ vlan: 100, qos: 0 }], spoofchk: true, trust: false, link_state: "auto", rate: { max_tx: 0 } },
        { vf: 1, address: "00:00:00:00:00:00", vlan_list: [{}], spoofchk: true, trust: false, link_state: "auto", rate: { max_tx: 0 } },
    ];
    const OWNER = "SriovNic nic (shop/prod)";
    const DROP_IN = "/etc/NetworkManager/conf.d/90-kvmtune-sriov-enp65s0.conf";
    const onHost = (p: string) => path.join(host.etc, p.replace(/^\/etc\//, ""));
    const calls = () => fs.readFileSync(path.join(host.etc, "calls"), "utf8").split("\n").filter(Boolean);
    const connection = () => ({ host: "127.0.0.1", port: host.ssh.port, user: "root", privateKey: key.privateKey, hostKey: host.ssh.hostKey });
    const nmRuns = (on: boolean) => (on ? fs.writeFileSync(path.join(host.etc, "nm-active"), "") : fs.rmSync(path.join(host.etc, "nm-active"), { force: true }));
    async function checked(olds: Record<string, unknown> = {}) {
        const c = await provider.check(olds, { connection: connection(), owner: OWNER, pf: pf.pciAddress, numVfs: 2, vfs: [{ vf: 0, mac: "52:54:00:aa:bb:01", vlan: 100 }], persist: false });
        assert.strictEqual(c.failures, undefined, JSON.stringify(c.failures));
        return c.inputs!;
    }

    before(async () => {
        pf = makeFakeSriovPf(IP_VFS, 7, 0, true);
        host = await startFakeDiskHost(key, { binds: [pf.bind] });
        pf.installIp(host.bin);
        // systemctl answers is-active for NetworkManager from /etc/nm-active; it and nmcli record their calls.
        fs.writeFileSync(
            path.join(host.bin, "systemctl"),
            [
                "#!/bin/sh",
                'echo "systemctl $*" >> /etc/calls',
                'if [ "$1 $2" = "is-active --quiet" ]; then [ "$3" = NetworkManager.service ] && [ -e /etc/nm-active ]; exit $?; fi',
                'if [ "$1" = is-active ]; then shift; for u in "$@"; do if [ "$u" = NetworkManager.service ] && [ -e /etc/nm-active ]; then echo active; else echo inactive; fi; done; fi',
                "exit 0",
                "",
            ].join("\n"),
            { mode: 0o755 },
        );
        fs.writeFileSync(path.join(host.bin, "nmcli"), '#!/bin/sh\necho "nmcli $*" >> /etc/calls\n', { mode: 0o755 });
    });
    beforeEach(() => fs.writeFileSync(path.join(host.etc, "calls"), ""));
    after(async () => {
        closeAll();
        await host?.dispose();
        pf?.dispose();
    });

    it("where NetworkManager runs: written with the PF's and VFs' names as read, reloaded once; refresh reports it edited or removed; update puts it back; delete removes it", async () => {
        nmRuns(true);
        const r = await provider.create(await checked());
        const text = fs.readFileSync(onHost(DROP_IN), "utf8");
        assert.match(text, /^# Managed by kvmtune for SriovNic nic \(shop\/prod\)\./);
        assert.match(text, /\[keyfile\]\nunmanaged-devices\+=interface-name:enp65s0;interface-name:enp65s0v0;interface-name:enp65s0v1\n$/);
        assert.deepStrictEqual(calls().filter((c) => c.startsWith("nmcli")), ["nmcli general reload conf"]);
        assert.deepStrictEqual((await provider.read(r.id, r.outs!)).props!.drift, []);

        // A guest takes VF 0 through vfio-pci: its netdev goes away, and comes back by the same name
        // when the guest lets it go. The drop-in keeps naming it: no drift, nothing to rewrite.
        const vf0Net = path.join(pf.bind[0], "0000:41:10.0", "net");
        fs.renameSync(vf0Net, vf0Net + ".held");
        try {
            assert.deepStrictEqual((await provider.read(r.id, r.outs!)).props!.drift, [], "a VF held by a guest changed the drop-in");
        } finally {
            fs.renameSync(vf0Net + ".held", vf0Net);
        }

        fs.writeFileSync(onHost(DROP_IN), text.replace(";interface-name:enp65s0v1", ""));
        assert.deepStrictEqual((await provider.read(r.id, r.outs!)).props!.drift, [`${DROP_IN} was changed`]);
        fs.rmSync(onHost(DROP_IN));
        const drifted = (await provider.read(r.id, r.outs!)).props!;
        assert.deepStrictEqual(drifted.drift, [`${DROP_IN} is missing`]);
        const updated = await provider.update(r.id, drifted, await checked(r.outs!));
        assert.strictEqual(fs.readFileSync(onHost(DROP_IN), "utf8"), text, "update did not put the drop-in back");

        await provider.delete(r.id, updated.outs!);
        assert.ok(!fs.existsSync(onHost(DROP_IN)), "delete left the drop-in");
    });

    it("where NetworkManager does not run: nothing written, a drop-in kvmtune wrote earlier removed, one written by hand left and reported", async () => {
        nmRuns(false);
        fs.mkdirSync(path.dirname(onHost(DROP_IN)), { recursive: true });
        fs.writeFileSync(onHost(DROP_IN), managedHeader(OWNER) + "[keyfile]\nunmanaged-devices+=interface-name:enp65s0\n");
        const r = await provider.create(await checked());
        assert.ok(!fs.existsSync(onHost(DROP_IN)), "a drop-in kvmtune wrote was left where NetworkManager does not run");
        assert.deepStrictEqual(calls().filter((c) => c.startsWith("nmcli")), [], "NetworkManager was told to reload where it does not run");
        assert.deepStrictEqual((await provider.read(r.id, r.outs!)).props!.drift, []);

        fs.writeFileSync(onHost(DROP_IN), "[keyfile]\nunmanaged-devices=interface-name:eth9\n");
        assert.deepStrictEqual((await provider.read(r.id, r.outs!)).props!.drift, [`${DROP_IN} is left over`]);
        await provider.delete(r.id, r.outs!);
        assert.ok(fs.existsSync(onHost(DROP_IN)), "delete removed a file kvmtune did not write");
        fs.rmSync(onHost(DROP_IN));
    });
});
