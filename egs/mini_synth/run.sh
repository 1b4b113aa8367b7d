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
stop_stage=6          # last stage to run (stage 7, analysis, is not built yet)
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
asr_encoder=$MAIN_ROOT/tools/models/whisper-tiny.en   # Whisper for ASR features (hub id or local dir)
st_encoder=$MAIN_ROOT/tools/models/whisper-base       # Whisper for S2TT features (multilingual)
feat_mode=trim        # trim: encode only the needed frames; pad30: pad to 30 s as Whisper was trained
tasks="asr st"        # which models stages 4-6 train, decode and score
train_threads=2       # torch threads per training / decoding process
train_nproc=1         # training processes (torchrun when > 1)
decode_opts=""        # decoding overrides, e.g. "decode.sampler.steps=8 decode.sampler.guidance=2"

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
  --asr-encoder DIR|ID   Whisper for ASR features ($asr_encoder)
  --st-encoder DIR|ID    Whisper for S2TT features ($st_encoder)
  --feat-mode MODE       trim or pad30 ($feat_mode)
  --tasks \"asr st\"      models to train / decode / score ($tasks)
  --train-threads N      torch threads per training / decoding process ($train_threads)
  --train-nproc N        training processes, torchrun when > 1 ($train_nproc)
  --decode-opts \"...\"    decoding overrides, e.g. \"decode.sampler.steps=8\" ($decode_opts)
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
# Stage 2: Whisper feature caching -> dump/<encoder_tag>/<set>/ (ASR: tiny.en, S2TT: base; trimmed)
asr_tag=$(python -m elfs2t.bin.cache_features --encoder "$asr_encoder" --mode "$feat_mode" --print-tag)
st_tag=$(python -m elfs2t.bin.cache_features --encoder "$st_encoder" --mode "$feat_mode" --print-tag)
if stage_begin 2 "Whisper feature caching ($asr_tag, $st_tag)"; then
  python -m elfs2t.bin.cache_features --encoder "$asr_encoder" --mode "$feat_mode" --nj "$nj" \
    --manifest-dir "$manifest_dir" --sets asr_train asr_dev asr_test asr_test_unseen --dump-dir dump $(force_flag)
  python -m elfs2t.bin.cache_features --encoder "$st_encoder" --mode "$feat_mode" --nj "$nj" \
    --manifest-dir "$manifest_dir" --sets st_train st_dev st_test st_test_unseen --dump-dir dump $(force_flag)
  stage_done 2
fi

# ---------------------------------------------------------------------------------------------------
# Stage 3: ELF backbone, pre-trained on the English training text of both tasks -> exp/elf_text/
if stage_begin 3 "ELF backbone pre-trained on the training text"; then
  python -m elfs2t.bin.export_text --out data/lm/train_text.txt --lowercase \
    --set "$manifest_dir/cuts_asr_train.jsonl.gz=transcript" --set "$manifest_dir/cuts_st_train.jsonl.gz=translation:en"
  OMP_NUM_THREADS=$train_threads python -m elfs2t.bin.pretrain_text --conf conf/pretrain_text.yaml \
    --exp-dir exp/elf_text --text data/lm/train_text.txt
  stage_done 3
fi

# ---------------------------------------------------------------------------------------------------
# Stage 4: ELF-S2T training with audio forcing -> exp/asr_elf/, exp/st_elf/
if stage_begin 4 "ELF-S2T training (ASR and S2TT)"; then
  nproc=$train_nproc; [ "$ngpu" -gt 0 ] && nproc=$ngpu
  for task in $tasks; do
    OMP_NUM_THREADS=$train_threads launch.sh --nproc "$nproc" --num-nodes "$num_nodes" elfs2t.bin.train \
      --conf "conf/train_$task.yaml" --exp-dir "exp/${task}_elf"
  done
  stage_done 4
fi

# ---------------------------------------------------------------------------------------------------
# Stage 5: CFG decoding -> exp/<tag>/decode_<inference_tag>/<set>/text
if stage_begin 5 "decoding"; then
  for task in $tasks; do
    if [ "$task" = asr ]; then tag=$asr_tag target=transcript; else tag=$st_tag target=translation:en; fi
    sets=(); for s in dev test test_unseen; do sets+=(--set "${task}_$s=dump/$tag/${task}_$s/cuts.jsonl.gz"); done
    OMP_NUM_THREADS=$train_threads python -m elfs2t.bin.decode --exp-dir "exp/${task}_elf" --target "$target" \
      "${sets[@]}" $decode_opts
  done
  stage_done 5
fi

# ---------------------------------------------------------------------------------------------------
# Stage 6: scoring -> result.txt per set, RESULTS table (WER for ASR, BLEU for S2TT)
if stage_begin 6 "scoring"; then
  for dir in exp/*_elf/decode_*/*/; do
    case "$dir" in exp/asr_*) metric=wer ;; *) metric=bleu ;; esac
    python -m elfs2t.bin.score --hyp "$dir/text" --ref "$dir/ref" --metric "$metric" --out-dir "$dir" >/dev/null
  done
  python -m elfs2t.bin.score --results-table . --results-out exp/results.md
  cat exp/results.md
  stage_done 6
fi

# ---------------------------------------------------------------------------------------------------
# Stage 7: analysis -> exp/<tag>/analysis/
not_implemented_stage 7 "analysis"

log "finished stages $stage..$stop_stage"
