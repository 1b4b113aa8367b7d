#!/usr/bin/env bash
# __RECIPE__: a recipe made from egs/TEMPLATE (utils/new_recipe.sh). See docs/adding_a_corpus.md.
# Stages (numbers shared by every recipe, docs/design.md §4.1):
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
manifest_dir=data/manifests
train_set=train       # stages 2-4: training set (a set name returned by local/prepare.py)
valid_set=dev         # stages 2-4: validation set during training
test_sets="test"      # stages 2, 5-6: sets decoded and scored
target=transcript     # transcript (ASR) or translation:<lang> (S2TT; supervision.custom["translated_text"][lang])
metric=wer            # stage 6: wer, cer, bleu (BLEU + chrF) or all
encoder=openai/whisper-large-v3   # stage 2: Whisper (hub id or local dir); its width must equal elf.feat_dim
feat_mode=pad30       # stage 2: pad30 (every window padded to 30 s, as Whisper was trained) or trim (faster)
feat_batch_size=8     # stage 2: utterances per encoder forward
speed_perturb=""      # stage 2: speed factors for extra copies of the training set ("": none), e.g. "0.9 1.1"
speed_perturb_per_cut=all   # stage 2: all = one copy per factor; one = one copy per utterance, factor drawn
elf_init=""           # stage 3-4: ELF checkpoint (file, dir or hub id) instead of init.denoiser of --conf
analysis_space=t5-small  # stage 7: the text encoder whose latent space measures the AR baseline's errors
ar_vocab_size=1000    # stage 3 (--model ar): SentencePiece BPE pieces of the AR's vocabulary of the targets
exp_tag=""            # stage 3-7: experiment folder exp/<tag> (default: <conf name>_<encoder tag>[_sp])
train_opts=""         # stage 3-4: config overrides, e.g. "train.max_steps=50000 data.max_duration=600"
decode_confs=""       # stages 5, 7: named decoding configs, one decode each (default: the table below, by --model)
decode_opts=""        # stage 5: decode.* overrides added to every decoding config, e.g. "decode.max_duration=600"
node_rank=0           # stage 4: rank of this node (multi-node training)
rdzv_endpoint=localhost:29400   # stage 4: torchrun rendezvous host:port, the same on every node
rdzv_id=elfs2t        # stage 4: torchrun job id shared by all nodes

help_message="Usage: $0 [options]
__RECIPE__ recipe (ELF-S2T or the AR baseline). Options (default in parentheses):
  --stage N             first stage to run ($stage)
  --stop-stage M        last stage to run ($stop_stage)
  --force true|false    redo finished stages ($force)
  --nj N                parallel jobs for data preparation and CPU feature caching ($nj)
  --ngpu N              GPUs per node for feature caching, training, decoding; 0: CPU ($ngpu)
  --num-nodes N         nodes for training ($num_nodes)
  --model elf|ar        ELF-S2T or the AR speech-LLM baseline (a fresh LM on the stage-3 vocabulary) ($model)
  --conf FILE           training/decoding config (default conf/train.yaml; --model ar: conf/train_ar.yaml) ($conf)
  --manifest-dir DIR    stage-1 output ($manifest_dir)
  --train-set SET       training set ($train_set)
  --valid-set SET       validation set during training ($valid_set)
  --test-sets \"A B\"     sets decoded and scored ($test_sets)
  --target T            transcript or translation:<lang> ($target)
  --metric M            wer, cer, bleu or all ($metric)
  --encoder ID|DIR      Whisper encoder for stage 2; set elf.feat_dim to its width ($encoder)
  --feat-mode MODE      pad30 or trim; part of the dump/ tag ($feat_mode)
  --feat-batch-size N   utterances per encoder forward in stage 2 ($feat_batch_size)
  --speed-perturb \"..\"  speed factors for extra training copies (set <train-set>_sp), \"\" for none ($speed_perturb)
  --speed-perturb-per-cut all|one  one copy per factor, or one per utterance with a drawn factor ($speed_perturb_per_cut)
  --elf-init SRC        ELF checkpoint (file, dir, hub id) overriding init.denoiser of --conf ($elf_init)
  --analysis-space DIR|ID  stage 7: text encoder measuring the AR baseline's errors ($analysis_space)
  --ar-vocab-size N     stage 3 with --model ar: pieces of the SentencePiece vocabulary ($ar_vocab_size)
  --exp-tag TAG         experiment folder exp/TAG (default: <conf name>_<encoder tag>[_sp]) ($exp_tag)
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
Corpus location: CORPUS in db.sh (or the environment)."

. "$MAIN_ROOT/utils/parse_options.sh"
. "$MAIN_ROOT/utils/stage.sh"

# ---------------------------------------------------------------------------------------------------
# What stages 2-7 train and decode (utils/recipe_stages.sh): the training config and the decoding configs of each
# --model, the sets, the training targets, and per decoded set its target, name suffix and metric
case "$model" in
  elf) conf=${conf:-conf/train.yaml} decode_confs=${decode_confs:-conf/decode/flow32.yaml} ;;
  ar) conf=${conf:-conf/train_ar.yaml} decode_confs=${decode_confs:-conf/decode/beam4.yaml} ;;
  *) die "--model must be elf or ar, got '$model'" ;;
esac
read -r -a eval_sets <<< "$test_sets"
targets=("$target")
decodes=("$target||$metric")

. "$MAIN_ROOT/utils/recipe_stages.sh"
recipe_init   # checks every option before any stage runs

# ---------------------------------------------------------------------------------------------------
# Stage 0: get the corpus (add a download here if the corpus allows it)
# (Each stage's marker records its inputs and settings, the files and values after the description; a stage
# done with other inputs stops the recipe instead of being skipped: utils/stage.sh.)
if stage_begin 0 "check the corpus" -- "CORPUS=$CORPUS"; then
  [ -n "$CORPUS" ] || die "CORPUS is not set: edit db.sh (or export CORPUS=/path/to/corpus)"
  [ -d "$CORPUS" ] || die "corpus folder not found: $CORPUS (CORPUS in db.sh)"
  stage_done 0
fi

# ---------------------------------------------------------------------------------------------------
# Stage 1: data preparation: local/prepare.py returns the cut sets, written to $manifest_dir/cuts_<set>.jsonl.gz
if stage_begin 1 "data preparation" "${CORPUS:-CORPUS}" local/prepare.py -- "manifest_dir=$manifest_dir"; then
  python -m elfs2t.bin.prepare_data local --script local/prepare.py --corpus-dir "$CORPUS" \
    --output-dir "$manifest_dir" --nj "$nj"
  stage_done 1
fi

# ---------------------------------------------------------------------------------------------------
# Stages 2-7: those of every recipe (utils/recipe_stages.sh), with the table above
stage_features   # 2: Whisper features (and speed-perturbed copies) -> dump/<encoder_tag>/<set>/
stage_backbone   # 3: the released ELF checkpoint fetched and test-loaded, or the AR vocabulary
stage_train      # 4: training -> exp/<tag>/
stage_decode     # 5: one decode per decoding config -> exp/<tag>/decode_<inference_tag>/<set>/
stage_score      # 6: result.txt per decoded set, RESULTS.md
stage_analysis   # 7: error analysis (and ELF-S2T's audio reliance) -> exp/<tag>/analysis/

log "finished stages $stage..$stop_stage"
