"""The entry points' shared option parsing (elfs2t/bin/_cli.py): NAME=PATH options, one behaviour for all."""
import importlib
from pathlib import Path

import pytest

from elfs2t.bin._cli import named_path

# every entry point with a NAME=PATH option, and the option
NAMED_OPTIONS = [("decode", "--set"), ("audio_reliance", "--set"), ("flow_probe", "--set"),
                 ("whisper_decode", "--set"), ("learning_curves", "--run")]


def parser_and_other_required(module: str, option: str):
    """The entry point's parser, and a value for each of its other required options."""
    parser = importlib.import_module(f"elfs2t.bin.{module}").get_parser()
    required = [a for a in parser._actions if a.required and a.option_strings and option not in a.option_strings]
    return parser, [x for a in required for x in (a.option_strings[0], "somewhere")]


def test_named_path_splits_at_the_first_equals_sign():
    parse = named_path("CUTS")
    assert parse("asr_test=dump/a=b/cuts.jsonl.gz") == ("asr_test", Path("dump/a=b/cuts.jsonl.gz"))


@pytest.mark.parametrize("item", ["asr_test", "=dump/cuts.jsonl.gz", "asr_test="])
@pytest.mark.parametrize("module,option", NAMED_OPTIONS)
def test_every_named_option_refuses_a_half_item_as_a_usage_error(module, option, item, capsys):
    """An item without its name or its path stops the entry point before anything runs: status 2, one line that
    names the option and the item."""
    parser, argv = parser_and_other_required(module, option)
    argv += [option, item]
    with pytest.raises(SystemExit) as exc:
        parser.parse_args(argv)
    err = capsys.readouterr().err
    assert exc.value.code == 2
    assert f"argument {option}: {item!r}: expected NAME=" in err


@pytest.mark.parametrize("module,option", NAMED_OPTIONS)
def test_every_named_option_gives_name_and_path(module, option):
    parser, argv = parser_and_other_required(module, option)
    args = parser.parse_args(argv + [option, "a=x/one", option, "b=y/two"])
    assert getattr(args, "runs" if option == "--run" else "sets") == [("a", Path("x/one")), ("b", Path("y/two"))]
