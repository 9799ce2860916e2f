/**
 * Persistence files on hosts (`/etc/udev/rules.d`, `/etc/sysctl.d`, `/etc/modules-load.d`,
 * systemd units): written atomically (temp file in the same folder, fsync, rename, fsync of the
 * folder), so a cut connection leaves the old file or the new one, never half of one. Each carries
 * a header naming the resource that owns it.
 */
import { shellQuote } from "./quote";

/** Absolute paths under /etc or /usr/local, with plain names: what kvmtune may write. */
const MANAGED_PATH = /^\/(etc|usr\/local)(\/[A-Za-z0-9_.@-]+)+$/;

export function managedHeader(owner: string, comment = "#"): string {
    return [
        `${comment} Managed by kvmtune for ${owner}.`,
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
 * A shell snippet that writes `content` to `path` atomically, root-owned with `mode`.
 * The content travels base64-encoded, so no byte of it is ever interpreted by the shell.
 */
export function atomicWriteScript(path: string, content: string, mode = "0644"): string {
    checkPath(path);
    if (!/^0[0-7]{3}$/.test(mode)) throw new Error(`bad file mode ${mode}`);
    const dir = path.slice(0, path.lastIndexOf("/")) || "/";
    const b64 = Buffer.from(content, "utf8").toString("base64");
    return [
        `mkdir -p ${shellQuote(dir)}`,
        `tmp=$(mktemp ${shellQuote(dir + "/.kvmtune.XXXXXX")})`,
        `{ printf '%s' ${shellQuote(b64)} | base64 -d > "$tmp" && chown 0:0 "$tmp" && chmod ${mode} "$tmp" && sync "$tmp" && mv -f "$tmp" ${shellQuote(path)} && sync ${shellQuote(dir)}; } || { rm -f "$tmp"; exit 1; }`,
    ].join("\n");
}

/** A shell snippet that removes a managed file (absent is fine) and syncs its folder. */
export function removeFileScript(path: string): string {
    checkPath(path);
    const dir = path.slice(0, path.lastIndexOf("/")) || "/";
    return `rm -f ${shellQuote(path)} && sync ${shellQuote(dir)}`;
}
