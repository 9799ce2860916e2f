# Shared helpers for the kvmtune lab. Sourced by the other lab scripts; not run on its own.
set -euo pipefail

LAB_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_ROOT="$(cd "$LAB_DIR/.." && pwd)"
STATE="${KVMTUNE_LAB_STATE:-$REPO_ROOT/.lab}"
CACHE_ROOT="${XDG_CACHE_HOME:-$HOME/.cache}/kvmtune/lab"
# Built images, one folder per key. Not CACHE_ROOT itself: the lab before flavors keeps its images
# there and prunes every folder there that holds a base.img its own hosts do not use, so it removed
# this lab's images (seen: another checkout's `up` deleted both flavors' images under running hosts).
IMAGES="$CACHE_ROOT/images"
SSH_KEY="$STATE/ssh/id_ed25519"
KNOWN_HOSTS="$STATE/known_hosts"
INVENTORY="$STATE/inventory.json"
QEMU="${KVMTUNE_LAB_QEMU:-qemu-system-x86_64}"
# Seconds to wait for a host's sshd after qemu starts (TCG on 2 shared cores is slow).
BOOT_TIMEOUT="${KVMTUNE_LAB_BOOT_TIMEOUT:-420}"

log() { printf '[lab %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { printf '[lab] error: %s\n' "$*" >&2; exit 1; }

need_root() { [ "$(id -u)" = 0 ] || die "the lab needs root (debootstrap, chroot)"; }

# Image flavors: lab/image/flavors/NAME/ (flavor.env, packages.txt, rootfs/) on top of the files
# every flavor shares (lab/image/packages.txt, lab/image/rootfs/). KVMTUNE_LAB_FLAVORS names each
# host's flavor (comma-separated INDEX:FLAVOR); a host it does not name is bookworm. Unset, it is
# "2:trixie": lab1 runs Debian 12 and lab2 Debian 13 (issue 16: the suites of host 1's CI group run
# there, the e2e suite on both). Set it empty for an all-bookworm lab.
FLAVORS_DIR="$LAB_DIR/image/flavors"
DEFAULT_FLAVOR=bookworm
lab_flavors() { find "$FLAVORS_DIR" -mindepth 1 -maxdepth 1 -type d -printf '%f\n' | LC_ALL=C sort; }
check_flavor() { [ -f "$FLAVORS_DIR/${1:-}/flavor.env" ] || die "no lab image flavor '${1:-}' (have: $(lab_flavors | tr '\n' ' '))"; }
host_flavor() { # INDEX
  local item flavor="$DEFAULT_FLAVOR" list="${KVMTUNE_LAB_FLAVORS-2:trixie}"
  for item in ${list//,/ }; do
    [[ "$item" =~ ^([0-9]+):([a-z0-9-]+)$ ]] || die "KVMTUNE_LAB_FLAVORS: '$item' is not INDEX:FLAVOR (e.g. 2:trixie)"
    check_flavor "${BASH_REMATCH[2]}"
    [ "${BASH_REMATCH[1]}" = "$1" ] && flavor="${BASH_REMATCH[2]}"
  done
  printf '%s\n' "$flavor"
}

# The files that define a flavor's image: the build script, the shared files and the flavor's own.
# Their hash, with the flavor's name, is the cache key (FLAVOR-HASH): change one and that flavor's
# image is rebuilt; another flavor's files do not touch it. lib.sh is left out on purpose: it holds
# paths, ports and SSH helpers, nothing that ends up in the image.
image_inputs() { # FLAVOR
  printf '%s\n' "$LAB_DIR/build-image.sh" "$LAB_DIR/image/packages.txt"
  find "$LAB_DIR/image/rootfs" "$FLAVORS_DIR/$1" -type f | LC_ALL=C sort
}
image_key() { # [FLAVOR]
  local flavor="${1:-$DEFAULT_FLAVOR}"; check_flavor "$flavor"
  printf '%s-' "$flavor"
  { printf 'flavor %s\n' "$flavor"
    image_inputs "$flavor" | while read -r f; do printf '%s\n' "${f#"$LAB_DIR"/}"; sha256sum <"$f"; done
  } | sha256sum | cut -c1-16
}
# The flavor of an image key (keys from before flavors are a bare hash: bookworm).
key_flavor() { case "$1" in *-*) printf '%s\n' "${1%%-*}" ;; *) printf '%s\n' "$DEFAULT_FLAVOR" ;; esac; }
# The flavor a host's disk is on (what it runs), which lags KVMTUNE_LAB_FLAVORS until `up` or `reset`.
host_image_flavor() { local k; k="$(cat "$(host_dir "$1")/image-key" 2>/dev/null)" || return 0; key_flavor "$k"; }
image_dir() { printf '%s/%s\n' "$IMAGES" "$(image_key "${1:-}")"; }

host_name() { printf 'lab%d\n' "$1"; }
host_index() { local n="${1#lab}"; [[ "$n" =~ ^[0-9]+$ ]] && [ "$n" -ge 1 ] && [ "$n" -le 99 ] || die "not a lab host name: $1"; printf '%d\n' "$n"; }
# Host N listens on 127.0.0.1:(PORT_BASE+N); another base lets a second lab run beside the first.
PORT_BASE="${KVMTUNE_LAB_PORT_BASE:-2200}"
[[ "$PORT_BASE" =~ ^[0-9]+$ ]] && [ "$PORT_BASE" -ge 1024 ] && [ "$PORT_BASE" -le 65000 ] || die "KVMTUNE_LAB_PORT_BASE wants 1024..65000"
host_port() { printf '%d\n' $((PORT_BASE + $1)); }
host_dir() { printf '%s/hosts/%s\n' "$STATE" "$1"; }

# The pid of a running lab VM, or nothing. Checks that the pid really is our qemu (pids get reused).
host_pid() {
  local dir pid; dir="$(host_dir "$1")"
  [ -f "$dir/qemu.pid" ] || return 0
  pid="$(cat "$dir/qemu.pid" 2>/dev/null || true)"
  [[ "$pid" =~ ^[0-9]+$ ]] || return 0
  if [ -r "/proc/$pid/cmdline" ] && tr '\0' ' ' <"/proc/$pid/cmdline" | grep -qF -- "$dir/qemu.pid"; then
    printf '%s\n' "$pid"
  fi
}

ssh_opts() { # NAME
  local i; i="$(host_index "$1")"
  printf '%s\n' -i "$SSH_KEY" -p "$(host_port "$i")" \
    -o UserKnownHostsFile="$KNOWN_HOSTS" -o StrictHostKeyChecking=yes -o GlobalKnownHostsFile=/dev/null \
    -o BatchMode=yes -o ConnectTimeout=10 -o ServerAliveInterval=5 -o ServerAliveCountMax=6 \
    -o LogLevel=ERROR
}
# known_hosts with each prepared host's pinned key ([127.0.0.1]:PORT lines). Written where a host's
# key is made (host.sh prepare), so `host.sh wait` works with a state folder `lab.sh up` never saw.
# Hosts are prepared side by side: the lock keeps one writer's older view from replacing another's.
write_known_hosts() {
  local h tmp
  mkdir -p "$STATE"
  (
    flock 9
    tmp="$(mktemp "$STATE/.known_hosts.XXXXXX")"
    for h in $(known_hosts_list); do
      [ -f "$(host_dir "$h")/ssh_host_ed25519_key.pub" ] || continue
      printf '[127.0.0.1]:%d %s\n' "$(host_port "$(host_index "$h")")" "$(cut -d' ' -f1,2 "$(host_dir "$h")/ssh_host_ed25519_key.pub")" >>"$tmp"
    done
    chmod 644 "$tmp"; mv "$tmp" "$KNOWN_HOSTS"
  ) 9>"$STATE/.known_hosts.lock"
}

lab_ssh() { # NAME [command...]
  local name="$1"; shift
  local -a opts; mapfile -t opts < <(ssh_opts "$name")
  ssh "${opts[@]}" root@127.0.0.1 "$@"
}

# Wait until NAME answers SSH (and, if given, with a boot id other than OLD_BOOT_ID).
# Returns 1 on timeout, 2 when the guest's kernel is stuck, 3 when SSH refuses the host's key (the
# host is up and answering: waiting longer or power-cycling it cannot help). On failure SSH's own
# error, the stderr of the last attempt, is shown.
wait_ssh() { # NAME TIMEOUT [OLD_BOOT_ID]
  local err rc=0; err="$(mktemp)"
  wait_ssh_noting_errors "$err" "$@" || rc=$?
  rm -f "$err"
  return "$rc"
}
wait_ssh_noting_errors() { # STDERR_FILE NAME TIMEOUT [OLD_BOOT_ID]
  local err="$1" name="$2" timeout="$3" old="${4:-}" start now id pid stalls
  local -a opts; mapfile -t opts < <(ssh_opts "$name")
  local console; console="$(host_dir "$name")/console.log"
  local from; from=$(($(stat -c %s "$console" 2>/dev/null || echo 0) + 1))
  start=$(date +%s)
  while :; do
    now=$(date +%s)
    pid="$(host_pid "$name")"
    if [ -z "$pid" ]; then
      log "$name: qemu is not running; last console lines:"; tail -n 20 "$console" >&2 || true
      return 1
    fi
    if id="$(timeout 30 ssh "${opts[@]}" root@127.0.0.1 cat /proc/sys/kernel/random/boot_id 2>"$err")" \
       && [ -n "$id" ] && [ "$id" != "$old" ]; then
      log "$name: SSH answers after $(($(date +%s) - start)) s"
      return 0
    fi
    if grep -q 'Host key verification failed' "$err"; then
      log "$name: SSH refused the host's key (known_hosts: $KNOWN_HOSTS; the host's key: $(host_dir "$name")/ssh_host_ed25519_key.pub). SSH said:"
      sed 's/^/  /' "$err" >&2
      return 3
    fi
    # A TCG guest whose vCPU never wakes from HLT reports an RCU stall every ~21 s and never gets
    # further: after four reports it is not coming up by itself.
    stalls=$(tail -c +"$from" "$console" 2>/dev/null | grep -c 'rcu_preempt detected stalls' || true)
    if [ "${stalls:-0}" -ge 4 ]; then
      log "$name: the guest's kernel is stuck (RCU stalls); last console lines:"; tail -n 8 "$console" >&2 || true
      return 2
    fi
    if [ $((now - start)) -ge "$timeout" ]; then
      log "$name: no SSH after $timeout s; last console lines:"; tail -n 20 "$console" >&2 || true
      log "$name: the last SSH attempt said:"; if [ -s "$err" ]; then sed 's/^/  /' "$err" >&2; else echo "  (nothing: it timed out)" >&2; fi
      return 1
    fi
    sleep 3
  done
}

# All lab host names that have a state directory, sorted by index.
known_hosts_list() {
  [ -d "$STATE/hosts" ] || return 0
  find "$STATE/hosts" -mindepth 1 -maxdepth 1 -type d -name 'lab*' -printf '%f\n' | sort -V
}

# The Debian mirror this machine's apt already uses for bookworm (read, never hard-coded).
debian_mirror() {
  local uri=""
  shopt -s nullglob
  local f
  for f in /etc/apt/sources.list.d/*.sources; do
    uri="$(awk -v RS='' '
      { types=""; suites=""; uris="" ; n=split($0, L, "\n")
        for (i=1;i<=n;i++) {
          if (L[i] ~ /^Types:/)  types=L[i]
          if (L[i] ~ /^Suites:/) suites=L[i]
          if (L[i] ~ /^URIs:/)   uris=L[i]
        }
        if (types ~ /(^|[ \t])deb([ \t]|$)/ && suites ~ /[ \t]bookworm([ \t]|$)/ && uris != "") {
          sub(/^URIs:[ \t]*/, "", uris); split(uris, U, /[ \t]+/); print U[1]; exit
        } }' "$f")"
    [ -n "$uri" ] && break
  done
  if [ -z "$uri" ] && [ -f /etc/apt/sources.list ]; then
    uri="$(awk '$1=="deb" && $0 ~ /[ \t]bookworm[ \t]/ { for (i=2;i<=NF;i++) if ($i ~ /^[a-z]+:\/\//) { print $i; exit } }' /etc/apt/sources.list)"
  fi
  shopt -u nullglob
  [ -n "$uri" ] || die "no bookworm source found in /etc/apt/sources.list.d/*.sources or /etc/apt/sources.list"
  printf '%s\n' "${uri%/}"
}

# The image cache is shared by every checkout and state folder on this machine, but a state folder
# only knows its own hosts. So each host that takes an image records itself in the image's users/
# (a file naming the host's folder), and an image is pruned only when it has such records and none
# of them still points at a host on it, and the current definition does not name it. Images
# without users/ (made by an older lab, perhaps another checkout's hosts run on them) are left
# alone (and those in CACHE_ROOT itself, from before flavors, are not even looked at). Downloaded
# packages ($CACHE_ROOT/debs) are kept.
mark_image_user() { # KEY HOST_DIR
  mkdir -p "$IMAGES/$1/users"
  printf '%s\n' "$2" >"$IMAGES/$1/users/$(printf '%s' "$2" | sha256sum | cut -c1-16)"
}
prune_images() {
  local d k u used f; local -a cur=()
  for f in $(lab_flavors); do cur+=("$(image_key "$f")"); done
  for d in "$IMAGES"/*/; do
    d="${d%/}"; k="$(basename "$d")"
    [ -f "$d/base.img" ] && [ -d "$d/users" ] || continue
    [[ " ${cur[*]} " == *" $k "* ]] && continue
    used=0
    for u in "$d"/users/*; do
      [ -f "$u" ] || continue
      if [ "$(cat "$(cat "$u")/image-key" 2>/dev/null)" = "$k" ]; then used=1; else rm -f "$u"; fi
    done
    [ $used = 1 ] && continue
    rm -rf "$d"; log "removed unused image $k"
  done
  return 0
}
