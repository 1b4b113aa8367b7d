# Where the corpus lives on this machine; sourced by run.sh. An environment variable of the same
# name overrides the value here (LIBRISPEECH=/data/LibriSpeech ./run.sh).
#
# LIBRISPEECH: the "LibriSpeech" folder that holds the part folders (train-clean-100/, dev-clean/, ...).
# Leave it empty and run with "--download true" to fetch the parts into $download_dir/LibriSpeech.
LIBRISPEECH=${LIBRISPEECH:-}
