/**
 * The operator's plan (resources/plan.ts) from a recorded `pulumi preview --json` document
 * (test/unit/fixtures/preview-lab.json, in the engine's format: steps with op, urn, old and new
 * state with inputs and parent, replaceReasons; no diffReasons, which the engine does not get from
 * a dynamic provider): per host, the way each change is
 * applied as the resources' changePlan says, and the summary an operator says yes to.
 */
import * as assert from "assert";
import { execFileSync, spawnSync } from "child_process";
import * as fs from "fs";
import * as path from "path";
import { actionLabel, planFromPreview, PreviewDigest, renderPlan } from "../../resources/plan";
import { KIND_WORDS } from "../../resources/policy";

const repo = path.resolve(__dirname, "..", "..", "..");
const fixture = path.join(repo, "test", "unit", "fixtures", "preview-lab.json");
const recorded = (): PreviewDigest => JSON.parse(fs.readFileSync(fixture, "utf8"));

describe("the plan from a preview", function () {
    this.timeout(60_000); // the CLI case starts node four times
    // scratch-disk is declared beside lab1's KvmHost, not in it: same address, same host.
    it("shows what a refresh found off on a host (drift) as put back live, with what drifted", () => {
        const urn = "urn:pulumi:lab::kvmtune::kvmtune:index:KvmHost$pulumi-nodejs:dynamic/kvmtune:BlockElevator::lab1-elevator-vdb";
        const inputs = { connection: { host: "127.0.0.1", port: 2201 }, device: "vdb", scheduler: "mq-deadline" };
        const state = { type: "pulumi-nodejs:dynamic/kvmtune:BlockElevator", parent: "urn:pulumi:lab::kvmtune::kvmtune:index:KvmHost::lab1", inputs };
        const plan = planFromPreview({
            steps: [
                {
                    op: "update",
                    urn,
                    oldState: { ...state, outputs: { ...inputs, drift: ["/etc/udev/rules.d/61-kvmtune-elevator-vdb.rules is missing"] } },
                    newState: state,
                    diffReasons: [],
                },
            ],
        });
        assert.deepStrictEqual(plan.hosts[0].items, [
            { type: "BlockElevator", resource: "lab1-elevator-vdb", action: "live", fields: ["put back: /etc/udev/rules.d/61-kvmtune-elevator-vdb.rules is missing"] },
        ]);
        assert.match(renderPlan(plan), /live\s+BlockElevator lab1-elevator-vdb: put back: \/etc\/udev\/rules\.d\/61-kvmtune-elevator-vdb\.rules is missing\n/);
    });

    it("groups kvmtune's changes by host, each the way its changePlan says", () => {
        const plan = planFromPreview(recorded());
        assert.deepStrictEqual(
            plan.hosts.map((h) => ({ host: h.host, address: h.address, items: h.items.map((i) => [i.action, i.resource, i.guest ?? "", i.fields.join(",")]) })),
            [
                {
                    host: "10.0.0.7:22",
                    address: undefined,
                    items: [
                        ["live", "db-disk", "", "scheduler"],
                        ["state", "db-disk", "", "connection"],
                    ],
                },
                {
                    host: "host not known (its connection is secret or computed)",
                    address: undefined,
                    items: [["update", "pool", "", ""]],
                },
                {
                    host: "lab1",
                    address: "127.0.0.1:2222",
                    items: [
                        ["restart", "lab1-guest-demo-db", "demo-db", "memoryMiB"],
                        ["live", "lab1-elevator-vdb", "", "tunables"],
                        ["live", "lab1-guest-demo-db", "demo-db", "cpuPins"],
                        ["live", "scratch-disk", "", "nrRequests"],
                    ],
                },
                {
                    host: "lab2",
                    address: "127.0.0.1:2223",
                    items: [
                        ["replace", "lab2-hugepages-2M", "", "pageSize"],
                        ["delete", "lab2-sriov-enp33s0", "", ""],
                        ["create", "lab2-elevator-vdc", "", ""],
                        ["update", "lab2-elevator-vdb", "", ""],
                    ],
                },
            ],
        );
        assert.deepStrictEqual(plan.errors, []);
    });

    it("renders a checklist per host and what the operator says yes to", () => {
        assert.strictEqual(
            renderPlan(planFromPreview(recorded()), "lab"),
            [
                "kvmtune plan for stack lab (preview: 2 create, 1 delete, 1 replace, 14 same, 7 update)",
                "",
                "10.0.0.7:22",
                "  live           BlockElevator db-disk: scheduler",
                "  state only     BlockElevator db-disk: connection",
                "",
                "host not known (its connection is secret or computed)",
                "  update         HugepagePool pool (how: not known before apply, an input is computed)",
                "",
                "lab1 (127.0.0.1:2222)",
                "  guest restart  guest demo-db (NumaPinnedGuest lab1-guest-demo-db): memoryMiB",
                "  live           BlockElevator lab1-elevator-vdb: tunables",
                "  live           guest demo-db (NumaPinnedGuest lab1-guest-demo-db): cpuPins",
                "  live           BlockElevator scratch-disk: nrRequests",
                "",
                "lab2 (127.0.0.1:2223)",
                "  replace        HugepagePool lab2-hugepages-2M: pageSize",
                "  delete         SriovNic lab2-sriov-enp33s0",
                "  create         BlockElevator lab2-elevator-vdc",
                "  update         BlockElevator lab2-elevator-vdb (no input changed: the host differs from state and is put back)",
                "",
                "Guest restarts: lab1: demo-db.",
                "Host reboots: none.",
                "Replaced: lab2: lab2-hugepages-2M.",
                "",
            ].join("\n"),
        );
    });

    it("reads every kind of change by the policy's own words, host reboots included", () => {
        for (const kind of Object.keys(KIND_WORDS) as Array<keyof typeof KIND_WORDS>) {
            const step = {
                op: "update",
                urn: "urn:pulumi:s::p::kvmtune:index:KvmHost$pulumi-nodejs:dynamic/kvmtune:HugepagePool::h1-pool",
                newState: {
                    type: "pulumi-nodejs:dynamic/kvmtune:HugepagePool",
                    parent: "urn:pulumi:s::p::kvmtune:index:KvmHost::h1",
                    inputs: { changePlan: { nodes: KIND_WORDS[kind] } },
                },
            };
            const [item] = planFromPreview({ steps: [step] }).hosts[0].items;
            assert.strictEqual(item.action, kind);
            assert.ok(KIND_WORDS[kind].startsWith(actionLabel(kind)), `${kind}: ${actionLabel(kind)}`);
        }
        const reboot = renderPlan(
            planFromPreview({
                steps: [
                    {
                        op: "update",
                        urn: "urn:pulumi:s::p::kvmtune:index:KvmHost$pulumi-nodejs:dynamic/kvmtune:HugepagePool::h1-pool",
                        newState: { type: "pulumi-nodejs:dynamic/kvmtune:HugepagePool", parent: "urn:pulumi:s::p::kvmtune:index:KvmHost::h1", inputs: { changePlan: { nodes: KIND_WORDS.reboot } } },
                    },
                ],
            }),
        );
        assert.match(reboot, /^  host reboot  HugepagePool h1-pool: nodes$/m);
        assert.match(reboot, /^Host reboots: h1: h1-pool \(nodes\)\.$/m);
    });

    it("says so when nothing changes, and shows a failed preview's errors", () => {
        assert.match(renderPlan(planFromPreview({ steps: [], changeSummary: { same: 9 } })), /\(preview: 9 same\)\n\nNo changes on any host\.\n$/);
        const failed = planFromPreview({ diagnostics: [{ severity: "error", message: "error: kvmtune:hosts[0].port: got 0\n" }] });
        assert.match(renderPlan(failed), /The preview failed; `up` would stop at these errors:\n  error: kvmtune:hosts\[0\]\.port: got 0\n$/);
        assert.doesNotMatch(renderPlan(failed), /No changes/);
    });

    it("kvmtune-plan prints it from a file or standard input, and refuses what is not a preview", () => {
        const cli = path.join(repo, "bin", "resources", "planCli.js");
        const fromFile = execFileSync(process.execPath, [cli, "--stack", "lab", fixture], { encoding: "utf8" });
        assert.strictEqual(fromFile, renderPlan(planFromPreview(recorded()), "lab"));
        const fromStdin = execFileSync(process.execPath, [cli], { input: fs.readFileSync(fixture), encoding: "utf8" });
        assert.match(fromStdin, /^Guest restarts: lab1: demo-db\.$/m);
        const notJson = spawnSync(process.execPath, [cli], { input: "Previewing update (lab):", encoding: "utf8" });
        assert.strictEqual(notJson.status, 1);
        assert.match(notJson.stderr, /is not JSON .*give it the output of `pulumi preview --json`/);
        const failed = spawnSync(process.execPath, [cli], { input: JSON.stringify({ steps: [], diagnostics: [{ severity: "error", message: "boom" }] }), encoding: "utf8" });
        assert.strictEqual(failed.status, 2);
    });
});
