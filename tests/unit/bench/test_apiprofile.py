"""The API server's profile, read: ``go tool pprof -traces`` output parsed, each sample
put in the category of the first rule its frames match (the profiling itself is run by
tests/integration/test_bench_scale_smoke.py)."""

from __future__ import annotations

import math

import pytest
from bench.apiprofile import (
    AUTHENTICATION,
    AUTHORIZATION,
    BACKGROUND,
    CREATES,
    GC,
    GETS,
    RULES_REVIEW,
    SERVING,
    TLS,
    WATCH_EVENTS,
    WATCH_SETUP,
    WRITES,
    category,
    parse_traces,
)

# The shape of `go tool pprof -traces` (a header, then each sample: its value, then its
# frames leaf first, inlined frames marked).
TRACES = """\
File: kube-apiserver
Type: cpu
Time: 2026-12-07 21:00:00 UTC
Duration: 1s, Total samples = 40ms ( 4.00%)
-----------+-------------------------------------------------------
      10ms   crypto/internal/fips140/bigmod.(*Nat).montgomeryMul
             crypto/rsa.signPSSWithSalt
             crypto/tls.(*serverHandshakeStateTLS13).sendServerCertificate
             crypto/tls.(*Conn).serverHandshake
             crypto/tls.(*Conn).handshakeContext
             crypto/tls.(*Conn).HandshakeContext (inline)
             net/http.(*conn).serve
-----------+-------------------------------------------------------
      20ms   k8s.io/kubernetes/plugin/pkg/auth/authorizer/rbac.(*RBACAuthorizer).Authorize (inline)
             k8s.io/apiserver/pkg/endpoints/filters.WithAuthorization.func1
             net/http.HandlerFunc.ServeHTTP
             net/http.(*http2serverConn).runHandler
-----------+-------------------------------------------------------
      10ms   runtime.scanobject
             runtime.gcDrain
             runtime.gcBgMarkWorker.func2
             runtime.gcBgMarkWorker
-----------+-------------------------------------------------------
"""


def test_traces_are_summed_by_category() -> None:
    seconds = parse_traces(TRACES)
    assert set(seconds) == {TLS, AUTHORIZATION, GC}
    assert math.isclose(seconds[TLS], 0.010)
    # An inlined leaf frame still matches (" (inline)" is not part of its name).
    assert math.isclose(seconds[AUTHORIZATION], 0.020)
    assert math.isclose(seconds[GC], 0.010)


def test_other_units_and_no_samples() -> None:
    assert parse_traces("File: x\nType: cpu\n") == {}
    one = "-----------+---\n  1.50s   runtime.futex\n             runtime.main\n-----------+---\n"
    assert parse_traces(one) == {BACKGROUND: 1.5}


ROOT = ("net/http.(*http2serverConn).runHandler",)
FILTERS = (
    "k8s.io/apiserver/pkg/endpoints/filters.WithAuthorization.func1",
    "k8s.io/apiserver/pkg/endpoints/filters.withAuthentication.func1",
    *ROOT,
)


@pytest.mark.parametrize(
    ("leaf", "expected"),
    [
        (
            (
                "k8s.io/kubernetes/pkg/serviceaccount.(*jwtTokenAuthenticator).AuthenticateToken",
                "k8s.io/apiserver/pkg/authentication/request/bearertoken.(*Authenticator)."
                "AuthenticateRequest",
            ),
            AUTHENTICATION,
        ),
        (
            (
                "k8s.io/kubernetes/pkg/registry/authorization/selfsubjectrulesreview.(*REST)"
                ".Create",
                "k8s.io/apiserver/pkg/endpoints/handlers.createHandler.func1.1",
            ),
            RULES_REVIEW,
        ),
        (
            (
                "k8s.io/apiserver/pkg/registry/generic/registry.(*Store).Get",
                "k8s.io/apiserver/pkg/endpoints/handlers.GetResource.getResourceHandler.func1",
            ),
            GETS,
        ),
        (
            (
                "k8s.io/apiserver/pkg/storage/cacher.(*Cacher).Watch",
                "k8s.io/apiserver/pkg/endpoints/handlers.ListResource.func1",
            ),
            WATCH_SETUP,
        ),
        (
            ("k8s.io/apiserver/pkg/endpoints/handlers.(*WatchServer).HandleHTTP",),
            WATCH_EVENTS,
        ),
        (
            (
                "k8s.io/apiserver/pkg/endpoints/handlers.handleWatch",
                "k8s.io/apiserver/pkg/endpoints/handlers.ListResource.func1",
            ),
            WATCH_SETUP,
        ),
        (
            ("k8s.io/apiserver/pkg/endpoints/handlers.UpdateResource.func1.4",),
            WRITES,
        ),
        (
            ("k8s.io/apiserver/pkg/endpoints/handlers.PatchResource.func1",),
            WRITES,
        ),
        (
            ("k8s.io/apiserver/pkg/endpoints/handlers.createHandler.func1.1",),
            CREATES,
        ),
        ((), SERVING),
    ],
)
def test_a_request_counts_where_its_innermost_named_work_is(
    leaf: tuple[str, ...], expected: str
) -> None:
    assert category([*leaf, *FILTERS]) == expected


def test_work_outside_any_request_is_background() -> None:
    assert category(["k8s.io/client-go/tools/cache.(*Reflector).ListAndWatch"]) == BACKGROUND
