#!/usr/bin/env bash
# LibriSpeech ASR with ELF-S2T or the AR speech-LLM baseline. Stages (numbers shared by every recipe, docs/design.md §4.1):
#   0 get the corpus   1 data preparation   2 Whisper feature caching   3 ELF backbone / AR vocabulary
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
ngpu=1                # GPUs per node for feature caching, training and decoding (0: CPU)
num_nodes=1           # nodes for training (torchrun rendezvous)
model=elf             # elf: ELF-S2T (conf/train.yaml); ar: the AR speech-LLM baseline (conf/train_ar.yaml)
conf=""               # training / decoding config (default: conf/train.yaml, with --model ar conf/train_ar.yaml)
download=false        # stage 0: download LibriSpeech instead of using $LIBRISPEECH from db.sh
download_dir=downloads
train_parts="train-clean-100"   # 960 h: "train-clean-100 train-clean-360 train-other-500"
eval_parts="dev-clean dev-other test-clean test-other"
manifest_dir=data/manifests
encoder=openai/whisper-large-v3   # stage 2: Whisper (hub id or local dir); its width must equal elf.feat_dim
feat_mode=pad30       # stage 2: pad30 (every window padded to 30 s, as Whisper was trained) or trim (faster)
feat_batch_size=8     # stage 2: utterances per encoder forward
speed_perturb=""      # stage 2: speed factors for extra copies of the training set ("": none), e.g. "0.9 1.1"
                      # (Kaldi's 3-way perturbation with the original set; each copy costs stage 2 the set's time)
speed_perturb_per_cut=all   # stage 2: all = one copy per factor; one = one copy per utterance, factor drawn
elf_init=""           # stage 3-4: ELF checkpoint (file, dir or hub id) instead of init.denoiser of --conf
analysis_space=t5-small  # stage 7: the text encoder whose latent space measures the AR baseline's errors
ar_vocab_size=5000    # stage 3 (--model ar): SentencePiece BPE pieces of the AR's vocabulary of the transcripts
exp_tag=""            # stage 3-7: experiment folder exp/<tag> (default: <conf name>_<encoder tag>)
valid_set=dev_clean   # stage 4: validation set (one of the --eval-parts sets)
train_opts=""         # stage 3-4: config overrides, e.g. "train.max_steps=50000 data.max_duration=600"
decode_confs=""       # stages 5, 7: named decoding configs, one decode each (default: the table below, by --model)
decode_opts=""        # stage 5: decode.* overrides added to every decoding config, e.g. "decode.max_duration=600"
node_rank=0           # stage 4: rank of this node (multi-node training)
rdzv_endpoint=localhost:29400   # stage 4: torchrun rendezvous host:port, the same on every node
rdzv_id=elfs2t        # stage 4: torchrun job id shared by all nodes

help_message="Usage: $0 [options]
LibriSpeech ASR recipe (ELF-S2T or the AR baseline). Options (default in parentheses):
  --stage N             first stage to run ($stage)
  --stop-stage M        last stage to run ($stop_stage)
  --force true|false    redo finished stages ($force)
  --nj N                parallel jobs for data preparation and CPU feature caching ($nj)
  --ngpu N              GPUs per node for feature caching, training, decoding; 0: CPU ($ngpu)
  --num-nodes N         nodes for training ($num_nodes)
  --model elf|ar        ELF-S2T or the AR speech-LLM baseline (a fresh LM on the stage-3 vocabulary) ($model)
  --conf FILE           training/decoding config (default conf/train.yaml; --model ar: conf/train_ar.yaml) ($conf)
  --download true|false stage 0 downloads the parts into --download-dir ($download)
  --download-dir DIR    download folder ($download_dir)
  --train-parts LIST    training parts, combined into the set 'train' ($train_parts)
  --eval-parts LIST     dev/test parts, sets dev_clean, test_other, ... ($eval_parts)
  --manifest-dir DIR    stage-1 output ($manifest_dir)
  --encoder ID|DIR      Whisper encoder for stage 2; set elf.feat_dim to its width ($encoder)
  --feat-mode MODE      pad30 or trim; part of the dump/ tag ($feat_mode)
  --feat-batch-size N   utterances per encoder forward in stage 2 ($feat_batch_size)
  --speed-perturb \"..\"  speed factors for extra training copies (set train_sp), \"\" for none ($speed_perturb)
  --speed-perturb-per-cut all|one  one copy per factor, or one per utterance with a drawn factor ($speed_perturb_per_cut)
  --elf-init SRC        ELF checkpoint (file, dir, hub id) overriding init.denoiser of --conf ($elf_init)
  --analysis-space DIR|ID  stage 7: text encoder measuring the AR baseline's errors ($analysis_space)
  --ar-vocab-size N     stage 3 with --model ar: pieces of the SentencePiece vocabulary ($ar_vocab_size)
  --exp-tag TAG         experiment folder exp/TAG (default: <conf name>_<encoder tag>[_sp]) ($exp_tag)
  --valid-set SET       validation set during training ($valid_set)
  --train-opts \"K=V ..\" config overrides for stages 3-4, e.g. \"train.max_steps=50000\" ($train_opts)
  --decode-confs \"F ..\" decoding configs (conf/decode/*.yaml), one decode each; the last is the model's
                        setting; stage 7 sweeps the first (default: --model elf conf/decode/flow32.yaml, ar
                        conf/decode/beam4.yaml) ($decode_confs)
  --decode-opts \"K=V ..\" decode.* overrides added to every decoding config ($decode_opts)
  --node-rank N         rank of this node for multi-node training ($node_rank)
  --rdzv-endpoint H:P   torchrun rendezvous endpoint, the same on every node ($rdzv_endpoint)
  --rdzv-id ID          torchrun job id shared by all nodes ($rdzv_id)
Multi-node training: on every node (shared file system) run --stage 4 --stop-stage 4 --num-nodes N --ngpu G
  --node-rank I --rdzv-endpoint HOST:PORT; stages 2 and 5 use the --ngpu GPUs of one node.
Corpus location: LIBRISPEECH in db.sh (or the environment)."

. "$MAIN_ROOT/utils/parse_options.sh"
. "$MAIN_ROOT/utils/stage.sh"

if [ "$download" = true ]; then corpus_dir=$download_dir/LibriSpeech; else corpus_dir=$LIBRISPEECH; fi

# ---------------------------------------------------------------------------------------------------
# What stages 2-7 train and decode (utils/recipe_stages.sh): the training config and the decoding configs of each
# --model, the sets (training parts combined into 'train'), the training target, per decoded set target and metric
case "$model" in
  elf) conf=${conf:-conf/train.yaml} decode_confs=${decode_confs:-conf/decode/flow32.yaml} ;;
  ar) conf=${conf:-conf/train_ar.yaml} decode_confs=${decode_confs:-conf/decode/beam4.yaml} ;;
  *) die "--model must be elf or ar, got '$model'" ;;
esac
eval_sets=(); for part in $eval_parts; do eval_sets+=("${part//-/_}"); done
if [ "$stop_stage" -ge 2 ]; then
  [[ " ${eval_sets[*]} " == *" $valid_set "* ]] || die "--valid-set $valid_set is not one of the --eval-parts sets (${eval_sets[*]})"
fi
train_set=train feat_sets=(train "${eval_sets[@]}")
targets=(transcript)
decodes=("transcript||wer")
ar_text_opts=(--lowercase)   # the AR vocabulary of the lower-cased transcripts (LibriSpeech's are upper-case)

. "$MAIN_ROOT/utils/recipe_stages.sh"
recipe_init   # checks every option before any stage runs

# ---------------------------------------------------------------------------------------------------
# Stage 0: get the corpus
# (Each stage's marker records its inputs and settings, the files and values after the description; a stage
# done with other inputs stops the recipe instead of being skipped: utils/stage.sh.)
if stage_begin 0 "get LibriSpeech" -- "download=$download" "parts=$train_parts $eval_parts"; then
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
part_dirs=(); for part in $train_parts $eval_parts; do part_dirs+=("$corpus_dir/$part"); done
if stage_begin 1 "data preparation" "${part_dirs[@]}" -- "manifest_dir=$manifest_dir"; then
  [ -n "$corpus_dir" ] || die "LIBRISPEECH is not set: edit db.sh (or export LIBRISPEECH=/path/LibriSpeech)"
  python -m elfs2t.bin.prepare_data librispeech --corpus-dir "$corpus_dir" --output-dir "$manifest_dir" \
    --parts $train_parts $eval_parts --nj "$nj" $(force_flag)
  stage_done 1
fi

# ---------------------------------------------------------------------------------------------------
# Stages 2-7: those of every recipe (utils/recipe_stages.sh), with the table above
stage_features   # 2: Whisper features (and --speed-perturb copies, set train_sp) -> dump/<encoder_tag>/<set>/
stage_backbone   # 3: the released ELF checkpoint fetched and test-loaded, or the AR vocabulary
stage_train      # 4: training -> exp/<tag>/
stage_decode     # 5: one decode per decoding config -> exp/<tag>/decode_<inference_tag>/<set>/
stage_score      # 6: WER per decoded set, RESULTS.md
stage_analysis   # 7: error analysis (and ELF-S2T's audio reliance) -> exp/<tag>/analysis/

log "finished stages $stage..$stop_stage"
