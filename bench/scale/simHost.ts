/**
 * One simulated KVM host on this machine: a real OpenSSH `sshd` on a loopback port, started in its
 * own mount namespace (`unshare --mount --propagation private`) where
 * - `/etc` is this host's own copy of this machine's /etc (hostname, machine-id of its own), so
 *   kvmtune's claims, udev rules and systemd units land per host;
 * - `/sys` is read-only, with folders of plain files laid over `/sys/devices/system/node` (two NUMA
 *   nodes with 2 MiB pools) and `/sys/block` (disks vdb, vdc, ... with a queue each), which is what
 *   HostFacts, HugepagePool and BlockElevator read and write;
 * - `/usr/local/sbin` (first on sshd's PATH) holds stand-ins for the commands that would act on
 *   this machine's kernel or services: `virsh` (domains kept as XML in the host's /etc, the same
 *   stand-in the unit tests use), `systemctl`, `udevadm`, `modprobe`, `update-grub`;
 * - `/root` and `/run` are the host's own (an empty home; kvmtune's lock folder and sshd's);
 * - `/` is read-only, so nothing a script does can reach this machine's files.
 * Every session sshd forks inherits the namespace, so kvmtune's own scripts run unchanged over its
 * own SSH pool; only the kernel files and those commands are stand-ins. The namespace goes away
 * with its last process: stopping sshd (and the client closing its connection) is the whole
 * clean-up.
 */
import { ChildProcess, execFileSync, spawn } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import { installFakeVirsh } from "../../test/helpers/fakeVirsh";

export interface SimHostOptions {
    /** The host's folder (created): its /etc, kernel files, stand-ins, sshd config and log. */
    dir: string;
    name: string;
    port: number;
    /** Private host key file (ed25519) shared by the bench's hosts, and the client's public key. */
    hostKeyFile: string;
    clientPublicKey: string;
    /** Disks with a queue, `vdb` onwards. */
    disks: number;
}

export interface SimHost {
    name: string;
    port: number;
    dir: string;
    /** Connections sshd accepted so far (its log's `Accepted publickey` lines). */
    acceptedConnections(): number;
    /** Commands run so far (its log's exec requests, LogLevel VERBOSE). */
    commands(): number;
    stop(): void;
    exited: Promise<void>;
}

/** In the namespace: binds, then read-only /sys and /, then sshd in the foreground. */
const NAMESPACE_SETUP = [
    "set -e",
    'dir=$0',
    'mount --bind "$dir" "$dir"', // stays writable after / goes read-only: sshd's log, the stand-ins
    'mount --bind "$dir/etc" /etc',
    // root's home of this machine has shell start-up files (pyenv, cargo) that every command
    // would run: a host's root starts with an empty home.
    'mount --bind "$dir/root" /root',
    // A host's own /run: kvmtune's guest CPU lock lives there, and sshd's privilege separation folder.
    'mount --bind "$dir/run" /run',
    "mount -o remount,bind,ro /sys",
    'mount --bind "$dir/sys-node" /sys/devices/system/node',
    'mount --bind "$dir/sys-block" /sys/block',
    'mount --bind "$dir/bin" /usr/local/sbin',
    "mount -o remount,bind,ro /",
    'exec /usr/sbin/sshd -D -f "$dir/sshd_config" -E "$dir/sshd.log"',
].join("\n");

/**
 * systemctl: libvirtd counts as running; `enable`/`disable` make and remove the `<target>.wants`
 * links a unit's `WantedBy=` names, as systemd does (kvmtune's refresh checks the link); the rest
 * succeeds doing nothing. Options (`--no-reload`) may come before the verb.
 */
const SYSTEMCTL = `#!/bin/sh
for a in "$@"; do case "$a" in -*) ;; *) set -- "$@" "$a" ;; esac; shift; done
verb=$1; shift
units=/etc/systemd/system
case "$verb" in
  is-active) echo active ;;
  is-enabled) for u in "$@"; do ls "$units"/*.wants/"$u" >/dev/null 2>&1 || { echo disabled; exit 1; }; done; echo enabled ;;
  enable) for u in "$@"; do for t in $(sed -n 's/^WantedBy=//p' "$units/$u" 2>/dev/null); do
      mkdir -p "$units/$t.wants" && ln -sf "$units/$u" "$units/$t.wants/$u"; done; done ;;
  disable) for u in "$@"; do rm -f "$units"/*.wants/"$u"; done ;;
esac
exit 0
`;

/**
 * virsh: the unit tests' stand-in (domains as XML in /etc/fake-libvirt) behind a wrapper that also
 * answers --version (the facts ask it), keeps autostart marks (by UUID), which dominfo reports, and
 * undefines a domain (its XML and mark removed: NumaPinnedGuest's delete, for --upgrade-from's destroy).
 */
const VIRSH = `#!/bin/sh
[ "$1" = -c ] && shift 2
domains=/usr/local/sbin/virsh-domains
marks=/etc/fake-libvirt-autostart
uuid() { "$domains" dominfo "$1" | sed -n 's/^UUID: *//p'; }
case "$1" in
  --version) echo 9.0.0 ;;
  autostart) shift; off=; [ "$1" = --disable ] && { off=1; shift; }
    u=$(uuid "$1") && [ -n "$u" ] || { echo "error: failed to get domain '$1'" >&2; exit 1; }
    mkdir -p "$marks"; if [ -n "$off" ]; then rm -f "$marks/$u"; else : > "$marks/$u"; fi ;;
  undefine) u=$(uuid "$2") && [ -n "$u" ] || { echo "error: failed to get domain '$2'" >&2; exit 1; }
    rm -f "/etc/fake-libvirt/$u.xml" "$marks/$u"; echo "Domain $2 has been undefined" ;;
  dominfo) out=$("$domains" "$@") || exit $?
    u=$(printf '%s\\n' "$out" | sed -n 's/^UUID: *//p')
    if [ -e "$marks/$u" ]; then printf '%s\\n' "$out" | sed 's/^Autostart: .*/Autostart: enable/'; else printf '%s\\n' "$out"; fi ;;
  *) exec "$domains" "$@" ;;
esac
`;

const STAND_INS: Record<string, string> = {
    systemctl: SYSTEMCTL,
    virsh: VIRSH,
    udevadm: "#!/bin/sh\nexit 0\n",
    modprobe: "#!/bin/sh\nexit 0\n",
    "update-grub": "#!/bin/sh\nexit 0\n",
};

function write(file: string, text: string, mode?: number): void {
    fs.mkdirSync(path.dirname(file), { recursive: true });
    fs.writeFileSync(file, text, mode === undefined ? undefined : { mode });
}

/** Two NUMA nodes, one CPU and 8 GiB each, with empty 2 MiB pools. */
function writeNodes(root: string): void {
    for (const n of [0, 1]) {
        const node = path.join(root, `node${n}`);
        write(path.join(node, "cpulist"), `${n}\n`);
        write(path.join(node, "meminfo"), `Node ${n} MemTotal:        8388608 kB\nNode ${n} MemFree:         8000000 kB\n`);
        for (const f of ["nr_hugepages", "free_hugepages", "surplus_hugepages"]) write(path.join(node, "hugepages", "hugepages-2048kB", f), "0\n");
    }
    write(path.join(root, "online"), "0-1\n");
}

/** Disks vdb, vdc, ...: 10 GiB each, `[none] mq-deadline`, and mq-deadline's tunables. */
export function diskNames(count: number): string[] {
    return Array.from({ length: count }, (_v, i) => `vd${String.fromCharCode("b".charCodeAt(0) + i)}`);
}

function writeDisks(root: string, count: number): void {
    for (const disk of diskNames(count)) {
        const q = path.join(root, disk, "queue");
        write(path.join(root, disk, "size"), `${(10 * 1024 ** 3) / 512}\n`);
        write(path.join(q, "scheduler"), "[none] mq-deadline\n");
        write(path.join(q, "rotational"), "0\n");
        write(path.join(q, "nr_requests"), "256\n");
        write(path.join(q, "read_ahead_kb"), "128\n");
        for (const [t, v] of Object.entries({ read_expire: 500, write_expire: 5000, fifo_batch: 16, front_merges: 1, writes_starved: 2 })) {
            write(path.join(q, "iosched", t), `${v}\n`);
        }
    }
}

function sshdConfig(o: SimHostOptions): string {
    return [
        `Port ${o.port}`,
        "ListenAddress 127.0.0.1",
        `HostKey ${o.hostKeyFile}`,
        `AuthorizedKeysFile ${path.join(o.dir, "authorized_keys")}`,
        // The bench's folders live under /tmp (world-writable): the owner checks would refuse them.
        "StrictModes no",
        "PermitRootLogin prohibit-password",
        "PubkeyAuthentication yes",
        "PasswordAuthentication no",
        "KbdInteractiveAuthentication no",
        "UsePAM no",
        "PrintMotd no",
        "PrintLastLog no",
        "UseDNS no",
        `PidFile ${path.join(o.dir, "sshd.pid")}`,
        // VERBOSE logs each accepted key (a connection); DEBUG1 would log each exec (a command).
        "LogLevel DEBUG1",
        "MaxSessions 10",
        "MaxStartups 100:30:200",
        "",
    ].join("\n");
}

/** Lays out the host's folder and starts its sshd; resolves once it accepts TCP connections. */
export async function startSimHost(o: SimHostOptions): Promise<SimHost> {
    fs.mkdirSync(o.dir, { recursive: true });
    const etc = path.join(o.dir, "etc");
    // A copy, not an overlay: each host's /etc is a plain folder a person can read after a run.
    execFileSync("cp", ["-a", "/etc/.", etc]);
    write(path.join(etc, "hostname"), `${o.name}\n`);
    write(path.join(etc, "machine-id"), `${Buffer.from(o.name.padEnd(16, "-")).toString("hex").slice(0, 32)}\n`);
    writeNodes(path.join(o.dir, "sys-node"));
    writeDisks(path.join(o.dir, "sys-block"), o.disks);
    const bin = path.join(o.dir, "bin");
    fs.mkdirSync(bin, { recursive: true });
    // The unit tests' virsh stand-in, renamed: the wrapper above runs it.
    installFakeVirsh(bin);
    fs.renameSync(path.join(bin, "virsh"), path.join(bin, "virsh-domains"));
    for (const [name, text] of Object.entries(STAND_INS)) write(path.join(bin, name), text, 0o755);
    write(path.join(o.dir, "authorized_keys"), o.clientPublicKey.trim() + "\n", 0o600);
    write(path.join(o.dir, "sshd_config"), sshdConfig(o));
    write(path.join(o.dir, "sshd.log"), "");
    fs.mkdirSync(path.join(o.dir, "root"), { mode: 0o700 });
    fs.mkdirSync(path.join(o.dir, "run", "sshd"), { recursive: true, mode: 0o755 });

    const child: ChildProcess = spawn("unshare", ["--mount", "--propagation", "private", "/bin/sh", "-c", NAMESPACE_SETUP, o.dir], {
        stdio: ["ignore", "ignore", "pipe"],
    });
    let stderr = "";
    child.stderr?.on("data", (d) => (stderr += d));
    const exited = new Promise<void>((resolve) => child.on("exit", () => resolve()));
    let namespace: string | undefined;
    const log = () => fs.readFileSync(path.join(o.dir, "sshd.log"), "utf8");
    const count = (re: RegExp) => (log().match(re) ?? []).length;
    const host: SimHost = {
        name: o.name,
        port: o.port,
        dir: o.dir,
        acceptedConnections: () => count(/^.*Accepted publickey for /gm),
        commands: () => count(/^.*server_input_channel_req: channel \d+ request exec/gm),
        stop: () => {
            // sshd's per-connection processes start sessions of their own (setsid), so a process
            // group would miss them: every process still in this host's namespace is ours.
            const ns = namespace;
            if (child.exitCode === null && child.signalCode === null) child.kill("SIGTERM");
            if (ns) for (const pid of processesIn(ns)) killQuietly(pid);
        },
        exited,
    };
    // Ready when sshd has bound its port (its log says "Server listening").
    const deadline = Date.now() + 20_000;
    for (;;) {
        if (child.exitCode !== null) throw new Error(`${o.name}: sshd exited with ${child.exitCode}: ${stderr.trim()} ${log().slice(-400)}`);
        if (/Server listening on 127\.0\.0\.1 port/.test(log())) {
            namespace = fs.readlinkSync(`/proc/${child.pid}/ns/mnt`);
            return host;
        }
        if (Date.now() > deadline) {
            host.stop();
            throw new Error(`${o.name}: sshd did not listen within 20 s: ${stderr.trim()} ${log().slice(-400)}`);
        }
        await new Promise((r) => setTimeout(r, 50));
    }
}

/** Processes whose mount namespace is `ns` (as /proc/PID/ns/mnt reads, `mnt:[4026532...]`). */
function processesIn(ns: string): number[] {
    const pids: number[] = [];
    for (const entry of fs.readdirSync("/proc")) {
        if (!/^\d+$/.test(entry)) continue;
        try {
            if (fs.readlinkSync(`/proc/${entry}/ns/mnt`) === ns) pids.push(Number(entry));
        } catch {
            // gone meanwhile
        }
    }
    return pids;
}

function killQuietly(pid: number): void {
    try {
        process.kill(pid, "SIGTERM");
    } catch {
        // already gone
    }
}
