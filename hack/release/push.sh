#!/usr/bin/env bash
# Push a local image to a registry and name what was pushed by its digest.
#
#   hack/release/push.sh LOCAL_IMAGE REGISTRY/NAME:TAG   # stdout: REGISTRY/NAME@sha256:...
#   hack/release/push.sh --index REGISTRY/NAME:TAG LOCAL_IMAGE...
#       # one image per platform, and the index that names them as the tag (podman):
#       # stdout: the index by digest, then each image by digest, in the order given
#
# Credentials are the engine's own: log in first (podman login / docker login).
# REGISTRY_CA=<PEM file> trusts the registry's CA for this push only (podman's
# --cert-dir, a temporary directory); nothing is written to the host's certificate
# directories. Docker takes CAs only from its daemon's configuration, so REGISTRY_CA
# needs podman.
#
# With podman the manifest is OCI and the layer gzip-compressed, whatever the engine's
# defaults: with the image's bytes fixed by the build, so is the pushed digest.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
die() { printf 'push: %s\n' "$*" >&2; exit 1; }

index=""
if [[ "${1:-}" == --index ]]; then
	(($# >= 3)) || die "usage: $0 --index REGISTRY/NAME:TAG LOCAL_IMAGE..."
	index=1 dest="$2"
	shift 2
	local_images=("$@")
else
	(($# == 2)) || die "usage: $0 LOCAL_IMAGE REGISTRY/NAME:TAG"
	local_image="$1" dest="$2"
fi
[[ "${dest##*/}" == *:* ]] || die "$dest: name the tag (REGISTRY/NAME:TAG)"
repository="${dest%:*}"

read -r -a engine < <(hack/image/engine.sh) || exit 1
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

if [[ -n "$index" ]]; then
	[[ "${engine[0]}" == */podman.sh ]] || die "an index needs podman (its manifest lists)"
	flags=()
	if [[ -n "${REGISTRY_CA:-}" ]]; then
		mkdir "$tmp/certs" && cp "$REGISTRY_CA" "$tmp/certs/ca.crt"
		flags+=(--cert-dir "$tmp/certs")
	fi
	# Each image compressed once, into a local OCI layout, which names its manifest's
	# digest: the one pushed, as the index reuses the compressed layer as it is.
	list="localhost/status-reporter-index-$$"
	trap '"${engine[@]}" manifest rm "$list" >/dev/null 2>&1 || true; rm -rf "$tmp"' EXIT
	"${engine[@]}" manifest create "$list" >/dev/null
	digests=()
	for i in "${!local_images[@]}"; do
		"${engine[@]}" push --format oci --compression-format gzip --digestfile "$tmp/$i.digest" \
			"${local_images[$i]}" "oci:$tmp/layout-$i" >&2
		digests+=("$(cat "$tmp/$i.digest")")
		"${engine[@]}" manifest add "$list" "oci:$tmp/layout-$i" >/dev/null
	done
	# What the index will name: each image's digest, size (its manifest's bytes) and platform.
	"${engine[@]}" manifest inspect "$list" | python3 -c '
import json, sys
for m in json.load(sys.stdin)["manifests"]:
    p = m["platform"]
    print(m["digest"], m["size"], p["os"] + "/" + p["architecture"] + ("/" + p["variant"] if p.get("variant") else ""))
' >"$tmp/listed"
	[[ "$(cut -d" " -f1 "$tmp/listed" | paste -sd" ")" == "${digests[*]}" ]] ||
		die "the index lists $(cut -d" " -f1 "$tmp/listed" | paste -sd" "), not ${digests[*]}"
	while read -r d size platform; do
		printf 'push: %s: %s (manifest %s bytes)\n' "$platform" "$d" "$size" >&2
	done <"$tmp/listed"
	"${engine[@]}" manifest push --all --format oci --compression-format gzip \
		--digestfile "$tmp/index.digest" "${flags[@]}" "$list" "docker://$dest" >&2
	digest="$(cat "$tmp/index.digest")"
	for d in "$digest" "${digests[@]}"; do
		[[ "$d" =~ ^sha256:[0-9a-f]{64}$ ]] || die "no digest for $dest (got '$d')"
		echo "$repository@$d"
	done
	exit 0
fi

if [[ "${engine[0]}" == */podman.sh ]]; then
	flags=(--format oci --compression-format gzip --digestfile "$tmp/digest")
	if [[ -n "${REGISTRY_CA:-}" ]]; then
		mkdir "$tmp/certs" && cp "$REGISTRY_CA" "$tmp/certs/ca.crt"
		flags+=(--cert-dir "$tmp/certs")
	fi
	"${engine[@]}" push "${flags[@]}" "$local_image" "docker://$dest" >&2
	digest="$(cat "$tmp/digest")"
else
	[[ -z "${REGISTRY_CA:-}" ]] || die "REGISTRY_CA needs podman; docker trusts the CAs of /etc/docker/certs.d"
	"${engine[@]}" tag "$local_image" "$dest"
	"${engine[@]}" push "$dest" >&2
	digest="$("${engine[@]}" image inspect --format '{{range .RepoDigests}}{{println .}}{{end}}' "$dest" |
		awk -F@ -v r="$repository" '$1 == r { print $2; exit }')"
fi
[[ "$digest" =~ ^sha256:[0-9a-f]{64}$ ]] || die "no digest for $dest (got '$digest')"
echo "$repository@$digest"
