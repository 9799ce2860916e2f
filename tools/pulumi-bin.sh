#!/usr/bin/env bash
# Decides which Pulumi CLI kvmtune's scripts run (scripts/pulumi.sh, and through
# tools/pulumiEngine.ts the Automation API helper) and prints it on stdout as two
# lines, the source and then the bin folder:
#
#   env      $KVMTUNE_PULUMI_BIN, as given (your own install)
#   path     the folder of the `pulumi` found on PATH (your own install)
#   build    the folder tools/build-pulumi.sh built from Go modules (cached)
#
# The rule, in order:
#   1. KVMTUNE_PULUMI_BIN set: that folder, no questions asked.
#   2. A `pulumi` on PATH that is new enough and has a Node.js language host
#      (`pulumi-language-nodejs` beside it or on PATH, as every real install
#      has): that one. "New enough" means at least the @pulumi/pulumi SDK this
#      repository runs with (node_modules, else package.json): Pulumi supports
#      an engine newer than the SDK, not an older one.
#   3. Otherwise the build of tools/build-pulumi.sh (minutes the first time,
#      then cached under ~/.cache/kvmtune/pulumi-cli/).
# Which one and why goes to stderr in one line.
#
# Callers move PULUMI_HOME to ~/.cache/kvmtune/pulumi-home only for `build`: a
# CLI of your own keeps your PULUMI_HOME (logins, plugins).
#
#   --which   decide and say why, but do not build: for `build`, print the
#             source line only. (`npm run pulumi:which`)
set -euo pipefail

repo=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/.." && pwd)
which_only=0
[ "${1:-}" = --which ] && which_only=1

say() { printf 'kvmtune: %s\n' "$*" >&2; }

# The SDK version the repository's program runs with: the floor for a CLI on PATH.
sdk_version() {
  local f
  for f in "$repo/node_modules/@pulumi/pulumi/package.json" "$repo/package.json"; do
    [ -f "$f" ] || continue
    if [ "$f" = "$repo/package.json" ]; then
      # "@pulumi/pulumi": "3.270.0" in devDependencies (a peer range has a leading >=, ^ or ~).
      sed -n 's/^ *"@pulumi\/pulumi": *"[^0-9]*\([0-9][0-9.]*\)".*/\1/p' "$f" | tail -n 1
    else
      sed -n 's/^ *"version": *"\([0-9][^"]*\)".*/\1/p' "$f" | head -n 1
    fi
    return 0
  done
}

# True when version $1 >= version $2 (both x.y.z; a pre-release suffix counts as its x.y.z).
version_at_least() {
  local have=${1#v} want=${2#v}
  have=${have%%[-+]*} want=${want%%[-+]*}
  [ "$(printf '%s\n%s\n' "$want" "$have" | sort -V | head -n 1)" = "$want" ]
}

choose() { # SOURCE BIN WHY
  say "using the Pulumi CLI in $2 ($3)"
  printf '%s\n%s\n' "$1" "$2"
  exit 0
}

if [ -n "${KVMTUNE_PULUMI_BIN:-}" ]; then
  choose env "$KVMTUNE_PULUMI_BIN" "KVMTUNE_PULUMI_BIN"
fi

why_not_path="no pulumi on PATH"
if on_path=$(command -v pulumi 2>/dev/null) && [ -n "$on_path" ]; then
  floor=$(sdk_version)
  floor=${floor:-0.0.0}
  have=$(PULUMI_SKIP_UPDATE_CHECK=true timeout 60 "$on_path" version 2>/dev/null | head -n 1 | tr -d '[:space:]') || have=""
  # A symlinked pulumi (e.g. /usr/local/bin/pulumi -> ~/.pulumi/bin/pulumi) has its plugins
  # beside the real file.
  dir=$(dirname -- "$on_path")
  real_dir=$(dirname -- "$(readlink -f -- "$on_path")")
  if [ -x "$dir/pulumi-language-nodejs" ]; then
    host="beside it"
  elif [ -x "$real_dir/pulumi-language-nodejs" ]; then
    dir=$real_dir host="beside it"
  elif command -v pulumi-language-nodejs >/dev/null 2>&1; then
    host="on PATH"
  else
    host=""
  fi
  if [ -z "$have" ] || ! [[ "${have#v}" =~ ^[0-9]+\.[0-9]+\.[0-9]+ ]]; then
    why_not_path="$on_path does not say its version ('$on_path version' printed '${have}')"
  elif ! version_at_least "$have" "$floor"; then
    why_not_path="$on_path is $have, older than the @pulumi/pulumi SDK here ($floor); upgrade it or set KVMTUNE_PULUMI_BIN"
  elif [ -z "$host" ]; then
    why_not_path="$on_path has no pulumi-language-nodejs beside it or on PATH"
  else
    choose path "$dir" "$have on PATH, at least the SDK's $floor, language host $host"
  fi
fi

if [ "$which_only" = 1 ]; then
  say "would build the Pulumi CLI with tools/build-pulumi.sh ($why_not_path)"
  printf 'build\n'
  exit 0
fi
say "building or reusing the Pulumi CLI of tools/build-pulumi.sh ($why_not_path)"
bin=$(bash "$repo/tools/build-pulumi.sh" | tail -n 1)
[ -n "$bin" ] || { say "tools/build-pulumi.sh printed no bin folder"; exit 1; }
printf 'build\n%s\n' "$bin"
