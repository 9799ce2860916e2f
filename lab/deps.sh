#!/usr/bin/env bash
# Installs what the lab needs on this machine: qemu 10 from bookworm-backports (bookworm's 7.2 has no
# igb), debootstrap and disk tools. Idempotent, and quick when everything is already there.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
need_root

PKGS=(mmdebstrap qemu-system-x86 qemu-utils e2fsprogs fdisk util-linux openssh-client
      coreutils findutils procps debian-archive-keyring)
BACKPORTS_SOURCES=/etc/apt/sources.list.d/kvmtune-backports.sources

qemu_ok() {
  command -v "$QEMU" >/dev/null 2>&1 || return 1
  local v; v="$("$QEMU" --version | sed -n 's/^QEMU emulator version \([0-9]*\)\..*/\1/p')"
  [ "${v:-0}" -ge 10 ] && "$QEMU" -device help 2>/dev/null | grep -q '"igb"'
}
missing_pkgs() {
  local p
  for p in "${PKGS[@]}"; do
    dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -q 'install ok installed' || printf '%s\n' "$p"
  done
}

missing="$(missing_pkgs)"
if [ -z "$missing" ] && qemu_ok; then
  exit 0
fi

if [ ! -f "$BACKPORTS_SOURCES" ] && ! grep -rqs 'bookworm-backports' /etc/apt/sources.list /etc/apt/sources.list.d/; then
  mirror="$(debian_mirror)"
  log "adding the bookworm-backports suite (same mirror as this machine's bookworm source)"
  printf 'Types: deb\nURIs: %s\nSuites: bookworm-backports\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' \
    "$mirror" >"$BACKPORTS_SOURCES"
fi

log "installing: $(echo $missing) qemu-system-x86/bookworm-backports"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# shellcheck disable=SC2086
apt-get install -y -qq --no-install-recommends $missing >/dev/null
apt-get install -y -qq --no-install-recommends -t bookworm-backports qemu-system-x86 qemu-utils >/dev/null
qemu_ok || die "$QEMU is not qemu >= 10 with the igb device after installing"
log "dependencies ready: $("$QEMU" --version | head -n1)"
