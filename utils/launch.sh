#!/usr/bin/env bash
# Run "python -m MODULE ARGS..." on one process, or on N processes per node (and M nodes) via torchrun.
# The module is the same either way: torchrun only sets RANK/WORLD_SIZE/LOCAL_RANK/MASTER_ADDR for it.
#
#   utils/launch.sh --nproc 1 elfs2t.bin.train --config conf/train.yaml        # plain python
#   utils/launch.sh --nproc 4 elfs2t.bin.train --config conf/train.yaml        # torchrun, 1 node
#   utils/launch.sh --nproc 8 --num-nodes 2 --node-rank 0 --rdzv-endpoint host:29400 elfs2t.bin.train ...

nproc=1
num_nodes=1
node_rank=0
rdzv_backend=c10d
rdzv_endpoint=localhost:29400
rdzv_id=elfs2t
python=python
dry_run=false
help_message="Usage: $0 [options] MODULE [ARGS...]
Runs 'python -m MODULE ARGS' directly when --nproc 1 and --num-nodes 1, else through torchrun.
Options:
  --nproc N            processes per node, usually the GPUs per node (default: $nproc)
  --num-nodes N        number of nodes (default: $num_nodes)
  --node-rank N        rank of this node, 0..num_nodes-1 (default: $node_rank; unused with c10d rendezvous)
  --rdzv-backend NAME  torchrun rendezvous backend (default: $rdzv_backend)
  --rdzv-endpoint H:P  rendezvous host:port, the same on every node (default: $rdzv_endpoint)
  --rdzv-id ID         job id shared by all nodes of one run (default: $rdzv_id)
  --python EXE         python interpreter for the single-process case (default: $python)
  --dry-run            print the command instead of running it (default: $dry_run)"

parse_options_positional=true   # MODULE ARGS... follow the options
. "$(dirname "${BASH_SOURCE[0]}")/parse_options.sh"

if [ $# -lt 1 ]; then
  echo "$0: missing MODULE (run '$0 --help')" >&2
  exit 1
fi
module=$1; shift
for v in nproc num_nodes node_rank; do
  if ! [[ "${!v}" =~ ^[0-9]+$ ]] || { [ "$v" != node_rank ] && [ "${!v}" -lt 1 ]; }; then
    echo "$0: --${v//_/-} must be a positive integer, got '${!v}'" >&2
    exit 1
  fi
done

if [ "$nproc" -gt 1 ] || [ "$num_nodes" -gt 1 ]; then
  cmd=(torchrun --nnodes "$num_nodes" --nproc_per_node "$nproc")
  if [ "$num_nodes" -gt 1 ]; then
    cmd+=(--node_rank "$node_rank" --rdzv_backend "$rdzv_backend" --rdzv_endpoint "$rdzv_endpoint" --rdzv_id "$rdzv_id")
  else
    cmd+=(--standalone)
  fi
  cmd+=(-m "$module" "$@")
else
  cmd=("$python" -m "$module" "$@")
fi

if [ "$dry_run" = true ]; then
  printf '%q ' "${cmd[@]}"; echo
  exit 0
fi
exec "${cmd[@]}"
