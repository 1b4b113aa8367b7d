# Where the corpora live on this machine; sourced by run.sh. An environment variable of the same
# name overrides the value here (COMMONVOICE=/data/cv-corpus-4 ./run.sh).
#
# COMMONVOICE: the Common Voice *v4* release root, holding one folder per language (de/, fr/, en/, ...)
#   with validated.tsv and clips/*.mp3. It cannot be downloaded anonymously any more: get it yourself
#   (https://commonvoice.mozilla.org, version "Common Voice Corpus 4").
COMMONVOICE=${COMMONVOICE:-}
# COVOST: folder holding covost_v2.<src>_<tgt>.tsv. Empty: stage 0 downloads it into $download_dir/covost.
COVOST=${COVOST:-}
