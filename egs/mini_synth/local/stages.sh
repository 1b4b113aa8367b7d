#!/usr/bin/env bash
# The helper functions of egs/mini_synth/run.sh, by stage (sourced by run.sh after its options are parsed; they read
# its variables when called: the option values, asr_tag / st_tag, the thread counts).

# ---------------------------------------------------------------------------------------------------
# Stage 2 on: the sets stage 1 prepared; the per-model, joint and cascade markers; the tasks' targets and features
prepared_sets() {  # prepared_sets TASK SPLIT...: the <task>_<split> sets that stage 1 wrote, in order (others logged)
  local task=$1 s; shift
  for s in "$@"; do
    if [ -f "$manifest_dir/cuts_${task}_$s.jsonl.gz" ]; then echo "${task}_$s"
    else log_caller "skipping set ${task}_$s: stage 1 did not prepare it ($manifest_dir/cuts_${task}_$s.jsonl.gz)"; fi
  done
}
has_model() { [[ " $models " == *" $1 "* ]]; }
model_stage_begin() {  # model_stage_begin [--redo-when-changed] N MODEL DESC [INPUT... [-- SETTING...]]: stage_begin,
  local redo=(); [ "$1" != --redo-when-changed ] || { redo=("$1"); shift; }  # the model's markers
  local n=$1 m=$2 desc=$3; shift 3
  has_model "$m" || return 1
  done_dir=exp/.done/$m stage_begin "${redo[@]}" "$n" "$desc [$m]" "$@"
}
model_stage_done() { done_dir=exp/.done/$2 stage_done "$1"; }
joint_stage_begin() {  # joint_stage_begin [--redo-when-changed] N MODEL DESC [INPUT... [-- SETTING...]]: the joint
  local redo=(); [ "$1" != --redo-when-changed ] || { redo=("$1"); shift; }  # task's stage N of MODEL (own markers)
  local n=$1 m=$2 desc=$3; shift 3
  has_task joint && has_model "$m" || return 1
  done_dir=exp/.done/$m/joint stage_begin "${redo[@]}" "$n" "$desc [$m, joint]" "$@"
}
joint_stage_done() { done_dir=exp/.done/$2/joint stage_done "$1"; }
cascade_stage_begin() {  # cascade_stage_begin [--redo-when-changed] N DESC [INPUT... [-- SETTING...]]: the cascade's
  local redo=(); [ "$1" != --redo-when-changed ] || { redo=("$1"); shift; }  # stage N (a text ELF: model elf's markers)
  local n=$1 desc=$2; shift 2
  has_task cascade && has_model elf || return 1
  done_dir=exp/.done/elf/cascade stage_begin "${redo[@]}" "$n" "$desc [cascade]" "$@"
}
cascade_stage_done() { done_dir=exp/.done/elf/cascade stage_done "$1"; }
export_lm_text() {  # the English training text of both tasks (ASR transcripts, S2TT translations)
  python -m elfs2t.bin.export_text --out data/lm/train_text.txt --lowercase \
    --set "$manifest_dir/cuts_asr_train.jsonl.gz=transcript" --set "$manifest_dir/cuts_st_train.jsonl.gz=translation:en"
}
target_of() { if [ "$1" = asr ]; then echo transcript; else echo translation:en; fi; }  # asr or st
feat_tag_of() { if [ "$1" = asr ]; then echo "$asr_tag"; else echo "$st_tag"; fi; }

# ---------------------------------------------------------------------------------------------------
# Stage 4: one training, and the files its marker records
train_task() {  # train_task MODEL TASK: one stage-4 training
  local m=$1 task=$2 conf_file=$conf/train_$2.yaml
  local init=() data=()
  [ "$m" = ar ] && conf_file=$conf/train_${task}_ar.yaml
  if [ "$task" = asr ] && [ -n "$asr_speed_perturb" ]; then  # the speed-perturbed copies beside the originals
    data=("data.train=[{cuts: dump/$asr_tag/asr_train/cuts.jsonl.gz, target: transcript},
      {cuts: dump/$asr_tag/asr_train_sp/cuts.jsonl.gz, target: transcript}]")
  fi
  if [ "$m" = elf ] && [ -n "$elf_init" ]; then
    init=("init.denoiser=$elf_init"); [ "$elf_init" = text ] && init=("init.denoiser=exp/elf_text")
  fi
  # shellcheck disable=SC2086  # --train-opts is a list of overrides
  OMP_NUM_THREADS=$job_threads run_job launch.sh --nproc "$nproc" --num-nodes "$num_nodes" elfs2t.bin.train \
    --conf "$conf_file" --exp-dir "exp/${task}_$m" "${init[@]}" "${data[@]}" $train_opts
}
train_inputs() {  # train_inputs MODEL TASK...: the files stage 4 trains MODEL from, one a line (its marker records them)
  local m=$1 task data tag vocab=data/token_list/en; shift
  for task in "$@"; do
    data=$task; [ "$task" = joint ] && data=st vocab=data/token_list/de_en  # the German audio
    tag=$(feat_tag_of "$data")
    if [ "$m" = ar ]; then echo "$conf/train_${task}_ar.yaml"; else echo "$conf/train_$task.yaml"; fi
    echo "dump/$tag/${data}_train/cuts.jsonl.gz"; echo "dump/$tag/${data}_dev/cuts.jsonl.gz"
    if [ "$task" = asr ] && [ -n "$asr_speed_perturb" ]; then echo "dump/$tag/asr_train_sp/cuts.jsonl.gz"; fi
  done
  if [ "$m" = ar ]; then echo "$vocab"; elif [ "$elf_init" = text ]; then echo exp/elf_text/last.pt; fi
}

# ---------------------------------------------------------------------------------------------------
# Stage 5: the decoding configs of a model and task, one decode each; the markers per config; Whisper zero-shot
decode_sets_of() {  # decode_sets_of NAME SRC SETS...: --set NAME_<s>=<features of SRC_<s>> for the prepared sets
  local name=$1 src=$2 s tag; shift 2
  tag=$(feat_tag_of "$src")
  for s in $(prepared_sets "$src" "$@"); do echo "--set ${name}_${s#"${src}"_}=dump/$tag/$s/cuts.jsonl.gz"; done
}
confs_of() {  # confs_of MODEL TASK: the decoding configs of MODEL for TASK (asr or st), in order
  if [ "$1" = ar ]; then echo "$ar_decode_confs"; elif [ "$2" = asr ]; then echo "$decode_confs $asr_decode_confs"
  else echo "$decode_confs"; fi
}
decode_run() {  # decode_run MODEL EXP TARGET TASK PENDING SET_ARGS...: the configs of MODEL for TASK that are in
  local m=$1 exp=$2 target=$3 confs conf opts record; shift 3  # PENDING (space-separated), in turn
  read -r -a confs <<< "$(confs_of "$m" "$1")"
  local pending=" $2 "; shift 2
  opts=$decode_opts; [ "$m" = ar ] && opts=$ar_decode_opts
  for conf in "${confs[@]}"; do
    [[ "$pending" == *" $conf "* ]] || continue
    # the model's own setting (exp/<tag>/decode_setting.yaml: what transcribe and export use): the last config
    # (by default ELF-S2T ASR the rescored draft, S2TT the draft, AR beam 4)
    record=(); [ "$conf" = "${confs[-1]}" ] && record=(--record-setting)
    # shellcheck disable=SC2086  # --decode-opts is a list of decode.* overrides
    OMP_NUM_THREADS=$job_threads_nj run_job python -m elfs2t.bin.decode --exp-dir "$exp" --target "$target" "$@" \
      --decode-conf "$conf" "${record[@]}" $opts || return 1
  done
}
decode_inputs() {  # decode_inputs MODEL TASK...: the checkpoints and cuts stage 5 decodes with, one a line
  local m=$1 task s; shift
  for task in "$@"; do
    echo "exp/${task}_$m/last.pt"
    [ "$task" = joint ] && task=st  # the German audio
    for s in $decode_sets; do echo "dump/$(feat_tag_of "$task")/${task}_$s/cuts.jsonl.gz"; done
  done
}
decode_task() {  # decode_task MODEL TASK PENDING: the pending decoding configs of one task (joint: both of its tasks)
  local m=$1 task=$2 pending=$3
  # shellcheck disable=SC2046  # decode_sets_of prints --set arguments
  case "$task" in
    asr) decode_run "$m" exp/asr_$m transcript asr "$pending" $(decode_sets_of asr asr $decode_sets) ;;
    st) decode_run "$m" exp/st_$m translation:en st "$pending" $(decode_sets_of st st $decode_sets) ;;
    joint) decode_run "$m" exp/joint_$m transcript asr "$pending" $(decode_sets_of asr_de st $decode_sets) \
             && decode_run "$m" exp/joint_$m translation:en st "$pending" $(decode_sets_of st st $decode_sets) ;;
  esac
}
model_confs() {  # model_confs MODEL TASK...: the decoding configs MODEL decodes TASK... with (joint: asr and st)
  local m=$1 task; shift
  for task in "$@"; do
    if [ "$task" = joint ]; then confs_of "$m" asr; confs_of "$m" st; else confs_of "$m" "$task"; fi
  done | xargs -r -n 1 | awk '!seen[$0]++'
}
conf_done_dir() {  # conf_done_dir MODEL joint|single CONF: the marker folder of one decoding config's stage 5
  if [ "$2" = joint ]; then echo "exp/.done/$1/joint/decode_$(basename "$3" .yaml)"
  else echo "exp/.done/$1/decode_$(basename "$3" .yaml)"; fi
}
begin_confs() {  # begin_confs MODEL TASK...: pending= the decoding configs whose stage 5 runs (stage_begin for each)
  local m=$1 conf kind=single what inputs; shift
  pending=()
  [ "$1" != joint ] || kind=joint
  if [ "$kind" = joint ]; then what="[$m, joint]"; else what="($*) [$m]"; fi
  mapfile -t inputs < <(decode_inputs "$m" "$@")
  for conf in $(model_confs "$m" "$@"); do
    if done_dir=$(conf_done_dir "$m" "$kind" "$conf") stage_begin 5 "decoding $(basename "$conf" .yaml) $what" \
        "${inputs[@]}" "$conf" -- "decode_opts=$([ "$m" = ar ] && echo "$ar_decode_opts" || echo "$decode_opts")"; then
      pending+=("$conf")
    fi
  done
}
decode_single_tasks() {  # stage 5 of ELF-S2T and AR on the single tasks: per model, the configs not yet decoded
  for m in elf ar; do
    has_model "$m" && [ -n "$single_tasks" ] || continue
    # shellcheck disable=SC2086  # the task list
    begin_confs "$m" $single_tasks
    [ "${#pending[@]}" -gt 0 ] || continue
    jobs_init "$nj"  # the tasks at once (--nj), each with its output in exp/<task>_<m>/decode.out
    for task in $single_tasks; do
      jobs_run "decoding ${task}_$m" "exp/${task}_$m/decode.out" decode_task "$m" "$task" "${pending[*]}"
    done
    jobs_wait "stage 5: decoding"
    for conf in "${pending[@]}"; do done_dir=$(conf_done_dir "$m" single "$conf") stage_done 5; done
  done
}
decode_joint() {  # stage 5 of the joint models: per model, the configs not yet decoded; both models at once
  has_task joint || return 0
  jobs_init "$nj"  # the models' joint decodes at once, output in exp/joint_<m>/decode.out
  joint_pending=()
  for m in elf ar; do
    has_model "$m" || continue
    begin_confs "$m" joint
    [ "${#pending[@]}" -gt 0 ] || continue
    jobs_run "decoding joint_$m" "exp/joint_$m/decode.out" decode_task "$m" joint "${pending[*]}"
    for conf in "${pending[@]}"; do joint_pending+=("$m $conf"); done
  done
  jobs_wait "stage 5: joint decoding"
  for mc in "${joint_pending[@]}"; do done_dir=$(conf_done_dir "${mc% *}" joint "${mc#* }") stage_done 5; done
}
whisper_task() {  # whisper_task NAME SRC TARGET ARGS...: Whisper zero-shot on the prepared SRC_<set> sets
  local name=$1 src=$2 target=$3 s sets=(); shift 3
  for s in $(prepared_sets "$src" $whisper_sets); do sets+=(--set "${name}_${s#"${src}"_}=$manifest_dir/cuts_$s.jsonl.gz"); done
  OMP_NUM_THREADS=$train_threads run_job python -m elfs2t.bin.whisper_decode "$@" --target "$target" \
    --beam-size "$whisper_beam" "${sets[@]}"
}

# ---------------------------------------------------------------------------------------------------
# Stage 6: scoring
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
single_task_texts() {  # single_task_texts MODEL: the decoded texts of MODEL's single-task experiments (not joint's,
  local task          # cascade's or the text model's: their stages have markers of their own)
  if [ "$1" = whisper ]; then texts_of exp/whisper_*/decode_*/*/text | grep -v '/asr_de_[^/]*/text$'; return 0; fi
  for task in $single_tasks; do texts_of exp/"${task}_$1"/decode_*/*/text; done
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
  for task in $single_tasks; do
    [ -f "exp/${task}_elf/config.yaml" ] || continue
    jobs_run "audio reliance of ${task}_elf" "exp/${task}_elf/analysis/audio_reliance.out" reliance "$task"
  done
}
analyze() {  # analyze OUT_DIR DECODE_DIR_ARGS...: one error-analysis report
  local out=$1; shift
  OMP_NUM_THREADS=$job_threads_nj python -m elfs2t.bin.analyze "$@" "${analysis_args[@]}" --out-dir "$out"
}
reliance() {  # reliance TASK: the audio reliance of ELF-S2T on the test set of TASK
  # shellcheck disable=SC2086  # --decode-opts is a list of decode.* overrides, the CFG scales a list
  OMP_NUM_THREADS=$job_threads_nj run_job python -m elfs2t.bin.audio_reliance --exp-dir "exp/$1_elf" \
    --target "$(target_of "$1")" --set "$1_test=dump/$(feat_tag_of "$1")/$1_test/cuts.jsonl.gz" \
    --decode-conf "$reliance_conf" $decode_opts --guidance $reliance_guidance
}
