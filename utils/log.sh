#!/usr/bin/env bash
# Timestamped messages to stderr, like Kaldi/ESPnet:  [2026-11-22 05:00:00] run.sh:42 msg
#   . utils/log.sh
#   log "stage 1: data preparation"
#   die "corpus not found"        # logs "ERROR: ..." and exits 1
# Helpers in other utils/ functions use log_caller/die_caller, which name the line that called them.

_log_line() {  # DEPTH MESSAGE...: DEPTH counts the frames between here and the line to name
  local depth=$1; shift
  local file=${BASH_SOURCE[$depth]:-$0}
  printf '[%s] %s:%s %s\n' "$(date '+%Y-%m-%d %H:%M:%S')" "${file##*/}" "${BASH_LINENO[$((depth - 1))]}" "$*" >&2
}

log() { _log_line 2 "$@"; }
log_caller() { _log_line 3 "$@"; }
die() { _log_line 2 "ERROR: $*"; exit 1; }
die_caller() { _log_line 3 "ERROR: $*"; exit 1; }
