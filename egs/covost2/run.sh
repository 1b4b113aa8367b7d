#!/usr/bin/env bash
# CoVoST 2 speech-to-text translation (X -> En and En -> X) with ELF-S2T or the AR speech-LLM baseline, one task
# (translation or source-language ASR) or both in one model with task tokens. Stages (docs/design.md §4.1):
#   0 get the corpus   1 data preparation   2 Whisper feature caching   3 ELF backbone / AR vocabulary
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
ngpu=1                # GPUs per node for feature caching, training and decoding (0: CPU)
num_nodes=1           # nodes for training (torchrun rendezvous)
model=elf             # elf: ELF-S2T (conf/train.yaml); ar: the AR speech-LLM baseline (conf/train_ar.yaml)
conf=""               # training / decoding config (default: conf/train.yaml, with --model ar conf/train_ar.yaml)
src_lang=de           # source (speech) language
tgt_lang=en           # target (text) language
splits="train dev test"
download_dir=downloads
manifest_dir=data/manifests
task=st               # st: translate into --tgt-lang (BLEU); asr: transcribe the source language (WER); joint: one
                      # model for both, with task tokens (asr, st:<tgt>)
encoder=openai/whisper-large-v3   # stage 2: Whisper (hub id or local dir); its width must equal elf.feat_dim
feat_mode=pad30       # stage 2: pad30 (every window padded to 30 s, as Whisper was trained) or trim (faster)
feat_batch_size=16    # stage 2: utterances per encoder forward
speed_perturb=""      # stage 2: speed factors for extra copies of the training set ("": none), e.g. "0.9 1.1"
                      # (Kaldi's 3-way perturbation with the original set; each copy costs stage 2 the set's time)
speed_perturb_per_cut=all   # stage 2: all = one copy per factor; one = one copy per utterance, factor drawn
elf_init=""           # stage 3-4: ELF checkpoint (file, dir or hub id) instead of init.denoiser of --conf
analysis_space=t5-small  # stage 7: the text encoder whose latent space measures the AR baseline's errors
ar_vocab_size=4000    # stage 3 (--model ar): SentencePiece BPE pieces of the AR's vocabulary of the targets
exp_tag=""            # stage 3-7: experiment folder exp/<tag> (default: <pair>_<task>_<conf name>_<encoder tag>)
train_opts=""         # stage 3-4: config overrides, e.g. "train.max_steps=30000 data.max_duration=600"
decode_confs=""       # stages 5, 7: named decoding configs, one decode each (default: the table below, by --model)
decode_opts=""        # stage 5: decode.* overrides added to every decoding config, e.g. "decode.max_duration=600"
node_rank=0           # stage 4: rank of this node (multi-node training)
rdzv_endpoint=localhost:29400   # stage 4: torchrun rendezvous host:port, the same on every node
rdzv_id=elfs2t        # stage 4: torchrun job id shared by all nodes

help_message="Usage: $0 [options]
CoVoST 2 S2TT recipe (ELF-S2T or the AR baseline). Options (default in parentheses):
  --stage N             first stage to run ($stage)
  --stop-stage M        last stage to run ($stop_stage)
  --force true|false    redo finished stages ($force)
  --nj N                parallel jobs for data preparation and CPU feature caching ($nj)
  --ngpu N              GPUs per node for feature caching, training, decoding; 0: CPU ($ngpu)
  --num-nodes N         nodes for training ($num_nodes)
  --model elf|ar        ELF-S2T or the AR speech-LLM baseline (a fresh LM on the stage-3 vocabulary) ($model)
  --conf FILE           training/decoding config (default conf/train.yaml; --model ar: conf/train_ar.yaml) ($conf)
  --src-lang L          source language ($src_lang)
  --tgt-lang L          target language ($tgt_lang)
  --splits LIST         splits to prepare; sets <src>_<tgt>_<split> ($splits)
  --download-dir DIR    where stage 0 puts the CoVoST TSV when COVOST is empty ($download_dir)
  --manifest-dir DIR    stage-1 output ($manifest_dir)
  --task st|asr|joint   st: translation into --tgt-lang (BLEU); asr: source-language transcripts (WER); joint: one
                        model with task tokens for both (sets <pair>_<split> BLEU, <pair>_<split>_asr WER) ($task)
  --encoder ID|DIR      Whisper encoder for stage 2; set elf.feat_dim to its width ($encoder)
  --feat-mode MODE      pad30 or trim; part of the dump/ tag ($feat_mode)
  --feat-batch-size N   utterances per encoder forward in stage 2 ($feat_batch_size)
  --speed-perturb \"..\"  speed factors for extra training copies (set <pair>_train_sp), \"\" for none ($speed_perturb)
  --speed-perturb-per-cut all|one  one copy per factor, or one per utterance with a drawn factor ($speed_perturb_per_cut)
  --elf-init SRC        ELF checkpoint (file, dir, hub id) overriding init.denoiser of --conf ($elf_init)
  --analysis-space DIR|ID  stage 7: text encoder measuring the AR baseline's errors ($analysis_space)
  --ar-vocab-size N     stage 3 with --model ar: pieces of the SentencePiece vocabulary of the targets ($ar_vocab_size)
  --exp-tag TAG         experiment folder exp/TAG (default: <pair>_<task>_<conf name>_<encoder tag>[_sp]) ($exp_tag)
  --train-opts \"K=V ..\" config overrides for stages 3-4, e.g. \"train.max_steps=30000\" ($train_opts)
  --decode-confs \"F ..\" decoding configs (conf/decode/*.yaml), one decode each; the last is the model's
                        setting; stage 7 sweeps the first (default: --model elf conf/decode/flow32.yaml, ar
                        conf/decode/beam4.yaml) ($decode_confs)
  --decode-opts \"K=V ..\" decode.* overrides added to every decoding config ($decode_opts)
  --node-rank N         rank of this node for multi-node training ($node_rank)
  --rdzv-endpoint H:P   torchrun rendezvous endpoint, the same on every node ($rdzv_endpoint)
  --rdzv-id ID          torchrun job id shared by all nodes ($rdzv_id)
Stage 4 trains on <pair>_train and validates on <pair>_dev; stages 5-6 decode and score every other split.
Multi-node training: on every node (shared file system) run --stage 4 --stop-stage 4 --num-nodes N --ngpu G
  --node-rank I --rdzv-endpoint HOST:PORT; stages 2 and 5 use the --ngpu GPUs of one node.
Corpus locations: COMMONVOICE and COVOST in db.sh (or the environment)."

. "$MAIN_ROOT/utils/parse_options.sh"
. "$MAIN_ROOT/utils/stage.sh"

pair=${src_lang}_${tgt_lang}
covost_dir=${COVOST:-$download_dir/covost}
covost_tsv=$covost_dir/covost_v2.$pair.tsv
cv_dir=${COMMONVOICE:+$COMMONVOICE/$src_lang}

# ---------------------------------------------------------------------------------------------------
# What stages 2-7 train and decode (utils/recipe_stages.sh): the training config and the decoding configs of each
# --model; per --task the training targets and, per decoded set, "TARGET|SET_SUFFIX|METRIC" (the joint task decodes
# every set twice: the translation as <set>, the transcript with its task token as <set>_asr)
case "$model" in
  elf) conf=${conf:-conf/train.yaml} decode_confs=${decode_confs:-conf/decode/flow32.yaml} section=elf ;;
  ar) conf=${conf:-conf/train_ar.yaml} decode_confs=${decode_confs:-conf/decode/beam4.yaml} section=ar ;;
  *) die "--model must be elf or ar, got '$model'" ;;
esac
extra_train_overrides=()
case "$task" in
  st) targets=("translation:$tgt_lang") decodes=("translation:$tgt_lang||bleu") ;;
  asr) targets=(transcript) decodes=("transcript||wer") ;;
  joint) targets=(transcript "translation:$tgt_lang") decodes=("translation:$tgt_lang||bleu" "transcript|_asr|wer")
         extra_train_overrides=("$section.tasks=[asr, 'st:$tgt_lang']") ;;
  *) die "--task must be st, asr or joint, got '$task'" ;;
esac
if [ "$stop_stage" -ge 2 ]; then
  [[ " $splits " == *" train "* && " $splits " == *" dev "* ]] || die "--splits must include train and dev for stages 2-6"
fi
feat_sets=(); for split in $splits; do feat_sets+=("${pair}_$split"); done
eval_sets=(); for s in "${feat_sets[@]}"; do [ "$s" = "${pair}_train" ] || eval_sets+=("$s"); done
train_set=${pair}_train valid_set=${pair}_dev
tag_prefix=${pair}_${task}_ what="$task $pair"
vocab=data/token_list/${pair}_${task}_bpe$ar_vocab_size   # stage 3 with --model ar

. "$MAIN_ROOT/utils/recipe_stages.sh"
recipe_init   # checks every option before any stage runs

# ---------------------------------------------------------------------------------------------------
# Stage 0: get the corpus (the CoVoST TSV is downloaded; Common Voice v4 audio is checked)
# (Each stage's marker records its inputs and settings, the files and values after the description; a stage
# done with other inputs stops the recipe instead of being skipped: utils/stage.sh.)
if stage_begin 0 "get CoVoST 2 ($pair)" -- "pair=$pair" "COMMONVOICE=${COMMONVOICE:-}" "covost_dir=$covost_dir"; then
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
if stage_begin 1 "data preparation" "${cv_dir:-COMMONVOICE}/validated.tsv" "$covost_tsv" -- "splits=$splits" \
    "manifest_dir=$manifest_dir"; then
  [ -n "$cv_dir" ] || die "COMMONVOICE is not set: edit db.sh (or export COMMONVOICE=/path/cv-corpus-4)"
  python -m elfs2t.bin.prepare_data covost2 --cv-dir "$cv_dir" --covost-tsv "$covost_tsv" \
    --src-lang "$src_lang" --tgt-lang "$tgt_lang" --splits $splits --output-dir "$manifest_dir" --nj "$nj" $(force_flag)
  stage_done 1
fi

# ---------------------------------------------------------------------------------------------------
# Stages 2-7: those of every recipe (utils/recipe_stages.sh), with the table above
stage_features   # 2: Whisper features (and --speed-perturb copies, <pair>_train_sp) -> dump/<encoder_tag>/<set>/
stage_backbone   # 3: the released ELF checkpoint fetched and test-loaded, or the AR vocabulary of the targets
stage_train      # 4: training -> exp/<tag>/
stage_decode     # 5: one decode per decoding config (and per task) -> exp/<tag>/decode_<inference_tag>/<set>/
stage_score      # 6: BLEU/chrF (st), WER (asr) per decoded set, RESULTS.md
stage_analysis   # 7: error analysis (and ELF-S2T's audio reliance) -> exp/<tag>/analysis/

log "finished stages $stage..$stop_stage"
