#!/usr/bin/env bash
# Stop the single-node cluster and put the machine back as it was, then prove it
# with check.sh. Safe to run at any time: after a clean run, after a failed or
# interrupted one (Ctrl-C, SIGKILL), or when nothing is running.
#
#   hack/cluster/down.sh     # exit 0: nothing left; 1: check.sh found leftovers
#
# Order: the kubelet and controllers first (nothing may start or restart Pods),
# the Node object, the containers (through containerd, then any survivor by PID),
# containerd and the control plane; then mounts, cgroups, the kubelet's iptables
# chains, its kernel settings and the paths it created; last the directory.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)"
# shellcheck source=hack/cluster/lib.sh
. "$here/lib.sh"
require_root
# An interrupt must not stop a teardown half-way.
trap '' INT
t0=$SECONDS
d="$CLUSTER_DIR"
env_file="$d/env"
CTR="" API_URL=""
# shellcheck disable=SC1090
[[ -f $env_file ]] && . "$env_file"

any_alive() { # <pid>...
	local pid
	for pid in "$@"; do kill -0 "$pid" 2>/dev/null && return 0; done
	return 1
}
stop() { # <signal> <name>...: the signal to all, up to 10 s for all, then SIGKILL
	local signal="$1" name pidfile pids=() i
	shift
	for name in "$@"; do
		pidfile="$d/run/$name.pid"
		[[ -f $pidfile ]] || continue
		pids+=("$(cat "$pidfile")")
		rm -f "$pidfile"
	done
	((${#pids[@]})) || return 0
	kill "-$signal" "${pids[@]}" 2>/dev/null || true
	for ((i = 0; i < 100; i++)); do
		any_alive "${pids[@]}" || return 0
		sleep 0.1
	done
	kill -KILL "${pids[@]}" 2>/dev/null || true
}
api() { # <method> <path>
	curl -s -o /dev/null -w '%{http_code}' -X "$1" --max-time 5 --cacert "$d/pki/ca.crt" \
		--cert "$d/pki/admin.crt" --key "$d/pki/admin.key" "$API_URL$2" || true
}

stop TERM kube-controller-manager kube-scheduler kubelet
if [[ -n $API_URL ]]; then
	# The kubelet is gone, so nothing registers the Node again.
	api DELETE "/api/v1/nodes/$NODE_NAME" >/dev/null
	code="$(api GET "/api/v1/nodes/$NODE_NAME")"
	[[ $code == 404 || $code == 000 ]] || log "Node $NODE_NAME still answers $code"
fi

if [[ -n $CTR && -S $SOCK ]]; then
	ctr=("$CTR" --address "$SOCK" --namespace k8s.io --timeout 10s)
	for id in $("${ctr[@]}" tasks ls -q 2>/dev/null); do
		"${ctr[@]}" tasks kill --signal SIGKILL "$id" >/dev/null 2>&1 || true
	done
	for id in $("${ctr[@]}" tasks ls -q 2>/dev/null); do
		"${ctr[@]}" tasks delete --force "$id" >/dev/null 2>&1 || true
	done
	for id in $("${ctr[@]}" containers ls -q 2>/dev/null); do
		"${ctr[@]}" containers delete "$id" >/dev/null 2>&1 || true
	done
fi
stop TERM containerd
# Their state goes with the directory, and a graceful stop of one waits for the
# other: nothing is lost by ending them at once.
stop KILL kube-apiserver etcd

# Whatever survived: shims and daemons that name the directory, and any process
# still in a kubepods cgroup. Each is ended by its PID.
for ((i = 0; i < 50; i++)); do
	mapfile -t pids < <(node_pids)
	while read -r dir; do
		[[ -f "$dir/cgroup.procs" ]] && mapfile -t -O "${#pids[@]}" pids <"$dir/cgroup.procs"
	done < <(node_cgroups)
	((${#pids[@]})) || break
	((i)) || log "ending leftover processes: ${pids[*]}"
	kill -KILL "${pids[@]}" 2>/dev/null || true
	sleep 0.2
done

while read -r mp; do
	umount "$mp" 2>/dev/null || umount -l "$mp" 2>/dev/null || log "cannot unmount $mp"
done < <(node_mounts)

# A cgroup can be removed only once its last task has gone; that takes a moment.
for ((i = 0; i < 50; i++)); do
	left=0
	while read -r cg; do
		rmdir "$cg" 2>/dev/null || left=1
	done < <(node_cgroups)
	((left)) || break
	sleep 0.2
done

if [[ -f $BASELINE ]]; then
	# The kubelet's chains (KUBE-IPTABLES-HINT, KUBE-FIREWALL, KUBE-KUBELET-CANARY)
	# and the rules that jump to them; chains that were there before stay.
	for cmd in iptables ip6tables; do
		command -v "$cmd" >/dev/null 2>&1 || continue
		for table in filter nat mangle; do
			for chain in $("$cmd" -t "$table" -S 2>/dev/null | awk '$1 == "-N" && $2 ~ /^KUBE-/ { print $2 }'); do
				grep -qxF -- "iptables $cmd-save :$chain - " "$BASELINE" && continue
				{ "$cmd" -t "$table" -S 2>/dev/null || true; } | sed -n "s/^-A \(.* -j $chain\)\$/\1/p" |
					while read -r rule; do
						# shellcheck disable=SC2086
						"$cmd" -t "$table" -D $rule 2>/dev/null || true
					done
				"$cmd" -t "$table" -F "$chain" 2>/dev/null || true
				"$cmd" -t "$table" -X "$chain" 2>/dev/null || true
			done
		done
	done
	# With the nf_tables backend, creating those chains also created their tables.
	# Drop the tables that were not there before and hold no rule again.
	if command -v nft >/dev/null 2>&1; then
		nft list tables 2>/dev/null | while read -r _ family name; do
			grep -qxF "nft table $family $name" "$BASELINE" && continue
			nft -j list table "$family" "$name" 2>/dev/null | python3 -c '
import json, sys
sys.exit(any("rule" in item for item in json.load(sys.stdin)["nftables"]))' &&
				nft delete table "$family" "$name"
		done
	fi
	while read -r _ kv; do
		name="${kv%%=*}" want="${kv#*=}"
		[[ "$(sysctl -n "$name")" == "$want" ]] || sysctl -q -w "$name=$want"
	done < <(grep '^sysctl ' "$BASELINE")
	# The kubelet links every container's log into /var/log/containers.
	find /var/log/containers -maxdepth 1 -type l -lname "$d/*" -delete 2>/dev/null || true
	for p in "${OUTSIDE_PATHS[@]}"; do
		grep -qxF "path $p absent" "$BASELINE" && [[ -e $p ]] && rm -rf --one-file-system "$p"
	done
fi
rm -rf --one-file-system "$d"

if "$here/check.sh" >&2; then
	rm -f "$BASELINE" "$START"
	log "torn down in $((SECONDS - t0))s; nothing left behind"
else
	log "teardown left something behind (see above)"
	exit 1
fi
