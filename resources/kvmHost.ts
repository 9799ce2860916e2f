/**
 * KvmHost: one host's whole tuning in one declaration. It declares the host's HostFacts, huge page
 * pools, block elevators, SR-IOV NICs, vhost networks and pinned guests as its children, wires the
 * order (guests after the pools, networks and VFs they use) and checks the resources against each
 * other before any of them is declared (see kvmHostChecks.ts): what one resource cannot see alone.
 *
 * Boot-time settings: `kernelCmdline` declares a KernelCmdline child, and `reboot` a HostReboot fed
 * by it, which every other tuning child waits for (pools, guests and the rest are applied to the
 * kernel the host runs after the boot, and no guest is started on a host that is about to go
 * down). Nothing reboots unless `reboot` is given with policy `whenRequired`. A 1G pool that
 * persists puts its count on that KernelCmdline (`hugepages1G`): the command line has one owner.
 */
import * as pulumi from "@pulumi/pulumi";
import { BlockElevator, BlockElevatorArgs } from "./blockElevator";
import { ConnectionInput } from "./connectionInput";
import { HostFacts } from "./hostFacts";
import { HostReboot, HostRebootArgs } from "./hostReboot";
import { HugepagePool, HugepagePoolArgs } from "./hugepagePool";
import { KernelCmdline, KernelCmdlineArgs } from "./kernelCmdline";
import { autoPinShortfalls, GuestPlan, hugepageShortfalls, overlappingPins, remoteVfs } from "./kvmHostChecks";
import { NumaPinnedGuest, NumaPinnedGuestArgs } from "./numaPinnedGuest";
import { SriovNic, SriovNicArgs } from "./sriovNic";
import { VhostNetwork, VhostNetworkArgs } from "./vhostNetwork";

/** Every child takes the host's connection; the rest of its arguments are given here. */
type OnHost<T> = Omit<T, "connection">;

export interface KvmHostArgs {
    connection: ConnectionInput;
    /**
     * One pool per page size. A 1G pool that persists (the default) is reserved at boot: KvmHost
     * gives its nodes or total to the host's KernelCmdline as `hugepages1G` (declaring one if
     * `kernelCmdline` is left out), and the pool waits for it.
     */
    hugepagePools?: Array<OnHost<HugepagePoolArgs> & { pageSize: "2M" | "1G" }>;
    /** One elevator per disk; `device` names the child resource, so it is a plain string. */
    elevators?: Array<OnHost<BlockElevatorArgs> & { device: string }>;
    /** SR-IOV PFs by interface name or PCI address (a plain string: it names the child). */
    sriovNics?: Array<OnHost<SriovNicArgs> & { pf: string }>;
    /** vhost-net networks by libvirt network name (a plain string: it names the child). */
    vhostNetworks?: Array<OnHost<VhostNetworkArgs> & { name: string }>;
    /** Guests by domain name (a plain string: it names the child resource). */
    guests?: Array<OnHost<NumaPinnedGuestArgs> & { name: string }>;
    /** The kernel command line arguments kvmtune owns on this host (a KernelCmdline child). */
    kernelCmdline?: OnHost<KernelCmdlineArgs>;
    /**
     * Reboot the host when kernelCmdline's arguments wait for a boot (a HostReboot child, fed by the
     * KernelCmdline's rebootRequired, args and retired). Needs kernelCmdline. Left out: no reboot.
     */
    reboot?: Pick<HostRebootArgs, "policy" | "guests" | "timeoutSeconds" | "guestShutdownTimeoutSeconds">;
    /** Resources the HostReboot waits for: other hosts' reboots (fleet/rollingReboots.ts). */
    rebootAfter?: pulumi.Resource[];
}

/** What the host ended up with, as the stack output shows it. */
export interface KvmHostApplied {
    hugepagePools: Record<string, unknown>;
    elevators: Record<string, unknown>;
    sriovNics: Record<string, unknown>;
    vhostNetworks: Record<string, unknown>;
    guests: Record<string, unknown>;
}

/** A resource name part from a device path or name: `/dev/disk/by-id/nvme-X` → `nvme-X`. */
function namePart(s: string): string {
    return (s.split("/").pop() ?? s).replace(/[^A-Za-z0-9_.-]/g, "-");
}

/** The 1G pool kept across boots, whose count goes on the kernel command line. */
function persistedGigPool(args: KvmHostArgs): (OnHost<HugepagePoolArgs> & { pageSize: "2M" | "1G" }) | undefined {
    return (args.hugepagePools ?? []).find((p) => p.pageSize === "1G" && p.persist !== false);
}

/** The KernelCmdline child's arguments: the declared ones, plus a persisted 1G pool's count. */
function cmdlineArgsOf(args: KvmHostArgs): OnHost<KernelCmdlineArgs> | undefined {
    const gig = persistedGigPool(args);
    if (!gig) return args.kernelCmdline;
    return { ...args.kernelCmdline, hugepages1G: gig.nodes ?? gig.total };
}

/** Throws one error listing every problem, before any child is declared. */
function crossCheck(hostName: string, args: KvmHostArgs): void {
    const guests: GuestPlan[] = (args.guests ?? []).map((g) => ({ ...g }));
    const problems = [...overlappingPins(guests), ...hugepageShortfalls(guests, args.hugepagePools ?? [])];
    const seen = new Set<string>();
    for (const [kind, keys] of [
        ["hugepage pool for page size", (args.hugepagePools ?? []).map((p) => p.pageSize)],
        ["elevator for disk", (args.elevators ?? []).map((e) => e.device)],
        ["SR-IOV PF", (args.sriovNics ?? []).map((n) => n.pf)],
        ["vhost network", (args.vhostNetworks ?? []).map((n) => n.name)],
        ["guest", (args.guests ?? []).map((g) => g.name)],
    ] as const) {
        for (const key of keys) {
            if (seen.has(`${kind} ${key}`)) problems.push(`two of ${kind} ${key}: declare each once`);
            seen.add(`${kind} ${key}`);
        }
    }
    if (args.reboot && !cmdlineArgsOf(args)) {
        problems.push("reboot is given without kernelCmdline or a 1G hugepage pool that persists: a reboot applies boot-time settings, and there are none to apply");
    }
    if (args.kernelCmdline?.hugepages1G !== undefined && persistedGigPool(args)) {
        problems.push("kernelCmdline.hugepages1G is set and so is a 1G hugepage pool that persists: give the count once, in hugepagePools (KvmHost puts it on the kernel command line)");
    }
    if (problems.length > 0) throw new Error(`KvmHost ${hostName}: the tuning contradicts itself:\n  ${problems.join("\n  ")}`);
}

export class KvmHost extends pulumi.ComponentResource {
    public readonly facts: HostFacts;
    public readonly hugepagePools: Record<string, HugepagePool> = {};
    public readonly elevators: Record<string, BlockElevator> = {};
    public readonly sriovNics: Record<string, SriovNic> = {};
    public readonly vhostNetworks: Record<string, VhostNetwork> = {};
    public readonly guests: Record<string, NumaPinnedGuest> = {};
    public readonly kernelCmdline?: KernelCmdline;
    /** The host's HostReboot, when `reboot` is given: the fleet chains these (fleet/rollingReboots.ts). */
    public readonly reboot?: HostReboot;
    /** Per child, what it applied (read back from the host). Built from the children's outputs; not stored in state. */
    public readonly applied: pulumi.Output<KvmHostApplied>;

    constructor(name: string, args: KvmHostArgs, opts?: pulumi.ComponentResourceOptions) {
        super("kvmtune:index:KvmHost", name, {}, opts);
        crossCheck(name, args);
        const child = { parent: this };
        const gigPool = persistedGigPool(args);
        const connection = args.connection;

        this.facts = new HostFacts(`${name}-facts`, { connection }, child);
        const guestPlans: GuestPlan[] = (args.guests ?? []).map((g) => ({ ...g }));
        this.facts.nics.apply((nics) => {
            for (const w of remoteVfs(guestPlans, nics)) pulumi.log.warn(w, this);
        });

        const cmdlineArgs = cmdlineArgsOf(args);
        if (cmdlineArgs) {
            this.kernelCmdline = new KernelCmdline(`${name}-cmdline`, { ...cmdlineArgs, connection }, child);
            if (args.reboot) {
                const cmdline = this.kernelCmdline;
                this.reboot = new HostReboot(
                    `${name}-reboot`,
                    { ...args.reboot, connection, required: cmdline.rebootRequired, expect: cmdline.args, expectGone: cmdline.retired },
                    { ...child, dependsOn: [cmdline, ...(args.rebootAfter ?? [])] },
                );
            }
        }
        // The rest of the tuning goes to the kernel that runs after a reboot, if there is one.
        const afterBoot: pulumi.CustomResourceOptions = this.reboot ? { ...child, dependsOn: [this.reboot] } : child;
        for (const p of args.hugepagePools ?? []) {
            // A 1G pool that persists checks that the boot configuration holds its count: after KernelCmdline wrote it.
            const afterCmdline = p === gigPool && !this.reboot ? { ...child, dependsOn: [this.kernelCmdline!] } : afterBoot;
            this.hugepagePools[p.pageSize] = new HugepagePool(`${name}-hugepages-${p.pageSize}`, { ...p, connection }, afterCmdline);
        }
        for (const e of args.elevators ?? []) {
            this.elevators[e.device] = new BlockElevator(`${name}-elevator-${namePart(e.device)}`, { ...e, connection }, afterBoot);
        }
        for (const n of args.sriovNics ?? []) {
            this.sriovNics[n.pf] = new SriovNic(`${name}-sriov-${namePart(n.pf)}`, { ...n, connection }, afterBoot);
        }
        for (const n of args.vhostNetworks ?? []) {
            this.vhostNetworks[n.name] = new VhostNetwork(`${name}-net-${n.name}`, { ...n, connection }, afterBoot);
        }
        // Guests start after everything they draw on: pools for their memory, networks and VFs.
        const guestDeps: pulumi.Resource[] = [
            ...(this.reboot ? [this.reboot] : []),
            ...Object.values(this.hugepagePools),
            ...Object.values(this.sriovNics),
            ...Object.values(this.vhostNetworks),
        ];
        // Auto pins and `hugepages: "default"` can be weighed only against the host's facts (its CPUs,
        // its default page size): the guests take their connection through this check, so a tuning
        // that cannot fit fails before any guest is created (in preview too, once the facts are in state).
        const pools = args.hugepagePools ?? [];
        const fits = this.facts.facts.apply((facts) => {
            const problems = [...autoPinShortfalls(guestPlans, facts?.numaNodes ?? []), ...hugepageShortfalls(guestPlans, pools, facts?.defaultHugepageSize ?? null)];
            if (problems.length > 0) throw new Error(`KvmHost ${name}: the guests do not fit the host:\n  ${problems.join("\n  ")}`);
            return true;
        });
        const guestConnection: ConnectionInput = { ...connection, host: pulumi.all([connection.host, fits]).apply(([host]) => host) };
        for (const g of args.guests ?? []) {
            this.guests[g.name] = new NumaPinnedGuest(`${name}-guest-${g.name}`, { ...g, connection: guestConnection }, { ...child, dependsOn: guestDeps });
        }

        const mapOutputs = <R, T>(children: Record<string, R>, pick: (r: R) => pulumi.Output<T>) =>
            pulumi.all(Object.fromEntries(Object.entries(children).map(([k, r]) => [k, pick(r)]))) as pulumi.Output<Record<string, T>>;
        this.applied = pulumi
            .all([
                mapOutputs(this.hugepagePools, (p) => p.pools),
                mapOutputs(this.elevators, (e) => pulumi.all([e.kernelName, e.activeScheduler, e.currentTunables])),
                mapOutputs(this.sriovNics, (n) => pulumi.all([n.pfName, n.numaNode, n.vfDevices])),
                mapOutputs(this.vhostNetworks, (n) => pulumi.all([n.bridgeName, n.active, n.vhostNetAvailable, n.guestDefaults])),
                mapOutputs(this.guests, (g) => pulumi.all([g.state, g.resolvedCpuPins, g.pendingRestart])),
            ])
            .apply(([pools, elevators, nics, networks, guests]) => ({
                hugepagePools: pools,
                sriovNics: Object.fromEntries(Object.entries(nics).map(([k, [pf, numaNode, vfs]]) => [k, { pf, numaNode, vfs }])),
                vhostNetworks: Object.fromEntries(
                    Object.entries(networks).map(([k, [bridge, active, vhostNet, guestDefaults]]) => [k, { bridge, active, vhostNet, guestDefaults }]),
                ),
                elevators: Object.fromEntries(
                    Object.entries(elevators).map(([k, [disk, scheduler, tunables]]) => [k, { disk, scheduler, tunables }]),
                ),
                guests: Object.fromEntries(
                    Object.entries(guests).map(([k, [state, cpuPins, pendingRestart]]) => [k, { state, cpuPins, pendingRestart }]),
                ),
            }));
        // `applied` stays an Output of this object, not a stored output: it repeats the children's
        // own outputs, which state already holds (about 4 KB per host in every checkpoint; issue 17).
        this.registerOutputs({ hostname: this.facts.hostname });
    }
}
