/**
 * The connection argument as a Pulumi program writes it. Every resource takes one; a key is always
 * made a secret here, so it is encrypted in state even when the program passed plain text.
 */
import * as pulumi from "@pulumi/pulumi";

export interface ConnectionInput {
    /** Host name or address of the KVM host's sshd. */
    host: pulumi.Input<string>;
    /** sshd's port (default 22). */
    port?: pulumi.Input<number>;
    /** Login user (default root). */
    user?: pulumi.Input<string>;
    /** The private key text (not a path). Stored encrypted in state. Set this or `agent`. */
    privateKey?: pulumi.Input<string>;
    /**
     * `true`: log in with the keys of the SSH agent at `$SSH_AUTH_SOCK` of the process that runs
     * Pulumi (`eval "$(ssh-agent)"; ssh-add KEYFILE`), instead of a privateKey. No key enters the
     * state, and each resource's state is about 1.9 KB smaller (bench/SCALE.md). Delete and refresh
     * need the agent too, wherever they run.
     */
    agent?: pulumi.Input<true>;
    /**
     * The host key to expect: a SHA256 fingerprint as `ssh-keygen -lf` prints it, or a known_hosts
     * line. A host presenting another key is refused; there is no trust on first use.
     */
    hostKey: pulumi.Input<string>;
    /** Run privileged commands through `sudo -n` (for a non-root user with password-less sudo). */
    sudo?: pulumi.Input<boolean>;
    /**
     * How long connecting may take, in seconds, retries included (default 30): a host that is down
     * or does not answer SSH fails the deployment within this time, with an error naming host:port.
     */
    connectTimeoutSeconds?: pulumi.Input<number>;
}

export function secretConnection(c: ConnectionInput): ConnectionInput {
    return c.privateKey === undefined ? c : { ...c, privateKey: pulumi.secret(c.privateKey) };
}
