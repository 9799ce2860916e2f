#!/usr/bin/env bash
# npm run plan: what `pulumi up` of the stack would do, per host, in a few lines an operator reads
# before saying yes: replaced, deleted, created, host reboots (which settings), guest restarts (which
# guest, which fields), applied live. It runs `pulumi preview --json` through scripts/pulumi.sh and
# renders it with resources/planCli.ts (how each field is applied comes from the resources' own field
# policy, as the preview's changePlan). The stack is `lab` unless KVMTUNE_STACK names another; other
# arguments go to `pulumi preview` (e.g. --refresh). Needs a built bin/ (`npm run plan` builds first).
set -euo pipefail
repo=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"
stack=${KVMTUNE_STACK:-lab}

preview=$(mktemp)
trap 'rm -f -- "$preview"' EXIT
# The preview's exit code matters less than its document: a failed preview still writes its errors
# there, and the renderer shows them (and exits 2).
rc=0
bash scripts/pulumi.sh preview --json --non-interactive --stack "$stack" "$@" >"$preview" || rc=$?
if [ ! -s "$preview" ]; then
  echo "kvmtune plan: pulumi preview printed nothing (exit $rc); its errors are above" >&2
  exit 1
fi
node bin/resources/planCli.js --stack "$stack" "$preview" || exit $?
exit "$rc"
