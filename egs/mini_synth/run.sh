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
conf_dir=conf         # config folder: pretrain_text.yaml, train_<task>[_ar].yaml, train_mt.yaml
train_opts=""         # config overrides for every stage-3/4 training, e.g. "train.max_steps=1000 train.max_minutes=10"
ar_vocab_size=1000    # stage 3 (ar): SentencePiece BPE pieces of the AR baseline's vocabulary (data/token_list/en)
seed=0                # corpus synthesis seed
num_train=3000        # synthesized training utterances (per task)
num_dev=200           # dev utterances
num_test=200          # test utterances (seen voices)
num_test_unseen=200   # test utterances (unseen voices)
num_test_gen=200      # generalisation test utterances (seen voices): new sentence structures, training vocabulary
num_test_gen_unseen=200   # generalisation test utterances (unseen voices)
noise_snrs=""         # SNRs in dB of white-noise copies of the test sets (seen voices), e.g. "10 0": sets
                      # <task>_test_snr<S>, made in stage 1, cached in stage 2, decoded and scored beside the others
manifest_dir=data/manifests
asr_speed_perturb="0.9 1.1"   # speed factors for the ASR training set ("": none): stage 2 writes the perturbed
                              # cuts (asr_train_sp) and caches them, stage 4 trains on both sets
speed_perturb_per_cut=one     # one: one copy per cut, factor drawn per cut; all: one copy per factor
asr_encoder=$MAIN_ROOT/tools/models/whisper-base      # Whisper for ASR features (hub id or local dir; base: fewer
                                                      # errors on unseen voices than tiny.en, HISTORY.md session 6)
st_encoder=$MAIN_ROOT/tools/models/whisper-tiny.en    # Whisper for S2TT features (tiny.en: as good as base here, 4x cheaper)
feat_mode=trim        # trim: encode only the needed frames; pad30: pad to 30 s as Whisper was trained
feat_batch_size=8     # utterances per encoder forward in stage 2
tasks="asr st"        # which tasks stages 4-6 train, decode and score: asr (English), st (de -> en), joint (one
                      # model for the German audio's transcript and translation, with task tokens), cascade (the
                      # joint models' German transcripts translated by a text-to-text ELF)
models="elf"          # which models stages 3-6 build: elf (ELF-S2T), ar (AR baseline), whisper (zero-shot)
elf_init=""           # ELF-S2T denoiser init: "" from scratch (measured best here), "text" the stage-3 text ELF
                      # (stage 3 trains it: exp/elf_text), or an ELF checkpoint (file, dir or hub id)
train_threads=2       # torch threads per training / decoding process
train_nproc=1         # training processes (torchrun when > 1)
train_jobs=2          # tasks trained at the same time in stage 4, sharing the --train-threads threads
decode_confs="conf/decode/flow4.yaml conf/decode/flow4_g2_read.yaml conf/decode/readout.yaml"
decode_confs+=" conf/decode/flow4_g2_read_lm.yaml conf/decode/readout_lm.yaml"
decode_confs+=" conf/decode/draft.yaml conf/decode/draft_beam4.yaml conf/decode/draft_beam4_lm.yaml"
                      # ELF-S2T decoding configs, one decode (and table row) each: the flow from noise (4 steps,
                      # g 1; slots and length from the greedy CTC draft), the same with g 2 and its final latents
                      # read at signal level 0.3 (the flow's best here), the readout of noise with no flow step
                      # (the bar the flow must clear); those two again with the slots and length of the draft
                      # fused with the model's trigram of its training texts; the CTC draft read greedily, by
                      # prefix beam search, and by prefix beam search fused with the trigram (the last: the models'
                      # recorded setting)
asr_decode_confs="conf/decode/rescore.yaml conf/decode/flow4_read_lm.yaml"
                      # ELF-S2T decoding configs for ASR only, before --decode-confs: the draft rescored by both
                      # readouts (on S2TT it cost 0.7-1.4 BLEU: it drops words); the flow at the fused draft's
                      # slots without guidance (ASR's best flow setting; S2TT's is g 2)
ar_decode_confs="conf/decode/beam1.yaml conf/decode/beam4.yaml"   # AR baseline decoding configs
reliance_conf=conf/decode/flow4.yaml   # the ELF-S2T decoding whose CFG scale stage 7 sweeps
decode_opts=""        # decode.* overrides added to every ELF-S2T decoding (stages 5, 7), e.g. "decode.max_duration=50"
ar_decode_opts=""     # decode.* overrides added to every AR decoding
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
  --conf-dir DIR         config folder, e.g. a copy of conf/ with bigger models ($conf_dir)
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
  --noise-snrs \"...\"     SNRs in dB of white-noise copies of the test sets (seen voices): sets <task>_test_snr<S>,
                         added to --decode-sets; markers in exp/.done/noise/<set>/, so an SNR added later is made,
                         cached and decoded alone ($noise_snrs)
  --manifest-dir DIR     stage-1 output ($manifest_dir)
  --asr-speed-perturb \"...\"  speed factors for extra ASR training copies, \"\" for none ($asr_speed_perturb)
  --speed-perturb-per-cut one|all  one copy per cut with a drawn factor, or one per factor ($speed_perturb_per_cut)
  --asr-encoder DIR|ID   Whisper for ASR features ($asr_encoder)
  --st-encoder DIR|ID    Whisper for S2TT features ($st_encoder)
  --feat-mode MODE       trim or pad30 ($feat_mode)
  --feat-batch-size N    utterances per encoder forward in stage 2 ($feat_batch_size)
  --tasks \"asr st joint\"  tasks to train / decode / score ($tasks): asr = English ASR (exp/asr_<m>), st = de->en
                         S2TT (exp/st_<m>), joint = one model with task tokens for the German audio's transcript
                         and translation (conf/train_joint[_ar].yaml, exp/joint_<m>; decoded as asr_de_<set> and
                         st_<set>, German WER with the strip_accents normaliser; decoded with --decode-confs);
                         cascade = a text-to-text ELF (conf/train_mt.yaml, exp/mt_elf) translating the joint
                         models' German transcripts (exp/cascade_<m>) and the reference transcripts (exp/mt_elf),
                         needs joint (markers in exp/.done/elf/cascade/)
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
  --decode-confs \"...\"   ELF-S2T decoding configs (conf/decode/*.yaml: a decode: section each), one decode
                         each; a config added later is decoded alone ($decode_confs)
  --asr-decode-confs \"...\"  ELF-S2T decoding configs for the ASR task only, before --decode-confs (whose
                         last is every task's recorded setting) ($asr_decode_confs)
  --ar-decode-confs \"...\"  AR decoding configs ($ar_decode_confs)
  --reliance-conf FILE   the ELF-S2T decoding that stage 7's audio-reliance diagnostics sweep over CFG scales
                         ($reliance_conf)
  --decode-opts \"...\"    decode.* overrides added to every ELF-S2T decoding ($decode_opts)
  --ar-decode-opts \"...\" decode.* overrides added to every AR decoding ($ar_decode_opts)
  --mt-decode-opts \"...\" sampler.* overrides of the cascade's text ELF ($mt_decode_opts)
                         Stage 5 records each model's own setting for transcribe / export
                         (exp/<task>_<model>/decode_setting.yaml): the last config decoded for the task (a
                         joint model: the last of --decode-confs / --ar-decode-confs, for both tasks)
  --decode-sets \"...\"    sets decoded by ELF-S2T and AR, without the asr_/st_ prefix ($decode_sets)
  --asr-whisper DIR|ID   Whisper for the zero-shot ASR baseline ($asr_whisper)
  --st-whisper DIR|ID    multilingual Whisper for the zero-shot S2TT baseline ($st_whisper)
  --whisper-beam N       Whisper zero-shot beam size, 1 = greedy ($whisper_beam)
  --whisper-sets \"...\"   sets decoded by Whisper zero-shot ($whisper_sets)
  --wer-normalizer NAME  normaliser before WER, the same for every model: default or whisper_en ($wer_normalizer)
Stages 2 and 4-6 are those of every recipe (utils/recipe_stages.sh), run for each task and model: stage 2 has a
marker per encoder (exp/.done/<encoder tag>[_sp]/stage2), stages 4 and 6 per experiment (exp/.done/<task>_<model>/),
stage 5 per experiment, decoding config and set (exp/.done/<task>_<model>/decode_<name>/<set>/stage5); stage 3 per
model (exp/.done/<model>/), Whisper's per task (exp/.done/whisper[/joint]/): adding a task, a model, a decoding config
or a test set later runs only it, and stages 6-7 take in the new decodes. Stage 6 always rewrites the table
exp/results.md.
Corpus folder: MINI_SYNTH in db.sh ($MINI_SYNTH)."

. "$MAIN_ROOT/utils/parse_options.sh"
. "$MAIN_ROOT/utils/stage.sh"
. "$MAIN_ROOT/utils/jobs.sh"
. "$MAIN_ROOT/utils/recipe_stages.sh"   # stages 2 and 4-6 of each ELF-S2T / AR experiment, as in every recipe
. local/stages.sh   # mini_synth's table of experiments, and its own stages (Whisper zero-shot, cascade, analysis)
[[ "$nj" =~ ^[1-9][0-9]*$ ]] || die "--nj must be a positive integer, got '$nj'"
[[ "$train_jobs" =~ ^[1-9][0-9]*$ ]] || die "--train-jobs must be a positive integer, got '$train_jobs'"
for m in $models; do
  case "$m" in elf|ar|whisper) ;; *) die "--models: unknown model '$m' (elf, ar, whisper)" ;; esac
done
for t in $tasks; do
  case "$t" in asr|st|joint|cascade) ;; *) die "--tasks: unknown task '$t' (asr, st, joint, cascade)" ;; esac
done
check_decode_opts --decode-opts "$decode_opts" --decode-confs
check_decode_opts --ar-decode-opts "$ar_decode_opts" --ar-decode-confs
if stage_in_range 5 || stage_in_range 7; then  # the decoding configs of one experiment share its markers
  # shellcheck disable=SC2086  # lists of files
  check_decode_confs "--decode-confs / --asr-decode-confs" $decode_confs $asr_decode_confs
  # shellcheck disable=SC2086
  check_decode_confs --ar-decode-confs $ar_decode_confs
  check_decode_confs --reliance-conf $reliance_conf
fi
noise_sets=""   # the noisy test sets' names without the asr_/st_ prefix, decoded beside --decode-sets
for snr in $noise_snrs; do
  [[ "$snr" =~ ^-?[0-9]+(\.[0-9]+)?$ ]] || die "--noise-snrs: '$snr' is no SNR in dB (a number, e.g. 10, 0, -5)"
  [[ " $noise_sets " != *" test_snr$snr "* ]] || die "--noise-snrs: $snr is given twice"
  noise_sets+=" test_snr$snr"
done
decode_sets+=$noise_sets
single_tasks=$(for t in $tasks; do case "$t" in asr|st) echo "$t" ;; esac; done | xargs)  # Whisper zero-shot's

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

# Stage 1, noisy test sets (--noise-snrs): each task's test set with white noise at each SNR ->
#   $manifest_dir/cuts_<task>_test_snr<S>.jsonl.gz, the audio in $MINI_SYNTH/noisy/<set>/ (ids and texts as in the
#   test set, so the decodes pair utterance by utterance; markers per set in exp/.done/noise/<set>/)
for s in $noise_sets; do
  for task in asr st; do
    if stage_begin_in "noise/${task}_$s" 1 "white-noise copy of ${task}_test at ${s#test_snr} dB SNR -> ${task}_$s" \
        "$manifest_dir/cuts_${task}_test.jsonl.gz"; then
      python -m elfs2t.bin.add_noise --cuts "$manifest_dir/cuts_${task}_test.jsonl.gz" --snr "${s#test_snr}" \
        --audio-dir "$MINI_SYNTH/noisy/${task}_$s" --out "$manifest_dir/cuts_${task}_$s.jsonl.gz"
      stage_done_in "noise/${task}_$s" 1
    fi
  done
done

# ---------------------------------------------------------------------------------------------------
# Stage 2: Whisper feature caching -> dump/<encoder_tag>/<set>/ (by default base for ASR, tiny.en for S2TT; trimmed),
#   markers per encoder tag (utils/recipe_stages.sh); one encoder load when both tasks use the same encoder
# (--print-tag also checks --ngpu against the GPUs there are: a one-line error before any stage runs)
asr_tag=$(python -m elfs2t.bin.cache_features --encoder "$asr_encoder" --mode "$feat_mode" --ngpu "$ngpu" --print-tag)
st_tag=$asr_tag   # one python start-up (~8 s) less when both tasks use the same encoder (the default)
[ "$st_encoder" = "$asr_encoder" ] || \
  st_tag=$(python -m elfs2t.bin.cache_features --encoder "$st_encoder" --mode "$feat_mode" --print-tag)
asr_eval_sets=$(prepared_sets asr $decode_sets | xargs)   # the sets stages 5-6 decode and score, per audio
st_eval_sets=$(prepared_sets st $decode_sets | xargs)
asr_sets="asr_train $(prepared_sets asr dev test test_unseen gen_test gen_test_unseen 2>/dev/null | xargs)"
st_sets="st_train $(prepared_sets st dev test test_unseen gen_test gen_test_unseen 2>/dev/null | xargs)"
if [ "$ngpu" -gt 0 ]; then feat_par=(--ngpu "$ngpu"); else feat_par=(--nj "$nj"); fi
# shellcheck disable=SC2086  # set lists
if [ "$st_encoder" = "$asr_encoder" ]; then features "$asr_encoder" "$asr_tag" "$asr_speed_perturb" $asr_sets $st_sets
else
  features "$asr_encoder" "$asr_tag" "$asr_speed_perturb" $asr_sets
  features "$st_encoder" "$st_tag" "" $st_sets
fi
# shellcheck disable=SC2086  # set lists
for s in $(prepared_sets asr $noise_sets); do noisy_features "$asr_encoder" "$asr_tag" "$s"; done
# shellcheck disable=SC2086
for s in $(prepared_sets st $noise_sets); do noisy_features "$st_encoder" "$st_tag" "$s"; done

# ---------------------------------------------------------------------------------------------------
# Stage 3: what the models take from the English training text (never from dev/test text):
#   elf: text ELF -> exp/elf_text/ (initialises the ELF-S2T denoiser; only with --elf-init text)
#   ar:  the SentencePiece vocabulary of the targets -> data/token_list/en (the AR baseline's tokenizer; its LM
#        starts from scratch, which learned where a pre-trained one did not, HISTORY.md session 4); for the joint
#        task that of the German transcripts and English translations -> data/token_list/de_en
lm_text_inputs=("$manifest_dir/cuts_asr_train.jsonl.gz" "$manifest_dir/cuts_st_train.jsonl.gz")
if [ "$elf_init" = text ] && has_model elf && stage_begin_in elf 3 "ELF backbone pre-trained on the training text [elf]" \
    "${lm_text_inputs[@]}" "$conf_dir/pretrain_text.yaml" -- "train_opts=$train_opts"; then
  export_lm_text
  OMP_NUM_THREADS=$train_threads run_job python -m elfs2t.bin.pretrain_text --conf "$conf_dir/pretrain_text.yaml" \
    --exp-dir exp/elf_text --text data/lm/train_text.txt $train_opts
  stage_done_in elf 3
fi
if has_model ar && stage_begin_in ar 3 "subword vocabulary of the training text (SentencePiece) [ar]" \
    "${lm_text_inputs[@]}" -- "ar_vocab_size=$ar_vocab_size"; then  # the English text of both tasks, whichever --tasks asks for
  export_lm_text
  python -m elfs2t.bin.train_subword --text data/lm/train_text.txt --out-dir data/token_list/en \
    --vocab-size "$ar_vocab_size"
  stage_done_in ar 3
fi
if has_task joint && has_model ar && stage_begin_in ar/joint 3 \
    "subword vocabulary of the German transcripts and English translations [ar, joint]" \
    "$manifest_dir/cuts_st_train.jsonl.gz" -- "ar_vocab_size=$ar_vocab_size"; then
  python -m elfs2t.bin.export_text --out data/lm/train_text_de_en.txt --lowercase \
    --set "$manifest_dir/cuts_st_train.jsonl.gz=transcript" --set "$manifest_dir/cuts_st_train.jsonl.gz=translation:en"
  python -m elfs2t.bin.train_subword --text data/lm/train_text_de_en.txt --out-dir data/token_list/de_en \
    --vocab-size "$ar_vocab_size"
  stage_done_in ar/joint 3
fi

# ---------------------------------------------------------------------------------------------------
# Stage 4: training on the cached features (utils/recipe_stages.sh, one experiment per task and model; markers in
#   exp/.done/<task>_<model>/), same data and steps for both models, --train-jobs at once:
#   elf: ELF-S2T with audio forcing ($conf_dir/train_<task>.yaml) -> exp/<task>_elf/
#   ar:  AR speech-LLM baseline ($conf_dir/train_<task>_ar.yaml) -> exp/<task>_ar/
#   cascade: the text-to-text ELF ($conf_dir/train_mt.yaml) -> exp/mt_elf/
nproc=$train_nproc; [ "$ngpu" -gt 0 ] && nproc=$ngpu
job_threads=$(( train_threads / train_jobs )); [ "$job_threads" -ge 1 ] || job_threads=1
job_threads_nj=$(( train_threads / nj )); [ "$job_threads_nj" -ge 1 ] || job_threads_nj=1
each_experiment "$train_jobs" "stage 4: training" stage_train
if has_task cascade && has_model elf && stage_begin_in elf/cascade 4 \
    "text-to-text ELF on the German / English training pairs -> exp/mt_elf [cascade]" \
    "$manifest_dir/cuts_st_train.jsonl.gz" "$conf_dir/train_mt.yaml" -- "train_opts=$train_opts"; then
  python -m elfs2t.bin.export_text --out data/lm/train_de_en.tsv --lowercase --source transcript \
    --set "$manifest_dir/cuts_st_train.jsonl.gz=translation:en"
  # shellcheck disable=SC2086  # --train-opts is a list of overrides
  OMP_NUM_THREADS=$train_threads run_job python -m elfs2t.bin.pretrain_text --conf "$conf_dir/train_mt.yaml" \
    --exp-dir exp/mt_elf --text data/lm/train_de_en.tsv $train_opts
  stage_done_in elf/cascade 4
fi

# ---------------------------------------------------------------------------------------------------
# Stage 5: decoding -> exp/<tag>/decode_<inference_tag>/<set>/{text,ref,timing.json}
#   elf: one decode per decoding config of --decode-confs (ASR: and --asr-decode-confs); ar: greedy / beam, one per
#   --ar-decode-confs config; each config and set of an experiment has its marker
#   (exp/.done/<tag>/decode_<name>/<set>/stage5: a set added later is decoded alone);
#   the joint models decode each set twice, asr_de_<set> (German transcript) and st_<set>; --nj jobs at once
#   whisper: zero-shot on the stage-1 manifests (ASR: --asr-whisper transcribe, S2TT: --st-whisper translate)
each_experiment "$nj" "stage 5: decoding" stage_decode
inputs=(); for task in $single_tasks; do for s in $whisper_sets; do inputs+=("$manifest_dir/cuts_${task}_$s.jsonl.gz"); done; done
if [ -n "$single_tasks" ] && has_model whisper && stage_begin_in whisper 5 \
    "Whisper zero-shot decoding ($single_tasks) [whisper]" "${inputs[@]}" -- "asr_whisper=$asr_whisper" \
    "st_whisper=$st_whisper" "whisper_beam=$whisper_beam"; then
  for task in $single_tasks; do
    if [ "$task" = asr ]; then
      whisper_task asr asr transcript --model "$asr_whisper" --task transcribe
    else
      whisper_task st st translation:en --model "$st_whisper" --task translate --language de
    fi
  done
  stage_done_in whisper 5
fi
inputs=(); for s in $whisper_sets; do inputs+=("$manifest_dir/cuts_st_$s.jsonl.gz"); done  # the German sets
if has_task joint && has_model whisper && stage_begin_in whisper/joint 5 \
    "Whisper zero-shot German transcription [whisper, joint]" "${inputs[@]}" -- "st_whisper=$st_whisper" \
    "whisper_beam=$whisper_beam"; then
  whisper_task asr_de st transcript --model "$st_whisper" --task transcribe --language de
  stage_done_in whisper/joint 5
fi
inputs=(exp/mt_elf/last.pt); for f in exp/joint_*/decode_*/asr_de_*/text; do [ -f "$f" ] && inputs+=("$f"); done
if has_task cascade && has_model elf && stage_begin_in elf/cascade --redo-when-changed 5 \
    "translation of the joint models' German transcripts (and of the references) [cascade]" \
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
  for set_name in $st_eval_sets; do  # the reference transcripts: the translation model alone
    mt_args+=(--source "$manifest_dir/cuts_$set_name.jsonl.gz" --ref "$manifest_dir/cuts_$set_name.jsonl.gz"
           --out-dir "exp/mt_elf/decode_ref_mt/$set_name")
  done
  # shellcheck disable=SC2086  # sampler overrides
  OMP_NUM_THREADS=$train_threads run_job python -m elfs2t.bin.translate_text --mt-exp exp/mt_elf "${mt_args[@]}" \
    $mt_decode_opts
  stage_done_in elf/cascade 5
fi

# ---------------------------------------------------------------------------------------------------
# Stage 6: scoring -> result.txt per set (WER for asr_* sets, BLEU/chrF for st_* sets; the German transcripts of
# the joint task, asr_de_*, with the strip_accents normaliser for every model: MiniLM, ELF-S2T's text space, has no
# umlauts), then the comparison table of every scored decode: exp/results.md (per set: ELF-S2T settings, AR, Whisper)
each_experiment 1 "stage 6: scoring" stage_score
mapfile -t inputs < <(texts_of exp/whisper_*/decode_*/*/text)
if has_model whisper && stage_begin_in whisper --redo-when-changed 6 "scoring [whisper]" "${inputs[@]}" -- \
    "wer_normalizer=$wer_normalizer"; then
  score_decodes "*" exp/whisper_*/decode_*/*/
  stage_done_in whisper 6
fi
mapfile -t inputs < <(texts_of exp/cascade_*/decode_*/*/text exp/mt_elf/decode_*/*/text)
if has_task cascade && has_model elf && stage_begin_in elf/cascade --redo-when-changed 6 "scoring [cascade]" \
    "${inputs[@]}" -- "wer_normalizer=$wer_normalizer"; then
  score_decodes "st_*" exp/cascade_*/decode_*/*/ exp/mt_elf/decode_*/*/
  stage_done_in elf/cascade 6
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
#   audio reliance of ELF-S2T on the test set (audio real/zero/noise/swap x CFG scale g of the --reliance-conf
#     decoding, the flow from noise): exp/<task>_elf/analysis/audio_reliance/<task>_test/reliance.md
#   (scoring and analysis summarise the decodes: a decode added or redone makes them run again, not stop)
inputs=(); for f in exp/*/decode_*/*_test/text exp/*/decode_*/*_test_unseen/text; do [ -f "$f" ] && inputs+=("$f"); done
if stage_begin --redo-when-changed 7 "analysis (latent-space error analysis, audio reliance)" "${inputs[@]}" \
    "$reliance_conf" -- "decode_opts=$decode_opts"; then
  analysis_space=$MAIN_ROOT/tools/models/all-MiniLM-L6-v2
  reliance_guidance="1 1.5 2 3"
  analysis_args=(--text-space "$analysis_space" --max-len 24 --no-progress)
  [ -f data/lm/train_text.txt ] && analysis_args+=(--vocab-text data/lm/train_text.txt)
  jobs_init "$nj"  # independent reports, --nj at once; each job's output in the report's folder (analyze.out)
  analysis_jobs  # a report per experiment, ASR vs S2TT per model, the audio reliance of ELF-S2T per task
  jobs_wait "stage 7: analysis"
  stage_done 7
fi

log "finished stages $stage..$stop_stage"
