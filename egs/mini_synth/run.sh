#!/usr/bin/env bash
# mini_synth: the offline default recipe. A small corpus is synthesized with espeak-ng (stage 0) in the
# on-disk formats of LibriSpeech and Common Voice + CoVoST 2, then the real recipes' preparation runs on it.
# ASR (en) and S2TT (de -> en). Stages (DESIGN.md §4.1):
#   0 synthesize the corpus   1 data preparation   2 Whisper feature caching   3 ELF backbone (pre-train)
#   4 training                5 decoding           6 scoring                   7 analysis
# Usage: ./run.sh [--stage N] [--stop-stage M] [options]   (./run.sh --help lists them)
set -euo pipefail
cd "$(dirname "$0")"
. ./path.sh
. ./cmd.sh
. ./db.sh

stage=0               # first stage to run
stop_stage=100        # last stage to run
force=false           # redo stages even when their done markers exist
nj=2                  # parallel jobs (synthesis, data preparation, feature caching)
ngpu=0                # GPUs per node (0: CPU)
num_nodes=1           # nodes for training (torchrun rendezvous)
conf=conf/train.yaml  # training / decoding config
seed=0                # corpus synthesis seed
num_train=3000        # synthesized training utterances (per task)
num_dev=200           # dev utterances
num_test=200          # test utterances (seen voices)
num_test_unseen=200   # test utterances (unseen voices)
manifest_dir=data/manifests

help_message="Usage: $0 [options]
mini_synth recipe: synthesized ASR (en) and S2TT (de->en), CPU-only, offline. Options (default in parentheses):
  --stage N              first stage to run ($stage)
  --stop-stage M         last stage to run ($stop_stage)
  --force true|false     redo finished stages ($force)
  --nj N                 parallel jobs ($nj)
  --ngpu N               GPUs per node, 0 for CPU ($ngpu)
  --num-nodes N          nodes for training ($num_nodes)
  --conf FILE            training/decoding config ($conf)
  --seed N               corpus synthesis seed ($seed)
  --num-train N          training utterances ($num_train)
  --num-dev N            dev utterances ($num_dev)
  --num-test N           test utterances, seen voices ($num_test)
  --num-test-unseen N    test utterances, unseen voices ($num_test_unseen)
  --manifest-dir DIR     stage-1 output ($manifest_dir)
Corpus folder: MINI_SYNTH in db.sh ($MINI_SYNTH)."

. "$MAIN_ROOT/utils/parse_options.sh"
. "$MAIN_ROOT/utils/stage.sh"

# ---------------------------------------------------------------------------------------------------
# Stage 0: synthesize the corpus into $MINI_SYNTH
if stage_begin 0 "synthesize the mini_synth corpus"; then
  python -m elfs2t.bin.make_mini_synth --output-dir "$MINI_SYNTH" --seed "$seed" --num-train "$num_train" \
    --num-dev "$num_dev" --num-test "$num_test" --num-test-unseen "$num_test_unseen" --nj "$nj"
  stage_done 0
fi

# ---------------------------------------------------------------------------------------------------
# Stage 1: data preparation with the LibriSpeech and CoVoST 2 code ->
#   $manifest_dir/cuts_{asr,st}_{train,dev,test,test_unseen}.jsonl.gz
if stage_begin 1 "data preparation"; then
  python -m elfs2t.bin.prepare_data librispeech --corpus-dir "$MINI_SYNTH/LibriSpeech" --output-dir "$manifest_dir" \
    --parts train-clean-100 dev-clean test-clean test-other \
    --set-name train-clean-100=asr_train --set-name dev-clean=asr_dev \
    --set-name test-clean=asr_test --set-name test-other=asr_test_unseen --nj "$nj" $(force_flag)
  python -m elfs2t.bin.prepare_data covost2 --cv-dir "$MINI_SYNTH/cv/de" \
    --covost-tsv "$MINI_SYNTH/covost/covost_v2.de_en.tsv" --src-lang de --tgt-lang en --prefix st \
    --splits train dev test test_unseen --output-dir "$manifest_dir" --nj "$nj" $(force_flag)
  stage_done 1
fi

# ---------------------------------------------------------------------------------------------------
# Stage 2: Whisper feature caching -> dump/<encoder_tag>/<set>/
not_implemented_stage 2 "Whisper feature caching"

# ---------------------------------------------------------------------------------------------------
# Stage 3: ELF backbone, pre-trained on the corpus text -> exp/elf_<tag>/
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
