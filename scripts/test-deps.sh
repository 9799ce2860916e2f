#!/usr/bin/env bash
# The Debian packages the tests use beside the lab's own (lab/deps.sh): libvirt's
# virt-xml-validate (and the xmllint it runs, which it does not pull in without recommends) for the generated XML, and headless Chromium to look at the topology picture.
# Idempotent and quick when they are already installed.
set -euo pipefail
pkgs=(libvirt-clients libxml2-utils chromium fonts-dejavu-core)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
echo "kvmtune: installing test tools: ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
