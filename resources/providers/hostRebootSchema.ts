/**
 * HostReboot's inputs: the zod schema (the only source of the input types) and the field policy.
 */
import { z } from "zod";
import { connectionSchema } from "../host/connection";
import type { FieldPolicy } from "../policy";
import { EXTRA_ARG } from "./kernelCmdlineSchema";

/** A kernel argument as KernelCmdline's `args` output holds it: one plain word, `name` or `name=value`. */
const kernelArg = z.string().regex(EXTRA_ARG, "must be one kernel argument, name or name=value, of letters, digits and _.,:/+@%=- (KernelCmdline's args output)");

export const hostRebootSchema = z
    .object({
        connection: connectionSchema,
        /**
         * `never` (the default): kvmtune never reboots this host; `reason` still says what waits
         * for a boot. `whenRequired`: reboot when `required` is true and the host agrees.
         */
        policy: z.enum(["never", "whenRequired"]).default("never"),
        /**
         * Running guests at reboot time. `refuse` (the default): fail before anything changes,
         * naming them. `shutdown`: shut each down gracefully first (ACPI, `virsh shutdown`), and after
         * the boot make sure those that have autostart run again.
         */
        guests: z.enum(["shutdown", "refuse"]).default("refuse"),
        /** How long each guest may take to shut down (they shut down side by side). */
        guestShutdownTimeoutSeconds: z.number().int().min(10, "must be at least 10 s: a guest's OS needs time to stop").max(1800).default(120),
        /** How long the host may take to come back (SSH answering with a new boot id). */
        timeoutSeconds: z
            .number()
            .int()
            .min(60, "must be at least 60 s: firmware and the boot take longer than that on most servers")
            .max(3600, "must be at most 3600 s")
            .default(600),
        /** Arguments that must all be in /proc/cmdline after the boot: KernelCmdline's `args`. */
        expect: z.array(kernelArg).max(256).default([]),
        /** Arguments that must be gone from /proc/cmdline after the boot: KernelCmdline's `retired`. */
        expectGone: z.array(kernelArg).max(256).default([]),
        /** Whether a reboot is due: KernelCmdline's `rebootRequired`. The host is asked again before acting. */
        required: z.boolean().default(false),
    })
    .strict();

export type HostRebootInputs = z.output<typeof hostRebootSchema>;

/**
 * Every input only changes what the next reboot does (or whether one is due): nothing on the host
 * changes because an input changed. The reboot itself is decided from `required` and the host
 * (see hostReboot.ts), not from a field's change.
 */
export const POLICY: FieldPolicy<HostRebootInputs> = {
    connection: "state",
    policy: "state",
    guests: "state",
    guestShutdownTimeoutSeconds: "state",
    timeoutSeconds: "state",
    expect: "state",
    expectGone: "state",
    required: "state",
};
