# How stages run their heavy jobs; sourced by run.sh. Stages call:  run_job utils/launch.sh ... MODULE ARGS
#   cmd_backend=local   run on this machine (default)
#   cmd_backend=slurm   wrap each job in srun; extra flags in slurm_opts, e.g.
#                       slurm_opts="--partition=gpu --gres=gpu:4 --time=24:00:00"
cmd_backend=${cmd_backend:-local}
slurm_opts=${slurm_opts:-}

run_job() {
  case "$cmd_backend" in
    local) "$@" ;;
    # shellcheck disable=SC2086  # slurm_opts is a list of flags
    slurm) srun --nodes=1 --ntasks=1 $slurm_opts "$@" ;;
    *) echo "cmd.sh: unknown cmd_backend '$cmd_backend' (local or slurm)" >&2; return 1 ;;
  esac
}
