/**
 * Shell quoting, in one place. Every value that reaches a remote shell goes through `shellQuote`,
 * after the schema has validated it: the schema keeps names sane, quoting keeps them inert.
 *
 * POSIX single quotes make every byte literal except the single quote itself, which is written as
 * `'\''` (close, escaped quote, reopen). That holds for dash, bash and busybox sh alike.
 */

/** Quote one value as a single shell word. Refuses NUL, which no argv string can carry. */
export function shellQuote(value: string | number | boolean): string {
    const s = String(value);
    if (s.includes("\0")) {
        throw new Error("a shell argument cannot contain a NUL byte");
    }
    // Plain words need no quotes; keeping them bare makes the commands in errors easier to read.
    if (/^[A-Za-z0-9_@%+=:,./-]+$/.test(s)) {
        return s;
    }
    return "'" + s.replace(/'/g, "'\\''") + "'";
}

/** Quote each argument and join them into one command line. */
export function shellJoin(args: ReadonlyArray<string | number | boolean>): string {
    return args.map(shellQuote).join(" ");
}

/**
 * Tagged template: `sh\`echo ${value} > ${path}\`` quotes every interpolated value.
 * Arrays interpolate as several quoted words.
 */
export function sh(strings: TemplateStringsArray, ...values: unknown[]): string {
    let out = strings[0];
    values.forEach((v, i) => {
        if (Array.isArray(v)) {
            out += shellJoin(v as Array<string | number | boolean>);
        } else {
            out += shellQuote(v as string | number | boolean);
        }
        out += strings[i + 1];
    });
    return out;
}
