"""Streaming encoding (chapter 4): ``Tokenizer.encode_iterable`` gives
exactly ``encode``'s ids with every shipped split pattern, in bounded
memory, and the shard writer gives exactly our encoder's ids."""

from __future__ import annotations

import itertools
import json
import re
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from scratchllm.tokenizer import (
    EOT,
    GPT2_SPLIT_PATTERN,
    GPT4_SPLIT_PATTERN,
    Tokenizer,
)
from scratchllm.tokenizer.export import load_gpt2, to_tiktoken
from scratchllm.tokenizer.shards import read_split, write_shards
from scratchllm.tokenizer.train import count_pretokens, learn_merges

PATTERNS = {"gpt2": GPT2_SPLIT_PATTERN, "gpt4": GPT4_SPLIT_PATTERN}

# The counterexample of issue 18: a blank line, then a line that starts
# with a visible character.
BLANK_LINE = ["a\n", "\n", "b\n"]

# Training text rich in what streaming gets wrong: blank lines, trailing
# and leading spaces, lines without spaces, runs, contractions, specials.
TRAINING = """\
Once upon a time   \n\n\n  there was a fox.\nIt's the fox's den!!\n
\n\nwordwithoutspaces\nanother\n\n\n\n   indented\tline \r\n\r\n
12345 678 9 ... ?! '' 'll 're 've\n\n \n \n  \n東京は晴れ\n\n😀😀 é\n
<|endoftext|>\n\n<|im_start|>user\nhi<|im_end|>\n""" * 20

# Pieces that random texts are made of: every kind of whitespace (runs of
# them too), letters, digits, contractions, punctuation, special tokens and
# their fragments, non-ASCII text and lone surrogates.
ATOMS = [
    "a", "b", "r", "e", "X", "é", "東", "😀", "1", "9", "12345",
    "'", "'s", "'re", "'LL", "!", "?!", ".", "<", "|", ">",
    " ", "  ", "\t", "\n", "\n\n", "\r", "\r\n", "\u00a0", "\u2028",
    "\x0b", "\x85", " \n", "\n ", " " * 17, "\n" * 9,
    "word", " word", "space-free-line\n", "x" * 25, "7" * 11,
    EOT, "<|", "|>", "endoftext", "<|im_start|>", "<|pad|>",
    "\ud83d", "\ude00", "\ud800",
]


def tokenizer_for(pattern: str) -> Tokenizer:
    """A small tokenizer trained on TRAINING with ``pattern`` until no pair
    is left: every pre-token of TRAINING is one token, so a pre-token
    boundary in the wrong place changes the ids."""
    merges = learn_merges(count_pretokens([TRAINING], pattern), 1 << 20)
    return Tokenizer.from_merges(merges, pattern)


TOKENIZERS = {name: tokenizer_for(pattern)
              for name, pattern in PATTERNS.items()}


@pytest.fixture(scope="module")
def gpt2(shared_data) -> Tokenizer:
    shared_data("gpt2/merges.txt")
    return load_gpt2(shared_data("gpt2/vocab.json").parent)


def cut_at(text: str, points: Iterable[int]) -> list[str]:
    """``text`` cut at ``points`` (repeated points give empty chunks)."""
    points = sorted(min(p, len(text)) for p in points)
    return [text[a:b] for a, b in zip([0, *points], [*points, len(text)])]


texts = st.lists(st.sampled_from(ATOMS), max_size=40).map("".join)
cuts = st.lists(st.integers(0, 400), max_size=12)
# How much text encode_iterable gathers before it looks for a cut: 0 cuts
# as often as the rule allows.
blocks = st.sampled_from([0, 0, 1, 4, 16, 64])


# --- the counterexample ------------------------------------------------------

def test_gpt2_blank_line_is_split_as_in_context(gpt2):
    """``\\s+(?!\\S)`` splits ``\\n\\n`` before ``b``: the streamed ids must
    too (they were ``[64, 628, 65, 198]``, 628 being ``\\n\\n``)."""
    text = "".join(BLANK_LINE)
    reference = to_tiktoken(gpt2).encode(text, allowed_special="all")
    assert gpt2.encode(text) == reference == [64, 198, 198, 65, 198]
    assert list(gpt2.encode_iterable(BLANK_LINE, block=0)) == reference


def test_trained_gpt2_pattern_blank_line_is_split_as_in_context():
    tokenizer = tokenizer_for(GPT2_SPLIT_PATTERN)
    newline = tokenizer.byte_ids[ord("\n")]
    assert (newline, newline) in tokenizer.merges  # "\n\n" is a token
    text = "".join(BLANK_LINE)
    assert tokenizer.encode(text).count(newline) == 3
    assert list(tokenizer.encode_iterable(BLANK_LINE, block=0)) == \
        tokenizer.encode(text)


def test_special_token_right_after_a_line_break():
    """A special token ends the text the regex sees: ``\\n\\n`` before
    ``<|endoftext|>`` is one pre-token, before ``<|x`` it is not."""
    for pattern in PATTERNS.values():
        tokenizer = tokenizer_for(pattern)
        for lines in (["a\n", "\n", EOT, "b\n"], ["a\n", "\n", "<|", "x"],
                      ["a\n", "\n<|endo", "ftext|>b"]):
            assert list(tokenizer.encode_iterable(lines, block=0)) == \
                tokenizer.encode("".join(lines)), lines


# --- properties ---------------------------------------------------------------

@pytest.mark.parametrize("name", sorted(PATTERNS))
@settings(max_examples=400, deadline=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(text=texts, points=cuts, block=blocks)
def test_streaming_equals_encode(name, text, points, block):
    tokenizer = TOKENIZERS[name]
    expected = tokenizer.encode(text)
    for chunks in (cut_at(text, points), text.splitlines(keepends=True),
                   list(text)):
        assert list(tokenizer.encode_iterable(chunks, block)) == expected


@pytest.mark.parametrize("name", sorted(PATTERNS))
@settings(max_examples=200, deadline=None)
@given(text=st.text(), points=cuts, block=blocks)
def test_streaming_equals_encode_on_any_text(name, text, points, block):
    tokenizer = TOKENIZERS[name]
    chunks = cut_at(text, points)
    assert list(tokenizer.encode_iterable(chunks, block)) == \
        tokenizer.encode(text)


def test_gpt2_streaming_property(gpt2):
    @settings(max_examples=200, deadline=None)
    @given(text=texts, points=cuts, block=blocks)
    def check(text, points, block):
        expected = gpt2.encode(text)
        for chunks in (cut_at(text, points), list(text)):
            assert list(gpt2.encode_iterable(chunks, block)) == expected

    check()


@pytest.mark.parametrize("name", sorted(PATTERNS))
def test_streaming_every_short_text(name):
    """Every text of up to 5 characters over an alphabet that mixes the
    classes the split patterns tell apart, streamed one character at a
    time (so the stream is cut wherever the rule allows)."""
    tokenizer = TOKENIZERS[name]
    alphabet = ["a", "r", "1", "'", "!", " ", "\n", "\t"]
    for size in range(1, 6):
        for letters in itertools.product(alphabet, repeat=size):
            text = "".join(letters)
            assert list(tokenizer.encode_iterable(letters, block=0)) == \
                tokenizer.encode(text), text


def test_other_patterns_are_exact_too():
    """No cut rule is proven for an arbitrary pattern: it encodes the
    joined text."""
    tokenizer = Tokenizer({}, r"\S+\s*|\s+")
    lines = ["a b\n", "\n", "c"]
    assert list(tokenizer.encode_iterable(lines, block=0)) == \
        tokenizer.encode("".join(lines))


# --- bounded memory -----------------------------------------------------------

def lagging(tokenizer: Tokenizer, lines: list[str], block: int) -> int:
    """The most bytes that ``encode_iterable`` has read but not yet
    encoded, over the whole stream."""
    read = 0

    def counted() -> Iterator[str]:
        nonlocal read
        for line in lines:
            read += len(line.encode("utf-8"))
            yield line

    written, worst = 0, 0
    for i in tokenizer.encode_iterable(counted(), block):
        written += len(tokenizer.vocab[i])
        worst = max(worst, read - written)
    assert written == read
    return worst


@pytest.mark.parametrize("name", sorted(PATTERNS))
@pytest.mark.parametrize("block", [0, 1000])
def test_streaming_holds_a_block_and_a_line(name, block):
    """The text held back never exceeds the block and two lines (or a run
    of blank lines), however long the stream: memory does not grow with
    the input."""
    tokenizer = TOKENIZERS[name]
    lines = TRAINING.replace("<|", "").splitlines(keepends=True) * 10
    longest = max(len(line.encode("utf-8")) for line in lines)
    blank_run = max(len(list(run)) for blank, run in itertools.groupby(
        lines, key=str.isspace) if blank)
    bound = 4 * block + 2 * longest * max(2, blank_run)
    assert lagging(tokenizer, lines, block) <= bound
    assert lagging(tokenizer, lines * 5, block) <= bound


@pytest.mark.slow
def test_streaming_peak_memory_is_flat(tmp_path):
    """The chapter's experiment: peak resident memory of a process that
    streams a file does not grow with the file."""
    from scratchllm.tokenizer.bench import (
        streaming_peak_memory,
        write_text_of_size,
    )

    tokenizer = TOKENIZERS["gpt2"]
    tokenizer.save(tmp_path / "tok")
    peaks = []
    for size in (200_000, 2_000_000):
        path = tmp_path / f"{size}.txt"
        write_text_of_size(path, TRAINING.encode(), size)
        result = streaming_peak_memory(tmp_path / "tok", path)
        with open(path, encoding="utf-8") as lines:
            assert result["tokens"] == len(tokenizer.encode(lines.read()))
        peaks.append(result["peak_mb"])
    assert peaks[1] - peaks[0] < 8, peaks


# --- shards -------------------------------------------------------------------

@pytest.mark.parametrize("name", sorted(PATTERNS))
@settings(max_examples=40, deadline=None)
@given(documents=st.lists(texts.filter(str.strip), min_size=1,
                          max_size=8))
def test_shards_equal_our_encoder(name, documents):
    """Each document in the shards is ``<|endoftext|>`` then exactly our
    encoder's ids (special-token text in a document is plain text)."""
    tokenizer = TOKENIZERS[name]
    with tempfile.TemporaryDirectory() as folder:
        folder = Path(folder)
        with open(folder / "train.jsonl", "w", encoding="utf-8") as out:
            out.writelines(json.dumps({"text": document}) + "\n" for document in documents)
        write_shards(tokenizer, folder, folder / "tokens", ["train"],
                     shard_tokens=64)
        stream = np.concatenate(read_split(folder / "tokens", "train"))
    expected = []
    for document in documents:
        expected += [tokenizer.eot_id, *tokenizer.encode_ordinary(document)]
    assert stream.tolist() == expected


# --- chapter 4 without the shared data ----------------------------------------

def run_chapter_3(root: Path, tmp_path: Path, shared: str, ci: str,
                  monkeypatch) -> Path:
    """Execute chapter 4 on the ci profile into ``tmp_path`` with
    ``SCRATCHLLM_SHARED_DATA=shared`` and ``CI=ci``, on a small StoryWorld
    corpus made here (not chapter 3's); return the executed notebook."""
    import papermill

    from scratchllm.book.chapters import chapters, select
    from scratchllm.book.execute import KERNEL_ENV, write_downloads
    from scratchllm.data.storyworld import StoryWorld

    artifacts = tmp_path / "artifacts"
    corpus = artifacts / "ci/data/storyworld"
    corpus.mkdir(parents=True)
    stories = StoryWorld(seed=0).documents(700)
    for split, count in [("train", 600), ("val", 100)]:
        with open(corpus / f"{split}.jsonl", "w", encoding="utf-8") as out:
            out.writelines(json.dumps({"text": story.text}) + "\n" for story in itertools.islice(stories, count))
    for key, value in {**KERNEL_ENV, "SCRATCHLLM_SHARED_DATA": shared,
                       "CI": ci}.items():
        monkeypatch.setenv(key, value)
    chapter = select(chapters(root), ["04_tokenization"])[0]
    output = tmp_path / "04_tokenization.ipynb"
    papermill.execute_notebook(
        str(write_downloads(chapter, tmp_path / "notebooks")), str(output),
        cwd=str(root / "book"), kernel_name="python3", language="python",
        parameters={"profile": "ci", "artifacts_root": str(artifacts)},
        progress_bar=False)
    return output


@pytest.mark.slow
def test_chapter_3_runs_without_shared_data(root, tmp_path, monkeypatch):
    """A reader without Tiny Shakespeare and GPT-2's files: the chapter
    finishes, says what it skipped, and its glued numbers still render."""
    notebook = json.loads(run_chapter_3(
        root, tmp_path, "/nonexistent", "false", monkeypatch).read_text())
    shown, glued = [], {}
    for cell in notebook["cells"]:
        for output in cell.get("outputs", []):
            data = output.get("data", {})
            if "Skipped:" in "".join(data.get("text/plain", "")):
                shown.append("".join(data["text/html"]))
            glue = output.get("metadata", {}).get("scrapbook")
            if glue:
                plain = [v for k, v in data.items() if k.endswith("/plain")]
                glued[glue["name"]] = "".join(plain[0]) if plain else ""
    assert len(shown) >= 5 and all('class="admonition warning"' in note
                                   and "/nonexistent" in note
                                   and "vocab.json" in note
                                   for note in shown)
    assert glued["gpt2_mismatches"] == glued["train_ratio"] == "'not run'"
    assert float(glued["story_mb"]) > 0 and "tokens_dtype" in glued
    text = (root / "book/04_tokenization.md").read_text()
    used = set(re.findall(r"\{glue:(?:text|figure)\}`?([a-z0-9_]+)", text))
    used |= set(re.findall(r"```\{glue:figure\} ([a-z0-9_]+)", text))
    assert used <= set(glued), sorted(used - set(glued))
    formatted = set(re.findall(r"\{glue:text\}`([a-z0-9_]+):", text))
    assert not [key for key in formatted if "not run" in glued[key]]


@pytest.mark.slow
def test_chapter_3_fails_without_shared_data_under_ci(root, tmp_path,
                                                      monkeypatch):
    import papermill

    with pytest.raises(papermill.PapermillExecutionError,
                       match="shared data missing under CI"):
        run_chapter_3(root, tmp_path, "/nonexistent", "true", monkeypatch)
