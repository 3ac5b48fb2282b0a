#!/usr/bin/env bash
# Smoke test for the binaries from build.sh: start etcd + kube-apiserver on
# loopback ports, wait for /readyz, list namespaces with kubectl, tear down.
#
#   hack/controlplane/smoke.sh            # uses $(hack/controlplane/build.sh)
#   hack/controlplane/smoke.sh DIR        # uses DIR/etcd and DIR/kube-apiserver
#
# Needs: openssl, curl, python3 (free-port lookup); kubectl is optional.
# Leaves nothing behind: the processes it started are stopped by PID and the
# temp dir is removed, also on failure or Ctrl-C. Set SMOKE_KEEP=1 to keep logs.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)"
log() { printf 'smoke: %s\n' "$*" >&2; }

bin="${1:-$("$here/build.sh")}"
for b in etcd kube-apiserver; do
	[[ -x "$bin/$b" ]] || { log "missing $bin/$b"; exit 1; }
done

work="$(mktemp -d "${TMPDIR:-/tmp}/controlplane-smoke.XXXXXX")"
etcd_pid="" apiserver_pid=""

stop() { # <pid>: SIGTERM, wait up to 10s, then SIGKILL
	local pid="$1" i
	[[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null || return 0
	kill -TERM "$pid" 2>/dev/null || true
	for ((i = 0; i < 100; i++)); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	kill -KILL "$pid" 2>/dev/null || true
	wait "$pid" 2>/dev/null || true
}
cleanup() {
	local rc=$?
	stop "$apiserver_pid"
	stop "$etcd_pid"
	if [[ $rc -ne 0 || "${SMOKE_KEEP:-0}" == 1 ]]; then
		for f in "$work"/*.log; do
			[[ -f "$f" ]] && { log "--- tail $f"; tail -n 20 "$f" >&2; }
		done
	fi
	if [[ "${SMOKE_KEEP:-0}" == 1 ]]; then log "kept $work"; else rm -rf "$work"; fi
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

free_port() {
	python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}
now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }

# --- credentials ---------------------------------------------------------------
openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=localhost \
	-addext "subjectAltName=IP:127.0.0.1,DNS:localhost" \
	-keyout "$work/serving.key" -out "$work/serving.crt" 2>/dev/null
openssl genrsa -out "$work/sa.key" 2048 2>/dev/null
openssl rsa -in "$work/sa.key" -pubout -out "$work/sa.pub" 2>/dev/null
token="$(openssl rand -hex 16)"
printf '%s,admin,admin,"system:masters"\n' "$token" >"$work/tokens.csv"

# --- etcd ------------------------------------------------------------------------
etcd_client="$(free_port)"
etcd_peer="$(free_port)"
"$bin/etcd" \
	--name=smoke \
	--data-dir="$work/etcd-data" \
	--listen-client-urls="http://127.0.0.1:$etcd_client" \
	--advertise-client-urls="http://127.0.0.1:$etcd_client" \
	--listen-peer-urls="http://127.0.0.1:$etcd_peer" \
	--initial-advertise-peer-urls="http://127.0.0.1:$etcd_peer" \
	--initial-cluster="smoke=http://127.0.0.1:$etcd_peer" \
	--unsafe-no-fsync \
	>"$work/etcd.log" 2>&1 &
etcd_pid=$!
t0="$(now)"
for ((i = 0; i < 300; i++)); do
	curl -fsS "http://127.0.0.1:$etcd_client/health" 2>/dev/null | grep -q '"health":"true"' && break
	kill -0 "$etcd_pid" 2>/dev/null || { log "etcd exited"; exit 1; }
	sleep 0.1
done
curl -fsS "http://127.0.0.1:$etcd_client/health" >/dev/null || { log "etcd not healthy"; exit 1; }
log "etcd healthy on 127.0.0.1:$etcd_client after $(since "$t0")s (pid $etcd_pid)"

# --- kube-apiserver ---------------------------------------------------------------
port="$(free_port)"
apiserver_flags=(
	--etcd-servers="http://127.0.0.1:$etcd_client"
	--bind-address=127.0.0.1
	--advertise-address=127.0.0.1
	--endpoint-reconciler-type=none
	--secure-port="$port"
	--tls-cert-file="$work/serving.crt"
	--tls-private-key-file="$work/serving.key"
	--service-cluster-ip-range=10.0.0.0/24
	--service-account-issuer=https://kubernetes.default.svc.cluster.local
	--service-account-key-file="$work/sa.pub"
	--service-account-signing-key-file="$work/sa.key"
	--authorization-mode=RBAC
	--token-auth-file="$work/tokens.csv"
	--allow-privileged=true
)
"$bin/kube-apiserver" "${apiserver_flags[@]}" >"$work/kube-apiserver.log" 2>&1 &
apiserver_pid=$!
t0="$(now)"
code=""
for ((i = 0; i < 1200; i++)); do # up to 120s
	code="$(curl -sk -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $token" \
		"https://127.0.0.1:$port/readyz" || true)"
	[[ "$code" == 200 ]] && break
	kill -0 "$apiserver_pid" 2>/dev/null || { log "kube-apiserver exited"; exit 1; }
	sleep 0.1
done
[[ "$code" == 200 ]] || { log "kube-apiserver not ready (last /readyz: $code)"; exit 1; }
log "kube-apiserver ready on https://127.0.0.1:$port after $(since "$t0")s (pid $apiserver_pid)"

server_version="$(curl -sk -H "Authorization: Bearer $token" "https://127.0.0.1:$port/version" |
	python3 -c 'import json,sys; print(json.load(sys.stdin)["gitVersion"])')"
log "/version gitVersion: $server_version"

if command -v kubectl >/dev/null 2>&1; then
	kubectl --server "https://127.0.0.1:$port" --token "$token" --insecure-skip-tls-verify \
		get ns >&2
	kubectl --server "https://127.0.0.1:$port" --token "$token" --insecure-skip-tls-verify \
		auth can-i '*' '*' >&2
else
	log "kubectl not found; skipped"
fi
log "OK"
