/**
 * The private key never comes back in an error, wherever a program puts it by mistake: in any
 * field of any provider, as an object key, in a list, with text around it, or as the whole
 * connection. Checked on check()'s failures and on the error create() throws for inputs that skip
 * check. (Transport errors: transport.test.ts; state at rest and engine logs: the e2e fault suite;
 * the serialized provider: serialization.test.ts.)
 */
import * as assert from "assert";
import type * as pulumi from "@pulumi/pulumi";
import { closedPort } from "../helpers/fakeSshHost";
import { leakedPiece, secretPieces, throwawayKey } from "../helpers/fixtures";
import { fieldsOf, objectsOf, PROVIDER_CASES, setAt, withConnection } from "../helpers/providerCases";

type Provider = {
    check(olds: unknown, news: Record<string, unknown>): Promise<pulumi.dynamic.CheckResult>;
    create(inputs: Record<string, unknown>): Promise<unknown>;
};

const pathsOf = (v: unknown) => fieldsOf(v).map((f) => f.path);

describe("the private key never appears in an input error", function () {
    this.timeout(60_000);
    const key = throwawayKey().privateKey;
    const pieces = secretPieces(key);
    // create() gets inputs check refused; some of them are valid once the stray field is dropped and
    // do connect: to a port nothing listens on, never to a real host.
    let port: number;
    before(async () => {
        port = await closedPort();
    });

    for (const [name, c] of Object.entries(PROVIDER_CASES)) {
        it(`${name}: the key misplaced anywhere in the inputs is refused without being quoted`, async () => {
            // eslint-disable-next-line @typescript-eslint/no-require-imports
            const provider: Provider = require(`../../resources/providers/${c.module}`).provider;
            const base = withConnection(c.valid[0], { port, connectTimeoutSeconds: 1 });
            const misplaced: Array<[string, Record<string, unknown>]> = [
                ["the whole connection", { ...base, connection: key }],
                ["an unknown field", { ...base, sshKey: key }],
                ["an unknown connection field", setAt(base, ["connection", "password"], key)],
                ["a list in the connection", setAt(base, ["connection", "privateKey"], [key])],
            ];
            for (const at of pathsOf(base)) {
                misplaced.push([`${at.join(".")}`, setAt(base, at, key)]);
                misplaced.push([`${at.join(".")} with text around it`, setAt(base, at, `see: ${key} (copied)`)]);
                misplaced.push([`${at.join(".")} wrapped in an object`, setAt(base, at, { value: key })]);
            }
            for (const at of objectsOf(base)) {
                // As an object key: the key then is part of an issue's path.
                misplaced.push([`a key inside ${at.join(".") || "the inputs"}`, setAt(base, [...at, key], 1)]);
            }
            let refused = 0;
            for (const [where, inputs] of misplaced) {
                const r = await provider.check({}, inputs);
                if (r.failures) refused++;
                assert.strictEqual(leakedPiece(JSON.stringify(r.failures ?? []), pieces), undefined, `key in ${where}: ${JSON.stringify(r.failures)}`);
                // Inputs that never went through check (an imported state, say) fail in create, before any host is reached.
                if (r.failures) {
                    const err = await provider.create({ ...inputs, owner: `${name} x (p/s)` }).then(() => undefined, (e: Error) => e);
                    assert.ok(err instanceof Error, `key in ${where}: create accepted what check refused`);
                    assert.strictEqual(leakedPiece(err.message + String(err.stack), pieces), undefined, `key in ${where}: ${err.message}`);
                }
            }
            // Every placement but the right one (connection.privateKey, alone or with text around it) is an error.
            assert.strictEqual(refused, misplaced.length - 2, `${refused} of ${misplaced.length} placements refused`);
        });
    }
});
