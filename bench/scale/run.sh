#!/usr/bin/env bash
# npm run bench:scale -- --hosts N [--disks D] [--parallel P] [--keep] [--out FILE]:
# kvmtune's fleet program against N simulated hosts on this machine (bench/scale/run.ts).
# Needs root (each host is an sshd in its own mount namespace) and OpenSSH's server, which it
# installs from Debian's packages when missing. The engine is picked (or built, then cached) by
# tools/pulumi-bin.sh before any timing starts.
set -euo pipefail
repo=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$repo"
[ "$(id -u)" = 0 ] || { echo "bench:scale: run as root (mount namespaces, sshd)" >&2; exit 1; }
if [ ! -x /usr/sbin/sshd ]; then
  echo "bench:scale: installing openssh-server (sshd)" >&2
  apt-get update -q >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y -q openssh-server >&2
fi
export PATH="/usr/local/go/bin:$PATH"
[ -d node_modules ] || npm ci
npm run build --silent
bash tools/pulumi-bin.sh >/dev/null
exec node bin/bench/scale/run.js "$@"
