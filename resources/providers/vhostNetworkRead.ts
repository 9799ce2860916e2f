/**
 * VhostNetwork's read of the host in one round trip: the network through virsh, the bridge and
 * uplink from sysfs, its files and the few host facts the checks need.
 */
import { FACT_COMMANDS, libvirtActiveOf, vhostNetOf } from "../host/facts";
import { shellQuote } from "../host/quote";
import { Remote, runScript } from "../host/remote";
import { networkManagerActive } from "../host/platform";
import { buildDumpScript, Dump, globLiteral, parseDump } from "../host/sysfs";
import { NetworkRead, networkReadCommands, networkReadOf, ParsedNetwork, parseNetworkXml } from "../libvirt/network";
import { readAllNetworks } from "../libvirt/virsh";
import { dropInPath, hookPath, MODULES_FILE, VhostNetworkInputs } from "./vhostNetworkSchema";

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
    /** NetworkManager.service is active (it takes NICs unless told they are unmanaged). */
    networkManager: boolean;
    /** kvmtune's NetworkManager drop-in for the bridge (vhostNetworkSchema.ts networkManagerDropIn), as read. */
    networkManagerFile: string | null;
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
    // The services command (the facts script's) also says whether NetworkManager runs.
    const br = `${NET}/${globLiteral(i.bridge)}`;
    const up = i.uplink !== undefined ? `${NET}/${globLiteral(i.uplink)}` : null;
    return buildDumpScript({
        files: ["/etc/hostname", MODULES_FILE, globLiteral(hookPath(i.name)), globLiteral(dropInPath(i.bridge)), `${br}/ifindex`, `${br}/bridge/bridge_id`, ...(up ? [`${up}/ifindex`, `${up}/flags`, `${up}/bridge/bridge_id`] : [])],
        links: up ? [`${up}/master`] : [],
        commands: {
            ...networkReadCommands(i.name),
            vhostNet: FACT_COMMANDS.vhostNet,
            services: FACT_COMMANDS.services,
            vhostModule: "modinfo -F filename vhost_net",
            ...(i.uplink !== undefined ? { uplinkAddrs: `ip -o addr show dev ${shellQuote(i.uplink)} scope global` } : {}),
        },
    });
}

export const trimmed = (s: string) => s.replace(/\n+$/, "");

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
        networkManager: networkManagerActive(dump),
        networkManagerFile: file(dropInPath(i.bridge)),
        others: others.filter((n) => n.spec.name !== i.name),
    };
}

export async function observe(remote: Remote, i: VhostNetworkInputs, withOthers: boolean): Promise<NetworkHostView> {
    const [out, all] = await Promise.all([runScript(remote, observeScript(i)), withOthers ? readAllNetworks(remote) : Promise.resolve(new Map<string, string>())]);
    return viewOf(i, parseDump(out), [...all.values()].map((xml) => parseNetworkXml(xml)));
}
