/**
 * The read script against a real shell over a folder tree made here: its records must say exactly
 * what the files and links hold (read back with fs), with the edge cases sysfs and udev produce,
 * and the number of processes it starts must not grow with the files it reads.
 */
import * as assert from "assert";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { buildDumpScript, DumpRequest, globLiteral, parseDump } from "../../resources/host/sysfs";
import { LocalRemote } from "../helpers/localRemote";

/** Programs the script may start; a stand-in for each logs its name and runs the real one. */
const WATCHED = ["awk", "cat", "readlink", "head", "grep", "sed"];

/** Where each program lives here, before the stand-ins shadow it. */
function realPath(program: string): string | null {
    for (const dir of (process.env.PATH ?? "").split(":")) {
        const p = path.join(dir, program);
        if (fs.existsSync(p)) return p;
    }
    return null;
}

describe("read script (buildDumpScript)", function () {
    this.timeout(60_000);
    let root: string;
    let shims: string;
    let log: string;

    before(() => {
        root = fs.mkdtempSync(path.join(os.tmpdir(), "kvmtune-dump-"));
        shims = fs.mkdtempSync(path.join(os.tmpdir(), "kvmtune-dump-shims-"));
        log = path.join(shims, "exec.log");
        for (const program of WATCHED) {
            const real = realPath(program);
            if (!real) continue;
            fs.writeFileSync(path.join(shims, program), `#!/bin/sh\necho ${program} >> '${log}'\nexec '${real}' "$@"\n`, { mode: 0o755 });
        }
    });
    after(() => {
        fs.rmSync(root, { recursive: true, force: true });
        fs.rmSync(shims, { recursive: true, force: true });
    });

    /** Writes files (name -> content) under a fresh folder of root. */
    function tree(name: string, files: Record<string, string>, links: Record<string, string> = {}): string {
        const dir = path.join(root, name);
        fs.mkdirSync(dir, { recursive: true });
        for (const [f, content] of Object.entries(files)) {
            fs.mkdirSync(path.dirname(path.join(dir, f)), { recursive: true });
            fs.writeFileSync(path.join(dir, f), content);
        }
        for (const [l, target] of Object.entries(links)) fs.symlinkSync(target, path.join(dir, l));
        return dir;
    }

    async function dump(request: DumpRequest, awk?: string) {
        fs.writeFileSync(log, "");
        let pathFirst = shims;
        if (awk) {
            // Another awk (the lab hosts' Debian default is mawk): a folder of its own, first.
            pathFirst = fs.mkdtempSync(path.join(os.tmpdir(), "kvmtune-dump-awk-"));
            fs.symlinkSync(awk, path.join(pathFirst, "awk"));
            pathFirst = `${pathFirst}:${shims}`;
        }
        const out = await new LocalRemote({ pathFirst }).exec("sh -s", { stdin: buildDumpScript(request) });
        assert.strictEqual(out.code, 0, out.stderr);
        const started = fs.readFileSync(log, "utf8").split("\n").filter(Boolean);
        return { dump: parseDump(out.stdout), started };
    }

    const edgeFiles = {
        "plain": "42\n",
        "no-newline": "[none] mq-deadline",
        "empty": "",
        "multi": "Node 0 MemTotal: 1 kB\nNode 0 MemFree: 2 kB\n\nlast line\n",
        "with:colon": "a:b:c\n",
        "with space": "spaced\n",
        "a=b": "looks like an awk assignment\n",
        "sub/deep": "nested\n",
    };

    for (const awk of [undefined, "/usr/bin/mawk", "/usr/bin/gawk"]) {
        const label = awk ? ` (${path.basename(awk)})` : "";
        it(`reads empty, multi-line, colon-named and missing files as fs does${label}`, async function () {
            if (awk && !fs.existsSync(awk)) this.skip();
            const dir = tree(`files${awk ? path.basename(awk) : ""}`, edgeFiles);
            const { dump: d } = await dump(
                {
                    files: [`${globLiteral(dir)}/*`, `${globLiteral(dir)}/sub/*`, `${globLiteral(dir)}/missing`, `${globLiteral(dir)}/nomatch*`],
                },
                awk,
            );
            // The reference: fs, with the parser's one rule (trailing newlines are not content).
            const expected = new Map<string, string>();
            for (const f of Object.keys(edgeFiles)) {
                const p = path.join(dir, f);
                expected.set(p, fs.readFileSync(p, "utf8").replace(/\n+$/, ""));
            }
            assert.deepStrictEqual(new Map([...d.files].sort()), new Map([...expected].sort()));
            assert.strictEqual(d.files.get(path.join(dir, "empty")), "", "an empty file is a record with no content");
            assert.ok(!d.files.has(path.join(dir, "missing")), "a missing file is no record");
            assert.ok(!d.files.has(path.join(dir, "sub")), "a folder is no record");
        });
    }

    it("resolves links, dangling and colon-named ones too, as readlink of each one does", async () => {
        const dir = tree("links", { "disk": "x\n", "sub/target": "y\n" }, {});
        const links: Record<string, string> = {
            "pci-0000:00:05.0": "disk",
            "by-relative": "sub/target",
            "absolute": path.join(dir, "disk"),
            "dangling": "gone",
            "chain": "by-relative",
        };
        for (const [l, t] of Object.entries(links)) fs.symlinkSync(t, path.join(dir, l));
        const { dump: d } = await dump({ links: [`${globLiteral(dir)}/*`] });
        // Reference: Node's realpath for links that resolve, their own target for the dangling one.
        const expected = new Map<string, string>();
        for (const l of Object.keys(links)) {
            const p = path.join(dir, l);
            expected.set(p, l === "dangling" ? path.join(dir, "gone") : fs.realpathSync(p));
        }
        assert.deepStrictEqual(new Map([...d.links].sort()), new Map([...expected].sort()));
        assert.ok(!d.links.has(path.join(dir, "disk")), "a regular file is no link record");
    });

    it("starts as many processes for 200 files and links as for 2", async () => {
        const count = async (n: number) => {
            const files: Record<string, string> = {};
            for (let i = 0; i < n; i++) files[`f${i}`] = `${i}\n`;
            const dir = tree(`many${n}`, files);
            for (let i = 0; i < n; i++) fs.symlinkSync(`f${i}`, path.join(dir, `l${i}`));
            const { dump: d, started } = await dump({ files: [`${globLiteral(dir)}/f*`], links: [`${globLiteral(dir)}/l*`] });
            assert.strictEqual(d.files.size, n);
            assert.strictEqual(d.links.size, n);
            assert.strictEqual(d.files.get(path.join(dir, `f${n - 1}`)), `${n - 1}`);
            assert.strictEqual(d.links.get(path.join(dir, `l${n - 1}`)), path.join(dir, `f${n - 1}`));
            return started.length;
        };
        const few = await count(2);
        const many = await count(200);
        assert.ok(few > 0, "the stand-ins saw no program start: the count would prove nothing");
        assert.strictEqual(many, few, `programs started: ${few} for 2 files and links, ${many} for 200`);
    });
});
