/**
 * Renders an SVG file in headless Chromium (Debian's `chromium` package) to a PNG screenshot, the
 * way a person would look at it in a browser.
 */
import { spawnSync } from "child_process";
import * as fs from "fs";

export function chromiumBinary(): string {
    for (const bin of ["/usr/bin/chromium", "/usr/bin/chromium-browser"]) if (fs.existsSync(bin)) return bin;
    throw new Error("headless Chromium is not installed: apt-get install chromium (.ci/run installs it)");
}

/** Screenshots `svgFile` at its own size into `pngFile`. */
export function screenshotSvg(svgFile: string, pngFile: string, width: number, height: number): void {
    fs.rmSync(pngFile, { force: true });
    const r = spawnSync(
        chromiumBinary(),
        ["--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", `--window-size=${width},${height}`, `--screenshot=${pngFile}`, `file://${svgFile}`],
        { encoding: "utf8", timeout: 120_000, env: { ...process.env, HOME: fs.mkdtempSync("/tmp/kvmtune-chromium-") } },
    );
    if (!fs.existsSync(pngFile)) throw new Error(`chromium wrote no screenshot (exit ${r.status}): ${r.stderr.slice(-600)}`);
}

/** The SVG's own width and height, from its root element. */
export function svgSize(svg: string): { width: number; height: number } {
    const m = /<svg\b[^>]*\bwidth='(\d+)'[^>]*\bheight='(\d+)'/.exec(svg);
    if (!m) throw new Error("no width/height on the SVG root");
    return { width: Number(m[1]), height: Number(m[2]) };
}

/**
 * The colour a screenshot shows inside each CPU cell of a topology picture, by CPU number. Each
 * cell is a rect followed by its "CPU n" label; the point looked at is inside the cell, clear of text.
 */
export function cpuCellColours(svg: string, image: { rgb(x: number, y: number): [number, number, number] }): Map<number, { drawn: string; declared: string }> {
    const cells = new Map<number, { drawn: string; declared: string }>();
    for (const m of svg.matchAll(/<rect x='(\d+)' y='(\d+)' width='(\d+)' height='\d+' fill='(#[0-9a-f]{6})'[^>]*\/>\n<text[^>]*>CPU (\d+)<\/text>/g)) {
        const [x, y, w] = [Number(m[1]), Number(m[2]), Number(m[3])];
        const drawn = "#" + image.rgb(x + w - 8, y + 8).map((v) => v.toString(16).padStart(2, "0")).join("");
        cells.set(Number(m[5]), { drawn, declared: m[4] });
    }
    return cells;
}
