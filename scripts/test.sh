#!/usr/bin/env bash
# npm test: every test. Unit tests first (no hosts needed), then the lab suites and the end-to-end
# suite through the Pulumi CLI. Boots the lab when it is not running, and stops it again after.
set -euo pipefail
repo=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"

[ -d node_modules ] || npm ci
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
"${mocha[@]}" --timeout 900000 'bin/test/lab/**/*.test.js'

echo "== end-to-end tests (Pulumi CLI)"
"${mocha[@]}" --timeout 1800000 'bin/test/e2e/**/*.test.js'
