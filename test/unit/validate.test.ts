import * as assert from "assert";
import fc from "fast-check";
import { provider } from "../../resources/providers/hostFacts";
import { goodConnection, throwawayKey } from "../helpers/fixtures";

async function failuresFor(connection: unknown) {
    const r = await provider.check({}, { connection });
    return r.failures ?? [];
}

describe("connection validation (HostFacts check)", () => {
    it("accepts a good connection and fills in defaults", async () => {
        const { port: _port, user: _user, ...minimal } = goodConnection();
        const r = await provider.check({}, { connection: minimal });
        assert.deepStrictEqual(r.failures, undefined);
        assert.strictEqual(r.inputs.connection.port, 22);
        assert.strictEqual(r.inputs.connection.user, "root");
        assert.strictEqual(r.inputs.connection.sudo, false);
    });

    it("names the field, the value and what is allowed", async () => {
        const [f] = await failuresFor(goodConnection({ port: 70000 }));
        assert.strictEqual(f.property, "connection.port");
        assert.match(f.reason, /70000/);
        assert.match(f.reason, /65535/);
    });

    it("refuses host names that could reach a shell, and bad users", async () => {
        for (const host of ["a b", "host;rm -rf /", "$(id)", "", "-oProxyCommand=x"]) {
            const fs = await failuresFor(goodConnection({ host }));
            assert.strictEqual(fs[0]?.property, "connection.host", `accepted host ${JSON.stringify(host)}`);
        }
        const [u] = await failuresFor(goodConnection({ user: "Root;id" }));
        assert.strictEqual(u.property, "connection.user");
    });

    it("requires a host key pin and explains the forms", async () => {
        const { hostKey: _h, ...noPin } = goodConnection();
        const [missing] = await failuresFor(noPin);
        assert.strictEqual(missing.property, "connection.hostKey");
        const [bad] = await failuresFor(goodConnection({ hostKey: "yes" }));
        assert.match(bad.reason, /ssh-keygen -lf|known_hosts/);
    });

    it("never echoes a private key back, even a wrong one", async () => {
        const secretish = "not-a-key-but-secret-material-123";
        const [f] = await failuresFor(goodConnection({ privateKey: secretish }));
        assert.strictEqual(f.property, "connection.privateKey");
        assert.ok(!f.reason.includes(secretish), f.reason);
        const key = throwawayKey().privateKey;
        const all = await failuresFor(goodConnection({ port: -1, privateKey: key }));
        assert.ok(all.every((x) => !x.reason.includes(key.split("\n")[1])));
    });

    it("takes host names, IPv4 and bracket-less IPv6 addresses, and refuses colons and dots that are no address", async () => {
        for (const host of ["lab1", "kvm1.example.internal", "127.0.0.1", "::1", "fe80::1%eth0", "2001:db8::5"]) {
            assert.strictEqual((await failuresFor(goodConnection({ host }))).length, 0, host);
        }
        for (const host of [":", "::", ":.", "..", "a b", "-lab"]) {
            const [f] = await failuresFor(goodConnection({ host }));
            assert.strictEqual(f?.property, "connection.host", host);
        }
    });

    it("names unknown fields (typos)", async () => {
        const [f] = await failuresFor(goodConnection({ hostkey: "x" }));
        assert.match(f.reason, /unknown field\(s\) hostkey/);
    });

    it("refuses random values in every field with that field's path, and accepts only values a user could mean", async () => {
        // What each field can hold, said independently of the schema: junk the check accepts must be one.
        const plausible: Record<string, (v: unknown) => boolean> = {
            // A name or IPv4 address starts with a letter or digit; an IPv6 one may start with "::".
            host: (v) => typeof v === "string" && (/^[A-Za-z0-9][A-Za-z0-9.:%_-]*$/.test(v) || /^::[0-9A-Fa-f:.]*[0-9A-Fa-f][0-9A-Fa-f:.]*(?:%[A-Za-z0-9_.-]+)?$/.test(v)),
            port: (v) => Number.isInteger(v) && (v as number) >= 1 && (v as number) <= 65535,
            user: (v) => typeof v === "string" && /^[a-z_][a-z0-9_-]*\$?$/.test(v),
            privateKey: () => false, // no random value is a key
            hostKey: () => false, // nor a host key pin
            sudo: (v) => typeof v === "boolean",
            connectTimeoutSeconds: (v) => Number.isInteger(v) && (v as number) >= 1 && (v as number) <= 600,
        };
        const junk = fc.oneof(fc.string(), fc.integer(), fc.double(), fc.boolean(), fc.constant(null), fc.array(fc.string()), fc.object());
        let refused = 0;
        await fc.assert(
            fc.asyncProperty(fc.constantFrom(...Object.keys(plausible)), junk, async (field, value) => {
                const r = await provider.check({}, { connection: goodConnection({ [field]: value }) });
                if (r.failures) {
                    refused++;
                    assert.ok(r.failures.some((x) => x.property === `connection.${field}`), JSON.stringify(r.failures));
                } else {
                    // Accepted: a value of the field's kind, kept as given.
                    assert.ok(plausible[field](value), `connection.${field} accepted ${JSON.stringify(value)}`);
                    assert.deepStrictEqual(r.inputs.connection[field], value);
                }
            }),
            { numRuns: 300 },
        );
        assert.ok(refused > 150, `only ${refused} of 300 random values were refused`);
    });
});
