#!/usr/bin/env bash
# npm run bench [-- --quick | --hosts 1,2,3 --resources 5,20,50 --reset lab|teardown ...]:
# kvmtune against an Ansible playbook of the same lab tuning, on the lab hosts of
# $KVMTUNE_LAB_INVENTORY (default .lab/inventory.json). Builds first; see bench/run.ts for options.
set -euo pipefail
repo=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"
bash bench/deps.sh
[ -d node_modules ] || npm ci
npm run build --silent
# The engine is built (or found cached) before any timing starts.
bash tools/build-pulumi.sh >/dev/null
exec node bin/bench/run.js "$@"
