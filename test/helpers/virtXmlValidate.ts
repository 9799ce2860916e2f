/** libvirt's own schema check: `virt-xml-validate FILE KIND` (libvirt-clients), on a temp file. */
import { spawnSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";

/** Validates a document against libvirt's schema of that kind (it cannot always guess it: name it). */
export function virtXmlValidate(xml: string, kind: "domain" | "network"): { ok: boolean; out: string } {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "kvmtune-xml-"));
    const file = path.join(dir, `${kind}.xml`);
    fs.writeFileSync(file, xml);
    try {
        const r = spawnSync("virt-xml-validate", [file, kind], { encoding: "utf8" });
        if (r.error) throw r.error;
        return { ok: r.status === 0, out: `${r.stdout}${r.stderr}` };
    } finally {
        fs.rmSync(dir, { recursive: true, force: true });
    }
}
