/**
 * Host key pinning. A connection names the host key it expects, either as the SHA256 fingerprint
 * `ssh-keygen -lf` prints (`SHA256:base64`) or as a known_hosts / public key line. The presented key
 * must match; there is no trust on first use.
 */
import { createHash } from "crypto";

export interface PinnedHostKey {
    /** `SHA256:...` without base64 padding, as OpenSSH prints it. */
    fingerprint: string;
    /** The key type when the pin was a key line (`ssh-ed25519`, ...), so the client can ask for it. */
    keyType?: string;
}

const FINGERPRINT = /^SHA256:[A-Za-z0-9+/]{43}$/;
const KEY_TYPES = /^(ssh-ed25519|ssh-rsa|ecdsa-sha2-nistp(256|384|521)|sk-ssh-ed25519@openssh\.com|sk-ecdsa-sha2-nistp256@openssh\.com)$/;

/** OpenSSH's fingerprint of a raw public key blob. */
export function fingerprintOf(keyBlob: Buffer): string {
    return "SHA256:" + createHash("sha256").update(keyBlob).digest("base64").replace(/=+$/, "");
}

/** Parse a pin; returns an explanation instead of a pin when it is neither form. */
export function parseHostKeyPin(pin: string): PinnedHostKey | { error: string } {
    const text = pin.trim();
    if (FINGERPRINT.test(text)) {
        return { fingerprint: text };
    }
    // A known_hosts line has hosts first; a public key line starts with the type. Find the type.
    const fields = text.split(/\s+/);
    const typeAt = fields.findIndex((f) => KEY_TYPES.test(f));
    if (typeAt >= 0 && fields[typeAt + 1]) {
        const blob = Buffer.from(fields[typeAt + 1], "base64");
        // The blob starts with its own type name (uint32 length + name): check it so a truncated or
        // mistyped key is caught here, not as a mysterious mismatch later.
        const nameLength = blob.length >= 4 ? blob.readUInt32BE(0) : -1;
        const embedded = nameLength > 0 ? blob.subarray(4, 4 + nameLength).toString("latin1") : "";
        if (embedded !== fields[typeAt]) {
            return { error: `the ${fields[typeAt]} key in hostKey is not valid base64 of such a key` };
        }
        return { fingerprint: fingerprintOf(blob), keyType: fields[typeAt] };
    }
    return {
        error: "hostKey must be a SHA256 fingerprint as `ssh-keygen -lf` prints it (SHA256: and 43 base64 characters) or a known_hosts line",
    };
}
