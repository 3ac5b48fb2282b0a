#!/usr/bin/env bash
# Smoke-test podman + the local base images on this machine:
#   1. multi-stage build: venv + `pip install` from PyPI in the -build tag,
#      venv copied into the runtime tag
#   2. run it read-only as 65532:65532
#   3. two containers sharing a host bind mount and a named volume
#   4. --network host reaches a server on the host's 127.0.0.1
# Cleans up only what it created (names prefixed sr-smoke-). Exit 0 = all ok.
#
#   hack/image/smoke-test.sh            (run build-base-image.sh first)
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
log() { printf '[smoke-test %s] %s\n' "$(date +%T)" "$*" >&2; }
fail() { log "FAIL: $*"; exit 1; }
pm() { "$here/podman.sh" "$@"; }

BASE_RUNTIME="${BASE_RUNTIME:-localhost/status-reporter-base:bookworm}"
BASE_BUILD="${BASE_BUILD:-localhost/status-reporter-base:bookworm-build}"
IMG="localhost/sr-smoke-test:latest"
VOL="sr-smoke-results"
WRITER="sr-smoke-writer"

pm image exists "$BASE_RUNTIME" || fail "$BASE_RUNTIME missing: run hack/image/build-base-image.sh"
pm image exists "$BASE_BUILD" || fail "$BASE_BUILD missing: run hack/image/build-base-image.sh"

tmp="$(mktemp -d /tmp/sr-smoke.XXXXXX)"
http_pid=""
cleanup() {
    if [ -n "$http_pid" ]; then kill "$http_pid" 2>/dev/null || true; fi
    pm rm -f -t 0 "$WRITER" >/dev/null 2>&1 || true
    pm volume rm -f "$VOL" >/dev/null 2>&1 || true
    pm rmi -f "$IMG" >/dev/null 2>&1 || true
    rm -rf "$tmp"
}
trap cleanup EXIT

# Builds use the host's network and every other container none or the host's: the
# engine's default network is a bridge with firewall rules that outlive the test.
# Where TLS to PyPI is intercepted by a proxy whose CA only the host trusts, hand the
# host's CA bundle to RUN steps as a read-only build volume (not committed to layers).
build_flags=(--layers=false --network host)
host_ca=/etc/ssl/certs/ca-certificates.crt
[ -f "$host_ca" ] && build_flags+=(-v "$host_ca:$host_ca:ro")

cat >"$tmp/Containerfile" <<EOF
FROM $BASE_BUILD AS builder
RUN python3 -m venv /opt/venv \\
 && /opt/venv/bin/pip install --no-cache-dir --disable-pip-version-check six==1.16.0 \\
 && /opt/venv/bin/pip uninstall -y -q pip setuptools \\
 && find /opt/venv -name __pycache__ -prune -exec rm -rf {} +

FROM $BASE_RUNTIME
COPY --from=builder /opt/venv /opt/venv
ENV PATH=/opt/venv/bin:\$PATH VIRTUAL_ENV=/opt/venv PYTHONDONTWRITEBYTECODE=1
USER 65532:65532
CMD ["python3", "-c", "import six; print('six', six.__version__)"]
EOF

log "1. build (venv + pip install from PyPI)"
t0=$(date +%s)
pm build "${build_flags[@]}" -t "$IMG" "$tmp" >&2 || fail "podman build"
log "   build took $(($(date +%s) - t0))s"

log "2. run read-only as 65532:65532"
out="$(pm run --rm --read-only --network none --user 65532:65532 "$IMG")"
[ "$out" = "six 1.16.0" ] || fail "unexpected output: $out"
out="$(pm run --rm --read-only --network none --user 65532:65532 "$BASE_RUNTIME" python3 -c 'print(1)')"
[ "$out" = "1" ] || fail "base image: unexpected output: $out"

log "3a. shared host bind mount (-v DIR:/results:z)"
mkdir -p "$tmp/results" && chown 65532:65532 "$tmp/results"
pm run --rm --read-only --network none --user 65532:65532 -v "$tmp/results:/results:z" "$IMG" \
    python3 -c 'open("/results/status.json", "w").write("{\"ok\": true}")'
out="$(pm run --rm --read-only --network none --user 65532:65532 -v "$tmp/results:/results:z,ro" "$IMG" \
    python3 -c 'print(open("/results/status.json").read())')"
[ "$out" = '{"ok": true}' ] || fail "bind mount: unexpected output: $out"

log "3b. named volume shared by two concurrent containers"
pm volume create "$VOL" >/dev/null
pm run -d --name "$WRITER" --read-only --network none --user 65532:65532 -v "$VOL:/results" "$IMG" \
    python3 -c '
import os, time
for i in range(20):
    with open("/results/.tmp", "w") as f: f.write(str(i))
    os.replace("/results/.tmp", "/results/counter"); time.sleep(0.2)' >/dev/null
sleep 1
out="$(pm run --rm --read-only --network none --user 65532:65532 -v "$VOL:/results:ro" "$IMG" \
    python3 -c 'print(open("/results/counter").read())')"
[[ "$out" =~ ^[0-9]+$ ]] || fail "named volume: unexpected output: $out"
[ "$(pm wait "$WRITER")" = "0" ] || fail "writer container failed"

log "4. --network host reaches the host loopback"
echo "hello-from-host" >"$tmp/index.txt"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
(cd "$tmp" && exec timeout 120 python3 -m http.server "$port" --bind 127.0.0.1 >/dev/null 2>&1) &
http_pid=$!
for _ in $(seq 50); do (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break; sleep 0.1; done
out="$(pm run --rm --read-only --user 65532:65532 --network host "$IMG" \
    python3 -c "import urllib.request as u; print(u.urlopen('http://127.0.0.1:$port/index.txt', timeout=5).read().decode().strip())")"
[ "$out" = "hello-from-host" ] || fail "host network: unexpected output: $out"

pm image ls --format '{{.Repository}}:{{.Tag}} {{.Size}}' --filter reference=localhost/status-reporter-base >&2
pm image ls --format '{{.Repository}}:{{.Tag}} {{.Size}}' --filter "reference=$IMG" >&2
log "all smoke tests passed"
