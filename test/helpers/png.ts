/**
 * Reads a PNG's pixels (8-bit RGB or RGBA, not interlaced: what headless Chromium writes), so a
 * test can look at a screenshot rather than trust that one was written.
 */
import * as zlib from "zlib";

export interface Image {
    width: number;
    height: number;
    /** RGB of the pixel at (x, y). */
    rgb(x: number, y: number): [number, number, number];
}

export function decodePng(data: Buffer): Image {
    if (data.subarray(0, 8).toString("binary") !== "\x89PNG\r\n\x1a\n") throw new Error("not a PNG");
    let width = 0;
    let height = 0;
    let channels = 0;
    const idat: Buffer[] = [];
    for (let at = 8; at < data.length; ) {
        const length = data.readUInt32BE(at);
        const type = data.subarray(at + 4, at + 8).toString("ascii");
        const body = data.subarray(at + 8, at + 8 + length);
        if (type === "IHDR") {
            width = body.readUInt32BE(0);
            height = body.readUInt32BE(4);
            const [depth, colour, , , interlace] = body.subarray(8, 13);
            if (depth !== 8 || interlace !== 0 || (colour !== 2 && colour !== 6)) throw new Error(`unsupported PNG: depth ${depth}, colour ${colour}, interlace ${interlace}`);
            channels = colour === 2 ? 3 : 4;
        } else if (type === "IDAT") idat.push(body);
        at += 12 + length;
    }
    const raw = zlib.inflateSync(Buffer.concat(idat));
    const stride = width * channels;
    const pixels = Buffer.alloc(height * stride);
    for (let y = 0; y < height; y++) {
        const filter = raw[y * (stride + 1)];
        const line = raw.subarray(y * (stride + 1) + 1, (y + 1) * (stride + 1));
        for (let i = 0; i < stride; i++) {
            const a = i >= channels ? pixels[y * stride + i - channels] : 0;
            const b = y > 0 ? pixels[(y - 1) * stride + i] : 0;
            const c = y > 0 && i >= channels ? pixels[(y - 1) * stride + i - channels] : 0;
            let v = line[i];
            if (filter === 1) v += a;
            else if (filter === 2) v += b;
            else if (filter === 3) v += (a + b) >> 1;
            else if (filter === 4) {
                const p = a + b - c;
                const pa = Math.abs(p - a);
                const pb = Math.abs(p - b);
                const pc = Math.abs(p - c);
                v += pa <= pb && pa <= pc ? a : pb <= pc ? b : c;
            }
            pixels[y * stride + i] = v & 0xff;
        }
    }
    return {
        width,
        height,
        rgb(x, y) {
            const o = y * stride + x * channels;
            return [pixels[o], pixels[o + 1], pixels[o + 2]];
        },
    };
}
