"""The image's software bill of materials, in CycloneDX 1.5 JSON, from the manifest
that hack/image/rootfs.py writes (docs/design.md, "The runtime image").

    python3 sbom.py MANIFEST OUT --version V --revision R --source URL

One component for each Debian package that a file of the image comes from, and one for
each Python distribution installed in the virtualenv, each with its version, its purl
and, as evidence, every path of the image that it accounts for. The files the build
writes itself (the virtualenv's scaffolding, /etc/passwd, this SBOM, ...) are listed
as ``status-reporter:unpackaged-file`` properties of the image itself, so that the
document accounts for every file of the image, which the container tests check.
"""

from __future__ import annotations

import argparse
import email.message
import email.parser
import hashlib
import json
import os
import re
import sys
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

SBOM_PATH = "/usr/share/doc/status-reporter/sbom.cdx.json"
NAMESPACE = uuid.UUID("6f9f3f1e-4e39-4c36-9c63-6d2a3c1b7a10")  # serial numbers, per content


def debian_licenses(copyright_file: Path) -> list[dict[str, Any]]:
    """The licence names of a machine-readable (DEP-5) copyright file; none otherwise."""
    if not copyright_file.exists():
        return []
    text = copyright_file.read_text(errors="replace")
    if not text.startswith("Format:"):
        return []
    names = []
    for paragraph in text.split("\n\n"):
        if re.search(r"^Files:", paragraph, re.MULTILINE):
            match = re.search(r"^License:[ \t]*(\S.*)$", paragraph, re.MULTILINE)
            if match and match.group(1).strip() not in names:
                names.append(match.group(1).strip())
    return [{"license": {"name": name}} for name in names]


def python_licenses(metadata: email.message.Message) -> list[dict[str, Any]]:
    expression = metadata.get("License-Expression")
    if expression:
        return [{"expression": expression}]
    licence = (metadata.get("License") or "").strip()
    if licence and "\n" not in licence and len(licence) < 100:
        return [{"license": {"name": licence}}]
    classifiers = [
        c.rsplit(" :: ", 1)[-1]
        for c in metadata.get_all("Classifier") or []
        if c.startswith("License :: ")
    ]
    return [{"license": {"name": name}} for name in classifiers]


def evidence(paths: list[str]) -> dict[str, Any]:
    return {"occurrences": [{"location": path} for path in sorted(paths)]}


def build(manifest: dict[str, Any], version: str, revision: str, source: str) -> dict[str, Any]:
    files: dict[str, str] = manifest["files"]
    files[SBOM_PATH] = "unpackaged"
    by_origin: dict[str, list[str]] = {}
    for path, origin in files.items():
        by_origin.setdefault(origin, []).append(path)
    distro = "debian-" + manifest["debian_version"].split(".")[0]
    components: list[dict[str, Any]] = []
    for name, package in sorted(manifest["packages"].items()):
        purl = (
            f"pkg:deb/debian/{name}@{package['version']}"
            f"?arch={package['architecture']}&distro={distro}"
        )
        component: dict[str, Any] = {
            "type": "library",
            "bom-ref": purl,
            "name": name,
            "version": package["version"],
            "purl": purl,
            "properties": [
                {"name": "debian:source", "value": package["source"]},
                {"name": "status-reporter:files", "value": str(len(by_origin[f"deb:{name}"]))},
            ],
            "evidence": evidence(by_origin[f"deb:{name}"]),
        }
        licenses = debian_licenses(Path(package["copyright"]))
        if licenses:
            component["licenses"] = licenses
        components.append(component)
    site_packages = Path(manifest["site_packages"])
    for dist_info in sorted(site_packages.glob("*.dist-info")):
        metadata = email.parser.Parser().parsestr((dist_info / "METADATA").read_text())
        name, dist_version = metadata["Name"], metadata["Version"]
        key = f"pypi:{dist_info.name.rsplit('-', 1)[0]}"
        normalised = re.sub(r"[-_.]+", "-", name).lower()
        purl = f"pkg:pypi/{normalised}@{dist_version}"
        component = {
            "type": "application" if normalised == "status-reporter" else "library",
            "bom-ref": purl,
            "name": name,
            "version": dist_version,
            "purl": purl,
            "evidence": evidence(by_origin.get(key, [])),
        }
        licenses = python_licenses(metadata)
        if licenses:
            component["licenses"] = licenses
        components.append(component)
    accounted = {f"deb:{name}" for name in manifest["packages"]} | {
        f"pypi:{d.name.rsplit('-', 1)[0]}" for d in site_packages.glob("*.dist-info")
    }
    strays = sorted(origin for origin in by_origin if origin not in accounted | {"unpackaged"})
    if strays:
        raise SystemExit(f"sbom: files of unknown origin: {strays}")

    epoch = int(os.environ.get("SOURCE_DATE_EPOCH", "0"))
    content = json.dumps([components, version, revision], sort_keys=True).encode()
    image_ref = f"status-reporter@{version}"
    return {
        "$schema": "http://cyclonedx.org/schema/bom-1.5.schema.json",
        "bomFormat": "CycloneDX",
        "specVersion": "1.5",
        "serialNumber": f"urn:uuid:{uuid.uuid5(NAMESPACE, hashlib.sha256(content).hexdigest())}",
        "version": 1,
        "metadata": {
            "timestamp": datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "tools": {
                "components": [
                    {"type": "application", "name": "status-reporter hack/image/sbom.py"}
                ]
            },
            "component": {
                "type": "container",
                "bom-ref": image_ref,
                "name": "status-reporter",
                "version": version,
                "licenses": [{"expression": "Apache-2.0"}],
                "externalReferences": [{"type": "vcs", "url": source}],
                "properties": [
                    {"name": "org.opencontainers.image.revision", "value": revision},
                    *(
                        {"name": "status-reporter:unpackaged-file", "value": path}
                        for path in sorted(by_origin.get("unpackaged", []))
                    ),
                ],
            },
        },
        "components": components,
        "dependencies": [
            {"ref": image_ref, "dependsOn": [c["bom-ref"] for c in components]},
        ],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("manifest", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--version", required=True)
    parser.add_argument("--revision", required=True)
    parser.add_argument("--source", required=True)
    options = parser.parse_args()
    manifest = json.loads(options.manifest.read_text())
    document = build(manifest, options.version, options.revision, options.source)
    options.out.parent.mkdir(parents=True, exist_ok=True)
    options.out.write_text(json.dumps(document, indent=1) + "\n")
    options.out.chmod(0o644)
    epoch = int(os.environ.get("SOURCE_DATE_EPOCH", "0"))
    os.utime(options.out, (epoch, epoch))
    print(
        f"sbom: {len(document['components'])} components"
        f" ({len(manifest['packages'])} Debian packages), {len(manifest['files']) + 1} files",
        file=sys.stderr,
    )


if __name__ == "__main__":
    main()
