#!/usr/bin/env bash
# Build (or reuse) real Kubernetes binaries and etcd for local/CI tests.
#
#   dir=$(hack/controlplane/build.sh)          # -> $dir/kube-apiserver, $dir/etcd
#   dir=$(hack/controlplane/build.sh --node)   # -> $dir/kubelet, $dir/kube-controller-manager,
#                                              #    $dir/kube-scheduler, $dir/kubectl
#
# stdout carries exactly one line: the absolute directory holding the binaries.
# Everything else (progress, go output) goes to stderr.
#
# Order of preference:
#   1. $KUBEBUILDER_ASSETS (or $KUBE_NODE_ASSETS with --node), if it holds the
#      executables.
#   2. The cache entries under ${XDG_CACHE_HOME:-$HOME/.cache}/status-reporter/
#      controlplane/: k8s-<ver>-etcd-<ver>/ (control plane) and k8s-<ver>-node/
#      (node), if the binaries are already there (no go call).
#   3. A fresh build from the pinned modules in ./kubernetes and ./etcd, into a
#      temp dir whose parts are renamed into place only when complete. Whenever a
#      build is needed, ONE go build compiles every missing Kubernetes binary of
#      both entries: they share most packages, and one build keeps both cores busy.
#      CONTROLPLANE_NODE=0 leaves the node binaries out of a control-plane build.
#
# CONTROLPLANE_REBUILD=1 ignores (and replaces) existing cache entries.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)"

log() { printf 'controlplane: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

mode=controlplane
case "${1:-}" in
"") ;;
--node) mode=node ;;
*) die "usage: $0 [--node]" ;;
esac

cp_bins=(kube-apiserver etcd)
node_bins=(kubelet kube-controller-manager kube-scheduler kubectl)

has_bins() { # <dir> <binary>...
	local dir="$1" b
	shift
	for b in "$@"; do
		[[ -f "$dir/$b" && -x "$dir/$b" ]] || return 1
	done
}

# --- 1. caller-provided binaries -------------------------------------------
if [[ $mode == controlplane ]]; then
	assets_var=KUBEBUILDER_ASSETS
	wanted=("${cp_bins[@]}")
else
	assets_var=KUBE_NODE_ASSETS
	wanted=("${node_bins[@]}")
fi
assets="${!assets_var:-}"
if [[ -n "$assets" ]]; then
	if has_bins "$assets" "${wanted[@]}"; then
		log "using $assets_var=$assets"
		(cd "$assets" && pwd -P)
		exit 0
	fi
	log "$assets_var=$assets lacks executable ${wanted[*]}; falling back to the pinned build"
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
k8s_ver="$(modver "$here/kubernetes/go.mod" k8s.io/kubernetes)"   # e.g. v1.37.2
etcd_ver="$(modver "$here/etcd/go.mod" go.etcd.io/etcd/server/v3)" # e.g. v3.6.16

# Guard against a half-done bump: every staging replace must be v0.X.Y for v1.X.Y.
staging_ver="v0.${k8s_ver#v1.}"
bad="$(awk -v want="$staging_ver" '
	$2 == "=>" && $3 ~ /^k8s\.io\// && $4 != want { print "  " $1 " => " $4 }
' "$here/kubernetes/go.mod")"
[[ -z "$bad" ]] || die "kubernetes/go.mod: staging replaces must be $staging_ver for k8s $k8s_ver:
$bad"

cache_root="${XDG_CACHE_HOME:-$HOME/.cache}/status-reporter/controlplane"
cp_out="$cache_root/k8s-${k8s_ver#v}-etcd-${etcd_ver#v}"
node_out="$cache_root/k8s-${k8s_ver#v}-node"
if [[ $mode == controlplane ]]; then out="$cp_out"; else out="$node_out"; fi

# --- 2. cache hit ----------------------------------------------------------
rebuild="${CONTROLPLANE_REBUILD:-0}"
if [[ $rebuild != 1 ]] && has_bins "$out" "${wanted[@]}"; then
	log "cached: $out"
	printf '%s\n' "$out"
	exit 0
fi

# --- 3. build --------------------------------------------------------------
need_cp=0 need_node=0
[[ $rebuild == 1 ]] || ! has_bins "$cp_out" "${cp_bins[@]}" && need_cp=1
[[ $rebuild == 1 ]] || ! has_bins "$node_out" "${node_bins[@]}" && need_node=1
[[ $mode == controlplane && "${CONTROLPLANE_NODE:-1}" == 0 ]] && need_node=0

k8s_bins=()
((need_cp)) && k8s_bins+=(kube-apiserver)
((need_node)) && k8s_bins+=("${node_bins[@]}")

command -v go >/dev/null 2>&1 || die "go not found on PATH (need Go >= 1.26, see $here/README.md)"

mkdir -p "$cache_root"
# Leftovers of builds killed with SIGKILL (never visible as a cache entry).
find "$cache_root" -maxdepth 1 \( -name '.build.*' -o -name '.stale.*' \) -mmin +120 \
	-exec rm -rf {} + 2>/dev/null || true
# Temp dir on the same filesystem as the entries so the final mv is an atomic rename.
tmp="$(mktemp -d "$cache_root/.build.XXXXXX")"
trap 'rm -rf "$tmp"' EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
mkdir "$tmp/bin"

start=$SECONDS
log "building ${k8s_bins[*]} $k8s_ver$( ((need_cp)) && echo " and etcd $etcd_ver") ($(go version | awk '{print $3}'))"

export CGO_ENABLED=0

# Without these -X flags the binaries report v0.0.0-master+$Format:%H$, and that
# string is what /version, discovery and the Node's kubeletVersion serve. The
# proxy's module metadata has no git commit, so gitCommit is left empty; the build
# date is the release's module timestamp, not "now".
(
	cd "$here/kubernetes"
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
	pkgs=()
	for b in "${k8s_bins[@]}"; do pkgs+=("k8s.io/kubernetes/cmd/$b"); done
	log "go build ${pkgs[*]}"
	go build -trimpath -ldflags="$ldflags" -o "$tmp/bin/" "${pkgs[@]}"
) >&2
log "  ${k8s_bins[*]} done after $((SECONDS - start))s"

if ((need_cp)); then
	(
		cd "$here/etcd"
		log "go build go.etcd.io/etcd/server/v3"
		go build -trimpath -ldflags="-s -w" -o "$tmp/bin/etcd" go.etcd.io/etcd/server/v3
	) >&2
	log "  etcd done after $((SECONDS - start))s"
fi

# Sanity check before publishing: every binary runs and reports the pinned version.
for b in "${k8s_bins[@]}"; do
	if [[ $b == kubectl ]]; then
		got="$("$tmp/bin/$b" version --client 2>&1)" || die "built $b does not run: $got"
		want="Client Version: $k8s_ver"
	else
		got="$("$tmp/bin/$b" --version 2>&1)" || die "built $b does not run: $got"
		want="Kubernetes $k8s_ver"
	fi
	[[ "$got" == *"$want"* ]] || die "built $b reports '$got', want $k8s_ver"
done
if ((need_cp)); then
	got="$("$tmp/bin/etcd" --version 2>&1)" || die "built etcd does not run: $got"
	[[ "$got" == *"etcd Version: ${etcd_ver#v}"* ]] || die "built etcd reports '$got', want ${etcd_ver#v}"
fi

publish() { # <dest> <binary>...: move the binaries into a fresh dir, rename it to <dest>
	local dest="$1" part b stale
	shift
	part="$(mktemp -d "$tmp/part.XXXXXX")"
	for b in "$@"; do mv "$tmp/bin/$b" "$part/$b"; done
	chmod 0755 "$part"
	if ! mv -T "$part" "$dest" 2>/dev/null; then
		if [[ $rebuild != 1 ]] && has_bins "$dest" "$@"; then
			log "a concurrent build already populated $dest; using it"
		else
			# $dest exists but is incomplete (or a rebuild was forced): swap it out.
			stale="$(mktemp -d "$cache_root/.stale.XXXXXX")"
			mv -T "$dest" "$stale/old"
			mv -T "$part" "$dest"
			rm -rf "$stale"
		fi
	fi
	log "  published $dest"
}
((need_cp)) && publish "$cp_out" "${cp_bins[@]}"
((need_node)) && publish "$node_out" "${node_bins[@]}"
log "built in $((SECONDS - start))s"
printf '%s\n' "$out"
