"""Where the Kubernetes API server is and how to authenticate to it: the in-cluster
service account, or else a kubeconfig.

In a Pod this is the service account: ``KUBERNETES_SERVICE_HOST`` and
``KUBERNETES_SERVICE_PORT``, its token (read again after a 401: the kubelet rotates
it) and CA certificate (read again when it changes: a rotated cluster CA), reached
through the proxy the environment names, if any (:mod:`status_reporter.api.proxy`).
Elsewhere it is the current context of the kubeconfig files
(:mod:`status_reporter.api.kubeconfig`, imported only then), as client-go keeps
``rest.InClusterConfig`` apart from ``clientcmd``.

How requests then authenticate is :mod:`status_reporter.api.auth`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Final

from status_reporter.api.auth import Credentials, CredentialsError, TokenFileAuth, tls_context
from status_reporter.api.proxy import proxy_from_environment
from status_reporter.api.transport import Endpoint

# Paths are plain strings: importing pathlib (with urllib.parse) would add about 5 %
# to the reporter's start-up instructions, for a handful of joins.
SERVICE_ACCOUNT_DIR: Final = "/var/run/secrets/kubernetes.io/serviceaccount"


def load(
    env: Mapping[str, str], *, home: str, service_account_dir: str = SERVICE_ACCOUNT_DIR
) -> Credentials:
    """The in-cluster service account when there is one, else the kubeconfig:
    ``KUBECONFIG`` (a ``:``-separated list) or ``home/.kube/config``.

    Raises CredentialsError with a one-line message naming the file and field.
    """
    host = env.get("KUBERNETES_SERVICE_HOST", "")
    port = env.get("KUBERNETES_SERVICE_PORT", "")
    token = os.path.join(service_account_dir, "token")
    if host and port and os.path.exists(token):
        return _in_cluster(host, port, service_account_dir, env)
    if not host:
        no_service_account = "KUBERNETES_SERVICE_HOST unset"
    elif not port:
        no_service_account = "KUBERNETES_SERVICE_PORT unset"
    else:
        no_service_account = f"no token at {token}"
    listed = [p for p in env.get("KUBECONFIG", "").split(":") if p]
    if not listed:
        listed = [os.path.join(home, ".kube", "config")]
    # Like kubectl, skip the files of the list that do not exist.
    paths = [path for path in listed if os.path.exists(path)]
    if not paths:
        raise CredentialsError(
            f"no in-cluster service account ({no_service_account})"
            f" and no kubeconfig at {':'.join(listed)}"
        )
    # Outside a Pod only: the kubeconfig loader (with its YAML, certificates and plugins)
    # is never imported in one.
    from status_reporter.api.kubeconfig import load_kubeconfig  # noqa: PLC0415

    return load_kubeconfig(paths, env)


def _in_cluster(
    host: str, port: str, service_account_dir: str, env: Mapping[str, str]
) -> Credentials:
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise CredentialsError(f"KUBERNETES_SERVICE_PORT is not a port number: {port!r}")
    ca = os.path.join(service_account_dir, "ca.crt")
    tls = tls_context(cafile=ca, where=f"CA file {ca}")
    token = TokenFileAuth(os.path.join(service_account_dir, "token"))
    proxy = proxy_from_environment(env, "https", host, int(port))
    endpoint = Endpoint(host, int(port), tls, proxy=proxy, ca_file=ca)
    return Credentials(endpoint, token, "in-cluster")
