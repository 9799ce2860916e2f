/**
 * Per-command timing, to find where an apply spends its time (issue 17). With `KVMTUNE_TRACE=FILE`
 * in the environment of `pulumi up` (the provider process inherits it), every remote command adds
 * one JSON line to FILE: the host, the step (the script's first line, as errors name it), when it
 * was asked, how long it waited for a channel, for the connection, and how long it ran (the host's
 * work and the wire), and its exit code. Unset, nothing is measured or written.
 *
 * No secret reaches the file: commands carry no key (the connection does), and a step is at most
 * 100 characters of a script's first line. `bench/applyTrace.ts` sums a trace by step.
 */
import * as fs from "fs";
import { stepOf } from "./errors";

export interface TraceLine {
    host: string;
    step: string;
    /** When the command was asked for (ms since the epoch). */
    at: number;
    /** Waiting for one of the connection's channels (other commands on the host held them all). */
    queueMs: number;
    /** Waiting for the connection (its first use pays the key exchange). */
    connectMs: number;
    /** From the channel's opening to the command's exit: the host's work plus the wire. */
    runMs: number;
    code: number | null;
}

/** Starts timing a command when tracing is on; the returned marks are called as it proceeds. */
export function traceCommand(host: string, command: string, stdin: string | undefined): { acquired(): void; connected(): void; done(code: number | null): void } | undefined {
    const file = process.env.KVMTUNE_TRACE;
    if (!file) return undefined;
    const at = Date.now();
    let acquired = at;
    let connected = at;
    return {
        acquired: () => (acquired = Date.now()),
        connected: () => (connected = Date.now()),
        done: (code) => {
            const now = Date.now();
            const step = stepOf(command === "sh -s" && stdin !== undefined ? stdin : command);
            const line: TraceLine = { host, step, at, queueMs: acquired - at, connectMs: connected - acquired, runMs: now - connected, code };
            // One short append per command: a line is written whole even with parallel writers.
            fs.appendFileSync(file, JSON.stringify(line) + "\n");
        },
    };
}
