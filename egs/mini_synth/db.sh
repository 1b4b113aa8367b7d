# Where the corpus lives; sourced by run.sh. mini_synth writes its own corpus in stage 0, so this is
# only the output folder of the synthesizer (an environment variable MINI_SYNTH overrides it).
# Layout: $MINI_SYNTH/LibriSpeech/{train-clean-100,dev-clean,test-clean,test-other}/ (ASR; test-other = unseen voices)
#         $MINI_SYNTH/cv/de/{validated.tsv,clips/}, $MINI_SYNTH/covost/covost_v2.de_en.tsv (S2TT de -> en)
#         $MINI_SYNTH/gen/: the generalisation sets in the same layouts (LibriSpeech test-clean / test-other,
#         CoVoST test / test_unseen: seen / unseen voices)
MINI_SYNTH=${MINI_SYNTH:-corpus}
