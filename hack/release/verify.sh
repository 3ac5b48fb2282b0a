#!/usr/bin/env bash
# Check a pushed image against a public key: its signature, and its CycloneDX SBOM
# attestation (README, "Verifying what you pulled").
#
#   hack/release/verify.sh REGISTRY/NAME@sha256:... cosign.pub [SBOM]
#   hack/release/verify.sh --index REGISTRY/NAME@sha256:... cosign.pub
#
# --index: a multi-platform release's index, whose own signature is checked (each
# platform's image, named by its digest, is checked without --index: its signature and
# its SBOM's attestation).
# Prints what cosign verified (the signed claims, then the attestation's in-toto
# statement, decoded). With SBOM, the attested SBOM must equal that file. Exits
# non-zero when anything does not verify. Key-based, without a transparency log
# (--insecure-ignore-tlog=true): the signature is checked against the key alone. The
# trusted root given to cosign names no Sigstore authority
# (no-authorities.trustedroot.json): cosign would otherwise fetch the public one, which
# key-based verification does not use. REGISTRY_CA as for hack/release/cosign.sh.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)"
die() { printf 'verify: %s\n' "$*" >&2; exit 1; }

index=""
[[ "${1:-}" != --index ]] || { index=1; shift; }
(($# == 2 || $# == 3)) || die "usage: $0 [--index] REGISTRY/NAME@sha256:... PUBLIC_KEY [SBOM]"
ref="$1" key="$2" sbom="${3:-}"
[[ "$ref" =~ @sha256:[0-9a-f]{64}$ ]] || die "$ref: name the image by digest (@sha256:...)"

key_only=(--key "$key" --insecure-ignore-tlog=true --trusted-root "$here/no-authorities.trustedroot.json")
if [[ -n "$index" ]]; then
	exec "$here/cosign.sh" verify "${key_only[@]}" "$ref"
fi
"$here/cosign.sh" verify "${key_only[@]}" "$ref"
attestation="$("$here/cosign.sh" verify-attestation "${key_only[@]}" --type cyclonedx "$ref")"
python3 "$here/attestation.py" "$ref" ${sbom:+--sbom "$sbom"} <<<"$attestation"
