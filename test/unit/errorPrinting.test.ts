/**
 * What a user sees when a provider method fails: Pulumi's dynamic provider host prints a failed
 * check, diff, read or delete as `${err}: ${err.stack}`, and an uncaught error as `err.stack`. A
 * kvmtune error is to print as one line, `Name: message`, with its message once and no Node.js
 * stack (a refresh of a host that is down printed the ConnectError twice and a stack trace). The
 * host's format leaves a trailing `: ` after an empty stack: the price of one line.
 */
import * as assert from "assert";
import * as fs from "fs";
import { ClaimError } from "../../resources/host/claims";
import { ConnectError, ConnectionLostError, HostKeyMismatchError, InvalidInputsError, RemoteCommandError, stepOf } from "../../resources/host/errors";
import { claimScript } from "../../resources/host/claims";
import { wholeScript } from "../../resources/host/remote";
import { buildDumpScript } from "../../resources/host/sysfs";
import { closeAll } from "../../resources/host/sshPool";
import { provider as hostFacts } from "../../resources/providers/hostFacts";
import { closedPort } from "../helpers/fakeSshHost";
import { goodConnection } from "../helpers/fixtures";

/** How node_modules/@pulumi/pulumi/cmd/dynamic-provider/index.js prints a failed read or delete. */
const providerHostLine = (err: Error) => `${err}: ${err.stack}`;
/** How its uncaught-error handler prints. */
const uncaughtLine = (err: Error) => err.stack || err.message;

function assertOneClearLine(err: Error): void {
    const printed = providerHostLine(err);
    assert.strictEqual(printed, `${err.name}: ${err.message}: `);
    assert.doesNotMatch(printed, /\n\s+at /, "no Node.js stack trace");
    assert.strictEqual(uncaughtLine(err), err.message);
}

describe("kvmtune errors as Pulumi's dynamic provider host prints them", () => {
    it("the provider host still prints failures as `${err}: ${err.stack}` (what this suite assumes)", () => {
        const host = fs.readFileSync(require.resolve("@pulumi/pulumi/cmd/dynamic-provider/index.js"), "utf8");
        assert.ok(host.includes("console.error(`${e}: ${e.stack}`);"), "the SDK changed how it prints errors: revisit KvmtuneError in resources/host/errors.ts");
        assert.ok(host.includes("console.error(err.stack || err.message"), "the SDK changed its uncaught-error printing");
    });

    it("a refresh of a host that is down prints the ConnectError once, without a stack", async function () {
        this.timeout(20_000);
        const port = await closedPort();
        const connection = goodConnection({ host: "127.0.0.1", port, connectTimeoutSeconds: 1 });
        try {
            await assert.rejects(hostFacts.read("facts", { connection }), (err: Error) => {
                assert.ok(err instanceof ConnectError, String(err.message));
                const printed = providerHostLine(err);
                assert.match(printed, new RegExp(`^ConnectError: cannot connect to root@127\\.0\\.0\\.1:${port} after \\d attempt\\(s\\) in \\d+\\.\\d s: .*ECONNREFUSED`));
                assert.strictEqual(printed.split("cannot connect").length, 2, `the message once: ${printed}`);
                assertOneClearLine(err);
                return true;
            });
        } finally {
            closeAll();
        }
    });

    const errors: Array<[string, () => Error]> = [
        ["RemoteCommandError", () => new RemoteCommandError("root@h:22", "virsh start db1", 1, "error: failed to start")],
        ["HostKeyMismatchError", () => new HostKeyMismatchError("root@h:22", "SHA256:aaa", "SHA256:bbb")],
        ["ConnectError", () => new ConnectError("root@h:22", 3, "connect ECONNREFUSED", 30_000)],
        ["ConnectionLostError", () => new ConnectionLostError("root@h:22", "virsh define /dev/stdin")],
        ["ClaimError", () => new ClaimError("root@h:22", "disk-sdb", "other-stack", "/etc/kvmtune/claims/disk-sdb", "disk sdb", "# kvmtune")],
        ["InvalidInputsError", () => new InvalidInputsError("invalid HugepagePool inputs:\n  pageSize: got nothing; ...")],
    ];
    for (const [name, make] of errors) {
        it(`${name} prints as one line: its name and message, no stack`, () => {
            const err = make();
            assert.strictEqual(err.name, name);
            assertOneClearLine(err);
        });
    }

    it("a stack set by someone else (a test runner, a wrapper) is kept, and String(err) is `Name: message`", () => {
        const err = new ConnectError("root@h:22", 1, "refused");
        err.stack = "replaced";
        assert.strictEqual(err.stack, "replaced");
        // And the error reads as usual where it is turned into text.
        assert.strictEqual(String(err), "ConnectError: cannot connect to root@h:22 after 1 attempt(s): refused");
    });

    it("a lost connection names its step by what the step does, not by its whole script", () => {
        // A read script opens with its purpose as a comment.
        assert.strictEqual(stepOf(wholeScript(buildDumpScript({ files: ["/etc/hostname"] }))), "kvmtune read: one record per file, link and command, in O(1) processes …");
        // A claim script opens with helper functions: the step is the first thing it does.
        assert.strictEqual(stepOf(wholeScript(claimScript({ knob: "hugepages-2M", what: "the 2M pool", owner: "o", formerOwners: [], files: [] }))), "check /etc/kvmtune/claims/hugepages-2M …");
        assert.strictEqual(stepOf("virsh start g1"), "virsh start g1");
        assert.strictEqual(stepOf(`echo ${"x".repeat(200)}`).length, 100);
    });
});
