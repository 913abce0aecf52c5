"""The fast trainer and encoder of chapter 4 against their slow references,
and training that stops early when the corpus runs out of pairs."""

from __future__ import annotations

import json
import os
import pickle
import re
import warnings
from collections import Counter

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from scratchllm.cli import app
from scratchllm.tokenizer import bpe
from scratchllm.tokenizer.bench import one_thread
from scratchllm.tokenizer.bpe import (
    GPT2_SPLIT_PATTERN,
    GPT4_SPLIT_PATTERN,
    SPECIAL_TOKENS,
    Pretokenizer,
    Tokenizer,
    ascii_twin,
    encode_piece,
    encode_piece_naive,
    load_tokenizer,
)
from scratchllm.tokenizer.export import load_gpt2, to_tiktoken
from scratchllm.tokenizer.train import (
    SmallVocabularyWarning,
    count_pretokens,
    learn_merges,
    learn_merges_naive,
    train_bpe,
    truncate,
)

SPECIALS = len(SPECIAL_TOKENS)
# Few letters, so that pairs repeat, tie and overlap ("aaaa"); a two-byte
# and a four-byte character, so that tokens hold parts of characters.
ALPHABET = "aab é🙂"
words = st.text(alphabet=ALPHABET, min_size=1, max_size=9)
corpora = st.dictionaries(words, st.integers(1, 5), min_size=1, max_size=25)


# --- splitting --------------------------------------------------------------

# ASCII text rich in what the patterns tell apart: contractions in both
# cases, digits, runs of spaces and line breaks, symbols, and the four
# separators (\x1c-\x1f) that re's \s takes for spaces and regex's does not.
SPLIT_ALPHABET = "aZ9'sStTdDmMlLvVrReE  \t\n\r\x0b\x0c\x1c\x1f!.,_-"
ascii_texts = (st.text(alphabet=SPLIT_ALPHABET, max_size=40)
               | st.text(alphabet=st.characters(max_codepoint=127),
                         max_size=40))


@pytest.mark.parametrize("pattern", [GPT2_SPLIT_PATTERN, GPT4_SPLIT_PATTERN])
@settings(max_examples=1000, deadline=None)
@given(text=ascii_texts)
def test_ascii_twin_cuts_ascii_text_like_the_pattern(pattern, text):
    expected = bpe.regex.findall(pattern, text)
    assert re.findall(ascii_twin(pattern), text) == expected
    assert Pretokenizer(pattern)(text) == expected


@pytest.mark.parametrize("pattern", [GPT2_SPLIT_PATTERN, GPT4_SPLIT_PATTERN])
def test_pretokenizer_on_shakespeare_and_on_other_text(pattern, shakespeare):
    split = Pretokenizer(pattern)
    assert split(shakespeare) == bpe.regex.findall(pattern, shakespeare)
    other = "Über 東京 don'T  \x85\u00a0x 123456 \x1c!"
    assert split(other) == bpe.regex.findall(pattern, other)


def test_other_patterns_have_no_ascii_twin():
    assert ascii_twin(r"\w+|\s+") is None
    split = Pretokenizer(r"\p{Lu}\p{Ll}*|\s+|.")
    assert split("Hello World") == ["Hello", " ", "World"]


# --- training ---------------------------------------------------------------

@settings(max_examples=300, deadline=None)
@given(pretokens=corpora, budget=st.integers(1, 60))
def test_fast_merges_equal_naive_merges(pretokens, budget):
    assert learn_merges(pretokens, budget) == learn_merges_naive(pretokens,
                                                                budget)


@settings(max_examples=100, deadline=None)
@given(pretokens=corpora)
def test_fast_training_runs_until_no_pair_is_left(pretokens):
    merges = learn_merges(pretokens, 10_000)
    assert merges == learn_merges_naive(pretokens, 10_000)
    every = Tokenizer.from_merges(merges, r"\X")
    assert all(len(every._encode_piece(w.encode())) == 1 for w in pretokens)


def test_repeated_pairs_inside_one_pretoken():
    # The slow path: a pre-token holding the merged pair more than once,
    # side by side or apart, and a pair of two equal halves.
    pretokens = {"aaaa": 3, "abab": 2, "abxab": 2, "aaa": 1, "xaaay": 4}
    assert learn_merges(pretokens, 50) == learn_merges_naive(pretokens, 50)


@pytest.fixture(scope="module")
def shakespeare(shared_data) -> str:
    return shared_data("tinyshakespeare/input.txt").read_text(
        encoding="utf-8")


@pytest.mark.slow
def test_fast_merges_equal_naive_on_tiny_shakespeare(shakespeare):
    pretokens = count_pretokens(shakespeare.split("\n\n"))
    assert learn_merges(pretokens, 150) == learn_merges_naive(pretokens, 150)


def test_shakespeare_at_4096_is_a_prefix_closed_run(shakespeare):
    # The full 3,836-merge run: each merge joins two known tokens, its
    # tokens are all distinct byte strings or built from distinct pairs,
    # and its first merges are the naive trainer's.
    pretokens = count_pretokens(shakespeare.split("\n\n"))
    merges = learn_merges(pretokens, 4096 - 256 - SPECIALS)
    assert len(merges) == 4096 - 256 - SPECIALS
    assert len(set(merges)) == len(merges)
    assert all(a < 256 + k and b < 256 + k for k, (a, b) in
               enumerate(merges))
    assert merges[:30] == learn_merges_naive(pretokens, 30)


# --- stopping early ---------------------------------------------------------

def test_train_bpe_warns_and_returns_the_smaller_vocabulary():
    with pytest.warns(SmallVocabularyWarning,
                      match="only 4 merges: the vocabulary has 264 tokens, "
                            "not 1000"):
        tokenizer = train_bpe(["abcd abcd"], 1000)
    assert tokenizer.vocab_size == 256 + 4 + SPECIALS
    assert tokenizer.eot_id == 256 + 4
    assert tokenizer.decode(tokenizer.encode("abcd")) == "abcd"
    assert len(tokenizer.encode("abcd")) == 1


def test_no_warning_when_the_vocabulary_is_filled():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        tokenizer = train_bpe(["abcd abcd"], 256 + 2 + SPECIALS)
    assert tokenizer.vocab_size == 256 + 2 + SPECIALS


def test_too_small_a_vocabulary_is_still_an_error():
    with pytest.raises(ValueError, match="at least 260"):
        train_bpe(["abc"], 259)


def test_truncate_to_more_than_it_has_warns():
    with pytest.warns(SmallVocabularyWarning):
        full = train_bpe(["abcd abcd"], 1000)
    with pytest.warns(SmallVocabularyWarning, match="not 5000"):
        same = truncate(full, 5000)
    assert same.merges == full.merges
    assert same.vocab_size == full.vocab_size


def test_cli_train_notes_the_smaller_vocabulary(tmp_path):
    corpus = tmp_path / "train.jsonl"
    corpus.write_text(json.dumps({"text": "abcd abcd"}) + "\n",
                      encoding="utf-8")
    result = CliRunner().invoke(app, ["tokenizer", "train", str(corpus),
                                      "--vocab-size", "4096", "--out",
                                      str(tmp_path / "tok")])
    assert result.exit_code == 0, result.output
    assert ("note: the text allows only 4 merges: the vocabulary has 264 "
            "tokens, not 4096") in result.output
    assert "Traceback" not in result.output
    assert load_tokenizer(tmp_path / "tok").vocab_size == 264


# --- encoding ---------------------------------------------------------------

@pytest.fixture(scope="module")
def trained() -> Tokenizer:
    text = ("the cat sat on the mat; aaaa abab élan 🙂🙂 " * 30 +
            "Über den Wolken, 東京は晴れ。 12345 ")
    return train_bpe([text], 256 + 50 + SPECIALS)


@settings(max_examples=300, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(piece=st.binary(max_size=40) | st.text(max_size=30).map(
    lambda t: t.encode("utf-8", "surrogatepass")))
def test_fast_piece_encoder_equals_reference(trained, piece):
    assert (encode_piece(piece, trained.merges, trained.byte_ids)
            == encode_piece_naive(piece, trained.merges, trained.byte_ids))


def test_piece_encoders_on_edge_cases(trained):
    for piece in [b"", b"a", b"aaaaaaa", b"abababab", b" the the",
                  "🙂🙂🙂".encode()]:
        assert (encode_piece(piece, trained.merges, trained.byte_ids)
                == encode_piece_naive(piece, trained.merges,
                                      trained.byte_ids))


@pytest.fixture(scope="module")
def gpt2(shared_data) -> Tokenizer:
    shared_data("gpt2/merges.txt")
    return load_gpt2(shared_data("gpt2/vocab.json").parent)


def test_gpt2_every_shakespeare_pretoken_equals_reference(gpt2, shakespeare):
    pieces = {p.encode("utf-8")
              for p in bpe.regex.findall(GPT2_SPLIT_PATTERN, shakespeare)}
    for piece in pieces:
        assert (encode_piece(piece, gpt2.merges, gpt2.byte_ids)
                == encode_piece_naive(piece, gpt2.merges, gpt2.byte_ids))


def test_gpt2_ids_equal_tiktoken(gpt2, shakespeare):
    reference = to_tiktoken(gpt2)
    text = shakespeare + " 東京は晴れ。  \n\n\t 12345 👋🏽 don't"
    gpt2._cache.clear()
    assert gpt2.encode_ordinary(text) == reference.encode_ordinary(text)


def test_cache_is_bounded_and_stays_exact(trained, monkeypatch):
    text = " ".join(f"w{i}x" for i in range(500))
    expected = trained.encode(text)
    monkeypatch.setattr(bpe, "CACHE_SIZE", 16)
    trained._cache.clear()
    assert trained.encode(text) == expected
    assert len(trained._cache) <= 16


def test_tokenizer_pickles_with_its_cache(trained):
    trained.encode("the cat sat")
    copy = pickle.loads(pickle.dumps(trained))
    assert copy.encode("the cat sat on élan") == trained.encode(
        "the cat sat on élan")
    copy._cache.clear()
    assert copy.encode("aaaa abab") == trained.encode("aaaa abab")


# --- benchmark helpers ------------------------------------------------------

def test_one_thread_sets_and_restores_parallelism(monkeypatch):
    monkeypatch.setenv("TOKENIZERS_PARALLELISM", "true")
    with one_thread():
        assert os.environ["TOKENIZERS_PARALLELISM"] == "false"
    assert os.environ["TOKENIZERS_PARALLELISM"] == "true"
    monkeypatch.delenv("TOKENIZERS_PARALLELISM")
    with one_thread():
        assert os.environ["TOKENIZERS_PARALLELISM"] == "false"
    assert "TOKENIZERS_PARALLELISM" not in os.environ


def test_counter_input_is_accepted():
    # count_pretokens returns a Counter; learn_merges takes any mapping.
    assert learn_merges(Counter({"ab": 2, "b": 1}), 5) == [(97, 98)]


def test_training_restores_the_cycle_collector():
    import gc

    assert gc.isenabled()
    learn_merges({"abab": 2, "ba": 1}, 5)
    assert gc.isenabled()
    gc.disable()
    try:
        learn_merges({"abab": 2, "ba": 1}, 5)
        assert not gc.isenabled()
    finally:
        gc.enable()


def test_cli_bench_notes_the_smaller_vocabulary(tmp_path):
    text = tmp_path / "tiny.txt"
    text.write_text("abcd abcd\n\nabcd\n", encoding="utf-8")
    result = CliRunner().invoke(app, [
        "tokenizer", "bench", "--text", str(text), "--megabytes", "0.001",
        "--vocab-size", "1000", "--repeats", "1", "--stream-megabytes", ""])
    assert result.exit_code == 0, result.output
    note = re.search(r"note: the text allows only (\d+) merges", result.output)
    assert note is not None, result.output
    report = json.loads(result.output[result.output.index("{"):])
    assert report["vocab_size"] == 256 + int(note[1]) + SPECIALS < 1000
    assert set(report["training"]) == {"ours_s", "hf_s", "ratio"}
    assert set(report["encoding"]) == {"ours_mb_s", "ours_warm_mb_s",
                                       "tiktoken_mb_s"}
