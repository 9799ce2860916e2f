/** Inputs that pass validation, for tests that need a well-formed connection. */
import { execFileSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";

export interface KeyPair {
    privateKey: string;
    /** The public key line (`ssh-ed25519 AAAA... comment`). */
    publicKey: string;
    /** As `ssh-keygen -lf` prints it. */
    fingerprint: string;
}

/** A fresh ed25519 key pair, made by OpenSSH's own ssh-keygen. */
export function newKeyPair(): KeyPair {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "kvmtune-key-"));
    try {
        const keyPath = path.join(dir, "id");
        execFileSync("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-f", keyPath]);
        const fingerprint = execFileSync("ssh-keygen", ["-lf", keyPath + ".pub"], { encoding: "utf8" }).split(" ")[1];
        return { privateKey: fs.readFileSync(keyPath, "utf8"), publicKey: fs.readFileSync(keyPath + ".pub", "utf8").trim(), fingerprint };
    } finally {
        fs.rmSync(dir, { recursive: true });
    }
}

let cached: KeyPair | undefined;

/** A real (throw-away) ed25519 key pair and its fingerprint, made once per test run. */
export function throwawayKey(): KeyPair {
    return (cached ??= newKeyPair());
}

/**
 * The parts of a private key that are secret: 24-character pieces of its base64 body that another
 * key of the same type does not share (OpenSSH keys start with the same constant bytes). A text
 * holding any of them holds part of the key.
 */
export function secretPieces(privateKey: string): string[] {
    const body = (k: string) => k.split("\n").filter((l) => l && !l.startsWith("-----")).join("");
    const other = body(newKeyPair().privateKey);
    const mine = body(privateKey);
    const pieces: string[] = [];
    for (let at = 0; at + 24 <= mine.length; at += 12) {
        const piece = mine.slice(at, at + 24);
        if (!other.includes(piece)) pieces.push(piece);
    }
    return pieces;
}

/** The first secret piece of the key found in `text`, or undefined. */
export function leakedPiece(text: string, pieces: readonly string[]): string | undefined {
    const flat = text.replace(/\\n|\s/g, "");
    return pieces.find((p) => flat.includes(p));
}

export function goodConnection(overrides: Record<string, unknown> = {}): Record<string, unknown> {
    const key = throwawayKey();
    // Port 1: nothing listens there. A test that connects by mistake must not reach a lab host (2201, 2202).
    return { host: "127.0.0.1", port: 1, user: "root", privateKey: key.privateKey, hostKey: key.fingerprint, ...overrides };
}

/**
 * Strings written to break out of a shell, each with a command that would create `canary`: the
 * one list the unit tests (quoting, every provider's check) and the lab's canary test share.
 */
export function shellBreakouts(canary: string): string[] {
    return [
        `; touch ${canary}`,
        `$(touch ${canary})`,
        `\`touch ${canary}\``,
        `' ; touch ${canary} ; '`,
        `" ; touch ${canary} ; "`,
        `x\ntouch ${canary}`,
        `x && touch ${canary}`,
        `| touch ${canary}`,
        `-oProxyCommand=touch ${canary}`,
    ];
}
