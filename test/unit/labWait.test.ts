/**
 * `lab/host.sh prepare|wait` without VMs: a fake `ssh` on PATH answers as SSH would, and a sleeping
 * process that names the host's pid file stands in for its QEMU. What a lab user sees: known_hosts
 * written when a host is prepared, a refused host key reported at once with SSH's own words and
 * no power cycle, and a timeout that shows the last SSH error.
 */
import * as assert from "assert";
import { ChildProcess, spawn, spawnSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";

const HOST_SH = path.resolve(__dirname, "../../../lab/host.sh");

describe("lab host.sh prepare and wait (fake ssh, no VM)", function () {
    this.timeout(60_000);
    let root: string;
    let state: string;
    let fakeQemu: ChildProcess | undefined;
    const env = () => ({ ...process.env, KVMTUNE_LAB_STATE: state, XDG_CACHE_HOME: path.join(root, "cache"), PATH: `${path.join(root, "bin")}:${process.env.PATH}`, KVMTUNE_LAB_BOOT_TIMEOUT: "4", KVMTUNE_LAB_PORT_BASE: "2200", KVMTUNE_LAB_FLAVORS: "" });
    const hostSh = (...args: string[]) => spawnSync("bash", [HOST_SH, ...args], { env: env(), encoding: "utf8" });
    /** A fake ssh: prints `stderr` and exits 255, as SSH does when it cannot get in. */
    const fakeSsh = (stderr: string) => fs.writeFileSync(path.join(root, "bin", "ssh"), `#!/bin/sh\nprintf '%s\\n' ${JSON.stringify(stderr)} >&2\nexit 255\n`, { mode: 0o755 });

    beforeEach(() => {
        root = fs.mkdtempSync(path.join(os.tmpdir(), "kvmtune-labwait-"));
        state = path.join(root, "state");
        fs.mkdirSync(path.join(root, "bin"), { recursive: true });
        // prepare's overlay: an empty file does, and the test needs no QEMU package installed.
        fs.writeFileSync(path.join(root, "bin", "qemu-img"), '#!/bin/sh\nfor a in "$@"; do last=$a; done\n: > "$last"\n', { mode: 0o755 });
        // The image prepare copies on write from: it must exist.
        const key = spawnSync("bash", ["-c", `source ${JSON.stringify(path.resolve(__dirname, "../../../lab/lib.sh"))}; image_key`], { env: env(), encoding: "utf8" }).stdout.trim();
        assert.match(key, /^bookworm-[0-9a-f]{16}$/);
        fs.mkdirSync(path.join(root, "cache", "kvmtune", "lab", "images", key), { recursive: true });
        fs.writeFileSync(path.join(root, "cache", "kvmtune", "lab", "images", key, "base.img"), "");
    });
    afterEach(() => {
        fakeQemu?.kill("SIGKILL");
        fakeQemu = undefined;
        fs.rmSync(root, { recursive: true, force: true });
    });

    /** A process whose command line names lab1's pid file, as host_pid checks, recorded in that file. */
    function startFakeQemu(): void {
        const pidFile = path.join(state, "hosts", "lab1", "qemu.pid");
        // Two commands, so bash does not exec sleep and keep only its command line.
        fakeQemu = spawn("bash", ["-c", "sleep 300; :", pidFile], { stdio: "ignore" });
        fs.writeFileSync(pidFile, `${fakeQemu.pid}\n`);
    }

    it("prepare writes known_hosts with the host's key, so wait can check it", () => {
        const r = hostSh("prepare", "lab1");
        assert.strictEqual(r.status, 0, r.stderr);
        const pub = fs.readFileSync(path.join(state, "hosts", "lab1", "ssh_host_ed25519_key.pub"), "utf8").split(" ").slice(0, 2).join(" ");
        assert.strictEqual(fs.readFileSync(path.join(state, "known_hosts"), "utf8"), `[127.0.0.1]:2201 ${pub}\n`);
    });

    it("a refused host key is reported at once with SSH's words, and the host is not power-cycled", () => {
        assert.strictEqual(hostSh("prepare", "lab1").status, 0);
        startFakeQemu();
        fakeSsh("No ED25519 host key is known for [127.0.0.1]:2201 and you have requested strict checking.\nHost key verification failed.");
        const started = Date.now();
        const r = hostSh("wait", "lab1");
        assert.notStrictEqual(r.status, 0);
        assert.match(r.stderr, /lab1: SSH refused the host's key .* SSH said:\n {2}No ED25519 host key is known for \[127\.0\.0\.1\]:2201/);
        assert.match(r.stderr, /lab1 answers, but SSH refuses its host key: run 'lab\/host.sh prepare lab1'/);
        assert.doesNotMatch(r.stderr, /power-cycling/);
        assert.ok(Date.now() - started < 4000, "it did not wait for the boot timeout");
        assert.strictEqual(spawnSync("kill", ["-0", String(fakeQemu!.pid)]).status, 0, "the host's process was left running");
    });

    it("a host that never answers: after the timeout, the last SSH error is shown", () => {
        assert.strictEqual(hostSh("prepare", "lab1").status, 0);
        startFakeQemu();
        fakeSsh("ssh: connect to host 127.0.0.1 port 2201: Connection refused");
        const lib = path.resolve(__dirname, "../../../lab/lib.sh");
        const r = spawnSync("bash", ["-c", `source ${JSON.stringify(lib)}; wait_ssh lab1 2 || echo "rc=$?"`], { env: env(), encoding: "utf8" });
        assert.match(r.stdout, /rc=1/);
        assert.match(r.stderr, /lab1: no SSH after 2 s/);
        assert.match(r.stderr, /lab1: the last SSH attempt said:\n {2}ssh: connect to host 127\.0\.0\.1 port 2201: Connection refused/);
    });
});
