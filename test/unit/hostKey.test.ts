import * as assert from "assert";
import { execFileSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { fingerprintOf, parseHostKeyPin } from "../../resources/host/hostKey";

describe("host key pins", () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "kvmtune-hostkey-"));
    const keyPath = path.join(dir, "key");
    execFileSync("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-f", keyPath]);
    const publicLine = fs.readFileSync(keyPath + ".pub", "utf8").trim();
    // What OpenSSH itself prints: the reference our fingerprint must equal.
    const opensshFingerprint = execFileSync("ssh-keygen", ["-lf", keyPath + ".pub"], { encoding: "utf8" }).split(" ")[1];
    after(() => fs.rmSync(dir, { recursive: true }));

    it("computes the fingerprint ssh-keygen -lf prints", () => {
        const blob = Buffer.from(publicLine.split(" ")[1], "base64");
        assert.strictEqual(fingerprintOf(blob), opensshFingerprint);
    });

    it("accepts a fingerprint, a public key line and a known_hosts line", () => {
        assert.deepStrictEqual(parseHostKeyPin(opensshFingerprint), { fingerprint: opensshFingerprint });
        const fromLine = parseHostKeyPin(publicLine);
        assert.deepStrictEqual(fromLine, { fingerprint: opensshFingerprint, keyType: "ssh-ed25519" });
        const known = `[127.0.0.1]:2201 ${publicLine.split(" ").slice(0, 2).join(" ")}`;
        assert.deepStrictEqual(parseHostKeyPin(known), { fingerprint: opensshFingerprint, keyType: "ssh-ed25519" });
    });

    it("refuses what is neither, saying what is allowed", () => {
        for (const bad of ["", "SHA256:short", "MD5:aa:bb", "ssh-ed25519 bm90IGEga2V5", "hello world"]) {
            const r = parseHostKeyPin(bad);
            assert.ok("error" in r, `accepted ${JSON.stringify(bad)}`);
            assert.match(r.error, /SHA256|not valid/);
        }
    });
});
