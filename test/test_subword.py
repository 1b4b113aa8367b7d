"""Stage 3 of the AR baseline: the SentencePiece subword vocabulary (train, reload, round trip, determinism,
the Hugging Face view checked against SentencePiece, skip / retrain, bad input, the entry point)."""
import json

import pytest
import sentencepiece as spm

from elfs2t.analysis.spaces import word_token_spans
from elfs2t.bin import train_subword as train_subword_bin
from elfs2t.config import ConfigError
from elfs2t.errors import InputError
from elfs2t.text.subword import SPECIALS, SubwordConfig, check_same_ids, load_subword, train_subword

TEXTS = ["the cat sat on the mat.", "we didn't see the bird!", "a dog ran home, didn't it?",
         "der müde hund schläft im garten.", "die große straße ist leer."] * 6


@pytest.fixture(scope="module")
def text_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("subword") / "train_text.txt"
    path.write_text("".join(t + "\n" for t in TEXTS) + "\n   \n", encoding="utf-8")  # blank lines are skipped
    return path


@pytest.mark.parametrize("model_type", ["bpe", "unigram"])
def test_trains_loads_and_round_trips(text_file, tmp_path, model_type):
    meta = train_subword(text_file, tmp_path / "v", SubwordConfig(vocab_size=60, model_type=model_type))
    assert meta["lines"] == len(TEXTS) and meta["pieces"] <= 60 and meta["config"]["model_type"] == model_type
    assert json.loads((tmp_path / "v" / "subword.json").read_text())["pieces"] == meta["pieces"]
    tok = load_subword(tmp_path / "v")
    sp = spm.SentencePieceProcessor(model_file=str(tmp_path / "v" / "sp.model"))
    assert len(tok) == sp.get_piece_size() == meta["pieces"]
    assert {k: tok.convert_tokens_to_ids(p) for k, (p, _) in SPECIALS.items()} == {k: i for k, (_, i) in SPECIALS.items()}
    assert (tok.bos_token_id, tok.eos_token_id, tok.pad_token_id, tok.unk_token_id) == (1, 2, 3, 0)
    for text in set(TEXTS) | {"the bird sat on the dog.", "  a   cat ran home!  "}:
        ids = tok(text, add_special_tokens=False)["input_ids"]
        assert ids == sp.encode(text)  # the Hugging Face view is the SentencePiece model
        assert tok.decode(ids) == " ".join(text.split())  # exact (cased, umlauts, contractions, punctuation)
        assert 0 not in ids  # every character was seen in training
    # the character offsets the error analysis reads the AR's token embeddings through
    ids, spans = word_token_spans(tok, ["we", "didn't", "see"])
    assert [tok.decode([ids[i] for i in span]) for span in spans] == ["we", "didn't", "see"]


def test_deterministic_skipped_when_unchanged_rebuilt_when_changed(text_file, tmp_path):
    a = train_subword(text_file, tmp_path / "a", SubwordConfig(vocab_size=60))
    train_subword(text_file, tmp_path / "b", SubwordConfig(vocab_size=60))
    assert (tmp_path / "a" / "sp.model").read_bytes() == (tmp_path / "b" / "sp.model").read_bytes()
    assert (tmp_path / "a" / "tokenizer.json").read_bytes() == (tmp_path / "b" / "tokenizer.json").read_bytes()
    mtime = (tmp_path / "a" / "sp.model").stat().st_mtime_ns
    again = train_subword(text_file, tmp_path / "a", SubwordConfig(vocab_size=60))
    assert again["skipped"] and (tmp_path / "a" / "sp.model").stat().st_mtime_ns == mtime
    smaller = train_subword(text_file, tmp_path / "a", SubwordConfig(vocab_size=40))
    assert not smaller.get("skipped") and smaller["pieces"] == 40 and len(load_subword(tmp_path / "a")) == 40
    assert a["pieces"] > 40 and not (tmp_path / "a.tmp").exists()


def test_bad_input(tmp_path, text_file):
    with pytest.raises(FileNotFoundError, match="missing.txt"):
        train_subword(tmp_path / "missing.txt", tmp_path / "v")
    empty = tmp_path / "empty.txt"
    empty.write_text("\n \n")
    with pytest.raises(InputError, match="empty.txt: no text to train a vocabulary on"):
        train_subword(empty, tmp_path / "v")
    with pytest.raises(ConfigError, match="vocab_size=4: must be > 4"):
        train_subword(text_file, tmp_path / "v", SubwordConfig(vocab_size=4))
    assert not (tmp_path / "v").exists() and not (tmp_path / "v.tmp").exists()
    with pytest.raises(FileNotFoundError, match="not a subword vocabulary"):
        load_subword(tmp_path)


def test_a_tokenizer_that_disagrees_is_refused(text_file, tmp_path):
    train_subword(text_file, tmp_path / "a", SubwordConfig(vocab_size=60))
    train_subword(text_file, tmp_path / "b", SubwordConfig(vocab_size=40))
    other = load_subword(tmp_path / "b")
    with pytest.raises(ValueError, match=r"tokenizes line 1 \('the cat sat on the mat.'\)"):
        check_same_ids(tmp_path / "a" / "sp.model", other, TEXTS)


def test_entry_point(text_file, tmp_path, capsys):
    args = ["--text", str(text_file), "--out-dir", str(tmp_path / "v"), "--vocab-size", "50"]
    assert train_subword_bin.main(args) == 0
    assert "trained, 50 pieces" in capsys.readouterr().out
    assert train_subword_bin.main(args) == 0
    assert "kept (already trained)" in capsys.readouterr().out
    assert train_subword_bin.main(["--text", str(tmp_path / "nope.txt"), "--out-dir", str(tmp_path / "w")]) == 1
    assert capsys.readouterr().err == f"train_subword: error: training text not found: {tmp_path / 'nope.txt'}\n"
    assert train_subword_bin.main([*args[:2], "--out-dir", str(tmp_path / "w"), "--vocab-size", "3"]) == 2  # config
    assert "vocab_size=3: must be > 4" in capsys.readouterr().err and not (tmp_path / "w").exists()
    with pytest.raises(SystemExit) as exc:
        train_subword_bin.main(["--help"])
    assert exc.value.code == 0 and "--vocab-size" in capsys.readouterr().out
