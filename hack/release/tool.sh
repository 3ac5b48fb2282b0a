#!/usr/bin/env bash
# Build (or reuse) a release tool from its pinned Go module:
#
#   cosign="$(hack/release/tool.sh cosign)"      # sigstore cosign v2: signs, attests, verifies
#   registry="$(hack/release/tool.sh registry)"  # the CNCF distribution registry (the tests')
#
# stdout carries exactly one line: the binary's absolute path. Everything else (progress,
# go output) goes to stderr.
#
# The version is the one hack/release/<tool>/go.mod pins (its single direct requirement;
# go.sum pins everything under it). The binary is cached in
# ${XDG_CACHE_HOME:-$HOME/.cache}/status-reporter/tools/<tool>-<version>/ and reused
# without a go call; a build goes to a temp dir renamed into place only when complete,
# so concurrent callers never see half a binary. RELEASE_TOOLS_REBUILD=1 rebuilds.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)"
log() { printf 'tool: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

tool="${1:-}"
case "$tool" in
cosign)
	module=github.com/sigstore/cosign/v2
	package=$module/cmd/cosign
	version_var=sigs.k8s.io/release-utils/version.gitVersion
	version_args=(version)
	;;
registry)
	module=github.com/distribution/distribution/v3
	package=$module/cmd/registry
	version_var=$module/version.version
	version_args=(--version)
	;;
*) die "usage: $0 cosign|registry" ;;
esac

gomod="$here/$tool/go.mod"
version="$(awk -v m="$module" '$1 == "require" && $2 == m { print $3; exit } $1 == m && $2 ~ /^v[0-9]/ { print $2; exit }' "$gomod")"
[[ -n "$version" ]] || die "cannot find $module in $gomod"

cache_root="${XDG_CACHE_HOME:-$HOME/.cache}/status-reporter/tools"
out="$cache_root/$tool-${version#v}"
if [[ "${RELEASE_TOOLS_REBUILD:-0}" != 1 && -x "$out/$tool" ]]; then
	log "cached: $out/$tool"
	printf '%s\n' "$out/$tool"
	exit 0
fi

command -v go >/dev/null 2>&1 || die "go not found on PATH (need Go >= 1.26)"
mkdir -p "$cache_root"
find "$cache_root" -maxdepth 1 -name '.build.*' -mmin +120 -exec rm -rf {} + 2>/dev/null || true
tmp="$(mktemp -d "$cache_root/.build.XXXXXX")"
trap 'rm -rf "$tmp"' EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

start=$SECONDS
log "building $tool $version ($(go version | awk '{print $3}'))"
(
	cd "$here/$tool"
	CGO_ENABLED=0 go build -trimpath -ldflags="-s -w -X $version_var=$version" -o "$tmp/$tool" "$package"
) >&2
got="$("$tmp/$tool" "${version_args[@]}" 2>&1)" || die "built $tool does not run: $got"
[[ "$got" == *"$version"* ]] || die "built $tool reports '$got', want $version"
chmod 0755 "$tmp"
if ! mv -T "$tmp" "$out" 2>/dev/null; then
	if [[ -x "$out/$tool" && "${RELEASE_TOOLS_REBUILD:-0}" != 1 ]]; then
		log "a concurrent build already published $out"
	else
		rm -rf "$out.old" && mv -T "$out" "$out.old" && mv -T "$tmp" "$out" && rm -rf "$out.old"
	fi
fi
log "built $out/$tool in $((SECONDS - start))s"
printf '%s\n' "$out/$tool"
