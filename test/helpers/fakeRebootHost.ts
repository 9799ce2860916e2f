/**
 * A loopback SSH host that can reboot, for HostReboot's unit tests. Its commands run in a private
 * mount namespace (./localRemote.ts) where /proc/cmdline and /proc/sys/kernel/random/boot_id are
 * files of the test's, `virsh` is a stand-in keeping guests as files (state and autostart), and
 * `systemd-run` (how HostReboot starts the reboot) only leaves a mark. When a command leaves that
 * mark, the host "reboots": its SSH server drops every client, the boot id changes, /proc/cmdline
 * becomes `nextCmdline`, every guest is off and (unless `libvirtAutostarts` is false) libvirt starts
 * the autostarted ones; after `downMs` the server listens again on the same port with the same host
 * key, unless `comesBack` is false.
 */
import { randomUUID } from "crypto";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import type { ExecOptions, ExecResult, Remote } from "../../resources/host/remote";
import { FakeSshHost, startFakeSshHost } from "./fakeSshHost";
import { KeyPair, newKeyPair } from "./fixtures";
import { LocalRemote } from "./localRemote";

/** virsh over files in /etc/fake-guests: `<name>` holds `running` or `shut off`, `<name>.autostart` marks autostart, `<name>.stubborn` ignores shutdown. */
const VIRSH = `#!/bin/sh
[ "$1" = "-c" ] && shift 2
d=/etc/fake-guests
mkdir -p "$d"
names() { for f in "$d"/*; do case "\${f##*/}" in *.*) continue ;; esac; [ -f "$f" ] && echo "\${f##*/}"; done; }
cmd=$1; shift
case "$cmd" in
  list)
    case "$*" in
      *--state-running*) for n in $(names); do [ "$(cat "$d/$n")" = running ] && echo "$n"; done ;;
      *--autostart*) for n in $(names); do [ -e "$d/$n.autostart" ] && echo "$n"; done ;;
      *) names ;;
    esac
    echo ;;
  domstate) [ -f "$d/$1" ] || { echo "error: failed to get domain '$1'" >&2; exit 1; }; cat "$d/$1" ;;
  shutdown) [ -f "$d/$1" ] || { echo "error: failed to get domain '$1'" >&2; exit 1; }
    [ -e "$d/$1.stubborn" ] || echo "shut off" > "$d/$1"; echo "Domain '$1' is being shutdown" ;;
  start) [ -f "$d/$1" ] || { echo "error: failed to get domain '$1'" >&2; exit 1; }
    echo running > "$d/$1"; echo "Domain '$1' started" >> "$d/started.log"; echo "Domain '$1' started" ;;
  *) echo "fake virsh: $cmd not supported" >&2; exit 1 ;;
esac
`;

export interface FakeGuest {
    name: string;
    running: boolean;
    autostart: boolean;
    /** Ignores `virsh shutdown` (an OS that does not answer ACPI). */
    stubborn?: boolean;
}

export interface FakeRebootHostOptions {
    /** /proc/cmdline after the next boot (default: as now). */
    nextCmdline?: string;
    /** The host answers SSH again after a boot (default true). */
    comesBack?: boolean;
    /** libvirt starts autostarted guests at boot (default true). */
    libvirtAutostarts?: boolean;
    /** Real milliseconds the host is down (default 300). */
    downMs?: number;
    guests?: FakeGuest[];
}

export interface FakeRebootHost {
    ssh(): FakeSshHost;
    connection(): Record<string, unknown>;
    options: FakeRebootHostOptions;
    bootId(): string;
    cmdline(): string;
    /** Each guest's state, by name. */
    guestStates(): Record<string, string>;
    /** Guests `virsh start` started, in order. */
    started(): string[];
    /** Reboots the host so far. */
    reboots: number;
    /** Resolves when the host listens again after the last reboot (or at once when it stays down). */
    back(): Promise<void>;
    dispose(): Promise<void>;
}

export async function startFakeRebootHost(clientKey: KeyPair, cmdline: string, options: FakeRebootHostOptions = {}): Promise<FakeRebootHost> {
    const root = fs.mkdtempSync(path.join(os.tmpdir(), "kvmtune-fakereboot-"));
    const etc = path.join(root, "etc");
    const bin = path.join(root, "bin");
    const guestDir = path.join(etc, "fake-guests");
    for (const d of [etc, bin, guestDir]) fs.mkdirSync(d, { recursive: true });
    fs.writeFileSync(path.join(etc, "hostname"), "reboothost\n");
    fs.writeFileSync(path.join(bin, "virsh"), VIRSH, { mode: 0o755 });
    const mark = path.join(etc, "reboot-requested");
    fs.writeFileSync(path.join(bin, "systemd-run"), `#!/bin/sh\necho "$*" > /etc/reboot-requested\n`, { mode: 0o755 });
    const procCmdline = path.join(root, "cmdline");
    const bootIdFile = path.join(root, "boot_id");
    fs.writeFileSync(procCmdline, `${cmdline}\n`);
    fs.writeFileSync(bootIdFile, `${randomUUID()}\n`);
    for (const g of options.guests ?? []) {
        fs.writeFileSync(path.join(guestDir, g.name), g.running ? "running\n" : "shut off\n");
        if (g.autostart) fs.writeFileSync(path.join(guestDir, `${g.name}.autostart`), "");
        if (g.stubborn) fs.writeFileSync(path.join(guestDir, `${g.name}.stubborn`), "");
    }
    const local = new LocalRemote({
        etc,
        pathFirst: bin,
        binds: [
            [procCmdline, "/proc/cmdline"],
            [bootIdFile, "/proc/sys/kernel/random/boot_id"],
        ],
    });
    const hostKey = newKeyPair();
    let server: FakeSshHost;
    let backPromise: Promise<void> = Promise.resolve();

    const boot = () => {
        fs.writeFileSync(procCmdline, `${host.options.nextCmdline ?? host.cmdline()}\n`);
        fs.writeFileSync(bootIdFile, `${randomUUID()}\n`);
        for (const f of fs.readdirSync(guestDir)) {
            if (f.includes(".")) continue;
            const autostart = fs.existsSync(path.join(guestDir, `${f}.autostart`));
            fs.writeFileSync(path.join(guestDir, f), autostart && host.options.libvirtAutostarts !== false ? "running\n" : "shut off\n");
        }
    };
    const reboot = async () => {
        host.reboots++;
        server.cut();
        await server.close();
        boot();
        if (host.options.comesBack === false) return;
        await new Promise((r) => setTimeout(r, host.options.downMs ?? 300));
        server = await startFakeSshHost({ clientKey, remote, hostKey, port: server.port });
    };
    // Every command passes here: one that left the reboot mark takes the host down after it answered.
    const remote: Remote = {
        name: local.name,
        async exec(command: string, execOptions?: ExecOptions): Promise<ExecResult> {
            const r = await local.exec(command, execOptions);
            if (fs.existsSync(mark)) {
                fs.rmSync(mark);
                backPromise = new Promise((resolve) => setTimeout(() => reboot().then(resolve, resolve), 50));
            }
            return r;
        },
    };
    server = await startFakeSshHost({ clientKey, remote, hostKey });
    const host: FakeRebootHost = {
        ssh: () => server,
        connection: () => ({ host: "127.0.0.1", port: server.port, user: "root", privateKey: clientKey.privateKey, hostKey: server.hostKey, connectTimeoutSeconds: 1 }),
        options,
        bootId: () => fs.readFileSync(bootIdFile, "utf8").trim(),
        cmdline: () => fs.readFileSync(procCmdline, "utf8").trim(),
        guestStates: () =>
            Object.fromEntries(fs.readdirSync(guestDir).filter((f) => !f.includes(".")).map((f) => [f, fs.readFileSync(path.join(guestDir, f), "utf8").trim()])),
        started: () => {
            const log = path.join(guestDir, "started.log");
            return fs.existsSync(log) ? fs.readFileSync(log, "utf8").trim().split("\n").map((l) => /'(.*)'/.exec(l)![1]) : [];
        },
        reboots: 0,
        back: () => backPromise,
        dispose: async () => {
            await backPromise;
            await server.close();
            fs.rmSync(root, { recursive: true, force: true });
        },
    };
    return host;
}
