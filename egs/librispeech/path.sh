# Environment for this recipe; sourced by run.sh.
# MAIN_ROOT is the elfs2t checkout (two levels up); ELFS2T_ROOT overrides it for a recipe copied elsewhere.
MAIN_ROOT=${ELFS2T_ROOT:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
export MAIN_ROOT
if [ ! -x "$MAIN_ROOT/tools/venv/bin/python" ]; then
  echo "path.sh: no python environment at $MAIN_ROOT/tools/venv: run $MAIN_ROOT/tools/install.sh first" >&2
  return 1 2>/dev/null || exit 1
fi
# The venv holds elfs2t (installed editable), so no PYTHONPATH is needed.
export VIRTUAL_ENV="$MAIN_ROOT/tools/venv"
export PATH="$VIRTUAL_ENV/bin:$MAIN_ROOT/utils:$PATH"
export PYTHONUNBUFFERED=1
# One BLAS/OpenMP thread per process unless the user says otherwise (stages parallelise with --nj).
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
export MKL_NUM_THREADS=${MKL_NUM_THREADS:-$OMP_NUM_THREADS}
# Model hubs are contacted by name when a config names a hub model. ELFS2T_OFFLINE=true forbids that.
if [ "${ELFS2T_OFFLINE:-false}" = true ]; then
  export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
fi
