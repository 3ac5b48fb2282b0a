"""The image end to end: an adapter container and the reporter container share a
volume as in a Pod; the reporter reaches the local kube-apiserver over the host
network with its own projected-style service-account token."""

from __future__ import annotations

import json
import os
import random
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pytest
from harness.cluster import (
    AdapterJob,
    create_job_from_manifest,
    create_namespace,
    load_manifest,
    renamed,
    reporter_env,
    service_account_token,
)
from harness.containers import Engine, exported_files, exported_text, kubelet_state
from harness.controlplane import ROOT, ControlPlane
from lightkube import Client

pytestmark = pytest.mark.e2e

EXAMPLE = ROOT / "deploy" / "examples" / "classic-sidecar-job.yaml"
TOKEN_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"

SCRIPTS = {
    "success": """
        sleep 1
        result='{"status":"success","reason":"ValidationPassed","message":"checked in a container"}'
        printf '%s' "$result" > /results/.tmp && mv /results/.tmp /results/adapter-result.json
    """,
    "failure": """
        sleep 1
        result='{"status":"failure","reason":"DnsZoneMissing","message":"no zone example.com"}'
        echo "$result" > /results/adapter-result.json
        exit 0
    """,
    "crash": """
        sleep 1
        echo "connecting..." >&2
        exit 3
    """,
}
EXPECTED = {
    "success": (0, ("True", "ValidationPassed", "checked in a container")),
    "failure": (0, ("False", "DnsZoneMissing", "no zone example.com")),
    "crash": (
        1,
        ("False", "AdapterExitedWithError", "Adapter container exited with code 3: Error"),
    ),
}


def token_volume(plane: ControlPlane, job: AdapterJob, directory: Path) -> Path:
    """What the projected volume of deploy/examples holds: token, ca.crt, namespace."""
    directory.mkdir()
    (directory / "token").write_text(service_account_token(job.client, job.namespace))
    (directory / "ca.crt").write_bytes(plane.ca_file.read_bytes())
    (directory / "namespace").write_text(job.namespace)
    for path in (directory, *directory.iterdir()):
        path.chmod(0o755 if path.is_dir() else 0o644)
    return directory


def _run_scenario(
    scenario: str,
    engine: Engine,
    image: str,
    adapter_image: str,
    plane: ControlPlane,
    admin: Client,
    workdir: Path,
    user: str | None = None,
) -> dict[str, Any]:
    """Run the adapter and the reporter containers for ``scenario`` (the reporter as
    ``user``, else the image's own user); the reporter's ``inspect`` once it exited."""
    namespace = create_namespace(admin)
    manifest = renamed(load_manifest(EXAMPLE), f"e2e-{scenario}")
    job = create_job_from_manifest(admin, namespace, manifest, workdir / "results")
    os.chown(job.results_dir, 65532, 65532)
    tokens = token_volume(plane, job, workdir / "token")
    api = urlparse(plane.url)
    env = {
        **reporter_env(manifest, job),  # RESULTS_PATH stays /results/adapter-result.json
        "KUBERNETES_SERVICE_HOST": str(api.hostname),
        "KUBERNETES_SERVICE_PORT": str(api.port),
        "LOG_FORMAT": "json",
    }
    reporter = engine.run_detached(
        "--network=host",
        "--read-only",
        "--cap-drop=ALL",
        "--security-opt=no-new-privileges",
        *([f"--user={user}"] if user else []),
        "-v", f"{job.results_dir}:/results:ro",
        "-v", f"{tokens}:{TOKEN_DIR}:ro",
        *(f"--env={k}={v}" for k, v in env.items()),
        image,
    )  # fmt: skip
    adapter = ""
    try:
        job.running()
        adapter = engine.run_detached(
            "--user=65532:65532",
            "--read-only",
            "--network=none",
            "-v", f"{job.results_dir}:/results",
            adapter_image,  # busybox: the reporter image has no shell
            "/bin/sh", "-c", SCRIPTS[scenario],
        )  # fmt: skip
        engine.wait(adapter)
        # Mirror the adapter's real exit into the Pod status, as the kubelet does.
        job.set_adapter(kubelet_state(engine.inspect(adapter)))
        code = engine.wait(reporter)
        output = engine.logs(reporter)
        expected_code, expected = EXPECTED[scenario]
        assert code == expected_code, output
        condition = job.condition()
        assert condition is not None, output
        assert (condition["status"], condition["reason"], condition["message"]) == expected
        entries = [json.loads(line) for line in output.splitlines() if line.startswith("{")]
        exit_entry = next(e for e in entries if e["message"] == "exiting")
        assert exit_entry["max_rss_mib"] > 0
        print(f"{scenario}: reporter peak RSS {exit_entry['max_rss_mib']} MiB in the container")
        return engine.inspect(reporter)
    finally:
        for name in (adapter, reporter):
            if name:
                engine.remove(name)


@pytest.mark.parametrize("scenario", sorted(SCRIPTS))
def test_adapter_and_reporter_containers(
    scenario: str,
    engine: Engine,
    image: str,
    adapter_image: str,
    plane: ControlPlane,
    admin: Client,
    workdir: Path,
) -> None:
    inspected = _run_scenario(scenario, engine, image, adapter_image, plane, admin, workdir)
    assert inspected["HostConfig"]["ReadonlyRootfs"] is True
    assert inspected["Config"]["User"] == "65532:65532"  # the image's own USER


def test_the_image_runs_as_an_arbitrary_uid_in_group_0(
    engine: Engine,
    image: str,
    adapter_image: str,
    plane: ControlPlane,
    admin: Client,
    workdir: Path,
) -> None:
    """As OpenShift's restricted-v2 runs it: a UID from the namespace's range, group 0,
    a read-only root file system."""
    uid = random.randint(1_000_600_000, 1_000_699_999)  # noqa: S311 - a UID, not a secret
    user = f"{uid}:0"
    inspected = _run_scenario("success", engine, image, adapter_image, plane, admin, workdir, user)
    assert inspected["HostConfig"]["ReadonlyRootfs"] is True
    assert inspected["Config"]["User"] == f"{uid}:0"


def test_image_refuses_bad_configuration_with_one_line(engine: Engine, image: str) -> None:
    out = engine(
        "run", "--rm", "--read-only", "--network=none", "--env=JOB_NAME=j", image, check=False
    )
    assert out == ""
    name = engine.run_detached("--read-only", "--env=JOB_NAME=j", image)
    try:
        assert engine.wait(name) == 2
        assert engine.logs(name).strip() == (
            "invalid configuration: JOB_NAMESPACE=(unset): required, must not be empty"
        )
    finally:
        engine.remove(name)


def test_image_metadata(engine: Engine, image: str) -> None:
    inspected = json.loads(engine("image", "inspect", image))[0]
    config = inspected["Config"]
    assert config["User"] == "65532:65532"
    assert config["Entrypoint"] == ["/opt/status-reporter/bin/status-reporter"]
    labels = config["Labels"]
    oci = "org.opencontainers.image."
    for key in ("title", "version", "revision", "source", "licenses", "created"):
        assert labels[f"{oci}{key}"], key
    assert labels[f"{oci}licenses"] == "Apache-2.0"
    # The version and revision: test_image.py, with HyperFleet's labels.
    assert labels["io.status-reporter.sbom"] == "/usr/share/doc/status-reporter/sbom.cdx.json"


def test_nothing_in_the_image_but_what_the_reporter_runs(engine: Engine, image: str) -> None:
    """No shell, no package manager, no compiler, no pip: the only program is the
    interpreter; the project's licence is there."""
    files = exported_files(engine, image)
    programs = sorted(
        path
        for path, entry in files.items()
        if entry.isfile() and entry.mode & 0o111 and not path.endswith(".so")
        and ".so." not in path
    )  # fmt: skip
    assert programs == ["/opt/status-reporter/bin/status-reporter", "/usr/bin/python3.11"]
    for absent in ("/bin/sh", "/usr/bin/sh", "/usr/bin/dpkg", "/usr/bin/apt-get", "/usr/bin/gcc"):
        assert absent not in files
    assert not [path for path in files if "/pip" in path or "/setuptools" in path]
    assert (
        exported_text(engine, image, "/usr/share/doc/status-reporter/LICENSE")
        == (ROOT / "LICENSE").read_text()
    )
