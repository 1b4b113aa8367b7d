#!/usr/bin/env bash
# __RECIPE__: a recipe made from egs/TEMPLATE (utils/new_recipe.sh). See docs/adding_a_corpus.md.
# Stages (numbers shared by every recipe, DESIGN.md §4.1):
#   0 get the corpus   1 data preparation   2 Whisper feature caching   3 ELF backbone
#   4 training         5 decoding           6 scoring                   7 analysis
# Usage: ./run.sh [--stage N] [--stop-stage M] [options]   (./run.sh --help lists them)
set -euo pipefail
cd "$(dirname "$0")"
. ./path.sh
. ./cmd.sh
. ./db.sh

stage=0               # first stage to run
stop_stage=100        # last stage to run
force=false           # redo stages even when their done markers exist
nj=4                  # parallel jobs for data preparation and feature caching
ngpu=1                # GPUs (processes) per node for training and decoding
num_nodes=1           # nodes for training (torchrun rendezvous)
conf=conf/train.yaml  # training / decoding config
manifest_dir=data/manifests

help_message="Usage: $0 [options]
__RECIPE__ recipe (ELF-S2T). Options (default in parentheses):
  --stage N             first stage to run ($stage)
  --stop-stage M        last stage to run ($stop_stage)
  --force true|false    redo finished stages ($force)
  --nj N                parallel jobs for data preparation ($nj)
  --ngpu N              GPUs per node for training/decoding ($ngpu)
  --num-nodes N         nodes for training ($num_nodes)
  --conf FILE           training/decoding config ($conf)
  --manifest-dir DIR    stage-1 output ($manifest_dir)
Corpus location: CORPUS in db.sh (or the environment)."

. "$MAIN_ROOT/utils/parse_options.sh"
. "$MAIN_ROOT/utils/stage.sh"

# ---------------------------------------------------------------------------------------------------
# Stage 0: get the corpus (add a download here if the corpus allows it)
if stage_begin 0 "check the corpus"; then
  [ -n "$CORPUS" ] || die "CORPUS is not set: edit db.sh (or export CORPUS=/path/to/corpus)"
  [ -d "$CORPUS" ] || die "corpus folder not found: $CORPUS (CORPUS in db.sh)"
  stage_done 0
fi

# ---------------------------------------------------------------------------------------------------
# Stage 1: data preparation: local/prepare.py returns the cut sets, written to $manifest_dir/cuts_<set>.jsonl.gz
if stage_begin 1 "data preparation"; then
  python -m elfs2t.bin.prepare_data local --script local/prepare.py --corpus-dir "$CORPUS" \
    --output-dir "$manifest_dir" --nj "$nj"
  stage_done 1
fi

# ---------------------------------------------------------------------------------------------------
# Stage 2: Whisper feature caching -> dump/<encoder_tag>/<set>/
not_implemented_stage 2 "Whisper feature caching"

# ---------------------------------------------------------------------------------------------------
# Stage 3: ELF backbone -> exp/elf_<tag>/
not_implemented_stage 3 "ELF backbone"

# ---------------------------------------------------------------------------------------------------
# Stage 4: flow-matching training with audio forcing -> exp/<tag>/
not_implemented_stage 4 "training"

# ---------------------------------------------------------------------------------------------------
# Stage 5: CFG decoding -> hypothesis files per test set
not_implemented_stage 5 "decoding"

# ---------------------------------------------------------------------------------------------------
# Stage 6: scoring -> result.txt per set, RESULTS.md
not_implemented_stage 6 "scoring"

# ---------------------------------------------------------------------------------------------------
# Stage 7: analysis -> exp/<tag>/analysis/
not_implemented_stage 7 "analysis"

log "finished stages $stage..$stop_stage"
