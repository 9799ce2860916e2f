#!/usr/bin/env bash
# One lab host's life: host.sh prepare|start|stop|fresh|wait NAME
#   prepare  keys, data disks and a copy-on-write overlay on the cached base image (if missing)
#   start    boot the VM (qemu, TCG) unless it runs; returns at once (see wait)
#   stop     poweroff through the guest, then SIGTERM/SIGKILL to the pid in its pid file
#   fresh    new overlay and data disks (the host must be stopped); host keys are kept
#   wait     until SSH answers (optional 3rd arg: a boot id that must have changed)
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

cmd="${1:-}"; NAME="${2:-}"; OLD_BOOT_ID="${3:-}"
[ -n "$cmd" ] && [ -n "$NAME" ] || die "usage: host.sh prepare|start|stop|fresh|wait NAME"
IDX="$(host_index "$NAME")"
PORT="$(host_port "$IDX")"
FLAVOR="$(host_flavor "$IDX")"
DIR="$(host_dir "$NAME")"
DATA_DISK_SIZE=1G

client_key() {
  mkdir -p "$STATE/ssh"; chmod 700 "$STATE/ssh"
  [ -f "$SSH_KEY" ] || ssh-keygen -q -t ed25519 -N '' -C "kvmtune-lab" -f "$SSH_KEY"
}

prepare() {
  local base key
  key="$(image_key "$FLAVOR")"; base="$IMAGES/$key/base.img"
  [ -f "$base" ] || die "no image $key yet (run: lab/build-image.sh $FLAVOR)"
  mkdir -p "$DIR/fw"
  client_key
  # The host's SSH identity is made here, once, and kept across reset: clients pin its fingerprint.
  [ -f "$DIR/ssh_host_ed25519_key" ] || ssh-keygen -q -t ed25519 -N '' -C "root@$NAME" -f "$DIR/ssh_host_ed25519_key"
  # Pinned at once, so `wait` can check it without `lab.sh up` having run on this state folder.
  write_known_hosts
  cp "$DIR/ssh_host_ed25519_key" "$DIR/fw/ssh_host_ed25519_key"
  cp "$DIR/ssh_host_ed25519_key.pub" "$DIR/fw/ssh_host_ed25519_key.pub"
  cp "$SSH_KEY.pub" "$DIR/fw/authorized_keys"
  printf '%s' "$NAME" >"$DIR/fw/hostname"
  chmod 600 "$DIR/fw/ssh_host_ed25519_key"
  # An overlay on an older image is replaced (the host must be stopped to get here with a new image).
  if [ -f "$DIR/root.qcow2" ] && [ "$(cat "$DIR/image-key" 2>/dev/null)" != "$key" ]; then
    [ -z "$(host_pid "$NAME")" ] || die "$NAME runs on an older image; stop it first"
    rm -f "$DIR/root.qcow2" "$DIR"/vdb.img "$DIR"/scsi.img "$DIR"/nvme.img
  fi
  if [ ! -f "$DIR/root.qcow2" ]; then
    qemu-img create -q -f qcow2 -F raw -b "$base" "$DIR/root.qcow2"
    printf '%s\n' "$key" >"$DIR/image-key"
  fi
  mark_image_user "$key" "$DIR"
  local d
  for d in vdb scsi nvme; do [ -f "$DIR/$d.img" ] || truncate -s "$DATA_DISK_SIZE" "$DIR/$d.img"; done
}

start() {
  if [ -n "$(host_pid "$NAME")" ]; then log "$NAME already runs (pid $(host_pid "$NAME"))"; return 0; fi
  prepare
  local hx; hx="$(printf '%02x' "$IDX")"
  local -a sriov
  if [ "${KVMTUNE_LAB_SRIOV:-pxb}" = pxb ]; then
    # One igb PF per NUMA node, each behind its own PCIe expander bridge that carries numa_node,
    # so the guest sees (ACPI _PXM) which node each PF and its VFs belong to.
    sriov=(
      -device pxb-pcie,id=pxb0,bus_nr=32,numa_node=0,bus=pcie.0
      -device pcie-root-port,id=rp_sr0,bus=pxb0,chassis=10,slot=0
      -netdev hubport,id=sr0,hubid=10
      -device "igb,bus=rp_sr0,netdev=sr0,mac=52:54:00:$hx:10:00"
      -device pxb-pcie,id=pxb1,bus_nr=64,numa_node=1,bus=pcie.0
      -device pcie-root-port,id=rp_sr1,bus=pxb1,chassis=11,slot=0
      -netdev hubport,id=sr1,hubid=11
      -device "igb,bus=rp_sr1,netdev=sr1,mac=52:54:00:$hx:11:00"
    )
  else
    sriov=(
      -device pcie-root-port,id=rp_sr0,bus=pcie.0,chassis=10,slot=10
      -netdev hubport,id=sr0,hubid=10
      -device "igb,bus=rp_sr0,netdev=sr0,mac=52:54:00:$hx:10:00"
    )
  fi
  rm -f "$DIR/qemu.pid"
  : >"$DIR/console.log"
  # Memory: q35 puts the first 2 GiB below 4 GiB and the rest from 4 GiB up, so node 0 (4 GiB)
  # holds 0-2 and 4-6 GiB and node 1 (2 GiB) 6-8 GiB. The kernel reserves 1 GiB pages at boot
  # from memory it has not used yet, and its own early allocations go top-down (the top GiB of
  # each node); the GiB below is free on each node, so a 1 GiB page per node is possible (`-cpu
  # max` has pdpe1gb). Seen on the lab: with 1.5 GiB per node node 0 had no free aligned GiB, and
  # with 3 GiB (0-2 and 4-5 GiB) the kernel's allocations took 4-5 GiB: node 0 got no page.
  # The virtual IOMMU (first device; split irqchip for its interrupt remapping) gives VFs IOMMU
  # groups, so a guest can be handed one through vfio-pci. Debian's kernel turns it on by itself;
  # the image carries no tuning arguments, kvmtune sets them.
  # One machine for every flavor: only the disk image differs.
  "$QEMU" -name "$NAME,debug-threads=on" \
    -machine q35,kernel-irqchip=split -accel tcg,thread=multi -cpu max \
    -smp 4,sockets=2,cores=2,threads=1 -m 6G \
    -object memory-backend-ram,id=m0,size=4G -object memory-backend-ram,id=m1,size=2G \
    -numa node,nodeid=0,cpus=0-1,memdev=m0 -numa node,nodeid=1,cpus=2-3,memdev=m1 \
    -nodefaults -display none -vga none -rtc base=utc \
    -device intel-iommu,intremap=on,caching-mode=on,device-iotlb=off \
    -serial "file:$DIR/console.log" \
    -qmp "unix:$DIR/qmp.sock,server=on,wait=off" \
    -daemonize -pidfile "$DIR/qemu.pid" \
    -drive "if=none,id=root,file=$DIR/root.qcow2,format=qcow2,discard=unmap" \
    -device "virtio-blk-pci,drive=root,serial=$NAME-root,bootindex=1" \
    -drive "if=none,id=vdb,file=$DIR/vdb.img,format=raw" \
    -device "virtio-blk-pci,drive=vdb,serial=$NAME-vdb" \
    -device virtio-scsi-pci,id=scsi0 \
    -drive "if=none,id=sda,file=$DIR/scsi.img,format=raw" \
    -device "scsi-hd,bus=scsi0.0,drive=sda,serial=$NAME-scsi" \
    -drive "if=none,id=nvme0,file=$DIR/nvme.img,format=raw" \
    -device "nvme,drive=nvme0,serial=$NAME-nvme" \
    -netdev "user,id=mgmt,restrict=on,hostfwd=tcp:127.0.0.1:$PORT-:22" \
    -device "virtio-net-pci,netdev=mgmt,mac=52:54:00:$hx:00:01" \
    "${sriov[@]}" \
    -fw_cfg "name=opt/kvmtune/hostname,file=$DIR/fw/hostname" \
    -fw_cfg "name=opt/kvmtune/ssh_host_ed25519_key,file=$DIR/fw/ssh_host_ed25519_key" \
    -fw_cfg "name=opt/kvmtune/ssh_host_ed25519_key.pub,file=$DIR/fw/ssh_host_ed25519_key.pub" \
    -fw_cfg "name=opt/kvmtune/authorized_keys,file=$DIR/fw/authorized_keys" \
    2>"$DIR/qemu.err" || { cat "$DIR/qemu.err" >&2; die "$NAME: qemu failed to start"; }
  log "$NAME started (pid $(cat "$DIR/qemu.pid"), ssh 127.0.0.1:$PORT)"
}

stop() {
  local pid i; pid="$(host_pid "$NAME")"
  [ -n "$pid" ] || { rm -f "$DIR/qemu.pid"; return 0; }
  log "$NAME: stopping (pid $pid)"
  local -a opts; mapfile -t opts < <(ssh_opts "$NAME")
  if timeout 15 ssh "${opts[@]}" root@127.0.0.1 'systemctl poweroff --no-block' >/dev/null 2>&1; then
    for ((i = 0; i < 90; i++)); do kill -0 "$pid" 2>/dev/null || break; sleep 1; done
  fi
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < 20; i++)); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
    kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null || true
  fi
  rm -f "$DIR/qemu.pid" "$DIR/qmp.sock"
  log "$NAME: stopped"
}

fresh() {
  [ -z "$(host_pid "$NAME")" ] || die "$NAME runs; stop it first"
  rm -f "$DIR/root.qcow2" "$DIR"/vdb.img "$DIR"/scsi.img "$DIR"/nvme.img
  prepare
  log "$NAME: fresh overlay and data disks"
}

# Waits for SSH; a host that does not answer in time, or whose kernel is stuck, is power-cycled once.
# A TCG guest now and then hangs on its way down or up: a vCPU never wakes from HLT (RCU stalls on
# the console), or sshd never sends its banner. A QMP system_reset is not enough (the next boot
# stalled the same way in CI): a new QEMU process boots as the first one did. The lab is a
# fixture, not the thing under test: power-cycle it as a BMC would, and wait once more.
# A refused host key (wait_ssh returns 3) is not a hung host: it is reported, not power-cycled.
wait_or_reset() {
  local rc=0
  wait_ssh "$NAME" "$BOOT_TIMEOUT" "$OLD_BOOT_ID" || rc=$?
  [ "$rc" = 0 ] && return 0
  [ "$rc" = 3 ] && die "$NAME answers, but SSH refuses its host key: run 'lab/host.sh prepare $NAME' to write $KNOWN_HOSTS from the host's key, then wait again"
  [ -n "$(host_pid "$NAME")" ] || die "$NAME: qemu is not running"
  log "$NAME: power-cycling the machine (a new QEMU process)"
  stop
  start
  rc=0; wait_ssh "$NAME" "$BOOT_TIMEOUT" "$OLD_BOOT_ID" || rc=$?
  [ "$rc" = 0 ] || die "$NAME: no SSH after a power cycle either (see SSH's error above)"
}

case "$cmd" in
  prepare) prepare ;;
  start) start ;;
  stop) stop ;;
  fresh) fresh ;;
  wait) wait_or_reset ;;
  *) die "unknown host command: $cmd" ;;
esac
