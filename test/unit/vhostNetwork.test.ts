/**
 * VhostNetwork: the schema and its errors, the network XML (checked by libvirt's own
 * virt-xml-validate, and parsed back from what libvirt 9.0's net-dumpxml prints), the field
 * policy, the checks made before the host changes, the drift report, the read script run in a real
 * shell, and what a guest interface takes from the network's defaults.
 */
import * as assert from "assert";
import { spawnSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { parseDump } from "../../resources/host/sysfs";
import { buildDomainXml, OWNER_NS, parseDomainXml } from "../../resources/libvirt/domain";
import { buildNetworkXml, defaultsFor, NetworkRead, NetworkSpec, parseNetworkXml, VHOST_NS } from "../../resources/libvirt/network";
import {
    checkAgainstHost,
    driftOf,
    dropInPath,
    hookPath,
    hookScript,
    MODULES_CONTENT,
    NetworkHostView,
    networkManagerDropIn,
    observeScript,
    provider,
    vhostNetworkSchema,
    viewOf,
    wantedNetwork,
} from "../../resources/providers/vhostNetwork";
import { inputsFromHost, numaPinnedGuestSchema, wantedSpec } from "../../resources/providers/numaPinnedGuest";
import { UNKNOWN } from "../../resources/validate";
import { goodConnection } from "../helpers/fixtures";
import { LocalRemote } from "../helpers/localRemote";
import { virtXmlValidate } from "../helpers/virtXmlValidate";

const OWNER = "VhostNetwork vh (kvmtune/unit)";
const parse = (i: Record<string, unknown>) => vhostNetworkSchema.parse({ connection: goodConnection(), ...i });
const base = { name: "kvmtune-vh0", bridge: "kvbr0", uplink: "kvdummy0", queues: 2, rxQueueSize: 1024 };
const failures = async (i: Record<string, unknown>) => {
    const r = await provider.check({}, { connection: goodConnection(), ...i });
    return Object.fromEntries((r.failures ?? []).map((f) => [f.property, f.reason]));
};

describe("VhostNetwork inputs", () => {
    it("fills defaults; normalized inputs parse to themselves", () => {
        const i = parse({ name: "vh", bridge: "kvbr0" });
        assert.deepStrictEqual([i.existingBridge, i.persist, i.adopt, i.uplink, i.queues], [false, true, false, undefined, undefined]);
        assert.deepStrictEqual(vhostNetworkSchema.parse(i), i);
    });

    it("refuses bad network names, naming the field and the value", async () => {
        for (const name of ["bad name", "a+b", "-vh", "", "x".repeat(65), "vh;reboot"]) {
            const f = await failures({ name, bridge: "kvbr0" });
            assert.deepStrictEqual(Object.keys(f), ["name"], `${name}: ${JSON.stringify(f)}`);
            assert.match(f.name, /must be a network name of letters, digits and _\.-/);
        }
    });

    it("refuses interface names over 15 characters (IFNAMSIZ) and with characters ip link does not take", async () => {
        const f = await failures({ name: "vh", bridge: "kvmtune-bridge0x", uplink: "kvmtune-uplink-0" });
        assert.match(f.bridge, /got "kvmtune-bridge0x"; must be at most 15 characters/);
        assert.match(f.uplink, /got "kvmtune-uplink-0"; must be at most 15 characters/);
        assert.strictEqual((await failures({ name: "vh", bridge: "kvmtune-bridge0" })).bridge, undefined, "15 characters are fine");
        for (const bridge of ["br:0", "br/0", "br 0", "-br0", "br0$(id)"]) {
            assert.match((await failures({ name: "vh", bridge })).bridge ?? "", /must be a bridge name of letters, digits/, bridge);
        }
    });

    it("refuses queues outside 1..256 and ring sizes libvirt does not take", async () => {
        for (const queues of [0, 257, 2.5, -1]) assert.match((await failures({ name: "vh", bridge: "kvbr0", queues })).queues ?? "", /got/, String(queues));
        assert.strictEqual((await failures({ name: "vh", bridge: "kvbr0", queues: 256 })).queues, undefined);
        const f = await failures({ name: "vh", bridge: "kvbr0", rxQueueSize: 300, txQueueSize: 2048 });
        assert.match(f.rxQueueSize, /got 300; must be one of 256, 512, 1024/);
        assert.match(f.txQueueSize, /got 2048; must be one of 256, 512, 1024/);
    });

    it("refuses an uplink with an existing bridge, an uplink that is the bridge, and unknown fields", async () => {
        assert.match((await failures({ name: "vh", bridge: "br0", existingBridge: true, uplink: "eth1" })).uplink, /existing bridge's ports are the host's own/);
        assert.match((await failures({ name: "vh", bridge: "br0", uplink: "br0" })).uplink, /cannot be the bridge itself/);
        assert.match((await failures({ name: "vh", bridge: "br0", mtu: 9000 }))["(inputs)"], /unknown field\(s\) mtu/);
    });
});

describe("VhostNetwork field policy", () => {
    const olds = { ...parse(base), owner: OWNER, drift: [] };
    const diff = (news: Record<string, unknown>, o: Record<string, unknown> = olds) => provider.diff("id", o, { ...parse(base), owner: OWNER, ...news });

    it("no change is no change", async () => {
        assert.strictEqual((await diff({})).changes, false);
    });
    it("the uplink, the guest defaults and persist change in place", async () => {
        for (const news of [{ uplink: "kvdummy1" }, { uplink: undefined }, { queues: 4 }, { rxQueueSize: 512 }, { txQueueSize: 256 }, { persist: false }]) {
            const d = await diff(news);
            assert.deepStrictEqual([d.changes, d.replaces], [true, []], JSON.stringify(news));
        }
    });
    it("a new name, bridge or bridge mode replaces the network, the old one first; a new connection does not", async () => {
        assert.deepStrictEqual((await diff({ name: "vh2" })).replaces, ["name"]);
        assert.deepStrictEqual((await diff({ bridge: "kvbr1" })).replaces, ["bridge"]);
        const d = await diff({ existingBridge: true, uplink: undefined });
        assert.deepStrictEqual([d.replaces, d.deleteBeforeReplace], [["existingBridge"], true]);
        assert.deepStrictEqual((await diff({ connection: goodConnection({ port: 2203 }) })).replaces, []);
    });
    it("what refresh found different on the host is a change, though the inputs are the same", async () => {
        const d = await diff({}, { ...olds, drift: ["autostart is off, persist is true"] });
        assert.deepStrictEqual([d.changes, d.replaces], [true, []]);
    });
    it("an unknown value during preview counts as changed", async () => {
        assert.strictEqual((await diff({ queues: UNKNOWN })).changes, true);
        assert.deepStrictEqual((await diff({ bridge: UNKNOWN })).replaces, ["bridge"]);
    });
    it("check tells how each change will be applied", async () => {
        const r = await provider.check(olds, { ...parse(base), owner: OWNER, queues: 4, bridge: "kvbr1" });
        assert.deepStrictEqual(r.inputs.changePlan, { bridge: "replace", queues: "live (applied to the running system)" });
    });
});

describe("VhostNetwork XML", function () {
    this.timeout(60_000); // virt-xml-validate runs xmllint: slow on a busy machine
    const created: NetworkSpec = { name: "kvmtune-vh0", bridge: "kvbr0", forward: "none", addressed: false, vhost: { queues: 2, rxQueueSize: 1024 } };
    const existing: NetworkSpec = { name: "vh-br0", bridge: "br0", forward: "bridge", addressed: false, vhost: {} };

    it("passes libvirt's virt-xml-validate: a created bridge and an existing one, with and without a uuid", () => {
        for (const [spec, uuid] of [[created, undefined], [existing, "75858042-2128-450f-9657-4f64ac9ace8c"]] as const) {
            const r = virtXmlValidate(buildNetworkXml(spec, OWNER, uuid), "network");
            assert.ok(r.ok, r.out);
            assert.match(r.out, /validates/);
        }
    });

    it("escapes a hostile-looking owner and still validates", () => {
        const owner = `owner <x> 'q' "d" & more`;
        const xml = buildNetworkXml(created, owner);
        assert.ok(virtXmlValidate(xml, "network").ok);
        assert.strictEqual(parseNetworkXml(xml).owner, owner);
    });

    it("reads back what it builds", () => {
        for (const spec of [created, existing]) {
            const p = parseNetworkXml(buildNetworkXml(spec, OWNER, "75858042-2128-450f-9657-4f64ac9ace8c"));
            assert.deepStrictEqual(p.spec, spec);
            assert.deepStrictEqual([p.owner, p.uuid], [OWNER, "75858042-2128-450f-9657-4f64ac9ace8c"]);
        }
        assert.throws(() => buildNetworkXml({ ...created, forward: "nat" }, OWNER), /not nat/);
    });

    it("normalizes libvirt's net-dumpxml: uuid, MAC, stp, delay, connections and quoting are not changes", () => {
        // What libvirt 9.0 printed on a lab host for a network kvmtune defined, running with one guest.
        const dumped = `<network connections='1'>
  <name>kvmtune-vh0</name>
  <uuid>75858042-2128-450f-9657-4f64ac9ace8c</uuid>
  <metadata>
    <kvmtune:owner xmlns:kvmtune="${OWNER_NS}">${OWNER}</kvmtune:owner>
    <kvh:vhostNetwork xmlns:kvh="${VHOST_NS}" queues="2" rxQueueSize="1024"/>
  </metadata>
  <bridge name='kvbr0' stp='on' delay='0'/>
  <mac address='52:54:00:1a:77:e3'/>
</network>`;
        const p = parseNetworkXml(dumped);
        assert.deepStrictEqual(p.spec, created);
        assert.deepStrictEqual([p.owner, p.uuid, p.connections], [OWNER, "75858042-2128-450f-9657-4f64ac9ace8c", 1]);
    });

    it("reads libvirt's default NAT network as addressed, forward nat, without kvmtune's marks", () => {
        const p = parseNetworkXml(`<network>
  <name>default</name>
  <uuid>6788b202-3d7f-4e66-9a62-5c08e678cdaa</uuid>
  <forward mode='nat'><nat><port start='1024' end='65535'/></nat></forward>
  <bridge name='virbr0' stp='on' delay='0'/>
  <mac address='52:54:00:0a:3b:11'/>
  <ip address='192.168.122.1' netmask='255.255.255.0'><dhcp><range start='192.168.122.2' end='192.168.122.254'/></dhcp></ip>
</network>`);
        assert.deepStrictEqual(p.spec, { name: "default", bridge: "virbr0", forward: "nat", addressed: true, vhost: null });
        assert.strictEqual(p.owner, null);
        // A mark in another namespace is not ours either.
        assert.strictEqual(parseNetworkXml(buildNetworkXml(created, OWNER).replace(OWNER_NS, "urn:not-kvmtune")).owner, null);
    });
});

describe("VhostNetwork checks against the host", () => {
    const i = parse(base);
    const wanted = wantedNetwork(i);
    const parsed = (spec: NetworkSpec, owner: string | null = OWNER) => ({ spec, uuid: "u-1", owner, connections: 0 });
    const absent: NetworkRead = { exists: false, active: false, autostart: false, persistent: false, live: null, config: null };
    const running = (owner: string | null = OWNER, spec: NetworkSpec = wanted): NetworkRead => ({
        exists: true, active: true, autostart: true, persistent: true, live: parsed(spec, owner), config: parsed(spec, owner),
    });
    const view = (over: Partial<NetworkHostView> = {}): NetworkHostView => ({
        hostname: "lab2",
        libvirtActive: true,
        vhost: { device: true, moduleLoaded: true, moduleAvailable: true },
        network: absent,
        bridgeDevice: { exists: false, isBridge: false },
        uplink: { name: "kvdummy0", exists: true, isBridge: false, up: false, master: null, addresses: [] },
        modulesFile: null,
        hookFile: null,
        networkManager: false,
        networkManagerFile: null,
        others: [],
        ...over,
    });
    const problems = (v: NetworkHostView, inputs = i) => checkAgainstHost(inputs, v, OWNER).join("\n");

    it("accepts a fresh host, and its own network on the next run", () => {
        assert.strictEqual(problems(view()), "");
        assert.strictEqual(problems(view({ network: running(), bridgeDevice: { exists: true, isBridge: true }, uplink: { ...view().uplink!, master: "kvbr0" } })), "");
    });
    it("never takes over a network it does not own, unless adopted, and then only one of the declared shape", () => {
        assert.match(problems(view({ network: running(null) })), /name: a libvirt network named kvmtune-vh0 already exists on lab2 \(uuid u-1\) and carries no kvmtune ownership mark: it was left untouched/);
        assert.match(problems(view({ network: running("NumaPinnedGuest x") })), /carries the mark of "NumaPinnedGuest x"/);
        const adopt = parse({ ...base, adopt: true });
        assert.strictEqual(problems(view({ network: running(null), bridgeDevice: { exists: true, isBridge: true } }), adopt), "");
        assert.match(
            problems(view({ network: running(null, { ...wanted, bridge: "virbr9", forward: "nat" }) }), adopt),
            /adopt: network kvmtune-vh0 \(u-1\) on lab2 is not what the inputs declare; it was left untouched\. bridge: declared "kvbr0", the host has "virbr9"; forward: declared "none", the host has "nat"/,
        );
        assert.match(problems(view(), adopt), /adopt: lab2 has no libvirt network kvmtune-vh0 to adopt/);
    });
    it("refuses a bridge another network uses, or a device of that name it did not make", () => {
        assert.match(problems(view({ others: [parsed({ ...wanted, name: "other" }, null)] })), /bridge: kvbr0 is the bridge of libvirt network other \(u-1\) on lab2/);
        assert.match(problems(view({ bridgeDevice: { exists: true, isBridge: false } })), /bridge: lab2 already has an interface kvbr0, which this network did not create; set existingBridge: true/);
    });
    it("wants an existing bridge to exist and be a bridge", () => {
        const ex = parse({ name: "vh", bridge: "br0", existingBridge: true });
        assert.match(problems(view({ uplink: null }), ex), /bridge: lab2 has no bridge br0/);
        assert.match(problems(view({ uplink: null, bridgeDevice: { exists: true, isBridge: false } }), ex), /bridge: br0 on lab2 is not a bridge/);
        assert.strictEqual(problems(view({ uplink: null, bridgeDevice: { exists: true, isBridge: true } }), ex), "");
    });
    it("refuses an uplink that carries addresses (the management NIC), is missing, is a bridge or a port of another", () => {
        const up = view().uplink!;
        assert.match(
            problems(view({ uplink: { ...up, name: "enp0s5", addresses: ["10.0.2.15/24"] } })),
            /uplink: enp0s5 on lab2 carries 10\.0\.2\.15\/24; in a bridge those addresses stop working/,
        );
        assert.match(problems(view({ uplink: { ...up, exists: false } })), /uplink: lab2 has no interface kvdummy0/);
        assert.match(problems(view({ uplink: { ...up, isBridge: true } })), /kvdummy0 on lab2 is a bridge/);
        assert.match(problems(view({ uplink: { ...up, master: "br7" } })), /uplink: kvdummy0 on lab2 is already a port of br7/);
    });
    it("wants libvirtd running and a kernel with vhost_net", () => {
        assert.match(problems(view({ libvirtActive: false })), /libvirt is not running on lab2 \(neither libvirtd nor the modular virtqemud\/virtnetworkd/);
        assert.match(problems(view({ vhost: { device: false, moduleLoaded: false, moduleAvailable: false } })), /lab2's kernel has no vhost_net module/);
        assert.strictEqual(problems(view({ vhost: { device: false, moduleLoaded: false, moduleAvailable: true } })), "", "modprobe will load it");
    });

    describe("drift", () => {
        const inSync = (): NetworkHostView =>
            view({
                network: running(),
                bridgeDevice: { exists: true, isBridge: true },
                uplink: { ...view().uplink!, master: "kvbr0", up: true },
                modulesFile: MODULES_CONTENT.replace(/\n+$/, ""),
                hookFile: hookScript(OWNER, { ...i, uplink: "kvdummy0" }).replace(/\n+$/, ""),
            });
        it("is empty when the host is as declared", () => {
            assert.deepStrictEqual(driftOf(i, inSync(), OWNER), []);
        });
        it("names each out-of-band change", () => {
            const v = inSync();
            assert.deepStrictEqual(driftOf(i, { ...v, network: { ...v.network, autostart: false } }, OWNER), ["autostart is off, persist is true"]);
            assert.deepStrictEqual(driftOf(i, { ...v, network: { ...v.network, active: false } }, OWNER), ["the network is not active"]);
            assert.deepStrictEqual(driftOf(i, { ...v, uplink: { ...v.uplink!, master: null } }, OWNER), ["uplink kvdummy0 is in no bridge, not in kvbr0"]);
            assert.deepStrictEqual(driftOf(i, { ...v, modulesFile: null }, OWNER), ["/etc/modules-load.d/kvmtune-vhost-net.conf is missing"]);
            assert.deepStrictEqual(driftOf(i, { ...v, vhost: { device: false, moduleLoaded: false, moduleAvailable: true } }, OWNER), ["vhost_net is not loaded", "/dev/vhost-net is missing"]);
            const edited = running(OWNER, { ...wanted, vhost: { queues: 8 } });
            assert.deepStrictEqual(driftOf(i, { ...v, network: edited }, OWNER), ['definition vhost: declared {"queues":2,"rxQueueSize":1024}, libvirt has {"queues":8}']);
        });
        it("wants NetworkManager's drop-in for the created bridge and its uplink where NetworkManager runs, and none elsewhere", () => {
            const v = { ...inSync(), networkManager: true };
            const path90 = "/etc/NetworkManager/conf.d/90-kvmtune-vhost-kvbr0.conf";
            assert.strictEqual(dropInPath("kvbr0"), path90);
            const file = networkManagerDropIn(OWNER, i, true);
            assert.strictEqual(file.path, path90);
            assert.match(file.want ?? "", /^# Managed by kvmtune for VhostNetwork vh[^\n]*\n(#[^\n]*\n)*\[keyfile\]\nunmanaged-devices\+=interface-name:kvbr0;interface-name:kvdummy0\n$/);
            assert.deepStrictEqual(driftOf(i, v, OWNER), [`${path90} is missing: NetworkManager may take the bridge or its uplink`]);
            assert.deepStrictEqual(driftOf(i, { ...v, networkManagerFile: (file.want as string).trimEnd() }, OWNER), []);
            assert.deepStrictEqual(driftOf(i, { ...v, networkManagerFile: "[keyfile]\nunmanaged-devices+=interface-name:kvbr0" }, OWNER), [
                `${path90} is changed: NetworkManager may take the bridge or its uplink`,
            ]);
            // Without NetworkManager the file must be absent; an existing bridge is the host's own.
            assert.deepStrictEqual(driftOf(i, { ...inSync(), networkManagerFile: (file.want as string).trimEnd() }, OWNER), [`${path90} is left over (NetworkManager does not run)`]);
            assert.strictEqual(networkManagerDropIn(OWNER, parse({ name: "vh", bridge: "br0", existingBridge: true }), true).want, null);
            // A bridge name outside the drop-in's characters gets a hash, so Br_0 and br-0 never share a file.
            assert.match(dropInPath("Br_0"), /\/90-kvmtune-vhost-br-0-[0-9a-f]{8}\.conf$/);
            assert.notStrictEqual(dropInPath("Br_0"), dropInPath("br-0"));
        });
        it("wants no hook and no autostart without persist, and leaves the shared modules file alone", () => {
            const p = parse({ ...base, persist: false });
            const v = inSync();
            assert.deepStrictEqual(driftOf(p, { ...v, network: { ...v.network, autostart: false } }, OWNER), [`${hookPath(i.name)} is left over`]);
            assert.deepStrictEqual(driftOf(p, { ...v, network: { ...v.network, autostart: false }, hookFile: null }, OWNER), []);
        });
    });
});

describe("VhostNetwork read script and uplink hook", function () {
    this.timeout(60_000);

    it("runs in a real shell and parses: here, lo stands in for both bridge and uplink", async () => {
        // This machine has no libvirt network of that name; lo exists, is up, is no bridge, has no global address.
        const lo = { name: "kvmtune-unit-absent", bridge: "lo", uplink: "lo" };
        const dump = parseDump(await new LocalRemote().exec("sh -s", { stdin: observeScript(lo) }).then((r) => r.stdout));
        const v = viewOf(lo, dump, []);
        assert.strictEqual(v.hostname, fs.readFileSync("/etc/hostname", "utf8").trim());
        assert.strictEqual(v.vhost.device, fs.existsSync("/dev/vhost-net"));
        assert.strictEqual(v.network.exists, false);
        assert.deepStrictEqual(v.bridgeDevice, { exists: true, isBridge: false });
        assert.deepStrictEqual(v.uplink, { name: "lo", exists: true, isBridge: false, up: true, master: null, addresses: [] });
        assert.strictEqual(v.hookFile, null);
        assert.strictEqual(v.networkManagerFile, null);
    });

    it("writes a hook that is valid sh, acts only on this network's start, and always lets libvirt go on", () => {
        const text = hookScript(OWNER, { name: "kvmtune-vh0", bridge: "kvbr0", uplink: "kvdummy0" });
        assert.match(text, /^#!\/bin\/sh\n# Managed by kvmtune for VhostNetwork vh/);
        assert.match(text, /^\[ "\$1" = kvmtune-vh0 \] && \[ "\$2" = started \] \|\| exit 0$/m);
        assert.match(text, /^ip link set dev kvdummy0 master kvbr0 && ip link set dev kvdummy0 up \|\| logger/m);
        assert.match(text, /\nexit 0\n$/);
        const dir = fs.mkdtempSync(path.join(os.tmpdir(), "kvmtune-hook-"));
        fs.writeFileSync(path.join(dir, "hook"), text);
        const syntax = spawnSync("sh", ["-n", path.join(dir, "hook")], { encoding: "utf8" });
        // Another network's start: the guard exits before any ip command runs.
        const other = spawnSync("sh", [path.join(dir, "hook"), "default", "started", "begin", "-"], { encoding: "utf8", input: "<network/>" });
        fs.rmSync(dir, { recursive: true, force: true });
        assert.strictEqual(syntax.status, 0, syntax.stderr);
        assert.deepStrictEqual([other.status, other.stderr], [0, ""]);
    });
});

describe("guest interfaces take the network's defaults", () => {
    const nets = new Map([["vh", { queues: 4, rxQueueSize: 1024 as const }], ["plain", {}]]);
    it("only what the interface leaves out, and no more queues than the guest's vCPUs", () => {
        assert.deepStrictEqual(defaultsFor({ network: "vh" }, 2, nets), { queues: 2, rxQueueSize: 1024 });
        assert.deepStrictEqual(defaultsFor({ network: "vh" }, 8, nets), { queues: 4, rxQueueSize: 1024 });
        assert.deepStrictEqual(defaultsFor({ network: "vh", queues: 1 }, 8, nets), { rxQueueSize: 1024 });
        assert.strictEqual(defaultsFor({ network: "vh", queues: 1, rxQueueSize: 256 }, 8, nets), null);
        assert.strictEqual(defaultsFor({ network: "plain" }, 8, nets), null, "a network without kvmtune's vhost mark has no defaults");
        assert.strictEqual(defaultsFor({ network: "nope" }, 8, nets), null);
    });

    it("a guest's domain XML gets them, and reads back as its own inputs: no perpetual diff", () => {
        const g = numaPinnedGuestSchema.parse({ connection: goodConnection(), name: "g1", vcpus: 2, memoryMiB: 64, numaNode: 1, cpuPins: [2, 3], interfaces: [{ network: "vh" }] });
        const taken = [defaultsFor(g.interfaces[0] as { network: string }, g.vcpus, nets)];
        const wanted = wantedSpec(g, [[2], [3]], [], taken);
        const xml = buildDomainXml(wanted, "o");
        assert.match(xml, /<driver name='vhost' queues='2' rx_queue_size='1024'\/>/);
        assert.deepStrictEqual(inputsFromHost(g, wanted, parseDomainXml(xml).spec, true, true), g);
        // Without the defaults it took (a state from before), the same domain reads as changed interfaces.
        assert.notDeepStrictEqual(inputsFromHost(g, wantedSpec(g, [[2], [3]]), parseDomainXml(xml).spec, true, true), g);
    });
});
