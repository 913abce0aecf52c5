"""The ``scratchllm tokenizer`` commands (chapter 4), end to end."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from typer.testing import CliRunner

from scratchllm.cli import app
from scratchllm.cli import tokenizer as tokenizer_cli
from scratchllm.tokenizer import load_tokenizer
from scratchllm.tokenizer.shards import read_split

runner = CliRunner()
TEXT = ("The little fox ran to the river. The owl said hello to the fox.\n"
        "Über den Wolken, 東京は晴れ。 Numbers: 12345, 3.14! 👋🏽\n") * 20


def invoke(*args: str):
    result = runner.invoke(app, [str(a) for a in args])
    return result


def test_train_encode_decode_export_shard(tmp_path: Path):
    data = tmp_path / "data"
    data.mkdir()
    for split, copies in [("train", 30), ("val", 3)]:
        with open(data / f"{split}.jsonl", "w", encoding="utf-8") as out:
            out.writelines(json.dumps({"id": str(i), "text": TEXT[:200 + i],
                                      "source": "test"}) + "\n" for i in range(copies))
    tok = tmp_path / "tok"
    result = invoke("tokenizer", "train", data / "train.jsonl",
                    "--vocab-size", 290, "--out", tok)
    assert result.exit_code == 0, result.output
    assert {p.name for p in tok.iterdir()} >= {"bpe.json", "vocab.txt",
                                               "tokenizer.json"}
    tokenizer = load_tokenizer(tok)
    assert tokenizer.vocab_size == 290

    result = invoke("tokenizer", "encode", tok, "the fox<|endoftext|>")
    assert result.exit_code == 0, result.output
    ids = [int(i) for i in result.output.split()]
    assert ids == tokenizer.encode("the fox<|endoftext|>")
    result = invoke("tokenizer", "decode", tok, *ids)
    assert result.output.rstrip("\n") == "the fox<|endoftext|>"

    text_file = tmp_path / "text.txt"
    text_file.write_text(TEXT, encoding="utf-8")
    result = invoke("tokenizer", "encode", tok, "--file", text_file)
    assert [int(i) for i in result.output.split()] == tokenizer.encode(TEXT)

    result = invoke("tokenizer", "export", tok, "--out", tmp_path / "hf")
    assert result.exit_code == 0 and (tmp_path / "hf" /
                                      "tokenizer.json").exists()

    result = invoke("tokenizer", "shard", tok, data, "--out",
                    tmp_path / "tokens")
    assert result.exit_code == 0, result.output
    shards = read_split(tmp_path / "tokens", "train")
    assert int(shards[0][0]) == tokenizer.eot_id


def test_readable_errors(tmp_path: Path):
    result = invoke("tokenizer", "encode", tmp_path / "missing", "x")
    assert result.exit_code == 1 and "no tokenizer at" in result.output
    result = invoke("tokenizer", "train", tmp_path / "nope.txt", "--out",
                    tmp_path / "t")
    assert result.exit_code == 1 and "no such file" in result.output
    small = tmp_path / "small.txt"
    small.write_text("ab", encoding="utf-8")
    result = invoke("tokenizer", "train", small, "--vocab-size", 100,
                    "--out", tmp_path / "t")
    assert result.exit_code == 1 and "at least 260" in result.output


def test_data_tokenize_alias_joins_an_existing_data_group():
    main = typer.Typer()
    data = typer.Typer()

    @data.command()
    def prepare() -> None:
        """A stand-in for the data chapter's commands."""

    main.add_typer(data, name="data")
    tokenizer_cli.register(main)
    result = runner.invoke(main, ["data", "--help"])
    assert "tokenize" in result.output and "prepare" in result.output
    result = runner.invoke(main, ["tokenizer", "--help"])
    assert "shard" in result.output
