/**
 * The connection input every resource takes, and its validation. Connection fields never force a
 * replacement: moving a host to a new address is the same host.
 */
import { z } from "zod";
import { parseHostKeyPin } from "./hostKey";

/**
 * Host names and addresses: DNS names, IPv4, bracket-less IPv6. No spaces, no shell characters.
 * An IPv6 address has at least two colons and a hex digit (`::1`, `fe80::1%eth0`): a lone `:` or
 * `:.` is no address (a property test found the branch accepting them).
 */
const HOST = /^(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*\.?|(?=[^%]*:[^%]*:)(?=[^%]*[0-9A-Fa-f])[0-9A-Fa-f:.]+(?:%[A-Za-z0-9_.-]+)?)$/;
/** POSIX portable user names. */
const USER = /^[a-z_][a-z0-9_-]{0,31}\$?$/;

export const connectionSchema = z
    .object({
        host: z.string().regex(HOST, "must be a host name or IP address"),
        port: z.number().int().min(1).max(65535).default(22),
        user: z.string().regex(USER, "must be a user name such as root or tuner").default("root"),
        /** The private key text. Stored encrypted in state, twice per resource (its inputs and outputs). */
        privateKey: z
            .string()
            .min(1, "must be a private key in OpenSSH or PEM format")
            .refine((k) => /-----BEGIN [A-Z ]*PRIVATE KEY-----/.test(k), "must be a private key in OpenSSH or PEM format (the key text, not a path)")
            .optional(),
        /**
         * Log in with the keys of the SSH agent at `$SSH_AUTH_SOCK` where Pulumi runs, instead of a
         * privateKey: no key, encrypted or not, in state or in the program (sshPool.ts).
         */
        agent: z.literal(true, { message: "must be true (or left out, with privateKey set)" }).optional(),
        hostKey: z.string().superRefine((pin, ctx) => {
            const parsed = parseHostKeyPin(pin);
            if ("error" in parsed) {
                ctx.addIssue({ code: "custom", message: parsed.error });
            }
        }),
        /** Run privileged commands through `sudo -n` (the user needs password-less sudo). */
        sudo: z.boolean().default(false),
        /** How long connecting may take, in seconds, retries included: a host that is down fails within it. */
        connectTimeoutSeconds: z.number().int().min(1).max(600).default(30),
    })
    .strict()
    .superRefine((c, ctx) => {
        // One way to log in: a key in state, or the agent of whoever runs Pulumi.
        if (c.privateKey === undefined && c.agent === undefined) {
            ctx.addIssue({ code: "custom", path: ["privateKey"], message: "set privateKey (the key text, as a secret) or agent: true (the SSH agent at $SSH_AUTH_SOCK where Pulumi runs)" });
        } else if (c.privateKey !== undefined && c.agent !== undefined) {
            ctx.addIssue({ code: "custom", path: ["agent"], message: "use privateKey or agent, not both (agent: true keeps the key out of state)" });
        }
    });

/** The connection as a user writes it (defaults optional). */
export type ConnectionArgs = z.input<typeof connectionSchema>;
/** The connection after validation, defaults filled in. */
export type Connection = z.output<typeof connectionSchema>;

/** The pool key: one SSH connection per (user, host, port) per process. */
export function connectionKey(c: Pick<Connection, "host" | "port" | "user">): string {
    return `${c.user}@${c.host}:${c.port}`;
}

/** How a host is named in messages: never includes the key. */
export function describeHost(c: Pick<Connection, "host" | "port" | "user">): string {
    return c.port === 22 ? `${c.user}@${c.host}` : `${c.user}@${c.host}:${c.port}`;
}
