#!/usr/bin/env bash
# npm start: the main job. Builds kvmtune, boots the lab when the stack configures no hosts, then
# reads the hosts (`pulumi refresh`), prints the plan, and converges the program with `pulumi up`. The stack is `lab` unless KVMTUNE_STACK names another.
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

# Read every host before changing it. The state file says what kvmtune last applied, not what the
# hosts hold now: a reinstalled host, a guest undefined or a udev rule removed by hand is found by
# the read (gone resources are dropped and re-created below, drifted ones corrected), and the plan
# and the update start from the hosts' state. Without it, `up` would trust the state file and report
# bare hosts as unchanged. The refresh, the plan's preview and the update each run once: the same
# work as `up --refresh --yes`, with the plan shown before anything changes.
pulumi refresh --yes --skip-preview --stack "$stack" --non-interactive
KVMTUNE_STACK="$stack" bash scripts/plan.sh # per host: what changes and how (scripts/plan.sh), then apply it
pulumi up --yes --skip-preview --stack "$stack" --non-interactive
# Where each host's topology picture and full detail went (written by the program after the host was converged).
pulumi stack output hosts --json --stack "$stack" | node -e '
  const hosts = JSON.parse(require("fs").readFileSync(0, "utf8"));
  for (const [name, h] of Object.entries(hosts)) {
    if (h.topology) console.log(`kvmtune: ${name} topology: ${h.topology}`);
    if (h.detail) console.log(`kvmtune: ${name} detail: ${h.detail}`);
  }
'
echo "kvmtune: stack '$stack' is up. Stop the lab with: npm run lab -- down" >&2
