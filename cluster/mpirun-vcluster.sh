#!/usr/bin/env bash
# mpirun on the virtual cluster (cluster/vcluster.sh up K first). mpirun itself
# runs on h1 (the cluster is invisible from the root namespace); ranks go to
# the hosts of cluster/generated/hostfile, the remote ones through
# cluster/rsh-agent.sh. Arguments are mpirun's:
#   cluster/mpirun-vcluster.sh -np 2 hostname                     # h1, h2
#   cluster/mpirun-vcluster.sh -np 4 --npernode 2 build/bin/dpcnn-train --config configs/mnist.yaml
# The MCA settings are those of a real TCP cluster (cluster/README.md); they are
# also exported as OMPI_MCA_* by `vcluster.sh exec`, and spelled out here so
# the command line shows them. DPCNN_VC_BTL_IF moves the ranks' byte traffic to
# another subnet (cluster/linkemu.c's emulated links); the control stays on eth0.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
subnet=${DPCNN_VC_SUBNET:-10.77.0}
dir=${DPCNN_VC_DIR:-$here/generated}
[[ -r $dir/hostfile ]] || { echo "mpirun-vcluster.sh: no $dir/hostfile: run cluster/vcluster.sh up K first" >&2; exit 2; }
# --bind-to none: each virtual host is already pinned to its own cores
# (vcluster.sh); Open MPI's binding would put every host's first rank on core 0.
# shellcheck disable=SC2054 # "self,tcp" is one argument
flags=(--oversubscribe --bind-to none --hostfile "$dir/hostfile"
  --mca plm_rsh_agent "$here/rsh-agent.sh"
  --mca btl self,tcp
  --mca btl_tcp_if_include "${DPCNN_VC_BTL_IF:-$subnet.0/24}"
  --mca oob_tcp_if_include "$subnet.0/24")
[[ $(id -u) -eq 0 ]] && flags+=(--allow-run-as-root)
exec "$here/vcluster.sh" exec h1 mpirun "${flags[@]}" "$@"
