# Where the corpus lives on this machine; sourced by run.sh. An environment variable of the same
# name overrides the value here (CORPUS=/data/my_corpus ./run.sh).
#
# CORPUS: the folder local/prepare.py reads (for the example layout: <split>/text and <split>/wav/*.wav).
CORPUS=${CORPUS:-}
