#!/usr/bin/env bash
# Installs everything elfs2t needs, idempotently:
#   * Debian packages used by the recipes (espeak-ng, sox) when missing,
#   * a virtual environment in tools/venv with the pinned packages of tools/requirements.txt
#     and elfs2t itself (editable),
#   * the offline model bundles under tools/models (tools/prepare_models.sh), when that script exists.
# A second run with nothing changed takes about a second.
# Usage: bash tools/install.sh [--no-apt] [--no-models]
set -euo pipefail
tools_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(dirname "$tools_dir")"
venv="$tools_dir/venv"
do_apt=true; do_models=true
for arg in "$@"; do
  case "$arg" in
    --no-apt) do_apt=false ;;
    --no-models) do_models=false ;;
    -h|--help) sed -n '2,9p' "$0"; exit 0 ;;
    *) echo "install.sh: unknown option '$arg' (try --help)" >&2; exit 2 ;;
  esac
done
log() { echo "[install $(date +%H:%M:%S)] $*" >&2; }

# 1. Debian packages.
if $do_apt; then
  missing=()
  command -v espeak-ng >/dev/null || missing+=(espeak-ng)
  command -v sox >/dev/null || missing+=(sox)
  if ((${#missing[@]})); then
    log "apt-get install ${missing[*]}"
    sudo_cmd=""; [ "$(id -u)" -ne 0 ] && sudo_cmd="sudo"
    $sudo_cmd apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq "${missing[@]}" >/dev/null
  fi
fi

# 2. Python environment (uv makes a 7 GB torch install take seconds from its cache).
stamp="$venv/.elfs2t-installed"
want="$(cat "$tools_dir/requirements.txt" "$root/setup.py" | sha256sum | cut -d' ' -f1)"
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  py="${PYTHON:-python3}"
  uv_dir="$tools_dir/uv"
  if [ ! -x "$uv_dir/bin/uv" ]; then
    log "bootstrapping uv into $uv_dir"
    "$py" -m venv "$uv_dir"
    "$uv_dir/bin/pip" install -q uv==0.13.9
  fi
  uv="$uv_dir/bin/uv"
  [ -x "$venv/bin/python" ] || { log "creating $venv"; "$uv" venv -q --python "$py" "$venv"; }
  log "installing pinned packages (tools/requirements.txt)"
  VIRTUAL_ENV="$venv" "$uv" pip install -q -r "$tools_dir/requirements.txt"
  VIRTUAL_ENV="$venv" "$uv" pip install -q --no-deps -e "$root"
  echo "$want" > "$stamp"
  log "python environment ready: $venv"
fi

# 3. Offline model bundles (converted Whisper tiny.en / base, MiniLM).
if $do_models && [ -f "$tools_dir/prepare_models.py" ]; then
  "$venv/bin/python" "$tools_dir/prepare_models.py" --out "$tools_dir/models"
fi
