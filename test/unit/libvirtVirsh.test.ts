/**
 * The virsh wrapper, run for real through a local shell against a stand-in `virsh` on PATH that
 * records its arguments: quoting, the system connection URI, XML carried byte-exact through a
 * temporary file that is removed, errors naming command and stderr, one-round-trip reads.
 */
import * as assert from "assert";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import fc from "fast-check";
import { defineXml, existingNetworks, parseDominfo, readAllDomains, readAllNetworks, readDomain, stopDomain, undefineDomain, virsh, virshCommand } from "../../resources/libvirt/virsh";
import { LocalRemote } from "../helpers/localRemote";

describe("virsh wrapper", function () {
    // Each case spawns shells; the lab VMs share these cores.
    this.timeout(60_000);
    let dir: string;
    let savedPath: string | undefined;
    const remote = new LocalRemote();
    const calls = () => (fs.existsSync(path.join(dir, "calls")) ? fs.readFileSync(path.join(dir, "calls"), "utf8").replace(/\n$/, "").split("\n") : []);

    before(() => {
        dir = fs.mkdtempSync(path.join(os.tmpdir(), "kvmtune-virsh-"));
        // A stand-in virsh: logs its argv (one line, args joined by |), answers from files in $dir.
        fs.writeFileSync(
            path.join(dir, "virsh"),
            `#!/bin/sh
d=${JSON.stringify(dir)}
( IFS='|'; printf '%s\\n' "$*" ) >> "$d/calls"
[ "$1" = "-c" ] && [ "$2" = "qemu:///system" ] || { echo "wrong connection $1 $2" >&2; exit 9; }
shift 2
case "$1" in
  define|net-define) shift; [ "$1" = "--validate" ] && shift; cp "$1" "$d/defined.xml"; echo "$1" > "$d/defined-path"; echo "Domain defined from $1" ;;
  domuuid) echo "domuuid resolves names only" >&2; exit 1 ;;
  dumpxml) [ "$2" = "--inactive" ] && echo "<domain type='kvm'><name>config</name></domain>" || echo "<domain type='kvm'><name>live $2</name></domain>" ;;
  domstate) cat "$d/state" 2>/dev/null || echo running ;;
  dominfo) case "$2" in g1|11111111-2222-3333-4444-555555555555) printf 'Id:             3\\nName:           g1\\nPersistent:     yes\\nAutostart:      enable\\nSecurity model: none\\n' ;; *) echo "error: failed to get domain '$2'" >&2; exit 1 ;; esac ;;
  list) [ "$2" = "--all" ] && printf 'aaaaaaaa-0000-0000-0000-000000000001\\naaaaaaaa-0000-0000-0000-000000000002\\n\\n' || printf 'aaaaaaaa-0000-0000-0000-000000000002\\n' ;;
  net-list) [ "$2 $3" = "--all --uuid" ] && printf 'bbbbbbbb-0000-0000-0000-000000000001\\n' ;;
  net-dumpxml) [ "$2" = "--inactive" ] && echo "<network><name>persistent $3</name></network>" ;;
  net-uuid) [ "$2" = "default" ] && echo uuid || { echo "error: network not found" >&2; exit 1; } ;;
  shutdown) [ "$2" = "stuck" ] || echo "shut off" > "$d/state" ;;
  destroy) echo "shut off" > "$d/state" ;;
  undefine) echo undefined ;;
  fail) echo "error: something broke" >&2; exit 1 ;;
  *) echo "unknown $1" >&2; exit 2 ;;
esac
`,
            { mode: 0o755 },
        );
        savedPath = process.env.PATH;
        process.env.PATH = `${dir}:${process.env.PATH}`;
    });
    after(() => {
        process.env.PATH = savedPath;
        fs.rmSync(dir, { recursive: true, force: true });
    });
    beforeEach(() => {
        fs.rmSync(path.join(dir, "calls"), { force: true });
        fs.rmSync(path.join(dir, "state"), { force: true });
    });

    it("always talks to the system daemon and quotes every argument", () => {
        assert.strictEqual(virshCommand(["vcpupin", "g1", 0, "2-3", "--live"]), "virsh -c qemu:///system vcpupin g1 0 2-3 --live");
        assert.strictEqual(virshCommand(["start", "a b'; rm -rf /"]), `virsh -c qemu:///system start 'a b'\\''; rm -rf /'`);
    });

    it("passes any argument through the shell unchanged", async () => {
        await fc.assert(
            fc.asyncProperty(fc.string({ minLength: 1, maxLength: 20 }).filter((s) => !s.includes("\0") && !s.includes("\n") && !s.includes("|")), async (s) => {
                fs.rmSync(path.join(dir, "calls"), { force: true });
                await virsh(remote, ["net-uuid", s]).catch(() => undefined);
                assert.deepStrictEqual(calls(), [`-c|qemu:///system|net-uuid|${s}`]);
            }),
            { numRuns: 40 },
        );
    });

    it("throws with the command and virsh's stderr", async () => {
        await assert.rejects(virsh(remote, ["fail", "g1"]), (e: Error) => /virsh -c qemu:\/\/\/system fail g1/.test(e.message) && /something broke/.test(e.message));
    });

    it("defines from XML carried byte-exact on stdin, with no temporary file", async () => {
        const xml = `<domain type='kvm'><name>g1</name><description>$(touch /tmp/x) \`id\` 'q' "d" \\ ${"é"}</description></domain>\n`;
        await defineXml(remote, xml);
        assert.strictEqual(fs.readFileSync(path.join(dir, "defined.xml"), "utf8"), xml);
        assert.strictEqual(fs.readFileSync(path.join(dir, "defined-path"), "utf8").trim(), "/dev/stdin", "virsh reads stdin: no temporary file to leave behind");
        assert.match(calls()[0], /^-c\|qemu:\/\/\/system\|define\|--validate\|/);
    });

    it("reads a domain in one round trip: both XMLs, state, autostart; a missing one is not an error", async () => {
        const r = await readDomain(remote, "g1");
        assert.strictEqual(r.exists, true);
        assert.match(r.liveXml, /live g1/);
        assert.match(r.configXml, /config/);
        assert.strictEqual(r.state, "running");
        assert.strictEqual(r.autostart, true);
        assert.strictEqual(r.persistent, true);
        assert.strictEqual((await readDomain(remote, "11111111-2222-3333-4444-555555555555")).exists, true, "found by UUID too");
        assert.strictEqual((await readDomain(remote, "nope")).exists, false);
        assert.deepStrictEqual(parseDominfo("Name: g1\nAutostart:      disable\n"), { Name: "g1", Autostart: "disable" });
    });

    it("lists every domain's XML, and which networks exist", async () => {
        const all = await readAllDomains(remote);
        assert.deepStrictEqual([...all.keys()], ["aaaaaaaa-0000-0000-0000-000000000001", "aaaaaaaa-0000-0000-0000-000000000002"]);
        assert.match(all.get("aaaaaaaa-0000-0000-0000-000000000002")!, /live aaaaaaaa-0000-0000-0000-000000000002/);
        assert.deepStrictEqual([...(await existingNetworks(remote, ["default", "nope"]))], ["default"]);
    });

    it("defines networks the same way; lists running domains only, and every network's persistent XML", async () => {
        const xml = "<network><name>vh</name><bridge name='kvbr0'/></network>\n";
        await defineXml(remote, xml, "net-define");
        assert.strictEqual(fs.readFileSync(path.join(dir, "defined.xml"), "utf8"), xml);
        assert.strictEqual(fs.readFileSync(path.join(dir, "defined-path"), "utf8").trim(), "/dev/stdin", "virsh reads stdin: no temporary file to leave behind");
        assert.match(calls()[0], /^-c\|qemu:\/\/\/system\|net-define\|--validate\|/);
        assert.deepStrictEqual([...(await readAllDomains(remote, "running")).keys()], ["aaaaaaaa-0000-0000-0000-000000000002"]);
        const nets = await readAllNetworks(remote);
        assert.deepStrictEqual([...nets.entries()], [["bbbbbbbb-0000-0000-0000-000000000001", "<network><name>persistent bbbbbbbb-0000-0000-0000-000000000001</name></network>"]]);
    });

    it("stops gracefully, forces after the timeout, and undefines with --nvram when asked", async () => {
        assert.strictEqual(await stopDomain(remote, "g1", 3), "graceful");
        assert.strictEqual(await stopDomain(remote, "g1", 3), "already");
        fs.rmSync(path.join(dir, "state"));
        assert.strictEqual(await stopDomain(remote, "stuck", 1), "forced");
        assert.ok(calls().includes("-c|qemu:///system|destroy|stuck"));
        await undefineDomain(remote, "g1", true);
        assert.ok(calls().includes("-c|qemu:///system|undefine|g1|--managed-save|--nvram"), calls().join("\n"));
    });
});
