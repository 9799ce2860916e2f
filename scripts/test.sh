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
# The engine is built before the suites so its build time is not charged to a test's timeout.
bash tools/build-pulumi.sh >/dev/null
# The lab's self-test first (if the hosts are broken, nothing after it means much), then the
# transport, then each resource's suite.
suites=(bin/test/lab/lab.test.js bin/test/lab/transport.test.js)
for f in bin/test/lab/*.test.js; do
  case " ${suites[*]} " in *" $f "*) ;; *) suites+=("$f") ;; esac
done
"${mocha[@]}" --timeout 900000 "${suites[@]}"

echo "== end-to-end tests (Pulumi CLI)"
"${mocha[@]}" --timeout 1800000 'bin/test/e2e/**/*.test.js'
