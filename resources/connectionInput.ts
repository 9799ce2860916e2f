/**
 * The connection argument as a Pulumi program writes it. Every resource takes one; the key is
 * always made a secret here, so it is encrypted in state even when the program passed plain text.
 */
import * as pulumi from "@pulumi/pulumi";

export interface ConnectionInput {
    /** Host name or address of the KVM host's sshd. */
    host: pulumi.Input<string>;
    /** sshd's port (default 22). */
    port?: pulumi.Input<number>;
    /** Login user (default root). */
    user?: pulumi.Input<string>;
    /** The private key text (not a path). Stored encrypted in state. */
    privateKey: pulumi.Input<string>;
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
    return { ...c, privateKey: pulumi.secret(c.privateKey) };
}
