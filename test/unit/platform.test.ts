/**
 * The platform layer (resources/host/platform.ts, tuned.ts, platformSteps.ts): detection parsed
 * from recorded output of three kinds of host (test/helpers/recordedPlatforms.ts: RECORDED, not
 * lab-proven for Debian 13 and the RHEL family), tuned's shipped profiles read as tuned reads them,
 * and the shell steps run for real in a private /etc with stand-ins for the tools.
 */
import * as assert from "assert";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import type { PersistedFile } from "../../resources/host/drift";
import { persistedDrift } from "../../resources/host/drift";
import { FACTS_SCRIPT, libvirtActiveOf, parseFacts } from "../../resources/host/facts";
import { atomicWriteScript, managedHeader } from "../../resources/host/files";
import { persistFilesScript } from "../../resources/host/persist";
import { beforeLibvirtLine, libvirtUnitsBefore, networkManagerUnmanagedFile, tunedDevicesMatch, tunedSettingsOf } from "../../resources/host/platform";
import { runScript } from "../../resources/host/remote";
import { parseDump } from "../../resources/host/sysfs";
import { knobOf, parseTunedProfile, tunedSettings } from "../../resources/host/tuned";
import { LocalRemote } from "../helpers/localRemote";
import { C, DEBIAN12_MONOLITHIC, DEBIAN13_MODULAR, F, isActive, L, platformOf, RHEL9_MODULAR, tunedProfile } from "../helpers/recordedPlatforms";

const OWNER = "SriovNic pf (kvmtune/test)";

describe("platform detection from recorded output (host/platform.ts)", () => {
    it("Debian 12, the lab today: update-grub, monolithic libvirtd, no NetworkManager, no tuned, no SELinux", () => {
        assert.deepStrictEqual(platformOf(DEBIAN12_MONOLITHIC), {
            bootloader: "update-grub",
            libvirt: { layout: "monolithic", beforeUnits: ["libvirtd.service", "libvirt-guests.service"] },
            network: { networkManager: false },
            tuned: { active: false, profile: null, mode: null, settings: [] },
            selinux: { mode: "disabled", configured: null, restorecon: false },
        });
    });

    it("Debian 13 (recorded): modular libvirt whose idle virtqemud exited, NetworkManager, tuned virtual-host, SELinux enforcing", () => {
        const p = platformOf(DEBIAN13_MODULAR);
        assert.strictEqual(p.bootloader, "update-grub");
        // virtqemud.service is inactive (idle timeout); its socket listening is what makes the layout modular.
        assert.deepStrictEqual(p.libvirt, { layout: "modular", beforeUnits: ["virtqemud.service", "libvirt-guests.service"] });
        assert.deepStrictEqual(p.network, { networkManager: true });
        assert.deepStrictEqual(p.selinux, { mode: "enforcing", configured: "enforcing", restorecon: true });
        // virtual-host includes throughput-performance, whose [disk] readahead=>4096 is BlockElevator's readAheadKb.
        assert.deepStrictEqual(p.tuned, {
            active: true,
            profile: "virtual-host",
            mode: "manual",
            settings: [
                { knob: "BlockElevator.readAheadKb", profile: "throughput-performance", section: "disk", option: "readahead", value: ">4096", devices: "*", conditional: false },
            ],
        });
    });

    it("RHEL family (recorded): grubby, modular with libvirtd masked, tuned's pre-2.23 profile folder, SELinux targeted", () => {
        const p = platformOf(RHEL9_MODULAR);
        assert.strictEqual(p.bootloader, "grubby");
        assert.strictEqual(p.libvirt.layout, "modular");
        assert.deepStrictEqual(p.selinux, { mode: "enforcing", configured: "enforcing", restorecon: true });
        assert.strictEqual(p.tuned.mode, "auto");
        assert.deepStrictEqual(p.tuned.settings.map((s) => `${s.knob} ${s.option}=${s.value}`), ["BlockElevator.readAheadKb readahead=>4096"]);
    });

    it("libvirt counts as running when only a modular daemon's socket listens (the daemon exits when idle)", () => {
        // The old check (`systemctl is-active libvirtd || systemctl is-active virtqemud`) said no here.
        const dump = (states: Record<string, string>) => parseDump(isActive(states));
        assert.strictEqual(libvirtActiveOf(dump({ "virtqemud.socket": "active" })), true);
        assert.strictEqual(libvirtActiveOf(dump({ "virtnetworkd.socket": "active" })), true);
        assert.strictEqual(libvirtActiveOf(dump({ "libvirtd.service": "active" })), true);
        assert.strictEqual(libvirtActiveOf(dump({ "NetworkManager.service": "active", "tuned.service": "active" })), false);
    });

    it("tells the layout from enablement links when no daemon runs, and a masked libvirtd is not the layout", () => {
        const W = "/etc/systemd/system";
        const stopped = isActive({});
        assert.strictEqual(platformOf(stopped + L(`${W}/sockets.target.wants/virtqemud.socket`, "/usr/lib/systemd/system/virtqemud.socket")).libvirt.layout, "modular");
        assert.strictEqual(platformOf(stopped + L(`${W}/multi-user.target.wants/libvirtd.service`, "/usr/lib/systemd/system/libvirtd.service")).libvirt.layout, "monolithic");
        // A stale wants link of a masked libvirtd does not make the host monolithic.
        const masked = L(`${W}/multi-user.target.wants/libvirtd.service`, "/usr/lib/systemd/system/libvirtd.service") + L(`${W}/libvirtd.service`, "/dev/null");
        assert.strictEqual(platformOf(stopped + masked).libvirt.layout, null);
        // Both running: libvirt's clients use the per-driver daemon's socket when it exists.
        assert.strictEqual(platformOf(isActive({ "libvirtd.service": "active", "virtqemud.socket": "active" })).libvirt.layout, "modular");
    });

    it("a host without systemd (no line per unit) has no layout, no NetworkManager and no tuned running, and both layouts' units to order before", () => {
        const p = platformOf(C("services", "System has not been booted with systemd as init system (PID 1).", 1) + F("/etc/tuned/active_profile", "virtual-host"));
        assert.strictEqual(p.libvirt.layout, null);
        assert.deepStrictEqual(p.libvirt.beforeUnits, ["libvirtd.service", "virtqemud.service", "libvirt-guests.service"]);
        assert.strictEqual(p.network.networkManager, false);
        assert.strictEqual(p.tuned.active, false);
        // The profile is named, but its file is not installed: nothing known that it sets.
        assert.deepStrictEqual(p.tuned.settings, []);
    });

    it("systemctl output without one line per unit is not guessed at", () => {
        // One line for eight units (a systemctl that printed only what it knew): which unit it is for is unknown.
        const p = platformOf(C("services", "active"));
        assert.strictEqual(p.libvirt.layout, null);
        assert.strictEqual(libvirtActiveOf(parseDump(C("services", "active"))), false);
    });

    it("SELinux permissive now, disabled in the config for the next boot", () => {
        const p = platformOf(F("/sys/fs/selinux/enforce", "0") + F("/etc/selinux/config", "SELINUX=disabled\nSELINUXTYPE=default"));
        assert.deepStrictEqual(p.selinux, { mode: "permissive", configured: "disabled", restorecon: false });
    });

    it("a stopped tuned sets nothing kvmtune must worry about, whatever its profile says", () => {
        const p = platformOf(DEBIAN13_MODULAR);
        assert.strictEqual(tunedSettingsOf(p, "BlockElevator.readAheadKb").length, 1);
        assert.strictEqual(tunedSettingsOf(p, "BlockElevator.scheduler").length, 0);
        assert.deepStrictEqual(tunedSettingsOf({ tuned: { ...p.tuned, active: false } }, "BlockElevator.readAheadKb"), []);
    });

    it("the facts read carries the platform, in the same one script", () => {
        for (const part of ["/etc/tuned/active_profile", "/sys/fs/selinux/enforce", "systemctl is-active libvirtd.service", "command -v update-grub", "*.wants/virtqemud.*"]) {
            assert.ok(FACTS_SCRIPT.includes(part), `the facts script does not read ${part}`);
        }
        const osrelease = F("/proc/sys/kernel/osrelease", "6.12.38+deb13-amd64");
        const facts = parseFacts(parseDump(osrelease + DEBIAN13_MODULAR));
        assert.strictEqual(facts.platform.libvirt.layout, "modular");
        assert.strictEqual(facts.libvirt.active, true, "a listening virtqemud socket is a running libvirt");
    });
});

describe("tuned profiles: which of kvmtune's knobs they set (host/tuned.ts)", () => {
    /** Profiles as tuned 2.25.1 installs them (one folder). */
    const shipped = (name: string) => {
        try {
            return [{ path: `/usr/lib/tuned/profiles/${name}/tuned.conf`, text: tunedProfile(name) }];
        } catch {
            return [];
        }
    };
    /** Made-up profiles, one file each. */
    const from = (profiles: Record<string, string>) => (name: string) => (profiles[name] === undefined ? [] : [{ path: `/usr/lib/tuned/profiles/${name}/tuned.conf`, text: profiles[name] }]);

    it("virtual-host (tuned 2.25.1 as shipped) sets only read-ahead among kvmtune's knobs, through throughput-performance", () => {
        assert.deepStrictEqual(
            tunedSettings("virtual-host", shipped).map((s) => [s.knob, s.profile, `${s.section}.${s.option}`, s.value]),
            [["BlockElevator.readAheadKb", "throughput-performance", "disk.readahead", ">4096"]],
        );
    });

    it("cpu-partitioning (through network-latency, latency-performance) adds kernel arguments and moves threads off isolated CPUs", () => {
        const got = tunedSettings("cpu-partitioning", shipped).map((s) => `${s.knob} ${s.profile} ${s.option}`);
        assert.deepStrictEqual(got.sort(), [
            "KernelCmdline.args cpu-partitioning cmdline_cpu_part",
            "KernelCmdline.args network-latency cmdline_network_latency",
            "NumaPinnedGuest.pinning cpu-partitioning isolated_cores",
        ]);
    });

    it("merges as tuned does: later profiles win, replace and drop, enabled=false, type=, conditions, devices", () => {
        const profiles: Record<string, string> = {
            base: "[main]\ninclude=none-such\n[disk]\nelevator=bfq\nreadahead=4096\n[sysctl]\nvm.nr_hugepages=512\n[bootloader]\ncmdline=hugepages=4\n",
            mine: [
                "[main]",
                "include=base",
                "[disk]",
                "# a comment",
                "devices=sda, vdb",
                "elevator = mq-deadline",
                "drop=readahead",
                "[sysctl]",
                "replace=true",
                "vm.swappiness=1",
                "[bootloader]",
                "enabled=false",
                "[my_sysfs]",
                "type=sysfs",
                "uname_regex=aarch64",
                "/sys/block/vdb/queue/nr_requests = 64",
                "/sys/kernel/mm/hugepages/hugepages-2048kB/nr_hugepages = 8",
                "[modules]",
                "vhost_net=+r experimental_zcopytx=1",
            ].join("\n"),
        };
        const got = tunedSettings(" mine ", from(profiles));
        assert.deepStrictEqual(
            got.map((s) => [s.knob, s.profile, s.section, s.option, s.value, s.devices, s.conditional]),
            [
                ["BlockElevator.scheduler", "mine", "disk", "elevator", "mq-deadline", "sda, vdb", false],
                ["BlockElevator.nrRequests", "mine", "my_sysfs", "/sys/block/vdb/queue/nr_requests", "64", "*", true],
                ["HugepagePool.pages", "mine", "my_sysfs", "/sys/kernel/mm/hugepages/hugepages-2048kB/nr_hugepages", "8", "*", true],
                ["VhostNetwork.module", "mine", "modules", "vhost_net", "+r experimental_zcopytx=1", "*", false],
            ],
        );
        // The base alone: its elevator, read-ahead, huge pages through sysctl, and kernel arguments.
        assert.deepStrictEqual(
            tunedSettings("base", from(profiles)).map((s) => s.knob),
            ["BlockElevator.scheduler", "BlockElevator.readAheadKb", "HugepagePool.pages", "KernelCmdline.args"],
        );
    });

    it("finds a profile where tuned does: /etc over /usr/lib, the 2.23 profiles folder or the older one", () => {
        const etcOverride = F("/etc/tuned/profiles/virtual-host/tuned.conf", "[main]\ninclude=throughput-performance\n[disk]\nelevator=none\n");
        const p = platformOf(
            isActive({ "tuned.service": "active" }) +
                F("/etc/tuned/active_profile", "virtual-host") +
                F("/usr/lib/tuned/profiles/virtual-host/tuned.conf", tunedProfile("virtual-host")) +
                F("/usr/lib/tuned/profiles/throughput-performance/tuned.conf", tunedProfile("throughput-performance")) +
                etcOverride,
        );
        assert.deepStrictEqual(p.tuned.settings.map((s) => `${s.profile}: ${s.option}=${s.value}`), ["throughput-performance: readahead=>4096", "virtual-host: elevator=none"]);
    });

    it("an include computed by a tuned function is not followed, and a cycle ends", () => {
        const profiles: Record<string, string> = {
            a: "[main]\ninclude=${f:virt_check:virtual-guest:b}\n[disk]\nelevator=none\n",
            b: "[main]\ninclude=c\n[disk]\nreadahead=1\n",
            c: "[main]\ninclude=b\n",
        };
        assert.deepStrictEqual(tunedSettings("a", from(profiles)).map((s) => s.option), ["elevator"]);
        assert.deepStrictEqual(tunedSettings("b", from(profiles)).map((s) => s.option), ["readahead"]);
    });

    it("loads each file once: a profile included twice does not come back to override a later one", () => {
        // tuned's loader skips a file it loaded (locator.get_config's skip_files): q's none stays.
        const profiles = { x: "[main]\ninclude=q, p\n", q: "[main]\ninclude=p\n[disk]\nelevator=none\n", p: "[disk]\nelevator=bfq # the old default\n" };
        assert.deepStrictEqual(tunedSettings("x", from(profiles)).map((s) => `${s.profile}: ${s.value}`), ["q: none"]);
    });

    it("an /etc profile that includes its own name extends the shipped one; a `-name` include may be missing", () => {
        const files = (name: string) =>
            name === "virtual-host"
                ? [{ path: "/etc/tuned/profiles/virtual-host/tuned.conf", text: "[main]\ninclude=virtual-host, -site-extras, -not-installed\n[disk]\nelevator=mq-deadline\n" }, ...shipped(name)]
                : name === "site-extras"
                  ? [{ path: "/etc/tuned/profiles/site-extras/tuned.conf", text: "[sysctl]\nvm.nr_hugepages=16\n" }]
                  : shipped(name);
        assert.deepStrictEqual(tunedSettings("virtual-host", files).map((s) => `${s.profile}: ${s.option}=${s.value}`), [
            "throughput-performance: readahead=>4096",
            "virtual-host: elevator=mq-deadline",
            "site-extras: vm.nr_hugepages=16",
        ]);
    });

    it("matches a disk against a section's devices= as tuned does: globs, commas, `!` excludes", () => {
        assert.ok(tunedDevicesMatch("*", "vdb"));
        assert.ok(tunedDevicesMatch("sd*, vd?", "vdb"));
        assert.ok(!tunedDevicesMatch("sd*", "vdb"));
        assert.ok(!tunedDevicesMatch("!vdb", "vdb"));
        assert.ok(tunedDevicesMatch("!vdb", "vdc"));
        assert.ok(!tunedDevicesMatch("vd*,!vdb", "vdb"));
        assert.ok(!tunedDevicesMatch("nvme0n1", "nvme0n10"), "a name is no prefix");
    });

    it("reads sections and options, and names no knob for what kvmtune does not set", () => {
        assert.deepStrictEqual(
            parseTunedProfile("[vm]\ndirty_bytes = 40% # inline comment\n[vm]\n# again\ntransparent_hugepages=never").map((s) => [s.name, [...s.options]]),
            [["vm", [["dirty_bytes", "40%"], ["transparent_hugepages", "never"]]]],
        );
        // A name that is no profile name (a path, a tuned function) is never looked up on the host.
        const asked: string[] = [];
        tunedSettings("../../../etc/shadow virtual-host", (n) => (asked.push(n), []));
        assert.deepStrictEqual(asked, ["virtual-host"]);
        assert.strictEqual(knobOf("vm", "transparent_hugepages"), null);
        assert.strictEqual(knobOf("sysctl", "vm.swappiness"), null);
        assert.strictEqual(knobOf("sysfs", "/sys/block/sda/queue/scheduler"), "BlockElevator.scheduler");
        assert.strictEqual(knobOf("sysfs", "/sys/block/sda/queue/iosched/fifo_batch"), "BlockElevator.tunables");
        assert.strictEqual(knobOf("sysfs", "/sys/bus/pci/devices/0000:41:00.0/sriov_numvfs"), "SriovNic.numVfs");
    });
});

describe("libvirt unit ordering for boot units (host/platformSteps.ts)", () => {
    it("lists both layouts' daemons when the layout is not known, so one unit text fits either", () => {
        // The huge page pool's boot unit today: the same line, now generated.
        assert.strictEqual(beforeLibvirtLine(["qemu", "guests"], ["sysinit.target"]), "Before=sysinit.target libvirtd.service virtqemud.service libvirt-guests.service");
        assert.strictEqual(beforeLibvirtLine(["qemu"], ["sysinit.target"]), "Before=sysinit.target libvirtd.service virtqemud.service");
        // VFs: a hostdev network's pool (virtnetworkd) and node devices (virtnodedevd) too.
        assert.deepStrictEqual(libvirtUnitsBefore(["qemu", "network", "nodedev", "guests"]), [
            "libvirtd.service",
            "virtqemud.service",
            "virtnetworkd.service",
            "virtnodedevd.service",
            "libvirt-guests.service",
        ]);
    });

    it("one layout's daemons when it is known", () => {
        assert.deepStrictEqual(libvirtUnitsBefore(["qemu", "network"], "modular"), ["virtqemud.service", "virtnetworkd.service"]);
        assert.deepStrictEqual(libvirtUnitsBefore(["qemu", "network", "guests"], "monolithic"), ["libvirtd.service", "libvirt-guests.service"]);
    });
});

describe("NetworkManager drop-in, restorecon and reloads, run in a private /etc (host/platform.ts, files.ts, persist.ts)", function () {
    this.timeout(30_000);
    let etc: string;
    let bin: string;
    let sysfs: string;
    const onHost = (p: string) => path.join(etc, p.replace(/^\/etc\//, ""));
    const calls = () => fs.readFileSync(path.join(etc, "calls"), "utf8").split("\n").filter(Boolean);
    const resetCalls = () => fs.writeFileSync(path.join(etc, "calls"), "");
    /** A host with SELinux on: a /sys/fs whose selinux/enforce exists (laid over the real /sys/fs). */
    const selinuxOn = () => new LocalRemote({ etc, pathFirst: bin, binds: [[sysfs, "/sys/fs"]] });

    beforeEach(() => {
        etc = fs.mkdtempSync(path.join(os.tmpdir(), "kvmtune-platform-etc-"));
        bin = fs.mkdtempSync(path.join(os.tmpdir(), "kvmtune-platform-bin-"));
        sysfs = fs.mkdtempSync(path.join(os.tmpdir(), "kvmtune-platform-sysfs-"));
        fs.mkdirSync(path.join(sysfs, "selinux"));
        fs.writeFileSync(path.join(sysfs, "selinux", "enforce"), "1");
        // Stand-ins record their calls in the private /etc; NetworkManager "runs" while /etc/nm-runs exists.
        const record = (name: string, tail = "") => fs.writeFileSync(path.join(bin, name), `#!/bin/sh\necho "${name} $*" >> /etc/calls\n${tail}`, { mode: 0o755 });
        record("systemctl", 'case "$*" in "is-active --quiet NetworkManager.service") [ -e /etc/nm-runs ] ;; esac\n');
        record("nmcli");
        record("udevadm");
        record("restorecon", '[ ! -e /etc/restorecon-fails ]\n');
        resetCalls();
    });
    afterEach(() => {
        for (const d of [etc, bin, sysfs]) fs.rmSync(d, { recursive: true, force: true });
    });

    it("the drop-in appends interface names to unmanaged-devices and carries kvmtune's header", () => {
        const f = networkManagerUnmanagedFile("sriov-enp65s0f0", OWNER, ["enp65s0f0", "enp65s0f0v0", "enp65s0f0"]);
        assert.strictEqual(f.path, "/etc/NetworkManager/conf.d/90-kvmtune-sriov-enp65s0f0.conf");
        assert.strictEqual(f.want, managedHeader(OWNER) + "[keyfile]\nunmanaged-devices+=interface-name:enp65s0f0;interface-name:enp65s0f0v0\n");
        assert.strictEqual(f.reload, "networkManager");
        assert.strictEqual(networkManagerUnmanagedFile("x", OWNER, []).want, null, "no interfaces: the file must go");
        assert.throws(() => networkManagerUnmanagedFile("x", OWNER, ["eth0;*"]), /not an interface name: "eth0;\*"/);
        assert.throws(() => networkManagerUnmanagedFile("../x", OWNER, ["eth0"]), /bad NetworkManager drop-in name/);
    });

    it("written, relabelled and reloaded once where NetworkManager runs and SELinux is on; refresh finds no drift", async () => {
        fs.writeFileSync(path.join(etc, "nm-runs"), "");
        const files: PersistedFile[] = [networkManagerUnmanagedFile("br0", OWNER, ["br0", "enp1s0"])];
        await runScript(selinuxOn(), persistFilesScript(files));
        const p = files[0].path;
        assert.strictEqual(fs.readFileSync(onHost(p), "utf8"), files[0].want);
        assert.deepStrictEqual(calls(), [`restorecon -F ${p}`, "systemctl is-active --quiet NetworkManager.service", "nmcli general reload conf"]);
        assert.deepStrictEqual(persistedDrift(new Map([[p, fs.readFileSync(onHost(p), "utf8")]]), files), []);

        // A second run with nothing changed writes, relabels and reloads nothing.
        resetCalls();
        await runScript(selinuxOn(), persistFilesScript(files));
        assert.deepStrictEqual(calls(), []);

        // Delete: the file goes, NetworkManager re-reads once.
        await runScript(selinuxOn(), persistFilesScript([networkManagerUnmanagedFile("br0", OWNER, [])]));
        assert.ok(!fs.existsSync(onHost(p)));
        assert.deepStrictEqual(calls(), ["systemctl is-active --quiet NetworkManager.service", "nmcli general reload conf"]);
    });

    it("where NetworkManager does not run, no reload; without SELinux, no restorecon even when it is installed", async () => {
        await runScript(new LocalRemote({ etc, pathFirst: bin }), persistFilesScript([networkManagerUnmanagedFile("br0", OWNER, ["br0"])]));
        assert.deepStrictEqual(calls(), ["systemctl is-active --quiet NetworkManager.service"]);
    });

    it("every atomic write is relabelled where SELinux is on, and a failed restorecon fails the write naming the file", async () => {
        const unit = "/etc/systemd/system/kvmtune-x.service";
        await runScript(selinuxOn(), atomicWriteScript(unit, "[Unit]\n"));
        assert.deepStrictEqual(calls(), [`restorecon -F ${unit}`]);
        fs.writeFileSync(path.join(etc, "restorecon-fails"), "");
        await assert.rejects(runScript(selinuxOn(), atomicWriteScript(unit, "[Unit]\n")), /restorecon failed for \/etc\/systemd\/system\/kvmtune-x\.service/);
    });
});
