/**
 * The fleet from stack config: every mistake reported at its config path before any resource is
 * declared, tuning items judged by the resources' own schemas, and the lab tuning valid.
 */
import * as assert from "assert";
import { maxDownOf, planFleet } from "../../fleet/config";
import { labReboots, labTuning } from "../../fleet/labTuning";
import { throwawayKey } from "../helpers/fixtures";

const key = throwawayKey();
const host = (over: Record<string, unknown> = {}) => ({ name: "kvm1", host: "10.0.0.5", privateKey: key.privateKey, hostKey: key.fingerprint, ...over });

function problems(raw: unknown): string[] {
    try {
        planFleet(raw);
    } catch (e) {
        return (e as Error).message.split("\n").slice(1).map((l) => l.trim());
    }
    return [];
}

describe("fleet config", () => {
    it("plans hosts with their connection and tuning, the shared tuning where a host has none", () => {
        const plan = planFleet({ hosts: [host(), host({ name: "kvm2", tuning: { elevators: [{ device: "sda", scheduler: "none" }] } })], tuning: labTuning });
        assert.deepStrictEqual(plan.map((h) => h.name), ["kvm1", "kvm2"]);
        assert.deepStrictEqual(plan[0].tuning, labTuning);
        assert.deepStrictEqual(plan[1].tuning, { elevators: [{ device: "sda", scheduler: "none" }] });
        assert.deepStrictEqual(plan[0].connection, { host: "10.0.0.5", port: 22, user: "root", privateKey: key.privateKey, hostKey: key.fingerprint, sudo: false });
    });

    it("names the config path, the value and what is allowed for tuning items", () => {
        const got = problems({
            hosts: [
                host({
                    tuning: {
                        guests: [{ name: "demo db", vcpus: 0, memoryMiB: 64, numaNode: 1 }],
                        elevators: [{ device: "vdb", scheduler: "cfq2" }],
                    },
                }),
            ],
        });
        assert.ok(got.some((l) => /^kvmtune:hosts\[0\]\.tuning\.guests\[0\]\.name: got "demo db"; /.test(l)), got.join("\n"));
        assert.ok(got.some((l) => /^kvmtune:hosts\[0\]\.tuning\.guests\[0\]\.vcpus: got 0; /.test(l)), got.join("\n"));
        assert.ok(got.some((l) => /^kvmtune:hosts\[0\]\.tuning\.elevators\[0\]\.scheduler: got "cfq2"; .*mq-deadline/.test(l)), got.join("\n"));
    });

    it("names unknown kinds of tuning without echoing the whole tuning", () => {
        assert.deepStrictEqual(problems({ hosts: [host({ tuning: { gpus: [] } })] }), ["kvmtune:hosts[0].tuning: unknown field(s) gpus"]);
    });

    it("reports a shared tuning's problem once, at kvmtune:tuning", () => {
        const got = problems({ hosts: [host(), host({ name: "kvm2" })], tuning: { hugepagePools: [{ pageSize: "4M", total: 8 }] } });
        assert.deepStrictEqual(got.filter((l) => l.includes("pageSize")).length, 1, got.join("\n"));
        assert.match(got.find((l) => l.includes("pageSize"))!, /^kvmtune:tuning\.hugepagePools\[0\]\.pageSize: got "4M"/);
    });

    it("refuses two hosts of one name, a connection inside a tuning item, and hosts without a pinned key", () => {
        const got = problems({ hosts: [host({ tuning: { elevators: [{ device: "vdb", scheduler: "none", connection: {} }] } }), host()] });
        assert.ok(got.some((l) => l.startsWith("kvmtune:hosts[1].name: got \"kvm1\"")), got.join("\n"));
        assert.ok(got.some((l) => l.startsWith("kvmtune:hosts[0].tuning.elevators[0].connection: the host's connection is used")), got.join("\n"));
        assert.ok(problems({ hosts: [host({ hostKey: "" })] }).some((l) => l.startsWith("kvmtune:hosts[0].hostKey")));
    });

    it("logs in with exactly one of privateKey, privateKeyPath and agent: true; with the agent no key is planned", () => {
        const agent = { name: "kvm1", host: "10.0.0.5", agent: true, hostKey: key.fingerprint };
        assert.deepStrictEqual(planFleet({ hosts: [agent] })[0].connection, { host: "10.0.0.5", port: 22, user: "root", agent: true, hostKey: key.fingerprint, sudo: false });
        const one = "set exactly one of privateKey (a secret), privateKeyPath and agent: true";
        assert.deepStrictEqual(problems({ hosts: [{ ...agent, privateKeyPath: "/k" }] }), [`kvmtune:hosts[0].privateKey: got nothing; ${one}`]);
        assert.deepStrictEqual(problems({ hosts: [{ ...agent, agent: undefined }] }), [`kvmtune:hosts[0].privateKey: got nothing; ${one}`]);
        assert.deepStrictEqual(problems({ hosts: [{ ...agent, privateKey: key.privateKey }] }), [`kvmtune:hosts[0].privateKey: got a value; ${one}`]);
        assert.ok(problems({ hosts: [{ ...agent, agent: "yes" }] }).some((l) => l.startsWith('kvmtune:hosts[0].agent: got "yes"; must be true (or left out)')));
    });

    it("never echoes a private key in a config error", () => {
        const got = problems({ hosts: [host({ privateKey: key.privateKey, privateKeyPath: "/k", port: "22" })] }).join("\n");
        assert.ok(got.length > 0);
        assert.ok(!got.includes(key.privateKey.split("\n")[1]), got);
    });

    it("accepts the lab tuning on a lab-shaped host", () => {
        assert.deepStrictEqual(problems({ hosts: [host({ port: 2201 })], tuning: labTuning }), []);
    });
});

describe("fleet config: kernel command line and rolling reboots", () => {
    it("checks a host's kernelCmdline with KernelCmdline's own schema, at its config path", () => {
        const got = problems({ hosts: [host({ tuning: { kernelCmdline: { iommu: "yes" } } })] });
        assert.ok(got.some((l) => /^kvmtune:hosts\[0\]\.tuning\.kernelCmdline\.iommu: got "yes"; /.test(l)), got.join("\n"));
        const extra = problems({ hosts: [host()], tuning: { kernelCmdline: { extra: ["root=/dev/sdb"] } } });
        assert.ok(extra.some((l) => /^kvmtune:tuning\.kernelCmdline\.extra\[0\]: got "root=\/dev\/sdb"; .*kvmtune does not own root/.test(l)), extra.join("\n"));
    });

    it("gives kvmtune:reboots to hosts that have a kernelCmdline, defaults filled in; none without it", () => {
        const raw = {
            hosts: [host({ tuning: { kernelCmdline: { iommu: "pt" } } }), host({ name: "kvm2", tuning: { elevators: [{ device: "sda", scheduler: "none" }] } })],
            reboots: { policy: "whenRequired", maxDown: 2 },
        };
        const plan = planFleet(raw);
        assert.deepStrictEqual(plan[0].reboot, { policy: "whenRequired", guests: "refuse", timeoutSeconds: 600, guestShutdownTimeoutSeconds: 120 });
        assert.strictEqual(plan[1].reboot, undefined);
        assert.strictEqual(maxDownOf(raw), 2);
        // Without kvmtune:reboots nothing reboots, kernelCmdline or not.
        assert.strictEqual(planFleet({ hosts: raw.hosts }).some((h) => h.reboot), false);
        assert.strictEqual(maxDownOf({ hosts: raw.hosts }), 1);
    });

    it("names the config path, value and what is allowed for bad reboots", () => {
        const got = problems({ hosts: [host()], reboots: { policy: "sometimes", maxDown: 0, timeoutSeconds: 5 } });
        assert.ok(got.some((l) => /^kvmtune:reboots\.policy: got "sometimes"; .*"never".*"whenRequired"/.test(l)), got.join("\n"));
        assert.ok(got.some((l) => /^kvmtune:reboots\.maxDown: got 0; must be at least 1 host at a time/.test(l)), got.join("\n"));
        assert.ok(got.some((l) => /^kvmtune:reboots\.timeoutSeconds: got 5; must be at least 60 s/.test(l)), got.join("\n"));
    });

    it("reboots a lab host for the lab's kernel command line only with kvmtune:reboots (the lab stack's labReboots)", () => {
        assert.strictEqual(planFleet({ hosts: [host()], tuning: labTuning }).some((h) => h.reboot), false);
        const planned = planFleet({ hosts: [host(), host({ name: "kvm2", port: 2202 })], tuning: labTuning, reboots: labReboots });
        assert.deepStrictEqual(planned.map((h) => h.reboot?.policy), ["whenRequired", "whenRequired"]);
        assert.strictEqual(maxDownOf({ hosts: [host()], tuning: labTuning, reboots: labReboots }), 1);
    });
});
