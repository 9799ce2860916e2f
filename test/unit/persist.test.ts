/**
 * host/persist.ts run for real in a private /etc (LocalRemote): what a user of a host would check
 * after an `up` is which files changed and how often systemd, udev and GRUB were made to re-read
 * them. Stand-ins for systemctl, udevadm and update-grub record their calls.
 */
import * as assert from "assert";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import type { PersistedFile } from "../../resources/host/drift";
import { managedHeader } from "../../resources/host/files";
import { persistFilesScript } from "../../resources/host/persist";
import { runScript } from "../../resources/host/remote";
import { LocalRemote } from "../helpers/localRemote";

const OWNER = "HugepagePool p (kvmtune/test)";
const unitText = (n: number) => managedHeader(OWNER) + `[Service]\nExecStart=/bin/true ${n}\n`;
const A = "/etc/systemd/system/kvmtune-a.service";
const B = "/etc/systemd/system/kvmtune-b.service";
const LINK_A = "/etc/systemd/system/sysinit.target.wants/kvmtune-a.service";
const RULE = "/etc/udev/rules.d/61-kvmtune-x.rules";
const GRUB = "/etc/default/grub.d/kvmtune-x.cfg";

describe("persistence files in one host step (host/persist.ts)", function () {
    this.timeout(30_000);
    let etc: string;
    let bin: string;
    let remote: LocalRemote;
    const onHost = (p: string) => path.join(etc, p.replace(/^\/etc\//, ""));
    const calls = () => fs.readFileSync(path.join(etc, "calls"), "utf8").split("\n").filter(Boolean);
    const resetCalls = () => fs.writeFileSync(path.join(etc, "calls"), "");

    beforeEach(() => {
        etc = fs.mkdtempSync(path.join(os.tmpdir(), "kvmtune-persist-etc-"));
        bin = fs.mkdtempSync(path.join(os.tmpdir(), "kvmtune-persist-bin-"));
        // Only the private /etc is writable inside the namespace: the stand-ins record their calls there.
        fs.writeFileSync(
            path.join(bin, "systemctl"),
            '#!/bin/sh\necho "systemctl $*" >> /etc/calls\ncase "$*" in "--no-reload enable "*) mkdir -p /etc/systemd/system/sysinit.target.wants && ln -sf ../$3 /etc/systemd/system/sysinit.target.wants/$3 ;; esac\n',
            { mode: 0o755 },
        );
        fs.writeFileSync(path.join(bin, "udevadm"), '#!/bin/sh\necho "udevadm $*" >> /etc/calls\n', { mode: 0o755 });
        fs.writeFileSync(path.join(bin, "update-grub"), '#!/bin/sh\necho "update-grub" >> /etc/calls\n[ ! -e /etc/grub-fails ]\n', { mode: 0o755 });
        remote = new LocalRemote({ etc, pathFirst: bin });
        resetCalls();
    });
    afterEach(() => {
        fs.rmSync(etc, { recursive: true, force: true });
        fs.rmSync(bin, { recursive: true, force: true });
    });

    const files = (n: number): PersistedFile[] => [
        { path: A, want: unitText(n), reload: "systemd" },
        { path: LINK_A, want: unitText(n), enables: "kvmtune-a.service" },
        { path: B, want: unitText(n), reload: "systemd" },
        { path: RULE, want: managedHeader(OWNER) + `KERNEL=="vdb", ATTR{queue/scheduler}="none"\n`, reload: "udev" },
    ];

    it("writes every file, enables the unit and reloads systemd and udev once each", async () => {
        await runScript(remote, persistFilesScript(files(1)));
        assert.strictEqual(fs.readFileSync(onHost(A), "utf8"), unitText(1));
        assert.strictEqual(fs.readFileSync(onHost(B), "utf8"), unitText(1));
        assert.ok(fs.lstatSync(onHost(LINK_A)).isSymbolicLink(), "kvmtune-a.service is not enabled");
        assert.deepStrictEqual(calls(), ["systemctl --no-reload enable kvmtune-a.service", "systemctl daemon-reload", "udevadm control --reload"]);
    });

    it("a second run with the same files writes nothing and wakes no daemon", async () => {
        await runScript(remote, persistFilesScript(files(1)));
        const before = fs.statSync(onHost(A)).ino;
        resetCalls();
        await runScript(remote, persistFilesScript(files(1)));
        assert.deepStrictEqual(calls(), []);
        assert.strictEqual(fs.statSync(onHost(A)).ino, before, "the unit was rewritten although it had not changed");
    });

    it("a unit edited by hand, or its mode changed, is written again, with one reload for both", async () => {
        await runScript(remote, persistFilesScript(files(1)));
        fs.appendFileSync(onHost(A), "# edited\n");
        fs.chmodSync(onHost(B), 0o666);
        resetCalls();
        await runScript(remote, persistFilesScript(files(1)));
        assert.strictEqual(fs.readFileSync(onHost(A), "utf8"), unitText(1));
        assert.strictEqual(fs.statSync(onHost(B)).mode & 0o777, 0o644);
        assert.deepStrictEqual(calls(), ["systemctl daemon-reload"]);
    });

    it("removes what kvmtune wrote and must go, disabling a unit first; a file without kvmtune's header stays", async () => {
        await runScript(remote, persistFilesScript(files(1)));
        const admins = "[Service]\nExecStart=/bin/false\n";
        fs.writeFileSync(onHost(B), admins);
        resetCalls();
        await runScript(remote, persistFilesScript([{ path: A, want: null, reload: "systemd" }, { path: B, want: null, reload: "systemd" }]));
        assert.ok(!fs.existsSync(onHost(A)), "kvmtune's unit is still there");
        assert.strictEqual(fs.readFileSync(onHost(B), "utf8"), admins);
        assert.deepStrictEqual(calls(), ["systemctl --no-reload disable kvmtune-a.service", "systemctl daemon-reload"]);
    });

    it("a failed bootloader regeneration fails the step and takes the fragment away, so the next run tries again", async () => {
        const fragment: PersistedFile[] = [{ path: GRUB, want: managedHeader(OWNER) + 'GRUB_CMDLINE_LINUX="$GRUB_CMDLINE_LINUX hugepages=1"\n', reload: "bootloader" }];
        fs.writeFileSync(path.join(etc, "grub-fails"), "");
        await assert.rejects(runScript(remote, persistFilesScript(fragment)));
        assert.ok(!fs.existsSync(onHost(GRUB)), "the fragment stayed although GRUB's configuration was not regenerated");
        fs.rmSync(path.join(etc, "grub-fails"));
        resetCalls();
        await runScript(remote, persistFilesScript(fragment));
        assert.ok(fs.existsSync(onHost(GRUB)));
        assert.deepStrictEqual(calls(), ["update-grub"]);
    });
});
