#!/usr/bin/env bash
# Push a local image to a registry and name what was pushed by its digest.
#
#   hack/release/push.sh LOCAL_IMAGE REGISTRY/NAME:TAG   # stdout: REGISTRY/NAME@sha256:...
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

(($# == 2)) || die "usage: $0 LOCAL_IMAGE REGISTRY/NAME:TAG"
local_image="$1" dest="$2"
[[ "${dest##*/}" == *:* ]] || die "$dest: name the tag (REGISTRY/NAME:TAG)"
repository="${dest%:*}"

read -r -a engine < <(hack/image/engine.sh) || exit 1
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

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
