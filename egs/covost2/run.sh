#!/usr/bin/env bash
# CoVoST 2 speech-to-text translation (X -> En and En -> X) with ELF-S2T. Stages (DESIGN.md §4.1):
#   0 get the corpus   1 data preparation   2 Whisper feature caching   3 ELF backbone
#   4 training         5 decoding           6 scoring                   7 analysis
# Usage: ./run.sh [--src-lang de --tgt-lang en] [--stage N] [--stop-stage M] [options]
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
src_lang=de           # source (speech) language
tgt_lang=en           # target (text) language
splits="train dev test"
download_dir=downloads
manifest_dir=data/manifests

help_message="Usage: $0 [options]
CoVoST 2 S2TT recipe (ELF-S2T). Options (default in parentheses):
  --stage N             first stage to run ($stage)
  --stop-stage M        last stage to run ($stop_stage)
  --force true|false    redo finished stages ($force)
  --nj N                parallel jobs for data preparation ($nj)
  --ngpu N              GPUs per node for training/decoding ($ngpu)
  --num-nodes N         nodes for training ($num_nodes)
  --conf FILE           training/decoding config ($conf)
  --src-lang L          source language ($src_lang)
  --tgt-lang L          target language ($tgt_lang)
  --splits LIST         splits to prepare; sets <src>_<tgt>_<split> ($splits)
  --download-dir DIR    where stage 0 puts the CoVoST TSV when COVOST is empty ($download_dir)
  --manifest-dir DIR    stage-1 output ($manifest_dir)
Corpus locations: COMMONVOICE and COVOST in db.sh (or the environment)."

. "$MAIN_ROOT/utils/parse_options.sh"
. "$MAIN_ROOT/utils/stage.sh"

pair=${src_lang}_${tgt_lang}
covost_dir=${COVOST:-$download_dir/covost}
covost_tsv=$covost_dir/covost_v2.$pair.tsv
cv_dir=${COMMONVOICE:+$COMMONVOICE/$src_lang}

# ---------------------------------------------------------------------------------------------------
# Stage 0: get the corpus (the CoVoST TSV is downloaded; Common Voice v4 audio is checked)
if stage_begin 0 "get CoVoST 2 ($pair)"; then
  [ -n "$cv_dir" ] || die "COMMONVOICE is not set: edit db.sh (or export COMMONVOICE=/path/cv-corpus-4); Common Voice v4 must be obtained by hand"
  [ -f "$cv_dir/validated.tsv" ] && [ -d "$cv_dir/clips" ] \
    || die "Common Voice v4 '$src_lang' not found: expected $cv_dir/validated.tsv and $cv_dir/clips/ (COMMONVOICE in db.sh)"
  if [ ! -f "$covost_tsv" ]; then
    python -m elfs2t.bin.download_data covost2 --target-dir "$covost_dir" --src-lang "$src_lang" --tgt-lang "$tgt_lang"
  fi
  stage_done 0
fi

# ---------------------------------------------------------------------------------------------------
# Stage 1: data preparation -> $manifest_dir/cuts_<src>_<tgt>_{train,dev,test}.jsonl.gz
if stage_begin 1 "data preparation"; then
  [ -n "$cv_dir" ] || die "COMMONVOICE is not set: edit db.sh (or export COMMONVOICE=/path/cv-corpus-4)"
  python -m elfs2t.bin.prepare_data covost2 --cv-dir "$cv_dir" --covost-tsv "$covost_tsv" \
    --src-lang "$src_lang" --tgt-lang "$tgt_lang" --splits $splits --output-dir "$manifest_dir" --nj "$nj" $(force_flag)
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
