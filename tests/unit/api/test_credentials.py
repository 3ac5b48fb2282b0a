"""Where the API server is and how to authenticate in a Pod: the in-cluster service
account, its token file (read again after a 401) and CA, and the choice between it and a
kubeconfig."""

from __future__ import annotations

import json
import ssl
import subprocess
import sys
from pathlib import Path

import pytest

from status_reporter.api.auth import Credentials, CredentialsError
from status_reporter.api.credentials import load
from tests.unit.transport_pki import Pki, ca_names

V1 = "client.authentication.k8s.io/v1"
V1BETA1 = "client.authentication.k8s.io/v1beta1"
IN_CLUSTER_ENV = {"KUBERNETES_SERVICE_HOST": "10.96.0.1", "KUBERNETES_SERVICE_PORT": "443"}


# --- in-cluster ------------------------------------------------------------------


@pytest.fixture
def service_account(tmp_path: Path, pki: Pki) -> Path:
    directory = tmp_path / "serviceaccount"
    directory.mkdir()
    (directory / "token").write_text("token-one\n")
    (directory / "ca.crt").write_bytes(pki.ca_pem)
    return directory


def load_in_cluster(service_account: Path, **env: str) -> Credentials:
    return load(
        {**IN_CLUSTER_ENV, **env},
        home=str(service_account.parent / "home"),
        service_account_dir=str(service_account),
    )


async def test_in_cluster_service_account(service_account: Path) -> None:
    creds = load_in_cluster(service_account)
    assert creds.source == "in-cluster"
    assert (creds.endpoint.host, creds.endpoint.port) == ("10.96.0.1", 443)
    assert creds.endpoint.server_hostname is None
    tls = creds.endpoint.tls
    assert tls is not None
    assert (tls.verify_mode, tls.check_hostname) == (ssl.CERT_REQUIRED, True)
    assert ca_names(tls) == ["test-ca"]  # only the cluster's CA
    assert await creds.auth.headers() == {"Authorization": "Bearer token-one"}


def test_in_cluster_ipv6_host(service_account: Path) -> None:
    creds = load_in_cluster(
        service_account, KUBERNETES_SERVICE_HOST="fd00::1", KUBERNETES_SERVICE_PORT="6443"
    )
    assert creds.endpoint.host == "fd00::1"
    assert creds.endpoint.authority == "[fd00::1]:6443"


def test_in_cluster_takes_precedence_over_kubeconfig(service_account: Path) -> None:
    kubeconfig = service_account.parent / "config"
    kubeconfig.write_text("current-context: x\n")
    creds = load_in_cluster(service_account, KUBECONFIG=str(kubeconfig))
    assert creds.source == "in-cluster"


def test_in_cluster_start_up_imports_no_kubeconfig_yaml_pathlib_or_urllib(
    service_account: Path,
) -> None:
    # Each would cost start-up CPU in every Pod (docs/design.md "Start-up CPU").
    script = (
        "import sys\n"
        "import status_reporter.shell.app\n"
        "from status_reporter.api.credentials import load\n"
        "creds = load(dict(KUBERNETES_SERVICE_HOST='10.0.0.1', KUBERNETES_SERVICE_PORT='443'),"
        " home=sys.argv[1], service_account_dir=sys.argv[2])\n"
        "loaded = ('status_reporter.api.kubeconfig', 'yaml', 'pathlib', 'urllib.parse')\n"
        "print(creds.source, *(m in sys.modules for m in loaded))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script, str(service_account.parent), str(service_account)],
        capture_output=True,
        text=True,
        check=True,
    )
    assert done.stdout.split() == ["in-cluster", "False", "False", "False", "False"]


def test_a_json_kubeconfig_is_read_without_yaml(tmp_path: Path) -> None:
    config = tmp_path / "config.json"
    config.write_text(
        json.dumps(
            {
                "clusters": [{"name": "c", "cluster": {"server": "https://127.0.0.1:6443"}}],
                "users": [{"name": "u", "user": {"token": "t"}}],
                "contexts": [{"name": "x", "context": {"cluster": "c", "user": "u"}}],
                "current-context": "x",
            }
        )
    )
    script = (
        "import os, sys\n"
        "from status_reporter.api.credentials import load\n"
        "creds = load({'KUBECONFIG': sys.argv[1]}, home=os.path.dirname(sys.argv[1]))\n"
        "print(creds.endpoint.port, 'yaml' in sys.modules)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script, str(config)], capture_output=True, text=True, check=True
    )
    assert done.stdout.split() == ["6443", "False"]


async def test_token_file_is_read_lazily_and_again_on_refresh(service_account: Path) -> None:
    token = service_account / "token"
    creds = load_in_cluster(service_account)
    token.write_text("token-two")  # rotated before the first request
    assert await creds.auth.headers() == {"Authorization": "Bearer token-two"}
    assert await creds.auth.refresh() is False  # unchanged: a retry would not help
    token.write_text("token-three\n")
    assert await creds.auth.headers() == {"Authorization": "Bearer token-two"}  # cached
    assert await creds.auth.refresh() is True
    assert await creds.auth.headers() == {"Authorization": "Bearer token-three"}


async def test_vanished_token_file_is_a_clear_error(service_account: Path) -> None:
    creds = load_in_cluster(service_account)
    assert await creds.auth.headers()
    (service_account / "token").unlink()
    with pytest.raises(CredentialsError) as error:
        await creds.auth.refresh()
    assert str(error.value) == f"token file {service_account / 'token'}: No such file or directory"


async def test_empty_token_file_is_an_error(service_account: Path) -> None:
    (service_account / "token").write_text("\n")
    with pytest.raises(CredentialsError, match=r"token file .*/token is empty$"):
        await load_in_cluster(service_account).auth.headers()


def test_in_cluster_without_ca_is_an_error(service_account: Path) -> None:
    (service_account / "ca.crt").unlink()
    with pytest.raises(CredentialsError) as error:
        load_in_cluster(service_account)
    assert str(error.value) == f"CA file {service_account / 'ca.crt'}: No such file or directory"


def test_in_cluster_with_a_bad_port_is_an_error(service_account: Path) -> None:
    with pytest.raises(
        CredentialsError, match="KUBERNETES_SERVICE_PORT is not a port number: 'https'"
    ):
        load_in_cluster(service_account, KUBERNETES_SERVICE_PORT="https")


@pytest.mark.parametrize(
    ("env", "why"),
    [
        ({}, "KUBERNETES_SERVICE_HOST unset"),
        ({"KUBERNETES_SERVICE_HOST": "10.0.0.1"}, "KUBERNETES_SERVICE_PORT unset"),
        (IN_CLUSTER_ENV, "no token at {sa}/token"),
    ],
)
def test_neither_service_account_nor_kubeconfig(
    tmp_path: Path, env: dict[str, str], why: str
) -> None:
    with pytest.raises(CredentialsError) as error:
        load(env, home=str(tmp_path), service_account_dir=str(tmp_path / "sa"))
    why = why.format(sa=tmp_path / "sa")
    expected = f"no in-cluster service account ({why}) and no kubeconfig at {tmp_path}/.kube/config"
    assert str(error.value) == expected


def test_none_of_the_kubeconfig_files_exist(tmp_path: Path) -> None:
    env = {"KUBECONFIG": f"{tmp_path}/a:{tmp_path}/b"}
    with pytest.raises(CredentialsError, match=f"no kubeconfig at {tmp_path}/a:{tmp_path}/b$"):
        load(env, home=str(tmp_path), service_account_dir=str(tmp_path / "sa"))


@pytest.mark.parametrize("token", ["two\nlines", "with space", "t\u00e9"])
async def test_a_token_no_header_can_carry_is_a_credentials_error(
    service_account: Path, token: str
) -> None:
    (service_account / "token").write_text(token)
    creds = load_in_cluster(service_account)
    with pytest.raises(CredentialsError, match="the token holds spaces, line breaks or non-ASCII"):
        await creds.auth.headers()
    # The bad token is not kept: a rewritten file heals the next request.
    (service_account / "token").write_text("good-token")
    assert await creds.auth.headers() == {"Authorization": "Bearer good-token"}
