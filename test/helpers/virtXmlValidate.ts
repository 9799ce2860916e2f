/** libvirt's own schema check of a document kvmtune builds: `virt-xml-validate FILE SCHEMA`. */
import { spawnSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";

/** `schema` must be named: virt-xml-validate cannot always guess it from the root element. */
export function virtXmlValidate(xml: string, schema: "domain" | "network"): { ok: boolean; out: string } {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "kvmtune-xml-"));
    const file = path.join(dir, `${schema}.xml`);
    fs.writeFileSync(file, xml);
    try {
        const r = spawnSync("virt-xml-validate", [file, schema], { encoding: "utf8" });
        if (r.error) throw r.error;
        return { ok: r.status === 0, out: `${r.stdout}${r.stderr}` };
    } finally {
        fs.rmSync(dir, { recursive: true, force: true });
    }
}
