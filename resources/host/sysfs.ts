/**
 * Reading many kernel files in one round trip. A read script cats every file matching a set of
 * patterns, resolves symlinks and runs a few commands, printing each result after a marker line;
 * `parseDump` turns that back into maps. Callers parse values from the maps: no grep on the host.
 *
 * Patterns are the library's own constants (globs the shell expands). A pattern that carries a
 * user value must build it with `globLiteral`, after the schema has validated the value.
 */
import { shellQuote } from "./quote";

/** Record marker: ASCII RS, then a kind letter and ASCII US. Never seen in sysfs or procfs text. */
const RS = "\x1e";
const US = "\x1f";

export interface DumpRequest {
    /**
     * Shell lines run before the reads, for a read that must first find what to read on the host
     * (a disk's kernel name from its by-id link). They may set variables the patterns use; a
     * variable's value must be checked there to be a plain word, as it is expanded and globbed.
     */
    prelude?: string;
    /** Glob patterns of regular files to read. Unreadable files are skipped. */
    files?: string[];
    /** Glob patterns of symlinks to resolve to absolute targets (`readlink -f`). */
    links?: string[];
    /** Named shell commands whose stdout is kept, with their exit code. */
    commands?: Record<string, string>;
}

export interface Dump {
    files: Map<string, string>;
    links: Map<string, string>;
    commands: Map<string, { stdout: string; code: number }>;
}

/** Escapes glob and shell characters so a validated value can sit inside a pattern literally. */
export function globLiteral(value: string): string {
    return value.replace(/[^A-Za-z0-9_.:@+,=-]/g, (c) => (c === "/" ? "/" : `\\${c}`));
}

/**
 * One awk reads every file (a record each, empty and multi-line files included); file names are
 * its arguments, never parsed back from its output, so any name (colons, spaces) is safe. `exit`
 * in BEGIN keeps awk from taking an argument such as `a=b` for an assignment.
 */
const READ_FILES_AWK =
    `BEGIN { for (i = 1; i < ARGC; i++) { f = ARGV[i]; printf "\\036F\\037%s\\n", f; ` +
    `while ((getline line < f) > 0) print line; close(f); print "" } exit }`;

/**
 * The read script. A fork+exec costs 70-100 ms on an emulated (TCG) host, so the number of
 * processes must not grow with the files: globs are expanded and tested with shell builtins, all
 * files go to one awk and all links to one `readlink -m` (`-m`: it never fails, so its output
 * lines stay aligned with its arguments). Commands run one subshell each; they are few and fixed.
 */
export function buildDumpScript(request: DumpRequest): string {
    const lines = ["#!/bin/sh", "# kvmtune read: one record per file, link and command, in O(1) processes"];
    if (request.prelude) lines.push(request.prelude);
    const files = request.files ?? [];
    if (files.length > 0) {
        lines.push("set --");
        for (const pattern of files) lines.push(`for f in ${pattern}; do [ -f "$f" ] && [ -r "$f" ] && set -- "$@" "$f"; done`);
        lines.push(`[ $# -eq 0 ] || awk '${READ_FILES_AWK}' "$@" 2>/dev/null`);
    }
    const links = request.links ?? [];
    if (links.length > 0) {
        lines.push("set --");
        for (const pattern of links) lines.push(`for l in ${pattern}; do [ -L "$l" ] && set -- "$@" "$l"; done`);
        lines.push(
            `[ $# -eq 0 ] || readlink -m -- "$@" 2>/dev/null | ` +
                `{ for l in "$@"; do IFS= read -r t; printf '\\036L\\037%s\\n%s\\n' "$l" "$t"; done; }`,
        );
    }
    for (const [name, command] of Object.entries(request.commands ?? {})) {
        if (!/^[A-Za-z0-9_.-]+$/.test(name)) throw new Error(`bad command name in dump request: ${name}`);
        lines.push(
            `printf '\\036C\\037%s\\n' '${name}'; ( ${command} ) 2>/dev/null; rc=$?; printf '\\n\\036X\\037%s\\n%s\\n' '${name}' "$rc"`,
        );
    }
    lines.push("exit 0");
    return lines.join("\n") + "\n";
}

export function parseDump(text: string): Dump {
    const dump: Dump = { files: new Map(), links: new Map(), commands: new Map() };
    const exitCodes = new Map<string, number>();
    for (const record of text.split(RS).slice(1)) {
        const kind = record[0];
        const sep = record.indexOf(US);
        const newline = record.indexOf("\n");
        if (sep !== 1 || newline < 0) continue;
        const key = record.slice(2, newline);
        const body = record.slice(newline + 1).replace(/\n+$/, "");
        if (kind === "F") dump.files.set(key, body);
        else if (kind === "L") dump.links.set(key, body);
        else if (kind === "C") dump.commands.set(key, { stdout: body, code: -1 });
        else if (kind === "X") exitCodes.set(key, Number(body.trim()));
    }
    for (const [name, code] of exitCodes) {
        const c = dump.commands.get(name);
        if (c) c.code = code;
    }
    return dump;
}

/** Parses a kernel CPU list such as `0-3,8,10-11` into numbers. */
export function parseCpuList(text: string): number[] {
    const out: number[] = [];
    for (const part of text.trim().split(",")) {
        if (!part) continue;
        const [a, b] = part.split("-").map((n) => Number(n));
        if (!Number.isInteger(a) || (b !== undefined && !Number.isInteger(b))) {
            throw new Error(`not a CPU list: ${JSON.stringify(text)}`);
        }
        for (let c = a; c <= (b ?? a); c++) out.push(c);
    }
    return out;
}

/** Formats numbers as the shortest kernel CPU list (`0-3,8`). */
export function formatCpuList(cpus: readonly number[]): string {
    const sorted = [...new Set(cpus)].sort((a, b) => a - b);
    const parts: string[] = [];
    for (let i = 0; i < sorted.length; ) {
        let j = i;
        while (j + 1 < sorted.length && sorted[j + 1] === sorted[j] + 1) j++;
        parts.push(i === j ? `${sorted[i]}` : `${sorted[i]}-${sorted[j]}`);
        i = j + 1;
    }
    return parts.join(",");
}

/** The active choice in a sysfs list such as `[none] mq-deadline kyber`, and all offered. */
export function parseBracketChoice(text: string): { active: string | null; available: string[] } {
    const words = text.trim().split(/\s+/).filter(Boolean);
    const active = words.find((w) => w.startsWith("[") && w.endsWith("]"));
    return {
        // A lone word without brackets is a fixed choice (a queue that takes no scheduler says "none").
        active: active ? active.slice(1, -1) : words.length === 1 ? words[0] : null,
        available: words.map((w) => w.replace(/^\[|\]$/g, "")),
    };
}

/**
 * A script that writes each value with a single write (sysfs acts on each write(2) on its own),
 * stopping at the first refusal with the path, the value and the kernel's reason on stderr.
 * Paths are built by the library from validated values; they are quoted all the same.
 */
export function writeSysfsScript(entries: ReadonlyArray<{ path: string; value: string | number }>, options: { skipSame?: boolean } = {}): string {
    return entries
        .map(({ path, value }) => {
            const [p, v] = [shellQuote(path), shellQuote(String(value))];
            const write = `printf '%s' ${v} > ${p} || { printf 'the kernel refused %s for %s\\n' ${v} ${p} >&2; exit 1; }`;
            // For plain values (a count): a file that already reads the value is not written, so
            // putting back what nobody changed cannot fail.
            return options.skipSame ? `[ "$(cat ${p} 2>/dev/null)" = ${v} ] || ${write}` : write;
        })
        .join("\n");
}
