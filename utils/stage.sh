#!/usr/bin/env bash
# Stage gating with done markers. Source after parse_options.sh; uses $stage, $stop_stage, $force and
# $done_dir (default exp/.done, relative to the recipe folder run.sh works in).
#
#   if stage_begin 1 "data preparation"; then
#     python -m elfs2t.bin.prepare_data ... $(force_flag)
#     stage_done 1
#   fi
#   not_implemented_stage 2 "feature caching"
#
# stage_begin N DESC returns 0 (run it) when stage <= N <= stop_stage and no marker
# $done_dir/stageN exists, or --force is true (the marker is then removed first); otherwise it
# returns 1, logging why when N is in range. stage_done N writes the marker.

# shellcheck source=utils/log.sh
. "$(dirname "${BASH_SOURCE[0]}")/log.sh"

: "${stage:=0}" "${stop_stage:=100}" "${force:=false}" "${done_dir:=exp/.done}"
[[ "$stage" =~ ^[0-9]+$ ]] || die_caller "--stage must be a non-negative integer, got '$stage'"
[[ "$stop_stage" =~ ^[0-9]+$ ]] || die_caller "--stop-stage must be a non-negative integer, got '$stop_stage'"

stage_in_range() {
  [ "$1" -ge "$stage" ] && [ "$1" -le "$stop_stage" ]
}

stage_begin() {
  local n=$1 desc=${2:-}
  stage_in_range "$n" || return 1
  local marker="$done_dir/stage$n"
  if [ -f "$marker" ]; then
    if [ "$force" = true ]; then
      rm -f "$marker"
    else
      log_caller "stage $n ($desc): already done ($marker exists); skipping (--force true to redo)"
      return 1
    fi
  fi
  log_caller "stage $n: $desc"
  return 0
}

stage_done() {
  local n=$1
  mkdir -p "$done_dir"
  touch "$done_dir/stage$n"
  log_caller "stage $n: done"
}

# "--force" for python entry points when the recipe runs with --force true, else nothing.
force_flag() {
  if [ "$force" = true ]; then echo "--force"; fi
}

not_implemented_stage() {
  local n=$1 name=${2:-}
  stage_in_range "$n" || return 0
  die_caller "stage $n ($name) is not implemented yet in this recipe"
}
