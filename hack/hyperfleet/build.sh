#!/usr/bin/env bash
# Build (or reuse) the two tools the HyperFleet cluster tests need:
#
#   helm=$(hack/hyperfleet/build.sh helm)   # helm, from the module pinned in ./helm
#   cel=$(hack/hyperfleet/build.sh cel)     # cel-eval (./cel): cel-go as hyperfleet-adapter runs it
#
# stdout carries exactly one line: the absolute path of the binary. Progress and go
# output go to stderr. Binaries are cached under
# ${XDG_CACHE_HOME:-$HOME/.cache}/status-reporter/hyperfleet/, keyed by the pinned
# version (and, for cel-eval, by a hash of its source), and published by an atomic
# rename, so an interrupted build never leaves a partial entry.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)"
log() { printf 'hyperfleet-tools: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

modver() { # <go.mod> <module path>: the version of a `require <module> <version>` line
	local v
	v="$(awk -v m="$2" '$1 == "require" && $2 == m { print $3; exit }' "$1")"
	[[ -n "$v" ]] || die "cannot find $2 in $1"
	printf '%s\n' "$v"
}

case "${1:-}" in
helm)
	dir="$here/helm"
	version="$(modver "$dir/go.mod" helm.sh/helm/v4)"
	key="helm-${version#v}"
	binary=helm
	package=helm.sh/helm/v4/cmd/helm
	# Without it `helm version` says v4.x-dev: the version helm reports is a link-time value.
	ldflags="-s -w -X helm.sh/helm/v4/internal/version.version=$version"
	check=(version --short)
	;;
cel)
	dir="$here/cel"
	version="$(modver "$dir/go.mod" github.com/google/cel-go)"
	source_hash="$(cat "$dir/main.go" "$dir/go.mod" "$dir/go.sum" | sha256sum | cut -c1-12)"
	key="cel-eval-cel-go-${version#v}-$source_hash"
	binary=cel-eval
	package=.
	ldflags="-s -w"
	check=()
	;;
*) die "usage: $0 helm|cel" ;;
esac

cache_root="${XDG_CACHE_HOME:-$HOME/.cache}/status-reporter/hyperfleet"
out="$cache_root/$key"
if [[ -x "$out/$binary" ]]; then
	log "cached: $out/$binary"
	printf '%s\n' "$out/$binary"
	exit 0
fi

command -v go >/dev/null 2>&1 || die "go not found on PATH (need Go >= 1.26)"
mkdir -p "$cache_root"
find "$cache_root" -maxdepth 1 -name '.build.*' -mmin +120 -exec rm -rf {} + 2>/dev/null || true
tmp="$(mktemp -d "$cache_root/.build.XXXXXX")"
trap 'rm -rf "$tmp"' EXIT
start=$SECONDS
log "building $binary ($package, $version)"
(
	cd "$dir"
	CGO_ENABLED=0 go build -trimpath -buildvcs=false -ldflags="$ldflags" -o "$tmp/$binary" "$package"
) >&2
if ((${#check[@]})); then
	got="$("$tmp/$binary" "${check[@]}" 2>&1)" || die "built $binary does not run: $got"
	[[ "$got" == "$version"* ]] || die "built $binary reports '$got', want $version"
fi
chmod 0755 "$tmp"
mv -T "$tmp" "$out" 2>/dev/null || log "a concurrent build already populated $out"
log "built in $((SECONDS - start))s: $out/$binary"
printf '%s\n' "$out/$binary"
