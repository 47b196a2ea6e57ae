#!/usr/bin/env bash
# A real Slurm (Debian's slurm-wlm + munge) on this machine, for trying and
# testing cluster/slurm/dpcnn.sbatch. Needs root; no systemd, no cgroups, no
# accounting database. Every node is a host of the virtual cluster
# (cluster/vcluster.sh): node hI = network namespace <name>-hI with its own
# address, hostname and core(s), running its own slurmd; slurmctld runs on h1,
# which is also the "login node" where sbatch/squeue/scancel are run.
#
#   cluster/slurm/minicluster.sh up [K]     K nodes h1..hK (default 2), waits until idle
#   cluster/slurm/minicluster.sh run CMD... run a Slurm client on h1: run sbatch ..., run squeue
#   cluster/slurm/minicluster.sh status     sinfo and the daemons
#   cluster/slurm/minicluster.sh down       stop everything, remove the state (idempotent)
#
# Environment (optional):
#   DPCNN_SLURM_DIR  state directory: slurm.conf, munge key and socket, spool,
#                    logs (default /tmp/dpcnn-slurm; removed by down)
#   DPCNN_VC_NAME    namespace prefix (default dpslurm), DPCNN_VC_SUBNET (default
#                    10.78.0): distinct from the plain virtual cluster's, so both can run
#   DPCNN_SLURM_KILLWAIT  seconds between SIGTERM and SIGKILL on scancel (default 30)
set -Eeuo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
vc="$here/../vcluster.sh"
state=${DPCNN_SLURM_DIR:-/tmp/dpcnn-slurm}
export DPCNN_VC_NAME=${DPCNN_VC_NAME:-dpslurm}
export DPCNN_VC_SUBNET=${DPCNN_VC_SUBNET:-10.78.0}
export DPCNN_VC_DIR="$state/vc"
conf="$state/slurm.conf"

die() {
  echo "minicluster: $*" >&2
  exit 1
}

need() {
  [[ $(id -u) -eq 0 ]] || die "needs root (network namespaces, slurmd): run it with sudo"
  local b
  for b in munged slurmctld slurmd sbatch; do
    command -v "$b" >/dev/null || [[ -x /usr/sbin/$b ]] || die "$b not found (apt-get install slurm-wlm munge)"
  done
}

# Runs a command without this script's descriptors above 2: the daemons must not
# hold a caller's lock (`flock FILE minicluster.sh up`) for as long as they run.
without_fds() {
  local fd
  for fd in "/proc/$BASHPID/fd/"*; do
    fd=${fd##*/}
    if ((fd > 2 && fd != 255)); then eval "exec $fd>&-" 2>/dev/null || true; fi
  done
  "$@"
}

# Runs a command on node hI with the cluster's Slurm configuration.
on() {
  local h=$1
  shift
  SLURM_CONF="$conf" "$vc" exec "$h" "$@"
}

# `ip netns exec NS` bind-mounts /etc/netns/NS/* over /etc: that is how the
# nodes (and only they) resolve h1..hK, which srun and slurmstepd need.
hosts_files() {
  local k=$1 i j
  for ((i = 1; i <= k; i++)); do
    mkdir -p "/etc/netns/$DPCNN_VC_NAME-h$i"
    {
      echo "127.0.0.1 localhost"
      for ((j = 1; j <= k; j++)); do echo "$DPCNN_VC_SUBNET.$j h$j"; done
    } >"/etc/netns/$DPCNN_VC_NAME-h$i/hosts"
  done
}

write_conf() {
  local k=$1 i
  cat >"$conf" <<EOF
# Written by cluster/slurm/minicluster.sh: $k node(s), one a network namespace.
ClusterName=dpcnn
SlurmctldHost=h1($DPCNN_VC_SUBNET.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$state/munge/munge.socket
StateSaveLocation=$state/ctld
SlurmdSpoolDir=$state/spool/%n
# The nodes share one filesystem; each slurmd gets its own directory mounted
# here (in its private mount namespace), or srun --mpi=pmix's per-step
# directories of two nodes would collide.
TmpFS=$state/tmp
SlurmctldPidFile=$state/run/slurmctld.pid
SlurmdPidFile=$state/run/slurmd-%n.pid
SlurmctldLogFile=$state/log/slurmctld.log
SlurmdLogFile=$state/log/slurmd-%n.log
# No cgroups here: track processes by parent pid, no task binding.
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/linear
MpiDefault=none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
SchedulerType=sched/builtin
ReturnToService=2
SlurmdTimeout=60
InactiveLimit=0
KillWait=${DPCNN_SLURM_KILLWAIT:-30}
MinJobAge=600
EOF
  for ((i = 1; i <= k; i++)); do
    echo "NodeName=h$i NodeAddr=$DPCNN_VC_SUBNET.$i CPUs=1 RealMemory=1000 State=UNKNOWN" >>"$conf"
  done
  echo "PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP" >>"$conf"
  # slurmd 22.05 loads a cgroup plugin even when nothing uses cgroups, and its
  # autodetection fails inside `ip netns exec` (which mounts a fresh /sys
  # without /sys/fs/cgroup). Naming the plugin skips the detection; with
  # proctrack/linuxproc and task/none it is never used.
  echo "CgroupPlugin=cgroup/v1" >"$state/cgroup.conf"
}

cmd_down() {
  need
  # vcluster's down kills every process in the namespaces (slurmctld, slurmd,
  # slurmstepd and the jobs) and removes them.
  "$vc" down >/dev/null 2>&1 || true
  if [[ -r $state/run/munged.pid ]]; then
    local pid
    pid=$(cat "$state/run/munged.pid")
    # Only if it still is our munged (pids are reused).
    if [[ -r /proc/$pid/cmdline ]] && tr '\0' ' ' <"/proc/$pid/cmdline" | grep -q "munged.*$state"; then
      kill "$pid" 2>/dev/null || true
      for _ in $(seq 50); do [[ -e /proc/$pid ]] || break; sleep 0.1; done
    fi
  fi
  rm -rf /etc/netns/"$DPCNN_VC_NAME"-h*
  rm -rf "$state"
}

wait_idle() {
  local k=$1 t
  for ((t = 0; t < 300; t++)); do # 30 s
    if [[ $(on h1 sinfo -h -N -o '%T' 2>/dev/null | grep -c '^idle') -eq $k ]]; then return 0; fi
    sleep 0.1
  done
  on h1 sinfo -N >&2 || true
  tail -5 "$state"/log/*.log >&2 || true
  die "nodes not idle after 30 s (logs in $state/log)"
}

cmd_up() {
  need
  local k=${1:-2}
  [[ $k =~ ^[0-9]+$ && $k -ge 1 && $k -le 16 ]] || die "usage: minicluster.sh up [K] (1 <= K <= 16)"
  cmd_down
  trap 'echo "minicluster: up failed, removing what was made" >&2; cmd_down' ERR
  mkdir -p "$state"/{munge,ctld,spool,run,log}
  chmod 700 "$state" "$state/munge"
  # munged: a fresh key; its socket is a file, so the nodes in their network
  # namespaces reach it too.
  dd if=/dev/urandom of="$state/munge/munge.key" bs=1024 count=1 status=none
  chmod 400 "$state/munge/munge.key"
  (without_fds munged --force --key-file="$state/munge/munge.key" --socket="$state/munge/munge.socket" \
    --pid-file="$state/run/munged.pid" --log-file="$state/log/munged.log" \
    --seed-file="$state/munge/munged.seed")
  "$vc" up "$k" >/dev/null
  hosts_files "$k"
  write_conf "$k"
  trap - ERR
  # -D keeps them in the foreground of their namespace, where vcluster's down
  # finds them; & detaches them from this script.
  (without_fds on h1 slurmctld -D -i -f "$conf") </dev/null >>"$state/log/slurmctld.out" 2>&1 &
  local i
  for ((i = 1; i <= k; i++)); do
    mkdir -p "$state/spool/h$i"
    mkdir -p "$state/tmp" "$state/tmp-h$i"
    # shellcheck disable=SC2016 # $0.. are the inner sh's
    (without_fds on "h$i" sh -c 'mount --bind "$0" "$1" && exec slurmd -D -N "$2" -f "$3"' \
      "$state/tmp-h$i" "$state/tmp" "h$i" "$conf") </dev/null >>"$state/log/slurmd-h$i.out" 2>&1 &
  done
  wait_idle "$k"
  echo "minicluster: $k node(s) h1..h$k idle (state $state); submit with: $0 run sbatch ..."
}

cmd_run() {
  [[ $# -ge 1 ]] || die "usage: minicluster.sh run CMD..."
  [[ -r $conf ]] || die "not up (no $conf): cluster/slurm/minicluster.sh up"
  on h1 "$@"
}

cmd_status() {
  [[ -r $conf ]] || {
    echo "minicluster: down"
    return 0
  }
  on h1 sinfo -N || true
  "$vc" status
}

case ${1:-} in
  up) shift; cmd_up "$@" ;;
  down) cmd_down ;;
  run) shift; cmd_run "$@" ;;
  status) cmd_status ;;
  *)
    sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//' >&2
    exit 2
    ;;
esac
