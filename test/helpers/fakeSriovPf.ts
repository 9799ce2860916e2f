/**
 * A fake SR-IOV PF for a FakeDiskHost: a folder laid over one real PCI device's sysfs folder (so
 * `/sys/bus/pci/devices/<address>` still links to a real device, as a PF's does) holding what
 * SriovNic reads (VF counts, NUMA node, the PF's netdev, virtfn links), and an `ip` stand-in that
 * answers `ip -j link show dev <pf>` with the VFs' settings and passes anything else to the real ip.
 */
import * as fs from "fs";
import * as os from "os";
import * as path from "path";

export interface FakeSriovPf {
    /** The real PCI address the fake lies over: the PF's name as a PCI address. */
    pciAddress: string;
    /** The PF's interface name. */
    netdev: string;
    /** [folder, path] to pass to startFakeDiskHost's `binds`. */
    bind: readonly [string, string];
    /** Installs the `ip` stand-in into the host's stand-ins folder. */
    installIp(bin: string): void;
    dispose(): void;
}

/** Each VF as `ip -j link show` lists it (iproute2's `vfinfo_list`). */
export type IpVf = Record<string, unknown>;

/** `vfNetdevs`: each VF also has a netdev, `<pf>v<N>` (its folder in the fake, where virtfnN leads). */
export function makeFakeSriovPf(vfs: IpVf[], totalVfs = 7, numaNode = 0, vfNetdevs = false): FakeSriovPf {
    const pciAddress = fs.readdirSync("/sys/bus/pci/devices").sort()[0];
    if (!pciAddress) throw new Error("this machine has no PCI device for a fake PF to lie over");
    const netdev = "enp65s0";
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "kvmtune-fakepf-"));
    fs.writeFileSync(path.join(dir, "sriov_numvfs"), `${vfs.length}\n`);
    fs.writeFileSync(path.join(dir, "sriov_totalvfs"), `${totalVfs}\n`);
    fs.writeFileSync(path.join(dir, "numa_node"), `${numaNode}\n`);
    fs.mkdirSync(path.join(dir, "net", netdev), { recursive: true });
    fs.writeFileSync(path.join(dir, "net", netdev, "flags"), "0x1003\n");
    fs.writeFileSync(path.join(dir, "net", netdev, "carrier"), "1\n");
    fs.symlinkSync("../../../bus/pci/drivers/igb", path.join(dir, "driver"));
    vfs.forEach((_v, n) => {
        if (!vfNetdevs) return fs.symlinkSync(`../0000:41:10.${n}`, path.join(dir, `virtfn${n}`));
        fs.mkdirSync(path.join(dir, `0000:41:10.${n}`, "net", `${netdev}v${n}`), { recursive: true });
        fs.writeFileSync(path.join(dir, `0000:41:10.${n}`, "net", `${netdev}v${n}`, "ifindex"), `${10 + n}\n`);
        fs.symlinkSync(`0000:41:10.${n}`, path.join(dir, `virtfn${n}`));
    });
    const answer = JSON.stringify([{ ifname: netdev, vfinfo_list: vfs }]);
    return {
        pciAddress,
        netdev,
        bind: [dir, fs.realpathSync(`/sys/bus/pci/devices/${pciAddress}`)],
        installIp(bin) {
            const realIp = ["/usr/sbin/ip", "/sbin/ip", "/usr/bin/ip", "/bin/ip"].find((p) => fs.existsSync(p)) ?? "ip";
            fs.writeFileSync(
                path.join(bin, "ip"),
                `#!/bin/sh\nif [ "$*" = ${JSON.stringify(`-j link show dev ${netdev}`)} ]; then printf '%s\\n' '${answer}'; exit 0; fi\nexec ${realIp} "$@"\n`,
                { mode: 0o755 },
            );
        },
        dispose: () => fs.rmSync(dir, { recursive: true, force: true }),
    };
}
