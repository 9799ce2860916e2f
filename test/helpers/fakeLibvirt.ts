/**
 * A `virsh` stand-in for a FakeDiskHost: it answers the read commands kvmtune sends (dominfo,
 * domstate, dumpxml [--inactive], net-info, net-dumpxml [--inactive]) from files a test writes, and
 * says "failed to get" for anything it was not given. Enough for a provider's read to find a domain
 * or network and read it whole; nothing is ever defined or started.
 */
import * as fs from "fs";
import * as path from "path";

export interface FakeLibvirt {
    /** Makes `virsh SUBCOMMAND NAME` print `text` (`--inactive` as part of the subcommand: "dumpxml --inactive"). */
    answer(subcommand: string, name: string, text: string): void;
    /** Forgets every answer: the host has no domains or networks. */
    clear(): void;
}

/** Installs the stand-in as `virsh` in `bin` (a FakeDiskHost's stand-ins folder). */
export function installFakeVirsh(bin: string): FakeLibvirt {
    const answers = path.join(bin, "virsh-answers");
    fs.mkdirSync(answers, { recursive: true });
    fs.writeFileSync(
        path.join(bin, "virsh"),
        [
            "#!/bin/sh",
            '[ "$1" = -c ] && shift 2',
            'sub=$1; shift',
            'if [ "$1" = --inactive ]; then sub="$sub --inactive"; shift; fi',
            `f=${JSON.stringify(answers)}/"$(printf '%s' "$sub" | tr ' ' _)"/"$1"`,
            '[ -f "$f" ] || { echo "error: failed to get \'$1\'" >&2; exit 1; }',
            'cat "$f"',
            "",
        ].join("\n"),
        { mode: 0o755 },
    );
    return {
        answer(subcommand, name, text) {
            const dir = path.join(answers, subcommand.replace(/ /g, "_"));
            fs.mkdirSync(dir, { recursive: true });
            fs.writeFileSync(path.join(dir, name), text);
        },
        clear() {
            fs.rmSync(answers, { recursive: true, force: true });
            fs.mkdirSync(answers, { recursive: true });
        },
    };
}
