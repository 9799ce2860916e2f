// The lab self-test: on every host of .lab/inventory.json, by SSH, the kernel and libvirt facts
// kvmtune's lab tests rely on. Each check writes, reads back and restores; none is assumed.
import assert from "node:assert/strict";
import { LabHost, LabInventory, loadInventory, sshOk, sshRun } from "./labHosts";

let inventory: LabInventory | undefined;
let inventoryError: unknown;
try {
  inventory = loadInventory();
} catch (e) {
  inventoryError = e;
}

/**
 * What each lab image flavor is (lab/image/flavors/NAME/), as this self-test checks it: the first is
 * Debian 12 as kvmtune was first proven on; the second is Debian 13 run as RHEL-family and Ubuntu
 * KVM hosts are, with NetworkManager, tuned, a socket-activated libvirtd and SELinux.
 */
interface Flavor {
  debian: number;
  /** libvirtd kept running, or started by its sockets and gone when idle (--timeout 120, as Debian 13 ships it). */
  libvirt: "running" | "socket-activated";
  networkManager: boolean;
  tunedProfile?: string;
  selinux?: "Permissive" | "Enforcing";
}
const FLAVORS: Record<string, Flavor> = {
  bookworm: { debian: 12, libvirt: "running", networkManager: false },
  trixie: { debian: 13, libvirt: "socket-activated", networkManager: true, tunedProfile: "virtual-host", selinux: "Permissive" },
};

const HP = "hugepages/hugepages-2048kB";
const nodeHp = (n: number, f: string) => `/sys/devices/system/node/node${n}/${HP}/${f}`;

async function readInt(host: LabHost, file: string): Promise<number> {
  const v = Number((await sshOk(host, `cat ${file}`)).trim());
  assert.ok(Number.isInteger(v), `${host.name}: ${file} is not an integer`);
  return v;
}
async function setPools(host: LabHost, pages: [number, number]): Promise<void> {
  await sshOk(host, `echo ${pages[0]} > ${nodeHp(0, "nr_hugepages")} && echo ${pages[1]} > ${nodeHp(1, "nr_hugepages")}`);
}

describe("lab self-test", function () {
  if (inventory === undefined) {
    it("finds the lab inventory (run `npm run lab -- up` first)", function () {
      throw inventoryError;
    });
    return;
  }
  for (const host of inventory.hosts) {
    const flavor = FLAVORS[host.flavor];
    describe(`${host.name} (${host.host}:${host.port}, ${host.flavor})`, function () {
      if (flavor === undefined) {
        it("runs a lab image flavor the self-test knows", function () {
          assert.fail(`${host.name}: unknown flavor ${host.flavor} (known: ${Object.keys(FLAVORS).join(", ")})`);
        });
        return;
      }
      it("answers SSH as root with its pinned host key", async function () {
        assert.equal((await sshOk(host, "id -u")).trim(), "0");
        assert.equal((await sshOk(host, "hostname")).trim(), host.name);
      });

      it(`runs Debian ${flavor.debian} with Debian's kernel and systemd`, async function () {
        assert.match(await sshOk(host, "cat /etc/debian_version"), new RegExp(`^${flavor.debian}\\.`));
        assert.match(await sshOk(host, "uname -v"), /Debian/);
        assert.equal((await sshOk(host, "ps -o comm= -p 1")).trim(), "systemd");
      });

      it("boots through GRUB on its own disk", async function () {
        assert.match(await sshOk(host, "cat /proc/cmdline"), /BOOT_IMAGE=/);
        await sshOk(host, "test -s /boot/grub/grub.cfg && test -f /boot/grub/i386-pc/core.img");
        assert.match(await sshOk(host, "dd if=/dev/vda bs=512 count=1 status=none | tr -dc 'A-Z'"), /GRUB/);
      });

      it("has two NUMA nodes (CPUs 0-1, 2-3) whose 2 MiB pools allocate per node", async function () {
        const nodes = (await sshOk(host, "ls -d /sys/devices/system/node/node[0-9]* | xargs -n1 basename")).trim().split("\n");
        assert.deepEqual(nodes, ["node0", "node1"]);
        assert.equal((await sshOk(host, "cat /sys/devices/system/node/node0/cpulist")).trim(), "0-1");
        assert.equal((await sshOk(host, "cat /sys/devices/system/node/node1/cpulist")).trim(), "2-3");
        try {
          for (const n of [0, 1]) {
            const want = 8 + 4 * n;
            await sshOk(host, `echo ${want} > ${nodeHp(n, "nr_hugepages")}`);
            assert.equal(await readInt(host, nodeHp(n, "nr_hugepages")), want, `node${n} pool`);
            assert.equal(await readInt(host, nodeHp(n, "free_hugepages")), want, `node${n} free pages`);
          }
          // Each pool is per node: node0's count did not move when node1's was written.
          assert.equal(await readInt(host, nodeHp(0, "nr_hugepages")), 8);
        } finally {
          await setPools(host, [0, 0]);
        }
        assert.equal(await readInt(host, nodeHp(0, "nr_hugepages")), 0);
        assert.equal(await readInt(host, nodeHp(1, "nr_hugepages")), 0);
      });

      it("has igb PFs with sriov_totalvfs >= 4 whose VFs take a MAC and a VLAN", async function () {
        const pfs = (
          await sshOk(
            host,
            "for d in /sys/class/net/*; do [ -e $d/device/sriov_totalvfs ] || continue; " +
              'printf "%s %s %s %s\\n" "${d##*/}" "$(cat $d/device/sriov_totalvfs)" ' +
              '"$(basename "$(readlink $d/device/driver)")" "$(cat $d/device/numa_node)"; done',
          )
        )
          .trim()
          .split("\n")
          .filter((l) => l !== "")
          .map((l) => {
            const [name, total, driver, numa] = l.split(" ");
            return { name, total: Number(total), driver, numa: Number(numa) };
          });
        const igb = pfs.filter((p) => p.driver === "igb" && p.total >= 4);
        assert.ok(igb.length >= 1, `${host.name}: no igb PF with sriov_totalvfs >= 4: ${JSON.stringify(pfs)}`);
        for (const pf of igb) {
          const dev = `/sys/class/net/${pf.name}/device`;
          const wasUp = /[<,]UP[,>]/.test(await sshOk(host, `ip -o link show ${pf.name}`));
          try {
            await sshOk(host, `ip link set ${pf.name} up && echo 0 > ${dev}/sriov_numvfs && echo 4 > ${dev}/sriov_numvfs`);
            assert.equal(await readInt(host, `${dev}/sriov_numvfs`), 4, `${pf.name} VFs`);
            const mac = `02:6b:76:00:0${pf.numa >= 0 ? pf.numa : 9}:01`;
            await sshOk(host, `ip link set ${pf.name} vf 0 mac ${mac} && ip link set ${pf.name} vf 0 vlan 100`);
            const show = await sshOk(host, `ip link show ${pf.name}`);
            assert.match(show, new RegExp(`vf 0\\s+link/ether ${mac}.*vlan 100`), show);
            const vfs = (await sshOk(host, `ls -d ${dev}/virtfn* | wc -l`)).trim();
            assert.equal(vfs, "4");
          } finally {
            await sshOk(host, `echo 0 > ${dev}/sriov_numvfs${wasUp ? "" : ` && ip link set ${pf.name} down`}`);
          }
          assert.equal(await readInt(host, `${dev}/sriov_numvfs`), 0);
        }
      });

      it("has a virtual IOMMU: IOMMU groups, and each VF of node 1's PF in a group of its own", async function () {
        const groups = Number((await sshOk(host, "ls /sys/kernel/iommu_groups | wc -l")).trim());
        assert.ok(groups > 0, `${host.name}: no IOMMU groups (lab/host.sh's intel-iommu device)`);
        const pf = (await sshOk(host, 'for d in /sys/class/net/*; do [ "$(cat $d/device/numa_node 2>/dev/null)" = 1 ] && [ -e $d/device/sriov_totalvfs ] && echo ${d##*/}; done; true')).trim();
        assert.ok(pf, `${host.name}: no SR-IOV PF on node 1`);
        const dev = `/sys/class/net/${pf}/device`;
        try {
          await sshOk(host, `echo 0 > ${dev}/sriov_numvfs && echo 2 > ${dev}/sriov_numvfs`);
          const vfGroups = (await sshOk(host, `for v in ${dev}/virtfn0 ${dev}/virtfn1; do g=$(readlink -f $v/iommu_group); echo "\${g##*/} $(ls $g/devices | wc -l)"; done`)).trim().split("\n");
          assert.equal(vfGroups.length, 2, vfGroups.join("; "));
          assert.notEqual(vfGroups[0].split(" ")[0], vfGroups[1].split(" ")[0], `VFs share an IOMMU group: ${vfGroups.join("; ")}`);
          for (const g of vfGroups) assert.equal(g.split(" ")[1], "1", `a VF's IOMMU group holds other devices: ${g}`);
        } finally {
          await sshOk(host, `echo 0 > ${dev}/sriov_numvfs`);
        }
      });

      it("gives each NUMA node a 1 GiB-aligned GiB above the first, so a 1 GiB page per node can be reserved at boot", async function () {
        const blockBytes = Number.parseInt((await sshOk(host, "cat /sys/devices/system/memory/block_size_bytes")).trim(), 16);
        const perGiB = 2 ** 30 / blockBytes;
        for (const node of [0, 1]) {
          const blocks = new Set(
            (await sshOk(host, `ls /sys/devices/system/node/node${node} | sed -n 's/^memory\\([0-9]*\\)$/\\1/p'`))
              .trim()
              .split("\n")
              .map(Number),
          );
          const gibs = [...blocks].map((b) => Math.floor(b / perGiB)).filter((g, i, all) => g > 0 && all.indexOf(g) === i);
          const whole = gibs.filter((g) => Array.from({ length: perGiB }, (_x, k) => g * perGiB + k).every((b) => blocks.has(b)));
          assert.ok(whole.length > 0, `${host.name}: node ${node} has no whole aligned GiB above the first (memory blocks of ${blockBytes} bytes: ${[...blocks].sort((a, b) => a - b).join(",")})`);
        }
      });

      it("has one igb PF on each NUMA node (pxb-pcie numa_node)", async function () {
        const out = await sshOk(
          host,
          "for d in /sys/class/net/*; do [ \"$(basename \"$(readlink $d/device/driver 2>/dev/null)\")\" = igb ] && cat $d/device/numa_node; done | sort -n | tr '\\n' ' '",
        );
        assert.deepEqual(out.trim().split(" "), ["0", "1"]);
      });

      it("has /dev/vhost-net", async function () {
        await sshOk(host, "test -c /dev/vhost-net && lsmod | grep -q '^vhost_net '");
      });

      it("has virtio, SCSI and NVMe disks by id, each with schedulers, bfq selectable", async function () {
        const n = host.name;
        const disks = {
          virtio: (await sshOk(host, `readlink -f /dev/disk/by-id/virtio-${n}-vdb`)).trim(),
          scsi: (await sshOk(host, `readlink -f /dev/disk/by-id/scsi-*${n}-scsi`)).trim(),
          nvme: (await sshOk(host, `readlink -f /dev/disk/by-id/nvme-*${n}-nvme | head -n1`)).trim(),
        };
        assert.equal(disks.virtio, "/dev/vdb");
        assert.match(disks.scsi, /^\/dev\/sd[a-z]$/);
        assert.equal(disks.nvme, "/dev/nvme0n1");
        for (const [kind, devPath] of Object.entries(disks)) {
          const q = `/sys/block/${devPath.slice(5)}/queue/scheduler`;
          const before = (await sshOk(host, `cat ${q}`)).trim();
          const active = /\[([^\]]+)\]/.exec(before)?.[1];
          assert.ok(active, `${kind} ${q}: no active scheduler in "${before}"`);
          assert.match(before, /mq-deadline/, `${kind} ${q}: ${before}`);
          try {
            await sshOk(host, `echo bfq > ${q}`);
            assert.match((await sshOk(host, `cat ${q}`)).trim(), /\[bfq\]/, `${kind}: bfq not selected`);
          } finally {
            await sshOk(host, `echo ${active} > ${q}`);
          }
          assert.equal((await sshOk(host, `cat ${q}`)).trim().includes(`[${active}]`), true);
        }
      });

      if (flavor.libvirt === "running") {
        it("runs libvirtd", async function () {
          assert.equal((await sshRun(host, "systemctl is-active libvirtd")).stdout.trim(), "active");
          await sshOk(host, "virsh -c qemu:///system version >/dev/null");
        });
      } else {
        // Debian packages no modular daemons (virtqemud ...): libvirtd lives as they do on RHEL.
        it("starts libvirtd through its sockets (not at boot), with the shipped idle timeout", async function () {
          assert.equal((await sshRun(host, "systemctl is-enabled libvirtd.service")).stdout.trim(), "disabled");
          const sockets = ["libvirtd.socket", "libvirtd-ro.socket", "libvirtd-admin.socket"];
          assert.deepEqual((await sshRun(host, `systemctl is-enabled ${sockets.join(" ")}`)).stdout.trim().split("\n"), sockets.map(() => "enabled"));
          assert.equal((await sshRun(host, "systemctl is-active libvirtd.socket")).stdout.trim(), "active");
          await sshOk(host, "virsh -c qemu:///system version >/dev/null");
          assert.equal((await sshRun(host, "systemctl is-active libvirtd.service")).stdout.trim(), "active");
          assert.match(await sshOk(host, "ps -o args= -C libvirtd"), /--timeout 120/);
        });
      }

      it("has the network, tuning and security daemons of its flavor", async function () {
        const active = async (unit: string) => (await sshRun(host, `systemctl is-active ${unit}`)).stdout.trim() === "active";
        assert.equal(await active("NetworkManager"), flavor.networkManager, "NetworkManager active");
        if (flavor.networkManager) {
          // Every NIC the lab gives a host is managed and connected: the virtio management NIC and each igb PF.
          const nics = await sshOk(host, 'for d in /sys/class/net/*; do case "$(basename "$(readlink $d/device/driver 2>/dev/null)")" in virtio_net|igb) echo ${d##*/};; esac; done');
          const devs = await sshOk(host, "nmcli -t -f DEVICE,STATE,CONNECTION device");
          for (const nic of nics.trim().split("\n")) {
            assert.match(devs, new RegExp(`^${nic}:connected:lab-(mgmt|pf)$`, "m"), `${nic} in:\n${devs}`);
          }
        }
        assert.equal(await active("tuned"), flavor.tunedProfile !== undefined, "tuned active");
        if (flavor.tunedProfile) {
          assert.match(await sshOk(host, "tuned-adm active"), new RegExp(`Current active profile: ${flavor.tunedProfile}$`, "m"));
        }
        const enforce = (await sshRun(host, "getenforce")).stdout.trim();
        assert.equal(enforce || "Disabled", flavor.selinux ?? "Disabled", "getenforce");
        if (flavor.selinux) {
          assert.match(await sshOk(host, "cat /proc/cmdline"), /selinux=1/);
          // The files the lab writes at boot carry their policy labels (restorecon -n lists what it would change).
          const wrong = await sshOk(host, "restorecon -n -v -R /etc/ssh /root/.ssh /home/tuner/.ssh /etc/hostname /etc/hosts");
          assert.equal(wrong.trim(), "", wrong);
        }
      });

      it("starts a nested KVM guest pinned to node 1 whose huge pages come from node 1 only", async function () {
        const dom = "kvmtune-selftest";
        const xml = `<domain type='kvm'>
  <name>${dom}</name>
  <memory unit='KiB'>65536</memory>
  <currentMemory unit='KiB'>65536</currentMemory>
  <memoryBacking><hugepages><page size='2048' unit='KiB'/></hugepages></memoryBacking>
  <vcpu placement='static'>2</vcpu>
  <cputune>
    <vcpupin vcpu='0' cpuset='2'/>
    <vcpupin vcpu='1' cpuset='3'/>
    <emulatorpin cpuset='2-3'/>
  </cputune>
  <numatune><memory mode='strict' nodeset='1'/></numatune>
  <os><type arch='x86_64' machine='pc'>hvm</type></os>
  <on_poweroff>destroy</on_poweroff>
  <devices>
    <emulator>/usr/bin/qemu-system-x86_64</emulator>
    <memballoon model='none'/>
  </devices>
</domain>
`;
        const cleanup = `virsh destroy ${dom} >/dev/null 2>&1; virsh undefine ${dom} >/dev/null 2>&1; true`;
        await sshOk(host, cleanup);
        try {
          await setPools(host, [16, 48]);
          assert.equal(await readInt(host, nodeHp(0, "free_hugepages")), 16);
          assert.equal(await readInt(host, nodeHp(1, "free_hugepages")), 48);
          await sshOk(host, `cat > /tmp/${dom}.xml && virsh define /tmp/${dom}.xml >/dev/null`, { input: xml });
          await sshOk(host, `virsh start ${dom}`);
          assert.equal((await sshOk(host, `virsh domstate ${dom}`)).trim(), "running");
          const free0 = await readInt(host, nodeHp(0, "free_hugepages"));
          const free1 = await readInt(host, nodeHp(1, "free_hugepages"));
          assert.equal(free0, 16, "node0 gave huge pages to a guest bound to node1");
          assert.equal(48 - free1, 32, `node1 should give the guest's 32 pages (64 MiB); free ${free1} of 48`);
          const pins = await sshOk(host, `virsh vcpupin ${dom}`);
          assert.match(pins, /^\s*0\s+2\s*$/m);
          assert.match(pins, /^\s*1\s+3\s*$/m);
          assert.match(await sshOk(host, `virsh emulatorpin ${dom}`), /\*:\s+2-3/);
          assert.match(await sshOk(host, `virsh numatune ${dom}`), /numa_mode\s*:\s*strict[\s\S]*numa_nodeset\s*:\s*1/);
          // It really is a KVM guest (the lab host's emulated CPU has SVM).
          assert.match(await sshOk(host, `ps -o args= -C qemu-system-x86_64`), /accel=kvm|-enable-kvm|accel kvm/);
        } finally {
          await sshOk(host, `${cleanup}; rm -f /tmp/${dom}.xml`);
          await setPools(host, [0, 0]);
        }
        assert.equal((await sshRun(host, `virsh dominfo ${dom}`)).code === 0, false, "domain still defined");
        assert.equal(await readInt(host, nodeHp(0, "nr_hugepages")), 0);
        assert.equal(await readInt(host, nodeHp(1, "nr_hugepages")), 0);
      });

      it(`lets ${host.sudoUser} log in with the lab key and sudo without a password`, async function () {
        assert.equal((await sshOk(host, "id -un", { user: host.sudoUser })).trim(), host.sudoUser);
        assert.equal((await sshOk(host, "sudo -n id -u", { user: host.sudoUser })).trim(), "0");
      });
    });
  }
});
