#!/usr/bin/env bash
# Runs the Pulumi CLI for kvmtune: `npm run pulumi -- ARGS` (or
# `bash scripts/pulumi.sh ARGS`), from the repo root, so the repo's
# Pulumi.yaml is the project unless you pass --cwd/-C.
#
# Which CLI: tools/pulumi-bin.sh decides and says why on stderr. In order:
# KVMTUNE_PULUMI_BIN=/path/to/bin (a folder holding `pulumi` and
# `pulumi-language-nodejs`); else a `pulumi` on PATH at least as new as the
# @pulumi/pulumi SDK here and with its Node.js language host; else the one
# tools/build-pulumi.sh builds from Go modules (the first call builds it,
# minutes; later calls reuse the cache). `bash tools/pulumi-bin.sh --which`
# says which without building.
#
# Environment it sets (tools/pulumiEngine.ts gives the Automation API the
# same; keep them in step):
#   PULUMI_BACKEND_URL   file://<repo>/.pulumi-state unless you set one: state
#                        stays local, no Pulumi Cloud login.
#   PULUMI_HOME          only for the CLI built here: ~/.cache/kvmtune/pulumi-home
#                        unless you set one, keeping its workspace/plugin state
#                        out of ~/.pulumi. A CLI of your own keeps your
#                        PULUMI_HOME (your logins and plugins).
#   PULUMI_SKIP_UPDATE_CHECK=true, PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION=true:
#                        no network calls; plugins come from PATH only.
#   PATH                 the engine's bin folder first, because the engine
#                        looks up pulumi-language-nodejs and
#                        pulumi-resource-pulumi-nodejs on PATH.
#   PULUMI_CONFIG_PASSPHRASE=kvmtune-lab  only for the `lab` stack (its
#                        documented, non-secret lab passphrase) and only if
#                        you set neither PULUMI_CONFIG_PASSPHRASE nor
#                        PULUMI_CONFIG_PASSPHRASE_FILE. Any other stack gets
#                        no default, so Pulumi asks or fails as usual.
set -euo pipefail

repo=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"

choice=$(bash "$repo/tools/pulumi-bin.sh")
cli_source=$(head -n 1 <<<"$choice")
bin=$(tail -n 1 <<<"$choice")
[ -x "$bin/pulumi" ] || { echo "scripts/pulumi.sh: no executable pulumi in '$bin'" >&2; exit 1; }

if [ -z "${PULUMI_BACKEND_URL:-}" ]; then
  mkdir -p "$repo/.pulumi-state"
  export PULUMI_BACKEND_URL="file://$repo/.pulumi-state"
fi
if [ "$cli_source" = build ]; then
  export PULUMI_HOME="${PULUMI_HOME:-$HOME/.cache/kvmtune/pulumi-home}"
  mkdir -p "$PULUMI_HOME"
fi
export PULUMI_SKIP_UPDATE_CHECK=true
export PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION=true
export PATH="$bin:$PATH"

# Which stack will this command act on? In order: --stack/-s in the args,
# the NAME in `stack init|select|rm NAME`, PULUMI_STACK (the CLI honours it
# over the selected stack), and finally the stack
# currently selected in the workspace (asked from the CLI itself, in the
# --cwd/-C folder if one was given). Qualified names (org/project/lab) count
# by their last part. If none can be found, no passphrase is defaulted.
arg_stack="" arg_cwd="" prev="" words=()
for a in "$@"; do
  case "$prev" in
    --stack | -s) arg_stack=$a prev="" && continue ;;
    --cwd | -C) arg_cwd=$a prev="" && continue ;;
  esac
  case "$a" in
    --) break ;;
    --stack=*) arg_stack=${a#--stack=} ;;
    -s=*) arg_stack=${a#-s=} ;;
    --cwd=*) arg_cwd=${a#--cwd=} ;;
    -C=*) arg_cwd=${a#-C=} ;;
    -*) ;;
    *) words+=("$a") ;;
  esac
  prev=$a
done

selected_stack() {
  [ -n "$arg_stack" ] && { printf '%s\n' "$arg_stack"; return 0; }
  local i
  for ((i = 0; i + 2 < ${#words[@]}; i++)); do
    if [ "${words[i]}" = stack ]; then
      case "${words[i + 1]}" in init | select | rm) printf '%s\n' "${words[i + 2]}"; return 0 ;; esac
    fi
  done
  [ -n "${PULUMI_STACK:-}" ] && { printf '%s\n' "$PULUMI_STACK"; return 0; }
  "$bin/pulumi" stack --show-name --non-interactive ${arg_cwd:+--cwd "$arg_cwd"} 2>/dev/null
}

if [ -z "${PULUMI_CONFIG_PASSPHRASE:-}" ] && [ -z "${PULUMI_CONFIG_PASSPHRASE_FILE:-}" ]; then
  stack=$(selected_stack) || stack=""
  if [ "${stack##*/}" = lab ]; then
    export PULUMI_CONFIG_PASSPHRASE=kvmtune-lab
  fi
fi

exec "$bin/pulumi" "$@"
