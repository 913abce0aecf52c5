"""Hardening II, tokenizer: saved files and token shards are never torn
(a full disk or a kill leaves the old ones whole), readers check shards
against their index, and `encode --file` streams a huge single line in
flat memory."""

from __future__ import annotations

import json
import os
import random
import resource
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from scratchllm.tokenizer import load_tokenizer, train_bpe
from scratchllm.tokenizer import shards
from scratchllm.tokenizer.export import save_folder
from scratchllm.tokenizer.shards import ShardError, read_split, write_shards

WORDS = ["the", "cat", "sat", "on", "a", "mat", "and", "dog", "ran", "Mia"]


def text(seed: int, words: int) -> str:
    rng = random.Random(seed)
    return " ".join(rng.choice(WORDS) for _ in range(words))


@pytest.fixture(scope="module")
def tokenizers():
    """Two different small tokenizers."""
    return (train_bpe([text(0, 2000)], 270),
            train_bpe([text(1, 2000) + " cats mats dogs"], 275))


def test_a_full_disk_leaves_the_old_tokenizer_whole(tokenizers, tmp_path):
    old, new = tokenizers
    folder = tmp_path / "tok"
    save_folder(old, folder)
    new.save(tmp_path / "new")
    limit = (folder / "bpe.json").stat().st_size // 2
    code = (
        "import resource, signal\n"
        "signal.signal(signal.SIGXFSZ, signal.SIG_IGN)\n"
        f"resource.setrlimit(resource.RLIMIT_FSIZE, ({limit}, {limit}))\n"
        "from scratchllm.tokenizer import load_tokenizer\n"
        "from scratchllm.tokenizer.export import save_folder\n"
        f"tok = load_tokenizer({str(tmp_path / 'new')!r})\n"
        "for save in (tok.save, save_folder):\n"
        "    try:\n"
        f"        save({str(folder)!r}) if save == tok.save else "
        f"save(tok, {str(folder)!r})\n"
        "    except OSError as error:\n"
        "        print('failed:', error)\n")
    ran = subprocess.run([sys.executable, "-c", code], capture_output=True,
                         text=True)
    assert ran.stdout.count("failed: [Errno 27] File too large") == 2, ran
    assert load_tokenizer(folder).sha256() == old.sha256()
    hf = json.loads((folder / "tokenizer.json").read_text())
    assert len(hf["model"]["merges"]) == len(old.merges)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["new", "tok"]
    assert not [p for p in folder.iterdir() if p.name.startswith(".")]


def make_data(folder: Path, documents: int, seed: int) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for split, count in [("train", documents), ("val", documents // 5)]:
        with open(folder / f"{split}.jsonl", "w") as handle:
            for number in range(count):
                handle.write(json.dumps({"id": f"{seed}-{number}",
                                         "text": text(seed + number, 30)})
                             + "\n")
    return folder


def test_a_reshard_killed_midway_leaves_the_old_shards(tokenizers, tmp_path,
                                                       monkeypatch):
    tokenizer = tokenizers[0]
    out = tmp_path / "tokens"
    old = write_shards(tokenizer, make_data(tmp_path / "a", 200, 0), out,
                       shard_tokens=2000)
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    real = shards.write_split

    def killed_in_val(tokenizer, texts, folder, split, *args):
        if split == "val":
            raise KeyboardInterrupt("killed while writing val")
        return real(tokenizer, texts, folder, split, *args)

    monkeypatch.setattr(shards, "write_split", killed_in_val)
    with pytest.raises(KeyboardInterrupt):
        write_shards(tokenizer, make_data(tmp_path / "b", 900, 7), out,
                     shard_tokens=2000)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    assert sum(len(s) for s in read_split(out, "train")) == \
        sum(e["tokens"] for e in old["splits"]["train"])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a", "b",
                                                          "tokens"]


def test_readers_refuse_shards_that_differ_from_the_index(tokenizers,
                                                          tmp_path):
    out = tmp_path / "tokens"
    index = write_shards(tokenizers[0], make_data(tmp_path / "a", 100, 0),
                         out)
    entry = index["splits"]["train"][0]
    assert "sha256" in entry
    shard = out / entry["file"]
    data = shard.read_bytes()
    shard.write_bytes(data[: len(data) // 2])
    with pytest.raises(ShardError, match="index.json says"):
        read_split(out, "train")
    flipped = bytearray(data)
    flipped[10] ^= 1
    shard.write_bytes(bytes(flipped))
    with pytest.raises(ShardError, match="SHA-256"):
        read_split(out, "train")
    shard.unlink()
    with pytest.raises(ShardError, match="missing"):
        read_split(out, "train")


def test_shards_refuse_a_folder_with_other_files(tokenizers, tmp_path):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "thesis.tex").write_text("precious")
    with pytest.raises(FileExistsError, match="thesis.tex"):
        write_shards(tokenizers[0], make_data(tmp_path / "a", 20, 0), out)
    assert (out / "thesis.tex").read_text() == "precious"


def test_train_command_saves_through_a_swapped_folder(tmp_path):
    from typer.testing import CliRunner

    from scratchllm.cli import app

    corpus = tmp_path / "corpus.txt"
    corpus.write_text(text(0, 2000))
    out = tmp_path / "tok"
    runner = CliRunner()
    args = ["tokenizer", "train", str(corpus), "--out", str(out),
            "--vocab-size", "262"]
    assert runner.invoke(app, args).exit_code == 0
    assert sorted(p.name for p in out.iterdir()) == [
        "bpe.json", "tokenizer.json", "tokenizer_config.json", "vocab.txt"]
    (out / "notes.txt").write_text("mine")
    refused = runner.invoke(app, args)
    assert refused.exit_code == 1 and "notes.txt" in refused.output


def peak_rss_mb(tokenizer_dir: Path, file: Path) -> float:
    """Peak resident memory (MB) of `scratchllm tokenizer encode --file`,
    measured in a fresh parent so only that one child counts."""
    probe = (
        "import resource, subprocess, sys\n"
        "subprocess.run([sys.executable, '-c', 'from scratchllm.cli "
        "import app; app()', 'tokenizer', 'encode', sys.argv[1], "
        "'--file', sys.argv[2]], stdout=subprocess.DEVNULL, check=True)\n"
        "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)\n")
    ran = subprocess.run([sys.executable, "-c", probe, str(tokenizer_dir),
                          str(file)], capture_output=True, text=True,
                         check=True, timeout=120)
    return int(ran.stdout) / 1024


@pytest.mark.slow
def test_encode_file_streams_a_huge_single_line(tokenizers, tmp_path):
    """A ~20 MB file that is one line: before the fix the line was held
    whole and encoded at once (about 840 MB peak); now memory stays
    within a few MB of encoding a tiny file."""
    tokenizers[0].save(tmp_path / "tok")
    small, huge = tmp_path / "small.txt", tmp_path / "huge.txt"
    small.write_text(text(0, 100))
    with open(huge, "w") as handle:
        for seed in range(540):
            handle.write(text(seed, 10_000) + " ")
    assert "\n" not in huge.read_text()[:1000]
    assert huge.stat().st_size > 19e6
    baseline = peak_rss_mb(tmp_path / "tok", small)
    peak = peak_rss_mb(tmp_path / "tok", huge)
    assert peak - baseline < 100, (baseline, peak)
