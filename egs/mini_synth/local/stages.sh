#!/usr/bin/env bash
# The helper functions of egs/mini_synth/run.sh (sourced after its options are parsed; they read its variables when
# called: the option values, asr_tag / st_tag, the thread counts). The stages of each ELF-S2T or AR experiment are
# those of every recipe (utils/recipe_stages.sh), run with the table of in_experiment; what is mini_synth's own --
# Whisper zero-shot, the text ELF and the cascade, the analysis across experiments -- is here.

# ---------------------------------------------------------------------------------------------------
# The sets, models and tasks asked for; stages with markers of their own (exp/.done/<scope>/)
prepared_sets() {  # prepared_sets TASK SPLIT...: the <task>_<split> sets that stage 1 wrote, in order (others logged)
  local task=$1 s; shift
  for s in "$@"; do
    if [ -f "$manifest_dir/cuts_${task}_$s.jsonl.gz" ]; then echo "${task}_$s"
    else log_caller "skipping set ${task}_$s: stage 1 did not prepare it ($manifest_dir/cuts_${task}_$s.jsonl.gz)"; fi
  done
}
has_model() { [[ " $models " == *" $1 "* ]]; }
has_task() { [[ " $tasks " == *" $1 "* ]]; }
stage_begin_in() {  # stage_begin_in SCOPE [--redo-when-changed] N DESC [INPUT... [-- SETTING...]]: stage_begin with
  local scope=$1; shift  # the markers in exp/.done/SCOPE (e.g. elf, ar/joint, whisper, elf/cascade)
  done_dir=exp/.done/$scope stage_begin "$@"
}
stage_done_in() { done_dir=exp/.done/$1 stage_done "$2"; }  # stage_done_in SCOPE N
feat_tag_of() { if [ "$1" = asr ]; then echo "$asr_tag"; else echo "$st_tag"; fi; }  # asr or st
export_lm_text() {  # the English training text of both tasks (ASR transcripts, S2TT translations)
  python -m elfs2t.bin.export_text --out data/lm/train_text.txt --lowercase \
    --set "$manifest_dir/cuts_asr_train.jsonl.gz=transcript" --set "$manifest_dir/cuts_st_train.jsonl.gz=translation:en"
}

# ---------------------------------------------------------------------------------------------------
# Stages 2 and 4-6 of ELF-S2T and the AR: utils/recipe_stages.sh with mini_synth's table
features() {  # features ENCODER TAG SPEED_PERTURB SET...: stage 2 for one encoder; the first SET is the training set
  local encoder=$1 feat_tag=$2 speed_perturb=$3 train_set=$4 done_dir; shift 3  # (copies at SPEED_PERTURB if any)
  local feat_sets=("$@")
  stage_features
}
noisy_features() {  # noisy_features ENCODER TAG SET: stage 2 for one noisy test set, with its own marker
  local encoder=$1 feat_tag=$2 set_name=$3  # (exp/.done/noise/SET/: the other sets' caching is not redone)
  if stage_begin_in "noise/$set_name" 2 "Whisper feature caching of $set_name ($feat_tag)" \
      "$manifest_dir/cuts_$set_name.jsonl.gz" -- "encoder=$encoder" "feat_mode=$feat_mode"; then
    cache_sets "$set_name"
    stage_done_in "noise/$set_name" 2
  fi
}
in_experiment() {  # in_experiment TASK MODEL FUNC...: the stage functions FUNC... for exp/<task>_<model> (asr, st:
  local task=$1 model=$2 data=$1; shift 2  # the English / German audio; joint: the German audio's two targets)
  [ "$task" != joint ] || data=st
  # the table (utils/recipe_stages.sh), local: the stage functions see it, the recipe's options stay as they are
  local tag=${task}_$model what=$task feat_tag train_set=${data}_train valid_set=${data}_dev conf vocab=data/token_list/en
  local speed_perturb="" init_denoiser="" eval_sets=() targets=() decodes=() extra_train_overrides=()
  local extra_train_inputs=() decode_confs=$decode_confs decode_opts=$decode_opts results_out=""
  local train_threads_per_job=$job_threads decode_threads_per_job=$job_threads_nj
  local train_overrides decode_conf_list extra_train_opts extra_decode_opts nproc model_type done_dir
  feat_tag=$(feat_tag_of "$data")
  read -r -a eval_sets <<< "$(if [ "$data" = asr ]; then echo "$asr_eval_sets"; else echo "$st_eval_sets"; fi)"
  case "$task" in
    asr) targets=(transcript) decodes=("transcript||wer|$wer_normalizer") speed_perturb=$asr_speed_perturb
         decode_confs="$asr_decode_confs $decode_confs" ;;  # the last --decode-confs: the recorded setting
    st) targets=(translation:en) decodes=("translation:en||bleu|$wer_normalizer") ;;
    joint) targets=(transcript translation:en) vocab=data/token_list/de_en
           # German WER with the strip_accents normaliser: MiniLM, ELF-S2T's text space, has no umlauts
           decodes=("transcript|^st_=asr_de_|wer|strip_accents" "translation:en||bleu|$wer_normalizer") ;;
  esac
  if [ "$model" = ar ]; then
    conf=$conf_dir/train_${task}_ar.yaml decode_confs=$ar_decode_confs decode_opts=$ar_decode_opts
  else
    conf=$conf_dir/train_$task.yaml
    if [ "$elf_init" = text ]; then init_denoiser=exp/elf_text extra_train_inputs=(exp/elf_text/last.pt)
    else init_denoiser=$elf_init; fi
  fi
  experiment_init
  local f; for f in "$@"; do "$f"; done
}
experiments() {  # the task / model pairs of --tasks and --models that stages 4-6 train, decode and score
  local task m
  for task in $tasks; do
    [ "$task" != cascade ] || continue
    for m in elf ar; do if has_model "$m"; then echo "$task $m"; fi; done
  done
}
each_experiment() {  # each_experiment JOBS WHAT FUNC...: FUNC... for every experiment, at most JOBS jobs at once
  local jobs=$1 what=$2 e task m exps=(); shift 2
  local recipe_jobs=true
  mapfile -t exps < <(experiments)
  jobs_init "$jobs"
  for e in "${exps[@]}"; do read -r task m <<< "$e"; in_experiment "$task" "$m" "$@"; done
  jobs_wait "$what"
}

# ---------------------------------------------------------------------------------------------------
# Stage 5: Whisper zero-shot
whisper_task() {  # whisper_task NAME SRC TARGET ARGS...: Whisper zero-shot on the prepared SRC_<set> sets
  local name=$1 src=$2 target=$3 s sets=(); shift 3
  for s in $(prepared_sets "$src" $whisper_sets); do sets+=(--set "${name}_${s#"${src}"_}=$manifest_dir/cuts_$s.jsonl.gz"); done
  OMP_NUM_THREADS=$train_threads run_job python -m elfs2t.bin.whisper_decode "$@" --target "$target" \
    --beam-size "$whisper_beam" "${sets[@]}"
}

# ---------------------------------------------------------------------------------------------------
# Stage 6: scoring the decodes of Whisper zero-shot and of the cascade
score_decodes() {  # score_decodes SET_GLOB DECODE_DIR_GLOB...: result.txt in every decoded set folder matching
  local sets=$1 dir metric norm; shift
  for dir in "$@"; do
    [ -f "$dir/text" ] || continue
    # shellcheck disable=SC2254  # SET_GLOB is a pattern
    case "$(basename "$dir")" in $sets) ;; *) continue ;; esac
    case "$(basename "$dir")" in
      asr_de_*) metric=wer norm=strip_accents ;;
      asr_*) metric=wer norm=$wer_normalizer ;;
      *) metric=bleu norm=$wer_normalizer ;;
    esac
    python -m elfs2t.bin.score --hyp "$dir/text" --ref "$dir/ref" --metric "$metric" \
      --normalizer "$norm" --out-dir "$dir" >/dev/null
  done
}
texts_of() {  # texts_of GLOB...: the decoded texts (<decode folder>/text) that exist, one a line
  local f; for f in "$@"; do [ -f "$f" ] && echo "$f"; done; return 0
}

# ---------------------------------------------------------------------------------------------------
# Stage 7: one error-analysis report; the audio reliance of one task's ELF-S2T
analysis_jobs() {  # stage 7's jobs: a report per experiment, ASR vs S2TT per model, ELF-S2T's audio reliance
  for exp_dir in exp/*/; do
    exp_dir=${exp_dir%/}
    [ "$exp_dir" != exp/mt_elf ] || continue  # a text-to-text model (its inputs are no audio): nothing to analyse
    dirs=()
    for d in "$exp_dir"/decode_*/*_test "$exp_dir"/decode_*/*_test_unseen; do
      case "$(basename "$d")" in asr_de_*) continue ;; esac  # German: the word lists (--vocab-text) are English
      [ -f "$d/text" ] && dirs+=(--decode-dir "$d")
    done
    [ "${#dirs[@]}" -gt 0 ] || continue
    jobs_run "analysis of $exp_dir" "$exp_dir/analysis/analyze.out" analyze "$exp_dir/analysis" "${dirs[@]}"
  done
  for m in elf ar; do
    dirs=()
    for d in exp/asr_$m/decode_*/; do
      inf=$(basename "$d")
      if [ -f "$d/asr_test/text" ] && [ -f "exp/st_$m/$inf/st_test/text" ]; then
        dirs+=(--decode-dir "${d}asr_test" --decode-dir "exp/st_$m/$inf/st_test")
      fi
    done
    [ "${#dirs[@]}" -gt 0 ] || continue
    jobs_run "ASR vs S2TT analysis ($m)" "exp/analysis/asr_vs_st_$m/analyze.out" analyze "exp/analysis/asr_vs_st_$m" "${dirs[@]}"
  done
  for task in asr st; do
    has_task "$task" && [ -f "exp/${task}_elf/config.yaml" ] || continue
    jobs_run "audio reliance of ${task}_elf" "exp/${task}_elf/analysis/audio_reliance.out" reliance "$task"
  done
}
analyze() {  # analyze OUT_DIR DECODE_DIR_ARGS...: one error-analysis report
  local out=$1; shift
  OMP_NUM_THREADS=$job_threads_nj python -m elfs2t.bin.analyze "$@" "${analysis_args[@]}" --out-dir "$out"
}
reliance() {  # reliance TASK: the audio reliance of ELF-S2T on the test set of TASK
  local target=transcript; [ "$1" = asr ] || target=translation:en
  # shellcheck disable=SC2086  # --decode-opts is a list of decode.* overrides, the CFG scales a list
  OMP_NUM_THREADS=$job_threads_nj run_job python -m elfs2t.bin.audio_reliance --exp-dir "exp/$1_elf" \
    --target "$target" --set "$1_test=dump/$(feat_tag_of "$1")/$1_test/cuts.jsonl.gz" \
    --decode-conf "$reliance_conf" $decode_opts --guidance $reliance_guidance
}
