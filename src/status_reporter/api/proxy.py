"""Which egress proxy, if any, leads to the API server (README "Networks").

As client-go does: a kubeconfig cluster's ``proxy-url`` is used as it is; otherwise
the environment decides, by the rules of Go's ``golang.org/x/net/http/httpproxy``:
``HTTPS_PROXY`` (or ``https_proxy``) for an https server, ``HTTP_PROXY`` (or
``http_proxy``) for an http one, unless ``NO_PROXY`` (or ``no_proxy``) names the
server's host, a domain it is in, a CIDR block holding its address, or ``*``
(each optionally with a port), or the server is ``localhost`` or a loopback address.
The upper-case name wins when both are set. The proxy is reached over plain TCP
(``http://``) or TLS (``https://``), and opens a CONNECT tunnel; credentials in its
URL become a ``Proxy-Authorization: Basic`` header.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from typing import TYPE_CHECKING, Final

from status_reporter.api.auth import CredentialsError
from status_reporter.api.transport import Proxy

if TYPE_CHECKING:
    from ipaddress import IPv4Address, IPv6Address

# ipaddress and urllib.parse are imported only when a proxy is set: most Pods have
# none, and each import adds to the reporter's start-up.

_DEFAULT_PORTS: Final = {"http": 80, "https": 443}


def parse_proxy_url(text: str, where: str) -> Proxy:
    """The proxy at URL ``text`` (``http://``, ``https://``, or a bare ``host:port``
    taken as ``http://``, as Go does).

    Raises CredentialsError naming ``where`` for a URL that is not one, or a scheme
    other than http and https (e.g. socks5).
    """
    from urllib.parse import unquote, urlsplit  # noqa: PLC0415 - only with a proxy

    url = urlsplit(text)
    if not url.scheme or not url.hostname:
        url = urlsplit(f"http://{text}")
    scheme = url.scheme.lower()
    if scheme not in _DEFAULT_PORTS:
        raise CredentialsError(
            f"{where}: {scheme} proxies are not supported; use an http:// or https:// proxy"
        )
    try:
        port = url.port or _DEFAULT_PORTS[scheme]
    except ValueError:
        raise CredentialsError(f"{where}: the proxy URL has an invalid port") from None
    if not url.hostname or url.path.strip("/") or url.query or url.fragment:
        raise CredentialsError(f"{where}: the proxy URL is not a scheme://host[:port] URL")
    authorization = None
    if url.username is not None:
        # The URL itself is never shown: it holds the password.
        user_pass = f"{unquote(url.username)}:{unquote(url.password or '')}"
        authorization = "Basic " + base64.b64encode(user_pass.encode()).decode("ascii")
    return Proxy(url.hostname, port, tls=scheme == "https", authorization=authorization)


def _setting(env: Mapping[str, str], name: str) -> str:
    return env.get(name) or env.get(name.lower()) or ""


def proxy_from_environment(
    env: Mapping[str, str], scheme: str, host: str, port: int
) -> Proxy | None:
    """The proxy the environment names for a ``scheme`` server at ``host``:``port``
    (``host`` without brackets), or None to connect directly.

    Raises CredentialsError for a proxy setting that is not a usable URL.
    """
    variable = "HTTPS_PROXY" if scheme == "https" else "HTTP_PROXY"
    setting = _setting(env, variable).strip()
    if not setting or not use_proxy(_setting(env, "NO_PROXY"), host, port):
        return None
    return parse_proxy_url(setting, variable)


def _address(text: str) -> IPv4Address | IPv6Address | None:
    import ipaddress  # noqa: PLC0415 - only with a proxy

    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


def use_proxy(no_proxy: str, host: str, port: int) -> bool:
    """Whether a server at ``host``:``port`` goes through the proxy, by Go's rules for
    a ``NO_PROXY`` list (``no_proxy`` here)."""
    host = host.strip().lower()
    if host == "localhost":
        return False
    address = _address(host)
    if address is not None and address.is_loopback:
        return False
    entries = (entry.strip().lower() for entry in no_proxy.split(","))
    return not any(_excludes(entry, host, port, address) for entry in entries if entry)


def _excludes(entry: str, host: str, port: int, address: IPv4Address | IPv6Address | None) -> bool:
    """Whether one ``NO_PROXY`` entry names the server."""
    import ipaddress  # noqa: PLC0415 - only with a proxy

    if entry == "*":
        return True
    if "/" in entry:
        try:
            network = ipaddress.ip_network(entry, strict=False)
        except ValueError:
            return False  # Go ignores what it cannot parse
        return address is not None and address in network
    entry_host, entry_port = _split_host_port(entry)
    if not entry_host or (entry_port and entry_port != str(port)):
        return False
    entry_address = _address(entry_host)
    if entry_address is not None:
        return address is not None and address == entry_address
    # "example.com" covers itself and its subdomains; ".example.com" and
    # "*.example.com" only the subdomains.
    exact = not entry_host.startswith((".", "*."))
    suffix = "." + entry_host.removeprefix("*").removeprefix(".")
    return host.endswith(suffix) or (exact and host == suffix[1:])


def _split_host_port(entry: str) -> tuple[str, str]:
    """A ``NO_PROXY`` entry's host and port ("" when it has none), as Go's
    ``net.SplitHostPort`` would split it, falling back to the whole entry."""
    if entry.startswith("["):
        inside, bracket, rest = entry[1:].partition("]")
        if bracket and rest.startswith(":") and rest[1:].isdigit():
            return inside, rest[1:]
        return entry, ""
    if entry.count(":") == 1:
        host, _, port = entry.partition(":")
        return host, port
    return entry, ""
