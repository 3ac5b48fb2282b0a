#!/usr/bin/env bash
# Start a real single-node Kubernetes on loopback: etcd, kube-apiserver,
# kube-controller-manager, kube-scheduler, containerd and a kubelet (node
# "localhost"), and import images into containerd.
#
#   env_file=$(hack/cluster/up.sh [IMAGE...])   # IMAGE: images of the container engine to import
#   hack/cluster/down.sh                        # stop, clean up, check
#
# stdout: one line, the path of a KEY=VALUE file describing the cluster (admin
# kubeconfig, API port, CA, audit log, images). Progress goes to stderr.
#
# Every component listens on 127.0.0.1 only, on ports picked free at start. No
# kube-proxy and no Pod network: Pods must use hostNetwork. The kubelet's kernel
# settings are put back once it runs. A failed start tears down at once; a start
# after a run that was killed first cleans up what that run left.
#
# Needs root. Binaries: hack/controlplane/build.sh (both entries); packages:
# hack/cluster/install.sh (CONTAINERD=debian|go); images: hack/cluster/images.sh.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)"
# shellcheck source=hack/cluster/lib.sh
. "$here/lib.sh"
require_root
t0=$SECONDS

if [[ -e $CLUSTER_DIR || -n "$(node_pids)" || -n "$(node_cgroups)" ]]; then
	log "an earlier run left a node behind: tearing it down first"
	"$here/down.sh" >&2
fi
[[ -z "$(node_cgroups)" ]] || die "$CGROUP_NAME cgroups exist: is another kubelet running on this machine?"

started=0
cleanup() {
	local rc=$?
	if ((!started)); then
		log "start failed (exit $rc); logs were in $CLUSTER_DIR/logs:"
		tail -n 15 "$CLUSTER_DIR"/logs/*.log >&2 2>/dev/null || true
		"$here/down.sh" >&2 || true
	fi
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

"$here/check.sh" baseline
cp_bin="$("$here/../controlplane/build.sh")"
node_bin="$("$here/../controlplane/build.sh" --node)"
ctd_bin="$("$here/install.sh")"
mapfile -t own_images < <("$here/images.sh")
pause_image="${own_images[0]}"
adapter_image="${own_images[1]}"

d="$CLUSTER_DIR"
pki="$d/pki"
mkdir -p "$pki" "$d/logs" "$d/run" "$d/cni" "$d/containerd" "$d/kubelet" "$d/pod-logs"

read -r etcd_port peer_port api_port kubelet_port healthz_port < <(python3 -c '
import socket
socks = [socket.socket() for _ in range(5)]
for s in socks:
    s.bind(("127.0.0.1", 0))
print(*(s.getsockname()[1] for s in socks))
')

# --- certificates: one CA, a serving cert per server, a client cert per user --
openssl_quiet() { openssl "$@" 2>/dev/null; }
openssl_quiet ecparam -name prime256v1 -genkey -noout -out "$pki/ca.key"
openssl_quiet req -x509 -new -key "$pki/ca.key" -subj "/CN=status-reporter-cluster-ca" -days 2 -out "$pki/ca.crt"
cert() { # <name> <subject> <extendedKeyUsage> [subjectAltName]
	local name="$1" subject="$2" usage="$3" san="${4:-}"
	openssl_quiet ecparam -name prime256v1 -genkey -noout -out "$pki/$name.key"
	openssl_quiet req -new -key "$pki/$name.key" -subj "$subject" -out "$pki/$name.csr"
	{
		echo "basicConstraints=CA:FALSE"
		echo "keyUsage=critical,digitalSignature,keyEncipherment"
		echo "extendedKeyUsage=$usage"
		[[ -z $san ]] || echo "subjectAltName=$san"
	} >"$pki/$name.ext"
	openssl_quiet x509 -req -in "$pki/$name.csr" -CA "$pki/ca.crt" -CAkey "$pki/ca.key" -CAcreateserial \
		-days 2 -extfile "$pki/$name.ext" -out "$pki/$name.crt"
}
cert apiserver "/CN=kube-apiserver" serverAuth \
	"IP:127.0.0.1,IP:10.0.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local"
cert kubelet-serving "/CN=$NODE_NAME" serverAuth "IP:127.0.0.1,DNS:$NODE_NAME"
cert admin "/O=system:masters/CN=status-reporter-admin" clientAuth
cert kcm "/CN=system:kube-controller-manager" clientAuth
cert scheduler "/CN=system:kube-scheduler" clientAuth
cert kubelet "/O=system:nodes/CN=system:node:$NODE_NAME" clientAuth
cert apiserver-kubelet "/O=system:masters/CN=kube-apiserver-kubelet-client" clientAuth
openssl_quiet ecparam -name prime256v1 -genkey -noout -out "$pki/sa.key"
openssl_quiet ec -in "$pki/sa.key" -pubout -out "$pki/sa.pub"

api_url="https://127.0.0.1:$api_port"
kubeconfig() { # <name>: a kubeconfig for the client certificate <name>
	cat >"$d/$1.kubeconfig" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: local
  cluster: {server: "$api_url", certificate-authority: "$pki/ca.crt"}
users:
- name: $1
  user: {client-certificate: "$pki/$1.crt", client-key: "$pki/$1.key"}
contexts:
- name: local
  context: {cluster: local, user: $1}
current-context: local
EOF
}
for u in admin kcm scheduler kubelet; do kubeconfig "$u"; done

start() { # <name> <argv...>: a daemon in its own session, so Ctrl-C reaches only the caller
	local name="$1"
	shift
	setsid "$@" </dev/null >"$d/logs/$name.log" 2>&1 &
	echo $! >"$d/run/$name.pid"
}
alive() { kill -0 "$(cat "$d/run/$1.pid")" 2>/dev/null; }
wait_for() { # <what> <seconds> <daemon> <command...>
	local what="$1" limit="$2" daemon="$3" deadline=$((SECONDS + $2))
	shift 3
	until "$@" >/dev/null 2>&1; do
		alive "$daemon" || die "$daemon exited while waiting for $what:
$(tail -n 20 "$d/logs/$daemon.log")"
		((SECONDS < deadline)) || die "$what not ready after ${limit}s"
		sleep 0.2
	done
}
api() { curl -sf --cacert "$pki/ca.crt" --cert "$pki/admin.crt" --key "$pki/admin.key" "$api_url$1"; }

# --- control plane -------------------------------------------------------------
start etcd "$cp_bin/etcd" --name=node --data-dir="$d/etcd" \
	--listen-client-urls="http://127.0.0.1:$etcd_port" --advertise-client-urls="http://127.0.0.1:$etcd_port" \
	--listen-peer-urls="http://127.0.0.1:$peer_port" --initial-advertise-peer-urls="http://127.0.0.1:$peer_port" \
	--initial-cluster="node=http://127.0.0.1:$peer_port" --unsafe-no-fsync

# The audit log keeps the service accounts' requests only: the tests count what
# the reporter asked of the API.
cat >"$d/audit-policy.yaml" <<'EOF'
apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: ["RequestReceived"]
rules:
- level: Metadata
  userGroups: ["system:serviceaccounts"]
- level: None
EOF
start kube-apiserver "$cp_bin/kube-apiserver" \
	--etcd-servers="http://127.0.0.1:$etcd_port" \
	--bind-address=127.0.0.1 --advertise-address=127.0.0.1 --endpoint-reconciler-type=none \
	--secure-port="$api_port" \
	--tls-cert-file="$pki/apiserver.crt" --tls-private-key-file="$pki/apiserver.key" \
	--client-ca-file="$pki/ca.crt" \
	--service-cluster-ip-range=10.0.0.0/24 \
	--service-account-issuer=https://kubernetes.default.svc.cluster.local \
	--service-account-key-file="$pki/sa.pub" --service-account-signing-key-file="$pki/sa.key" \
	--authorization-mode=Node,RBAC --enable-admission-plugins=NodeRestriction \
	--allow-privileged=true \
	--kubelet-client-certificate="$pki/apiserver-kubelet.crt" --kubelet-client-key="$pki/apiserver-kubelet.key" \
	--kubelet-certificate-authority="$pki/ca.crt" \
	--kubelet-preferred-address-types=Hostname \
	--audit-policy-file="$d/audit-policy.yaml" --audit-log-path="$d/audit.log" \
	--audit-log-format=json --audit-log-mode=blocking
wait_for "kube-apiserver" 90 kube-apiserver api /readyz

start kube-controller-manager "$node_bin/kube-controller-manager" \
	--kubeconfig="$d/kcm.kubeconfig" --secure-port=0 --leader-elect=false \
	--use-service-account-credentials=true \
	--root-ca-file="$pki/ca.crt" --service-account-private-key-file="$pki/sa.key"
start kube-scheduler "$node_bin/kube-scheduler" \
	--kubeconfig="$d/scheduler.kubeconfig" --secure-port=0 --leader-elect=false

# --- containerd ------------------------------------------------------------------
# Only the loopback plugin: containerd reports the network ready with one config,
# and hostNetwork Pods never call it.
cat >"$d/cni/10-loopback.conflist" <<'EOF'
{"cniVersion": "1.0.0", "name": "loopback", "plugins": [{"type": "loopback"}]}
EOF
ctd_version="$("$ctd_bin/containerd" --version | awk '{ print $3 }')"
if [[ $ctd_version == v1.* || $ctd_version == 1.* ]]; then
	cri='plugins."io.containerd.grpc.v1.cri"'
	cat >"$d/containerd/config.toml" <<EOF
version = 2
root = "$d/containerd/root"
state = "$d/containerd/state"
disabled_plugins = ["io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.zfs"]
[grpc]
  address = "$SOCK"
[ttrpc]
  address = "$SOCK.ttrpc"
[plugins."io.containerd.internal.v1.opt"]
  path = "$d/containerd/opt"
[$cri]
  sandbox_image = "$pause_image"
  # No CAP_SYS_RESOURCE here: lowering a sandbox's oom_score_adj would fail.
  restrict_oom_score_adj = true
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
[$cri.cni]
  bin_dir = "/usr/lib/cni"
  conf_dir = "$d/cni"
[$cri.containerd]
  snapshotter = "overlayfs"
  default_runtime_name = "runc"
[$cri.containerd.runtimes.runc]
  runtime_type = "io.containerd.runc.v2"
[$cri.containerd.runtimes.runc.options]
  SystemdCgroup = false
  Root = "$d/runc"
EOF
else
	cat >"$d/containerd/config.toml" <<EOF
version = 3
root = "$d/containerd/root"
state = "$d/containerd/state"
disabled_plugins = ["io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.devmapper",
  "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.erofs"]
[grpc]
  address = "$SOCK"
[ttrpc]
  address = "$SOCK.ttrpc"
[plugins."io.containerd.internal.v1.opt"]
  path = "$d/containerd/opt"
[plugins."io.containerd.cri.v1.images"]
  snapshotter = "overlayfs"
[plugins."io.containerd.cri.v1.images".pinned_images]
  sandbox = "$pause_image"
[plugins."io.containerd.cri.v1.runtime"]
  # No CAP_SYS_RESOURCE here: lowering a sandbox's oom_score_adj would fail.
  restrict_oom_score_adj = true
  enable_cdi = false
[plugins."io.containerd.cri.v1.runtime".cni]
  bin_dirs = ["/usr/lib/cni"]
  conf_dir = "$d/cni"
[plugins."io.containerd.cri.v1.runtime".containerd]
  default_runtime_name = "runc"
[plugins."io.containerd.cri.v1.runtime".containerd.runtimes.runc]
  runtime_type = "io.containerd.runc.v2"
[plugins."io.containerd.cri.v1.runtime".containerd.runtimes.runc.options]
  SystemdCgroup = false
  Root = "$d/runc"
[plugins."io.containerd.grpc.v1.cri"]
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
EOF
fi
ctr=("$ctd_bin/ctr" --address "$SOCK" --namespace k8s.io)
PATH="$ctd_bin:$PATH" start containerd "$ctd_bin/containerd" --config "$d/containerd/config.toml"
wait_for containerd 30 containerd "${ctr[@]}" version
images=("$pause_image" "$adapter_image" "$@")
log "importing ${images[*]}"
read -r -a engine < <("$here/../image/engine.sh") || die "no working container engine"
save=("${engine[@]}" save)
# podman writes one image per archive unless told otherwise; docker always writes all.
[[ "${engine[0]}" == */podman.sh ]] && save+=(--format docker-archive -m)
"${save[@]}" "${images[@]}" | "${ctr[@]}" images import --all-platforms - >&2

# --- kubelet ---------------------------------------------------------------------
cat >"$d/kubelet.yaml" <<EOF
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: 127.0.0.1
port: $kubelet_port
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: $healthz_port
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: true}
  x509: {clientCAFile: "$pki/ca.crt"}
authorization: {mode: Webhook}
tlsCertFile: "$pki/kubelet-serving.crt"
tlsPrivateKeyFile: "$pki/kubelet-serving.key"
containerRuntimeEndpoint: "unix://$SOCK"
# This machine has cgroup v1 and no systemd as PID 1.
cgroupDriver: cgroupfs
failCgroupV1: false
failSwapOn: false
podLogsDir: "$d/pod-logs"
resolvConf: /etc/resolv.conf
# Tests must not be disturbed by evictions or image garbage collection.
evictionHard: {memory.available: 100Mi, nodefs.available: 1%, imagefs.available: 1%, nodefs.inodesFree: 1%}
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
serializeImagePulls: false
EOF
start kubelet "$node_bin/kubelet" --config="$d/kubelet.yaml" --kubeconfig="$d/kubelet.kubeconfig" \
	--hostname-override="$NODE_NAME" --root-dir="$d/kubelet" --v=1
node_ready() {
	api "/api/v1/nodes/$NODE_NAME" | python3 -c '
import json, sys
node = json.load(sys.stdin)
ready = [c for c in node["status"].get("conditions", []) if c["type"] == "Ready"]
taints = node["spec"].get("taints", [])
sys.exit(0 if ready and ready[0]["status"] == "True" and not taints else 1)'
}
wait_for "node $NODE_NAME Ready" 120 kubelet node_ready

# The kubelet set its kernel settings while starting its container manager, which
# is done once the node is Ready: put the machine's own values back.
while read -r _ kv; do
	name="${kv%%=*}" want="${kv#*=}"
	[[ "$(sysctl -n "$name")" == "$want" ]] || sysctl -q -w "$name=$want"
done < <(grep '^sysctl ' "$BASELINE")

# The service-account token controller and the root CA publisher must be running
# before Pods can mount projected tokens.
wait_for "kube-root-ca.crt in default" 60 kube-controller-manager api /api/v1/namespaces/default/configmaps/kube-root-ca.crt

cat >"$d/env" <<EOF
CLUSTER_DIR=$d
KUBECONFIG=$d/admin.kubeconfig
API_URL=$api_url
API_PORT=$api_port
CA_FILE=$pki/ca.crt
AUDIT_LOG=$d/audit.log
CONTAINERD_SOCK=$SOCK
CONTAINERD_VERSION=$ctd_version
CTR=$ctd_bin/ctr
KUBECTL=$node_bin/kubectl
NODE_NAME=$NODE_NAME
PAUSE_IMAGE=$pause_image
ADAPTER_IMAGE=$adapter_image
KUBERNETES_VERSION=$("$node_bin/kubelet" --version | awk '{ print $2 }')
EOF
started=1
log "node $NODE_NAME Ready in $((SECONDS - t0))s (containerd $ctd_version): $d/env"
printf '%s\n' "$d/env"
