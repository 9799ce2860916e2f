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
