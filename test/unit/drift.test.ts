/**
 * What refresh calls drift beside a knob's value (resources/host/drift.ts), and how diff treats it
 * (resources/policy.ts): any drift is an update, so `up --refresh` puts the files back.
 */
import * as assert from "assert";
import { claimPath } from "../../resources/host/claims";
import { persistedDrift, persistedPaths } from "../../resources/host/drift";
import { managedHeader } from "../../resources/host/files";
import { provider as elevator } from "../../resources/providers/blockElevator";
import { diskClaim } from "../../resources/providers/blockElevator";
import { goodConnection } from "../helpers/fixtures";

const OWNER = "BlockElevator db (shop/prod)";
const RULE = "/etc/udev/rules.d/61-kvmtune-elevator-vdb.rules";
const ruleText = managedHeader(OWNER) + 'ACTION=="add|change", KERNEL=="vdb", ATTR{queue/scheduler}="mq-deadline"\n';

describe("drift of what kvmtune keeps on a host", () => {
    const claim = diskClaim(OWNER, "vdb");
    const claimText = managedHeader(OWNER) + "knob=block-elevator-vdb\n";

    it("finds nothing when the files and the claim are as written (the dump drops trailing newlines)", () => {
        const read = new Map([
            [RULE, ruleText.replace(/\n+$/, "")],
            [claimPath(claim.knob), claimText],
        ]);
        assert.deepStrictEqual(persistedDrift(read, [{ path: RULE, want: ruleText }], [claim]), []);
    });

    it("names each file missing, changed or left over, and a claim missing or held by another owner", () => {
        const other = managedHeader("BlockElevator db (shop/staging)");
        assert.deepStrictEqual(
            persistedDrift(
                new Map([
                    [RULE, ruleText.replace("mq-deadline", "bfq")],
                    ["/etc/left.conf", "x"],
                ]),
                [
                    { path: RULE, want: ruleText },
                    { path: "/etc/gone.conf", want: "y" },
                    { path: "/etc/left.conf", want: null },
                    { path: "/etc/absent.conf", want: null },
                ],
                [claim],
            ),
            [
                `${RULE} was changed`,
                "/etc/gone.conf is missing",
                "/etc/left.conf is left over",
                "the ownership claim /etc/kvmtune/claims/block-elevator-vdb is missing (host reinstalled, or removed by hand)",
            ],
        );
        assert.deepStrictEqual(persistedDrift(new Map([[claimPath(claim.knob), other]]), [], [claim]), [
            `the ownership claim /etc/kvmtune/claims/block-elevator-vdb names another owner: "# Managed by kvmtune for BlockElevator db (shop/staging)."`,
        ]);
    });

    it("reads each path literally: a systemd escape in a unit name is not a glob or shell escape", () => {
        assert.deepStrictEqual(persistedPaths([{ path: "/etc/systemd/system/mnt-huge\\x2d1G.mount", want: "" }], [claim]), [
            "/etc/systemd/system/mnt-huge\\\\x2d1G.mount",
            "/etc/kvmtune/claims/block-elevator-vdb",
        ]);
    });

    it("diff makes any drift an update, and none is no change", async () => {
        const inputs = { connection: goodConnection(), device: "vdb", scheduler: "mq-deadline", tunables: {}, persist: true, owner: OWNER };
        assert.strictEqual((await elevator.diff("h/vdb", { ...inputs, drift: [] }, inputs)).changes, false);
        const d = await elevator.diff("h/vdb", { ...inputs, drift: [`${RULE} is missing`] }, inputs);
        assert.strictEqual(d.changes, true);
        assert.deepStrictEqual(d.replaces, [], "drift is put back in place, not by replacing");
    });
});
