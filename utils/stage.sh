#!/usr/bin/env bash
# Stage gating with done markers that record the stage's inputs. Source after parse_options.sh; uses $stage,
# $stop_stage, $force, $done_dir (default exp/.done, relative to the recipe folder run.sh works in) and
# $last_stage (default 7: the stages every recipe shares, docs/design.md §4.1).
#
#   if stage_begin 2 "feature caching" data/manifests/cuts_train.jsonl.gz conf/x.yaml -- "encoder=$encoder"; then
#     python -m elfs2t.bin.cache_features ... $(force_flag)
#     stage_done 2
#   fi
#   not_implemented_stage 7 "analysis"
#
# stage_begin N DESC [INPUT... [-- SETTING...]] returns 0 (run the stage) when stage <= N <= stop_stage and
# no marker $done_dir/stageN exists, or --force is true (the marker is then removed first); it returns 1
# (skip), logging why, when the marker exists and records the same inputs as now. When the marker records
# OTHER inputs -- a manifest rewritten by a redone stage 1, a changed config file or setting -- it stops the
# recipe with one line naming what changed: a stage's outputs are never reused for inputs they were not made
# from, and a long stage is never redone behind the user's back (--force true redoes it).
#
# stage_begin --redo-when-changed N DESC ... runs the stage again, with a log line naming what changed, instead of
# stopping: for stages that only summarise the outputs of earlier ones (scoring and analysis of the decodes, cheap to
# redo), where new inputs -- a decoding added after the stage ran -- are the normal case, not an accident.
#
# Inputs: files are identified by their content (gzip files by their decompressed content, so a rewrite of the
# same manifest is no change; files over 64 MiB, e.g. checkpoints, by size and modification time), folders
# by the names and sizes of the files under them, a path that does not exist as "missing". SETTINGs (after
# "--") are option values compared as text. stage_done N writes the marker with the inputs stage_begin saw.
# Markers written before inputs were recorded (empty files) still count as done.
#
# The stage range is checked once, when this file is sourced: --stage and --stop-stage must be integers,
# --stage at most $last_stage and at most --stop-stage (a run that would do nothing is an error, not exit 0).

# shellcheck source=utils/log.sh
. "$(dirname "${BASH_SOURCE[0]}")/log.sh"

: "${stage:=0}" "${stop_stage:=100}" "${force:=false}" "${done_dir:=exp/.done}" "${last_stage:=7}"
[[ "$stage" =~ ^[0-9]+$ ]] || die_caller "--stage must be a non-negative integer, got '$stage'"
[[ "$stop_stage" =~ ^[0-9]+$ ]] || die_caller "--stop-stage must be a non-negative integer, got '$stop_stage'"
[ "$stage" -le "$last_stage" ] || die_caller "--stage $stage: there is no such stage (the stages are 0..$last_stage)"
[ "$stage" -le "$stop_stage" ] || die_caller "--stage $stage is after --stop-stage $stop_stage: no stage would run"

# The inputs of the stages stage_begin let run (by marker path), until stage_done writes them into the marker.
declare -A _stage_inputs=()
_STAGE_BIG_FILE=$((64 * 1024 * 1024))

stage_in_range() {
  [ "$1" -ge "$stage" ] && [ "$1" -le "$stop_stage" ]
}

_stage_input_line() {  # one line identifying an input path: "<kind> <path> <identity>"
  local path=$1 size
  if [ -d "$path" ]; then
    echo "dir $path $(find "$path" -type f -printf '%P %s\n' | LC_ALL=C sort | sha256sum | cut -c1-16)"
  elif [ -f "$path" ]; then
    size=$(stat -c %s "$path")
    if [ "$size" -gt "$_STAGE_BIG_FILE" ]; then
      echo "file $path size=$size mtime=$(stat -c %Y "$path")"
    elif [[ "$path" == *.gz ]]; then
      echo "file $path $(gzip -dc "$path" | sha256sum | cut -c1-16)"
    else
      echo "file $path $(sha256sum < "$path" | cut -c1-16)"
    fi
  else
    echo "missing $path"
  fi
}

_stage_inputs_of() {  # the marker body for INPUT... [-- SETTING...]
  local settings=false item
  for item in "$@"; do
    if [ "$settings" = false ] && [ "$item" = -- ]; then settings=true; continue; fi
    if [ "$settings" = true ]; then echo "setting $item"; else _stage_input_line "$item"; fi
  done
}

stage_begin() {
  local redo=false
  if [ "${1:-}" = --redo-when-changed ]; then redo=true; shift; fi
  local n=$1 desc=${2:-}
  stage_in_range "$n" || return 1
  shift; [ $# -gt 0 ] && shift
  local marker="$done_dir/stage$n" now changed
  now=$(_stage_inputs_of "$@")
  if [ -f "$marker" ]; then
    if [ "$force" = true ]; then
      rm -f "$marker"
    elif [ ! -s "$marker" ] || [ "$(grep -v '^#' "$marker")" = "$now" ]; then
      log_caller "stage $n ($desc): already done ($marker exists); skipping (--force true to redo)"
      return 1
    else
      # the inputs that differ from the marker's: paths, and settings by name (text before '='); at most 3
      changed=$(LC_ALL=C comm -3 <(grep -v '^#' "$marker" | LC_ALL=C sort) <(printf '%s\n' "$now" | LC_ALL=C sort) \
                | sed 's/^\t//' | awk '$1 == "setting" { sub(/^setting /, ""); sub(/=.*/, ""); print "setting " $0; next } { print $2 }' \
                | awk 'NF && !seen[$0]++' | head -n 3 | paste -sd, - | sed 's/,/, /g')
      [ "$redo" = true ] || die_caller "stage $n ($desc) was done with other inputs than now (changed: $changed;" \
        "marker $marker): its outputs are stale. Redo it with --force true (e.g. --stage $n --stop-stage $n --force true)"
      log_caller "stage $n ($desc): its inputs changed since it was done (changed: $changed); doing it again"
      rm -f "$marker"
    fi
  fi
  _stage_inputs[$marker]=$now
  log_caller "stage $n: $desc"
  return 0
}

stage_done() {
  local n=$1 marker="$done_dir/stage$1"
  mkdir -p "$done_dir"
  { echo "# stage $n done $(date '+%Y-%m-%d %H:%M:%S'); its inputs:"; printf '%s\n' "${_stage_inputs[$marker]:-}"; } \
    > "$marker.tmp"
  mv "$marker.tmp" "$marker"
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
