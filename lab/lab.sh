#!/usr/bin/env bash
# kvmtune lab: real KVM test hosts as VMs on this machine.  npm run lab -- <command>
#   up [--hosts N]   deps, images (cached), boot lab1..labN (default 2), wait for SSH, write inventory
#   up NAME...       the same for the hosts named only (others are left as they are)
#   down             stop the VMs this lab started (by their pid files)
#   status           what runs, where, on which flavor
#   reset [NAME...]  fresh copy-on-write overlays and data disks (of those hosts; default all); running hosts restart on them
#   reboot NAME      reboot through the guest, wait until SSH answers again
#   ssh NAME [cmd]   root shell or command on a host
# Environment: KVMTUNE_LAB_FLAVORS (INDEX:FLAVOR,...; default 2:trixie: lab2 on Debian 13, the rest bookworm; empty: all bookworm),
#   KVMTUNE_LAB_PORT_BASE (default 2200: labN on 2200+N), KVMTUNE_LAB_STATE (default REPO/.lab).
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
HOST_SH="$LAB_DIR/host.sh"

usage() { sed -n '2,11s/^# \{0,1\}//p' "${BASH_SOURCE[0]}"; exit "${1:-0}"; }

running_hosts() { local h; for h in $(known_hosts_list); do [ -n "$(host_pid "$h")" ] && echo "$h"; done; return 0; }

# known_hosts with each host's pinned key (lib.sh), and the inventory of the running hosts.
write_client_files() {
  local h i fp first=1 tmp
  write_known_hosts
  tmp="$(mktemp "$STATE/.inventory.XXXXXX")"
  {
    printf '{\n  "knownHostsPath": "%s",\n  "hosts": [' "$KNOWN_HOSTS"
    for h in $(running_hosts); do
      i="$(host_index "$h")"
      fp="$(ssh-keygen -lf "$(host_dir "$h")/ssh_host_ed25519_key.pub" | cut -d' ' -f2)"
      [ $first = 1 ] || printf ','
      first=0
      printf '\n    {"name":"%s","host":"127.0.0.1","port":%d,"user":"root","privateKeyPath":"%s","hostKey":"%s","sudoUser":"tuner","flavor":"%s"}' \
        "$h" "$(host_port "$i")" "$SSH_KEY" "$fp" "$(host_image_flavor "$h")"
    done
    printf '\n  ]\n}\n'
  } >"$tmp"
  mv "$tmp" "$INVENTORY"
}

# Run "host.sh wait" for several hosts at once; fail if any fails.
wait_all() {
  local -a pids=() names=(); local h rc=0 i
  for h in "$@"; do "$HOST_SH" wait "$h" & pids+=($!); names+=("$h"); done
  for i in "${!pids[@]}"; do wait "${pids[$i]}" || { log "${names[$i]} did not come up"; rc=1; }; done
  return $rc
}
each_parallel() { # ACTION HOST...
  local action="$1"; shift
  local -a pids=(); local h rc=0 p
  for h in "$@"; do "$HOST_SH" "$action" "$h" & pids+=($!); done
  for p in "${pids[@]}"; do wait "$p" || rc=1; done
  return $rc
}

cmd_up() {
  local n=2 only=0 h i f
  local -a want=() flavors=()
  while [ $# -gt 0 ]; do
    case "$1" in
      --hosts) n="${2:-}"; shift 2 ;;
      --hosts=*) n="${1#*=}"; shift ;;
      lab*) host_index "$1" >/dev/null; want+=("$1"); only=1; shift ;;
      *) die "up: unknown argument $1" ;;
    esac
  done
  [[ "$n" =~ ^[0-9]+$ ]] && [ "$n" -ge 1 ] && [ "$n" -le 20 ] || die "--hosts wants 1..20"
  [ $only = 1 ] || for ((i = 1; i <= n; i++)); do want+=("$(host_name "$i")"); done
  need_root
  local t0; t0=$(date +%s)
  "$LAB_DIR/deps.sh"
  for h in "${want[@]}"; do f="$(host_flavor "$(host_index "$h")")"; [[ " ${flavors[*]} " == *" $f "* ]] || flavors+=("$f"); done
  for f in "${flavors[@]}"; do "$LAB_DIR/build-image.sh" "$f"; done
  # Hosts beyond N stop (not when hosts are named); hosts on an older image stop and get a fresh
  # overlay on the new one.
  for h in $(running_hosts); do
    i="$(host_index "$h")"
    [ $only = 1 ] || [ "$i" -le "$n" ] || { "$HOST_SH" stop "$h"; continue; }
    [[ " ${want[*]} " == *" $h "* ]] || continue
    if [ "$(cat "$(host_dir "$h")/image-key" 2>/dev/null)" != "$(image_key "$(host_flavor "$i")")" ]; then
      log "$h runs on an older image: restarting it on image $(image_key "$(host_flavor "$i")")"; "$HOST_SH" stop "$h"
    fi
  done
  for h in "${want[@]}"; do "$HOST_SH" start "$h"; done
  write_client_files
  log "waiting for SSH on ${want[*]} (up to $BOOT_TIMEOUT s each, in parallel)"
  wait_all "${want[@]}" || die "not all hosts came up (console logs: $STATE/hosts/NAME/console.log)"
  write_client_files
  prune_images
  log "up: ${#want[@]} host(s) answer SSH, $(($(date +%s) - t0)) s in all; inventory: $INVENTORY"
}

cmd_down() {
  local -a hs; mapfile -t hs < <(running_hosts)
  [ ${#hs[@]} -gt 0 ] && each_parallel stop "${hs[@]}"
  [ -d "$STATE" ] && write_client_files
  log "down: no lab host runs"
}

cmd_status() {
  local h pid i any=0 f want
  printf '%-6s %-8s %-8s %-16s %-9s %s\n' NAME STATE PID SSH FLAVOR IMAGE
  for h in $(known_hosts_list); do
    any=1; pid="$(host_pid "$h")"; i="$(host_index "$h")"
    # The flavor its disk is on; KVMTUNE_LAB_FLAVORS's choice too, when `up`/`reset` has not applied it yet.
    f="$(host_image_flavor "$h")"; want="$(host_flavor "$i")"
    [ "${f:-$want}" = "$want" ] || f="$f(wants:$want)"
    printf '%-6s %-8s %-8s %-16s %-9s %s\n' "$h" "$([ -n "$pid" ] && echo running || echo stopped)" "${pid:--}" \
      "127.0.0.1:$(host_port "$i")" "${f:-$want}" "$(cat "$(host_dir "$h")/image-key" 2>/dev/null || echo -)"
  done
  [ $any = 1 ] || echo "(no lab hosts; run: npm run lab -- up)"
  for f in $(lab_flavors); do
    printf 'image key for the current %s definition: %s (%s)\n' "$f" "$(image_key "$f")" \
      "$([ -f "$(image_dir "$f")/base.img" ] && echo cached || echo not built)"
  done
  [ -f "$INVENTORY" ] && printf 'inventory: %s\n' "$INVENTORY"
  return 0
}

cmd_reset() { # [NAME...]: those hosts only; default every host
  local -a all run=() h
  if [ $# -gt 0 ]; then
    for h in "$@"; do [ -d "$(host_dir "$h")" ] || die "reset: no lab host $h"; done
    all=("$@")
  else
    mapfile -t all < <(known_hosts_list)
  fi
  [ ${#all[@]} -gt 0 ] || { log "reset: no lab hosts"; return 0; }
  for h in "${all[@]}"; do [ -z "$(host_pid "$h")" ] || run+=("$h"); done
  [ ${#run[@]} -gt 0 ] && each_parallel stop "${run[@]}"
  each_parallel fresh "${all[@]}"
  if [ ${#run[@]} -gt 0 ]; then
    for h in "${run[@]}"; do "$HOST_SH" start "$h"; done
    wait_all "${run[@]}" || die "reset: not all hosts came back"
  fi
  write_client_files
  log "reset: fresh overlays for ${all[*]}${run:+; running again: ${run[*]}}"
  # The hosts are bare now, as if reinstalled (same host keys: the lab keeps them outside the image).
  log "reset: stacks that managed these hosts (the 'lab' stack, test stacks) now hold stale state; the next" \
    "'npm start' reads the hosts first (pulumi refresh) and converges them again"
}

cmd_reboot() {
  local h="${1:-}"; [ -n "$h" ] || die "usage: reboot NAME"
  [ -n "$(host_pid "$h")" ] || die "$h does not run"
  local old; old="$(lab_ssh "$h" cat /proc/sys/kernel/random/boot_id)" || die "$h: no SSH"
  log "$h: rebooting through the guest"
  lab_ssh "$h" 'systemctl reboot --no-block' || true
  "$HOST_SH" wait "$h" "$old"
}

cmd_ssh() {
  local h="${1:-}"; [ -n "$h" ] || die "usage: ssh NAME [command]"; shift
  [ -d "$(host_dir "$h")" ] || die "no lab host $h"
  if [ $# -eq 0 ]; then
    local -a opts; mapfile -t opts < <(ssh_opts "$h")
    exec ssh -t "${opts[@]}" root@127.0.0.1
  fi
  lab_ssh "$h" "$@"
}

sub="${1:-}"; [ $# -gt 0 ] && shift
case "$sub" in
  up) cmd_up "$@" ;;
  down) cmd_down ;;
  status) cmd_status ;;
  reset) cmd_reset "$@" ;;
  reboot) cmd_reboot "$@" ;;
  ssh) cmd_ssh "$@" ;;
  -h|--help|help) usage 0 ;;
  *) usage 1 ;;
esac
