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

    it("names unknown fields (typos)", async () => {
        const [f] = await failuresFor(goodConnection({ hostkey: "x" }));
        assert.match(f.reason, /unknown field\(s\) hostkey/);
    });

    it("refuses random values in every field with that field's path", async () => {
        const fields = ["host", "port", "user", "privateKey", "hostKey", "sudo", "connectTimeoutSeconds"];
        const junk = fc.oneof(fc.string(), fc.integer(), fc.double(), fc.boolean(), fc.constant(null), fc.array(fc.string()), fc.object());
        await fc.assert(
            fc.asyncProperty(fc.constantFrom(...fields), junk, async (field, value) => {
                const r = await provider.check({}, { connection: goodConnection({ [field]: value }) });
                // Either the junk happens to be valid for the field, or the failure names that field.
                if (r.failures) {
                    assert.ok(r.failures.some((x) => x.property === `connection.${field}`), JSON.stringify(r.failures));
                }
            }),
            { numRuns: 300 },
        );
    });
});
