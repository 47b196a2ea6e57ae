#!/usr/bin/env bash
# Open MPI's remote-shell agent for the virtual cluster (cluster/vcluster.sh):
# mpirun calls it as `rsh-agent.sh [options] HOST CMD...` (like ssh) to start its
# daemon on HOST. It maps HOST (an address of the hostfile) to that host's
# network namespace and runs CMD there under its own hostname, through sh as
# ssh would, pinned to the host's cores. Selected by --mca plm_rsh_agent (cluster/mpirun-vcluster.sh and
# `vcluster.sh exec` set it).
set -euo pipefail
dir=${DPCNN_VC_DIR:-$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/generated}
while [[ $# -gt 0 && $1 == -* ]]; do shift; done # ssh-style options: none apply
[[ $# -ge 2 ]] || { echo "rsh-agent.sh: usage: rsh-agent.sh HOST CMD..." >&2; exit 255; }
host=$1
shift
# $dir/hosts: "<address> <namespace> <hostname> <cpus>" a line, from `vcluster.sh up`.
read -r ns hn cpus < <(awk -v h="$host" '$1 == h || $3 == h {print $2, $3, $4; exit}' "$dir/hosts" 2>/dev/null) ||
  { echo "rsh-agent.sh: host '$host' is not in $dir/hosts (is the virtual cluster up?)" >&2; exit 255; }
exec ip netns exec "$ns" taskset -c "$cpus" unshare --uts sh -c "hostname $hn && { $*; }"
