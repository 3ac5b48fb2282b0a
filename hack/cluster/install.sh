#!/usr/bin/env bash
# Install what the single-node cluster needs besides the Kubernetes binaries
# (hack/controlplane/build.sh --node builds those).
#
#   hack/cluster/install.sh        # stdout: the directory holding containerd,
#                                  # containerd-shim-runc-v2 and ctr
#
# Debian packages: runc, containernetworking-plugins (only `loopback` is used),
# iptables (the kubelet's chains are removed again by down.sh; it needs the
# binary to do so), nftables (to drop tables the kubelet's chains created),
# busybox-static (the adapter image), openssl (certificates), and containerd
# when CONTAINERD=debian.
#
# CONTAINERD selects the container runtime:
#   debian (default)  containerd 1.6 from Debian bookworm. The kubelet accepts it
#                     through a fallback it marks for removal in Kubernetes 1.38.
#   go                containerd 2.x built from the Go module proxy (pinned in
#                     ./containerd/go.mod), cached under
#                     ${XDG_CACHE_HOME:-~/.cache}/status-reporter/cluster/.
#
# Idempotent: no apt-get call when every package is installed, no go call when
# the containerd build is cached. Progress goes to stderr.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)"
log() { printf 'cluster-install: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

containerd_source="${CONTAINERD:-debian}"
packages=(runc containernetworking-plugins iptables nftables busybox-static openssl)
case "$containerd_source" in
debian) packages+=(containerd) ;;
go) ;;
*) die "CONTAINERD=$containerd_source: want debian or go" ;;
esac

sudo=()
if [[ "$(id -u)" -ne 0 ]]; then
	command -v sudo >/dev/null 2>&1 || die "must run as root (or have sudo)"
	sudo=(sudo)
fi

installed() { [[ "$(dpkg-query -W -f='${db:Status-Status}' "$1" 2>/dev/null || true)" == installed ]]; }
missing=()
for p in "${packages[@]}"; do installed "$p" || missing+=("$p"); done
if ((${#missing[@]})); then
	log "installing ${missing[*]}"
	(
		# policy-rc.d 101: the containerd package must not start its own daemon
		# (with /etc/containerd and /run/containerd); the cluster runs a private one.
		policy=/usr/sbin/policy-rc.d
		if [[ ! -e $policy ]]; then
			printf '#!/bin/sh\nexit 101\n' | "${sudo[@]}" tee "$policy" >/dev/null
			"${sudo[@]}" chmod 0755 "$policy"
			trap '"${sudo[@]}" rm -f "$policy"' EXIT
		fi
		apt_opts=(-y -q --no-install-recommends -o Dpkg::Use-Pty=0)
		"${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -q >&2
		"${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install "${apt_opts[@]}" "${missing[@]}" >&2
	)
fi

if [[ "$containerd_source" == debian ]]; then
	printf '/usr/bin\n'
	exit 0
fi

# --- containerd 2.x from the Go module proxy --------------------------------
modfile="$here/containerd/go.mod"
version="$(awk '$1 == "require" && $2 == "github.com/containerd/containerd/v2" { print $3 }' "$modfile")"
[[ -n "$version" ]] || die "cannot read the containerd version from $modfile"
cache_root="${XDG_CACHE_HOME:-$HOME/.cache}/status-reporter/cluster"
out="$cache_root/containerd-${version#v}"
bins=(containerd containerd-shim-runc-v2 ctr)
complete=1
for b in "${bins[@]}"; do [[ -x "$out/$b" ]] || complete=0; done
if ((complete)); then
	log "cached: $out"
	printf '%s\n' "$out"
	exit 0
fi
command -v go >/dev/null 2>&1 || die "go not found on PATH"
mkdir -p "$cache_root"
tmp="$(mktemp -d "$cache_root/.build.XXXXXX")"
trap 'rm -rf "$tmp"' EXIT
start=$SECONDS
log "building containerd $version"
(
	cd "$here/containerd"
	pkgs=()
	for b in "${bins[@]}"; do pkgs+=("github.com/containerd/containerd/v2/cmd/$b"); done
	# Static binaries; btrfs support needs cgo and is not used here.
	CGO_ENABLED=0 go build -trimpath -tags no_btrfs \
		-ldflags="-s -w -X github.com/containerd/containerd/v2/version.Version=$version" \
		-o "$tmp/" "${pkgs[@]}"
) >&2
got="$("$tmp/containerd" --version)"
[[ "$got" == *"$version"* ]] || die "built containerd reports '$got', want $version"
chmod 0755 "$tmp"
mv -T "$tmp" "$out" 2>/dev/null || log "a concurrent build already populated $out"
log "built in $((SECONDS - start))s: $out"
printf '%s\n' "$out"
