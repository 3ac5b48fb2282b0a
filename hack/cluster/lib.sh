# Shared by the hack/cluster scripts (sourced, not run).
# shellcheck shell=bash disable=SC2034 # the variables are for the scripts that source this

# Everything the node writes lives here. A fixed path, so that a run killed with
# SIGKILL is found and cleaned up by the next up.sh or down.sh.
CLUSTER_DIR="${CLUSTER_DIR:-/var/tmp/status-reporter-cluster}"
# The machine as it was before up.sh, kept beside CLUSTER_DIR until a teardown
# has proved that nothing is left (check.sh).
BASELINE="$CLUSTER_DIR.baseline"
# The machine as the last up.sh found it (check.sh baseline).
START="$CLUSTER_DIR.start"
NODE_NAME=localhost
SOCK="$CLUSTER_DIR/containerd/containerd.sock"
# The kernel settings the kubelet changes at start (setupKernelTunables).
SYSCTLS=(vm.overcommit_memory vm.panic_on_oom kernel.panic kernel.panic_on_oops
	kernel.keys.root_maxkeys kernel.keys.root_maxbytes)
# Paths the kubelet or containerd may create outside CLUSTER_DIR.
OUTSIDE_PATHS=(/run/containerd /var/log/containers /var/log/pods /var/lib/kubelet
	/var/lib/containerd /var/lib/cni /etc/cni/net.d /opt/cni /opt/containerd
	/etc/kubernetes /run/kubernetes /run/netns)
CGROUP_NAME=kubepods

log() { printf 'cluster: %s\n' "$*" >&2; }
die() {
	log "error: $*"
	exit 1
}

require_root() { [[ "$(id -u)" -eq 0 ]] || die "the node needs root (kubelet, containerd, cgroups, mounts)"; }

# Mount points of cgroup hierarchies (v1 controllers, named v1, the v2 tree).
cgroup_mounts() { awk '$9 == "cgroup" || $9 == "cgroup2" { print $5 }' /proc/self/mountinfo | sort -u; }

# Every cgroup directory the node created, deepest first.
node_cgroups() {
	local m
	for m in $(cgroup_mounts); do
		[[ -d "$m/$CGROUP_NAME" ]] && find "$m/$CGROUP_NAME" -depth -type d
	done
	return 0
}

# PIDs of processes whose command line names CLUSTER_DIR: the node's daemons and
# containerd's shims. Only processes this cluster started carry that path.
node_pids() {
	local p
	for p in /proc/[0-9]*; do
		[[ "$p" == "/proc/$$" ]] && continue
		if { tr '\0' ' ' <"$p/cmdline"; } 2>/dev/null | grep -qF -- "$CLUSTER_DIR/"; then
			printf '%s\n' "${p#/proc/}"
		fi
	done
	return 0
}

# Mount points under CLUSTER_DIR or the paths above, deepest first.
node_mounts() {
	local prefixes=("$CLUSTER_DIR" "${OUTSIDE_PATHS[@]}")
	awk '{ print $5 }' /proc/self/mountinfo | while read -r mp; do
		for pre in "${prefixes[@]}"; do
			if [[ "$mp" == "$pre" || "$mp" == "$pre/"* ]]; then
				printf '%s\n' "$mp"
				break
			fi
		done
	done | awk '{ print length($0) " " $0 }' | sort -rn | cut -d' ' -f2-
}

# iptables and ip6tables rules of every table, without counters.
iptables_state() {
	local cmd
	for cmd in iptables-save ip6tables-save; do
		command -v "$cmd" >/dev/null 2>&1 || continue
		"$cmd" 2>/dev/null | sed -e '/^#/d' -e 's/\[[0-9]*:[0-9]*\]$//' | sed "s/^/$cmd /"
	done
	return 0
}

nft_tables() {
	if command -v nft >/dev/null 2>&1; then nft list tables 2>/dev/null || true; fi
}
