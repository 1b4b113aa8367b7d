#!/usr/bin/env bash
# Create a new recipe egs/NAME from egs/TEMPLATE (see docs/adding_a_corpus.md).
#   utils/new_recipe.sh my_corpus            # -> egs/my_corpus/{run.sh,path.sh,cmd.sh,db.sh,local/prepare.py}
#   utils/new_recipe.sh --egs-dir /elsewhere my_corpus
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
egs_dir=$root/egs
help_message="Usage: $0 [--egs-dir DIR] NAME
Copies $root/egs/TEMPLATE to DIR/NAME (NAME: lower-case letters, digits, _), naming the recipe NAME.
Options:
  --egs-dir DIR   where the recipe folder goes (default: $egs_dir). Outside $root/egs, export
                  ELFS2T_ROOT=$root before running the recipe."
parse_options_positional=true   # NAME follows the options
. "$root/utils/parse_options.sh"
. "$root/utils/log.sh"

[ $# -eq 1 ] || die "expected one recipe NAME (run '$0 --help')"
name=$1
[[ "$name" =~ ^[a-z0-9_]+$ ]] || die "recipe name '$name': use lower-case letters, digits and _"
target=$egs_dir/$name
[ ! -e "$target" ] || die "$target already exists; not overwriting it"
mkdir -p "$egs_dir"
cp -r "$root/egs/TEMPLATE" "$target"
rm -rf "$target/data" "$target/dump" "$target/exp" "$target/local/__pycache__"
sed -i "s/__RECIPE__/$name/g" "$target/run.sh"
log "created $target: set CORPUS in $target/db.sh, write $target/local/prepare.py, then $target/run.sh --stop-stage 1"
