#!/usr/bin/env bash
# The benchmark's own tools (not the tests'): Debian's `ansible` package, which carries the
# community.libvirt and ansible.posix collections the playbook uses. Idempotent and quick when
# installed; kept out of .ci/run and npm test, since the bench is not a test.
set -euo pipefail
if ! dpkg-query -W -f='${Status}\n' ansible 2>/dev/null | grep -q 'install ok installed'; then
  echo "bench: installing ansible (Debian package)" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq ansible >/dev/null
fi
# The collections come with the package; say so plainly if a future package drops one.
have=$(ansible-galaxy collection list 2>/dev/null)
for c in community.libvirt ansible.posix community.general; do
  grep -q "^$c " <<<"$have" || { echo "bench: the ansible package has no collection $c" >&2; exit 1; }
done
