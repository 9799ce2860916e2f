#!/usr/bin/env bash
# Builds the Pulumi engine (the `pulumi` CLI) and a Node.js language host from
# Go modules, once, into a cache folder, and prints that bin folder as the
# LAST line of stdout (everything else goes to stderr):
#
#   bin=$(bash tools/build-pulumi.sh | tail -1)
#
# Why build at all: no prebuilt Pulumi CLI can be downloaded on our machines
# or in CI (the npm `pulumi` package fetches a binary at first use, which
# fails here). The Go module proxy does serve github.com/pulumi/pulumi/pkg/v3
# and sdk/v3, pinned in tools/pulumi-cli/go.mod + go.sum.
#
# Language host: upstream's pulumi-language-nodejs is a separate, untagged Go
# module that the module proxy we can reach refuses (403 for its list, @latest
# and every pseudo-version), so tools/pulumi-cli/pulumi-language-nodejs is a
# small stand-in built from sdk/v3 (see the comment at its top).
#
# Cache: ${KVMTUNE_CACHE_DIR:-~/.cache/kvmtune}/pulumi-cli/<key>/bin, where
# key = first 16 hex of sha256 over tools/pulumi-cli/go.mod, go.sum, every
# .go file under tools/pulumi-cli (the language host's source), this script,
# and `go version` (which includes GOOS/GOARCH). Change any of them and the
# next run builds a new folder; old folders can be deleted at will.
#
# The build goes into a temp folder beside the cache entry and is renamed into
# place only when complete, so an interrupted build never leaves a half cache.
# A lock (flock) makes a second concurrent caller wait and then reuse the
# first one's result instead of building twice.
#
# GOCACHE/GOMODCACHE are left at Go's defaults (they persist on our machines),
# so a rebuild after a key change mostly relinks. Measured on our 2-core
# machine: first build with a cold GOCACHE 21 min wall (about 18 CPU-minutes;
# the machine was busy with other work, so expect ~10 min when idle) and
# ~2.2 GB RAM; a key change with a warm GOCACHE 30-50 s; a cached run <1 s.
# Binaries: pulumi ~170 MB, pulumi-language-nodejs ~25 MB.
set -euo pipefail

PULUMI_VERSION=v3.274.1
# Both binaries read their version from this variable. Without it the CLI
# reports an empty version and the Automation API (PulumiCommand.get with
# version checking) refuses to use it.
VERSION_VAR=github.com/pulumi/pulumi/sdk/v3/go/common/version.Version

tools_dir=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)
repo=$(dirname -- "$tools_dir")
mod="$tools_dir/pulumi-cli"
self="$tools_dir/build-pulumi.sh"
cache_root="${KVMTUNE_CACHE_DIR:-$HOME/.cache/kvmtune}/pulumi-cli"

log() { printf 'build-pulumi: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

command -v go >/dev/null 2>&1 || die "go is not on PATH (needed to build the Pulumi CLI; or set KVMTUNE_PULUMI_BIN to an existing Pulumi bin folder)"

# The `pulumi-*` shims that ship at the root of the @pulumi/pulumi npm package
# (pulumi-resource-pulumi-nodejs runs dynamic providers; newer SDKs may add
# e.g. pulumi-analyzer-policy). They must sit on PATH beside the engine.
sdk_dir="$repo/node_modules/@pulumi/pulumi"
if [ ! -d "$sdk_dir" ]; then
  log "node_modules/@pulumi/pulumi missing: running npm ci in $repo"
  (cd "$repo" && npm ci >&2)
fi
shims=()
for f in "$sdk_dir"/pulumi-*; do
  case "$f" in *.cmd) continue ;; esac # Windows-only wrappers
  [ -f "$f" ] && shims+=("$f")
done
[ "${#shims[@]}" -gt 0 ] || die "no pulumi-* shims found in $sdk_dir"

key=$(
  cd "$mod"
  {
    for f in go.mod go.sum $(find . -name '*.go' -type f | LC_ALL=C sort); do
      printf '== %s\n' "$f"
      cat "$f"
    done
    printf '== build-pulumi.sh\n'
    cat "$self"
    printf '== go version\n'
    go version
  } | sha256sum | cut -c1-16
)
dest="$cache_root/$key"
bin="$dest/bin"

# Copies any shim that is missing or differs (e.g. after an @pulumi/pulumi
# bump) into $1, via a temp file + rename so readers never see half a file.
sync_shims() {
  local dir=$1 f name
  for f in "${shims[@]}"; do
    name=$(basename -- "$f")
    if ! cmp -s "$f" "$dir/$name"; then
      cp "$f" "$dir/.$name.tmp.$$"
      chmod 0755 "$dir/.$name.tmp.$$"
      mv -f "$dir/.$name.tmp.$$" "$dir/$name"
    fi
  done
}

complete() {
  [ -f "$dest/BUILD-INFO" ] && [ -x "$bin/pulumi" ] && [ -x "$bin/pulumi-language-nodejs" ]
}

mkdir -p "$cache_root"
if complete; then
  sync_shims "$bin"
  log "cached: $bin"
  printf '%s\n' "$bin"
  exit 0
fi

# Serialize builds of the same machine; after the wait, re-check the cache.
if command -v flock >/dev/null 2>&1; then
  exec 9>"$cache_root/.lock"
  flock 9
  if complete; then
    sync_shims "$bin"
    log "cached (built by a concurrent run): $bin"
    printf '%s\n' "$bin"
    exit 0
  fi
fi

tmp=$(mktemp -d "$cache_root/.build-$key.XXXXXX")
trap 'rm -rf -- "$tmp"' EXIT
chmod 0755 "$tmp" # mktemp makes it 0700
mkdir -p "$tmp/bin"

log "building Pulumi $PULUMI_VERSION (key $key) into $dest; the first build takes several minutes"
start=$(date +%s)
# -mod=readonly: go.mod/go.sum are committed and complete; fail loudly rather
# than edit tracked files. -buildvcs=false: don't stamp this repo's git state.
# CGO_ENABLED=0: static binaries, as upstream releases them.
(
  cd "$mod"
  CGO_ENABLED=0 go build -mod=readonly -buildvcs=false -trimpath \
    -ldflags "-X $VERSION_VAR=$PULUMI_VERSION" \
    -o "$tmp/bin/" \
    github.com/pulumi/pulumi/pkg/v3/cmd/pulumi \
    ./pulumi-language-nodejs
) >&2
secs=$(($(date +%s) - start))

# Sanity-check that the version really got stamped.
got=$(PULUMI_SKIP_UPDATE_CHECK=true PULUMI_HOME="$tmp/home" "$tmp/bin/pulumi" version 2>/dev/null | tr -d '[:space:]')
[ "$got" = "$PULUMI_VERSION" ] || die "built pulumi reports version '$got', expected $PULUMI_VERSION"
got_lh=$("$tmp/bin/pulumi-language-nodejs" -version | tr -d '[:space:]')
[ "$got_lh" = "$PULUMI_VERSION" ] || die "built language host reports version '$got_lh', expected $PULUMI_VERSION"

rm -rf -- "$tmp/home"

sync_shims "$tmp/bin"
{
  echo "pulumi $PULUMI_VERSION (github.com/pulumi/pulumi/pkg/v3/cmd/pulumi)"
  echo "pulumi-language-nodejs $PULUMI_VERSION (kvmtune stand-in, tools/pulumi-cli/pulumi-language-nodejs)"
  echo "shims from $sdk_dir"
  echo "$(go version)"
  echo "key $key; built $(date -u +%Y-%m-%dT%H:%M:%SZ) in ${secs}s"
} >"$tmp/BUILD-INFO"

# Atomic publish. If another builder (without flock) won the race, keep
# theirs (the EXIT trap then removes our copy).
if mv -T -- "$tmp" "$dest" 2>/dev/null; then
  trap - EXIT
else
  complete || die "could not move $tmp to $dest"
fi
log "built in ${secs}s: $bin"
printf '%s\n' "$bin"
