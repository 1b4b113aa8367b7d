#!/usr/bin/env bash
# mini_synth: the offline default recipe. A small corpus is synthesized with espeak-ng (stage 0) in the
# on-disk formats of LibriSpeech and Common Voice + CoVoST 2, then the real recipes' preparation runs on it.
# ASR (en) and S2TT (de -> en). Stages (docs/design.md §4.1):
#   0 synthesize the corpus   1 data preparation   2 Whisper feature caching   3 ELF backbone (pre-train)
#   4 training                5 decoding           6 scoring                   7 analysis
# Usage: ./run.sh [--stage N] [--stop-stage M] [options]   (./run.sh --help lists them)
set -euo pipefail
cd "$(dirname "$0")"
. ./path.sh
. ./cmd.sh
. ./db.sh

stage=0               # first stage to run
stop_stage=7          # last stage to run (7: analysis)
force=false           # redo stages even when their done markers exist
nj=2                  # parallel jobs (synthesis, data preparation, feature caching; stages 5 and 7: tasks at once)
ngpu=0                # GPUs per node (0: CPU)
num_nodes=1           # nodes for training (torchrun rendezvous)
conf=conf             # config folder: pretrain_text.yaml, train_<task>[_ar].yaml
train_opts=""         # config overrides for every stage-3/4 training, e.g. "train.max_steps=1000 train.max_minutes=10"
ar_vocab_size=1000    # stage 3 (ar): SentencePiece BPE pieces of the AR baseline's vocabulary (data/token_list/en)
seed=0                # corpus synthesis seed
num_train=3000        # synthesized training utterances (per task)
num_dev=200           # dev utterances
num_test=200          # test utterances (seen voices)
num_test_unseen=200   # test utterances (unseen voices)
num_test_gen=200      # generalisation test utterances (seen voices): new sentence structures, training vocabulary
num_test_gen_unseen=200   # generalisation test utterances (unseen voices)
manifest_dir=data/manifests
asr_speed_perturb="0.9 1.1"   # speed factors for the ASR training set ("": none): stage 2 writes the perturbed
                              # cuts (asr_train_sp) and caches them, stage 4 trains on both sets
speed_perturb_per_cut=one     # one: one copy per cut, factor drawn per cut; all: one copy per factor
asr_encoder=$MAIN_ROOT/tools/models/whisper-base      # Whisper for ASR features (hub id or local dir; base: fewer
                                                      # errors on unseen voices than tiny.en, HISTORY.md session 6)
st_encoder=$MAIN_ROOT/tools/models/whisper-tiny.en    # Whisper for S2TT features (tiny.en: as good as base here, 4x cheaper)
feat_mode=trim        # trim: encode only the needed frames; pad30: pad to 30 s as Whisper was trained
tasks="asr st"        # which tasks stages 4-6 train, decode and score: asr (English), st (de -> en), joint (one
                      # model for the German audio's transcript and translation, with task tokens), cascade (the
                      # joint models' German transcripts translated by a text-to-text ELF)
models="elf"          # which models stages 3-6 build: elf (ELF-S2T), ar (AR baseline), whisper (zero-shot)
elf_init=""           # ELF-S2T denoiser init: "" from scratch (measured best here), "text" the stage-3 text ELF
                      # (stage 3 trains it: exp/elf_text), or an ELF checkpoint (file, dir or hub id)
train_threads=2       # torch threads per training / decoding process
train_nproc=1         # training processes (torchrun when > 1)
train_jobs=2          # tasks trained at the same time in stage 4, sharing the --train-threads threads
decode_opts="decode.strategy=flow decode.flow.steps=4;decode.strategy=readout;decode.strategy=draft"
                      # ELF-S2T decoding settings, ';' between settings: one decode (and table row) each: the
                      # flow from noise (4 steps, g 1; slots and length from the CTC alignment), the readout of
                      # noise with no flow step (the bar the flow must clear), the CTC draft
asr_decode_opts="decode.strategy=rescore"
                      # ELF-S2T settings for ASR only, after --decode-opts: the draft rescored by both readouts
                      # (on S2TT it cost 0.7-1.4 BLEU: it drops words)
reliance_opts="decode.strategy=flow decode.flow.steps=4"   # the decoding whose CFG scale stage 7 sweeps
ar_decode_opts="decode.beam_size=1;decode.beam_size=4"   # AR baseline decoding settings, ';' between them
mt_decode_opts="sampler.steps=16 sampler.guidance=1"     # the cascade's text ELF: sampler overrides (one setting)
decode_sets="dev test test_unseen gen_test gen_test_unseen"   # sets decoded by ELF-S2T and AR (prefixed asr_/st_;
                                                               # sets that stage 1 did not prepare are skipped)
asr_whisper=$MAIN_ROOT/tools/models/whisper-tiny.en  # Whisper zero-shot ASR baseline (transcribe)
st_whisper=$MAIN_ROOT/tools/models/whisper-base      # Whisper zero-shot S2TT baseline (translate de -> en)
whisper_beam=1        # Whisper zero-shot beam size (1: greedy)
whisper_sets="test test_unseen gen_test gen_test_unseen"      # sets decoded by Whisper zero-shot
wer_normalizer=default  # scoring normaliser for WER: default, or whisper_en (numbers as digits, as Whisper writes them)

help_message="Usage: $0 [options]
mini_synth recipe: synthesized ASR (en) and S2TT (de->en), CPU-only, offline. Options (default in parentheses):
  --stage N              first stage to run ($stage)
  --stop-stage M         last stage to run ($stop_stage)
  --force true|false     redo finished stages ($force)
  --nj N                 parallel jobs: synthesis, data preparation, feature caching; the tasks of stages 5 and 7
                         at once, each with --train-threads / N threads ($nj)
  --ngpu N               GPUs per node, 0 for CPU ($ngpu)
  --num-nodes N          nodes for training ($num_nodes)
  --conf DIR             config folder, e.g. a copy of conf/ with bigger models ($conf)
  --train-opts "..."     overrides for stages 3-4 (pre-training and training), e.g. "train.max_steps=500" ($train_opts)
  --ar-vocab-size N      stage 3 (ar): pieces of the AR baseline's SentencePiece vocabulary ($ar_vocab_size)
  --seed N               corpus synthesis seed ($seed)
  --num-train N          training utterances ($num_train)
  --num-dev N            dev utterances ($num_dev)
  --num-test N           test utterances, seen voices ($num_test)
  --num-test-unseen N    test utterances, unseen voices ($num_test_unseen)
  --num-test-gen N       generalisation test utterances (sets <task>_gen_test): the training vocabulary in
                         sentence structures the training grammar never produces, seen voices ($num_test_gen)
  --num-test-gen-unseen N  the same with unseen voices (sets <task>_gen_test_unseen) ($num_test_gen_unseen)
  --manifest-dir DIR     stage-1 output ($manifest_dir)
  --asr-speed-perturb \"...\"  speed factors for extra ASR training copies, \"\" for none ($asr_speed_perturb)
  --speed-perturb-per-cut one|all  one copy per cut with a drawn factor, or one per factor ($speed_perturb_per_cut)
  --asr-encoder DIR|ID   Whisper for ASR features ($asr_encoder)
  --st-encoder DIR|ID    Whisper for S2TT features ($st_encoder)
  --feat-mode MODE       trim or pad30 ($feat_mode)
  --tasks \"asr st joint\"  tasks to train / decode / score ($tasks): asr = English ASR (exp/asr_<m>), st = de->en
                         S2TT (exp/st_<m>), joint = one model with task tokens for the German audio's transcript
                         and translation (conf/train_joint[_ar].yaml, exp/joint_<m>; decoded as asr_de_<set> and
                         st_<set>, German WER with the strip_accents normaliser); its stages have markers of their
                         own (exp/.done/<model>/joint/), so adding it later runs only it; cascade = a text-to-text
                         ELF (conf/train_mt.yaml, exp/mt_elf) translating the joint models' German transcripts
                         (exp/cascade_<m>) and the reference transcripts (exp/mt_elf), needs joint (markers in
                         exp/.done/elf/cascade/)
  --models \"elf ar whisper\"  models of stages 3-6 ($models): elf = ELF-S2T (exp/<task>_elf; stage 3
                         text ELF exp/elf_text with --elf-init text), ar = AR speech-LLM baseline (stage 3
                         SentencePiece vocabulary data/token_list/en, exp/<task>_ar), whisper = Whisper zero-shot
                         (stage 5 only, exp/whisper_<name>)
  --elf-init SRC         ELF-S2T denoiser init: \"\" = from scratch, text = the stage-3 text ELF, or an ELF
                         checkpoint (file, dir, hub id) ($elf_init)
  --train-threads N      torch threads per training / decoding process ($train_threads)
  --train-nproc N        training processes, torchrun when > 1 ($train_nproc)
  --train-jobs N         tasks trained at the same time in stage 4, each with --train-threads / N threads
                         (at least 1) and its output in exp/<task>_<model>/train.out ($train_jobs)
  --decode-opts \"...\"    ELF-S2T decoding settings separated by ';', each a list of decode.* overrides
                         ($decode_opts)
  --asr-decode-opts \"...\" ELF-S2T decoding settings for the ASR task only, after --decode-opts
                         ($asr_decode_opts)
  --reliance-opts \"...\" the ELF-S2T decoding that stage 7's audio-reliance diagnostics sweep over CFG scales
                         ($reliance_opts)
  --ar-decode-opts \"...\" AR decoding settings separated by ';' ($ar_decode_opts)
  --mt-decode-opts \"...\" sampler.* overrides of the cascade's text ELF ($mt_decode_opts)
                         Stage 5 records each model's own setting for transcribe / export
                         (exp/<task>_<model>/decode_setting.yaml): the last setting decoded for the task
                         (a joint model: the last --decode-opts / --ar-decode-opts setting, for both tasks)
  --decode-sets \"...\"    sets decoded by ELF-S2T and AR, without the asr_/st_ prefix ($decode_sets)
  --asr-whisper DIR|ID   Whisper for the zero-shot ASR baseline ($asr_whisper)
  --st-whisper DIR|ID    multilingual Whisper for the zero-shot S2TT baseline ($st_whisper)
  --whisper-beam N       Whisper zero-shot beam size, 1 = greedy ($whisper_beam)
  --whisper-sets \"...\"   sets decoded by Whisper zero-shot ($whisper_sets)
  --wer-normalizer NAME  normaliser before WER, the same for every model: default or whisper_en ($wer_normalizer)
Stages 3-6 keep their done markers per model (exp/.done/<model>/stageN): adding a model later runs only
it. Stage 6 always rewrites the comparison table exp/results.md.
Corpus folder: MINI_SYNTH in db.sh ($MINI_SYNTH)."

. "$MAIN_ROOT/utils/parse_options.sh"
. "$MAIN_ROOT/utils/stage.sh"
. "$MAIN_ROOT/utils/jobs.sh"
[[ "$nj" =~ ^[1-9][0-9]*$ ]] || die "--nj must be a positive integer, got '$nj'"
[[ "$train_jobs" =~ ^[1-9][0-9]*$ ]] || die "--train-jobs must be a positive integer, got '$train_jobs'"
for m in $models; do
  case "$m" in elf|ar|whisper) ;; *) die "--models: unknown model '$m' (elf, ar, whisper)" ;; esac
done
for t in $tasks; do
  case "$t" in asr|st|joint|cascade) ;; *) die "--tasks: unknown task '$t' (asr, st, joint, cascade)" ;; esac
done
single_tasks=$(for t in $tasks; do case "$t" in asr|st) echo "$t" ;; esac; done | xargs)  # a model each
has_task() { [[ " $tasks " == *" $1 "* ]]; }

# ---------------------------------------------------------------------------------------------------
# Stage 0: synthesize the corpus into $MINI_SYNTH
# (Each stage's marker records its inputs and settings, the files and values after the description; a stage
# done with other inputs stops the recipe instead of being skipped: utils/stage.sh.)
if stage_begin 0 "synthesize the mini_synth corpus" -- "seed=$seed" "num_train=$num_train" "num_dev=$num_dev" \
    "num_test=$num_test" "num_test_unseen=$num_test_unseen" "num_test_gen=$num_test_gen" \
    "num_test_gen_unseen=$num_test_gen_unseen" "MINI_SYNTH=$MINI_SYNTH"; then
  python -m elfs2t.bin.make_mini_synth --output-dir "$MINI_SYNTH" --seed "$seed" --num-train "$num_train" \
    --num-dev "$num_dev" --num-test "$num_test" --num-test-unseen "$num_test_unseen" \
    --num-test-gen "$num_test_gen" --num-test-gen-unseen "$num_test_gen_unseen" --nj "$nj"
  stage_done 0
fi

# ---------------------------------------------------------------------------------------------------
# Stage 1: data preparation with the LibriSpeech and CoVoST 2 code ->
#   $manifest_dir/cuts_{asr,st}_{train,dev,test,test_unseen}.jsonl.gz, and from the generalisation corpus (the
#   same layouts in $MINI_SYNTH/gen) cuts_{asr,st}_{gen_test,gen_test_unseen}.jsonl.gz
if stage_begin 1 "data preparation" "$MINI_SYNTH/LibriSpeech" "$MINI_SYNTH/cv/de/validated.tsv" \
    "$MINI_SYNTH/covost/covost_v2.de_en.tsv" "$MINI_SYNTH/gen" -- "manifest_dir=$manifest_dir" "num_test_gen=$num_test_gen" \
    "num_test_gen_unseen=$num_test_gen_unseen"; then
  gen_parts=() gen_splits=()   # the generalisation corpus' parts and splits that were asked for
  [ "$num_test_gen" -gt 0 ] && gen_parts+=(test-clean) gen_splits+=(test)
  [ "$num_test_gen_unseen" -gt 0 ] && gen_parts+=(test-other) gen_splits+=(test_unseen)
  [ "${#gen_parts[@]}" -eq 0 ] || [ -d "$MINI_SYNTH/gen" ] || die "no generalisation sets in $MINI_SYNTH/gen (a \
corpus synthesized before they existed?): run stage 0 again (--stage 0 --force true synthesizes only them, the other \
files stay) or pass --num-test-gen 0 --num-test-gen-unseen 0"
  python -m elfs2t.bin.prepare_data librispeech --corpus-dir "$MINI_SYNTH/LibriSpeech" --output-dir "$manifest_dir" \
    --parts train-clean-100 dev-clean test-clean test-other \
    --set-name train-clean-100=asr_train --set-name dev-clean=asr_dev \
    --set-name test-clean=asr_test --set-name test-other=asr_test_unseen --nj "$nj" $(force_flag)
  python -m elfs2t.bin.prepare_data covost2 --cv-dir "$MINI_SYNTH/cv/de" \
    --covost-tsv "$MINI_SYNTH/covost/covost_v2.de_en.tsv" --src-lang de --tgt-lang en --prefix st \
    --splits train dev test test_unseen --output-dir "$manifest_dir" --nj "$nj" $(force_flag)
  if [ "${#gen_parts[@]}" -gt 0 ]; then
    python -m elfs2t.bin.prepare_data librispeech --corpus-dir "$MINI_SYNTH/gen/LibriSpeech" \
      --output-dir "$manifest_dir" --parts "${gen_parts[@]}" --set-name test-clean=asr_gen_test \
      --set-name test-other=asr_gen_test_unseen --nj "$nj" $(force_flag)
    python -m elfs2t.bin.prepare_data covost2 --cv-dir "$MINI_SYNTH/gen/cv/de" \
      --covost-tsv "$MINI_SYNTH/gen/covost/covost_v2.de_en.tsv" --src-lang de --tgt-lang en --prefix st_gen \
      --splits "${gen_splits[@]}" --output-dir "$manifest_dir" --nj "$nj" $(force_flag)
  fi
  stage_done 1
fi

# ---------------------------------------------------------------------------------------------------
# Stage 2: Whisper feature caching -> dump/<encoder_tag>/<set>/ (by default base for ASR, tiny.en for S2TT; trimmed)
# (--print-tag also checks --ngpu against the GPUs there are: a one-line error before any stage runs)
asr_tag=$(python -m elfs2t.bin.cache_features --encoder "$asr_encoder" --mode "$feat_mode" --ngpu "$ngpu" --print-tag)
st_tag=$asr_tag   # one python start-up (~8 s) less when both tasks use the same encoder (the default)
[ "$st_encoder" = "$asr_encoder" ] || \
  st_tag=$(python -m elfs2t.bin.cache_features --encoder "$st_encoder" --mode "$feat_mode" --print-tag)
prepared_sets() {  # prepared_sets TASK SPLIT...: the <task>_<split> sets that stage 1 wrote, in order (others logged)
  local task=$1 s; shift
  for s in "$@"; do
    if [ -f "$manifest_dir/cuts_${task}_$s.jsonl.gz" ]; then echo "${task}_$s"
    else log_caller "skipping set ${task}_$s: stage 1 did not prepare it ($manifest_dir/cuts_${task}_$s.jsonl.gz)"; fi
  done
}
stage1_cuts=()
for f in "$manifest_dir"/cuts_{asr,st}_{train,dev,test,test_unseen,gen_test,gen_test_unseen}.jsonl.gz; do
  if [ -f "$f" ]; then stage1_cuts+=("$f"); fi
done
if stage_begin 2 "Whisper feature caching ($asr_tag, $st_tag)" "${stage1_cuts[@]}" -- "asr_encoder=$asr_encoder" \
    "st_encoder=$st_encoder" "feat_mode=$feat_mode" "asr_speed_perturb=$asr_speed_perturb" \
    "speed_perturb_per_cut=$speed_perturb_per_cut"; then
  asr_sets="asr_train $(prepared_sets asr dev test test_unseen gen_test gen_test_unseen | xargs)"
  if [ -n "$asr_speed_perturb" ]; then  # the perturbed copies are cut manifests; the encoder applies the speed
    # shellcheck disable=SC2086  # a list of factors
    python -m elfs2t.bin.speed_perturb --cuts "$manifest_dir/cuts_asr_train.jsonl.gz" \
      --out "$manifest_dir/cuts_asr_train_sp.jsonl.gz" --factors $asr_speed_perturb --per-cut "$speed_perturb_per_cut"
    asr_sets="$asr_sets asr_train_sp"
  fi
  st_sets="st_train $(prepared_sets st dev test test_unseen gen_test gen_test_unseen | xargs)"
  if [ "$st_encoder" = "$asr_encoder" ]; then asr_sets="$asr_sets $st_sets"; st_sets=""; fi  # one encoder load
  # shellcheck disable=SC2086  # set lists
  python -m elfs2t.bin.cache_features --encoder "$asr_encoder" --mode "$feat_mode" --nj "$nj" \
    --manifest-dir "$manifest_dir" --sets $asr_sets --dump-dir dump $(force_flag)
  # shellcheck disable=SC2086
  [ -z "$st_sets" ] || python -m elfs2t.bin.cache_features --encoder "$st_encoder" --mode "$feat_mode" --nj "$nj" \
    --manifest-dir "$manifest_dir" --sets $st_sets --dump-dir dump $(force_flag)
  stage_done 2
fi

# ---------------------------------------------------------------------------------------------------
# Stages 3-6 run per model; their done markers are exp/.done/<model>/stageN.
has_model() { [[ " $models " == *" $1 "* ]]; }
model_stage_begin() {  # model_stage_begin N MODEL DESC [INPUT... [-- SETTING...]]: stage_begin, the model's markers
  local n=$1 m=$2 desc=$3; shift 3
  has_model "$m" || return 1
  done_dir=exp/.done/$m stage_begin "$n" "$desc [$m]" "$@"
}
model_stage_done() { done_dir=exp/.done/$2 stage_done "$1"; }
joint_stage_begin() {  # joint_stage_begin N MODEL DESC [INPUT... [-- SETTING...]]: the joint task's stage N of MODEL
  local n=$1 m=$2 desc=$3; shift 3                    # (its own markers)
  has_task joint && has_model "$m" || return 1
  done_dir=exp/.done/$m/joint stage_begin "$n" "$desc [$m, joint]" "$@"
}
joint_stage_done() { done_dir=exp/.done/$2/joint stage_done "$1"; }
cascade_stage_begin() {  # cascade_stage_begin N DESC [INPUT... [-- SETTING...]]: the cascade's stage N (a text ELF:
  local n=$1 desc=$2; shift 2                        # model elf's markers)
  has_task cascade && has_model elf || return 1
  done_dir=exp/.done/elf/cascade stage_begin "$n" "$desc [cascade]" "$@"
}
cascade_stage_done() { done_dir=exp/.done/elf/cascade stage_done "$1"; }
export_lm_text() {  # the English training text of both tasks (ASR transcripts, S2TT translations)
  python -m elfs2t.bin.export_text --out data/lm/train_text.txt --lowercase \
    --set "$manifest_dir/cuts_asr_train.jsonl.gz=transcript" --set "$manifest_dir/cuts_st_train.jsonl.gz=translation:en"
}
target_of() { if [ "$1" = asr ]; then echo transcript; else echo translation:en; fi; }  # asr or st
feat_tag_of() { if [ "$1" = asr ]; then echo "$asr_tag"; else echo "$st_tag"; fi; }

# ---------------------------------------------------------------------------------------------------
# Stage 3: what the models take from the English training text (never from dev/test text):
#   elf: text ELF -> exp/elf_text/ (initialises the ELF-S2T denoiser; only with --elf-init text)
#   ar:  the SentencePiece vocabulary of the targets -> data/token_list/en (the AR baseline's tokenizer; its LM
#        starts from scratch, which learned where a pre-trained one did not, HISTORY.md session 4); for the joint
#        task that of the German transcripts and English translations -> data/token_list/de_en
lm_text_inputs=("$manifest_dir/cuts_asr_train.jsonl.gz" "$manifest_dir/cuts_st_train.jsonl.gz")
if [ "$elf_init" = text ] && model_stage_begin 3 elf "ELF backbone pre-trained on the training text" \
    "${lm_text_inputs[@]}" "$conf/pretrain_text.yaml" -- "train_opts=$train_opts"; then
  export_lm_text
  OMP_NUM_THREADS=$train_threads python -m elfs2t.bin.pretrain_text --conf "$conf/pretrain_text.yaml" \
    --exp-dir exp/elf_text --text data/lm/train_text.txt $train_opts
  model_stage_done 3 elf
fi
if model_stage_begin 3 ar "subword vocabulary of the training text (SentencePiece)" "${lm_text_inputs[@]}" \
    -- "ar_vocab_size=$ar_vocab_size"; then  # the English text of both tasks, whichever --tasks asks for
  export_lm_text
  python -m elfs2t.bin.train_subword --text data/lm/train_text.txt --out-dir data/token_list/en \
    --vocab-size "$ar_vocab_size"
  model_stage_done 3 ar
fi
if joint_stage_begin 3 ar "subword vocabulary of the German transcripts and English translations" \
    "$manifest_dir/cuts_st_train.jsonl.gz" -- "ar_vocab_size=$ar_vocab_size"; then
  python -m elfs2t.bin.export_text --out data/lm/train_text_de_en.txt --lowercase \
    --set "$manifest_dir/cuts_st_train.jsonl.gz=transcript" --set "$manifest_dir/cuts_st_train.jsonl.gz=translation:en"
  python -m elfs2t.bin.train_subword --text data/lm/train_text_de_en.txt --out-dir data/token_list/de_en \
    --vocab-size "$ar_vocab_size"
  joint_stage_done 3 ar
fi

# ---------------------------------------------------------------------------------------------------
# Stage 4: training on the cached features, same data and the same minutes (ELF-S2T on a step budget inside them):
#   elf: ELF-S2T with audio forcing (conf/train_<task>.yaml) -> exp/<task>_elf/
#   ar:  AR speech-LLM baseline (conf/train_<task>_ar.yaml) -> exp/<task>_ar/
#   (task joint: conf/train_joint[_ar].yaml -> exp/joint_<model>/, after the other tasks)
nproc=$train_nproc; [ "$ngpu" -gt 0 ] && nproc=$ngpu
job_threads=$(( train_threads / train_jobs )); [ "$job_threads" -ge 1 ] || job_threads=1
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
  OMP_NUM_THREADS=$job_threads launch.sh --nproc "$nproc" --num-nodes "$num_nodes" elfs2t.bin.train \
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
for m in elf ar; do
  # shellcheck disable=SC2086  # the task list
  mapfile -t inputs < <(train_inputs "$m" $single_tasks)
  if [ -n "$single_tasks" ] && model_stage_begin 4 "$m" "training ($single_tasks)" "${inputs[@]}" -- \
      "tasks=$single_tasks" "train_opts=$train_opts" "elf_init=$elf_init"; then
    jobs_init "$train_jobs"  # up to $train_jobs tasks at once, each with its output in exp/<task>_<m>/train.out
    for task in $single_tasks; do jobs_run "training ${task}_$m" "exp/${task}_$m/train.out" train_task "$m" "$task"; done
    jobs_wait "stage 4: training"
    model_stage_done 4 "$m"
  fi
done
if has_task joint; then
  jobs_init "$train_jobs"  # the models' joint trainings at once (--train-jobs), output in exp/joint_<m>/train.out
  joint_models=()
  for m in elf ar; do
    mapfile -t inputs < <(train_inputs "$m" joint)
    if joint_stage_begin 4 "$m" "training" "${inputs[@]}" -- "train_opts=$train_opts" "elf_init=$elf_init"; then
      jobs_run "training joint_$m" "exp/joint_$m/train.out" train_task "$m" joint
      joint_models+=("$m")
    fi
  done
  jobs_wait "stage 4: joint training"
  for m in "${joint_models[@]}"; do joint_stage_done 4 "$m"; done
fi
if cascade_stage_begin 4 "text-to-text ELF on the German / English training pairs -> exp/mt_elf" \
    "$manifest_dir/cuts_st_train.jsonl.gz" "$conf/train_mt.yaml" -- "train_opts=$train_opts"; then
  python -m elfs2t.bin.export_text --out data/lm/train_de_en.tsv --lowercase --source transcript \
    --set "$manifest_dir/cuts_st_train.jsonl.gz=translation:en"
  # shellcheck disable=SC2086  # --train-opts is a list of overrides
  OMP_NUM_THREADS=$train_threads python -m elfs2t.bin.pretrain_text --conf "$conf/train_mt.yaml" \
    --exp-dir exp/mt_elf --text data/lm/train_de_en.tsv $train_opts
  cascade_stage_done 4
fi

# ---------------------------------------------------------------------------------------------------
# Stage 5: decoding -> exp/<tag>/decode_<inference_tag>/<set>/{text,ref,timing.json}
#   elf: CFG decoding, one run per --decode-opts setting;  ar: greedy / beam, one run per --ar-decode-opts setting
#   whisper: zero-shot on the stage-1 manifests (ASR: --asr-whisper transcribe, S2TT: --st-whisper translate)
job_threads_nj=$(( train_threads / nj )); [ "$job_threads_nj" -ge 1 ] || job_threads_nj=1
decode_sets_of() {  # decode_sets_of NAME SRC SETS...: --set NAME_<s>=<features of SRC_<s>> for the prepared sets
  local name=$1 src=$2 s tag; shift 2
  tag=$(feat_tag_of "$src")
  for s in $(prepared_sets "$src" "$@"); do echo "--set ${name}_${s#"${src}"_}=dump/$tag/$s/cuts.jsonl.gz"; done
}
decode_run() {  # decode_run EXP TARGET OPTS SET_ARGS...: every ';'-separated decoding setting of OPTS, in turn
  local exp=$1 target=$2 opts=$3 setting settings use record; shift 3
  IFS=';' read -r -a settings <<< "$opts"
  [ "${#settings[@]}" -gt 0 ] || settings=("")
  # the model's own setting (exp/<tag>/decode_setting.yaml: what transcribe and export use): the last one
  # (by default ELF-S2T ASR the rescored draft, S2TT the draft, AR beam 4)
  use=${settings[${#settings[@]}-1]}
  for setting in "${settings[@]}"; do
    record=(); [ "$setting" = "$use" ] && record=(--record-setting)
    # shellcheck disable=SC2086  # a setting is a list of decode.* overrides
    OMP_NUM_THREADS=$job_threads_nj python -m elfs2t.bin.decode --exp-dir "$exp" --target "$target" "$@" \
      "${record[@]}" $setting || return 1
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
decode_task() {  # decode_task MODEL TASK: every decoding setting of one task, in turn (joint: both of its tasks)
  local m=$1 task=$2 opts asr_opts
  opts=$decode_opts; [ "$m" = ar ] && opts=$ar_decode_opts
  asr_opts=$opts; [ "$m" = elf ] && [ -n "$asr_decode_opts" ] && asr_opts="$opts;$asr_decode_opts"
  # shellcheck disable=SC2046  # decode_sets_of prints --set arguments
  case "$task" in
    asr) decode_run exp/asr_$m transcript "$asr_opts" $(decode_sets_of asr asr $decode_sets) ;;
    st) decode_run exp/st_$m translation:en "$opts" $(decode_sets_of st st $decode_sets) ;;
    joint) decode_run exp/joint_$m transcript "$asr_opts" $(decode_sets_of asr_de st $decode_sets) \
             && decode_run exp/joint_$m translation:en "$opts" $(decode_sets_of st st $decode_sets) ;;
  esac
}
for m in elf ar; do
  # shellcheck disable=SC2086  # the task list
  mapfile -t inputs < <(decode_inputs "$m" $single_tasks)
  if [ -n "$single_tasks" ] && model_stage_begin 5 "$m" "decoding ($single_tasks)" "${inputs[@]}" -- \
      "decode_opts=$decode_opts" "asr_decode_opts=$asr_decode_opts" "ar_decode_opts=$ar_decode_opts"; then
    jobs_init "$nj"  # the tasks at once (--nj), each with its output in exp/<task>_<m>/decode.out
    for task in $single_tasks; do
      jobs_run "decoding ${task}_$m" "exp/${task}_$m/decode.out" decode_task "$m" "$task"
    done
    jobs_wait "stage 5: decoding"
    model_stage_done 5 "$m"
  fi
done
if has_task joint; then
  jobs_init "$nj"  # the models' joint decodes at once, output in exp/joint_<m>/decode.out
  joint_models=()
  for m in elf ar; do
    mapfile -t inputs < <(decode_inputs "$m" joint)
    if joint_stage_begin 5 "$m" "decoding" "${inputs[@]}" -- "decode_opts=$decode_opts" \
        "asr_decode_opts=$asr_decode_opts" "ar_decode_opts=$ar_decode_opts"; then
      jobs_run "decoding joint_$m" "exp/joint_$m/decode.out" decode_task "$m" joint
      joint_models+=("$m")
    fi
  done
  jobs_wait "stage 5: joint decoding"
  for m in "${joint_models[@]}"; do joint_stage_done 5 "$m"; done
fi
whisper_task() {  # whisper_task NAME SRC TARGET ARGS...: Whisper zero-shot on the prepared SRC_<set> sets
  local name=$1 src=$2 target=$3 s sets=(); shift 3
  for s in $(prepared_sets "$src" $whisper_sets); do sets+=(--set "${name}_${s#"${src}"_}=$manifest_dir/cuts_$s.jsonl.gz"); done
  OMP_NUM_THREADS=$train_threads python -m elfs2t.bin.whisper_decode "$@" --target "$target" \
    --beam-size "$whisper_beam" "${sets[@]}"
}
inputs=(); for task in $single_tasks; do for s in $whisper_sets; do inputs+=("$manifest_dir/cuts_${task}_$s.jsonl.gz"); done; done
if [ -n "$single_tasks" ] && model_stage_begin 5 whisper "Whisper zero-shot decoding ($single_tasks)" "${inputs[@]}" \
    -- "asr_whisper=$asr_whisper" "st_whisper=$st_whisper" "whisper_beam=$whisper_beam"; then
  for task in $single_tasks; do
    if [ "$task" = asr ]; then
      whisper_task asr asr transcript --model "$asr_whisper" --task transcribe
    else
      whisper_task st st translation:en --model "$st_whisper" --task translate --language de
    fi
  done
  model_stage_done 5 whisper
fi
inputs=(); for s in $whisper_sets; do inputs+=("$manifest_dir/cuts_st_$s.jsonl.gz"); done  # the German sets
if joint_stage_begin 5 whisper "Whisper zero-shot German transcription" "${inputs[@]}" -- "st_whisper=$st_whisper" \
    "whisper_beam=$whisper_beam"; then
  whisper_task asr_de st transcript --model "$st_whisper" --task transcribe --language de
  joint_stage_done 5 whisper
fi
inputs=(exp/mt_elf/last.pt); for f in exp/joint_*/decode_*/asr_de_*/text; do [ -f "$f" ] && inputs+=("$f"); done
if cascade_stage_begin 5 "translation of the joint models' German transcripts (and of the references)" \
    "${inputs[@]}" -- "mt_decode_opts=$mt_decode_opts" "decode_sets=$decode_sets"; then
  mt_args=()  # one translate_text run (one model load) for every German ASR decode and reference set
  for src in exp/joint_*/decode_*/asr_de_*/text; do  # every German ASR decode -> exp/cascade_<m>/decode_<inf>_mt/
    [ -f "$src" ] || continue
    dir=$(dirname "$src"); set_name=st_${dir##*/asr_de_}; inf=$(basename "$(dirname "$dir")")
    m=$(basename "$(dirname "$(dirname "$dir")")"); m=${m#joint_}
    [ -f "$manifest_dir/cuts_$set_name.jsonl.gz" ] || continue
    mt_args+=(--source "$src" --ref "$manifest_dir/cuts_$set_name.jsonl.gz" --out-dir "exp/cascade_$m/${inf}_mt/$set_name")
  done
  [ "${#mt_args[@]}" -gt 0 ] || die "the cascade translates the joint models' German transcripts (exp/joint_<m>/decode_*/asr_de_*): none found, add joint to --tasks"
  for set_name in $(prepared_sets st $decode_sets); do  # the reference transcripts: the translation model alone
    mt_args+=(--source "$manifest_dir/cuts_$set_name.jsonl.gz" --ref "$manifest_dir/cuts_$set_name.jsonl.gz"
           --out-dir "exp/mt_elf/decode_ref_mt/$set_name")
  done
  # shellcheck disable=SC2086  # sampler overrides
  OMP_NUM_THREADS=$train_threads python -m elfs2t.bin.translate_text --mt-exp exp/mt_elf "${mt_args[@]}" $mt_decode_opts
  cascade_stage_done 5
fi

# ---------------------------------------------------------------------------------------------------
# Stage 6: scoring -> result.txt per set (WER for asr_* sets, BLEU/chrF for st_* sets; the German transcripts of
# the joint task, asr_de_*, with the strip_accents normaliser for every model: MiniLM, ELF-S2T's text space, has no
# umlauts), then the comparison table of every scored decode: exp/results.md (per set: ELF-S2T settings, AR, Whisper)
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
for m in $models; do
  mapfile -t inputs < <(single_task_texts "$m")
  if [ -n "$single_tasks" ] && model_stage_begin 6 "$m" "scoring" "${inputs[@]}" -- "wer_normalizer=$wer_normalizer"; then
    # shellcheck disable=SC2046  # the decode folders of the model's single-task experiments
    score_decodes "*" $(single_task_texts "$m" | xargs -r -n 1 dirname)
    model_stage_done 6 "$m"
  fi
  if [ "$m" = whisper ]; then mapfile -t inputs < <(texts_of exp/whisper_*/decode_*/asr_de_*/text)
  else mapfile -t inputs < <(texts_of exp/joint_"$m"/decode_*/*/text); fi
  if joint_stage_begin 6 "$m" "scoring" "${inputs[@]}" -- "wer_normalizer=$wer_normalizer"; then
    # shellcheck disable=SC2046
    if [ "$m" = whisper ]; then score_decodes "asr_de_*" exp/whisper_*/decode_*/*/
    else score_decodes "*" exp/joint_$m/decode_*/*/; fi
    joint_stage_done 6 "$m"
  fi
done
mapfile -t inputs < <(texts_of exp/cascade_*/decode_*/*/text exp/mt_elf/decode_*/*/text)
if cascade_stage_begin 6 "scoring" "${inputs[@]}" -- "wer_normalizer=$wer_normalizer"; then
  score_decodes "st_*" exp/cascade_*/decode_*/*/ exp/mt_elf/decode_*/*/
  cascade_stage_done 6
fi
if stage_in_range 6; then
  python -m elfs2t.bin.score --results-table . --results-out exp/results.md
  cat exp/results.md
fi

# ---------------------------------------------------------------------------------------------------
# Stage 7: analysis (docs/design.md §2.6)
#   error analysis of every decode of the test sets, one report per experiment: exp/<tag>/analysis/report.md
#     (models without a latent space of their own, AR and Whisper, are measured in MiniLM's; the joint task's German
#     transcripts are left out: the word lists are English)
#   ASR vs S2TT on the test set, per model, for the decoding settings both have: exp/analysis/asr_vs_st_<m>/
#   audio reliance of ELF-S2T on the test set (audio real/zero/noise/swap x CFG scale g of the --reliance-opts
#     decoding, the flow from noise): exp/<task>_elf/analysis/audio_reliance/<task>_test/reliance.md
inputs=(); for f in exp/*/decode_*/*_test/text exp/*/decode_*/*_test_unseen/text; do [ -f "$f" ] && inputs+=("$f"); done
if stage_begin 7 "analysis (latent-space error analysis, audio reliance)" "${inputs[@]}" -- "reliance_opts=$reliance_opts"; then
  analysis_space=$MAIN_ROOT/tools/models/all-MiniLM-L6-v2
  reliance_guidance="1 1.5 2 3"
  analysis_args=(--text-space "$analysis_space" --max-len 24 --no-progress)
  [ -f data/lm/train_text.txt ] && analysis_args+=(--vocab-text data/lm/train_text.txt)
  jobs_init "$nj"  # independent reports, --nj at once; each job's output in the report's folder (analyze.out)
  analyze() {  # analyze OUT_DIR DECODE_DIR_ARGS...: one error-analysis report
    local out=$1; shift
    OMP_NUM_THREADS=$job_threads_nj python -m elfs2t.bin.analyze "$@" "${analysis_args[@]}" --out-dir "$out"
  }
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
    # shellcheck disable=SC2086  # a decoding setting is a list of decode.* overrides
    jobs_run "audio reliance of ${task}_elf" "exp/${task}_elf/analysis/audio_reliance.out" \
      env OMP_NUM_THREADS="$job_threads_nj" python -m elfs2t.bin.audio_reliance --exp-dir "exp/${task}_elf" \
      --target "$(target_of "$task")" --set "${task}_test=dump/$(feat_tag_of "$task")/${task}_test/cuts.jsonl.gz" \
      $reliance_opts --guidance $reliance_guidance
  done
  jobs_wait "stage 7: analysis"
  stage_done 7
fi

log "finished stages $stage..$stop_stage"
