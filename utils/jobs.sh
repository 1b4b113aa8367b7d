#!/usr/bin/env bash
# A small pool of background jobs for recipe stages whose pieces are independent (one training or decoding
# per task): at most N run at once, each with its output in a file; the stage waits for all of them and
# stops naming the ones that failed (the last lines of their outputs go to stderr). With N = 1 a job runs
# in the foreground, its output on the terminal (and in the file).
#
#   jobs_init 2
#   for task in asr st; do jobs_run "${task}_elf" "exp/${task}_elf/train.out" python -m elfs2t.bin.train ...; done
#   jobs_wait "stage 4: training"
#
# Needs bash >= 5.1 (wait -n -p).

# shellcheck source=utils/log.sh
. "$(dirname "${BASH_SOURCE[0]}")/log.sh"

_jobs_max=1
declare -A _jobs_name=() _jobs_out=()
_jobs_failed=()

jobs_init() {  # jobs_init N: at most N jobs at once (a positive integer)
  [[ "${1:-}" =~ ^[1-9][0-9]*$ ]] || die_caller "jobs_init: the number of jobs must be a positive integer, got '${1:-}'"
  _jobs_max=$1
  _jobs_name=(); _jobs_out=(); _jobs_failed=()
}

_jobs_reap() {  # wait for one job; remember it when it failed
  local pid=""
  if wait -n -p pid "${!_jobs_name[@]}"; then :; else
    [ -n "$pid" ] && { _jobs_failed+=("${_jobs_name[$pid]} (${_jobs_out[$pid]})"); tail -n 20 "${_jobs_out[$pid]}" >&2; }
  fi
  [ -n "$pid" ] && unset "_jobs_name[$pid]" "_jobs_out[$pid]"
  return 0
}

jobs_run() {  # jobs_run NAME OUT CMD...: run CMD (in the background when N > 1), its output to OUT
  local name=$1 out=$2; shift 2
  mkdir -p "$(dirname "$out")"
  if [ "$_jobs_max" -le 1 ]; then
    local status
    { "$@" 2>&1 | tee "$out"; status=${PIPESTATUS[0]}; } || true  # (set -e would stop the recipe here, unnamed)
    [ "$status" -eq 0 ] || _jobs_failed+=("$name ($out)")
    return 0
  fi
  while [ "${#_jobs_name[@]}" -ge "$_jobs_max" ]; do _jobs_reap; done
  log_caller "$name in the background: $out"
  "$@" > "$out" 2>&1 &
  _jobs_name[$!]=$name
  _jobs_out[$!]=$out
}

jobs_wait() {  # jobs_wait WHAT: wait for every job; die when one failed
  while [ "${#_jobs_name[@]}" -gt 0 ]; do _jobs_reap; done
  [ "${#_jobs_failed[@]}" -eq 0 ] && return 0
  local list
  list=$(printf '%s, ' "${_jobs_failed[@]}")
  _jobs_failed=()
  die_caller "$1 failed: ${list%, } (job (output file))"
}
