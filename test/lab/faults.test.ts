/**
 * Issue 11's faults on a real lab host, through the real engine (docs/RELIABILITY.md F8, F9, F10):
 *
 * - F8: the SSH connection is cut from the host's side in the middle of an `up`;
 * - F9: the host reboots in the middle of an `up`;
 * - F10: the kernel or libvirt refuses what kvmtune's own checks let through.
 *
 * The fault is caused on the host by a watcher started over a separate plain ssh session before
 * the `up`: it waits for a sign that the apply is underway (vdb's scheduler turning to mq-deadline,
 * which only the BlockElevator below writes), then kills every sshd session that was not there
 * when it was armed (kvmtune's connection; not the test's own, nor sshd's listener), or reboots
 * the host. Everything is checked by reading the host with the system ssh client.
 */
import * as assert from "assert";
import type { PulumiFn } from "@pulumi/pulumi/automation";
import { BlockElevator, HugepagePool, NumaPinnedGuest, SriovNic } from "../../resources";
import { inlineStack, InlineStack, resourcesOf } from "../helpers/inlineStack";
import { labConnection, waitForLabHost } from "../helpers/labConnection";
import { labBootId, sshOk, sshRun, suiteHost } from "./labHosts";

const V = "virsh -c qemu:///system";
const GUEST = "kvmtune-faults-g1";
const MISSING_DISK = "/var/lib/libvirt/images/kvmtune-faults-missing.img";
const WATCH_LOG = "/run/kvmtune-faults-watch.log";
/** Folders kvmtune writes persistence files and claims into (resources/host/files.ts). */
const WRITTEN_DIRS = ["/etc/kvmtune", "/etc/udev/rules.d", "/etc/systemd/system", "/etc/modprobe.d", "/etc/modules-load.d", "/etc/sysctl.d", "/etc/default/grub.d"];
const BFQ_BLOCK = "/etc/modprobe.d/zz-kvmtune-faults-no-bfq.conf";
/**
 * F8's hold: a udevadm that first sleeps, ahead of the real one on root's PATH. BlockElevator ends
 * its persist step with `udevadm control --reload`, right after the write the watcher waits for,
 * so kvmtune is inside a command when the cut comes, not between commands (where the pool would
 * simply reconnect) or past its last one (where the up would succeed and prove nothing).
 */
const SLOW_UDEVADM = "/usr/local/sbin/udevadm";

/** One disk's scheduler (the bracketed one) and what it offers, read from sysfs. */
interface Sched {
    active: string;
    offered: string[];
}

describe("Faults on a lab host (F8 connection cut, F9 reboot, F10 refusals)", function () {
    this.timeout(60 * 60_000);
    const h = suiteHost(0);
    const connection = labConnection(h);
    const hostName = new RegExp(`root@127\\.0\\.0\\.1:${h.port}|${h.name}`);
    let s: InlineStack;
    let scsi: string;
    let mgmt: string;
    const originals: { pools?: Record<string, number>; vdb?: string; scsi?: string } = {};

    // ---- independent reads of the host ---------------------------------------------------------
    const ssh = (cmd: string) => sshOk(h, cmd, { timeoutMs: 600_000 });
    async function sched(disk: string): Promise<Sched> {
        const line = (await ssh(`cat /sys/block/${disk}/queue/scheduler`)).trim();
        return { active: /\[([^\]]+)\]/.exec(line)![1], offered: line.replace(/[[\]]/g, "").split(/\s+/) };
    }
    async function pools(): Promise<Record<string, number>> {
        const out = await ssh("for n in /sys/devices/system/node/node*; do echo ${n##*node} $(cat $n/hugepages/hugepages-2048kB/nr_hugepages); done");
        return Object.fromEntries(out.trim().split("\n").map((l) => [l.split(" ")[0], Number(l.split(" ")[1])]));
    }
    const bootId = () => labBootId(h);
    const domains = async () => (await ssh(`${V} list --all --name`)).split("\n").map((l) => l.trim()).filter(Boolean);
    /** Temp files of the atomic writer and files kvmtune wrote that are empty or end mid-line. */
    async function halfWritten(): Promise<string[]> {
        const out = await ssh(
            `find ${WRITTEN_DIRS.join(" ")} -name '.kvmtune.*' 2>/dev/null; ` +
                `grep -rl '^# Managed by kvmtune' ${WRITTEN_DIRS.join(" ")} 2>/dev/null | while read -r f; do ` +
                `[ -s "$f" ] && [ "$(tail -c 1 "$f" | od -An -c | tr -d ' ')" = '\\n' ] || echo "partial $f"; done; true`,
        );
        return out.split("\n").filter(Boolean);
    }
    /** Files kvmtune wrote (its header) and its claims: what a destroy must have removed. */
    const managedFiles = async () => (await ssh(`grep -rl 'Managed by kvmtune' ${WRITTEN_DIRS.join(" ")} 2>/dev/null; true`)).split("\n").filter(Boolean).sort();

    /** The engine's line that says what failed where (the Automation API's first line is only "CommandError"). */
    const failureLine = (message: string) => (message.split("\n").find((l) => hostName.test(l)) ?? message.split("\n")[0]).trim().slice(0, 400);
    /** What a cut-off attempt left on the host: claims (with a recorded original?) and the disk. */
    async function leftovers(): Promise<string> {
        return (await ssh("for f in /etc/kvmtune/claims/*; do [ -e \"$f\" ] && echo \"$(basename $f)$(grep -q '^original=' $f && echo '(original recorded)')\"; done; cat /sys/block/vdb/queue/scheduler; true")).trim().split("\n").join(", ");
    }

    /** kvmtune's resources in the stack's state, by type of resource (its outputs). */
    async function recorded(): Promise<Array<{ name: string; outputs: Record<string, unknown> }>> {
        // Dynamic resources are typed `pulumi-nodejs:dynamic/kvmtune:BlockElevator` and so on.
        return (await resourcesOf(s)).filter((r) => r.type.startsWith("pulumi-nodejs:dynamic")).map((r) => ({ name: r.urn.split("::").pop()!, outputs: r.outputs ?? {} }));
    }

    /** Whatever state records as applied, the host has. */
    async function stateMatchesHost(): Promise<string[]> {
        const seen: string[] = [];
        for (const r of await recorded()) {
            seen.push(r.name);
            const o = r.outputs;
            if (typeof o.kernelName === "string") {
                assert.strictEqual((await sched(o.kernelName)).active, o.scheduler, `state records ${r.name}'s ${o.kernelName} at ${String(o.scheduler)}`);
            } else if (o.pageSize === "2M") {
                const p = await pools();
                for (const [n, want] of Object.entries(o.nodes as Record<string, number>)) assert.strictEqual(p[n], want, `state records ${r.name} with ${want} pages on node ${n}`);
            } else if (typeof o.pf === "string" || typeof o.name === "string") {
                assert.fail(`state records ${r.name}, which no test here expects to have been created: ${JSON.stringify(o).slice(0, 300)}`);
            }
        }
        return seen.sort();
    }

    // ---- the program: several resources that share the host -------------------------------------
    const tuned: PulumiFn = async () => {
        const pool = new HugepagePool("pool", { connection, pageSize: "2M", nodes: { "0": 16, "1": 16 } });
        const db = new BlockElevator("db", { connection, device: "vdb", scheduler: "mq-deadline", tunables: { fifo_batch: 8 } });
        const logs = new BlockElevator("logs", { connection, device: scsi as string, scheduler: "kyber" });
        return { pools: pool.pools, db: db.kernelName, logs: logs.kernelName };
    };
    async function assertTuned(): Promise<void> {
        const p = await pools();
        assert.deepStrictEqual([p["0"], p["1"]], [16, 16]);
        assert.strictEqual((await sched("vdb")).active, "mq-deadline");
        assert.strictEqual((await ssh("cat /sys/block/vdb/queue/iosched/fifo_batch")).trim(), "8");
        assert.strictEqual((await sched(scsi)).active, "kyber");
    }
    async function assertOriginal(): Promise<void> {
        assert.deepStrictEqual(await pools(), originals.pools, "huge pages as before the suite");
        assert.strictEqual((await sched("vdb")).active, originals.vdb, "vdb's scheduler as before the suite");
        assert.strictEqual((await sched(scsi)).active, originals.scsi, `${scsi}'s scheduler as before the suite`);
        assert.deepStrictEqual(await managedFiles(), [], "no file kvmtune wrote is left");
    }

    /**
     * Arms the watcher: a detached shell on the host (it outlives the ssh session that started it)
     * that waits for vdb's scheduler to turn mq-deadline, then runs `action`. Returns once armed.
     */
    async function arm(action: "cut" | "reboot"): Promise<void> {
        // The sign must still be to come: nothing recorded, vdb not yet mq-deadline.
        assert.deepStrictEqual(await recorded(), [], "the stack starts empty");
        assert.notStrictEqual((await sched("vdb")).active, "mq-deadline", "vdb is already mq-deadline: the watcher would fire at once");
        const act =
            action === "cut"
                ? // Every sshd process that was not there when armed: kvmtune's session (monitor and child).
                  `for p in $(pgrep -f '^sshd: '); do case " $mine " in *" $p "*) ;; *) echo "killed $p $(tr '\\0' ' ' < /proc/$p/cmdline)" >> ${WATCH_LOG}; kill -9 $p;; esac; done`
                : `echo rebooting >> ${WATCH_LOG}; systemctl reboot`;
        const script = [
            `mine="$(pgrep -d ' ' -f '^sshd: ')"`,
            `n=0`,
            `until grep -q '\\[mq-deadline\\]' /sys/block/vdb/queue/scheduler; do n=$((n+1)); [ $n -lt 12000 ] || { echo gave-up >> ${WATCH_LOG}; exit 1; }; sleep 0.05; done`,
            `echo "sign after $n polls: $(cat /sys/block/vdb/queue/scheduler)" >> ${WATCH_LOG}`,
            act,
        ].join("\n");
        await ssh(`echo armed > ${WATCH_LOG}; cat > /run/kvmtune-faults-watch.sh <<'EOF'\n${script}\nEOF\nsetsid sh /run/kvmtune-faults-watch.sh </dev/null >/dev/null 2>&1 &`);
    }
    const disarm = () => sshRun(h, `pkill -f /run/kvmtune-faults-watch.sh; rm -f /run/kvmtune-faults-watch.sh`);


    before(async () => {
        mgmt = (await ssh("ip -o route show default | awk '{print $5}' | head -1")).trim() || (await ssh("ls /sys/class/net | grep -v lo | head -1")).trim();
        scsi = (await ssh("for d in /sys/block/sd?; do basename $d; break; done")).trim();
        assert.match(scsi, /^sd[a-z]$/, "the lab host has no SCSI disk");
        // Leftovers of an interrupted run.
        await sshRun(h, `rm -f ${BFQ_BLOCK} ${SLOW_UDEVADM}; ${V} undefine ${GUEST}; rm -f ${MISSING_DISK}`);
        originals.pools = await pools();
        originals.vdb = (await sched("vdb")).active;
        originals.scsi = (await sched(scsi)).active;
        assert.notStrictEqual(originals.vdb, "mq-deadline", "the watcher's sign is vdb turning mq-deadline: it must start otherwise");
        assert.deepStrictEqual(await managedFiles(), [], "the host must start with nothing kvmtune wrote (run the fresh-disk sequence)");
        s = await inlineStack("lab-faults");
    });

    after(async () => {
        await disarm().catch(() => undefined);
        await s?.destroy().catch((e) => console.error(String(e).slice(0, 2000)));
        await s?.remove();
        await sshRun(h, `rm -f ${BFQ_BLOCK} ${SLOW_UDEVADM}; ${V} destroy ${GUEST}; ${V} undefine ${GUEST}; true`).catch(() => undefined);
    });

    it("F8: a connection cut from the host mid-up fails saying the connection was lost, records only what the host has, and the next up converges", async () => {
        await ssh(`printf '#!/bin/sh\\nsleep 20\\nPATH=/usr/sbin:/usr/bin:/sbin:/bin exec udevadm "$@"\\n' > ${SLOW_UDEVADM}; chmod 755 ${SLOW_UDEVADM}; command -v udevadm`).then((which) =>
            assert.strictEqual(which.trim(), SLOW_UDEVADM, "the hold is first on root's PATH"),
        );
        await arm("cut");
        let outcome = "succeeded";
        try {
            await s.up(tuned);
        } catch (e) {
            outcome = String(e);
        } finally {
            await ssh(`rm -f ${SLOW_UDEVADM}`);
        }
        const log = await ssh(`cat ${WATCH_LOG}`);
        console.log(`      watcher: ${log.trim().split("\n").join(" | ")}`);
        assert.match(log, /^killed \d+ sshd: /m, "the watcher cut a session");
        console.log(`      up: ${outcome === "succeeded" ? outcome : failureLine(outcome)}`);
        // The cut landed mid-apply, inside a command: the up fails, and says so in words.
        assert.notStrictEqual(outcome, "succeeded", "the cut came after the last command: nothing was tested");
        assert.match(
            outcome.split("--- engine output ---")[1] ?? outcome,
            new RegExp(`the connection to ${h.user}@127\\.0\\.0\\.1:${h.port} was lost during the step .*Run \`pulumi up\` again`),
            "the error says the connection to the host was lost, in which step, and what to do",
        );
        assert.doesNotMatch(outcome, /\(exit signal\): sh -s <<script/, "not a failed command with its script");
        const inState = await stateMatchesHost();
        console.log(`      recorded after the cut: ${inState.join(", ") || "nothing"}; on the host: ${await leftovers()}`);
        assert.deepStrictEqual(await halfWritten(), [], "no temp file, no partial file");

        assert.deepStrictEqual(Object.keys(await s.up(tuned)).filter((k) => k !== "create"), [], "the second up only creates what is missing");
        await assertTuned();
        assert.deepStrictEqual(await s.preview(tuned), {});
        assert.deepStrictEqual(await stateMatchesHost(), ["db", "logs", "pool"]);
        assert.deepStrictEqual(await s.destroy(), { delete: 4 });
        await assertOriginal();
    });

    it("F9: a host rebooted mid-up fails naming the host; after it is back the next up converges and destroy restores", async () => {
        if ((await recorded()).length) await s.destroy(); // F8 failed before its destroy
        const old = await bootId();
        await arm("reboot");
        await assert.rejects(s.up(tuned), (e: Error) => {
            console.log(`      up: ${failureLine(e.message)}`);
            assert.match(e.message, hostName);
            return true;
        });
        await waitForLabHost(h, old);
        assert.notStrictEqual(await bootId(), old, "the host rebooted");
        const inState = await stateMatchesHost();
        console.log(`      recorded after the reboot: ${inState.join(", ") || "nothing"}; on the host: ${await leftovers()}`);
        // A write the reboot cut may have left its temporary file (never a partial target): the
        // next write into that folder removes it, as the converging up below shows.
        const cut = await halfWritten();
        console.log(`      left by the cut: ${cut.join(", ") || "nothing"}`);
        assert.deepStrictEqual(cut.filter((f) => !/\/\.kvmtune\.[0-9a-f]{8}\.[A-Za-z0-9]{6}$/.test(f)), [], "a partial file");

        assert.deepStrictEqual(Object.keys(await s.up(tuned)).filter((k) => k !== "create" && k !== "update"), []);
        assert.deepStrictEqual(await halfWritten(), [], "the converging up left a temp file or a partial file");
        await assertTuned();
        assert.deepStrictEqual(await s.preview(tuned), {});
        assert.deepStrictEqual(await s.destroy(), { delete: 4 });
        await assertOriginal();
    });

    it("F10: VFs on a NIC without SR-IOV are refused, naming the NIC, and nothing changes", async () => {
        if ((await recorded()).length) await s.destroy(); // an earlier test failed before its destroy
        const before = await ssh(`ip -d link show ${mgmt}; ls /sys/class/net/${mgmt}/device/`);
        await assert.rejects(
            s.up(async () => {
                new SriovNic("mgmt", { connection, pf: mgmt, numVfs: 1 });
            }),
            new RegExp(`pf: ${mgmt} on ${h.name} \\(driver \\S+\\) has no SR-IOV`),
        );
        assert.strictEqual(await ssh(`ip -d link show ${mgmt}; ls /sys/class/net/${mgmt}/device/`), before);
        assert.deepStrictEqual(await recorded(), []);
        assert.deepStrictEqual(await managedFiles(), []);
    });

    it("F10: a scheduler the disk lacks (bfq blocked) is refused, naming field, value and what the disk offers, and nothing changes", async () => {
        await ssh(`echo 'install bfq /bin/false' > ${BFQ_BLOCK}; if grep -q '^bfq ' /proc/modules; then rmmod bfq; fi`);
        try {
            const was = await sched("vdb");
            assert.ok(!was.offered.includes("bfq"), `vdb offers ${was.offered.join(" ")}`);
            await assert.rejects(
                s.up(async () => {
                    new BlockElevator("db", { connection, device: "vdb", scheduler: "bfq" });
                }),
                new RegExp(`scheduler: vdb on ${h.name} does not offer bfq \\(even after modprobe bfq\\); it offers ${was.offered.join(", ")}`),
            );
            assert.deepStrictEqual(await sched("vdb"), was);
            assert.deepStrictEqual(await recorded(), []);
            assert.deepStrictEqual(await managedFiles(), [], "no claim, no udev rule");
        } finally {
            await ssh(`rm -f ${BFQ_BLOCK}`);
        }
    });

    it("F10: a guest libvirt refuses to start is refused with virsh's message, and no domain is left behind", async () => {
        const before = await domains();
        const guest: PulumiFn = async () => {
            // Valid to kvmtune (an absolute path of plain names); the file does not exist.
            new NumaPinnedGuest("g1", { connection, name: GUEST, vcpus: 1, memoryMiB: 32, numaNode: 0, cpuPins: [0], disks: [{ path: MISSING_DISK, target: "vda" }], shutdownTimeoutSeconds: 5 });
        };
        await assert.rejects(s.up(guest), (e: Error) => {
            console.log(`      up: ${(/error: .*/.exec(e.message)?.[0] ?? e.message).slice(0, 300)}`);
            assert.match(e.message, /virsh/);
            assert.match(e.message, /error: Failed to start domain/);
            assert.match(e.message, new RegExp(MISSING_DISK.replace(/[./]/g, "\\$&")));
            assert.match(e.message, hostName);
            return true;
        });
        assert.deepStrictEqual(await domains(), before, "no half-defined domain");
        assert.deepStrictEqual(await recorded(), []);
        // And the next up, with the disk there, converges.
        await ssh(`truncate -s 16M ${MISSING_DISK}`);
        assert.deepStrictEqual(Object.keys(await s.up(guest)), ["create"]);
        assert.strictEqual((await ssh(`${V} domstate ${GUEST}`)).trim(), "running");
        assert.deepStrictEqual((await recorded()).map((r) => r.name), ["g1"]);
        assert.deepStrictEqual(await s.destroy(), { delete: 2 });
        assert.deepStrictEqual(await domains(), before);
        await ssh(`rm -f ${MISSING_DISK}`);
    });
});
