#!/usr/bin/env bash
# npm start: the main job. Builds kvmtune, boots the lab when the stack configures no hosts, then
# converges the program with `pulumi up --refresh` (the hosts are read first, see below). The stack is `lab` unless KVMTUNE_STACK names another.
set -euo pipefail
repo=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"
stack=${KVMTUNE_STACK:-lab}

[ -d node_modules ] || npm ci
npm run build --silent

pulumi() { bash scripts/pulumi.sh "$@"; }
pulumi stack select --create "$stack" --non-interactive >/dev/null

if ! pulumi config get kvmtune:hosts --stack "$stack" >/dev/null 2>&1; then
  echo "kvmtune: stack '$stack' configures no hosts (kvmtune:hosts): using the lab" >&2
  bash lab/lab.sh up
fi

# --refresh: read every host before changing it. The state file says what kvmtune last applied, not
# what the hosts hold now: a reinstalled host, a guest undefined or a udev rule removed by hand is
# found by the read (gone resources are re-created, drifted ones corrected) and what `up` prints is
# the hosts' state. Without it, `up` would trust the state file and report bare hosts as unchanged.
pulumi up --refresh --yes --stack "$stack" --non-interactive
# Where each host's topology picture went (written by the program after the host was converged).
pulumi stack output hosts --json --stack "$stack" | node -e '
  const hosts = JSON.parse(require("fs").readFileSync(0, "utf8"));
  for (const [name, h] of Object.entries(hosts)) if (h.topology) console.log(`kvmtune: ${name} topology: ${h.topology}`);
'
echo "kvmtune: stack '$stack' is up. Stop the lab with: npm run lab -- down" >&2
