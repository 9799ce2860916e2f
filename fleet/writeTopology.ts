/**
 * Writes a host's topology picture after a deployment: read live from the host (so it shows what
 * ended up where, not what was asked), rendered to `<dir>/<host>.svg`.
 */
import * as fs from "fs";
import * as path from "path";
import { connectionSchema } from "../resources/host/connection";
import { closeHost, remoteFor } from "../resources/host/sshPool";
import { readTopology } from "./topology";
import { renderTopologySvg } from "./topologySvg";

export async function writeTopology(connection: Record<string, unknown>, dir: string, hostName: string): Promise<string> {
    const parsed = connectionSchema.parse(connection);
    let topology;
    try {
        topology = await readTopology(remoteFor(parsed));
    } finally {
        // The program process must be able to exit once the engine is done with it.
        closeHost(parsed);
    }
    const file = path.resolve(dir, `${hostName}.svg`);
    fs.mkdirSync(path.dirname(file), { recursive: true });
    const tmp = `${file}.tmp-${process.pid}`;
    fs.writeFileSync(tmp, renderTopologySvg(topology));
    fs.renameSync(tmp, file);
    return file;
}
