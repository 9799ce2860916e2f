#!/bin/bash
# Runs ON a lab host (the bench sends it over SSH: `bash -s -- ACTION ARGS < bench/host.sh`).
#   prepare        sshd logs every session (LogLevel VERBOSE), so the bench counts connections and
#                  remote commands from the host's own log
#   reset          puts back what either tool changes (kvmtune's files and Ansible's), as a fresh lab
#                  host has it, so each tool starts from the same state without a 2-3 min lab reset
#   loops N        exactly N bench loop devices (1 MiB sparse files); prints "INDEX DEVICE" lines
#   cleanup        reset, no loop devices, sshd's log level as it was
set -euo pipefail
DIR=/var/tmp/kvmtune-bench
SSHD_CONF=/etc/ssh/sshd_config.d/kvmtune-bench.conf
VIRSH="virsh -q -c qemu:///system"

prepare() {
  if [ ! -f "$SSHD_CONF" ]; then
    printf '# kvmtune bench: log each session so connections and commands can be counted\nLogLevel VERBOSE\n' >"$SSHD_CONF"
    systemctl reload ssh
  fi
}

reset_host() {
  # The guest and the network (both tools name them the same).
  $VIRSH destroy demo-db >/dev/null 2>&1 || true
  $VIRSH undefine demo-db --managed-save >/dev/null 2>&1 || true
  $VIRSH net-destroy tuned >/dev/null 2>&1 || true
  $VIRSH net-undefine tuned >/dev/null 2>&1 || true
  # Bridges either tool's network left (libvirt removes its own on net-destroy).
  for b in kvmt-tuned virbr-tuned; do ip link del "$b" >/dev/null 2>&1 || true; done
  # Persistence files of both tools, and kvmtune's own (SR-IOV scripts, ownership claims): the
  # bench drops kvmtune's state without a destroy, so a claim left here would refuse the next run.
  local units="kvmtune-hugepages-2M.service lab-hugepages-2M.service lab-sriov.service" u
  for u in /etc/systemd/system/kvmtune-sriov-*.service; do [ -e "$u" ] && units="$units ${u##*/}"; done
  systemctl disable $units >/dev/null 2>&1 || true
  for u in $units; do rm -f "/etc/systemd/system/$u"; done
  rm -rf /etc/kvmtune
  rm -f /etc/modules-load.d/kvmtune-vhost-net.conf /etc/libvirt/hooks/network.d/kvmtune-*
  rmdir /etc/libvirt/hooks/network.d /etc/libvirt/hooks 2>/dev/null || true
  if grep -qs 'Managed by kvmtune' /etc/systemd/system/dev-hugepages.mount; then
    systemctl disable dev-hugepages.mount >/dev/null 2>&1 || true
    rm -f /etc/systemd/system/dev-hugepages.mount
  fi
  sed -i '\|^hugetlbfs /dev/hugepages |d' /etc/fstab
  rm -f /etc/udev/rules.d/61-kvmtune-elevator-*.rules /etc/udev/rules.d/60-lab-elevators.rules
  rm -f /etc/modules-load.d/lab-vhost-net.conf
  systemctl daemon-reload
  udevadm control --reload
  # Live settings back to a fresh host's: schedulers none (a switch resets the tunables too).
  for q in /sys/block/*/queue/scheduler; do
    grep -q 'none' "$q" 2>/dev/null && echo none >"$q" 2>/dev/null || true
  done
  # SR-IOV PFs as a fresh host has them: no VFs, link down.
  for f in /sys/class/net/*/device/sriov_numvfs; do
    [ -f "$f" ] || continue
    [ "$(cat "$f")" != 0 ] && echo 0 >"$f"
    f=${f%/device/sriov_numvfs}
    ip link set "${f##*/}" down 2>/dev/null || true
  done
  for f in /sys/devices/system/node/node*/hugepages/hugepages-*/nr_hugepages; do echo 0 >"$f"; done
  # Anything left over is a bug in this script, not something to time around.
  local left
  left=$(grep -h . /sys/devices/system/node/node*/hugepages/hugepages-*/nr_hugepages | grep -v '^0$' || true)
  [ -z "$left" ] || { echo "reset: huge pages still allocated: $left" >&2; exit 1; }
  if $VIRSH dominfo demo-db >/dev/null 2>&1; then echo "reset: demo-db still defined" >&2; exit 1; fi
}

loops() {
  local want=$1 i f dev
  mkdir -p "$DIR"
  # Detach bench loops beyond N, so the host has exactly N extra disks (facts scale with disks).
  for f in "$DIR"/loop*.img; do
    [ -e "$f" ] || continue
    i=${f##*/loop}; i=${i%.img}
    if [ "$i" -ge "$want" ]; then
      for dev in $(losetup -j "$f" -O NAME -n); do losetup -d "$dev"; done
      rm -f "$f"
    fi
  done
  # Detached loop devices stay in /sys/block, and every read of /sys/block/* pays for them: remove
  # the unbound ones the bench's losetup created (a fresh host has loop0..loop7), LOOP_CTL_REMOVE.
  python3 - <<'PY'
import fcntl, os, re
ctl = os.open("/dev/loop-control", os.O_RDWR)
for name in os.listdir("/sys/block"):
    m = re.fullmatch(r"loop(\d+)", name)
    if m and int(m.group(1)) >= 8 and not os.path.exists(f"/sys/block/{name}/loop"):
        try:
            fcntl.ioctl(ctl, 0x4C81, int(m.group(1)))
        except OSError:
            pass
PY
  for ((i = 0; i < want; i++)); do
    f=$DIR/loop$i.img
    [ -e "$f" ] || truncate -s 1M "$f"
    dev=$(losetup -j "$f" -O NAME -n | head -n 1)
    [ -n "$dev" ] || dev=$(losetup --find --show "$f")
    echo "$i ${dev#/dev/}"
  done
}

cleanup() {
  reset_host
  loops 0 >/dev/null
  rmdir "$DIR" 2>/dev/null || true
  if [ -f "$SSHD_CONF" ]; then rm -f "$SSHD_CONF"; systemctl reload ssh; fi
}

case "${1:-}" in
  prepare) prepare ;;
  reset) reset_host ;;
  loops) loops "${2:?loops N}" ;;
  cleanup) cleanup ;;
  *) echo "usage: host.sh prepare|reset|loops N|cleanup" >&2; exit 2 ;;
esac
