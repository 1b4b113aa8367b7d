#!/usr/bin/env bash
# Kaldi-style option parsing. Source it AFTER declaring the defaults (and a help_message):
#
#   stage=0; stop_stage=100; nj=4; download_dir=downloads
#   help_message="Usage: $0 [options]
#     --stage N           first stage to run (default: $stage)
#     --download-dir DIR  where archives go (default: $download_dir)"
#   . utils/parse_options.sh
#
# Every declared variable foo_bar can be set with "--foo-bar VALUE" or "--foo-bar=VALUE". A variable
# whose default is true/false may be given without a value ("--force" means "--force true").
# "--help"/"-h" prints $help_message and exits 0; an option that names no declared variable is an
# error (message, exit 1). Parsing stops at the first argument that is not an option, or after "--";
# the remaining arguments are left in "$@".

__po_prog=$(basename "$0")

while [ $# -gt 0 ]; do
  case "$1" in
    --help|-h)
      if [ -n "${help_message:-}" ]; then
        printf '%s\n' "$help_message"
      else
        echo "$__po_prog: no help message (set help_message before sourcing parse_options.sh)"
      fi
      exit 0 ;;
    --)
      shift; break ;;
    --*)
      __po_opt=${1#--}
      __po_has_value=false
      case "$__po_opt" in
        *=*) __po_value=${__po_opt#*=}; __po_opt=${__po_opt%%=*}; __po_has_value=true ;;
      esac
      __po_name=${__po_opt//-/_}
      if ! [[ "$__po_name" =~ ^[A-Za-z_][A-Za-z0-9_]*$ ]] || [ -z "${!__po_name+set}" ]; then
        echo "$__po_prog: invalid option --$__po_opt (run '$__po_prog --help' for the options)" >&2
        exit 1
      fi
      __po_old=${!__po_name}
      if ! $__po_has_value; then
        if [ "$__po_old" = true ] || [ "$__po_old" = false ]; then
          # boolean: "--force", "--force true", "--force false"
          if [ $# -ge 2 ] && { [ "$2" = true ] || [ "$2" = false ]; }; then
            __po_value=$2; shift
          else
            __po_value=true
          fi
        else
          if [ $# -lt 2 ]; then
            echo "$__po_prog: option --$__po_opt needs a value" >&2
            exit 1
          fi
          __po_value=$2; shift
        fi
      fi
      if { [ "$__po_old" = true ] || [ "$__po_old" = false ]; } && \
         [ "$__po_value" != true ] && [ "$__po_value" != false ]; then
        echo "$__po_prog: option --$__po_opt expects true or false, got '$__po_value'" >&2
        exit 1
      fi
      printf -v "$__po_name" '%s' "$__po_value"
      shift ;;
    *)
      break ;;
  esac
done
unset __po_opt __po_name __po_value __po_old __po_has_value
true
