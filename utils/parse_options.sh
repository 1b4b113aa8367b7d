#!/usr/bin/env bash
# Kaldi-style option parsing. Source it AFTER declaring the defaults (and a help_message):
#
#   stage=0; stop_stage=100; nj=4; download_dir=downloads; force=false
#   help_message="Usage: $0 [options]
#     --stage N           first stage to run (default: $stage)
#     --download-dir DIR  where archives go (default: $download_dir)"
#   . utils/parse_options.sh
#
# Every declared variable foo_bar can be set with "--foo-bar VALUE" or "--foo-bar=VALUE". A variable whose
# default is true/false is a boolean: "--force" alone means true, "--force true" / "--force false" set it,
# and any other value ("--force yes", "--force=no") is an error naming it -- never a silent "true".
# "--help"/"-h" prints $help_message and exits 0. Every error (an option that names no declared variable,
# a missing value, a bad boolean, an argument that is not an option) is one line on stderr and exit 1.
#
# A script that takes positional arguments (utils/launch.sh MODULE ARGS...) sets parse_options_positional=true
# before sourcing: parsing then stops at the first argument that is not an option (or after "--") and leaves
# the rest in "$@"; a boolean option followed by such an argument takes no value from it.

__po_prog=$(basename "$0")
__po_positional=${parse_options_positional:-false}

__po_die() { echo "$__po_prog: $*" >&2; exit 1; }
__po_is_bool() { [ "$1" = true ] || [ "$1" = false ]; }

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
      shift
      [ "$__po_positional" = true ] || [ $# -eq 0 ] || \
        __po_die "unexpected argument '$1' after '--' ($__po_prog takes options only; run '$__po_prog --help')"
      break ;;
    --*)
      __po_opt=${1#--}
      __po_has_value=false
      case "$__po_opt" in
        *=*) __po_value=${__po_opt#*=}; __po_opt=${__po_opt%%=*}; __po_has_value=true ;;
      esac
      __po_name=${__po_opt//-/_}
      if ! [[ "$__po_name" =~ ^[A-Za-z_][A-Za-z0-9_]*$ ]] || [ -z "${!__po_name+set}" ]; then
        __po_die "invalid option --$__po_opt (run '$__po_prog --help' for the options)"
      fi
      __po_old=${!__po_name}
      if ! $__po_has_value; then
        if __po_is_bool "$__po_old"; then
          # boolean: "--force" alone, "--force true", "--force false"; "--force yes" is an error below
          if [ $# -ge 2 ] && [[ "$2" != --* ]] && { __po_is_bool "$2" || [ "$__po_positional" != true ]; }; then
            __po_value=$2; shift
          else
            __po_value=true
          fi
        else
          [ $# -ge 2 ] || __po_die "option --$__po_opt needs a value"
          __po_value=$2; shift
        fi
      fi
      if __po_is_bool "$__po_old" && ! __po_is_bool "$__po_value"; then
        __po_die "option --$__po_opt expects true or false, got '$__po_value'"
      fi
      printf -v "$__po_name" '%s' "$__po_value"
      shift ;;
    *)
      [ "$__po_positional" = true ] || \
        __po_die "unexpected argument '$1' ($__po_prog takes options only, --name value; run '$__po_prog --help')"
      break ;;
  esac
done
unset __po_opt __po_name __po_value __po_old __po_has_value
unset -f __po_die __po_is_bool
true
