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
exp_tag=""            # stage 4-6: experiment folder exp/<tag> (default: <conf name>_<encoder tag>)
valid_set=dev_clean   # stage 4: validation set (one of the --eval-parts sets)
train_opts=""         # stage 3-4: config overrides, e.g. "train.max_steps=50000 data.max_duration=600"
decode_opts=""        # stage 5: decoding overrides, e.g. "decode.flow.steps=16 decode.flow.guidance=1.5"
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
  --decode-opts \"K=V ..\" decoding overrides, e.g. \"decode.flow.guidance=1.5\" ($decode_opts)
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

# Stages 2-6 share the encoder tag (dump/<tag>/) and the experiment folder (exp/<exp_tag>/).
case "$model" in
  elf) conf=${conf:-conf/train.yaml} ;;
  ar) conf=${conf:-conf/train_ar.yaml} ;;
  *) die "--model must be elf or ar, got '$model'" ;;
esac
eval_sets=(); for part in $eval_parts; do eval_sets+=("${part//-/_}"); done
feat_tag=""; tag=""
if [ "$stop_stage" -ge 2 ] && [ "$stage" -le 7 ]; then
  [[ " ${eval_sets[*]} " == *" $valid_set "* ]] || die "--valid-set $valid_set is not one of the --eval-parts sets (${eval_sets[*]})"
  # the encoder tag; --ngpu is checked against the visible GPUs when a stage that uses them is in the range
  gpus=0; for s in 2 4 5; do stage_in_range "$s" && gpus=$ngpu; done
  feat_tag=$(python -m elfs2t.bin.cache_features --encoder "$encoder" --mode "$feat_mode" --ngpu "$gpus" --print-tag) \
    || exit 1  # (it printed the error, naming the option)
  tag=${exp_tag:-$(basename "$conf" .yaml)_$feat_tag${speed_perturb:+_sp}}
fi
read -r -a extra_train_opts <<< "$train_opts"
read -r -a extra_decode_opts <<< "$decode_opts"
train_sets="{cuts: dump/$feat_tag/train/cuts.jsonl.gz, target: transcript}"
[ -z "$speed_perturb" ] || train_sets="$train_sets, {cuts: dump/$feat_tag/train_sp/cuts.jsonl.gz, target: transcript}"
train_overrides=("data.train=[$train_sets]"
                 "data.valid=[{cuts: dump/$feat_tag/$valid_set/cuts.jsonl.gz, target: transcript}]")
[ -n "$elf_init" ] && [ "$model" = elf ] && train_overrides+=("init.denoiser=$elf_init")
vocab=data/token_list/train_bpe$ar_vocab_size   # stage 3 with --model ar
[ "$model" = ar ] && train_overrides+=("ar.tokenizer=$vocab")
train_overrides+=("${extra_train_opts[@]}")
nproc=$(( ngpu > 0 ? ngpu : 1 ))
if [ "$ngpu" -gt 0 ]; then feat_par=(--ngpu "$ngpu"); else feat_par=(--nj "$nj"); fi

# ---------------------------------------------------------------------------------------------------
# Stage 2: Whisper feature caching (and --speed-perturb copies of the training set, set train_sp)
#   -> dump/<encoder_tag>/{train,train_sp,dev_clean,...}/cuts.jsonl.gz
done_dir=exp/.done/$feat_tag${speed_perturb:+_sp}   # per encoder tag (finished sets are skipped inside)
stage1_cuts=(); for s in train "${eval_sets[@]}"; do stage1_cuts+=("$manifest_dir/cuts_$s.jsonl.gz"); done
if stage_begin 2 "Whisper feature caching ($feat_tag)" "${stage1_cuts[@]}" -- "encoder=$encoder" "feat_mode=$feat_mode" \
    "speed_perturb=$speed_perturb" "speed_perturb_per_cut=$speed_perturb_per_cut"; then
  sp_sets=()
  if [ -n "$speed_perturb" ]; then  # the perturbed copies are cut manifests; the encoder applies the speed
    # shellcheck disable=SC2086  # a list of factors
    python -m elfs2t.bin.speed_perturb --cuts "$manifest_dir/cuts_train.jsonl.gz" \
      --out "$manifest_dir/cuts_train_sp.jsonl.gz" --factors $speed_perturb --per-cut "$speed_perturb_per_cut"
    sp_sets=(train_sp)
  fi
  run_job python -m elfs2t.bin.cache_features --encoder "$encoder" --mode "$feat_mode" "${feat_par[@]}" \
    --batch-size "$feat_batch_size" --manifest-dir "$manifest_dir" --sets train "${sp_sets[@]}" "${eval_sets[@]}" --dump-dir dump \
    $(force_flag)
  stage_done 2
fi

# ---------------------------------------------------------------------------------------------------
# Stages 3-6 keep their done markers per experiment (exp/.done/<tag>/), so another --conf, --task or --exp-tag
# runs them again instead of being skipped.
done_dir=exp/.done/$tag

# ---------------------------------------------------------------------------------------------------
# Stage 3, ELF-S2T: fetch the released checkpoint (init.denoiser of --conf, or --elf-init) into the Hugging Face cache
#   and test-load it into the model of --conf -> exp/elf_<tag>/fetch.json
# Stage 3, AR: the SentencePiece vocabulary of the training transcripts -> data/token_list/train_bpe<N> (its fresh LM
#   is sized to it; a pre-trained LM instead: --train-opts "ar.lm=<hub id or dir> ar.tokenizer=null")
model_type=elf_s2t  # the config's model (for the logs), unless --train-opts sets another
[ -f "$conf" ] && model_type=$(sed -n 's/^model: *\([A-Za-z0-9_]*\).*/\1/p' "$conf" | head -n 1)
for o in "${extra_train_opts[@]}"; do case "$o" in model=*) model_type=${o#model=} ;; esac; done
model_type=${model_type:-elf_s2t}
if [ "$model" = elf ] && stage_begin 3 "ELF backbone (fetch and check the released checkpoint)" "$conf" -- "elf_init=$elf_init" \
    "train_opts=$train_opts"; then
  python -m elfs2t.bin.fetch_elf --conf "$conf" --report "exp/elf_$tag/fetch.json" "${train_overrides[@]}"
  stage_done 3
fi
if [ "$model" = ar ] && stage_begin 3 "AR vocabulary of the training transcripts (SentencePiece) -> $vocab" \
    "$manifest_dir/cuts_train.jsonl.gz" -- "ar_vocab_size=$ar_vocab_size"; then
  python -m elfs2t.bin.export_text --out "$vocab.txt" --lowercase --set "$manifest_dir/cuts_train.jsonl.gz=transcript"
  python -m elfs2t.bin.train_subword --text "$vocab.txt" --out-dir "$vocab" --vocab-size "$ar_vocab_size"
  stage_done 3
fi

# ---------------------------------------------------------------------------------------------------
# Stage 4: training (ELF-S2T: flow matching with audio forcing) -> exp/<tag>/ (torchrun over --ngpu x --num-nodes)
train_inputs=("$conf" dump/$feat_tag/train/cuts.jsonl.gz "dump/$feat_tag/$valid_set/cuts.jsonl.gz")
[ -z "$speed_perturb" ] || train_inputs+=(dump/$feat_tag/train_sp/cuts.jsonl.gz)
[ "$model" = ar ] && train_inputs+=("$vocab")   # the stage-3 vocabulary
if stage_begin 4 "training (model $model_type) -> exp/$tag" "${train_inputs[@]}" -- "target=transcript" \
    "train_opts=$train_opts" "elf_init=$elf_init"; then
  run_job launch.sh --nproc "$nproc" --num-nodes "$num_nodes" --node-rank "$node_rank" \
    --rdzv-endpoint "$rdzv_endpoint" --rdzv-id "$rdzv_id" \
    elfs2t.bin.train --conf "$conf" --exp-dir "exp/$tag" "${train_overrides[@]}"
  stage_done 4
fi

# ---------------------------------------------------------------------------------------------------
# Stage 5: decoding (ELF-S2T: CFG sampling; AR: greedy / beam) -> exp/<tag>/decode_<inference_tag>/<set>/{text,ref}
decode_inputs=("exp/$tag/last.pt"); for s in "${eval_sets[@]}"; do decode_inputs+=("dump/$feat_tag/$s/cuts.jsonl.gz"); done
if stage_begin 5 "decoding (${eval_sets[*]})" "${decode_inputs[@]}" -- "target=transcript" "decode_opts=$decode_opts"; then
  sets=(); for s in "${eval_sets[@]}"; do sets+=(--set "$s=dump/$feat_tag/$s/cuts.jsonl.gz"); done
  run_job launch.sh --nproc "$nproc" elfs2t.bin.decode --exp-dir "exp/$tag" --target transcript "${sets[@]}" \
    --record-setting "${extra_decode_opts[@]}"  # the model's setting (transcribe, export)
  stage_done 5
fi

# ---------------------------------------------------------------------------------------------------
# Stage 6: scoring (WER) -> result.txt per decoded set; RESULTS.md (every experiment of this recipe)
score_inputs=(); for f in exp/"$tag"/decode_*/*/text; do [ -f "$f" ] && score_inputs+=("$f"); done
if stage_begin 6 "scoring" "${score_inputs[@]}" -- "metric=wer"; then
  for dir in exp/"$tag"/decode_*/*/; do
    [ -f "$dir/text" ] || continue
    python -m elfs2t.bin.score --hyp "$dir/text" --ref "$dir/ref" --metric wer --out-dir "$dir"
  done
  python -m elfs2t.bin.score --results-table . --results-out RESULTS.md
  cat RESULTS.md
  stage_done 6
fi

# ---------------------------------------------------------------------------------------------------
# Stage 7: analysis -> exp/<tag>/analysis/: the latent-space error analysis of every decoded set (report.md); for
#   ELF-S2T also the audio reliance of the first evaluated set (audio real / zero / noise / swapped x CFG scales of
#   the --decode-opts setting: exp/<tag>/analysis/audio_reliance/<set>/reliance.md)
analysis_inputs=(); for f in exp/"$tag"/decode_*/*/text; do [ -f "$f" ] && analysis_inputs+=("$f"); done
if stage_begin 7 "analysis" "${analysis_inputs[@]}" -- "analysis_space=$analysis_space"; then
  dirs=(); for d in exp/"$tag"/decode_*/*/; do [ -f "$d/text" ] && dirs+=(--decode-dir "${d%/}"); done
  [ "${#dirs[@]}" -gt 0 ] || die "stage 7: nothing decoded in exp/$tag (run stage 5 first)"
  space=(); [ "$model" = ar ] && space=(--text-space "$analysis_space")  # ELF-S2T brings its own latent space
  python -m elfs2t.bin.analyze "${dirs[@]}" "${space[@]}" --out-dir "exp/$tag/analysis" --no-progress
  if [ "$model" = elf ]; then
    python -m elfs2t.bin.audio_reliance --exp-dir "exp/$tag" --target "transcript" \
      --set "${eval_sets[0]}=dump/$feat_tag/${eval_sets[0]}/cuts.jsonl.gz" -- "${extra_decode_opts[@]}"
  fi
  stage_done 7
fi

log "finished stages $stage..$stop_stage"
