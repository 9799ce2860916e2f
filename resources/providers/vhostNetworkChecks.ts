/**
 * VhostNetwork's wanted network, its checks against the host before anything changes, and the
 * drift report (what differs between the declaration and the host).
 */
import { fileInPlace } from "../host/persist";
import type { Remote } from "../host/remote";
import { parseDomainXml } from "../libvirt/domain";
import type { GuestDefaults, NetworkSpec } from "../libvirt/network";
import { readAllDomains } from "../libvirt/virsh";
import { canonical } from "../policy";
import { hookPath, hookScript, MODULES_CONTENT, MODULES_FILE, networkManagerDropIn, VhostNetworkInputs } from "./vhostNetworkSchema";
import { NetworkHostView, trimmed } from "./vhostNetworkRead";

export function wantedNetwork(i: VhostNetworkInputs): NetworkSpec {
    const vhost: GuestDefaults = {};
    if (i.queues !== undefined) vhost.queues = i.queues;
    if (i.rxQueueSize !== undefined) vhost.rxQueueSize = i.rxQueueSize;
    if (i.txQueueSize !== undefined) vhost.txQueueSize = i.txQueueSize;
    return { name: i.name, bridge: i.bridge, forward: i.existingBridge ? "bridge" : "none", addressed: false, vhost };
}

/** The parts of a spec that shape a running network (a change of them needs a restart of the network). */
export const TOPOLOGY = ["bridge", "forward", "addressed"] as const;
export const same = (a: unknown, b: unknown) => canonical(a) === canonical(b);
export const markOf = (owner: string | null) => (owner === null ? "no kvmtune ownership mark" : `the mark of "${owner}"`);

/** Everything that must hold before the host changes, as messages naming field, value and what the host has. */
export function checkAgainstHost(i: VhostNetworkInputs, view: NetworkHostView, owner: string): string[] {
    const problems: string[] = [];
    const h = view.hostname;
    const net = view.network;
    if (!view.libvirtActive) problems.push(`connection: libvirt is not running on ${h} (neither libvirtd nor the modular virtqemud/virtnetworkd, nor their sockets, is active)`);
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
    const dropIn = networkManagerDropIn(owner, i, view.networkManager);
    if (!fileInPlace(dropIn, view.networkManagerFile)) {
        out.push(dropIn.want === null ? `${dropIn.path} is left over (NetworkManager does not run)` : `${dropIn.path} is ${view.networkManagerFile === null ? "missing" : "changed"}: NetworkManager may take the bridge or its uplink`);
    }
    return out;
}

/** Running guests with an interface on the network, as `name (uuid)`. One round trip. */
export async function runningGuestsOn(remote: Remote, network: string): Promise<string[]> {
    const running = await readAllDomains(remote, "running");
    return [...running.values()]
        .map((xml) => parseDomainXml(xml))
        .filter((d) => d.spec.interfaces.some((f) => "network" in f && f.network === network))
        .map((d) => `${d.spec.name} (${d.uuid})`);
}
