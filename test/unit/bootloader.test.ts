/**
 * The bootloader layer (resources/host/bootloader.ts) on the output of the real tools.
 *
 * update-grub: a grub.cfg in the shape Debian's grub-mkconfig (10_linux) generates; the lab boots
 * through the same tool (shared/LAB.md). grubby: NOT LAB-PROVEN. No RHEL-family host can be built
 * here; its `--info` output below follows the format grubby(8) documents (`key=value` lines, values
 * in double quotes, one block per entry starting at `index=`), as vendors' manuals print it.
 */
import * as assert from "assert";
import {
    argKey,
    foreignArgs,
    fragmentText,
    parseBootConfig,
    parseGrubbyInfo,
    parseGrubCfgDefault,
    removeArgsScript,
    setArgsScript,
    splitArgs,
} from "../../resources/host/bootloader";
import { parseDump } from "../../resources/host/sysfs";

/** A Debian 12 grub.cfg's entries as grub-mkconfig writes them (GRUB_CMDLINE_LINUX="", GRUB_CMDLINE_LINUX_DEFAULT="quiet"). */
const DEBIAN_GRUB_CFG = `### BEGIN /etc/grub.d/00_header ###
if [ -s $prefix/grubenv ]; then
  set have_grubenv=true
  load_env
fi
set default="0"
function load_video {
  if [ x$feature_all_video_module = xy ]; then
    insmod all_video
  fi
}
### END /etc/grub.d/00_header ###

### BEGIN /etc/grub.d/10_linux ###
function gfxmode {
	set gfxpayload="\${1}"
}
menuentry 'Debian GNU/Linux' --class debian --class gnu-linux --class gnu --class os $menuentry_id_option 'gnulinux-simple-8e3a' {
	load_video
	insmod gzio
	if [ x$grub_platform = xxen ]; then insmod xzio; insmod lzopio; fi
	insmod part_msdos
	insmod ext2
	set root='hd0,msdos1'
	if [ x$feature_platform_search_hint = xy ]; then
	  search --no-floppy --fs-uuid --set=root --hint-bios=hd0,msdos1 --hint-efi=hd0,msdos1 --hint-baremetal=ahci0,msdos1  8e3a
	else
	  search --no-floppy --fs-uuid --set=root 8e3a
	fi
	echo	'Loading Linux 6.1.0-13-amd64 ...'
	linux	/boot/vmlinuz-6.1.0-13-amd64 root=UUID=8e3a ro  quiet
	echo	'Loading initial ramdisk ...'
	initrd	/boot/initrd.img-6.1.0-13-amd64
}
submenu 'Advanced options for Debian GNU/Linux' $menuentry_id_option 'gnulinux-advanced-8e3a' {
	menuentry 'Debian GNU/Linux, with Linux 6.1.0-13-amd64 (recovery mode)' --class debian $menuentry_id_option 'gnulinux-6.1.0-13-amd64-recovery-8e3a' {
		echo	'Loading Linux 6.1.0-13-amd64 ...'
		linux	/boot/vmlinuz-6.1.0-13-amd64 root=UUID=8e3a ro single 
		initrd	/boot/initrd.img-6.1.0-13-amd64
	}
}
### END /etc/grub.d/10_linux ###
`;

/** NOT LAB-PROVEN: `grubby --info=DEFAULT` on a RHEL 9 host with tuned's variables in its BLS entry. */
const GRUBBY_INFO_DEFAULT = `index=0
kernel="/boot/vmlinuz-5.14.0-362.8.1.el9_3.x86_64"
args="ro crashkernel=1G-4G:192M,4G-64G:256M,64G-:512M resume=/dev/mapper/rhel-swap rd.lvm.lv=rhel/root rd.lvm.lv=rhel/swap rhgb quiet $tuned_params"
root="/dev/mapper/rhel-root"
initrd="/boot/initramfs-5.14.0-362.8.1.el9_3.x86_64.img $tuned_initrd"
title="Red Hat Enterprise Linux (5.14.0-362.8.1.el9_3.x86_64) 9.3 (Plow)"
id="3b1f0c2e5d4a4e8f9a7b6c5d4e3f2a1b-5.14.0-362.8.1.el9_3.x86_64"
`;

describe("bootloader: update-grub's grub.cfg", () => {
    it("reads the default entry's arguments, exactly as generated (a double space stays), not the recovery entry in the submenu", () => {
        assert.strictEqual(parseGrubCfgDefault(DEBIAN_GRUB_CFG), "root=UUID=8e3a ro  quiet");
    });

    it("takes the first top-level entry even after a submenu-only prefix, and says null without one", () => {
        const submenuFirst = DEBIAN_GRUB_CFG.replace(/menuentry 'Debian GNU\/Linux' [\s\S]*?\n}\n/, "");
        assert.strictEqual(parseGrubCfgDefault(submenuFirst), null, "an entry inside a submenu is not the default");
        assert.strictEqual(parseGrubCfgDefault("set default=0\n"), null);
    });

    it("finds the flavor and the default entry in one dump", () => {
        const F = (p: string, b: string) => `\x1eF\x1f${p}\n${b}\n`;
        const C = (n: string, out: string, rc: number) => `\x1eC\x1f${n}\n${out}\n\x1eX\x1f${n}\n${rc}\n`;
        const boot = parseBootConfig(parseDump(F("/boot/grub/grub.cfg", DEBIAN_GRUB_CFG) + C("bootFlavor", "update-grub", 0) + C("grubbyInfo", "", 1)));
        assert.deepStrictEqual(boot, { flavor: "update-grub", cmdline: "root=UUID=8e3a ro  quiet", source: "/boot/grub/grub.cfg" });
        const none = parseBootConfig(parseDump(C("bootFlavor", "none", 0)));
        assert.strictEqual(none.flavor, null);
    });

    it("writes a fragment that appends to GRUB_CMDLINE_LINUX under kvmtune's header", () => {
        assert.strictEqual(
            fragmentText("KernelCmdline k (kvmtune/test)", ["intel_iommu=on", "iommu=pt"]).split("\n").slice(-2).join("\n"),
            'GRUB_CMDLINE_LINUX="$GRUB_CMDLINE_LINUX intel_iommu=on iommu=pt"\n',
        );
        assert.match(fragmentText("KernelCmdline k (kvmtune/test)", ["x"]), /^# Managed by kvmtune for KernelCmdline k \(kvmtune\/test\)\./);
    });
});

describe("bootloader: grubby on BLS entries (NOT lab-proven: recorded format of grubby(8))", () => {
    it("reads args= of the default entry, with tuned's variable as one opaque word", () => {
        const info = parseGrubbyInfo(GRUBBY_INFO_DEFAULT);
        assert.strictEqual(info?.kernel, "/boot/vmlinuz-5.14.0-362.8.1.el9_3.x86_64");
        assert.strictEqual(info?.args, "ro crashkernel=1G-4G:192M,4G-64G:256M,64G-:512M resume=/dev/mapper/rhel-swap rd.lvm.lv=rhel/root rd.lvm.lv=rhel/swap rhgb quiet $tuned_params");
        assert.strictEqual(splitArgs(info!.args).pop(), "$tuned_params");
    });

    it("reads the first entry of --info=ALL's several", () => {
        const two = GRUBBY_INFO_DEFAULT + GRUBBY_INFO_DEFAULT.replace("index=0", "index=1").replace(/args="[^"]*"/, 'args="ro single"');
        assert.match(parseGrubbyInfo(two)!.args, /^ro crashkernel/);
        assert.strictEqual(parseGrubbyInfo("index=0\nkernel=\"/boot/x\"\n"), null, "no args line: not read");
    });

    it("adds with --args, removes only what kvmtune gave up, and never an argument the entry had before kvmtune", () => {
        const script = setArgsScript("grubby", "o", ["intel_iommu=on", "isolcpus=3"], ["intel_iommu=on", "iommu=pt", "isolcpus=2-3"], ["iommu=pt"]);
        assert.deepStrictEqual(script.split("\n"), [
            "set -e",
            "grubby --update-kernel=ALL --remove-args=isolcpus=2-3",
            "grubby --update-kernel=ALL --args='intel_iommu=on isolcpus=3'",
        ]);
        assert.strictEqual(setArgsScript("grubby", "o", ["intel_iommu=on", "iommu=pt"], [], ["iommu=pt"]), "set -e\ngrubby --update-kernel=ALL --args=intel_iommu=on", "the entry's own iommu=pt is not given again (grubby would move it)");
        assert.strictEqual(removeArgsScript("grubby", ["intel_iommu=on", "iommu=pt"], ["iommu=pt"]), "grubby --update-kernel=ALL --remove-args=intel_iommu=on");
        assert.strictEqual(removeArgsScript("grubby", ["iommu=pt"], ["iommu=pt"]), "true");
    });
});

describe("bootloader: arguments", () => {
    it("splits as the kernel does: quoted values stay one word", () => {
        assert.deepStrictEqual(splitArgs(' ro  quiet dyndbg="file x.c +p" isolcpus=2-3 '), ["ro", "quiet", 'dyndbg="file x.c +p"', "isolcpus=2-3"]);
        assert.strictEqual(argKey("isolcpus=2-3"), "isolcpus");
        assert.strictEqual(argKey("quiet"), "quiet");
    });

    it("takes kvmtune's arguments out one occurrence each, leaving an administrator's copy", () => {
        assert.deepStrictEqual(foreignArgs("root=UUID=1 ro iommu=pt quiet iommu=pt isolcpus=2-3", ["iommu=pt", "isolcpus=2-3"]), ["root=UUID=1", "ro", "quiet", "iommu=pt"]);
    });
});
