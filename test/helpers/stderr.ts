/** What `fn` wrote to this process's stderr (kvmtune's warnings go there: resources/host/warn.ts). */
export async function stderrOf(fn: () => Promise<unknown>): Promise<string> {
    const write = process.stderr.write;
    let text = "";
    process.stderr.write = ((chunk: string | Uint8Array) => ((text += String(chunk)), true)) as typeof process.stderr.write;
    try {
        await fn();
    } finally {
        process.stderr.write = write;
    }
    return text;
}
