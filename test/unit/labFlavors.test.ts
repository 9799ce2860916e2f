/**
 * lab/lib.sh without VMs: which image flavor a host gets (KVMTUNE_LAB_FLAVORS), its port
 * (KVMTUNE_LAB_PORT_BASE), the per-flavor cache key, and the image prune that must leave alone
 * any image it cannot prove unused (the cache is shared by every checkout on the machine).
 */
import * as assert from "assert";
import { spawnSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";

const LAB = path.resolve(__dirname, "../../../lab");

describe("lab flavors, ports and image cache (lib.sh, no VM)", function () {
    this.timeout(60_000);
    let root: string;
    let lab: string;
    beforeEach(() => {
        root = fs.mkdtempSync(path.join(os.tmpdir(), "kvmtune-labflavors-"));
        // A copy of lab/, so a test can change a flavor's files and see which keys move.
        lab = path.join(root, "lab");
        fs.cpSync(LAB, lab, { recursive: true });
    });
    afterEach(() => fs.rmSync(root, { recursive: true, force: true }));

    /** `extra`: variables to set; null unsets one (the default flavors apply when KVMTUNE_LAB_FLAVORS is unset). */
    const lib = (script: string, extra: Record<string, string | null> = {}) => {
        const env: NodeJS.ProcessEnv = { ...process.env, KVMTUNE_LAB_STATE: path.join(root, "state"), XDG_CACHE_HOME: path.join(root, "cache"), KVMTUNE_LAB_FLAVORS: "", KVMTUNE_LAB_PORT_BASE: "2200" };
        for (const [k, v] of Object.entries(extra)) {
            if (v === null) delete env[k];
            else env[k] = v;
        }
        return spawnSync("bash", ["-c", `source ${JSON.stringify(path.join(lab, "lib.sh"))}; ${script}`], { env, encoding: "utf8" });
    };
    const out = (script: string, extra: Record<string, string | null> = {}) => {
        const r = lib(script, extra);
        assert.strictEqual(r.status, 0, r.stderr);
        return r.stdout.trim();
    };
    const cache = () => path.join(root, "cache", "kvmtune", "lab", "images");

    it("lab2 is trixie by default, every host bookworm that KVMTUNE_LAB_FLAVORS does not name", () => {
        assert.strictEqual(out("host_flavor 1; host_flavor 2; host_flavor 3", { KVMTUNE_LAB_FLAVORS: null }), "bookworm\ntrixie\nbookworm");
        assert.strictEqual(out("host_flavor 1; host_flavor 2", { KVMTUNE_LAB_FLAVORS: "" }), "bookworm\nbookworm");
        assert.strictEqual(out("host_flavor 1; host_flavor 2", { KVMTUNE_LAB_FLAVORS: "1:trixie" }), "trixie\nbookworm");
        const bad = lib("host_flavor 2", { KVMTUNE_LAB_FLAVORS: "2:sid" });
        assert.notStrictEqual(bad.status, 0);
        assert.match(bad.stderr, /no lab image flavor 'sid' \(have: bookworm trixie \)/);
        assert.match(lib("host_flavor 2", { KVMTUNE_LAB_FLAVORS: "trixie" }).stderr, /'trixie' is not INDEX:FLAVOR/);
    });

    it("puts host N on PORT_BASE + N (default 2200)", () => {
        assert.strictEqual(out("host_port 2"), "2202");
        assert.strictEqual(out("host_port 2", { KVMTUNE_LAB_PORT_BASE: "2300" }), "2302");
    });

    it("keys each flavor's image by its name and its own files only", () => {
        const keys = () => out("image_key bookworm; image_key trixie").split("\n");
        const [b, t] = keys();
        assert.match(b, /^bookworm-[0-9a-f]{16}$/);
        assert.match(t, /^trixie-[0-9a-f]{16}$/);
        assert.strictEqual(out("image_key"), b, "the default flavor");
        fs.appendFileSync(path.join(lab, "image", "flavors", "trixie", "packages.txt"), "htop\n");
        assert.deepStrictEqual(keys().map((k, i) => k === [b, t][i]), [true, false], "a trixie file moves only trixie's key");
        fs.appendFileSync(path.join(lab, "image", "packages.txt"), "htop\n");
        assert.deepStrictEqual(keys().map((k, i) => k === [b, t][i]), [false, false], "a shared file moves both");
    });

    it("prunes only images whose recorded hosts have all left them, never one without records", () => {
        const img = (key: string, users?: string[]) => {
            fs.mkdirSync(path.join(cache(), key), { recursive: true });
            fs.writeFileSync(path.join(cache(), key, "base.img"), "");
            if (users) {
                fs.mkdirSync(path.join(cache(), key, "users"), { recursive: true });
                users.forEach((u, i) => fs.writeFileSync(path.join(cache(), key, "users", `u${i}`), `${u}\n`));
            }
        };
        const hostDir = (name: string, key: string) => {
            const d = path.join(root, "elsewhere", name);
            fs.mkdirSync(d, { recursive: true });
            fs.writeFileSync(path.join(d, "image-key"), `${key}\n`);
            return d;
        };
        const current = out("image_key trixie");
        img("6454c82a275540e7"); // no records (made before users/): another checkout's hosts may run on it
        // The lab before flavors kept its images in the cache's top folder: not this prune's to judge.
        fs.mkdirSync(path.join(cache(), "..", "0123456789abcdef"), { recursive: true });
        fs.writeFileSync(path.join(cache(), "..", "0123456789abcdef", "base.img"), "");
        img("trixie-0000000000000001", [hostDir("lab2", "trixie-0000000000000001")]); // a host of another state folder still on it
        img("trixie-0000000000000002", [hostDir("lab3", "trixie-0000000000000009")]); // its host moved on
        img(current, []); // the current definition
        out("prune_images");
        assert.deepStrictEqual(fs.readdirSync(cache()).sort(), ["6454c82a275540e7", current, "trixie-0000000000000001"].sort());
        assert.ok(fs.existsSync(path.join(cache(), "..", "0123456789abcdef", "base.img")));
    });
});
