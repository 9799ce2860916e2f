/**
 * HostReboot: reboots a KVM host when its boot-time settings (KernelCmdline) wait for a boot, under
 * a policy: never by default; `whenRequired` reboots when KernelCmdline's `rebootRequired` is true
 * and the host agrees, shuts guests down first (or refuses while they run), waits for the host to
 * come back with a new boot id, and checks the expected arguments are in the new kernel's command
 * line. Chain several with fleet/rollingReboots.ts so a fleet reboots a few hosts at a time.
 */
import * as pulumi from "@pulumi/pulumi";
import { ConnectionInput, secretConnection } from "./connectionInput";
import { KvmtuneResource } from "./lazyProvider";

export interface HostRebootArgs {
    connection: ConnectionInput;
    /** `never` (default): never reboot, only report. `whenRequired`: reboot when `required` and the host agree. */
    policy?: pulumi.Input<"never" | "whenRequired">;
    /** Running guests: `refuse` (default) fails naming them; `shutdown` shuts them down and restarts the autostarted ones after the boot. */
    guests?: pulumi.Input<"shutdown" | "refuse">;
    /** How long each guest may take to shut down, 10..1800 s (default 120). */
    guestShutdownTimeoutSeconds?: pulumi.Input<number>;
    /** How long the host may take to come back, 60..3600 s (default 600). */
    timeoutSeconds?: pulumi.Input<number>;
    /** Arguments that must be in /proc/cmdline after the boot: KernelCmdline's `args`. */
    expect?: pulumi.Input<pulumi.Input<string>[]>;
    /** Arguments that must be gone from /proc/cmdline after the boot: KernelCmdline's `retired`. */
    expectGone?: pulumi.Input<pulumi.Input<string>[]>;
    /** Whether a reboot is due: KernelCmdline's `rebootRequired`. */
    required?: pulumi.Input<boolean>;
}

export class HostReboot extends KvmtuneResource {
    /** /proc/sys/kernel/random/boot_id at the last look: it changes with every boot. */
    public readonly lastBootId!: pulumi.Output<string>;
    /** When kvmtune last rebooted the host (ISO time), or null. */
    public readonly rebooted!: pulumi.Output<string | null>;
    /** Which arguments are not in effect in the running kernel, in words; "" when all are. */
    public readonly reason!: pulumi.Output<string>;
    /** The host's answer: a boot would change what the running kernel has. */
    public readonly rebootPending!: pulumi.Output<boolean>;
    /** Guests shut down for the last reboot that run again. */
    public readonly guestsRestarted!: pulumi.Output<string[]>;

    constructor(name: string, args: HostRebootArgs, opts?: pulumi.CustomResourceOptions) {
        super(
            "kvmtune/providers/hostReboot",
            "HostReboot",
            name,
            {
                ...args,
                connection: secretConnection(args.connection),
                lastBootId: undefined,
                rebooted: undefined,
                reason: undefined,
                rebootPending: undefined,
                guestsRestarted: undefined,
            },
            opts,
        );
    }
}
