/**
 * `npm start`, the main job, converges from the hosts' truth, not from the state file: it reads the
 * hosts first (`pulumi refresh`, then the plan, then `up`), so a guest undefined or a udev rule
 * deleted by hand is put back, and a host reset to a bare image (what a reinstall looks like) is
 * tuned again, by `npm start` alone. Every check reads the host with the system ssh client. The
 * stack is a throwaway one with its own file backend; with no `kvmtune:hosts` it declares the lab's
 * hosts (here an inventory of this suite's one host) and the lab tuning, as the `lab` stack does.
 *
 * The reset leaves the suite's host bare: the suites after it on that host start from a fresh image.
 */
import * as assert from "assert";
import { spawn } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { withLabWatchdog } from "../helpers/labConnection";
import { assertLabTuned, ELEVATOR_RULE, hostState } from "../helpers/labTuningState";
import { labBootId, loadInventory, repoRoot, sshOk, suiteHost } from "./labHosts";

const STACK = "lab-start";

/**
 * An SELinux denial on something kvmtune made: a file it writes (by the name or path the audit
 * record gives: /etc/kvmtune and its claims, kvmtune-*.service and its scripts, *-kvmtune-*.rules,
 * 90-kvmtune-*.conf drop-ins, kvmtune-vhost-net.conf, libvirt network hooks) or a process it runs
 * (a boot unit's comm). Not any line with "kvmtune" in it: the guests the suites before this one
 * ran on the host are named kvmtune-lab-vfio and kvmtune-sec-guest, and QEMU's own denials under
 * Debian's reference policy name their files (seen in CI: 277 denials, QEMU's open/read/getattr
 * most of them).
 */
const KVMTUNE_OBJECT = /\b(?:name|path)="?(?:[^" ]*\/)?(?:kvmtune"?(?:\s|$)|kvmtune\/|kvmtune-[^" /]*\.(?:service|conf|sh)\b|[0-9]+-kvmtune-[^" /]*\.(?:rules|conf)\b)|\/hooks\/network\.d\/kvmtune-|\bcomm="?kvmtune/;

describe("npm start converges the lab from the hosts' truth", function () {
    this.timeout(40 * 60_000);
    const host = suiteHost(1);
    const backendDir = fs.mkdtempSync(path.join(os.tmpdir(), "kvmtune-start-"));
    // The program declares every host of the lab inventory it is given: this suite's host only.
    const inventoryFile = path.join(backendDir, "inventory.json");
    fs.writeFileSync(inventoryFile, JSON.stringify({ ...JSON.parse(fs.readFileSync(loadInventory().path, "utf8")), hosts: [host] }));
    const inventory = loadInventory(inventoryFile);
    const env = {
        ...process.env,
        KVMTUNE_STACK: STACK,
        KVMTUNE_LAB_INVENTORY: inventoryFile,
        PULUMI_BACKEND_URL: `file://${backendDir}`,
        PULUMI_CONFIG_PASSPHRASE: "kvmtune-lab-start",
    };

    /** Runs a command in the repository as a user would; resolves with its output, rejects with it. */
    function run(command: string, args: string[]): Promise<{ out: string; seconds: number }> {
        const started = Date.now();
        return new Promise((resolve, reject) => {
            const child = spawn(command, args, { cwd: repoRoot, env, stdio: ["ignore", "pipe", "pipe"] });
            let out = "";
            child.stdout.on("data", (d) => (out += d));
            child.stderr.on("data", (d) => (out += d));
            child.on("error", reject);
            child.on("close", (code) => {
                const seconds = (Date.now() - started) / 1000;
                if (code === 0) resolve({ out, seconds });
                else reject(new Error(`${command} ${args.join(" ")} exited ${code}:\n${out.slice(-6000)}`));
            });
        });
    }
    const npmStart = () => run("npm", ["start"]);
    /** npm start when it may reboot the hosts (the lab's kernel command line), under the lab's watchdog. */
    const npmStartRebooting = async () => {
        return withLabWatchdog(inventory.hosts, await Promise.all(inventory.hosts.map(labBootId)), npmStart);
    };
    /**
     * The update's summary lines ("+ 2 created", "~ 3 updated", "15 unchanged"), from the last
     * "Resources:" block (`up --yes` prints the preview's block first, then the update's).
     */
    const summary = (out: string) => {
        const last = out.slice(out.lastIndexOf("\nResources:"));
        return (last.match(/^\s+[-+~]?\s*\d+ (created|updated|deleted|replaced|unchanged)\s*$/gm) ?? []).map((l) => l.trim());
    };

    /** The update's lines for resources it changed, for a failure message. */
    const changedLines = (out: string) =>
        out
            .slice(out.lastIndexOf("\nUpdating "))
            .split("\n")
            .filter((l) => /^\s+[-+~]\s/.test(l) && !/unchanged/.test(l))
            .join("\n");

    after(async () => {
        // Leave nothing behind: the hosts given back, no stack, no stack config file in the repository.
        await run("bash", ["scripts/pulumi.sh", "destroy", "--yes", "--stack", STACK, "--non-interactive"]).catch((e) => console.error(String(e)));
        await run("bash", ["scripts/pulumi.sh", "stack", "rm", "--yes", "--force", STACK, "--non-interactive"]).catch(() => undefined);
        fs.rmSync(path.join(repoRoot, `Pulumi.${STACK}.yaml`), { force: true });
        fs.rmSync(backendDir, { recursive: true, force: true });
    });

    it("converges every host to the lab tuning", async () => {
        const { out } = await npmStartRebooting();
        assert.match(out, new RegExp(`stack '${STACK}' is up`));
        for (const h of inventory.hosts) await assertLabTuned(h);
    });

    it("puts back a guest undefined and a udev rule deleted by hand, which the state file still lists", async () => {
        for (const h of inventory.hosts) {
            await sshOk(h, `virsh -c qemu:///system destroy demo-db >/dev/null; virsh -c qemu:///system undefine demo-db >/dev/null; rm ${ELEVATOR_RULE}`);
            assert.doesNotMatch((await hostState(h)).domains, /demo-db/);
        }
        const { out } = await npmStart();
        const changes = summary(out);
        assert.ok(changes.includes(`+ ${inventory.hosts.length} created`), `demo-db was not re-created on every host: ${changes.join(", ")}`);
        // Two updates per host: vdb's elevator (its rule put back) and node 1's SriovNic. When
        // demo-db was destroyed, libvirt gave its VF back to igbvf with a MAC of libvirt's own choice
        // (seen: 9a:0e:d0:71:e3:31 where SriovNic had left none), so the PF is put back as declared
        // before demo-db takes the VF again.
        const changed = changedLines(out);
        assert.ok(changes.includes(`~ ${2 * inventory.hosts.length} updated`), `unexpected updates: ${changes.join(", ")}\n${changed}`);
        for (const h of inventory.hosts) {
            assert.match(changed, new RegExp(`~ .*BlockElevator ${h.name}-elevator-vdb updated`), `vdb's rule was not put back on ${h.name}:\n${changed}`);
            assert.match(changed, new RegExp(`~ .*SriovNic ${h.name}-sriov-enp65s0 updated`), `${h.name}'s node-1 PF was not the other update:\n${changed}`);
        }
        for (const h of inventory.hosts) await assertLabTuned(h);
    });

    it("a second npm start finds nothing to do, and says so", async () => {
        const { out, seconds } = await npmStart();
        const changes = summary(out);
        assert.deepStrictEqual(changes.filter((l) => !l.endsWith("unchanged")), [], out.slice(-3000));
        assert.strictEqual(changes.length, 1, `no "N unchanged" line: ${out.slice(-3000)}`);
        // Figures for the README, not a test of speed: the whole no-op npm start, and beside it the
        // `pulumi up --yes` that npm start ran before it read the hosts (trusting the state file).
        const trusting = await run("bash", ["scripts/pulumi.sh", "up", "--yes", "--stack", STACK, "--non-interactive"]);
        console.log(
            `      (no-op on ${inventory.hosts.length} lab hosts: npm start ${seconds.toFixed(1)} s; ` +
                `a plain up --yes without reading the hosts ${trusting.seconds.toFixed(1)} s)`,
        );
    });

    it("holds through restarts of tuned and NetworkManager and udev change events: every setting reads back, preview --refresh finds nothing", async () => {
        // The daemons that could undo kvmtune's work re-apply theirs: tuned its profile (read-ahead,
        // sysctls, on its restart and on udev events), NetworkManager its connections (it takes NICs
        // it is not told to leave alone), udev its rules. try-restart restarts only what runs, so
        // the Debian 12 hosts get the udev events and the Debian 13 host all three.
        for (const h of inventory.hosts) {
            const restarted = await sshOk(
                h,
                "for u in tuned NetworkManager; do systemctl is-active --quiet $u && systemctl restart $u && echo $u; done; " +
                    "udevadm trigger --action=change --subsystem-match=block --subsystem-match=net && udevadm settle --timeout=60; true",
            );
            const flavorDaemons = h.flavor === "trixie" ? ["tuned", "NetworkManager"] : [];
            assert.deepStrictEqual(restarted.split("\n").filter(Boolean), flavorDaemons, `${h.name} (${h.flavor}): the daemons restarted`);
        }
        // NetworkManager and tuned act a little after their restart returns: give them time to undo.
        await new Promise((r) => setTimeout(r, 15_000));
        for (const h of inventory.hosts) await assertLabTuned(h);
        const preview = await run("bash", ["scripts/pulumi.sh", "preview", "--refresh", "--expect-no-changes", "--stack", STACK, "--non-interactive"]);
        assert.doesNotMatch(preview.out, /^\s+[-+~]\s+\d+ (created|updated|deleted|replaced)/m, preview.out.slice(-3000));
        // SELinux (the Debian 13 host, permissive): no denial is on a file or process of kvmtune's.
        // Permissive logs what enforcing would deny, so this is what enforcing would have refused.
        for (const h of inventory.hosts.filter((x) => x.flavor === "trixie")) {
            const avcs = await sshOk(h, "ausearch -m AVC,USER_AVC,SELINUX_ERR --input-logs -i 2>&1; true");
            const denials = avcs.split("\n").filter((l) => /avc:\s+denied/.test(l));
            // Which programs were denied what, for the record: "comm=NAME { perms } tclass=CLASS" counted.
            const kinds = new Map<string, number>();
            for (const d of denials) {
                const k = `${/comm=(\S+)/.exec(d)?.[1] ?? "?"} {${/\{([^}]*)\}/.exec(d)?.[1] ?? "?"}} ${/tclass=(\S+)/.exec(d)?.[1] ?? "?"}`;
                kinds.set(k, (kinds.get(k) ?? 0) + 1);
            }
            const top = [...kinds].sort((a, b) => b[1] - a[1]).slice(0, 12).map(([k, n]) => `${n} x ${k}`);
            console.log(`      (${h.name}: ${denials.length} SELinux denials since the audit log began, none may name kvmtune: ${top.join("; ")})`);
            assert.deepStrictEqual(denials.filter((l) => KVMTUNE_OBJECT.test(l)), [], `${h.name}: SELinux denials on kvmtune's files or processes`);
        }
    });

    it("tunes the host again after it was reset to a bare image (npm run lab -- reset NAME)", async () => {
        const reset = await run("bash", ["lab/lab.sh", "reset", host.name]);
        assert.match(reset.out, /now hold stale state; the next 'npm start' reads the hosts first/);
        for (const h of inventory.hosts) {
            const bare = await hostState(h);
            assert.deepStrictEqual([bare.pages, bare.vdb, bare.numVfs, bare.domains], [[0, 0], "none", 0, ""], `${h.name} is not bare after the reset`);
        }
        const { out } = await npmStartRebooting();
        assert.match(out, new RegExp(`stack '${STACK}' is up`));
        for (const h of inventory.hosts) await assertLabTuned(h);
    });
});
