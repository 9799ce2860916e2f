#!/usr/bin/env bash
# npm test: every test. Unit tests first (no hosts needed), then the lab suites and the end-to-end
# suite through the Pulumi CLI. Boots the lab when it is not running, and stops it again after.
set -euo pipefail
repo=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"

[ -d node_modules ] || npm ci
bash scripts/test-deps.sh
npm run build --silent
mocha=(npx mocha --reporter spec)

echo "== unit tests"
"${mocha[@]}" 'bin/test/unit/**/*.test.js'

echo "== lab tests"
started_lab=0
if ! bash lab/lab.sh status | grep -qw running; then started_lab=1; fi
stop_lab() { [ "$started_lab" = 1 ] && bash lab/lab.sh down || true; }
trap stop_lab EXIT
bash lab/lab.sh up
lab_state="${KVMTUNE_LAB_STATE:-$repo/.lab}"
# The engine is built before the suites so its build time is not charged to a test's timeout.
bash tools/pulumi-bin.sh >/dev/null
# The lab's self-test first (if the hosts are broken, nothing after it means much), then the
# transport, across all hosts.
"${mocha[@]}" --timeout 900000 bin/test/lab/lab.test.js bin/test/lab/transport.test.js
# Then each resource's suite. A suite names its host with suiteHost(0) or suiteHost(1)
# (test/lab/labHosts.ts); the two groups run side by side, each with an inventory of its one host,
# so that a slow TCG host does not wait for the other. Lines are prefixed with the host's name.
rm -f "$lab_state"/suite-host*.json
node -e '
  const fs = require("fs"); const [inv, dir] = process.argv.slice(1);
  const lab = JSON.parse(fs.readFileSync(inv, "utf8"));
  lab.hosts.slice(0, 2).forEach((h, i) =>
    fs.writeFileSync(`${dir}/suite-host${i}.json`, JSON.stringify({ ...lab, hosts: [h] }, null, 1)));
' "${KVMTUNE_LAB_INVENTORY:-$lab_state/inventory.json}" "$lab_state"
group0=(); group1=()
for f in bin/test/lab/*.test.js; do
  case "$f" in bin/test/lab/lab.test.js|bin/test/lab/transport.test.js) continue ;; esac
  if grep -q 'suiteHost(1)' "test/lab/$(basename "$f" .js).ts"; then group1+=("$f"); else group0+=("$f"); fi
done
run_group() { # INDEX SUITE...
  local i="$1"; shift
  KVMTUNE_LAB_INVENTORY="$lab_state/suite-host$i.json" KVMTUNE_LAB_STATE="$lab_state" \
    "${mocha[@]}" --timeout 900000 "$@" 2>&1 | sed -u "s/^/[host$i] /"
  return "${PIPESTATUS[0]}"
}
[ -f "$lab_state/suite-host1.json" ] || { group0+=("${group1[@]}"); group1=(); }
run_group 0 "${group0[@]}" & g0=$!
rc1=0; [ ${#group1[@]} -eq 0 ] || { run_group 1 "${group1[@]}" || rc1=$?; }
rc0=0; wait "$g0" || rc0=$?
[ "$rc0" = 0 ] && [ "$rc1" = 0 ] || { echo "lab suites failed (host0 exit $rc0, host1 exit $rc1)"; exit 1; }

echo "== end-to-end tests (Pulumi CLI)"
"${mocha[@]}" --timeout 1800000 'bin/test/e2e/**/*.test.js'
