/**
 * The fleet as stack config says it, validated before any resource is declared. Errors name the
 * config path (`kvmtune:hosts[1].port`), the value and what is allowed.
 */
import * as fs from "fs";
import { z } from "zod";
import { configPath, describeIssue } from "../resources/validate";
import { Tuning, tuningProblems, tuningSchema } from "./tuning";

const hostSchema = z
    .object({
        /** The name resources of this host are prefixed with. */
        name: z.string().regex(/^[a-z0-9][a-z0-9-]{0,62}$/, "must be lower-case letters, digits and dashes"),
        host: z.string().min(1),
        port: z.number().int().min(1).max(65535).default(22),
        user: z.string().default("root"),
        /**
         * How to log in, one of: the key text (set it with `pulumi config set --secret`), a path to
         * it on this machine, or `agent: true` (the SSH agent at $SSH_AUTH_SOCK: no key in state).
         */
        privateKey: z.string().optional(),
        privateKeyPath: z.string().optional(),
        agent: z.literal(true, { message: "must be true (or left out)" }).optional(),
        hostKey: z.string().min(1, "must pin the host key (SHA256 fingerprint or known_hosts line)"),
        sudo: z.boolean().default(false),
        /** This host's tuning; replaces `kvmtune:tuning` for it. */
        tuning: tuningSchema.optional(),
    })
    .strict()
    .refine((h) => [h.privateKey, h.privateKeyPath, h.agent].filter((v) => v !== undefined).length === 1, {
        message: "set exactly one of privateKey (a secret), privateKeyPath and agent: true",
        path: ["privateKey"],
    });

/**
 * `kvmtune:reboots`: whether and how hosts with a kernelCmdline reboot to apply it. Absent: no
 * HostReboot is declared, nothing reboots (KernelCmdline still reports rebootRequired).
 */
export const rebootsSchema = z
    .object({
        policy: z.enum(["never", "whenRequired"]),
        /** At most this many hosts reboot at once (fleet/rollingReboots.ts). */
        maxDown: z.number().int().min(1, "must be at least 1 host at a time").default(1),
        guests: z.enum(["shutdown", "refuse"]).default("refuse"),
        timeoutSeconds: z.number().int().min(60, "must be at least 60 s").max(3600, "must be at most 3600 s").default(600),
        guestShutdownTimeoutSeconds: z.number().int().min(10).max(1800).default(120),
    })
    .strict();
export type RebootsConfig = z.output<typeof rebootsSchema>;

export const fleetSchema = z.object({
    hosts: z.array(hostSchema).min(1),
    /** The tuning of every host that has none of its own. */
    tuning: tuningSchema.optional(),
    reboots: rebootsSchema.optional(),
});
export type HostConfig = z.output<typeof hostSchema>;

/** Parses the fleet, throwing one message that lists every problem with its config path. */
export function parseFleet(raw: unknown, namespace = "kvmtune"): z.output<typeof fleetSchema> {
    const r = fleetSchema.safeParse(raw);
    if (r.success) return r.data;
    const lines = r.error.issues.map((i) => {
        // describeIssue names the value and what is allowed, and never echoes a key.
        const { path, detail } = describeIssue(i, raw);
        return `  ${namespace}:${configPath(path)}: ${detail}`;
    });
    throw new Error(`invalid stack config:\n${lines.join("\n")}`);
}

/** How a host is logged in to: its key text (from the config or the file it names), or the agent. */
export function loginOf(h: HostConfig): { privateKey: string } | { agent: true } {
    if (h.agent) return { agent: true };
    return { privateKey: h.privateKey ?? fs.readFileSync(h.privateKeyPath as string, "utf8") };
}

/** A host as the program declares it: its connection (key text included) and its tuning. */
export interface PlannedHost {
    name: string;
    connection: { host: string; port: number; user: string; privateKey?: string; agent?: true; hostKey: string; sudo: boolean };
    tuning: Tuning;
    /** How this host reboots for its kernelCmdline: `kvmtune:reboots`, when set and the host has a kernelCmdline. */
    reboot?: Omit<RebootsConfig, "maxDown">;
}

/**
 * The fleet, with every host's tuning checked by the resources' own schemas. Throws one message
 * listing every problem with its config path (`kvmtune:hosts[0].tuning.guests[1].vcpus: ...`).
 */
export function planFleet(raw: unknown, namespace = "kvmtune"): PlannedHost[] {
    const fleet = parseFleet(raw, namespace);
    const problems: string[] = [];
    const planned = fleet.hosts.map((h, i) => {
        const connection = { host: h.host, port: h.port, user: h.user, ...loginOf(h), hostKey: h.hostKey, sudo: h.sudo };
        const own = h.tuning !== undefined;
        const tuning = (h.tuning ?? fleet.tuning ?? {}) as Tuning;
        problems.push(...tuningProblems(tuning, connection, own ? `${namespace}:hosts[${i}].tuning` : `${namespace}:tuning`));
        const reboot = fleet.reboots && tuning.kernelCmdline ? rebootOf(fleet.reboots) : undefined;
        return { name: h.name, connection, tuning, ...(reboot ? { reboot } : {}) };
    });
    const names = fleet.hosts.map((h) => h.name);
    names.forEach((n, i) => {
        if (names.indexOf(n) !== i) problems.push(`${namespace}:hosts[${i}].name: got "${n}"; hosts[${names.indexOf(n)}] has this name too`);
    });
    // The same problem once, even when the shared tuning was checked for every host.
    if (problems.length > 0) throw new Error(`invalid stack config:\n  ${[...new Set(problems)].join("\n  ")}`);
    return planned;
}

function rebootOf({ maxDown: _maxDown, ...reboot }: RebootsConfig): Omit<RebootsConfig, "maxDown"> {
    return reboot;
}

/** `kvmtune:reboots.maxDown` (1 when unset): how many hosts may reboot at once. */
export function maxDownOf(raw: unknown, namespace = "kvmtune"): number {
    return parseFleet(raw, namespace).reboots?.maxDown ?? 1;
}
