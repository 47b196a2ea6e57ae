#!/usr/bin/env bash
# A virtual cluster on this machine: K "hosts" that are network namespaces, each
# with its own address and hostname, joined by a bridge. Open MPI sees K hosts
# and talks TCP between them, as on a real cluster. Needs root (ip netns add).
#
#   cluster/vcluster.sh up K [--slots S] [--cpus split|all]
#                                          create hosts h1..hK (S slots each, default 1)
#   cluster/vcluster.sh down               remove everything (idempotent)
#   cluster/vcluster.sh exec HOST CMD...   run CMD on HOST (h2, 2 or 10.77.0.2)
#   cluster/vcluster.sh status             hosts, links, processes
#   cluster/vcluster.sh link HOST up|down  plug/unplug a host's cable (failure tests)
#
# Layout (nothing is added to the root namespace, so the machine's own network
# and routes are untouched and no packet can leave the virtual cluster):
#   <name>-sw   namespace holding the bridge br0 ("the switch"), ports p1..pK
#   <name>-hI   namespace of host hI: lo and eth0 = <subnet>.I/24, veth to pI
# Hosts run their commands under `unshare --uts` with hostname hI, so each looks
# like its own machine (Open MPI keys shared-memory files and its notion of
# "same node" by hostname), and pinned to its own share of the cores
# (`--cpus split`, the default: host I gets cores ((I-1)*n/K .. I*n/K-1), or core
# (I-1) mod n when K > n cores), so hosts do not all bind their rank 0 to core 0
# as separate machines would. `--cpus all` lets every host use every core.
# Open MPI's own binding is turned off (bind-to none): it sees the whole
# machine and would undo the pinning.
#
# Environment (all optional; tests use them to run private clusters):
#   DPCNN_VC_NAME    name prefix of the namespaces (default dpcnn; <= 20 chars)
#   DPCNN_VC_SUBNET  first three octets (default 10.77.0); private to the namespaces
#   DPCNN_VC_DIR     where the hostfile and host map go (default cluster/generated)
#
# Commands run by `exec` get the Open MPI settings of the virtual cluster as
# OMPI_MCA_* variables (rsh agent, btl self,tcp, interfaces, fast failure
# detection), so mpirun or dpcnn-launch started on a host needs no extra flags.
set -Eeuo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
name=${DPCNN_VC_NAME:-dpcnn}
subnet=${DPCNN_VC_SUBNET:-10.77.0}
dir=${DPCNN_VC_DIR:-$here/generated}
sw="$name-sw"

die() {
  echo "vcluster: $*" >&2
  exit 1
}

need_root() {
  [[ $(id -u) -eq 0 ]] || die "needs root (network namespaces): run it with sudo"
  command -v ip >/dev/null || die "ip not found (apt-get install iproute2)"
  command -v unshare >/dev/null || die "unshare not found (apt-get install util-linux)"
}

# Host argument -> index I: accepts hI, I, <subnet>.I or <name>-hI.
host_index() {
  local h=$1
  h=${h#"$name"-}
  h=${h#"$subnet".}
  h=${h#h}
  [[ $h =~ ^[0-9]+$ ]] || die "unknown host '$1' (expected h1.., 1.. or $subnet.1..)"
  ip netns list | grep -q "^$name-h$h\b" || die "no host h$h (is the cluster up? cluster/vcluster.sh status)"
  echo "$h"
}

our_namespaces() {
  ip netns list 2>/dev/null | awk '{print $1}' | grep -E "^$name-(h[0-9]+|sw)$" | sort -V || true
}

# Open MPI settings for the virtual cluster, exported to everything `exec` runs.
# Keepalives on the daemons' control connections: a host whose cable is pulled
# is declared lost after about 2 + 3*1 s instead of Open MPI's default 6 min.
mca_env() {
  export DPCNN_VC_DIR="$dir" DPCNN_VC_NAME="$name" DPCNN_VC_SUBNET="$subnet"
  export OMPI_MCA_plm_rsh_agent="$here/rsh-agent.sh"
  export OMPI_MCA_btl="self,tcp"
  export OMPI_MCA_hwloc_base_binding_policy="none"
  export OMPI_MCA_btl_tcp_if_include="$subnet.0/24"
  export OMPI_MCA_oob_tcp_if_include="$subnet.0/24"
  export OMPI_MCA_oob_tcp_keepalive_time="${DPCNN_VC_KEEPALIVE_TIME:-2}"
  export OMPI_MCA_oob_tcp_keepalive_intvl="${DPCNN_VC_KEEPALIVE_INTVL:-1}"
  export OMPI_MCA_oob_tcp_keepalive_probes="${DPCNN_VC_KEEPALIVE_PROBES:-3}"
}

cmd_down() {
  need_root
  local ns pids
  # Processes keep running in a deleted namespace: end ours first, by pid.
  for ns in $(our_namespaces); do
    pids=$(ip netns pids "$ns" 2>/dev/null || true)
    # shellcheck disable=SC2086 # one pid a word
    [[ -z $pids ]] || kill -9 $pids 2>/dev/null || true
  done
  for ns in $(our_namespaces); do
    ip netns delete "$ns" 2>/dev/null || true
  done
  rm -f "$dir/hostfile" "$dir/hosts"
  [[ -z $(our_namespaces) ]] || die "could not remove: $(our_namespaces | tr '\n' ' ')"
}

cmd_up() {
  need_root
  local k=${1:-}
  shift || true
  local slots=1 cpus=split
  while [[ $# -gt 0 ]]; do
    case $1 in
      --slots) slots=${2:?--slots needs a number}; shift 2 ;;
      --cpus) cpus=${2:?--cpus needs split or all}; shift 2 ;;
      *) die "unknown option '$1'" ;;
    esac
  done
  [[ $k =~ ^[0-9]+$ && $k -ge 1 && $k -le 250 ]] || die "usage: vcluster.sh up K [--slots S] (1 <= K <= 250)"
  [[ $slots =~ ^[0-9]+$ && $slots -ge 1 ]] || die "--slots must be a positive number"
  [[ $cpus == split || $cpus == all ]] || die "--cpus must be split or all"
  local ncpu
  ncpu=$(nproc)
  [[ ${#name} -le 20 ]] || die "DPCNN_VC_NAME '$name' is too long (max 20 chars)"
  if [[ -n $(our_namespaces) ]]; then cmd_down; fi # a leftover from a crashed run
  trap 'echo "vcluster: up failed, removing what was made" >&2; cmd_down' ERR

  ip netns add "$sw"
  ip -n "$sw" link set lo up
  # STP off and no forwarding delay: ports forward as soon as they are up.
  ip -n "$sw" link add br0 type bridge stp_state 0 forward_delay 0
  ip -n "$sw" link set br0 up
  mkdir -p "$dir"
  : >"$dir/hostfile.tmp"
  : >"$dir/hosts.tmp"
  local i ns set
  for ((i = 1; i <= k; i++)); do
    ns="$name-h$i"
    if [[ $cpus == all ]]; then
      set="0-$((ncpu - 1))"
    elif ((k <= ncpu)); then
      set="$(((i - 1) * ncpu / k))-$((i * ncpu / k - 1))"
    else
      set=$(((i - 1) % ncpu))
    fi
    ip netns add "$ns"
    ip -n "$ns" link set lo up
    ip -n "$ns" link add eth0 type veth peer name "p$i" netns "$sw"
    ip -n "$ns" addr add "$subnet.$i/24" dev eth0
    ip -n "$ns" link set eth0 up
    ip -n "$sw" link set "p$i" master br0
    ip -n "$sw" link set "p$i" up
    echo "$subnet.$i slots=$slots" >>"$dir/hostfile.tmp"
    echo "$subnet.$i $ns h$i $set" >>"$dir/hosts.tmp"
  done
  {
    echo "# virtual cluster '$name' (cluster/vcluster.sh up $k): one line a host"
    cat "$dir/hostfile.tmp"
  } >"$dir/hostfile"
  mv "$dir/hosts.tmp" "$dir/hosts"
  rm -f "$dir/hostfile.tmp"
  trap - ERR
  # veth carriers come up asynchronously; wait until every host's is up.
  for ((i = 0; i < 50; i++)); do
    ip -n "$sw" -o link show master br0 | grep -vq 'state UP' || break
    sleep 0.1
  done
  echo "vcluster: $k host(s) up: h1..h$k = $subnet.1..$subnet.$k, hostfile $dir/hostfile"
}

cmd_exec() {
  need_root
  [[ $# -ge 2 ]] || die "usage: vcluster.sh exec HOST CMD..."
  local i set
  i=$(host_index "$1")
  shift
  set=$(awk -v h="h$i" '$3 == h {print $4}' "$dir/hosts" 2>/dev/null)
  mca_env
  # shellcheck disable=SC2016 # $0 and $@ are the inner sh's
  exec ip netns exec "$name-h$i" taskset -c "${set:-0-$(($(nproc) - 1))}" \
    unshare --uts sh -c 'hostname "$0" && exec "$@"' "h$i" "$@"
}

cmd_link() {
  need_root
  [[ $# -eq 2 && ($2 == up || $2 == down) ]] || die "usage: vcluster.sh link HOST up|down"
  local i
  i=$(host_index "$1")
  ip -n "$sw" link set "p$i" "$2"
}

cmd_status() {
  need_root
  local nss ns
  nss=$(our_namespaces)
  if [[ -z $nss ]]; then
    echo "vcluster '$name': down"
    return 0
  fi
  echo "vcluster '$name' (hostfile $dir/hostfile):"
  for ns in $nss; do
    [[ $ns == "$sw" ]] && continue
    local i=${ns##*-h} addr state pids set
    addr=$(ip -n "$ns" -4 -o addr show dev eth0 2>/dev/null | awk '{print $4}')
    state=$(ip -n "$sw" -o link show "p$i" 2>/dev/null | grep -o 'state [A-Z]*' || echo "state ?")
    pids=$(ip netns pids "$ns" | wc -l)
    set=$(awk -v h="h$i" '$3 == h {print $4}' "$dir/hosts" 2>/dev/null)
    echo "  h$i  $ns  $addr  cpus ${set:-?}  link ${state#state }  $pids process(es)"
  done
}

case ${1:-} in
  up) shift; cmd_up "$@" ;;
  down) shift; cmd_down ;;
  exec) shift; cmd_exec "$@" ;;
  link) shift; cmd_link "$@" ;;
  status) shift; cmd_status ;;
  *)
    sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//' >&2
    exit 2
    ;;
esac
