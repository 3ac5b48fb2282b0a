"""Egress proxies as client-go uses them: Go's NO_PROXY rules, proxy URLs, the
environment for in-cluster and kubeconfig credentials, a kubeconfig's proxy-url, and
requests and watches through a real loopback CONNECT proxy (plain and TLS)."""

from __future__ import annotations

import base64
import os
from pathlib import Path

import pytest

from status_reporter.api.auth import CredentialsError
from status_reporter.api.credentials import load
from status_reporter.api.proxy import parse_proxy_url, proxy_from_environment, use_proxy
from status_reporter.api.transport import (
    Endpoint,
    HttpClient,
    Proxy,
    ResumingContext,
    TransportError,
)
from tests.unit.api.test_kubeconfig import b64, kubeconfig, write
from tests.unit.connect_proxy import connect_proxy
from tests.unit.transport_pki import Pki
from tests.unit.transport_server import answer_all, chunked, noting_resumption, response, serve

UA = "status-reporter-test/1"


def basic(user_pass: str) -> str:
    return "Basic " + base64.b64encode(user_pass.encode()).decode()


# --- Go's rules ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("no_proxy", "host", "port", "proxied"),
    [
        ("", "10.96.0.1", 443, True),
        ("*", "10.96.0.1", 443, False),
        ("", "localhost", 443, False),
        ("", "127.0.0.1", 6443, False),
        ("", "127.8.9.10", 6443, False),
        ("", "::1", 443, False),
        ("10.0.0.0/8", "10.96.0.1", 443, False),
        ("10.0.0.0/8", "192.168.0.1", 443, True),
        ("10.1.2.3/8", "10.96.0.1", 443, False),  # host bits set, as Go's ParseCIDR allows
        ("fd00::/8", "fd00::1", 443, False),
        ("10.0.0.0/8", "kubernetes.default.svc", 443, True),  # a CIDR names addresses only
        ("10.96.0.1", "10.96.0.1", 443, False),
        ("10.96.0.1:443", "10.96.0.1", 443, False),
        ("10.96.0.1:6443", "10.96.0.1", 443, True),
        ("[fd00::1]:443", "fd00::1", 443, False),
        ("fd00::1", "fd00::1", 443, False),
        ("example.com", "example.com", 443, False),
        ("example.com", "api.example.com", 443, False),
        ("example.com", "badexample.com", 443, True),
        (".example.com", "example.com", 443, True),
        (".example.com", "api.example.com", 443, False),
        ("*.example.com", "example.com", 443, True),
        ("*.example.com", "api.example.com", 443, False),
        ("example.com:443", "api.example.com", 443, False),
        ("example.com:6443", "api.example.com", 443, True),
        ("  Example.COM , other.test", "API.example.com", 443, False),
        ("other.test,,svc", "kubernetes.default.svc", 443, False),
        ("not a cidr/8", "10.0.0.1", 443, True),
    ],
)
def test_no_proxy_rules_are_gos(no_proxy: str, host: str, port: int, proxied: bool) -> None:
    assert use_proxy(no_proxy, host, port) is proxied


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("http://proxy.corp:3128", Proxy("proxy.corp", 3128)),
        ("proxy.corp:3128", Proxy("proxy.corp", 3128)),  # no scheme: http, as Go
        ("http://proxy.corp", Proxy("proxy.corp", 80)),
        ("https://proxy.corp", Proxy("proxy.corp", 443, tls=True)),
        ("HTTPS://proxy.corp:8443/", Proxy("proxy.corp", 8443, tls=True)),
        ("http://[fd00::9]:3128", Proxy("fd00::9", 3128)),
        ("http://u:p%40ss@proxy.corp:3128", Proxy("proxy.corp", 3128, False, basic("u:p@ss"))),
        ("http://only-user@proxy.corp:3128", Proxy("proxy.corp", 3128, False, basic("only-user:"))),
    ],
)
def test_proxy_urls(url: str, expected: Proxy) -> None:
    assert parse_proxy_url(url, "HTTPS_PROXY") == expected


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("socks5://proxy.corp:1080", "socks5 proxies are not supported"),
        ("ftp://proxy.corp", "ftp proxies are not supported"),
        ("http://proxy.corp:99999", "invalid port"),
        ("http://proxy.corp:3128/path", "not a scheme://host[:port] URL"),
    ],
)
def test_unusable_proxy_urls_are_refused(url: str, problem: str) -> None:
    with pytest.raises(CredentialsError, match=r"^HTTPS_PROXY: .*") as error:
        parse_proxy_url(url, "HTTPS_PROXY")
    assert problem in str(error.value)


def test_proxy_credentials_stay_out_of_reprs() -> None:
    proxy = parse_proxy_url("http://user:s3cret@proxy.corp:3128", "HTTPS_PROXY")
    assert "s3cret" not in repr(proxy)
    assert "s3cret" not in repr(Endpoint("10.0.0.1", 443, proxy=proxy))
    assert repr(proxy) == "Proxy(http://<credentials>@proxy.corp:3128)"


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({}, None),
        ({"HTTPS_PROXY": "http://upper:3128"}, Proxy("upper", 3128)),
        ({"https_proxy": "http://lower:3128"}, Proxy("lower", 3128)),
        (
            {"HTTPS_PROXY": "http://upper:3128", "https_proxy": "http://lower:3128"},
            Proxy("upper", 3128),
        ),
        ({"HTTP_PROXY": "http://plain:3128"}, None),  # for http servers only
        ({"HTTPS_PROXY": "http://upper:3128", "NO_PROXY": "10.96.0.0/12"}, None),
        ({"HTTPS_PROXY": "http://upper:3128", "no_proxy": "10.96.0.1"}, None),
        (
            {"HTTPS_PROXY": "http://upper:3128", "NO_PROXY": "other", "no_proxy": "*"},
            Proxy("upper", 3128),
        ),
    ],
)
def test_environment_proxy_for_an_https_server(env: dict[str, str], expected: Proxy | None) -> None:
    assert proxy_from_environment(env, "https", "10.96.0.1", 443) == expected


def test_environment_proxy_for_an_http_server() -> None:
    env = {"HTTP_PROXY": "http://plain:3128", "HTTPS_PROXY": "http://secure:3128"}
    assert proxy_from_environment(env, "http", "10.96.0.1", 8080) == Proxy("plain", 3128)


# --- where credentials get them ------------------------------------------------------


def service_account(tmp_path: Path, pki: Pki) -> Path:
    directory = tmp_path / "serviceaccount"
    directory.mkdir()
    (directory / "token").write_text("token-one\n")
    (directory / "ca.crt").write_bytes(pki.ca_pem)
    return directory


def test_in_cluster_uses_the_environments_proxy(tmp_path: Path, pki: Pki) -> None:
    directory = service_account(tmp_path, pki)
    env = {
        "KUBERNETES_SERVICE_HOST": "10.96.0.1",
        "KUBERNETES_SERVICE_PORT": "443",
        "HTTPS_PROXY": "http://user:pw@proxy.corp:3128",
    }
    endpoint = load(env, home=str(tmp_path), service_account_dir=str(directory)).endpoint
    assert endpoint.proxy == Proxy("proxy.corp", 3128, False, basic("user:pw"))
    assert endpoint.ca_file == str(directory / "ca.crt")
    excluded = load(
        {**env, "NO_PROXY": ".svc,10.96.0.0/12"},
        home=str(tmp_path),
        service_account_dir=str(directory),
    ).endpoint
    assert excluded.proxy is None


def test_in_cluster_with_an_unusable_proxy_is_a_clear_error(tmp_path: Path, pki: Pki) -> None:
    directory = service_account(tmp_path, pki)
    env = {
        "KUBERNETES_SERVICE_HOST": "10.96.0.1",
        "KUBERNETES_SERVICE_PORT": "443",
        "HTTPS_PROXY": "socks5://proxy.corp:1080",
    }
    with pytest.raises(CredentialsError, match=r"^HTTPS_PROXY: socks5 proxies are not supported"):
        load(env, home=str(tmp_path), service_account_dir=str(directory))


def load_kubeconfig(path: Path, **env: str) -> Endpoint:
    return load(
        {"KUBECONFIG": str(path), "PATH": os.environ["PATH"], **env},
        home=str(path.parent / "home"),
        service_account_dir=str(path.parent / "no-service-account"),
    ).endpoint


def test_kubeconfig_proxy_url_is_used_whatever_no_proxy_says(tmp_path: Path) -> None:
    cluster = {"server": "https://127.0.0.1:6443", "proxy-url": "https://u:p@proxy.corp:8443"}
    path = write(tmp_path / "config", kubeconfig(cluster))
    endpoint = load_kubeconfig(path, NO_PROXY="*", HTTPS_PROXY="http://env:3128")
    assert endpoint.proxy == Proxy("proxy.corp", 8443, True, basic("u:p"))


def test_kubeconfig_without_proxy_url_uses_the_environment(tmp_path: Path, pki: Pki) -> None:
    cluster = {"server": "https://api.corp:6443", "certificate-authority-data": b64(pki.ca_pem)}
    path = write(tmp_path / "config", kubeconfig(cluster))
    assert load_kubeconfig(path).proxy is None
    assert load_kubeconfig(path, https_proxy="http://env:3128").proxy == Proxy("env", 3128)
    assert load_kubeconfig(path, HTTPS_PROXY="http://env:3128", NO_PROXY="corp").proxy is None
    assert load_kubeconfig(path).ca_file is None  # CA data: no file to watch


def test_kubeconfig_ca_file_is_watched(tmp_path: Path, pki: Pki) -> None:
    ca = tmp_path / "ca.crt"
    ca.write_bytes(pki.ca_pem)
    cluster = {"server": "https://api.corp:6443", "certificate-authority": "ca.crt"}
    path = write(tmp_path / "config", kubeconfig(cluster))
    assert load_kubeconfig(path).ca_file == str(ca)


# --- through a real CONNECT proxy ------------------------------------------------


async def test_requests_and_watches_go_through_the_tunnel_with_proxy_credentials() -> None:
    auth = basic("user:p@ss")
    async with (
        serve(answer_all(chunked(b'{"n":1}\n'))) as server,
        connect_proxy(authorization=auth) as proxy,
    ):
        endpoint = Endpoint(
            "127.0.0.1", server.port, proxy=Proxy("127.0.0.1", proxy.port, False, auth)
        )
        async with HttpClient(endpoint, keepalive=None, user_agent=UA) as client:
            assert (await client.request("GET", "/api", timeout=2)).body == b'{"n":1}\n'
            async with client.stream("GET", "/watch", connect_timeout=2, read_timeout=2) as stream:
                assert [line async for line in stream.lines()] == [b'{"n":1}']
    assert len(proxy.heads) == 2  # the pooled request's tunnel, then the watch's own
    for head in proxy.heads:
        assert head.startswith(f"CONNECT 127.0.0.1:{server.port} HTTP/1.1\r\n".encode())
        assert f"proxy-authorization: {auth}\r\n".encode() in head
    # The proxy's credentials are for the proxy alone.
    assert all(b"proxy-authorization" not in request.lower() for request in server.requests)


async def test_a_proxy_that_refuses_is_a_clear_error() -> None:
    async with (
        serve(answer_all(response())) as server,
        connect_proxy(authorization=basic("user:right")) as proxy,
    ):
        wrong = Proxy("127.0.0.1", proxy.port, False, basic("user:wrong"))
        client = HttpClient(
            Endpoint("127.0.0.1", server.port, proxy=wrong), keepalive=None, user_agent=UA
        )
        with pytest.raises(TransportError) as error:
            await client.request("GET", "/", timeout=2)
    assert str(error.value) == (
        f"proxy 127.0.0.1:{proxy.port} refused CONNECT to 127.0.0.1:{server.port}:"
        " 407 Proxy Authentication Required"
    )
    assert server.accepts == 0


async def test_an_unreachable_proxy_is_named() -> None:
    async with connect_proxy() as proxy:
        port = proxy.port
    client = HttpClient(
        Endpoint("10.96.0.1", 443, proxy=Proxy("127.0.0.1", port)), keepalive=None, user_agent=UA
    )
    with pytest.raises(TransportError, match=rf"^connection to proxy 127\.0\.0\.1:{port} refused$"):
        await client.request("GET", "/", timeout=2)


async def test_tls_through_an_https_proxy(pki: Pki, tmp_path: Path) -> None:
    # TLS to the proxy, verified as Go does with the cluster's TLS settings, and TLS to
    # the API server inside the tunnel.
    async with (
        serve(answer_all(response(b"secure")), pki.server_context(tmp_path)) as server,
        connect_proxy(tls=pki.server_context(tmp_path)) as proxy,
    ):
        endpoint = Endpoint(
            "127.0.0.1",
            server.port,
            pki.client_context(),
            proxy=Proxy("127.0.0.1", proxy.port, tls=True),
        )
        async with HttpClient(endpoint, keepalive=None, user_agent=UA) as client:
            assert (await client.request("GET", "/", timeout=2)).body == b"secure"
    assert len(proxy.heads) == 1


async def test_the_proxy_is_never_offered_the_api_servers_tls_session(
    pki: Pki, tmp_path: Path
) -> None:
    # One server context, so one set of session ticket keys, for both: the proxy would
    # resume the API server's session if it were offered.
    server_tls = pki.server_context(tmp_path)
    resumed: list[bool] = []
    async with (
        serve(noting_resumption(resumed), server_tls) as server,
        connect_proxy(tls=server_tls) as proxy,
    ):
        endpoint = Endpoint(
            "127.0.0.1",
            server.port,
            ResumingContext.verifying(cadata=pki.ca_pem.decode()),
            proxy=Proxy("127.0.0.1", proxy.port, tls=True),
        )
        async with HttpClient(endpoint, keepalive=None, user_agent=UA) as client:
            for _ in range(2):
                assert (await client.request("GET", "/", timeout=2, fresh=True)).body == b"ok"
    assert resumed == [False, True]  # the API server's own handshakes, in the tunnel
    assert proxy.resumed == [False, False]
