/**
 * A Remote that runs commands on this machine: unit tests run the library's real read scripts
 * through it, so the parsers meet a real kernel's sysfs without needing a lab host.
 *
 * With `etc`, every command runs in a private mount namespace (`unshare --mount`, as root) whose
 * /etc is that folder and whose / and /sys are read-only: scripts that write persistence files and
 * claims under /etc run unchanged and land in the test's folder, and no script, however broken,
 * can change this machine's files or kernel settings (/proc and /dev stay writable: keep scripts
 * that write there out of it). `binds` lays test folders over paths inside it (a fake disk queue
 * over a real disk's `/sys/block/X/queue`), so a provider's writes go to files a test reads.
 */
import { spawn } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import type { ExecOptions, ExecResult, Remote } from "../../resources/host/remote";

export interface LocalOptions {
    /** The folder that is /etc for every command. */
    etc?: string;
    /** More folders laid over paths, [folder, path] (with `etc` only). */
    binds?: ReadonlyArray<readonly [string, string]>;
    /** A folder searched before $PATH: stand-ins for commands that would reach past the namespace. */
    pathFirst?: string;
}

/** Set up inside the namespace; exits 125 when any mount fails, before the command runs. */
const NAMESPACE_SETUP = [
    'etc=$0 cmd=$1; shift',
    'mount --bind "$etc" /etc && mount -o remount,bind,ro /sys || exit 125',
    'while [ $# -gt 1 ]; do mount --bind "$1" "$2" || exit 125; shift 2; done',
    // Last: a bind made from a read-only mount would be read-only too.
    'mount -o remount,bind,ro / || exit 125',
    'exec /bin/sh -c "$cmd"',
].join("\n");

/** The program and arguments that run `command` locally, in a namespace when `etc` is given. */
export function localCommand(command: string, options: LocalOptions = {}): [string, string[]] {
    if (!options.etc) return ["/bin/sh", ["-c", command]];
    // Folders and the command are positional parameters: never parsed by the outer shell.
    const binds = (options.binds ?? []).flatMap(([from, to]) => [from, to]);
    return ["unshare", ["--mount", "--propagation", "private", "/bin/sh", "-c", NAMESPACE_SETUP, options.etc, command, ...binds]];
}

/**
 * Debian reaches some commands through /etc/alternatives (`/usr/bin/awk` -> `/etc/alternatives/awk`),
 * which a private /etc hides: a folder of links to their real programs, made once, stands in for it.
 */
let alternatives: string | undefined;
function alternativesFolder(): string {
    if (alternatives) return alternatives;
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "kvmtune-alternatives-"));
    for (const bin of ["/usr/bin", "/bin", "/usr/sbin", "/sbin"]) {
        for (const name of fs.existsSync(bin) ? fs.readdirSync(bin) : []) {
            try {
                if (!fs.readlinkSync(path.join(bin, name)).startsWith("/etc/alternatives/")) continue;
                if (!fs.existsSync(path.join(dir, name))) fs.symlinkSync(fs.realpathSync(path.join(bin, name)), path.join(dir, name));
            } catch {
                // not a link, or a dangling one: nothing to stand in for
            }
        }
    }
    process.once("exit", () => fs.rmSync(dir, { recursive: true, force: true }));
    return (alternatives = dir);
}

export class LocalRemote implements Remote {
    readonly name: string;
    constructor(private readonly options: LocalOptions = {}) {
        this.name = options.etc ? `local (/etc = ${options.etc})` : "local";
    }
    exec(command: string, options: ExecOptions = {}): Promise<ExecResult> {
        return new Promise((resolve, reject) => {
            const [file, args] = localCommand(command, this.options);
            const first = [this.options.pathFirst, this.options.etc ? alternativesFolder() : undefined].filter(Boolean);
            const env = first.length ? { ...process.env, PATH: `${first.join(":")}:${process.env.PATH}` } : process.env;
            const child = spawn(file, args, { stdio: ["pipe", "pipe", "pipe"], env });
            let stdout = "";
            let stderr = "";
            child.stdout.on("data", (d) => (stdout += d));
            child.stderr.on("data", (d) => (stderr += d));
            // A command that exits without reading its stdin is not an error (no EPIPE).
            child.stdin.on("error", () => undefined);
            child.on("error", reject);
            child.on("close", (code) => resolve({ stdout, stderr, code }));
            child.stdin.end(options.stdin ?? "");
        });
    }
}
