/**
 * Peak memory of a process tree, sampled from /proc: every `intervalMs` it finds the root's
 * descendants (the Pulumi CLI, its Node.js language host and program, the dynamic provider host and
 * its node) and sums their resident set. The peak of that sum is what the machine had to hold at
 * once; the peak per program name says which process it was.
 */
import * as fs from "node:fs";

export interface RssPeak {
    /** Peak of the summed RSS of the tree, MiB. */
    peakMiB: number;
    /** Per program name (`comm`, plus the script for node), its own peak, MiB. */
    byProcess: Record<string, number>;
    samples: number;
}

const PAGE = 4096;

function children(): Map<number, number[]> {
    const byParent = new Map<number, number[]>();
    for (const entry of fs.readdirSync("/proc")) {
        if (!/^\d+$/.test(entry)) continue;
        try {
            // `pid (comm) state ppid ...`: comm may hold spaces and parentheses, so split after the last ')'.
            const stat = fs.readFileSync(`/proc/${entry}/stat`, "utf8");
            const ppid = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
            const list = byParent.get(ppid) ?? [];
            list.push(Number(entry));
            byParent.set(ppid, list);
        } catch {
            // exited meanwhile
        }
    }
    return byParent;
}

/** A short name: `pulumi`, `pulumi-language-nodejs`, `node <script basename>`. */
function label(pid: number): string {
    const argv = fs.readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0").filter(Boolean);
    const exe = (argv[0] ?? "?").split("/").pop() ?? "?";
    if (exe !== "node") return exe;
    // `node -e <code>` (the SDK's launcher of the program): its code is no name.
    if (argv[1] === "-e" || argv[1] === "--eval") return "node -e (launcher)";
    const script = argv.slice(1).find((a) => !a.startsWith("-")) ?? "";
    return `node ${script.split("/").slice(-2).join("/")}`;
}

export function startRssSampler(rootPid: number, intervalMs = 250): { stop(): RssPeak } {
    const peak: RssPeak = { peakMiB: 0, byProcess: {}, samples: 0 };
    const sample = () => {
        const byParent = children();
        const tree = [rootPid];
        for (let i = 0; i < tree.length; i++) tree.push(...(byParent.get(tree[i]) ?? []));
        let total = 0;
        for (const pid of tree) {
            try {
                const rss = (Number(fs.readFileSync(`/proc/${pid}/statm`, "utf8").split(" ")[1]) * PAGE) / 2 ** 20;
                total += rss;
                const name = label(pid);
                peak.byProcess[name] = Math.max(peak.byProcess[name] ?? 0, rss);
            } catch {
                // exited meanwhile
            }
        }
        peak.peakMiB = Math.max(peak.peakMiB, total);
        peak.samples++;
    };
    sample();
    const timer = setInterval(sample, intervalMs);
    return {
        stop() {
            clearInterval(timer);
            return peak;
        },
    };
}
