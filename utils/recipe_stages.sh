#!/usr/bin/env bash
# Stages 2-7 of every recipe, shared: a run.sh declares its options, runs its stages 0-1, sets the table of what to
# train and decode, and calls
#
#   . "$MAIN_ROOT/utils/recipe_stages.sh"      # after parse_options.sh, stage.sh and cmd.sh (run_job)
#   recipe_init                                # encoder tag, experiment tag, training overrides; checks
#   stage_features; stage_backbone; stage_train; stage_decode; stage_score; stage_analysis
#
# A recipe of one experiment (egs/librispeech, egs/covost2, egs/TEMPLATE and the recipes made from it) does just that.
# A recipe of several (egs/mini_synth: each task with each model) sets the table per experiment, calls
# experiment_init (that table's training overrides and decoding configs; no python start-up), then the experiment's
# stage functions. With recipe_jobs=true (after jobs_init N, utils/jobs.sh) the trainings and decodings run as
# background jobs, at most N at once, their outputs in exp/<tag>/train.out and exp/<tag>/decode_<name>.out, each
# marking its stage done when it succeeded; the recipe waits for them with jobs_wait.
#
# The table (variables the recipe sets before recipe_init / experiment_init):
#   conf            the training config of --model (conf/train.yaml, conf/train_ar.yaml)
#   decode_confs    named decoding configs (conf/decode/*.yaml, space-separated) stage 5 decodes with, in turn
#   train_set, valid_set   stage-1 set names of the training and validation sets
#   eval_sets=(..)  the sets stage 5 decodes and stage 6 scores
#   feat_sets=(..)  the sets stage 2 caches (default: train, valid and eval sets)
#   targets=(..)    training targets: transcript, translation:<lang> (several: one model with task tokens)
#   decodes=(..)    what stage 5 decodes per set, "TARGET|NAME|METRIC[|NORMALIZER]": the target; the decoded set's
#                   name, a suffix (<set><suffix>; "": the set's own name) or "^FROM=TO" (the set's name with its
#                   leading FROM replaced by TO); stage 6's metric (wer, cer, bleu, all) and text normaliser
#                   (elfs2t.bin.score --normalizer; none given: the scorer's default)
# and optionally: tag_prefix (of the default experiment tag), what (the training stage's description),
# vocab (the AR vocabulary folder, default data/token_list/<train_set>_bpe<N>), ar_text_opts=(..) (export_text
# options, e.g. --lowercase), extra_train_overrides=(..) (e.g. elf.tasks of a joint model), init_denoiser (ELF-S2T's
# init.denoiser, default --elf-init), extra_train_inputs=(..) (more files stage 4's marker records),
# train_threads_per_job / decode_threads_per_job (OMP_NUM_THREADS of each training / decoding job), results_out (the
# table stage 6 writes, default RESULTS.md; "": none, the recipe writes its own).
# The common options (--model, --encoder, --feat-mode, --train-opts, --decode-opts, --ngpu, ...) keep their names
# in every recipe; egs/TEMPLATE/run.sh is the reference for their declarations and help lines.
#
# Markers (utils/stage.sh): stage 2 per encoder tag (exp/.done/<encoder_tag>[_sp]/), stages 3-4, 6-7 per experiment
# (exp/.done/<tag>/), stage 5 per experiment, decoding config and set (exp/.done/<tag>/decode_<name>/<set>/): a
# decoding config or a set added later is decoded alone (one job per config, its sets without a marker), what was
# decoded is skipped. Stages 6 and 7 summarise every decode folder of the experiment and are done again when a decode
# was added or redone (stage_begin --redo-when-changed).

# shellcheck source=utils/log.sh
. "$(dirname "${BASH_SOURCE[0]}")/log.sh"
declare -F run_job > /dev/null || die "recipe_stages.sh: source the recipe's cmd.sh (run_job) first"

recipe_init() {  # the encoder and experiment tags, the training overrides, the decoding configs; checks first
  local s gpus
  check_decode_opts --decode-opts "$decode_opts" --decode-confs
  [ -n "${feat_sets[*]-}" ] || feat_sets=("$train_set" "$valid_set" "${eval_sets[@]}")
  if stage_in_range 5 || stage_in_range 7; then
    read -r -a decode_conf_list <<< "$decode_confs"
    [ "${#decode_conf_list[@]}" -gt 0 ] || die "--decode-confs is empty: name at least one conf/decode/*.yaml"
    check_decode_confs --decode-confs "${decode_conf_list[@]}"
  fi
  feat_tag=""; tag=""
  if [ "$stop_stage" -ge 2 ] && [ "$stage" -le 7 ]; then
    # the encoder tag; --ngpu is checked against the visible GPUs when a stage that uses them is in the range
    gpus=0; for s in 2 4 5; do stage_in_range "$s" && gpus=$ngpu; done
    feat_tag=$(python -m elfs2t.bin.cache_features --encoder "$encoder" --mode "$feat_mode" --ngpu "$gpus" --print-tag) \
      || exit 1  # (it printed the error, naming the option)
    tag=${exp_tag:-${tag_prefix:-}$(basename "$conf" .yaml)_$feat_tag${speed_perturb:+_sp}}
  fi
  if [ "$ngpu" -gt 0 ]; then feat_par=(--ngpu "$ngpu"); else feat_par=(--nj "$nj"); fi
  experiment_init
}

check_decode_opts() {  # check_decode_opts OPTION VALUE CONFS_OPTION: one list of overrides, not ';'-separated settings
  [[ "$2" != *";"* ]] || die "$1 '$2': one list of decode.* overrides (added to every decoding); each decoding \
setting is a named config: a conf/decode/<name>.yaml in $3"
}
check_decode_confs() {  # check_decode_confs OPTION FILE...: each decoding config exists, and no two share a name
  local option=$1 f; shift  # (the name is the decode folder's and the stage-5 marker's)
  declare -A seen=()
  for f in "$@"; do
    [ -f "$f" ] || die "$option: no such decoding config: $f (conf/decode/*.yaml)"
    [ -z "${seen[$(basename "$f" .yaml)]:-}" ] || die "$option: two decoding configs named $(basename "$f")"
    seen[$(basename "$f" .yaml)]=1
  done
}

experiment_init() {  # the training overrides, decoding configs and model type of the table's experiment
  local t train_sets="" valid_sets=""
  vocab=${vocab:-data/token_list/${train_set}_bpe$ar_vocab_size}   # stage 3 with --model ar
  read -r -a decode_conf_list <<< "$decode_confs"
  read -r -a extra_train_opts <<< "$train_opts"
  read -r -a extra_decode_opts <<< "$decode_opts"
  for t in "${targets[@]}"; do
    train_sets="$train_sets${train_sets:+, }{cuts: dump/$feat_tag/$train_set/cuts.jsonl.gz, target: '$t'}"
    [ -z "$speed_perturb" ] || train_sets="$train_sets, {cuts: dump/$feat_tag/${train_set}_sp/cuts.jsonl.gz, target: '$t'}"
    valid_sets="$valid_sets${valid_sets:+, }{cuts: dump/$feat_tag/$valid_set/cuts.jsonl.gz, target: '$t'}"
  done
  train_overrides=("data.train=[$train_sets]" "data.valid=[$valid_sets]" "${extra_train_overrides[@]}")
  init_denoiser=${init_denoiser-$elf_init}
  if [ -n "$init_denoiser" ] && [ "$model" = elf ]; then train_overrides+=("init.denoiser=$init_denoiser"); fi
  if [ "$model" = ar ]; then train_overrides+=("ar.tokenizer=$vocab"); fi
  train_overrides+=("${extra_train_opts[@]}")
  nproc=$(( ngpu > 0 ? ngpu : 1 ))
  model_type=elf_s2t  # the config's model (for the logs), unless --train-opts sets another
  [ ! -f "$conf" ] || model_type=$(sed -n 's/^model: *\([A-Za-z0-9_]*\).*/\1/p' "$conf" | head -n 1)
  for t in "${extra_train_opts[@]}"; do case "$t" in model=*) model_type=${t#model=} ;; esac; done
  model_type=${model_type:-elf_s2t}
}

stage_job() {  # stage_job N NAME OUT CMD...: run CMD, then mark stage N done in $done_dir, or in each folder of the
  # array job_done_dirs when the caller set it (one job doing the work of several markers); a background job with its
  # output in OUT when recipe_jobs=true, else in the foreground
  local n=$1 name=$2 out=$3 dirs=("${job_done_dirs[@]:-$done_dir}"); shift 3
  if [ "${recipe_jobs:-false}" = true ]; then
    jobs_run "$name" "$out" _stage_job_body "$n" "${#dirs[@]}" "${dirs[@]}" "$@"
  else "$@"; _stage_done_in_each "$n" "${dirs[@]}"; fi
}
_stage_job_body() {  # _stage_job_body N K DIR_1..DIR_K CMD...
  local n=$1 k=$2; shift 2; local dirs=("${@:1:k}"); shift "$k"
  "$@" && _stage_done_in_each "$n" "${dirs[@]}"
}
_stage_done_in_each() { local n=$1 d; shift; for d in "$@"; do done_dir=$d stage_done "$n"; done; }

# ---------------------------------------------------------------------------------------------------
# Stage 2: Whisper feature caching (and --speed-perturb copies of the training set, set <train_set>_sp)
#   -> dump/<encoder_tag>/<set>/cuts.jsonl.gz; its marker is per encoder tag (finished sets are skipped inside)
stage_features() {
  local s cuts=() sets=("$train_set")
  done_dir=exp/.done/$feat_tag${speed_perturb:+_sp}
  for s in "${feat_sets[@]}"; do cuts+=("$manifest_dir/cuts_$s.jsonl.gz"); done
  if stage_begin 2 "Whisper feature caching ($feat_tag)" "${cuts[@]}" -- "encoder=$encoder" "feat_mode=$feat_mode" \
      "speed_perturb=$speed_perturb" "speed_perturb_per_cut=$speed_perturb_per_cut"; then
    if [ -n "$speed_perturb" ]; then  # the perturbed copies are cut manifests; the encoder applies the speed
      # shellcheck disable=SC2086  # a list of factors
      python -m elfs2t.bin.speed_perturb --cuts "$manifest_dir/cuts_$train_set.jsonl.gz" \
        --out "$manifest_dir/cuts_${train_set}_sp.jsonl.gz" --factors $speed_perturb --per-cut "$speed_perturb_per_cut"
      sets+=("${train_set}_sp")
    fi
    for s in "${feat_sets[@]}"; do [[ " ${sets[*]} " == *" $s "* ]] || sets+=("$s"); done
    cache_sets "${sets[@]}"
    stage_done 2
  fi
}
cache_sets() {  # cache_sets SET...: stage 2's encoder run ($encoder, $feat_mode, $feat_par) on $manifest_dir's sets
  run_job python -m elfs2t.bin.cache_features --encoder "$encoder" --mode "$feat_mode" "${feat_par[@]}" \
    --batch-size "$feat_batch_size" --manifest-dir "$manifest_dir" --sets "$@" --dump-dir dump $(force_flag)
}

# ---------------------------------------------------------------------------------------------------
# Stage 3, ELF-S2T: fetch the released checkpoint (init.denoiser of --conf, or --elf-init) into the Hugging Face
#   cache and test-load it into the model of --conf -> exp/elf_<tag>/fetch.json
# Stage 3, AR: the SentencePiece vocabulary of the training targets -> $vocab (its fresh LM is sized to it; a
#   pre-trained LM instead: --train-opts "ar.lm=<hub id or dir> ar.tokenizer=null")
stage_backbone() {
  local t text_sets=()
  done_dir=exp/.done/$tag
  if [ "$model" = elf ] && stage_begin 3 "ELF backbone (fetch and check the released checkpoint)" "$conf" -- \
      "elf_init=$elf_init" "train_opts=$train_opts"; then
    python -m elfs2t.bin.fetch_elf --conf "$conf" --report "exp/elf_$tag/fetch.json" "${train_overrides[@]}"
    stage_done 3
  fi
  if [ "$model" = ar ] && stage_begin 3 "AR vocabulary of the training targets (SentencePiece) -> $vocab" \
      "$manifest_dir/cuts_$train_set.jsonl.gz" -- "targets=${targets[*]}" "ar_vocab_size=$ar_vocab_size"; then
    for t in "${targets[@]}"; do text_sets+=(--set "$manifest_dir/cuts_$train_set.jsonl.gz=$t"); done
    python -m elfs2t.bin.export_text --out "$vocab.txt" "${ar_text_opts[@]}" "${text_sets[@]}"
    python -m elfs2t.bin.train_subword --text "$vocab.txt" --out-dir "$vocab" --vocab-size "$ar_vocab_size"
    stage_done 3
  fi
  return 0
}

# ---------------------------------------------------------------------------------------------------
# Stage 4: training (ELF-S2T: flow matching with audio forcing) -> exp/<tag>/ (torchrun over --ngpu x --num-nodes)
stage_train() {
  local inputs=("$conf" "dump/$feat_tag/$train_set/cuts.jsonl.gz" "dump/$feat_tag/$valid_set/cuts.jsonl.gz")
  done_dir=exp/.done/$tag
  [ -z "$speed_perturb" ] || inputs+=("dump/$feat_tag/${train_set}_sp/cuts.jsonl.gz")
  [ "$model" != ar ] || inputs+=("$vocab")   # the stage-3 vocabulary
  inputs+=("${extra_train_inputs[@]}")
  if stage_begin 4 "training (${what:+$what, }model $model_type) -> exp/$tag" "${inputs[@]}" -- \
      "target=${targets[*]}" "train_opts=$train_opts" "elf_init=$elf_init"; then
    stage_job 4 "training $tag" "exp/$tag/train.out" _train
  fi
}
_train() {
  OMP_NUM_THREADS=${train_threads_per_job:-${OMP_NUM_THREADS:-1}} run_job launch.sh --nproc "$nproc" \
    --num-nodes "$num_nodes" --node-rank "${node_rank:-0}" --rdzv-endpoint "${rdzv_endpoint:-localhost:29400}" \
    --rdzv-id "${rdzv_id:-elfs2t}" elfs2t.bin.train --conf "$conf" --exp-dir "exp/$tag" "${train_overrides[@]}" \
    || return
  # ELF-S2T with the auxiliary CTC: the token n-gram of its training texts (exp/<tag>/ngram.json), which
  # decode.draft.lm_weight fuses into the draft's prefix beam search (a model without the CTC skips it)
  [ "$model" != elf ] || run_job python -m elfs2t.bin.train_ngram --exp-dir "exp/$tag"
}

# ---------------------------------------------------------------------------------------------------
# Stage 5: decoding (ELF-S2T: the strategy of each decoding config; AR: greedy / beam) ->
#   exp/<tag>/decode_<inference_tag>/<decoded set>/{text,ref}, one folder per decoding config; the last config of
#   the list is recorded as the model's setting (exp/<tag>/decode_setting.yaml: transcribe, export)
stage_decode() {  # one job per decoding config, decoding the sets whose marker it lacks
  local dconf s name sets job_done_dirs
  for dconf in "${decode_conf_list[@]}"; do
    name=$(basename "$dconf" .yaml)
    sets=()
    for s in "${eval_sets[@]}"; do
      done_dir=exp/.done/$tag/decode_$name/$s
      if stage_begin 5 "decoding $s by $tag with $name" "exp/$tag/last.pt" "dump/$feat_tag/$s/cuts.jsonl.gz" \
          "$dconf" -- "target=${targets[*]}" "decode_opts=$decode_opts"; then
        sets+=("$s")
      fi
    done
    [ "${#sets[@]}" -gt 0 ] || continue
    job_done_dirs=("${sets[@]/#/exp/.done/$tag/decode_$name/}")  # the sets' markers, marked when the job succeeds
    stage_job 5 "decoding $tag with $name" "exp/$tag/decode_$name.out" _decode "$dconf" "${sets[@]}"
  done
  done_dir=exp/.done/$tag
}
_decode() {  # _decode CONF SET...: each decodes entry of the table with one decoding config, on these sets
  local dconf=$1 d s target name args record=()
  shift
  [ "$dconf" != "${decode_conf_list[-1]}" ] || record=(--record-setting)
  for d in "${decodes[@]}"; do
    IFS='|' read -r target name _ <<< "$d"
    args=(); for s in "$@"; do args+=(--set "$(decoded_name "$s" "$name")=dump/$feat_tag/$s/cuts.jsonl.gz"); done
    OMP_NUM_THREADS=${decode_threads_per_job:-${OMP_NUM_THREADS:-1}} run_job launch.sh --nproc "$nproc" \
      elfs2t.bin.decode --exp-dir "exp/$tag" --target "$target" "${args[@]}" --decode-conf "$dconf" "${record[@]}" \
      "${extra_decode_opts[@]}" || return  # (its exit status: 2 for a config error)
  done
}

decoded_name() {  # decoded_name SET NAME: the decoded set's name; NAME a suffix or "^FROM=TO" (the table, above)
  local from to
  if [[ "$2" == ^*=* ]]; then from=${2#^}; to=${from#*=}; from=${from%%=*}; echo "$to${1#"$from"}"
  else echo "$1$2"; fi
}

decoded_texts() {  # the decoded texts of the experiment, one a line
  local f; for f in exp/"$tag"/decode_*/*/text; do [ ! -f "$f" ] || echo "$f"; done
}

score_args() {  # score_args NAME: stage 6's --metric (and --normalizer) of a decoded set: its decodes entry's;
  local d s target name metric norm  # status 1 (nothing printed) when no entry of the table names the set
  for d in "${decodes[@]}"; do
    IFS='|' read -r target name metric norm <<< "$d"
    for s in "${eval_sets[@]}"; do
      if [ "$(decoded_name "$s" "$name")" = "$1" ]; then echo "--metric $metric${norm:+ --normalizer $norm}"; return; fi
    done
  done
  return 1
}

# ---------------------------------------------------------------------------------------------------
# Stage 6: scoring (WER/CER, BLEU/chrF) -> result.txt per decoded set; RESULTS.md (every experiment of the recipe)
stage_score() {
  local f dir args inputs
  done_dir=exp/.done/$tag
  mapfile -t inputs < <(decoded_texts)
  if stage_begin --redo-when-changed 6 "scoring $tag" "${inputs[@]}" -- "decodes=${decodes[*]}"; then
    for f in "${inputs[@]}"; do
      dir=${f%/text}
      # a set dropped from the table (an earlier --test-sets): its metric is unknown now, its result.txt stays
      args=$(score_args "$(basename "$dir")") || { log "stage 6: $dir is no set of this run's table: not rescored"; continue; }
      # shellcheck disable=SC2086  # --metric M [--normalizer N]
      python -m elfs2t.bin.score --hyp "$dir/text" --ref "$dir/ref" $args --out-dir "$dir"
    done
    if [ -n "${results_out-RESULTS.md}" ]; then
      python -m elfs2t.bin.score --results-table . --results-out "${results_out-RESULTS.md}"
      cat "${results_out-RESULTS.md}"
    fi
    stage_done 6
  fi
}

# ---------------------------------------------------------------------------------------------------
# Stage 7: analysis -> exp/<tag>/analysis/: the latent-space error analysis of every decoded set (report.md); for
#   ELF-S2T also the audio reliance of the first evaluated set (audio real / zero / noise / swapped x CFG scales of
#   the first decoding config: exp/<tag>/analysis/audio_reliance/<set>/reliance.md; finished decodes are reused)
stage_analysis() {
  local f inputs dirs=() space=()
  done_dir=exp/.done/$tag
  mapfile -t inputs < <(decoded_texts)
  if stage_begin --redo-when-changed 7 "analysis" "${inputs[@]}" "${decode_conf_list[0]:-}" -- \
      "analysis_space=$analysis_space" "decode_opts=$decode_opts"; then
    for f in "${inputs[@]}"; do dirs+=(--decode-dir "${f%/text}"); done
    [ "${#dirs[@]}" -gt 0 ] || die "stage 7: nothing decoded in exp/$tag (run stage 5 first)"
    [ "$model" != ar ] || space=(--text-space "$analysis_space")  # ELF-S2T brings its own latent space
    python -m elfs2t.bin.analyze "${dirs[@]}" "${space[@]}" --out-dir "exp/$tag/analysis" --no-progress
    if [ "$model" = elf ]; then
      python -m elfs2t.bin.audio_reliance --exp-dir "exp/$tag" --target "${decodes[0]%%|*}" \
        --set "${eval_sets[0]}=dump/$feat_tag/${eval_sets[0]}/cuts.jsonl.gz" --decode-conf "${decode_conf_list[0]}" \
        -- "${extra_decode_opts[@]}"
    fi
    stage_done 7
  fi
}
