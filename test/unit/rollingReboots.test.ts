import * as assert from "assert";
import type * as pulumi from "@pulumi/pulumi";
import { predecessorOf, RollingReboots, rollingOrder } from "../../fleet/rollingReboots";

const HOSTS = ["kvm1", "kvm2", "kvm3", "kvm4", "kvm5"];

describe("rolling reboots", () => {
    it("maxDown 1: one chain, each host after the one before it", () => {
        assert.deepStrictEqual(rollingOrder(HOSTS, 1), [
            ["kvm1", undefined],
            ["kvm2", "kvm1"],
            ["kvm3", "kvm2"],
            ["kvm4", "kvm3"],
            ["kvm5", "kvm4"],
        ]);
    });

    it("maxDown 2: two chains, the first two start together", () => {
        assert.deepStrictEqual(rollingOrder(HOSTS, 2), [
            ["kvm1", undefined],
            ["kvm2", undefined],
            ["kvm3", "kvm1"],
            ["kvm4", "kvm2"],
            ["kvm5", "kvm3"],
        ]);
    });

    it("maxDown at least the fleet: no host waits", () => {
        assert.ok(rollingOrder(HOSTS, 5).every(([, after]) => after === undefined));
    });

    it("refuses a maxDown below 1 or not whole", () => {
        assert.throws(() => predecessorOf(0, 0), /maxDown: got 0; must be a whole number of at least 1/);
        assert.throws(() => new RollingReboots(1.5), /maxDown: got 1\.5/);
    });

    it("hands each declared reboot the resource it must wait for, hosts without a reboot taking no place", () => {
        const rolling = new RollingReboots(2);
        const declared: Record<string, pulumi.Resource[]> = {};
        // kvm3 has no reboot (no kernelCmdline): kvm4 waits for kvm1, kvm5 for kvm2.
        for (const name of HOSTS) {
            if (name === "kvm3") continue;
            declared[name] = rolling.next();
            rolling.add({ name } as unknown as pulumi.Resource);
        }
        const names = Object.fromEntries(Object.entries(declared).map(([n, deps]) => [n, deps.map((d) => (d as unknown as { name: string }).name)]));
        assert.deepStrictEqual(names, { kvm1: [], kvm2: [], kvm4: ["kvm1"], kvm5: ["kvm2"] });
    });
});
