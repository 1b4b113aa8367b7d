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
exp_tag=""            # stage 4-6: experiment folder exp/<tag> (default: <pair>_<task>_<conf name>_<encoder tag>)
train_opts=""         # stage 3-4: config overrides, e.g. "train.max_steps=30000 data.max_duration=600"
decode_opts=""        # stage 5: decoding overrides, e.g. "decode.flow.steps=16 decode.flow.guidance=1.5"
node_rank=0           # stage 4: rank of this node (multi-node training)
rdzv_endpoint=localhost:29400   # stage 4: torchrun rendezvous host:port, the same on every node
rdzv_id=elfs2t        # stage 4: torchrun job id shared by all nodes

help_message="Usage: $0 [options]
CoVoST 2 S2TT recipe (ELF-S2T). Options (default in parentheses):
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
  --decode-opts \"K=V ..\" decoding overrides, e.g. \"decode.flow.guidance=1.5\" ($decode_opts)
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

# Stages 2-6 share the encoder tag (dump/<tag>/) and the experiment folder (exp/<exp_tag>/).
case "$model" in
  elf) conf=${conf:-conf/train.yaml} section=elf ;;
  ar) conf=${conf:-conf/train_ar.yaml} section=ar ;;
  *) die "--model must be elf or ar, got '$model'" ;;
esac
case "$task" in  # targets: training targets; decode: "TARGET SET_SUFFIX METRIC" per task decoded in stage 5
  st) targets=("translation:$tgt_lang") decodes=("translation:$tgt_lang||bleu") ;;
  asr) targets=(transcript) decodes=("transcript||wer") ;;
  joint) targets=(transcript "translation:$tgt_lang") decodes=("translation:$tgt_lang||bleu" "transcript|_asr|wer") ;;
  *) die "--task must be st, asr or joint, got '$task'" ;;
esac
sets=(); for split in $splits; do sets+=("${pair}_$split"); done
eval_sets=(); for s in "${sets[@]}"; do [ "$s" = "${pair}_train" ] || eval_sets+=("$s"); done
feat_tag=""; tag=""
if [ "$stop_stage" -ge 2 ] && [ "$stage" -le 7 ]; then
  [[ " $splits " == *" train "* && " $splits " == *" dev "* ]] || die "--splits must include train and dev for stages 2-6"
  # the encoder tag; --ngpu is checked against the visible GPUs when a stage that uses them is in the range
  gpus=0; for s in 2 4 5; do stage_in_range "$s" && gpus=$ngpu; done
  feat_tag=$(python -m elfs2t.bin.cache_features --encoder "$encoder" --mode "$feat_mode" --ngpu "$gpus" --print-tag) \
    || exit 1  # (it printed the error, naming the option)
  tag=${exp_tag:-${pair}_${task}_$(basename "$conf" .yaml)_$feat_tag${speed_perturb:+_sp}}
fi
read -r -a extra_train_opts <<< "$train_opts"
read -r -a extra_decode_opts <<< "$decode_opts"
train_sets="" valid_sets=""
for target in "${targets[@]}"; do
  train_sets="$train_sets${train_sets:+, }{cuts: dump/$feat_tag/${pair}_train/cuts.jsonl.gz, target: '$target'}"
  [ -z "$speed_perturb" ] || train_sets="$train_sets, {cuts: dump/$feat_tag/${pair}_train_sp/cuts.jsonl.gz, target: '$target'}"
  valid_sets="$valid_sets${valid_sets:+, }{cuts: dump/$feat_tag/${pair}_dev/cuts.jsonl.gz, target: '$target'}"
done
train_overrides=("data.train=[$train_sets]" "data.valid=[$valid_sets]")
[ "$task" = joint ] && train_overrides+=("$section.tasks=[asr, 'st:$tgt_lang']")
[ -n "$elf_init" ] && [ "$model" = elf ] && train_overrides+=("init.denoiser=$elf_init")
vocab=data/token_list/${pair}_${task}_bpe$ar_vocab_size   # stage 3 with --model ar
[ "$model" = ar ] && train_overrides+=("ar.tokenizer=$vocab")
train_overrides+=("${extra_train_opts[@]}")
nproc=$(( ngpu > 0 ? ngpu : 1 ))
if [ "$ngpu" -gt 0 ]; then feat_par=(--ngpu "$ngpu"); else feat_par=(--nj "$nj"); fi

# ---------------------------------------------------------------------------------------------------
# Stage 2: Whisper feature caching (and --speed-perturb copies of the training set, <src>_<tgt>_train_sp)
#   -> dump/<encoder_tag>/<src>_<tgt>_<split>/cuts.jsonl.gz
done_dir=exp/.done/$feat_tag${speed_perturb:+_sp}   # per encoder tag (finished sets are skipped inside)
stage1_cuts=(); for s in "${sets[@]}"; do stage1_cuts+=("$manifest_dir/cuts_$s.jsonl.gz"); done
if stage_begin 2 "Whisper feature caching ($feat_tag)" "${stage1_cuts[@]}" -- "encoder=$encoder" "feat_mode=$feat_mode" \
    "speed_perturb=$speed_perturb" "speed_perturb_per_cut=$speed_perturb_per_cut"; then
  sp_sets=()
  if [ -n "$speed_perturb" ]; then  # the perturbed copies are cut manifests; the encoder applies the speed
    # shellcheck disable=SC2086  # a list of factors
    python -m elfs2t.bin.speed_perturb --cuts "$manifest_dir/cuts_${pair}_train.jsonl.gz" \
      --out "$manifest_dir/cuts_${pair}_train_sp.jsonl.gz" --factors $speed_perturb --per-cut "$speed_perturb_per_cut"
    sp_sets=("${pair}_train_sp")
  fi
  run_job python -m elfs2t.bin.cache_features --encoder "$encoder" --mode "$feat_mode" "${feat_par[@]}" \
    --batch-size "$feat_batch_size" --manifest-dir "$manifest_dir" --sets "${sets[@]}" "${sp_sets[@]}" --dump-dir dump \
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
# Stage 3, AR: the SentencePiece vocabulary of the training targets -> data/token_list/<pair>_<task>_bpe<N> (its
#   fresh LM is sized to it; a pre-trained LM instead: --train-opts "ar.lm=<hub id or dir> ar.tokenizer=null")
model_type=elf_s2t  # the config's model (for the logs), unless --train-opts sets another
[ -f "$conf" ] && model_type=$(sed -n 's/^model: *\([A-Za-z0-9_]*\).*/\1/p' "$conf" | head -n 1)
for o in "${extra_train_opts[@]}"; do case "$o" in model=*) model_type=${o#model=} ;; esac; done
model_type=${model_type:-elf_s2t}
if [ "$model" = elf ] && stage_begin 3 "ELF backbone (fetch and check the released checkpoint)" "$conf" -- "elf_init=$elf_init" \
    "train_opts=$train_opts"; then
  python -m elfs2t.bin.fetch_elf --conf "$conf" --report "exp/elf_$tag/fetch.json" "${train_overrides[@]}"
  stage_done 3
fi
if [ "$model" = ar ] && stage_begin 3 "AR vocabulary of the training targets (SentencePiece) -> $vocab" \
    "$manifest_dir/cuts_${pair}_train.jsonl.gz" -- "task=$task" "ar_vocab_size=$ar_vocab_size"; then
  text_sets=(); for target in "${targets[@]}"; do text_sets+=(--set "$manifest_dir/cuts_${pair}_train.jsonl.gz=$target"); done
  python -m elfs2t.bin.export_text --out "$vocab.txt" "${text_sets[@]}"
  python -m elfs2t.bin.train_subword --text "$vocab.txt" --out-dir "$vocab" --vocab-size "$ar_vocab_size"
  stage_done 3
fi

# ---------------------------------------------------------------------------------------------------
# Stage 4: training (ELF-S2T: flow matching with audio forcing) -> exp/<tag>/ (torchrun over --ngpu x --num-nodes)
train_inputs=("$conf" dump/$feat_tag/${pair}_train/cuts.jsonl.gz "dump/$feat_tag/${pair}_dev/cuts.jsonl.gz")
[ -z "$speed_perturb" ] || train_inputs+=(dump/$feat_tag/${pair}_train_sp/cuts.jsonl.gz)
[ "$model" = ar ] && train_inputs+=("$vocab")   # the stage-3 vocabulary
if stage_begin 4 "training ($task $pair, model $model_type) -> exp/$tag" "${train_inputs[@]}" -- "target=$target" \
    "train_opts=$train_opts" "elf_init=$elf_init"; then
  run_job launch.sh --nproc "$nproc" --num-nodes "$num_nodes" --node-rank "$node_rank" \
    --rdzv-endpoint "$rdzv_endpoint" --rdzv-id "$rdzv_id" \
    elfs2t.bin.train --conf "$conf" --exp-dir "exp/$tag" "${train_overrides[@]}"
  stage_done 4
fi

# ---------------------------------------------------------------------------------------------------
# Stage 5: decoding (ELF-S2T: CFG sampling; AR: greedy / beam) -> exp/<tag>/decode_<inference_tag>/<set>/{text,ref};
#   the joint task decodes every set twice: the translation as <set>, the transcript as <set>_asr (its task token)
decode_inputs=("exp/$tag/last.pt"); for s in "${eval_sets[@]}"; do decode_inputs+=("dump/$feat_tag/$s/cuts.jsonl.gz"); done
if stage_begin 5 "decoding (${eval_sets[*]})" "${decode_inputs[@]}" -- "target=$target" "decode_opts=$decode_opts"; then
  for d in "${decodes[@]}"; do
    IFS='|' read -r target suffix _ <<< "$d"
    args=(); for s in "${eval_sets[@]}"; do args+=(--set "$s$suffix=dump/$feat_tag/$s/cuts.jsonl.gz"); done
    run_job launch.sh --nproc "$nproc" elfs2t.bin.decode --exp-dir "exp/$tag" --target "$target" "${args[@]}" \
      --record-setting "${extra_decode_opts[@]}"  # the model's setting (transcribe, export)
  done
  stage_done 5
fi

# ---------------------------------------------------------------------------------------------------
# Stage 6: scoring (BLEU/chrF for st, WER for asr) -> result.txt per decoded set; RESULTS.md (all experiments)
score_inputs=(); for f in exp/"$tag"/decode_*/*/text; do [ -f "$f" ] && score_inputs+=("$f"); done
if stage_begin 6 "scoring ($task)" "${score_inputs[@]}" -- "task=$task"; then
  for dir in exp/"$tag"/decode_*/*/; do
    [ -f "$dir/text" ] || continue
    metric=${decodes[0]##*|}
    [ "$task" = joint ] && [[ "$(basename "$dir")" == *_asr ]] && metric=wer
    python -m elfs2t.bin.score --hyp "$dir/text" --ref "$dir/ref" --metric "$metric" --out-dir "$dir"
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
    python -m elfs2t.bin.audio_reliance --exp-dir "exp/$tag" --target "${decodes[0]%%|*}" \
      --set "${eval_sets[0]}=dump/$feat_tag/${eval_sets[0]}/cuts.jsonl.gz" -- "${extra_decode_opts[@]}"
  fi
  stage_done 7
fi

log "finished stages $stage..$stop_stage"
