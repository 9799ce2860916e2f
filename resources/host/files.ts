/**
 * Persistence files on hosts (`/etc/udev/rules.d`, `/etc/sysctl.d`, `/etc/modules-load.d`,
 * systemd units): written atomically (temp file in the same folder, fsync, rename, fsync of the
 * folder), so a cut connection leaves the old file or the new one, never half of one. Each carries
 * a header naming the resource that owns it.
 */
import { relabelCommand } from "./platformSteps";
import { shellQuote } from "./quote";

/**
 * Absolute paths under /etc or /usr/local, with plain names: what kvmtune may write. A name may
 * hold systemd's `\xNN` escapes (the mount unit of /mnt/huge-1G is `mnt-huge\x2d1G.mount`).
 */
const MANAGED_PATH = /^\/(etc|usr\/local)(\/(?:[A-Za-z0-9_.@-]|\\x[0-9a-f]{2})+)+$/;

/**
 * An owner label is one line of printable text. It comes from a resource's name, which Pulumi does
 * not restrict, and ends up in headers of udev rules and systemd units: a newline there would
 * start a line of the file's own syntax (a udev `RUN+=`, a unit's `ExecStart=`).
 */
const OWNER = /^[^\x00-\x1f\x7f]{1,300}$/;

/** Why an owner label cannot go into a file header, or null when it can. */
export function ownerProblem(owner: string): string | null {
    if (OWNER.test(owner)) return null;
    return owner.length === 0 || owner.length > 300
        ? `the owner label must be 1 to 300 characters; it has ${owner.length}`
        : "the owner label (from the resource's name) must be one line without control characters";
}

/** The first line of every file kvmtune writes: it names the resource that owns the file. */
export function headerLine(owner: string, comment = "#"): string {
    const problem = ownerProblem(owner);
    if (problem) throw new Error(`${problem}: ${JSON.stringify(owner)}`);
    return `${comment} Managed by kvmtune for ${owner}.`;
}

/** The owner a file's first line names, or null when it has no kvmtune header. */
export function ownerOf(text: string, comment = "#"): string | null {
    const first = text.split("\n", 1)[0];
    const prefix = `${comment} Managed by kvmtune for `;
    return first.startsWith(prefix) && first.endsWith(".") ? first.slice(prefix.length, -1) : null;
}

export function managedHeader(owner: string, comment = "#"): string {
    return [
        headerLine(owner, comment),
        `${comment} Changes here are overwritten by the next \`pulumi up\`; the file is removed when the resource is deleted.`,
        "",
    ].join("\n");
}

function checkPath(path: string): void {
    if (!MANAGED_PATH.test(path) || path.includes("/../") || path.includes("/./")) {
        throw new Error(`refusing to manage ${JSON.stringify(path)}: not a plain path under /etc or /usr/local`);
    }
}

/**
 * A shell snippet that writes `content` to `path` atomically, root-owned with `mode`, and
 * labelled by SELinux's file contexts where SELinux is on (host/platformSteps.ts relabelCommand).
 * The content travels base64-encoded, so no byte of it is ever interpreted by the shell.
 *
 * `exclusive`: create the file only if it does not exist. link(2) fails when the name is taken, so
 * of two writers racing for one path exactly one wins (how ownership claims are taken, claims.ts).
 */
export function atomicWriteScript(path: string, content: string, mode = "0644", options: { exclusive?: boolean } = {}): string {
    checkPath(path);
    // Root-owned and never group- or world-writable: what kvmtune writes only root may change.
    if (!/^0[0-7]{3}$/.test(mode) || (parseInt(mode, 8) & 0o022) !== 0) {
        throw new Error(`bad file mode ${mode}: files kvmtune writes are 0644 or tighter (no group or world write)`);
    }
    const dir = path.slice(0, path.lastIndexOf("/")) || "/";
    const b64 = Buffer.from(content, "utf8").toString("base64");
    const put = options.exclusive ? `ln "$tmp" ${shellQuote(path)} && rm -f "$tmp"` : `mv -f "$tmp" ${shellQuote(path)}`;
    // The temporary name carries the boot's id. A write cut by a reboot or a power loss leaves its
    // temporary file behind, and no writer of this boot can still be using it: the next write into
    // the folder removes it. One of this boot may be another writer's, still going: it stays.
    return [
        `mkdir -p ${shellQuote(dir)}`,
        `boot=$(cat /proc/sys/kernel/random/boot_id); boot=\${boot%%-*}`,
        `for f in ${shellQuote(dir)}/.kvmtune.*; do case "\${f##*/}" in ".kvmtune.$boot."*) ;; *) if [ -f "$f" ]; then rm -f "$f"; fi ;; esac; done`,
        `tmp=$(mktemp ${shellQuote(dir)}/.kvmtune.$boot.XXXXXX)`,
        `{ printf '%s' ${shellQuote(b64)} | base64 -d > "$tmp" && chown 0:0 "$tmp" && chmod ${mode} "$tmp" && sync "$tmp" && ${put} && sync ${shellQuote(dir)}; } || { rm -f "$tmp"; exit 1; }`,
        // Where SELinux is on, the file gets its default label, as a package's files have (the
        // temporary file took its folder's, which a path-specific rule may not want).
        relabelCommand(shellQuote(path)),
    ].join("\n");
}

/** A shell snippet that removes a managed file (absent is fine) and syncs its folder. */
export function removeFileScript(path: string): string {
    checkPath(path);
    const dir = path.slice(0, path.lastIndexOf("/")) || "/";
    return `rm -f ${shellQuote(path)} && sync ${shellQuote(dir)}`;
}
