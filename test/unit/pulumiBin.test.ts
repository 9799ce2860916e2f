/**
 * Which Pulumi CLI the scripts run (tools/pulumi-bin.sh, through scripts/pulumi.sh and
 * tools/pulumiEngine.ts): a `pulumi` on PATH that is new enough and has its language host is used
 * as it is, with nothing built and the user's PULUMI_HOME left alone; a too old one, or one
 * without a language host, falls back to the build. The PATH CLI here is a stub script that
 * prints a version and the environment it was started with; HOME is an empty temp folder, so a
 * build would have to start from nothing.
 */
import * as assert from "assert";
import { execFile, spawnSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { promisify } from "util";

const repo = path.resolve(__dirname, "..", "..", "..");
const sdkVersion: string = JSON.parse(fs.readFileSync(path.join(repo, "node_modules/@pulumi/pulumi/package.json"), "utf8")).version;

interface Sandbox {
    home: string;
    stubBin: string;
    /** PATH with the stub first and no Go toolchain: a build attempt fails at once, it never runs for minutes. */
    env: Record<string, string>;
}

/** A temp HOME and a stub `pulumi` (plus, unless told not to, a stub language host beside it). */
function sandbox(version: string, opts: { languageHost?: boolean } = {}): Sandbox {
    const root = fs.mkdtempSync(path.join(os.tmpdir(), "kvmtune-pulumi-bin-"));
    const home = path.join(root, "home");
    const stubBin = path.join(root, "user-pulumi", "bin");
    fs.mkdirSync(home, { recursive: true });
    fs.mkdirSync(stubBin, { recursive: true });
    fs.writeFileSync(
        path.join(stubBin, "pulumi"),
        `#!/bin/sh\nif [ "$1" = version ]; then echo ${version}; exit 0; fi\n` +
            `echo "stub pulumi ran: $*"\necho "PULUMI_HOME=\${PULUMI_HOME-unset}"\necho "PATH=$PATH"\n`,
        { mode: 0o755 },
    );
    if (opts.languageHost !== false) {
        fs.writeFileSync(path.join(stubBin, "pulumi-language-nodejs"), "#!/bin/sh\necho 0\n", { mode: 0o755 });
    }
    return { home, stubBin, env: { HOME: home, PATH: `${stubBin}:/usr/bin:/bin`, PULUMI_CONFIG_PASSPHRASE: "unused" } };
}

function run(script: string, args: string[], env: Record<string, string>) {
    const r = spawnSync("bash", [path.join(repo, script), ...args], { cwd: repo, env, encoding: "utf8", timeout: 60_000 });
    return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** Every file under a folder (empty list when it does not exist). */
function filesUnder(dir: string): string[] {
    if (!fs.existsSync(dir)) return [];
    return fs.readdirSync(dir, { recursive: true, encoding: "utf8" });
}

describe("which Pulumi CLI the scripts run", function () {
    this.timeout(120_000);

    it("uses a new enough pulumi on PATH: builds nothing, keeps the user's PULUMI_HOME", () => {
        const s = sandbox("v3.276.0");
        const version = run("scripts/pulumi.sh", ["version"], s.env);
        assert.strictEqual(version.code, 0, version.stderr);
        assert.strictEqual(version.stdout.trim(), "v3.276.0");
        assert.match(version.stderr, /using the Pulumi CLI in .*user-pulumi\/bin \(v3\.276\.0 on PATH, at least the SDK's [0-9.]+, language host beside it\)/);
        assert.deepStrictEqual(filesUnder(path.join(s.home, ".cache")), [], "something was built or cached under HOME");

        const unset = run("scripts/pulumi.sh", ["stack", "ls"], s.env);
        assert.strictEqual(unset.code, 0, unset.stderr);
        assert.match(unset.stdout, /stub pulumi ran: stack ls/);
        assert.match(unset.stdout, /^PULUMI_HOME=unset$/m);

        const own = run("scripts/pulumi.sh", ["stack", "ls"], { ...s.env, PULUMI_HOME: "/srv/my-pulumi-home" });
        assert.match(own.stdout, /^PULUMI_HOME=\/srv\/my-pulumi-home$/m);
        assert.deepStrictEqual(filesUnder(path.join(s.home, ".cache")), []);
    });

    it("falls back to the build for a pulumi older than the SDK, and says why", () => {
        const s = sandbox("v3.100.0");
        const which = run("tools/pulumi-bin.sh", ["--which"], s.env);
        assert.strictEqual(which.code, 0, which.stderr);
        assert.strictEqual(which.stdout, "build\n");
        assert.ok(which.stderr.includes(`is v3.100.0, older than the @pulumi/pulumi SDK here (${sdkVersion})`), which.stderr);
        // For real: the build starts, and stops at once because this PATH has no Go.
        const real = run("scripts/pulumi.sh", ["version"], s.env);
        assert.notStrictEqual(real.code, 0);
        assert.match(real.stderr, /build-pulumi: error: go is not on PATH/);
        assert.doesNotMatch(real.stdout, /v3\.100\.0/);
    });

    it("falls back to the build for a pulumi without a Node.js language host", () => {
        const s = sandbox("v3.276.0", { languageHost: false });
        const which = run("tools/pulumi-bin.sh", ["--which"], s.env);
        assert.strictEqual(which.stdout, "build\n");
        assert.match(which.stderr, /has no pulumi-language-nodejs beside it or on PATH/);
    });

    it("accepts a pulumi exactly as new as the SDK", () => {
        const s = sandbox(`v${sdkVersion}`);
        const which = run("tools/pulumi-bin.sh", ["--which"], s.env);
        assert.strictEqual(which.stdout, `path\n${s.stubBin}\n`);
    });

    it("KVMTUNE_PULUMI_BIN wins over PATH", () => {
        const s = sandbox("v3.276.0");
        const which = run("tools/pulumi-bin.sh", ["--which"], { ...s.env, KVMTUNE_PULUMI_BIN: "/opt/other/bin" });
        assert.strictEqual(which.stdout, "env\n/opt/other/bin\n");
    });

    it("gives the Automation API the same choice and environment (tools/pulumiEngine.ts)", async () => {
        const s = sandbox("v3.276.0");
        // A fresh node process: engineChoice is computed once per process.
        const script =
            `const e = require(${JSON.stringify(path.join(repo, "bin/tools/pulumiEngine.js"))});` +
            `e.engineEnv().then(async (env) => console.log(JSON.stringify({ choice: await e.engineChoice(), home: env.PULUMI_HOME ?? null })))`;
        const { stdout } = await promisify(execFile)(process.execPath, ["-e", script], { cwd: repo, env: s.env });
        const got = JSON.parse(stdout);
        assert.deepStrictEqual(got, { choice: { source: "path", bin: s.stubBin }, home: null });
        assert.deepStrictEqual(filesUnder(path.join(s.home, ".cache")), []);
    });
});
