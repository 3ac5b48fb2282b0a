"""Read what ``cosign verify-attestation`` printed (one DSSE envelope per line, each an
in-toto statement, already verified by cosign) and check that each is about the
image named and, with ``--sbom``, that it carries exactly that SBOM.

    cosign verify-attestation ... REF@DIGEST | python3 attestation.py REF@DIGEST [--sbom FILE]

Prints each statement, its SBOM summarised. Exits 1 naming what does not match.
"""

from __future__ import annotations

import argparse
import base64
import json
import sys
from pathlib import Path
from typing import Any


def statements(lines: list[str]) -> list[dict[str, Any]]:
    """The in-toto statements inside the DSSE envelopes, one per non-empty line."""
    found = []
    for line in lines:
        if line.strip():
            envelope = json.loads(line)
            found.append(json.loads(base64.b64decode(envelope["payload"])))
    return found


def problems(statement: dict[str, Any], digest: str, sbom: dict[str, Any] | None) -> list[str]:
    """What is wrong with one statement for the image ``digest`` (sha256:...)."""
    found = []
    subjects = {"sha256:" + s["digest"]["sha256"] for s in statement["subject"]}
    if subjects != {digest}:
        found.append(f"the statement is about {sorted(subjects)}, not {digest}")
    if statement["predicateType"] != "https://cyclonedx.org/bom":
        found.append(f"predicate type {statement['predicateType']}, not CycloneDX")
    if sbom is not None and statement["predicate"] != sbom:
        found.append("the attested SBOM is not the one given")
    return found


def summary(statement: dict[str, Any]) -> dict[str, Any]:
    """The statement with its SBOM reduced to what identifies it."""
    predicate = statement["predicate"]
    return {
        "_type": statement["_type"],
        "predicateType": statement["predicateType"],
        "subject": statement["subject"],
        "predicate": {
            "bomFormat": predicate.get("bomFormat"),
            "specVersion": predicate.get("specVersion"),
            "serialNumber": predicate.get("serialNumber"),
            "metadata.component": {
                k: predicate.get("metadata", {}).get("component", {}).get(k)
                for k in ("name", "version")
            },
            "components": len(predicate.get("components", [])),
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("ref", help="the image by digest, REGISTRY/NAME@sha256:...")
    parser.add_argument("--sbom", type=Path, help="the SBOM the attestation must carry")
    options = parser.parse_args()
    digest = options.ref.rsplit("@", 1)[-1]
    sbom = json.loads(options.sbom.read_text()) if options.sbom else None
    found = statements(sys.stdin.read().splitlines())
    if not found:
        raise SystemExit("attestation: cosign printed no attestation")
    for statement in found:
        print(json.dumps(summary(statement), indent=1))
        wrong = problems(statement, digest, sbom)
        if wrong:
            raise SystemExit("attestation: " + "; ".join(wrong))


if __name__ == "__main__":
    main()
