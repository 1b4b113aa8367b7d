#!/usr/bin/env bash
# LibriSpeech ASR with ELF-S2T. Stages (numbers shared by every recipe, see DESIGN.md §4.1):
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
download=false        # stage 0: download LibriSpeech instead of using $LIBRISPEECH from db.sh
download_dir=downloads
train_parts="train-clean-100"   # 960 h: "train-clean-100 train-clean-360 train-other-500"
eval_parts="dev-clean dev-other test-clean test-other"
manifest_dir=data/manifests

help_message="Usage: $0 [options]
LibriSpeech ASR recipe (ELF-S2T). Options (default in parentheses):
  --stage N             first stage to run ($stage)
  --stop-stage M        last stage to run ($stop_stage)
  --force true|false    redo finished stages ($force)
  --nj N                parallel jobs for data preparation ($nj)
  --ngpu N              GPUs per node for training/decoding ($ngpu)
  --num-nodes N         nodes for training ($num_nodes)
  --conf FILE           training/decoding config ($conf)
  --download true|false stage 0 downloads the parts into --download-dir ($download)
  --download-dir DIR    download folder ($download_dir)
  --train-parts LIST    training parts, combined into the set 'train' ($train_parts)
  --eval-parts LIST     dev/test parts, sets dev_clean, test_other, ... ($eval_parts)
  --manifest-dir DIR    stage-1 output ($manifest_dir)
Corpus location: LIBRISPEECH in db.sh (or the environment)."

. "$MAIN_ROOT/utils/parse_options.sh"
. "$MAIN_ROOT/utils/stage.sh"

if [ "$download" = true ]; then corpus_dir=$download_dir/LibriSpeech; else corpus_dir=$LIBRISPEECH; fi

# ---------------------------------------------------------------------------------------------------
# Stage 0: get the corpus
if stage_begin 0 "get LibriSpeech"; then
  if [ "$download" = true ]; then
    python -m elfs2t.bin.download_data librispeech --target-dir "$download_dir" --parts $train_parts $eval_parts
  else
    [ -n "$corpus_dir" ] || die "LIBRISPEECH is not set: edit db.sh (or export LIBRISPEECH=/path/LibriSpeech), or run with --download true"
    for part in $train_parts $eval_parts; do
      [ -d "$corpus_dir/$part" ] || die "LibriSpeech part $part not found: $corpus_dir/$part (LIBRISPEECH in db.sh)"
    done
  fi
  stage_done 0
fi

# ---------------------------------------------------------------------------------------------------
# Stage 1: data preparation -> $manifest_dir/cuts_{train,dev_clean,dev_other,test_clean,test_other}.jsonl.gz
if stage_begin 1 "data preparation"; then
  [ -n "$corpus_dir" ] || die "LIBRISPEECH is not set: edit db.sh (or export LIBRISPEECH=/path/LibriSpeech)"
  python -m elfs2t.bin.prepare_data librispeech --corpus-dir "$corpus_dir" --output-dir "$manifest_dir" \
    --parts $train_parts $eval_parts --nj "$nj" $(force_flag)
  stage_done 1
fi

# ---------------------------------------------------------------------------------------------------
# Stage 2: Whisper feature caching -> dump/<encoder_tag>/<set>/
not_implemented_stage 2 "Whisper feature caching"

# ---------------------------------------------------------------------------------------------------
# Stage 3: ELF backbone (fetch/convert a pre-trained checkpoint) -> exp/elf_<tag>/
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
