#!/usr/bin/env bash
# Build (or reuse) a real kube-apiserver and etcd for local/CI integration tests.
#
#   dir=$(hack/controlplane/build.sh)   # -> $dir/kube-apiserver, $dir/etcd
#
# stdout carries exactly one line: the absolute directory holding both binaries.
# Everything else (progress, go output) goes to stderr.
#
# Order of preference:
#   1. $KUBEBUILDER_ASSETS, if it holds executable kube-apiserver and etcd.
#   2. The cache dir ${XDG_CACHE_HOME:-$HOME/.cache}/status-reporter/controlplane/
#      k8s-<ver>-etcd-<ver>/, if both binaries are already there (no go call).
#   3. A fresh build from the pinned modules in ./kube-apiserver and ./etcd,
#      into a temp dir that is renamed into place only when complete.
#
# CONTROLPLANE_REBUILD=1 ignores (and replaces) an existing cache entry.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)"

log() { printf 'controlplane: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

has_bins() {
	[[ -f "$1/kube-apiserver" && -x "$1/kube-apiserver" && -f "$1/etcd" && -x "$1/etcd" ]]
}

# --- 1. caller-provided binaries -------------------------------------------
if [[ -n "${KUBEBUILDER_ASSETS:-}" ]]; then
	if has_bins "$KUBEBUILDER_ASSETS"; then
		log "using KUBEBUILDER_ASSETS=$KUBEBUILDER_ASSETS"
		(cd "$KUBEBUILDER_ASSETS" && pwd -P)
		exit 0
	fi
	log "KUBEBUILDER_ASSETS=$KUBEBUILDER_ASSETS lacks executable kube-apiserver/etcd; falling back to the pinned build"
fi

# --- versions: read from the go.mod files, the single source of truth --------
# Matches both `require mod vX` and a `mod vX` line inside a require block.
modver() { # <go.mod> <module path>
	local v
	v="$(awk -v m="$2" '
		$1 == "require" && $2 == m { print $3; exit }
		$1 == m && $2 ~ /^v[0-9]/   { print $2; exit }
	' "$1")"
	[[ -n "$v" ]] || die "cannot find $2 in $1"
	printf '%s\n' "$v"
}
k8s_ver="$(modver "$here/kube-apiserver/go.mod" k8s.io/kubernetes)" # e.g. v1.37.2
etcd_ver="$(modver "$here/etcd/go.mod" go.etcd.io/etcd/server/v3)"  # e.g. v3.6.16

# Guard against a half-done bump: every staging replace must be v0.X.Y for v1.X.Y.
staging_ver="v0.${k8s_ver#v1.}"
bad="$(awk -v want="$staging_ver" '
	$2 == "=>" && $3 ~ /^k8s\.io\// && $4 != want { print "  " $1 " => " $4 }
' "$here/kube-apiserver/go.mod")"
[[ -z "$bad" ]] || die "kube-apiserver/go.mod: staging replaces must be $staging_ver for k8s $k8s_ver:
$bad"

cache_root="${XDG_CACHE_HOME:-$HOME/.cache}/status-reporter/controlplane"
out="$cache_root/k8s-${k8s_ver#v}-etcd-${etcd_ver#v}"

# --- 2. cache hit ----------------------------------------------------------
if [[ "${CONTROLPLANE_REBUILD:-0}" != 1 ]] && has_bins "$out"; then
	log "cached: $out"
	printf '%s\n' "$out"
	exit 0
fi

# --- 3. build --------------------------------------------------------------
command -v go >/dev/null 2>&1 || die "go not found on PATH (need Go >= 1.26, see $here/README.md)"

mkdir -p "$cache_root"
# Leftovers of builds killed with SIGKILL (never visible as a cache entry).
find "$cache_root" -maxdepth 1 \( -name '.build.*' -o -name '.stale.*' \) -mmin +120 \
	-exec rm -rf {} + 2>/dev/null || true
# Temp dir on the same filesystem as $out so the final mv is an atomic rename.
tmp="$(mktemp -d "$cache_root/.build.XXXXXX")"
trap 'rm -rf "$tmp"' EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

start=$SECONDS
log "building kube-apiserver $k8s_ver and etcd $etcd_ver ($(go version | awk '{print $3}'))"
log "  into $out"

export CGO_ENABLED=0

# kube-apiserver: without these -X flags it reports v0.0.0-master+$Format:%H$,
# and that string is what /version and discovery serve. The proxy's module
# metadata has no git commit, so gitCommit is left empty; the build date is the
# release's module timestamp, not "now".
(
	cd "$here/kube-apiserver"
	minor="${k8s_ver#v*.}"
	minor="${minor%%.*}"
	major="${k8s_ver#v}"
	major="${major%%.*}"
	build_date="$(go list -m -f '{{.Time.UTC.Format "2006-01-02T15:04:05Z"}}' k8s.io/kubernetes)"
	ldflags="-s -w"
	for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
		ldflags+=" -X $pkg.gitVersion=$k8s_ver"
		ldflags+=" -X $pkg.gitMajor=$major"
		ldflags+=" -X $pkg.gitMinor=$minor"
		ldflags+=" -X $pkg.gitCommit="
		ldflags+=" -X $pkg.gitTreeState=clean"
		ldflags+=" -X $pkg.buildDate=$build_date"
	done
	log "go build k8s.io/kubernetes/cmd/kube-apiserver"
	go build -trimpath -ldflags="$ldflags" -o "$tmp/kube-apiserver" k8s.io/kubernetes/cmd/kube-apiserver
) >&2
log "  kube-apiserver done after $((SECONDS - start))s"

(
	cd "$here/etcd"
	log "go build go.etcd.io/etcd/server/v3"
	go build -trimpath -ldflags="-s -w" -o "$tmp/etcd" go.etcd.io/etcd/server/v3
) >&2
log "  etcd done after $((SECONDS - start))s"

# Sanity check before publishing: both run and report the pinned versions.
got="$("$tmp/kube-apiserver" --version 2>&1)" || die "built kube-apiserver does not run: $got"
[[ "$got" == *"Kubernetes $k8s_ver"* ]] || die "built kube-apiserver reports '$got', want $k8s_ver"
got="$("$tmp/etcd" --version 2>&1)" || die "built etcd does not run: $got"
[[ "$got" == *"etcd Version: ${etcd_ver#v}"* ]] || die "built etcd reports '$got', want ${etcd_ver#v}"

chmod 0755 "$tmp"
if ! mv -T "$tmp" "$out" 2>/dev/null; then
	if [[ "${CONTROLPLANE_REBUILD:-0}" != 1 ]] && has_bins "$out"; then
		log "a concurrent build already populated $out; using it"
	else
		# $out exists but is incomplete (or a rebuild was forced): swap it out.
		stale="$(mktemp -d "$cache_root/.stale.XXXXXX")"
		mv -T "$out" "$stale/old"
		mv -T "$tmp" "$out"
		rm -rf "$stale"
	fi
fi
log "built in $((SECONDS - start))s"
printf '%s\n' "$out"
