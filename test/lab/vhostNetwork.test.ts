/**
 * VhostNetwork's whole life on the SECOND lab host through the real engine, each step checked by
 * reading the host with the system ssh client: `virsh net-info`, `ip link`, `lsmod`, the files, and
 * for a nested guest on the network its vhost-net file descriptors and `vhost-PID` kernel threads.
 *
 * The uplink is a dummy interface and the existing bridge a bridge the suite makes itself; the
 * management NIC is only ever named in an input that must be refused. The guest boots no OS: its
 * QEMU only has to start with a vhost-net backend (nested KVM inside a TCG lab host).
 */
import * as assert from "assert";
import type { PulumiFn } from "@pulumi/pulumi/automation";
import { NumaPinnedGuest, VhostNetwork, VhostNetworkArgs } from "../../resources";
import { inlineStack, InlineStack, resourcesOf } from "../helpers/inlineStack";
import { labConnection } from "../helpers/labConnection";
import { sshOk, sshRun, suiteHost } from "./labHosts";

const V = "virsh -c qemu:///system";
const NET = "kvmtune-lab-vh0";
const NET2 = "kvmtune-lab-vh1";
const BR = "kvlabbr0";
/** The uplink: a dummy interface the suite makes (never the management NIC); later the second one. */
const UP = "kvlabup0";
const UP2 = "kvlabup1";
/** A bridge the host "already has", made by the suite, for the existingBridge shape. */
const EXBR = "kvlabex0";
const GUEST = "kvmtune-lab-vhg";
const MODFILE = "/etc/modules-load.d/kvmtune-vhost-net.conf";
const HOOK = `/etc/libvirt/hooks/network.d/kvmtune-${NET}`;

describe("VhostNetwork on a lab host", function () {
    this.timeout(30 * 60_000);
    const h = suiteHost(1);
    const connection = labConnection(h);
    let s: InlineStack;
    const started = Date.now();
    const step = (what: string) => console.log(`      [${Math.round((Date.now() - started) / 1000)} s] ${what}`);

    // ---- independent reads of the host --------------------------------------------------------
    const ssh = (cmd: string) => sshOk(h, cmd, { timeoutMs: 600_000 });
    const ok = async (cmd: string) => (await sshRun(h, cmd, { timeoutMs: 600_000 })).code === 0;
    /** `virsh net-info` as a map: {Active: "yes", Autostart: "yes", Bridge: "kvlabbr0", ...}. */
    async function netInfo(name: string): Promise<Record<string, string>> {
        const out = await ssh(`${V} net-info ${name}`);
        return Object.fromEntries([...out.matchAll(/^([A-Za-z]+):\s+(.*)$/gm)].map((m) => [m[1], m[2].trim()]));
    }
    const networks = async () => (await ssh(`${V} net-list --all --name`)).split("\n").map((l) => l.trim()).filter(Boolean).sort();
    /** The ports of a bridge, from `ip -o link show master BR`. */
    const ports = async (bridge: string) => [...(await ssh(`ip -o link show master ${bridge}`)).matchAll(/^\d+: ([^:@]+)/gm)].map((m) => m[1]).sort();
    const vhostLoaded = async () => /^vhost_net\s/m.test(await ssh("lsmod"));
    const links = async () => (await ssh("ip -o link show | awk -F': ' '{print $2}' | sort")).trim();
    /** What the bad-input steps must leave alone. */
    const snapshot = async () => ({
        networks: await networks(),
        links: await links(),
        files: await ssh(`ls -l ${MODFILE} /etc/libvirt/hooks/network.d/ 2>&1; md5sum ${MODFILE} ${HOOK} 2>&1`),
        xml: await ssh(`${V} net-dumpxml --inactive ${NET}; ${V} net-dumpxml --inactive default`),
        info: await netInfo(NET),
    });
    /** A resource's outputs as the engine stored them (refresh updates these, not the stack's outputs). */
    async function stateOf(name: string): Promise<Record<string, unknown>> {
        return (await resourcesOf(s)).find((x) => x.urn.endsWith(`::${name}`))?.outputs ?? {};
    }

    // ---- the program ----------------------------------------------------------------------------
    type NetArgs = Omit<VhostNetworkArgs, "connection">;
    const netArgs: NetArgs = { name: NET, bridge: BR, uplink: UP, queues: 2, rxQueueSize: 1024 };
    /** vh0's args over netArgs from the live update on. */
    let netNow: Partial<NetArgs> = {};
    interface Shape {
        /** vh0's args over netArgs; null: no vh0 in the program. */
        net?: Partial<NetArgs> | null;
        /** vh1: the network on the existing bridge. */
        net2?: boolean;
        /** The nested guest on vh0 (by name when vh0 is not in the program). */
        guest?: boolean;
        /** Other networks, for the bad-input steps. */
        extras?: NetArgs[];
    }
    const program = (shape: Shape = {}): PulumiFn => async () => {
        const out: Record<string, unknown> = {};
        let net: VhostNetwork | undefined;
        if (shape.net !== null) {
            net = new VhostNetwork("vh0", { connection, ...netArgs, ...netNow, ...shape.net });
            Object.assign(out, { uuid: net.uuid, bridgeName: net.bridgeName, vhostNetAvailable: net.vhostNetAvailable, guestDefaults: net.guestDefaults, drift: net.drift });
        }
        if (shape.net2) new VhostNetwork("vh1", { connection, name: NET2, bridge: EXBR, existingBridge: true });
        (shape.extras ?? []).forEach((x, n) => new VhostNetwork(`extra${n}`, { connection, ...x }));
        if (shape.guest) {
            // Two vCPUs for two queue pairs; the queues and the RX ring come from the network's defaults.
            const g = new NumaPinnedGuest("g", {
                connection,
                name: GUEST,
                vcpus: 2,
                memoryMiB: 64,
                numaNode: 1,
                cpuPins: [2, 3],
                emulatorPin: [2, 3],
                interfaces: [{ network: net ? net.name : NET }],
                shutdownTimeoutSeconds: 5,
            });
            out.guestTook = g.interfaceDefaults;
        }
        return out;
    };
    const full: Shape = { net2: true };
    const outputs = async () => Object.fromEntries(Object.entries(await s.stack.outputs()).map(([k, v]) => [k, v.value]));

    async function clean(): Promise<void> {
        await sshRun(h, `${V} destroy ${GUEST}; ${V} undefine ${GUEST}; for n in ${NET} ${NET2} kvmtune-lab-vh9 kvmtune-lab-vh8; do ${V} net-destroy $n; ${V} net-undefine $n; done; ` + `ip link del ${BR}; rm -f ${HOOK}`, { timeoutMs: 300_000 });
    }

    before(async () => {
        await clean();
        // The suite's own uplink and "existing" bridge; vhost_net unloaded (the lab image loads it at
        // boot, and no guest runs here) so that loading it is the resource's doing.
        await ssh(`ip link del ${UP} 2>/dev/null; ip link del ${UP2} 2>/dev/null; ip link del ${EXBR} 2>/dev/null; ip link add ${UP} type dummy && ip link add ${UP2} type dummy && ip link add ${EXBR} type bridge && ip link set ${EXBR} up`);
        await ssh(`rm -f ${MODFILE}; rmmod vhost_net`);
        s = await inlineStack("lab-vhostnet");
    });
    after(async () => {
        await s?.destroy().catch((e) => console.error(String(e).slice(0, 2000)));
        await s?.remove();
        await clean();
        await sshRun(h, `ip link del ${UP}; ip link del ${UP2}; ip link del ${EXBR}; rm -f ${MODFILE}; modprobe vhost_net`);
    });

    it("creates both networks: defined, active, autostarted, the bridge with its uplink, vhost_net loaded now and at boot", async () => {
        // The suite unloaded vhost_net, but any open of /dev/vhost-net (libvirtd probing it) loads it
        // again on demand, so whether it is still unloaded here depends on timing: say which.
        if (await vhostLoaded()) console.log("      vhost_net was loaded again before create (on-demand load)");
        assert.deepStrictEqual(await s.up(program(full)), { create: 3 }, "two networks and the stack");
        step("created");
        const info = await netInfo(NET);
        console.log(`      net-info ${NET}: ${JSON.stringify(info)}`);
        assert.deepStrictEqual([info.Active, info.Persistent, info.Autostart, info.Bridge], ["yes", "yes", "yes", BR]);
        assert.match(await ssh(`ip -d link show ${BR}`), /\n\s+bridge forward_delay/, "a Linux bridge");
        assert.deepStrictEqual(await ports(BR), [UP]);
        assert.match(await ssh(`ip -o link show ${UP}`), /<[^>]*\bUP\b[^>]*>.* master kvlabbr0 /, "the uplink is up, in the bridge");
        assert.strictEqual(await vhostLoaded(), true);
        assert.match(await ssh("ls -l /dev/vhost-net"), /^c/);
        assert.match(await ssh(`cat ${MODFILE}`), /^# Managed by kvmtune for the VhostNetwork resources on this host\.\n[\s\S]*^vhost_net$/m);
        // ls marks a file with an SELinux context with a dot (-rwxr-xr-x.) where SELinux is on: Debian 13.
        assert.match(await ssh(`ls -l ${HOOK}`), /^-rwxr-xr-x\.? 1 root root/);
        const xml = await ssh(`${V} net-dumpxml --inactive ${NET}`);
        console.log(`      net-dumpxml --inactive ${NET}:\n${xml.replace(/^/gm, "        ")}`);
        assert.match(xml, /<kvmtune:owner xmlns:kvmtune="urn:kvmtune:owner:1">VhostNetwork vh0 \(kvmtune\/lab-vhostnet\)<\/kvmtune:owner>/);
        assert.match(xml, /<kvh:vhostNetwork xmlns:kvh="urn:kvmtune:vhost:1" queues="2" rxQueueSize="1024"\/>/);
        assert.doesNotMatch(xml, /<forward|<ip /, "isolated: no forward, no addresses");
        // The network on the bridge the host already had.
        const info2 = await netInfo(NET2);
        assert.deepStrictEqual([info2.Active, info2.Autostart, info2.Bridge], ["yes", "yes", EXBR]);
        assert.match(await ssh(`${V} net-dumpxml ${NET2}`), /<forward mode='bridge'\/>\s*<bridge name='kvlabex0'\/>/);
        const o = await outputs();
        assert.deepStrictEqual([o.bridgeName, o.vhostNetAvailable, o.guestDefaults, o.drift], [BR, true, { queues: 2, rxQueueSize: 1024 }, []]);
        assert.strictEqual(o.uuid, info.UUID);
    });

    it("a second up changes nothing", async () => {
        const before = await snapshot();
        assert.deepStrictEqual(await s.up(program(full)), {});
        assert.deepStrictEqual(await s.refresh(), {});
        assert.deepStrictEqual(await snapshot(), before);
        step("second up: no changes");
    });

    it("finds the network changed behind its back (autostart off, then destroyed: bridge gone, uplink loose) and puts it back", async () => {
        await ssh(`${V} net-autostart --disable ${NET} && ${V} net-destroy ${NET}`);
        assert.deepStrictEqual([(await netInfo(NET)).Autostart, (await netInfo(NET)).Active], ["no", "no"]);
        assert.strictEqual(await ok(`ip link show ${BR}`), false, "libvirt removed the bridge");
        assert.deepStrictEqual(await s.refresh(), { update: 1 });
        const drift = (await stateOf("vh0")).drift;
        console.log(`      drift found by refresh: ${JSON.stringify(drift)}`);
        assert.deepStrictEqual(drift, ["the network is not active", "autostart is off, persist is true", `uplink ${UP} is in no bridge, not in ${BR}`]);
        assert.deepStrictEqual(await s.up(program(full)), { update: 1 });
        const info = await netInfo(NET);
        assert.deepStrictEqual([info.Active, info.Autostart], ["yes", "yes"]);
        assert.deepStrictEqual(await ports(BR), [UP]);
        assert.deepStrictEqual((await stateOf("vh0")).drift, []);
        step("out-of-band changes undone");
    });

    it("puts the uplink back through its libvirt hook when libvirt restarts the network (once libvirtd has found the hook)", async () => {
        // libvirt looks for hook scripts when libvirtd starts (as at boot).
        await ssh("systemctl restart libvirtd && for i in $(seq 60); do virsh -c qemu:///system net-list >/dev/null 2>&1 && break; sleep 1; done");
        await ssh(`${V} net-destroy ${NET} && ${V} net-start ${NET}`);
        assert.deepStrictEqual(await ports(BR), [UP], "the hook, not kvmtune, put the uplink into the new bridge");
        step("hook re-enslaved the uplink");
    });

    it("a nested guest on the network gets vhost-net: QEMU holds /dev/vhost-net, vhost-PID kernel threads run, queues from the network", async () => {
        assert.deepStrictEqual(await s.up(program({ ...full, guest: true })), { create: 1 });
        step("guest started");
        assert.strictEqual((await ssh(`${V} domstate ${GUEST}`)).trim(), "running");
        const pid = (await ssh(`cat /run/libvirt/qemu/${GUEST}.pid`)).trim();
        const fds = await ssh(`ls -l /proc/${pid}/fd | grep vhost-net || true`);
        const threads = await ssh(`ps -eLo comm | grep '^vhost-${pid}$' || true`);
        const live = await ssh(`${V} dumpxml ${GUEST}`);
        const cmdline = await ssh(`tr '\\0' ' ' < /proc/${pid}/cmdline`);
        const iface = /<interface type='network'>[\s\S]*?<\/interface>/.exec(live)?.[0] ?? "";
        console.log(`      qemu pid ${pid}; /dev/vhost-net fds:\n${fds.trimEnd().replace(/^/gm, "        ")}\n      kernel threads: ${threads.trim().split("\n").join(", ")}`);
        console.log(`      guest interface (live XML):\n${iface.replace(/^/gm, "        ")}`);
        console.log(`      -netdev: ${/-netdev \S+/.exec(cmdline)?.[0]}`);
        assert.strictEqual(fds.trim().split("\n").filter((l) => /-> \/dev\/vhost-net$/.test(l)).length, 2, "one vhost-net fd per queue pair");
        assert.strictEqual(threads.trim().split("\n").filter(Boolean).length, 2, "one vhost worker thread per queue pair");
        assert.match(iface, /<source network='kvmtune-lab-vh0' portid='[^']+' bridge='kvlabbr0'\/>/);
        assert.match(iface, /<driver name='vhost' queues='2' rx_queue_size='1024'\/>/);
        assert.match(cmdline, /"vhost":true,"vhostfds":"\d+:\d+"/);
        const tap = /<target dev='([^']+)'\/>/.exec(iface)?.[1] as string;
        assert.deepStrictEqual(await ports(BR), [UP, tap].sort());
        assert.match(await ssh(`${V} net-dumpxml ${NET}`), /<network connections='1'>/);
        assert.deepStrictEqual((await outputs()).guestTook, [{ queues: 2, rxQueueSize: 1024 }]);
    });

    it("refuses to delete the network while the guest runs, naming the guest, and leaves it as it is", async () => {
        const uuid = (await ssh(`${V} domuuid ${GUEST}`)).trim();
        const portsBefore = await ports(BR);
        await assert.rejects(
            s.up(program({ net: null, net2: true, guest: true })),
            new RegExp(`running guest\\(s\\) ${GUEST} \\(${uuid}\\) use this network; it was left as it is`),
        );
        assert.strictEqual((await netInfo(NET)).Active, "yes");
        assert.deepStrictEqual(await ports(BR), portsBefore);
        assert.strictEqual((await ssh(`${V} domstate ${GUEST}`)).trim(), "running");
        step("delete refused");
    });

    it("refuses bad inputs before the host changes", async () => {
        const shape = { ...full, guest: true };
        const before = await snapshot();
        // In one up, three networks the host must refuse: the management NIC as uplink (its address
        // would stop working in a bridge), libvirt's own network (not kvmtune's), another network's bridge.
        const mgmt = (await ssh("ip -o -4 addr show scope global | awk '{print $2}' | head -1")).trim();
        const extras: NetArgs[] = [
            { name: "kvmtune-lab-vh9", bridge: "kvlabbr9", uplink: mgmt },
            { name: "default", bridge: "kvlabbr8" },
            { name: "kvmtune-lab-vh8", bridge: BR },
        ];
        const err = await s.up(program({ ...shape, extras })).then(() => "", (e: Error) => e.message);
        for (const re of [
            new RegExp(`uplink: ${mgmt} on lab2 carries 10\\.0\\.2\\.15/24; in a bridge those addresses stop working`),
            /a libvirt network named default already exists on lab2 \(uuid [0-9a-f-]+\) and carries no kvmtune ownership mark: it was left untouched/,
            new RegExp(`bridge: ${BR} is the bridge of libvirt network ${NET}`),
        ]) {
            assert.match(err, re);
        }
        assert.deepStrictEqual(await snapshot(), before);
        // Refused by check, before any host is read: a bridge name over 15 characters.
        await assert.rejects(s.preview(program({ ...shape, extras: [{ name: "kvmtune-lab-vh9", bridge: "kvmtune-lab-br-9" }] })), /bridge: got "kvmtune-lab-br-9"; must be at most 15 characters/);
        step("bad inputs refused");
    });

    it("moves the uplink live under the running guest: the old one leaves the bridge, the hook follows, the guest's tap stays", async () => {
        const pid = (await ssh(`cat /run/libvirt/qemu/${GUEST}.pid`)).trim();
        const tap = (await ports(BR)).filter((p) => p !== UP);
        netNow = { uplink: UP2 };
        assert.deepStrictEqual(await s.up(program({ ...full, guest: true })), { update: 1 });
        assert.deepStrictEqual(await ports(BR), [UP2, ...tap].sort());
        assert.doesNotMatch(await ssh(`ip -o link show ${UP}`), / master /, "the old uplink is in no bridge");
        assert.match(await ssh(`cat ${HOOK}`), new RegExp(`^ip link set dev ${UP2} master ${BR} `, "m"));
        assert.strictEqual((await ssh(`cat /run/libvirt/qemu/${GUEST}.pid`)).trim(), pid, "the guest kept running");
        assert.strictEqual((await netInfo(NET)).Active, "yes");
        step("uplink moved live");
    });

    it("delete keeps the shared modules-load file while another vhost network needs it; destroy removes everything", async () => {
        assert.deepStrictEqual(await s.up(program({ guest: true })), { delete: 1 }, "vh1 goes");
        assert.ok(!(await networks()).includes(NET2));
        assert.deepStrictEqual([await ok(`ip link show ${EXBR}`), await ports(EXBR)], [true, []], "the existing bridge stays, as the host had it");
        assert.strictEqual(await ok(`test -f ${MODFILE}`), true, "vh0 still needs vhost_net at boot");
        assert.deepStrictEqual(await s.destroy(), { delete: 3 }, "the guest, vh0 and the stack");
        step("destroyed");
        assert.deepStrictEqual((await networks()).filter((n) => n.startsWith("kvmtune-lab-")), []);
        assert.strictEqual(await ok(`ip link show ${BR}`), false, "the bridge libvirt made is gone");
        assert.doesNotMatch(await ssh(`ip -o link show ${UP2}`), / master /, "the uplink is in no bridge");
        assert.strictEqual(await ok(`test -e ${MODFILE}`), false);
        assert.strictEqual(await ok(`test -e ${HOOK} || test -e /etc/libvirt/hooks/network.d`), false, "the hook and its empty folder are gone");
        assert.strictEqual(await ok(`${V} dominfo ${GUEST}`), false);
        assert.strictEqual(await vhostLoaded(), true, "vhost_net stays loaded (other guests may use it)");
    });
});
