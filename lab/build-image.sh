#!/usr/bin/env bash
# build-image.sh [FLAVOR]: builds one flavor's base disk image (default bookworm) once and caches it
# under ~/.cache/kvmtune/lab/images/<key>/base.img, key = FLAVOR-hash of its definition (lib.sh image_key:
# this script, lab/image/'s shared files and lab/image/flavors/FLAVOR/). Every flavor takes the same
# steps; flavor.env says what differs (suite, units to enable and disable):
#   mmdebstrap SUITE with the shared and the flavor's packages.txt (one apt run) ->
#   copy lab/image/rootfs/ then the flavor's rootfs/ over it -> users, units, fstab -> an MBR disk
#   with one ext4 partition made straight from the tree (mke2fs -d) -> one boot with -kernel/-initrd
#   that runs grub-install, update-grub and the flavor's firstboot.d steps from inside and powers
#   off. Hosts then boot through Debian's GRUB on their disk.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
need_root

FLAVOR="${1:-$DEFAULT_FLAVOR}"
check_flavor "$FLAVOR"
FLAVOR_DIR="$FLAVORS_DIR/$FLAVOR"
KEY="$(image_key "$FLAVOR")"
OUT="$IMAGES/$KEY"
if [ -f "$OUT/base.img" ]; then
  log "image $KEY is cached ($OUT)"
  exit 0
fi

DISK_SIZE_MIB=8192
SUITE="" ENABLE_UNITS="" DISABLE_UNITS=""
# shellcheck source=/dev/null
source "$FLAVOR_DIR/flavor.env"
[ -n "$SUITE" ] || die "$FLAVOR_DIR/flavor.env sets no SUITE"
# The machine's own Debian mirror (read from its apt sources) serves every suite a flavor uses.
MIRROR="$(debian_mirror)"
DEBCACHE="$CACHE_ROOT/debs"            # downloaded .debs, kept between builds
WORK="$IMAGES/build-$KEY.$$"     # beside the images, out of reach of the old prune (lib.sh IMAGES)
ROOTFS="$WORK/rootfs"
DISK="$WORK/base.img"
mkdir -p "$WORK" "$DEBCACHE/apt/partial"

umount_chroot() {
  local m
  for m in var/cache/apt/archives dev/pts dev sys proc; do
    mountpoint -q "$ROOTFS/$m" 2>/dev/null && umount -l "$ROOTFS/$m"
  done
  return 0
}
cleanup() { umount_chroot; [ -n "${KEEP_WORK:-}" ] || rm -rf "$WORK"; }
trap cleanup EXIT

t0=$(date +%s)
step() { log "image $KEY: $* (+$(($(date +%s) - t0)) s)"; }

mapfile -t PKGS < <(cat "$LAB_DIR/image/packages.txt" "$FLAVOR_DIR/packages.txt" | grep -v '^\s*#' | grep -v '^\s*$')
step "mmdebstrap $SUITE with ${#PKGS[@]} packages"
# One apt run installs everything (unsafe-io: the tree goes into an image file anyway). Downloaded
# .debs stay in $DEBCACHE. The initramfs is made once, at the end: packages installed after the
# kernel would each trigger a full rebuild of it, so update-initramfs is a no-op until then.
mmdebstrap --mode=root --variant=apt --format=directory \
  --include="$(IFS=,; echo "${PKGS[*]}")" \
  --dpkgopt=force-unsafe-io --aptopt='APT::Install-Recommends "false"' \
  --skip=download/empty \
  --setup-hook="mkdir -p \"\$1/var/cache/apt/archives\" && mount --bind '$DEBCACHE/apt' \"\$1/var/cache/apt/archives\"" \
  --essential-hook='chroot "$1" dpkg-divert --quiet --local --rename --add /usr/sbin/update-initramfs' \
  --essential-hook='printf "#!/bin/sh\nexit 0\n" >"$1/usr/sbin/update-initramfs"; chmod 755 "$1/usr/sbin/update-initramfs"' \
  --essential-hook='printf "%s\n" "grub-pc grub-pc/install_devices_empty boolean true" "grub-pc grub-pc/install_devices multiselect" | chroot "$1" debconf-set-selections' \
  --customize-hook='umount "$1/var/cache/apt/archives"' \
  "$SUITE" "$ROOTFS" "$MIRROR" >"$WORK/mmdebstrap.log" 2>&1 \
  || { tail -n 40 "$WORK/mmdebstrap.log" >&2; die "mmdebstrap failed"; }

mount -t proc proc "$ROOTFS/proc"
mount -t sysfs sysfs "$ROOTFS/sys"
mount --bind /dev "$ROOTFS/dev"
mount --bind /dev/pts "$ROOTFS/dev/pts"
in_root() { LC_ALL=C DEBIAN_FRONTEND=noninteractive chroot "$ROOTFS" "$@"; }
# Some postinsts can stay half done after a big install (seen with debootstrap: no libvirt-qemu user).
if [ -n "$(in_root dpkg --audit)" ]; then in_root dpkg --configure -a >>"$WORK/mmdebstrap.log" 2>&1; fi
[ -z "$(in_root dpkg --audit)" ] || { in_root dpkg --audit >&2; die "packages left unconfigured"; }
in_root getent passwd libvirt-qemu >/dev/null || die "libvirt-qemu user missing after install"

step "configure"
for d in "$LAB_DIR/image/rootfs" "$FLAVOR_DIR/rootfs"; do
  [ -d "$d" ] && tar -C "$d" --owner=root --group=root -cf - . | tar -C "$ROOTFS" -xf -
done
chmod 755 "$ROOTFS"/usr/local/sbin/kvmtune-*
[ -d "$ROOTFS/usr/local/lib/kvmtune/firstboot.d" ] && chmod 755 "$ROOTFS"/usr/local/lib/kvmtune/firstboot.d/*
chmod 440 "$ROOTFS/etc/sudoers.d/tuner"
# NetworkManager ignores a connection file that others can read.
[ -d "$ROOTFS/etc/NetworkManager/system-connections" ] && chmod 600 "$ROOTFS"/etc/NetworkManager/system-connections/*
in_root visudo -cf /etc/sudoers.d/tuner >/dev/null
in_root useradd --create-home --shell /bin/bash --groups sudo,libvirt,kvm tuner
in_root usermod -p '*' root
in_root usermod -p '*' tuner
# Disabled before enabling: disabling a service also disables the units its Also= names, which a
# flavor may want enabled (trixie: libvirtd's sockets without libvirtd.service). A unit the flavor
# names but the image lacks is an error: an enable that did not happen is the kind of silent
# difference between flavors the lab must not have.
for u in apt-daily.timer apt-daily-upgrade.timer e2scrub_all.timer e2scrub_reap.service fstrim.timer \
         libvirt-guests.service $DISABLE_UNITS; do
  in_root systemctl disable "$u" >/dev/null 2>&1 || true
done
for u in kvmtune-identity.service $ENABLE_UNITS; do
  in_root systemctl enable "$u" >>"$WORK/units.log" 2>&1 || { cat "$WORK/units.log" >&2; die "cannot enable $u"; }
done
for u in kvmtune-identity.service $ENABLE_UNITS; do
  [ "$(in_root systemctl is-enabled "$u" 2>/dev/null)" = enabled ] || die "$u is not enabled in the image"
done
for u in $DISABLE_UNITS; do
  case "$(in_root systemctl is-enabled "$u" 2>/dev/null)" in enabled|static|alias) die "$u is still enabled in the image" ;; esac
done
rm -f "$ROOTFS/etc/libvirt/qemu/networks/autostart/default.xml"
UUID="$(cat /proc/sys/kernel/random/uuid)"
printf 'UUID=%s / ext4 errors=remount-ro 0 1\n' "$UUID" >"$ROOTFS/etc/fstab"
printf 'lab\n' >"$ROOTFS/etc/hostname"
rm -f "$ROOTFS"/etc/ssh/ssh_host_*
# The image carries no package sources: lab hosts have no network beyond the lab's loopback SSH.
rm -f "$ROOTFS/etc/apt/sources.list" "$ROOTFS"/etc/apt/sources.list.d/*
rm -rf "$ROOTFS"/var/lib/apt/lists/*
KVER="$(basename "$(ls "$ROOTFS"/boot/vmlinuz-* | sort -V | tail -n1)")"; KVER="${KVER#vmlinuz-}"
step "initramfs for $KVER"
rm -f "$ROOTFS/usr/sbin/update-initramfs"
in_root dpkg-divert --quiet --local --rename --remove /usr/sbin/update-initramfs
in_root update-initramfs -c -k "$KVER" >"$WORK/initramfs.log" 2>&1 || { cat "$WORK/initramfs.log" >&2; die "update-initramfs failed"; }
[ -f "$ROOTFS/boot/initrd.img-$KVER" ] || die "no initrd for $KVER"
in_root lsinitramfs "/boot/initrd.img-$KVER" >"$WORK/initramfs.list"
for m in virtio_blk ext4; do grep -q "/$m.ko" "$WORK/initramfs.list" || die "initramfs lacks $m"; done
umount_chroot

step "disk: MBR + ext4 from the tree (${DISK_SIZE_MIB} MiB, sparse)"
truncate -s "${DISK_SIZE_MIB}M" "$DISK"
printf 'label: dos\nstart=2048, type=83, bootable\n' | sfdisk -q "$DISK"
mke2fs -q -t ext4 -F -U "$UUID" -L lab-root -d "$ROOTFS" -E offset=1048576 "$DISK" "$((DISK_SIZE_MIB - 1))M"

step "first boot: grub-install + update-grub inside the image (TCG)"
timeout 900 "$QEMU" -machine q35 -accel tcg,thread=multi -cpu max -smp 2 -m 1G \
  -display none -no-reboot -nodefaults -serial "file:$WORK/firstboot.log" \
  -drive "file=$DISK,format=raw,if=virtio" \
  -kernel "$ROOTFS/boot/vmlinuz-$KVER" -initrd "$ROOTFS/boot/initrd.img-$KVER" \
  -append "root=UUID=$UUID rw console=ttyS0,115200n8 init=/usr/local/sbin/kvmtune-grub-firstboot panic=-1" \
  || { tail -n 30 "$WORK/firstboot.log" >&2; die "first boot failed or timed out"; }
grep -q KVMTUNE-FIRSTBOOT-OK "$WORK/firstboot.log" \
  || { tail -n 30 "$WORK/firstboot.log" >&2; die "grub-install/update-grub failed in the first boot"; }
dd if="$DISK" bs=512 count=1 status=none | grep -aq GRUB || die "no GRUB in the disk's MBR"

# users/: the hosts on this image record themselves there (lib.sh prune_images).
mkdir -p "$OUT/users"
cp "$WORK/firstboot.log" "$WORK/apt.log" "$OUT/" 2>/dev/null || true
printf 'key=%s\nflavor=%s\nsuite=%s\nkernel=%s\nroot_uuid=%s\nbuilt=%s\nbuild_seconds=%s\n' \
  "$KEY" "$FLAVOR" "$SUITE" "$KVER" "$UUID" "$(date -u +%FT%TZ)" "$(($(date +%s) - t0))" >"$OUT/image.env"
chmod 444 "$DISK"
mv "$DISK" "$OUT/base.img"
step "done: $OUT/base.img"
