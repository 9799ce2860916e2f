/**
 * Writes a host's topology picture after a deployment to `<dir>/<host>.svg`, from what the host's
 * resources read back (see topologyFromApplied): no connection of its own.
 */
import * as fs from "fs";
import * as path from "path";
import { Topology } from "./topology";
import { renderTopologySvg } from "./topologySvg";

export function writeTopology(topology: Topology, dir: string, hostName: string): string {
    const file = path.resolve(dir, `${hostName}.svg`);
    fs.mkdirSync(path.dirname(file), { recursive: true });
    const tmp = `${file}.tmp-${process.pid}`;
    fs.writeFileSync(tmp, renderTopologySvg(topology));
    fs.renameSync(tmp, file);
    return file;
}
