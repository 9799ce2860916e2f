/**
 * The SSH transport against real lab hosts, each claim checked from the host's side with the
 * system ssh client (labHosts), not with the library under test.
 */
import * as assert from "assert";
import { spawn } from "child_process";
import * as fs from "fs";
import { ConnectError, HostKeyMismatchError, RemoteCommandError } from "../../resources/host/errors";
import { gatherFacts } from "../../resources/host/facts";
import { shellQuote } from "../../resources/host/quote";
import { run } from "../../resources/host/remote";
import { closeAll, MAX_CHANNELS, poolStats, remoteFor } from "../../resources/host/sshPool";
import { labConnection } from "../helpers/labConnection";
import { LabHost, loadInventory, sshArgs, sshOk } from "./labHosts";

const connectionTo = labConnection;

/**
 * Watches, from the host, which SSH clients hold an established connection to sshd, sampling every
 * 0.1 s until stopped. Returns the peers (address:port) that appeared after it started, other than
 * its own. Peers rather than a count before and after: a count taken at one moment races the pool's
 * handshake on a slow emulated host, and the lab's own ssh master may come or go in between.
 */
function watchNewSshPeers(h: LabHost): { ready: Promise<void>; stop: () => Promise<string[]> } {
    const peers = "ss -Htn state established '( sport = :22 )' | awk '{print $4}'";
    const script = [
        "self=$(echo \"$SSH_CONNECTION\" | awk '{print $1\":\"$2}')",
        `base=$(${peers})`,
        "echo ready",
        // Stops when the test writes a line (or closes stdin); read -t times out (>128) otherwise.
        `while read -t 0.1 _; [ $? -gt 128 ]; do ${peers}; done | sort -u | while read p; do`,
        '  [ "$p" = "$self" ] && continue',
        '  case " $(echo $base) " in *" $p "*) continue ;; esac',
        '  echo "new $p"',
        "done",
    ].join("\n");
    const child = spawn("ssh", [...sshArgs(h), `bash -c ${shellQuote(script)}`], { stdio: ["pipe", "pipe", "pipe"] });
    let out = "";
    let stderr = "";
    child.stderr.on("data", (b: Buffer) => (stderr += b.toString()));
    const ready = new Promise<void>((resolve, reject) => {
        child.stdout.on("data", (b: Buffer) => {
            out += b.toString();
            if (out.includes("ready\n")) resolve();
        });
        child.on("close", (code) => reject(new Error(`peer watch ended early (exit ${code}): ${stderr}`)));
    });
    const closed = new Promise<void>((resolve) => child.on("close", () => resolve()));
    return {
        ready,
        stop: async () => {
            child.stdin.end("stop\n");
            await closed;
            return out
                .split("\n")
                .filter((l) => l.startsWith("new "))
                .map((l) => l.slice(4));
        },
    };
}

describe("SSH transport on lab hosts", function () {
    this.timeout(300_000);
    const inventory = loadInventory();
    const first = inventory.hosts[0];
    afterEach(() => closeAll());

    it("runs more parallel commands than sshd's MaxSessions over one connection", async () => {
        const conn = connectionTo(first);
        const watch = watchNewSshPeers(first);
        await watch.ready;
        const remote = remoteFor(conn);
        const count = MAX_CHANNELS * 3;
        const outputs = await Promise.all(
            Array.from({ length: count }, (_, i) => run(remote, `sleep 1; echo ${i}`)),
        );
        const newPeers = await watch.stop();
        assert.deepStrictEqual(outputs.map((o) => Number(o.trim())), Array.from({ length: count }, (_, i) => i));
        assert.strictEqual(newPeers.length, 1, `the host saw ${newPeers.length} new SSH connections: ${newPeers.join(", ")}`);
        const stats = poolStats()[`${conn.user}@${conn.host}:${conn.port}`];
        assert.deepStrictEqual(stats, { connections: 1, commands: count });
    });

    it("refuses a host whose key differs from the pin, naming both fingerprints", async () => {
        const other = inventory.hosts.find((h) => h.hostKey !== first.hostKey);
        const wrongPin = other?.hostKey ?? "SHA256:" + "A".repeat(43);
        const remote = remoteFor(connectionTo(first, { hostKey: wrongPin }));
        await assert.rejects(run(remote, "true"), (err: Error) => {
            assert.ok(err instanceof HostKeyMismatchError, String(err));
            assert.ok(err.message.includes(wrongPin) && err.message.includes(first.hostKey), err.message);
            return true;
        });
    });

    it("accepts the pin as a known_hosts line", async () => {
        const line = fs
            .readFileSync(inventory.knownHostsPath, "utf8")
            .split("\n")
            .find((l) => l.startsWith(`[${first.host}]:${first.port} ssh-ed25519 `));
        assert.ok(line, "the lab's known_hosts has no ed25519 line for the first host");
        const remote = remoteFor(connectionTo(first, { hostKey: line }));
        assert.strictEqual((await run(remote, "cat /etc/hostname")).trim(), (await sshOk(first, "cat /etc/hostname")).trim());
    });

    it("reports a failed command with host, command, exit code and stderr, never the key", async () => {
        const conn = connectionTo(first);
        const remote = remoteFor(conn);
        await assert.rejects(run(remote, "echo broken-thing >&2; exit 7"), (err: Error) => {
            assert.ok(err instanceof RemoteCommandError);
            assert.strictEqual(err.exitCode, 7);
            assert.match(err.message, /exit 7/);
            assert.match(err.message, /broken-thing/);
            assert.ok(err.message.includes(`${first.host}:${first.port}`), err.message);
            const keyBody = (conn.privateKey as string).split("\n")[1];
            assert.ok(!err.message.includes(keyBody) && !JSON.stringify(err).includes(keyBody));
            return true;
        });
    });

    it("runs privileged commands as a non-root user through sudo", async () => {
        const tunerId = (await sshOk(first, "id -u", { user: first.sudoUser })).trim();
        assert.notStrictEqual(tunerId, "0");
        const withSudo = remoteFor(connectionTo(first, { user: first.sudoUser, sudo: true }));
        assert.strictEqual((await run(withSudo, "id -u", { privileged: true })).trim(), "0");
        assert.strictEqual((await run(withSudo, "id -u")).trim(), tunerId);
        closeAll();
        const withoutSudo = remoteFor(connectionTo(first, { user: first.sudoUser, sudo: false }));
        assert.strictEqual((await run(withoutSudo, "id -u", { privileged: true })).trim(), tunerId);
    });

    it("gives up on a closed port with a connect error after retrying", async () => {
        const remote = remoteFor(connectionTo(first, { port: 1, connectTimeoutSeconds: 5 }));
        await assert.rejects(run(remote, "true"), (err: Error) => {
            assert.ok(err instanceof ConnectError, String(err));
            assert.strictEqual(err.attempts, 3);
            assert.match(err.message, /127\.0\.0\.1:1/);
            return true;
        });
    });

    for (const h of inventory.hosts) {
        it(`${h.name}: host facts match what the host says`, async () => {
            const facts = await gatherFacts(remoteFor(connectionTo(h)));
            const sh = (cmd: string) => sshOk(h, cmd).then((s) => s.trim());
            assert.strictEqual(facts.hostname, await sh("hostname"));
            assert.strictEqual(facts.kernel, await sh("uname -r"));
            assert.deepStrictEqual(
                facts.numaNodes.map((n) => `node${n.id}:${n.cpus.join(",")}`),
                (await sh("for n in /sys/devices/system/node/node*; do echo $(basename $n):$(cat $n/cpulist | tr - ,); done")).split("\n"),
            );
            for (const d of facts.blockDevices) {
                const raw = await sh(`cat /sys/block/${d.queues[0]}/queue/scheduler`);
                assert.ok(raw.includes(`[${d.scheduler}]`) || raw === d.scheduler, `${d.name}: ${raw} vs ${d.scheduler}`);
                for (const id of d.ids) assert.strictEqual(await sh(`readlink -f ${id}`), `/dev/${d.name}`);
            }
            for (const kind of ["vd", "sd", "nvme"]) {
                assert.ok(facts.blockDevices.some((d) => d.name.startsWith(kind)), `no ${kind} disk in facts`);
            }
            const pfs = facts.nics.filter((n) => (n.sriovTotalVfs ?? 0) > 0);
            assert.ok(pfs.length >= 1, "no SR-IOV PF in facts");
            for (const pf of pfs) {
                assert.strictEqual(String(pf.sriovTotalVfs), await sh(`cat /sys/class/net/${pf.name}/device/sriov_totalvfs`));
                assert.strictEqual(pf.driver, "igb");
            }
            assert.strictEqual(facts.vhostNet.device, (await sshOk(h, "test -c /dev/vhost-net && echo yes || echo no")).trim() === "yes");
            assert.strictEqual(facts.libvirt.version, await sh("virsh --version"));
            assert.strictEqual(facts.libvirt.active, true);
        });
    }
});
