/**
 * Files kvmtune writes on hosts (resources/host/files.ts), run for real in a shell whose /etc is a
 * temp folder (LocalRemote with `etc`): root-owned, 0644 or tighter, and atomic: a connection cut
 * mid-send or a writer killed mid-write leaves the old file or the new one, never a partial one.
 */
import * as assert from "assert";
import { spawn } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import fc from "fast-check";
import { atomicWriteScript, managedHeader } from "../../resources/host/files";
import { runScript, wholeScript } from "../../resources/host/remote";
import { localCommand, LocalRemote } from "../helpers/localRemote";

const TARGET = "/etc/udev/rules.d/61-kvmtune-elevator-vdb.rules";
const OLD = managedHeader("BlockElevator db (p/s)") + 'ACTION=="add|change", KERNEL=="vdb", ATTR{queue/scheduler}="bfq"\n';
const NEW = managedHeader("BlockElevator db (p/s)") + 'ACTION=="add|change", KERNEL=="vdb", ATTR{queue/scheduler}="mq-deadline", ATTR{queue/iosched/read_expire}="100"\n';
/** Marks the temp /etc, so the driver below refuses to clean any other /etc. */
const MARKER = ".kvmtune-test-etc";

describe("persistence files on a host", function () {
    this.timeout(180_000);
    let root: string;
    let etc: string;
    let remote: LocalRemote;
    const onHost = (p: string) => path.join(etc, p.replace(/^\/etc\//, ""));

    beforeEach(() => {
        root = fs.mkdtempSync(path.join(os.tmpdir(), "kvmtune-atomic-"));
        etc = path.join(root, "etc");
        fs.mkdirSync(etc);
        fs.writeFileSync(path.join(etc, MARKER), "");
        remote = new LocalRemote({ etc });
    });
    afterEach(() => fs.rmSync(root, { recursive: true, force: true }));

    it("are root-owned 0644 (or tighter when asked) and hold exactly the bytes given", async () => {
        await runScript(remote, atomicWriteScript(TARGET, NEW));
        let st = fs.statSync(onHost(TARGET));
        assert.deepStrictEqual([st.uid, st.gid, st.mode & 0o777], [0, 0, 0o644]);
        assert.strictEqual(fs.readFileSync(onHost(TARGET), "utf8"), NEW);
        await runScript(remote, atomicWriteScript("/etc/kvmtune/secret.conf", "x", "0600"));
        st = fs.statSync(onHost("/etc/kvmtune/secret.conf"));
        assert.strictEqual(st.mode & 0o777, 0o600);
    });

    it("refuse group- or world-writable modes and paths outside /etc and /usr/local", () => {
        for (const mode of ["0664", "0666", "0646", "0777", "0620", "644", "0o644", "0800"]) {
            assert.throws(() => atomicWriteScript(TARGET, "x", mode), /bad file mode/, mode);
        }
        for (const p of ["/tmp/x", "/etc/../root/x", "/etc/a b", "etc/x", "/etc/x/", "/etc/$(id)", "/etc/x\n/y", "/usr/localx/y"]) {
            assert.throws(() => atomicWriteScript(p, "x"), /refusing to manage/, JSON.stringify(p));
        }
        assert.doesNotThrow(() => atomicWriteScript("/etc/systemd/system/mnt-huge\\x2d1G.mount", "x"));
    });

    it("carry any content byte for byte, shell syntax included, and never run it", async () => {
        const canary = path.join(root, "canary");
        const hostile = fc.oneof(
            fc.string({ unit: "binary", maxLength: 200 }),
            fc.constantFrom(`$(touch ${canary})`, `\`touch ${canary}\``, `'; touch ${canary}; '`, `"\n touch ${canary}\n"`, "\\", "%s%n"),
        );
        // Many contents in one script: one namespace, one round trip.
        const contents = fc.sample(hostile, { numRuns: 60, seed: 11 });
        await runScript(remote, contents.map((c, n) => atomicWriteScript(`/etc/kvmtune/content${n}`, c)).join("\n"));
        contents.forEach((c, n) => assert.strictEqual(fs.readFileSync(onHost(`/etc/kvmtune/content${n}`), "utf8"), c, `content ${n}`));
        assert.ok(!fs.existsSync(canary), "content ran as a command");
    });

    /**
     * Runs cuts of a script in turn, in one namespace: restore the old file, feed the first `n`
     * bytes to `sh -s` (what sshd does when the connection drops: end of input), then report the
     * target's content and every path under /etc. One result per cut.
     */
    async function cutsOf(script: string, at: number[]): Promise<Array<{ cut: number; target: string | null; paths: string[] }>> {
        const cuts = path.join(root, "cuts");
        fs.mkdirSync(cuts);
        for (const n of at) fs.writeFileSync(path.join(cuts, String(n).padStart(6, "0")), script.slice(0, n));
        const old = Buffer.from(OLD).toString("base64");
        const driver = [
            `[ -f /etc/${MARKER} ] || exit 99`,
            `for f in ${cuts}/*; do`,
            `  find /etc -mindepth 1 -maxdepth 1 ! -name ${MARKER} -exec rm -rf {} +`,
            `  mkdir -p /etc/udev/rules.d && printf '%s' ${old} | base64 -d > ${TARGET}`,
            `  sh -s < "$f" >/dev/null 2>&1`,
            `  printf '%s\\t%s\\t%s\\n' "\${f##*/}" "$(base64 -w0 < ${TARGET} 2>/dev/null || echo -)" "$(cd /etc && find . -mindepth 1 ! -name ${MARKER} | LC_ALL=C sort | tr '\\n' ' ')"`,
            `done`,
        ].join("\n");
        const r = await remote.exec(driver);
        assert.strictEqual(r.code, 0, r.stderr);
        return r.stdout
            .trim()
            .split("\n")
            .map((line) => {
                const [cut, b64, paths] = line.split("\t");
                return { cut: Number(cut), target: b64 === "-" ? null : Buffer.from(b64, "base64").toString("utf8"), paths: paths.trim().split(" ") };
            });
    }

    const expectedPaths = ["./udev", "./udev/rules.d", "./udev/rules.d/61-kvmtune-elevator-vdb.rules"];

    /**
     * Where to cut (each cut costs a round of processes on a loaded machine, so not every byte):
     * every byte near a line break and at the end, every 5th byte elsewhere, every 64th of the
     * base64 payload (cuts inside it are alike).
     */
    function cutPoints(script: string): number[] {
        const payload = /[A-Za-z0-9+/=]{40,}/.exec(script)!;
        const nearBreak = (n: number) => [...script.slice(Math.max(0, n - 3), n + 4)].includes("\n") || n >= script.length - 4;
        const points: number[] = [];
        for (let n = 0; n < script.length; n++) {
            const inPayload = n > payload.index && n < payload.index + payload[0].length;
            if (inPayload ? (n - payload.index) % 64 === 0 : nearBreak(n) || n % 5 === 0) points.push(n);
        }
        return points;
    }

    it("a script cut at any point (a dropped connection) changes nothing until the whole of it arrived", async () => {
        const sent = wholeScript(atomicWriteScript(TARGET, NEW));
        const at = cutPoints(sent);
        const results = await cutsOf(sent, at);
        assert.strictEqual(results.length, at.length);
        // The group is complete once its closing brace arrived; only its final newline may be missing.
        const complete = sent.lastIndexOf("}") + 1;
        for (const r of results) {
            const expected = r.cut >= complete ? NEW : OLD;
            assert.strictEqual(r.target, expected, `cut at byte ${r.cut} of ${sent.length}: the target is not the ${r.cut >= complete ? "new" : "old"} file`);
            assert.deepStrictEqual(r.paths, expectedPaths, `cut at byte ${r.cut} of ${sent.length} left a stray`);
        }
        // And the whole script does write the new file (the cuts are not failing for another reason).
        await runScript(remote, atomicWriteScript(TARGET, NEW));
        assert.strictEqual(fs.readFileSync(onHost(TARGET), "utf8"), NEW);
    });

    it("sent bare, without the brace group runScript adds, some cuts would run a cut-off command", async () => {
        // Why wholeScript exists, and proof that the check above sees strays when there are some.
        // The cuts inside the first command are enough to show it (`mkdir -p /etc/ude` ...).
        const bare = atomicWriteScript(TARGET, NEW);
        const results = await cutsOf(bare, Array.from({ length: bare.indexOf("\n") }, (_, n) => n + 1));
        const strays = results.filter((r) => r.target !== OLD || JSON.stringify(r.paths) !== JSON.stringify(expectedPaths));
        assert.ok(strays.length > 0, "no cut of the bare script did anything wrong");
        assert.ok(strays.every((r) => r.target === OLD || r.target === NEW), "a cut left a partial target");
    });

    it("a writer killed at any moment leaves the old file or the new one, never a partial one", async () => {
        // Big enough that the write takes a while: the kills land before, during and after it.
        const big = managedHeader("HugepagePool p (p/s)") + "#".repeat(2_000_000) + "\n";
        fs.mkdirSync(path.dirname(onHost(TARGET)), { recursive: true });
        const seen = new Set<string>();
        for (let trial = 0; trial < 16; trial++) {
            fs.writeFileSync(onHost(TARGET), OLD);
            const [file, args] = localCommand("sh -s", { etc });
            const child = spawn(file, args, { stdio: ["pipe", "ignore", "ignore"], detached: true });
            child.stdin.on("error", () => undefined);
            child.stdin.end(wholeScript(atomicWriteScript(TARGET, big)));
            const exited = new Promise((resolve) => child.on("exit", resolve));
            await new Promise((resolve) => setTimeout(resolve, trial * 40));
            try {
                process.kill(-child.pid!, "SIGKILL"); // the whole process group, as a dying session would
            } catch {
                // already done
            }
            await exited;
            const now = fs.readFileSync(onHost(TARGET), "utf8");
            assert.ok(now === OLD || now === big, `trial ${trial}: the target holds ${now.length} bytes, neither the old file nor the new`);
            seen.add(now === OLD ? "old" : "new");
            // A killed writer may leave its temp file: hidden, and named so udev and systemd ignore it.
            for (const name of fs.readdirSync(path.dirname(onHost(TARGET)))) {
                assert.ok(name === path.basename(TARGET) || /^\.kvmtune\.[0-9a-f]{8}\.[A-Za-z0-9]{6}$/.test(name), `stray ${name}`);
            }
        }
        // Both outcomes happened, or the kills did not land where they should have.
        assert.deepStrictEqual([...seen].sort(), ["new", "old"]);
    });

    it("the next write removes what a write cut by a reboot left (another boot's temp files), never this boot's", async () => {
        const dir = path.dirname(onHost(TARGET));
        fs.rmSync(dir, { recursive: true, force: true });
        fs.mkdirSync(dir, { recursive: true });
        const boot = fs.readFileSync("/proc/sys/kernel/random/boot_id", "utf8").trim().split("-")[0];
        const otherBoot = boot.replace(/^./, (c) => (c === "0" ? "1" : "0"));
        const leftBehind = [`.kvmtune.${otherBoot}.Ab12Cd`, ".kvmtune.Xy34Zw" /* named before boot ids */];
        const inFlight = `.kvmtune.${boot}.Ef56Gh`; // another writer of this boot, still going
        for (const name of [...leftBehind, inFlight]) fs.writeFileSync(path.join(dir, name), "partial");
        await runScript(remote, atomicWriteScript(TARGET, NEW));
        assert.deepStrictEqual(fs.readdirSync(dir).sort(), [inFlight, path.basename(TARGET)].sort());
        assert.strictEqual(fs.readFileSync(onHost(TARGET), "utf8"), NEW);
    });
});
