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
 *
 * This file holds applying and the provider methods. The inputs (schema, policy, kept files) are in
 * ./vhostNetworkSchema.ts, the read of the host in ./vhostNetworkRead.ts, and the wanted network,
 * checks and drift in ./vhostNetworkChecks.ts.
 */
import type * as pulumi from "@pulumi/pulumi";
import { resourceOwner } from "./owner";
import { formerOwnersOf } from "../host/claims";
import { createKnob, deleteKnob, updateKnob } from "../host/knob";
import { atomicWriteScript, removeFileScript } from "../host/files";
import { loadModuleCommand } from "../host/platformSteps";
import { shellQuote } from "../host/quote";
import { Remote, runScript } from "../host/remote";
import { remoteFor } from "../host/sshPool";
import { buildNetworkXml } from "../libvirt/network";
import { defineXml, virshCommand } from "../libvirt/virsh";
import { checkWithPlan, diffProps, stateOnlyUpdate } from "../policy";
import { found, gone, stateOf } from "../state";
import { inputsFrom } from "../validate";
import { fileStepIfChanged, persistFilesScript } from "../host/persist";
import { dropInPath, hookPath, hookScript, MODULES_CONTENT, MODULES_FILE, networkManagerDropIn, POLICY, vhostNetworkClaim, VhostNetworkInputs, vhostNetworkSchema } from "./vhostNetworkSchema";
import { NetworkHostView, observe, trimmed } from "./vhostNetworkRead";
import { checkAgainstHost, driftOf, markOf, runningGuestsOn, same, TOPOLOGY, wantedNetwork } from "./vhostNetworkChecks";

/** Re-exported: callers and tests name them from here. */
export { dropInPath, hookPath, hookScript, MODULES_CONTENT, MODULES_FILE, networkManagerDropIn, POLICY, vhostNetworkClaim, vhostNetworkSchema } from "./vhostNetworkSchema";
export type { VhostNetworkInputs } from "./vhostNetworkSchema";
export { observeScript, viewOf } from "./vhostNetworkRead";
export type { NetworkHostView } from "./vhostNetworkRead";
export { checkAgainstHost, driftOf, wantedNetwork } from "./vhostNetworkChecks";

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
    if (!view.vhost.moduleLoaded || !view.vhost.device) script.push(`${loadModuleCommand("vhost_net")} || exit 1`);
    if (i.persist && view.modulesFile !== trimmed(MODULES_CONTENT)) script.push(atomicWriteScript(MODULES_FILE, MODULES_CONTENT));

    // NetworkManager told to leave the bridge and uplink alone before libvirt makes the bridge.
    const dropIn = networkManagerDropIn(owner, i, view.networkManager);
    const dropInStep = fileStepIfChanged(dropIn, view.networkManagerFile);
    if (dropInStep) script.push(dropInStep);

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
        // A network records no original: delete removes it. A failed create leaves no claim
        // behind; a network it defined half-way carries this owner's mark, and the retry takes it up.
        return createKnob(
            remote,
            { ...vhostNetworkClaim(owner, i.name), original: undefined },
            async () => {
                const view = await observe(remote, i, true);
                const problems = checkAgainstHost(i, view, owner);
                if (problems.length) throw new Error(`VhostNetwork ${i.name} on ${view.hostname}: ${problems.join("; ")}`);
                const after = await converge(remote, i, owner, view);
                return { id: after.network.config?.uuid ?? i.name, outs: outputs(i, owner, after, []) };
            },
            async () => undefined,
        );
    },

    async read(id: string, props: Record<string, unknown>): Promise<pulumi.dynamic.ReadResult> {
        const i = inputsOf(props);
        const owner = ownerOf(props, i);
        const view = await observe(remoteFor(i.connection), i, false);
        if (!view.network.exists) return gone(); // gone: refresh drops it, up creates it again
        return found(id, outputs(i, owner, view, driftOf(i, view, owner)));
    },

    async update(_id: string, olds: Record<string, unknown>, news: Record<string, unknown>): Promise<pulumi.dynamic.UpdateResult> {
        const untouched = stateOnlyUpdate(vhostNetworkSchema, POLICY, olds, news);
        if (untouched) return untouched;
        const i = inputsOf(news);
        const owner = resourceOwner("VhostNetwork", i.name, news, olds);
        const remote = remoteFor(i.connection);
        // Re-taken on every update: it moves the claim to a new label, before anything changes. A
        // network records no original: delete removes it.
        const claim = { ...vhostNetworkClaim(owner, i.name, formerOwnersOf(olds, owner)), original: undefined };
        return updateKnob(remote, claim, undefined, async () => {
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
        });
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
            // NetworkManager's drop-in: removed only if kvmtune wrote it; NetworkManager re-reads its files.
            if (view.networkManagerFile !== null) steps.push(persistFilesScript([{ path: dropInPath(i.bridge), want: null, reload: "networkManager" }]));
            const stillNeeded = view.others.some((o) => o.spec.vhost !== null);
            if (view.modulesFile !== null && !stillNeeded) steps.push(removeFileScript(MODULES_FILE));
            if (steps.length) await runScript(remote, steps.join("\n") + "\nexit 0\n");
        });
    },
};
