#!/usr/bin/env bash
# cosign (hack/release/tool.sh cosign, or $COSIGN), set up for the registry it talks to.
#
#   hack/release/cosign.sh verify --key cosign.pub --insecure-ignore-tlog=true REF@DIGEST
#
# REGISTRY_CA=<PEM file> is the registry's CA, trusted by this cosign command only
# (--registry-cacert). Credentials: cosign reads Docker's config.json when there is
# one; otherwise the container engine's auth file, REGISTRY_AUTH_FILE, which this
# script points at podman's own (where `podman login` writes) when it is unset.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)"

cosign="${COSIGN:-}"
[[ -n "$cosign" ]] || cosign="$("$here/tool.sh" cosign)"
if [[ -z "${REGISTRY_AUTH_FILE:-}" ]]; then
	# podman's default: $XDG_RUNTIME_DIR/containers/auth.json, for root /run/containers/0/auth.json.
	if [[ -n "${XDG_RUNTIME_DIR:-}" ]]; then
		export REGISTRY_AUTH_FILE="$XDG_RUNTIME_DIR/containers/auth.json"
	else
		export REGISTRY_AUTH_FILE="/run/containers/$(id -u)/auth.json"
	fi
fi
command="${1:?usage: $0 COSIGN_COMMAND [ARGS...]}"
shift
ca=()
case "$command" in
sign | attest | verify | verify-attestation | tree | triangulate)
	[[ -z "${REGISTRY_CA:-}" ]] || ca=(--registry-cacert "$REGISTRY_CA")
	;;
esac
exec "$cosign" "$command" "${ca[@]}" "$@"
