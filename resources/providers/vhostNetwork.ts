/**
 * VhostNetwork's provider: a libvirt network on a Linux bridge for virtio guests with the vhost-net
 * backend (the virtio rings served by `vhost-PID` kernel threads instead of QEMU's user space).
 *
 * - vhost_net is loaded now (`modprobe`) and at boot (`/etc/modules-load.d/kvmtune-vhost-net.conf`,
 *   one file shared by every kvmtune vhost network on the host, removed with the last of them).
 * - The network is defined, started and (with `persist`) autostarted. Either libvirt creates the
 *   bridge (an isolated network: no forward, no addresses) or the network uses a bridge the host
 *   has (`<forward mode='bridge'/>`). An optional uplink is put into a created bridge on every
 *   `up`, and (with `persist`) by a libvirt network hook whenever the network starts.
 * - The guest defaults (queues, ring sizes) live in the network's `<metadata>`, where
 *   NumaPinnedGuest reads them for interfaces that leave them out (../libvirt/network.ts).
 * - Ownership: the shared claim on the network's name (../host/claims.ts), taken before anything
 *   changes, refuses a second resource or stack declaring the name, naming the first. The network
 *   also carries kvmtune's ownership mark; a network without this resource's mark (one kvmtune did
 *   not define) is never redefined or removed unless adopted (`adopt: true`).
 * - Everything is checked before anything on the host changes: libvirt and vhost_net present, the
 *   name free or ours, the bridge free (or present and a bridge), the uplink present, without
 *   addresses and in no other bridge.
 * - read reports what differs from the declaration in `drift`; diff treats any drift as a change,
 *   so `refresh` finds an out-of-band change and the next `up` undoes it.
 */
import type * as pulumi from "@pulumi/pulumi";
import { resourceOwner } from "./owner";
import { z } from "zod";
import { connectionSchema } from "../host/connection";
import { FACT_COMMANDS, libvirtActiveOf, vhostNetOf } from "../host/facts";
import { claimKnob, formerOwnersOf, releaseKnob } from "../host/claims";
import { deleteKnob } from "../host/knob";
import { atomicWriteScript, managedHeader, removeFileScript } from "../host/files";
import { shellQuote } from "../host/quote";
import { Remote, runScript } from "../host/remote";
import { remoteFor } from "../host/sshPool";
import { buildDumpScript, Dump, globLiteral, parseDump } from "../host/sysfs";
import { parseDomainXml } from "../libvirt/domain";
import { buildNetworkXml, GuestDefaults, networkClaim, NetworkRead, networkReadCommands, networkReadOf, NetworkSpec, ParsedNetwork, parseNetworkXml } from "../libvirt/network";
import { defineXml, readAllDomains, readAllNetworks, virshCommand } from "../libvirt/virsh";
import { canonical, checkWithPlan, diffProps, FieldPolicy, stateOnlyUpdate } from "../policy";
import { stateOf } from "../state";
import { inputsFrom } from "../validate";
import { interfaceName, ringSize } from "../patterns";

/** Network names: plain, and without `+` (NumaPinnedGuest allows it) since the name also names the hook file. */
const NETWORK_NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/;
export const vhostNetworkSchema = z
    .object({
        connection: connectionSchema,
        /** The libvirt network name guests' interfaces name. */
        name: z.string().regex(NETWORK_NAME, "must be a network name of letters, digits and _.- (at most 64)"),
        /** The Linux bridge: created by libvirt, or (existingBridge) one the host has. */
        bridge: interfaceName("a bridge"),
        /** Attach to a bridge the host already has (`<forward mode='bridge'/>`) instead of creating one. */
        existingBridge: z.boolean().default(false),
        /** An interface put into the created bridge (a NIC, bond, VLAN or veth without addresses). */
        uplink: interfaceName("an interface").optional(),
        /** Guest defaults: virtio-net queue pairs (at most the guest's vCPUs are used). */
        queues: z.number().int().min(1).max(256).optional(),
        rxQueueSize: ringSize().optional(),
        /** QEMU honours tx_queue_size for vhost-user only; libvirt passes it on. */
        txQueueSize: ringSize().optional(),
        /** Keep it across host reboots: network autostart, the modules-load file, the uplink hook. */
        persist: z.boolean().default(true),
        /** Take over an existing network of this name (it must have the declared bridge and forward mode). */
        adopt: z.boolean().default(false),
    })
    .strict()
    .superRefine((i, ctx) => {
        if (i.uplink !== undefined && i.existingBridge) {
            ctx.addIssue({ code: "custom", path: ["uplink"], message: "an existing bridge's ports are the host's own; uplink goes with a bridge the network creates (existingBridge: false)" });
        }
        if (i.uplink !== undefined && i.uplink === i.bridge) {
            ctx.addIssue({ code: "custom", path: ["uplink"], message: "the uplink cannot be the bridge itself" });
        }
    });

export type VhostNetworkInputs = z.output<typeof vhostNetworkSchema>;

export const POLICY: FieldPolicy<VhostNetworkInputs> = {
    connection: "state",
    name: "replace",
    // Another bridge means another network: guests' taps would have to move.
    bridge: "replace",
    existingBridge: "replace",
    uplink: "live",
    // Stored in the network's metadata; guests take them when they are next defined.
    queues: "live",
    rxQueueSize: "live",
    txQueueSize: "live",
    persist: "live",
    adopt: "state",
};

export const MODULES_FILE = "/etc/modules-load.d/kvmtune-vhost-net.conf";
export const MODULES_CONTENT =
    managedHeader("the VhostNetwork resources on this host") +
    "# One file for every kvmtune vhost network on this host: removed with the last of them.\nvhost_net\n";

/** libvirt runs the executables in hooks/network.d on every network's start and stop. */
export const hookPath = (network: string) => `/etc/libvirt/hooks/network.d/kvmtune-${network}`;

/**
 * The network's claim. The hook is not one of its files: its first line is `#!/bin/sh`, and the
 * claim check reads first lines; the network's own mark covers a network kvmtune did not define.
 */
export const vhostNetworkClaim = (owner: string, name: string, formerOwners: string[] = []) => networkClaim(owner, name, [], formerOwners);

/** The hook that puts the uplink into the bridge whenever libvirt starts the network (at boot, after net-start). */
export function hookScript(owner: string, i: Pick<VhostNetworkInputs, "name" | "bridge"> & { uplink: string }): string {
    const [name, bridge, uplink] = [shellQuote(i.name), shellQuote(i.bridge), shellQuote(i.uplink)];
    return (
        "#!/bin/sh\n" +
        managedHeader(owner) +
        [
            "# libvirt runs it as: SCRIPT NETWORK OPERATION SUB-OPERATION - (the network's XML on stdin).",
            `# When ${i.name} has started (its bridge exists), put ${i.uplink} into ${i.bridge}, as kvmtune does on each up.`,
            "# libvirt looks for hook scripts when libvirtd starts: a new one takes effect from then.",
            "PATH=/usr/sbin:/usr/bin:/sbin:/bin",
            `[ "$1" = ${name} ] && [ "$2" = started ] || exit 0`,
            `ip link set dev ${uplink} master ${bridge} && ip link set dev ${uplink} up || logger -t kvmtune ${shellQuote(`VhostNetwork ${i.name}: could not put ${i.uplink} into ${i.bridge}`)}`,
            "exit 0",
        ].join("\n") +
        "\n"
    );
}

// ---------------------------------------------------------------------------------------------
// What the host has

/** Everything the checks, the drift report and the delete need, read in one round trip. */
export interface NetworkHostView {
    hostname: string;
    libvirtActive: boolean;
    vhost: { device: boolean; moduleLoaded: boolean; moduleAvailable: boolean };
    network: NetworkRead;
    bridgeDevice: { exists: boolean; isBridge: boolean };
    /** The uplink as found (null: no uplink declared). */
    uplink: { name: string; exists: boolean; isBridge: boolean; up: boolean; master: string | null; addresses: string[] } | null;
    /** File contents as read (trailing newlines dropped), or null when absent. */
    modulesFile: string | null;
    hookFile: string | null;
    /** The host's other libvirt networks (read for create, update and delete only). */
    others: ParsedNetwork[];
}

const NET = "/sys/class/net";

/**
 * The read script: the network through virsh, the bridge and uplink from sysfs, both files, and
 * the few host facts needed (the facts script's own commands: the whole facts read costs more than
 * all of this on a busy host).
 */
export function observeScript(i: Pick<VhostNetworkInputs, "name" | "bridge" | "uplink">): string {
    const br = `${NET}/${globLiteral(i.bridge)}`;
    const up = i.uplink !== undefined ? `${NET}/${globLiteral(i.uplink)}` : null;
    return buildDumpScript({
        files: ["/etc/hostname", MODULES_FILE, globLiteral(hookPath(i.name)), `${br}/ifindex`, `${br}/bridge/bridge_id`, ...(up ? [`${up}/ifindex`, `${up}/flags`, `${up}/bridge/bridge_id`] : [])],
        links: up ? [`${up}/master`] : [],
        commands: {
            ...networkReadCommands(i.name),
            vhostNet: FACT_COMMANDS.vhostNet,
            libvirtActive: FACT_COMMANDS.libvirtActive,
            vhostModule: "modinfo -F filename vhost_net",
            ...(i.uplink !== undefined ? { uplinkAddrs: `ip -o addr show dev ${shellQuote(i.uplink)} scope global` } : {}),
        },
    });
}

const trimmed = (s: string) => s.replace(/\n+$/, "");

/** The view from the read script's dump and the other networks' XML. */
export function viewOf(i: Pick<VhostNetworkInputs, "name" | "bridge" | "uplink">, dump: Dump, others: ParsedNetwork[]): NetworkHostView {
    const f = dump.files;
    const br = `${NET}/${i.bridge}`;
    let uplink: NetworkHostView["uplink"] = null;
    if (i.uplink !== undefined) {
        const up = `${NET}/${i.uplink}`;
        const master = dump.links.get(`${up}/master`);
        const addrs = dump.commands.get("uplinkAddrs");
        uplink = {
            name: i.uplink,
            exists: f.has(`${up}/ifindex`),
            isBridge: f.has(`${up}/bridge/bridge_id`),
            up: (Number.parseInt(f.get(`${up}/flags`) ?? "0", 16) & 1) === 1,
            master: master ? master.slice(master.lastIndexOf("/") + 1) : null,
            // `ip -o addr`: "3: enp0s5    inet 10.0.2.15/24 scope global enp0s5 ..."
            addresses: addrs?.code === 0 ? [...addrs.stdout.matchAll(/\binet6? (\S+)/g)].map((m) => m[1]) : [],
        };
    }
    const file = (p: string) => (f.has(p) ? trimmed(f.get(p) as string) : null);
    return {
        hostname: (f.get("/etc/hostname") ?? "").trim(),
        libvirtActive: libvirtActiveOf(dump),
        vhost: { ...vhostNetOf(dump), moduleAvailable: dump.commands.get("vhostModule")?.code === 0 },
        network: networkReadOf(dump),
        bridgeDevice: { exists: f.has(`${br}/ifindex`), isBridge: f.has(`${br}/bridge/bridge_id`) },
        uplink,
        modulesFile: file(MODULES_FILE),
        hookFile: file(hookPath(i.name)),
        others: others.filter((n) => n.spec.name !== i.name),
    };
}

async function observe(remote: Remote, i: VhostNetworkInputs, withOthers: boolean): Promise<NetworkHostView> {
    const [out, all] = await Promise.all([runScript(remote, observeScript(i)), withOthers ? readAllNetworks(remote) : Promise.resolve(new Map<string, string>())]);
    return viewOf(i, parseDump(out), [...all.values()].map((xml) => parseNetworkXml(xml)));
}

// ---------------------------------------------------------------------------------------------
// Wanted, checks, drift

export function wantedNetwork(i: VhostNetworkInputs): NetworkSpec {
    const vhost: GuestDefaults = {};
    if (i.queues !== undefined) vhost.queues = i.queues;
    if (i.rxQueueSize !== undefined) vhost.rxQueueSize = i.rxQueueSize;
    if (i.txQueueSize !== undefined) vhost.txQueueSize = i.txQueueSize;
    return { name: i.name, bridge: i.bridge, forward: i.existingBridge ? "bridge" : "none", addressed: false, vhost };
}

/** The parts of a spec that shape a running network (a change of them needs a restart of the network). */
const TOPOLOGY = ["bridge", "forward", "addressed"] as const;
const same = (a: unknown, b: unknown) => canonical(a) === canonical(b);
const markOf = (owner: string | null) => (owner === null ? "no kvmtune ownership mark" : `the mark of "${owner}"`);

/** Everything that must hold before the host changes, as messages naming field, value and what the host has. */
export function checkAgainstHost(i: VhostNetworkInputs, view: NetworkHostView, owner: string): string[] {
    const problems: string[] = [];
    const h = view.hostname;
    const net = view.network;
    if (!view.libvirtActive) problems.push(`connection: libvirtd is not running on ${h}`);
    if (!view.vhost.moduleLoaded && !view.vhost.device && !view.vhost.moduleAvailable) {
        problems.push(`${h}'s kernel has no vhost_net module (modinfo vhost_net found none): guests would fall back to QEMU's user-space virtio`);
    }
    const ours = net.exists && net.config?.owner === owner;
    if (net.exists && !ours) {
        const uuid = net.config?.uuid ?? net.live?.uuid ?? "";
        if (!i.adopt) {
            problems.push(
                `name: a libvirt network named ${i.name} already exists on ${h} (uuid ${uuid}) and carries ${markOf(net.config?.owner ?? null)}: ` +
                    `it was left untouched. Set adopt: true to take it over, or choose another name`,
            );
        } else {
            const w = wantedNetwork(i);
            const found = (net.config ?? net.live)?.spec;
            const differ = TOPOLOGY.filter((k) => !same(found?.[k], w[k]));
            if (differ.length) {
                problems.push(
                    `adopt: network ${i.name} (${uuid}) on ${h} is not what the inputs declare; it was left untouched. ` +
                        differ.map((k) => `${k}: declared ${canonical(w[k])}, the host has ${canonical(found?.[k])}`).join("; "),
                );
            }
        }
    }
    if (i.adopt && !net.exists) problems.push(`adopt: ${h} has no libvirt network ${i.name} to adopt`);
    for (const o of view.others) {
        if (o.spec.bridge === i.bridge) problems.push(`bridge: ${i.bridge} is the bridge of libvirt network ${o.spec.name} (${o.uuid}) on ${h}`);
    }
    if (!i.existingBridge) {
        const made = net.exists && net.active && net.live?.spec.bridge === i.bridge;
        if (view.bridgeDevice.exists && !made) {
            problems.push(
                `bridge: ${h} already has an interface ${i.bridge}, which this network did not create; ` +
                    `set existingBridge: true to attach to a bridge the host has, or choose another name`,
            );
        }
    } else if (!view.bridgeDevice.exists) {
        problems.push(`bridge: ${h} has no bridge ${i.bridge} (existingBridge: true attaches to a bridge the host already has)`);
    } else if (!view.bridgeDevice.isBridge) {
        problems.push(`bridge: ${i.bridge} on ${h} is not a bridge`);
    }
    const up = view.uplink;
    if (up && !up.exists) problems.push(`uplink: ${h} has no interface ${up.name}`);
    if (up && up.exists) {
        if (up.addresses.length) {
            problems.push(
                `uplink: ${up.name} on ${h} carries ${up.addresses.join(", ")}; in a bridge those addresses stop working ` +
                    `(it may be how the host is reached). Move them to the bridge first, or choose an interface without addresses`,
            );
        }
        if (up.isBridge) problems.push(`uplink: ${up.name} on ${h} is a bridge; a bridge cannot be a port of another bridge`);
        if (up.master !== null && up.master !== i.bridge) problems.push(`uplink: ${up.name} on ${h} is already a port of ${up.master}`);
    }
    return problems;
}

/** What differs between the declaration and the host, one message each ([] when the host is as declared). */
export function driftOf(i: VhostNetworkInputs, view: NetworkHostView, owner: string): string[] {
    const net = view.network;
    if (!net.exists) return [`network ${i.name} is gone`];
    const out: string[] = [];
    const w = wantedNetwork(i);
    if (!net.config || !net.persistent) out.push("the network has no persistent definition (transient)");
    else {
        if (net.config.owner !== owner) out.push(`ownership: the network carries ${markOf(net.config.owner)}, not this resource's`);
        for (const k of [...TOPOLOGY, "vhost"] as const) {
            if (!same(net.config.spec[k], w[k])) out.push(`definition ${k}: declared ${canonical(w[k])}, libvirt has ${canonical(net.config.spec[k])}`);
        }
    }
    if (!net.active) out.push("the network is not active");
    else {
        for (const k of TOPOLOGY) {
            if (net.live && !same(net.live.spec[k], w[k])) out.push(`running network ${k}: declared ${canonical(w[k])}, it has ${canonical(net.live.spec[k])}`);
        }
        if (!view.bridgeDevice.exists) out.push(`bridge ${i.bridge} is missing from the host`);
    }
    if (net.autostart !== i.persist) out.push(`autostart is ${net.autostart ? "on" : "off"}, persist is ${i.persist}`);
    if (!view.vhost.moduleLoaded) out.push("vhost_net is not loaded");
    if (!view.vhost.device) out.push("/dev/vhost-net is missing");
    if (i.persist && view.modulesFile !== trimmed(MODULES_CONTENT)) out.push(`${MODULES_FILE} is ${view.modulesFile === null ? "missing" : "changed"}`);
    const up = view.uplink;
    if (up) {
        if (!up.exists) out.push(`uplink ${up.name} is gone`);
        else {
            if (up.master !== i.bridge) out.push(`uplink ${up.name} is ${up.master ? `a port of ${up.master}` : "in no bridge"}, not in ${i.bridge}`);
            if (!up.up) out.push(`uplink ${up.name} is down`);
        }
    }
    const hook = i.persist && i.uplink !== undefined ? trimmed(hookScript(owner, { ...i, uplink: i.uplink })) : null;
    if (view.hookFile !== hook) out.push(hook === null ? `${hookPath(i.name)} is left over` : `${hookPath(i.name)} is ${view.hookFile === null ? "missing" : "changed"}`);
    return out;
}

/** Running guests with an interface on the network, as `name (uuid)`. One round trip. */
async function runningGuestsOn(remote: Remote, network: string): Promise<string[]> {
    const running = await readAllDomains(remote, "running");
    return [...running.values()]
        .map((xml) => parseDomainXml(xml))
        .filter((d) => d.spec.interfaces.some((f) => "network" in f && f.network === network))
        .map((d) => `${d.spec.name} (${d.uuid})`);
}

// ---------------------------------------------------------------------------------------------
// Applying

/**
 * Brings the host to the declaration in two round trips: the definition (when it differs), then one
 * script for vhost_net, the running network, autostart, the uplink and the files; then reads back
 * and compares. `previousUplink`: released when it changes.
 */
async function converge(remote: Remote, i: VhostNetworkInputs, owner: string, view: NetworkHostView, previousUplink?: string): Promise<NetworkHostView> {
    const net = view.network;
    const w = wantedNetwork(i);
    const q = shellQuote;

    // 1. The persistent definition, keeping the network's UUID.
    const uuid = net.config?.uuid || net.live?.uuid || undefined;
    const defined = net.exists && net.persistent && net.config !== null;
    if (!defined || !same(net.config?.spec, w) || net.config?.owner !== owner) {
        await defineXml(remote, buildNetworkXml(w, owner, uuid), "net-define");
    }

    // 2. vhost-net: loaded now, and at boot from the shared modules-load file.
    const script: string[] = [];
    if (!view.vhost.moduleLoaded || !view.vhost.device) script.push("modprobe vhost_net || exit 1");
    if (i.persist && view.modulesFile !== trimmed(MODULES_CONTENT)) script.push(atomicWriteScript(MODULES_FILE, MODULES_CONTENT));

    // 3. The running network: restarted only when its shape differs, never under running guests.
    let active = net.active;
    if (active && net.live && TOPOLOGY.some((k) => !same(net.live?.spec[k], w[k]))) {
        const guests = await runningGuestsOn(remote, i.name);
        if (guests.length) {
            throw new Error(
                `VhostNetwork ${i.name} on ${view.hostname}: the running network must restart to take its new shape, ` +
                    `but running guest(s) ${guests.join(", ")} use it; stop them first. The new definition is saved for the next start.`,
            );
        }
        script.push(`${virshCommand(["net-destroy", i.name])} >/dev/null || exit 1`);
        active = false;
    }
    if (!active) script.push(`${virshCommand(["net-start", i.name])} >/dev/null || exit 1`);
    if ((net.exists && net.autostart) !== i.persist) {
        script.push(`${virshCommand(i.persist ? ["net-autostart", i.name] : ["net-autostart", "--disable", i.name])} >/dev/null || exit 1`);
    }

    // 4. The uplink (after a (re)start: libvirt makes a new bridge), and the hook that repeats it at each start.
    if (previousUplink !== undefined && previousUplink !== i.uplink) {
        // Released only while it is still a port of this network's bridge.
        script.push(`[ "$(basename "$(readlink -f /sys/class/net/${q(previousUplink)}/master)")" = ${q(i.bridge)} ] && ip link set dev ${q(previousUplink)} nomaster`);
    }
    if (i.uplink !== undefined) script.push(`ip link set dev ${q(i.uplink)} master ${q(i.bridge)} && ip link set dev ${q(i.uplink)} up || exit 1`);
    const hook = i.persist && i.uplink !== undefined ? hookScript(owner, { ...i, uplink: i.uplink }) : null;
    if (hook !== null && view.hookFile !== trimmed(hook)) script.push(atomicWriteScript(hookPath(i.name), hook, "0755"));
    if (hook === null && view.hookFile !== null) script.push(`${removeFileScript(hookPath(i.name))} || exit 1`);
    if (script.length) await runScript(remote, script.join("\n") + "\nexit 0\n");

    // 5. Read back: what libvirt and the kernel kept, not what was asked.
    const after = await observe(remote, i, false);
    const wrong = driftOf(i, after, owner);
    if (wrong.length) throw new Error(`VhostNetwork ${i.name} on ${view.hostname}: the host did not take the change: ${wrong.join("; ")}`);
    return after;
}

function outputs(i: VhostNetworkInputs, owner: string, view: NetworkHostView, drift: string[]) {
    const net = view.network;
    return stateOf({
        ...i,
        owner,
        uuid: net.config?.uuid ?? net.live?.uuid ?? "",
        /** The bridge the running network uses (libvirt's view). */
        bridgeName: net.live?.spec.bridge ?? net.config?.spec.bridge ?? "",
        /** /dev/vhost-net exists: guests get the in-kernel backend. */
        vhostNetAvailable: view.vhost.device,
        /** The guest defaults as stored in the network's metadata. */
        guestDefaults: net.config?.spec.vhost ?? {},
        active: net.active,
        autostart: net.autostart,
        owned: net.config?.owner === owner,
        drift,
    });
}

function inputsOf(props: Record<string, unknown>): VhostNetworkInputs {
    return inputsFrom(vhostNetworkSchema, props, "VhostNetwork inputs");
}

const ownerOf = (props: Record<string, unknown>, i: VhostNetworkInputs) => resourceOwner("VhostNetwork", i.name, props);

export const provider = {
    async check(olds: Record<string, unknown>, news: Record<string, unknown>): Promise<pulumi.dynamic.CheckResult> {
        return checkWithPlan(vhostNetworkSchema, POLICY, olds, news);
    },

    /** The policy for input changes; whatever read found different on the host (`drift`) is a change too. */
    async diff(_id: string, olds: Record<string, unknown>, news: Record<string, unknown>): Promise<pulumi.dynamic.DiffResult> {
        return diffProps(vhostNetworkSchema, POLICY, olds, news);
    },

    async create(props: Record<string, unknown>): Promise<pulumi.dynamic.CreateResult> {
        const i = inputsOf(props);
        const owner = ownerOf(props, i);
        const remote = remoteFor(i.connection);
        const claim = vhostNetworkClaim(owner, i.name);
        await claimKnob(remote, claim);
        try {
            const view = await observe(remote, i, true);
            const problems = checkAgainstHost(i, view, owner);
            if (problems.length) throw new Error(`VhostNetwork ${i.name} on ${view.hostname}: ${problems.join("; ")}`);
            const after = await converge(remote, i, owner, view);
            return { id: after.network.config?.uuid ?? i.name, outs: outputs(i, owner, after, []) };
        } catch (err) {
            // A failed create leaves no claim behind.
            await releaseKnob(remote, claim).catch(() => undefined);
            throw err;
        }
    },

    async read(id: string, props: Record<string, unknown>): Promise<pulumi.dynamic.ReadResult> {
        const i = inputsOf(props);
        const owner = ownerOf(props, i);
        const view = await observe(remoteFor(i.connection), i, false);
        if (!view.network.exists) return { id: "", props: {} }; // gone: refresh drops it, up creates it again
        return { id, props: outputs(i, owner, view, driftOf(i, view, owner)) };
    },

    async update(_id: string, olds: Record<string, unknown>, news: Record<string, unknown>): Promise<pulumi.dynamic.UpdateResult> {
        const untouched = stateOnlyUpdate(vhostNetworkSchema, POLICY, olds, news);
        if (untouched) return untouched;
        const i = inputsOf(news);
        const owner = resourceOwner("VhostNetwork", i.name, news, olds);
        const remote = remoteFor(i.connection);
        // Re-taken on every update: it moves the claim to a new label, before anything changes.
        await claimKnob(remote, vhostNetworkClaim(owner, i.name, formerOwnersOf(olds, owner)));
        const view = await observe(remote, i, true);
        const net = view.network;
        if (!net.exists) throw new Error(`VhostNetwork ${i.name}: the network is gone from ${view.hostname}; run refresh, then up creates it again`);
        if (net.config?.owner !== owner && !i.adopt) {
            throw new Error(
                `VhostNetwork ${i.name} on ${view.hostname}: network ${net.config?.uuid ?? i.name} carries ${markOf(net.config?.owner ?? null)}, ` +
                    `not this resource's; it is not redefined. Set adopt: true to take it over.`,
            );
        }
        const problems = checkAgainstHost(i, view, owner);
        if (problems.length) throw new Error(`VhostNetwork ${i.name} on ${view.hostname}: ${problems.join("; ")}`);
        const previousUplink = typeof olds.uplink === "string" ? olds.uplink : undefined;
        const after = await converge(remote, i, owner, view, previousUplink);
        return { outs: outputs(i, owner, after, []) };
    },

    /**
     * Removes the network (refused while a running guest uses it), its hook, and the modules-load
     * file unless another kvmtune vhost network on the host still needs it. vhost_net stays loaded:
     * other guests may use it, and unloading it gains nothing.
     */
    async delete(_id: string, props: Record<string, unknown>): Promise<void> {
        const i = inputsOf(props);
        const owner = ownerOf(props, i);
        const remote = remoteFor(i.connection);
        // The name went to another resource since (our claim was removed by hand): not ours to remove.
        await deleteKnob(remote, vhostNetworkClaim(owner, i.name), async () => {
            const [view, guests] = await Promise.all([observe(remote, i, true), runningGuestsOn(remote, i.name)]);
            const net = view.network;
            const steps: string[] = [];
            // A network of this name that is not ours any more (replaced behind our back) is left alone.
            if (net.exists && (net.config ?? net.live)?.owner === owner) {
                if (guests.length) {
                    throw new Error(
                        `VhostNetwork ${i.name} on ${view.hostname}: running guest(s) ${guests.join(", ")} use this network; ` +
                            `it was left as it is. Stop the guests or move their interfaces to another network first.`,
                    );
                }
                if (net.active) steps.push(`${virshCommand(["net-destroy", i.name])} >/dev/null || exit 1`);
                if (net.persistent) steps.push(`${virshCommand(["net-undefine", i.name])} >/dev/null || exit 1`);
            }
            // The hook folders too, when kvmtune's hook was all they held (Debian's libvirt ships none).
            if (view.hookFile !== null) steps.push(`${removeFileScript(hookPath(i.name))}; rmdir /etc/libvirt/hooks/network.d 2>/dev/null && rmdir /etc/libvirt/hooks 2>/dev/null; true`);
            const stillNeeded = view.others.some((o) => o.spec.vhost !== null);
            if (view.modulesFile !== null && !stillNeeded) steps.push(removeFileScript(MODULES_FILE));
            if (steps.length) await runScript(remote, steps.join("\n") + "\nexit 0\n");
        });
    },
};
