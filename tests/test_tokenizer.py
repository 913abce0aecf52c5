"""Tests for chapter 4: byte-level BPE (scratchllm.tokenizer)."""

from __future__ import annotations

import json
import os
import random
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scratchllm.tokenizer import (
    EOT,
    SPECIAL_TOKENS,
    Tokenizer,
    load_tokenizer,
    train_bpe,
    truncate,
)
from scratchllm.tokenizer.bpe import count_pairs, merge_pair, valid_unicode
from scratchllm.tokenizer.export import (
    bytes_to_unicode,
    load_gpt2,
    save_hf,
    to_tiktoken,
)
from scratchllm.tokenizer.shards import read_split, write_shards
from scratchllm.tokenizer.train import (
    SmallVocabularyWarning,
    count_pretokens,
    learn_merges,
    learn_merges_naive,
    reverse_key,
)

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

# A small multilingual training text that ships with the tests.
SAMPLE = """\
Once upon a time, a little fox found 3 red apples in the wood.
"Don't eat them all!" said the owl. The fox ate 12 of 1234 apples.
Über den Wolken muß die Freiheit wohl grenzenlos sein. Ça va? Très bien.
東京は晴れ。北京下雨了。 한국어도 있어요. Привет, мир! مرحبا بالعالم
Emoji: 👋🏽 👨‍👩‍👧 🇫🇷 — and math: ∑ x² ≤ ∞.	Tabs	and   spaces.

   Indented line; cafe\u0301 vs café.
""" * 3

TORTURE = (
    "Hello, world! 👋🏽 👨‍👩‍👧 🇫🇷  東京は晴れ。 한국어 "
    "cafe\u0301 vs café; עברית مرحبا\n\n\n   \t  indented\r\n"
    "it's IT'S 12345678 3.14159 $100 <|endoftext|>after"
    "mid<|endoftext|>word   \u00a0nbsp \u200b zero-width "
    "lone \ud800 surrogate \udfff and a pair \ud83d\ude00 end  "
)

@pytest.fixture(scope="module")
def tokenizer() -> Tokenizer:
    return train_bpe([SAMPLE], 256 + 150 + len(SPECIAL_TOKENS))


# --- primitives -------------------------------------------------------------

def test_count_pairs_and_merge_pair_exact():
    assert count_pairs([1, 2, 1, 2, 3]) == {(1, 2): 2, (2, 1): 1, (2, 3): 1}
    assert count_pairs([5, 5], weight=3) == {(5, 5): 3}
    assert merge_pair([1, 2, 1, 2, 3], (1, 2), 9) == [9, 9, 3]
    assert merge_pair([7, 7, 7], (7, 7), 9) == [9, 7]
    assert merge_pair([7, 7, 7, 7], (7, 7), 9) == [9, 9]
    assert merge_pair([1], (1, 2), 9) == [1]


def test_reverse_key_reverses_byte_order():
    rng = random.Random(0)
    tokens = {bytes(rng.randrange(4) for _ in range(rng.randrange(1, 4)))
              for _ in range(200)}
    assert sorted(tokens, key=reverse_key) == sorted(tokens, reverse=True)
    pairs = [(a, b) for a in list(tokens)[:15] for b in list(tokens)[:15]]
    by_key = sorted(pairs, key=lambda p: reverse_key(p[0]) + reverse_key(p[1]))
    assert by_key == sorted(pairs, reverse=True)


# --- training ---------------------------------------------------------------

def test_training_first_merges_by_hand():
    """The CS336 example, with the GPT-4 pattern: pre-tokens 'low',
    ' low' x4, ' lower' x2, ' widest' x3, ' newest' x6.  'e s' and 's t'
    tie at 9; 's t' is the greater byte pair."""
    text = ("low low low low low lower lower widest widest widest "
            "newest newest newest newest newest newest")
    pretokens = count_pretokens([text])
    assert pretokens == {"low": 1, " low": 4, " lower": 2, " widest": 3,
                         " newest": 6}
    tok = train_bpe([text], 256 + 4 + len(SPECIAL_TOKENS))
    merged = [tok.vocab[i] for i in range(256, 260)]
    assert merged == [b"st", b"est", b"ow", b"low"]


def test_tie_break_prefers_greater_bytes():
    assert learn_merges({"ab": 1, "cd": 1}, 1) == [(ord("c"), ord("d"))]
    assert learn_merges({"cd": 1, "ab": 1}, 1) == [(ord("c"), ord("d"))]
    # b"a" + b"bb" vs b"ab" + b"b": same count, compare left tokens first.
    naive = learn_merges_naive({"abb": 2, "xab": 1, "bbq": 1}, 4)
    assert learn_merges({"abb": 2, "xab": 1, "bbq": 1}, 4) == naive


@settings(max_examples=30, deadline=None)
@given(st.dictionaries(st.text(alphabet="abcab ", min_size=1, max_size=8),
                       st.integers(1, 5), min_size=1, max_size=12))
def test_fast_trainer_equals_naive_on_random_words(words):
    """Including running out of pairs: both stop at the same merge."""
    for count in (1, 3, 10, 1000):
        assert learn_merges(words, count) == learn_merges_naive(words, count)
    every = Tokenizer.from_merges(learn_merges(words, 1000), r"\X")
    assert all(len(every._encode_piece(w.encode())) == 1 for w in words)


def test_fast_trainer_equals_naive_on_sample():
    pretokens = count_pretokens([SAMPLE])
    assert learn_merges(pretokens, 120) == learn_merges_naive(pretokens, 120)


def test_fast_trainer_equals_naive_on_shakespeare(shared_data):
    shakespeare = shared_data("tinyshakespeare/input.txt")
    text = shakespeare.read_text(encoding="utf-8")[:50_000]
    pretokens = count_pretokens([text])
    assert learn_merges(pretokens, 100) == learn_merges_naive(pretokens, 100)


def test_truncate_equals_shorter_training():
    long = train_bpe([SAMPLE], 500)
    short = train_bpe([SAMPLE], 330)
    cut = truncate(long, 330)
    assert cut.merges == short.merges
    assert cut.special_tokens == short.special_tokens
    assert cut.vocab_size == 330


def test_training_errors_are_readable():
    with pytest.raises(ValueError, match="at least 260"):
        train_bpe(["abc"], 100)
    with pytest.warns(SmallVocabularyWarning, match="only 2 merges: the "
                      "vocabulary has 262 tokens, not 270"):
        small = train_bpe(["abc"], 256 + 10 + len(SPECIAL_TOKENS))
    assert small.vocab_size == 262 and len(small.merges) == 2


def test_special_tokens_never_enter_training():
    text = SAMPLE.replace(" ", "<|endoftext|>") + "<|im_end|>" * 50
    tok = train_bpe([text], 256 + 100 + len(SPECIAL_TOKENS))
    assert all(b"<|" not in tok.vocab[i] for i in tok.merges.values())


# --- encoding ---------------------------------------------------------------

def test_ids_layout(tokenizer):
    assert tokenizer.vocab_size == 256 + 150 + len(SPECIAL_TOKENS)
    assert tokenizer.eot_id == 256 + 150
    assert list(tokenizer.special_tokens) == list(SPECIAL_TOKENS)
    assert tokenizer.encode("A") == [65]


def test_special_tokens_are_atomic(tokenizer):
    eot = tokenizer.eot_id
    ids = tokenizer.encode("a<|endoftext|>b<|im_start|>")
    assert ids == [97, eot, 98, tokenizer.special_tokens["<|im_start|>"]]
    ordinary = tokenizer.encode_ordinary("<|endoftext|>")
    assert eot not in ordinary
    assert tokenizer.decode(ordinary) == "<|endoftext|>"
    assert tokenizer.decode([eot]) == "<|endoftext|>"


def test_encode_decode_sample(tokenizer):
    ids = tokenizer.encode(SAMPLE)
    assert len(ids) < len(SAMPLE.encode()) / 2
    assert tokenizer.decode(ids) == SAMPLE


@settings(max_examples=100, deadline=None)
@given(st.text())
def test_round_trip_property(tokenizer, text):
    assert tokenizer.decode(tokenizer.encode(text)) == text


@settings(max_examples=100, deadline=None)
@given(st.lists(st.sampled_from(list("ab \n\t.1é😀") + [
    "<|", "|>", "<|endoftext|>", "endoftext", "  ", "\r\n"])).map("".join),
       st.lists(st.integers(0, 40), max_size=8))
def test_encode_iterable_equals_encode(tokenizer, text, cuts):
    points = sorted({min(c, len(text)) for c in cuts})
    chunks = [text[a:b] for a, b in zip([0, *points], [*points, len(text)])]
    assert list(tokenizer.encode_iterable(chunks, block=0)) == \
        tokenizer.encode(text)


def test_encode_iterable_on_lines(tokenizer):
    lines = SAMPLE.splitlines(keepends=True)
    assert list(tokenizer.encode_iterable(lines, block=0)) == \
        tokenizer.encode(SAMPLE)


def test_lone_surrogates_become_replacement_chars(tokenizer):
    assert valid_unicode("a\ud800b") == "a\ufffdb"
    assert valid_unicode("\ud83d\ude00") == "😀"
    assert tokenizer.decode(tokenizer.encode("a\ud800b")) == "a\ufffdb"


def test_decode_broken_utf8_and_bad_ids(tokenizer):
    assert tokenizer.decode([0xE2, 0x82, 0xAC]) == "€"
    assert tokenizer.decode([0xE2, 0x82]) == "\ufffd"
    assert tokenizer.decode_bytes([0xE2]) == b"\xe2"
    with pytest.raises(ValueError, match="unknown token id 99999"):
        tokenizer.decode([99999])


def test_constructor_validates():
    with pytest.raises(ValueError, match="unknown id"):
        Tokenizer({(1, 300): 256})
    with pytest.raises(ValueError, match="increase"):
        Tokenizer({(1, 2): 257, (3, 4): 256})
    with pytest.raises(ValueError, match="whitespace"):
        Tokenizer({}, special_tokens={"<|a b|>": 256})
    with pytest.raises(ValueError, match="reuses id"):
        Tokenizer({(1, 2): 256}, special_tokens={EOT: 256})
    with pytest.raises(ValueError, match="split pattern"):
        Tokenizer({}, pattern="(")
    with pytest.raises(ValueError, match="no <|endoftext|>"):
        _ = Tokenizer({}).eot_id


# --- saving and exports -----------------------------------------------------

def test_save_load_round_trip(tokenizer, tmp_path):
    tokenizer.save(tmp_path)
    loaded = load_tokenizer(tmp_path)
    assert loaded.merges == tokenizer.merges
    assert loaded.special_tokens == tokenizer.special_tokens
    assert loaded.sha256() == tokenizer.sha256()
    assert loaded.encode(SAMPLE) == tokenizer.encode(SAMPLE)
    state = json.loads((tmp_path / "bpe.json").read_text())
    assert state["format"] == "scratchllm-bpe"
    assert len(state["merges"]) == 150
    assert (tmp_path / "vocab.txt").read_text().splitlines()[10] == \
        "10\t\\u000a"


def test_load_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="no tokenizer"):
        load_tokenizer(tmp_path)
    (tmp_path / "bpe.json").write_text('{"format": "other"}')
    with pytest.raises(ValueError, match="not a scratchllm-bpe"):
        load_tokenizer(tmp_path)


def test_tiktoken_export_identical(tokenizer):
    fast = to_tiktoken(tokenizer)
    text = valid_unicode(TORTURE) + SAMPLE
    assert fast.encode(text, allowed_special="all") == tokenizer.encode(text)
    assert fast.encode_ordinary(text) == tokenizer.encode_ordinary(text)


def test_hf_export_identical(tokenizer, tmp_path):
    from tokenizers import Tokenizer as HFTokenizer
    from transformers import PreTrainedTokenizerFast

    save_hf(tokenizer, tmp_path)
    text = valid_unicode(TORTURE) + SAMPLE
    ours = tokenizer.encode(text)
    raw = HFTokenizer.from_file(str(tmp_path / "tokenizer.json"))
    assert raw.encode(text, add_special_tokens=False).ids == ours
    fast = PreTrainedTokenizerFast.from_pretrained(tmp_path)
    assert fast(text, add_special_tokens=False)["input_ids"] == ours
    assert fast.decode(ours) == tokenizer.decode(ours)
    assert fast.eos_token_id == tokenizer.eot_id


def test_bytes_to_unicode_is_gpt2s():
    mapping = bytes_to_unicode()
    assert len(set(mapping.values())) == 256
    assert mapping[ord(" ")] == "Ġ" and mapping[ord("\n")] == "Ċ"
    assert mapping[ord("A")] == "A"


# --- GPT-2 parity -----------------------------------------------------------

@pytest.fixture(scope="module")
def gpt2_pair(shared_data):
    import tiktoken

    shared_data("gpt2/merges.txt")
    vocab_file = shared_data("gpt2/vocab.json")
    vocab = json.loads(vocab_file.read_text(encoding="utf-8"))
    to_byte = {c: b for b, c in bytes_to_unicode().items()}
    reference = tiktoken.Encoding(
        name="gpt2-test",
        pat_str=r"""'(?:[sdmt]|ll|ve|re)| ?\p{L}+| ?\p{N}+"""
                r"""| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+""",
        mergeable_ranks={bytes(to_byte[c] for c in t): i
                         for t, i in vocab.items() if t != EOT},
        special_tokens={EOT: vocab[EOT]})
    return load_gpt2(vocab_file.parent), reference


def test_gpt2_parity_torture(gpt2_pair):
    ours, reference = gpt2_pair
    assert ours.vocab_size == 50257 and ours.eot_id == 50256
    assert ours.encode(TORTURE) == reference.encode(TORTURE,
                                                    allowed_special="all")
    assert ours.encode("hello world") == [31373, 995]


def test_gpt2_parity_shakespeare(gpt2_pair, shared_data):
    ours, reference = gpt2_pair
    shakespeare = shared_data("tinyshakespeare/input.txt")
    text = shakespeare.read_text(encoding="utf-8")
    assert ours.encode(text) == reference.encode(text)


@settings(max_examples=100, deadline=None)
@given(st.text())
def test_gpt2_parity_property(gpt2_pair, text):
    ours, reference = gpt2_pair
    assert ours.encode_ordinary(text) == reference.encode_ordinary(text)


# --- shards -----------------------------------------------------------------

def write_jsonl(path: Path, texts: list[str]) -> None:
    with open(path, "w", encoding="utf-8") as out:
        out.writelines(json.dumps({"id": str(i), "text": text,
                                  "source": "test", "license": "CC0"}) + "\n" for i, text in enumerate(texts))


@pytest.mark.parametrize("workers", [1, 2])
def test_shards_round_trip(tokenizer, tmp_path, workers):
    docs = [line for line in SAMPLE.splitlines() if line] * 20
    write_jsonl(tmp_path / "train.jsonl", docs)
    write_jsonl(tmp_path / "val.jsonl", docs[:5])
    out = tmp_path / "tokens"
    index = write_shards(tokenizer, tmp_path, out, shard_tokens=2000,
                         workers=workers)
    assert index["dtype"] == "uint16"
    assert index["eot_id"] == tokenizer.eot_id
    assert index["vocab_size"] == tokenizer.vocab_size
    assert index["tokenizer_sha256"] == tokenizer.sha256()
    assert json.loads((out / "index.json").read_text()) == index
    shards = read_split(out, "train")
    assert len(shards) == len(index["splits"]["train"]) > 1
    stream = np.concatenate(shards).tolist()
    expected = []
    for doc in docs:
        expected += [tokenizer.eot_id, *tokenizer.encode_ordinary(doc)]
    assert stream == expected
    for shard, entry in zip(shards, index["splits"]["train"]):
        assert shard.dtype == np.dtype("<u2") and shard[0] == index["eot_id"]
        assert len(shard) == entry["tokens"]
        assert (out / entry["file"]).stat().st_size == 2 * entry["tokens"]
        assert int((shard == index["eot_id"]).sum()) == entry["documents"]
    assert sum(e["documents"] for e in index["splits"]["train"]) == len(docs)
    assert sum(e["bytes"] for e in index["splits"]["train"]) == \
        sum(len(d.encode()) for d in docs)
    with pytest.raises(ValueError, match="no split 'test'"):
        read_split(out, "test")


def test_shards_missing_split(tokenizer, tmp_path):
    with pytest.raises(FileNotFoundError, match="no train split"):
        write_shards(tokenizer, tmp_path, tmp_path / "out")


def test_uint32_for_large_vocab():
    from scratchllm.tokenizer.shards import shard_dtype

    assert shard_dtype(65536) == np.dtype("<u2")
    assert shard_dtype(65537) == np.dtype("<u4")
