/**
 * The fleet as stack config says it, validated before any resource is declared. Errors name the
 * config path (`kvmtune:hosts[1].port`), the value and what is allowed.
 */
import * as fs from "fs";
import { z } from "zod";

const hostSchema = z
    .object({
        /** The name resources of this host are prefixed with. */
        name: z.string().regex(/^[a-z0-9][a-z0-9-]{0,62}$/, "must be lower-case letters, digits and dashes"),
        host: z.string().min(1),
        port: z.number().int().min(1).max(65535).default(22),
        user: z.string().default("root"),
        /** The key text (set it with `pulumi config set --secret`), or a path to it on this machine. */
        privateKey: z.string().optional(),
        privateKeyPath: z.string().optional(),
        hostKey: z.string().min(1, "must pin the host key (SHA256 fingerprint or known_hosts line)"),
        sudo: z.boolean().default(false),
    })
    .strict()
    .refine((h) => (h.privateKey === undefined) !== (h.privateKeyPath === undefined), {
        message: "set exactly one of privateKey (a secret) and privateKeyPath",
        path: ["privateKey"],
    });

export const fleetSchema = z.object({ hosts: z.array(hostSchema).min(1) });
export type HostConfig = z.output<typeof hostSchema>;

/** Parses the fleet, throwing one message that lists every problem with its config path. */
export function parseFleet(raw: unknown, namespace = "kvmtune"): z.output<typeof fleetSchema> {
    const r = fleetSchema.safeParse(raw);
    if (r.success) return r.data;
    const lines = r.error.issues.map((i) => {
        const path = i.path.map((k) => (typeof k === "number" ? `[${k}]` : `.${String(k)}`)).join("");
        const secret = i.path.includes("privateKey");
        let value: unknown = raw;
        for (const k of i.path) value = (value as Record<PropertyKey, unknown> | undefined)?.[k as PropertyKey];
        return `  ${namespace}:${path.replace(/^\./, "")}: ${secret ? "" : `got ${JSON.stringify(value)}; `}${i.message}`;
    });
    throw new Error(`invalid stack config:\n${lines.join("\n")}`);
}

/** The key text of a host, from the config or the file it names. */
export function privateKeyOf(h: HostConfig): string {
    return h.privateKey ?? fs.readFileSync(h.privateKeyPath as string, "utf8");
}
