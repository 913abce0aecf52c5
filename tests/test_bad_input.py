"""Every command, every kind of bad input: one line ``error: ...`` on
stderr, a non-zero exit, no traceback, and nothing written that looks
valid (issue 15, "Clear errors, never a traceback").

The corpus is a table, :data:`CASES`: a command line in which
``{placeholders}`` name prepared inputs (:data:`PLACEHOLDERS`). To cover a
new command, add rows; to cover a new kind of bad input, add a maker to
:func:`make_inputs` and rows that use it. Every file the command might
have touched lives under the test's own folder, and that folder must be
unchanged afterwards (an ``--out`` folder absent, an existing file as
``--out`` untouched).
"""

from __future__ import annotations

import json
import os
import re
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from scratchllm.cli import app
from scratchllm.cli.errors import DEBUG_VARIABLE

TEXT = "The little fox ran to the river. The owl said hello to the fox.\n"
BINARY = bytes(range(256)) * 4  # not UTF-8: 0x80 cannot start a character
CHAT = json.dumps({"messages": [{"role": "user", "content": "hi"},
                                {"role": "assistant", "content": "hello"}]})


def runner() -> CliRunner:
    """A runner that keeps stderr apart from stdout."""
    try:
        return CliRunner(mix_stderr=False)
    except TypeError:  # Click >= 8.2 always keeps them apart
        return CliRunner()


@pytest.fixture(scope="module")
def good(tmp_path_factory) -> dict[str, Path]:
    """Valid artifacts, made once: a tokenizer, a prepared dataset, a
    checkpoint."""
    from scratchllm.model.config import ModelConfig
    from scratchllm.model.gpt import GPT
    from scratchllm.tokenizer.train import train_bpe
    from scratchllm.train.checkpoint import save_checkpoint

    root = tmp_path_factory.mktemp("good")
    tokenizer = train_bpe([TEXT * 20], 270)
    tokenizer.save(root / "tok")
    result = CliRunner().invoke(app, [
        "data", "prepare", "storyworld", "--documents", "40",
        "--profile", "ci", "--out", str(root / "data")])
    assert result.exit_code == 0, result.output
    config = ModelConfig.preset("ci", vocab_size=tokenizer.vocab_size)
    model = GPT(config)
    optimizer = torch.optim.AdamW(model.parameters())
    save_checkpoint(root / "ckpt", 1, model.state_dict(),
                    optimizer.state_dict(),
                    {"model_config": config.to_dict()})
    return {"tok": root / "tok", "data": root / "data",
            "ckpt": root / "ckpt"}


class Inputs(dict):
    """Paths by placeholder name, each made the first time it is asked
    for (``str.format_map`` asks only for those a command line uses)."""

    def __init__(self, good: dict[str, Path],
                 makers: dict[str, Callable[[], Path]]) -> None:
        super().__init__(good)
        self.makers = makers

    def __missing__(self, name: str) -> Path:
        self[name] = self.makers[name]()
        return self[name]


def make_inputs(folder: Path, good: dict[str, Path]) -> Inputs:
    """Every bad input (and a few good ones), made under ``folder`` when
    first used."""

    def file(name: str, content: bytes | str) -> Path:
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        data = content.encode() if isinstance(content, str) else content
        path.write_bytes(data)
        return path

    def folder_named(name: str) -> Path:
        (folder / name).mkdir()
        return folder / name

    def tokenizer(name: str, bpe: bytes | str | None) -> Path:
        copy = folder / name
        shutil.copytree(good["tok"], copy)
        (copy / "bpe.json").unlink()
        if bpe is None:
            (copy / "bpe.json").mkdir()
        else:
            file(f"{name}/bpe.json", bpe)
        return copy

    def dataset(name: str, split: bytes | str | None = None,
                manifest: str | None = None) -> Path:
        copy = folder / name
        shutil.copytree(good["data"], copy)
        if split == "folder":
            (copy / "train.jsonl").unlink()
            (copy / "train.jsonl").mkdir()
        elif split == "truncated":
            lines = (copy / "train.jsonl").read_bytes()
            (copy / "train.jsonl").write_bytes(lines[:len(lines) // 2])
        elif split is not None:
            file(f"{name}/train.jsonl", split)
        if manifest is not None:
            file(f"{name}/manifest.json", manifest)
        return copy

    def checkpoint(name: str, damage: str) -> Path:
        copy = folder / name
        shutil.copytree(good["ckpt"], copy)
        step = next(p for p in copy.iterdir() if p.is_dir())
        target = step / damage
        target.write_bytes(target.read_bytes()[:100])
        return copy

    def chat_tokenizer() -> Path:
        from scratchllm.finetune.chat import add_chat_tokens
        from scratchllm.tokenizer import load_tokenizer

        add_chat_tokens(load_tokenizer(good["tok"])).save(folder / "chat")
        return folder / "chat"

    def pairs(name: str, prompt: str, chosen: str, rejected: str) -> Path:
        return file(name, json.dumps({"prompt": prompt, "chosen": chosen,
                                      "rejected": rejected}) + "\n")

    bad_jsonl = '{"text": "ok"}\n{"text": \n'
    makers: dict[str, Callable[[], Path]] = {
        "empty": lambda: file("empty.txt", b""),
        "binary": lambda: file("binary.txt", BINARY),
        "text": lambda: file("text.txt", TEXT),
        "json_trunc": lambda: file("trunc.json", '{"format": "scratch'),
        "jsonl_bad": lambda: file("bad.jsonl", bad_jsonl),
        "jsonl_binary": lambda: file("binary.jsonl", BINARY),
        "dir": lambda: folder_named("a_dir"),
        "out": lambda: folder / "out",
        "out_file": lambda: file("out_file", "keep me\n"),
        "tok_list": lambda: tokenizer("tok_list", "[]"),
        "tok_nomerges": lambda: tokenizer("tok_nomerges", json.dumps(
            {"format": "scratchllm-bpe", "version": 1})),
        "tok_trunc": lambda: tokenizer("tok_trunc", '{"format": "scr'),
        "tok_binary": lambda: tokenizer("tok_binary", BINARY),
        "tok_dir": lambda: tokenizer("tok_dir", None),
        "data_split_dir": lambda: dataset("data_split_dir", "folder"),
        "data_bad_jsonl": lambda: dataset("data_bad_jsonl", bad_jsonl),
        "data_split_trunc": lambda: dataset("data_split_trunc",
                                            "truncated"),
        "data_manifest_trunc": lambda: dataset(
            "data_manifest_trunc", manifest='{"dataset": "story'),
        "data_manifest_list": lambda: dataset("data_manifest_list",
                                              manifest="[]"),
        "ckpt_weights": lambda: checkpoint("ckpt_weights",
                                           "model.safetensors"),
        "ckpt_meta": lambda: checkpoint("ckpt_meta", "checkpoint.json"),
        "config_inf": lambda: file("inf.yaml", "lr: .inf\n"),
        "config_nan": lambda: file("nan.yaml", "weight_decay: .nan\n"),
        "config_micro": lambda: file("micro.yaml",
                                     "micro_batch_size: -2\n"),
        "config_keep": lambda: file("keep.yaml", "keep_checkpoints: 0\n"),
        "config_binary": lambda: file("binary.yaml", BINARY),
        "config_list": lambda: file("list.yaml", "- 1\n- 2\n"),
        "config_yaml": lambda: file("syntax.yaml", "lr: [1,\n"),
        "config_toml": lambda: file("syntax.toml", "lr = \n"),
        "tok_chat": chat_tokenizer,
        "pairs_same": lambda: pairs("same.jsonl", "Hi.", "Mia.", "Mia."),
        "pairs_empty": lambda: pairs("empty.jsonl", "Hi.", " ", "Mia."),
        "pairs_long": lambda: pairs("long.jsonl", "the fox " * 400,
                                    "Mia.", "Tom."),
        "pairs_bad": lambda: file("pairs.jsonl", json.dumps(
            {"prompt": "Hi.", "chosen": "Mia.", "rejected": "Tom."})
            + '\n{"prompt": \n'),
        "chat_bad": lambda: file("chat_bad.jsonl",
                                 CHAT + '\n{"messages": \n'),
        "chat_binary": lambda: file("chat_binary.jsonl",
                                    CHAT.encode() + b"\n" + BINARY[128:]),
        "tokens_odd": lambda: file("odd.bin", bytes(7)),
        "tokens_big": lambda: file("big.bin", bytes([1, 0, 2, 0, 96, 234])),
        "dir_full": lambda: file("full/keep.txt", "keep me\n").parent,
        "book_root": lambda: file("book_root/_toc.yml", "root: intro\n")
        .parent,
    }
    return Inputs(good, makers)


def case(line: str, why: str, expect: str = "", xfail: str = "",
         slow: bool = False, cwd: str = ""):
    """One row: a command line, why its input is bad, a fragment the
    error must contain (when the line could fail for another reason),
    for a known gap the issue that closes it, whether it is slow, and
    the placeholder of a folder to run it in (else the current one)."""
    marks = [pytest.mark.xfail(strict=True, reason=xfail)] if xfail else []
    marks += [pytest.mark.slow] if slow else []
    name = f"{line.split('{')[0].strip()}: {why}"
    return pytest.param(line, why, expect, cwd, marks=marks, id=name)


SFT = ("sft --profile ci --checkpoint {ckpt} --tokenizer {tok} "
       "--out {out} ")

#: The corpus. Placeholders: see make_inputs.
CASES = [
    # tokenizer (chapter 4)
    case("tokenizer train {binary} --out {out} --vocab-size 260", "binary",
         "not UTF-8"),
    case("tokenizer train {jsonl_binary} --out {out} --vocab-size 260",
         "binary jsonl", "not UTF-8"),
    case("tokenizer train {jsonl_bad} --out {out} --vocab-size 260",
         "bad jsonl", "bad.jsonl:2"),
    case("tokenizer train {empty} --out {out} --vocab-size 260", "empty",
         "no text"),
    case("tokenizer train {dir} --out {out} --vocab-size 260", "dir as file"),
    case("tokenizer train {text} --out {out_file} --vocab-size 260",
         "file as --out"),
    case("tokenizer train {text} --out {out} --vocab-size -5", "range"),
    case("tokenizer encode {tok} --file {binary}", "binary --file",
         "not UTF-8"),
    case("tokenizer encode {tok} --file {dir}", "dir as --file"),
    case("tokenizer encode {tok} hello --file {text}", "TEXT and --file",
         "not both"),
    case("tokenizer encode {tok_list} hello", "bpe.json is []", "bpe.json"),
    case("tokenizer encode {tok_nomerges} hello", "bpe.json lacks merges",
         "bpe.json"),
    case("tokenizer encode {tok_trunc} hello", "truncated bpe.json",
         "bpe.json"),
    case("tokenizer encode {tok_binary} hello", "binary bpe.json", "bpe.json"),
    case("tokenizer encode {tok_dir} hello", "bpe.json is a folder",
         "bpe.json"),
    case("tokenizer encode {text} hello", "file as tokenizer folder"),
    case("tokenizer decode {tok} 99999", "id out of range"),
    case("tokenizer decode {tok_trunc} 1", "truncated bpe.json"),
    case("tokenizer export {tok_list} --out {out}", "bpe.json is []"),
    case("tokenizer export {tok} --out {out_file}", "file as --out"),
    case("tokenizer shard {tok} {data_split_dir} --out {out}",
         "train.jsonl is a folder"),
    case("tokenizer shard {tok} {data_bad_jsonl} --out {out}", "bad jsonl",
         "train.jsonl"),
    case("tokenizer shard {tok} {text} --out {out}", "file as data folder"),
    case("tokenizer shard {tok} {data} --out {out_file}", "file as --out"),
    case("tokenizer shard {tok} {data} --out {out} --shard-tokens 0", "range"),
    case("tokenizer shard {tok} {data} --out {out} --workers 0", "range"),
    case("tokenizer shard {tok} {data} --out {out} --workers -1", "range"),
    case("tokenizer shard {tok_trunc} {data} --out {out}", "bad tokenizer"),
    case("data tokenize {tok} {data_bad_jsonl} --out {out}", "bad jsonl",
         "train.jsonl"),
    case("tokenizer bench --text {binary}", "binary"),
    case("tokenizer bench --text {empty}", "empty"),
    case("tokenizer bench --text {text} --megabytes nan", "range",
         "--megabytes"),
    case("tokenizer bench --text {text} --stream-megabytes 5,x", "range",
         "--stream-megabytes"),
    # data (chapters 2 and 3)
    case("data prepare local --path {empty} --license MIT --out {out}",
         "empty"),
    case("data prepare local --path {binary} --license MIT --out {out}",
         "binary"),
    case("data prepare local --path {dir} --license MIT --out {out}",
         "dir as file"),
    case("data prepare hf --name nobody/nothing --license MIT "
         "--out {out}", "offline, unknown dataset", "nobody/nothing",
         slow=True),
    case("data prepare shakespeare --path {empty} --out {out}", "empty"),
    case("data prepare shakespeare --path {binary} --out {out}", "binary"),
    case("data prepare storyworld --documents 30 --out {out_file}",
         "file as --out"),
    case("data prepare storyworld --documents -5 --out {out}", "range"),
    case("data prepare storyworld --documents 0 --out {out}", "range"),
    case("data prepare storyworld --documents 30 --val-fraction 0 "
         "--out {out}", "range"),
    case("data prepare storyworld --documents 30 --val-fraction -0.1 "
         "--out {out}", "range"),
    case("data prepare storyworld --documents 30 --val-fraction nan "
         "--out {out}", "range"),
    case("data prepare storyworld --documents 30 --val-fraction 1.5 "
         "--out {out}", "range"),
    case("data prepare storyworld --documents 30 --workers 0 --out {out}",
         "range"),
    case("data audit {data_manifest_trunc}", "truncated manifest",
         "1 problem"),
    case("data audit {data_manifest_list}", "manifest is []"),
    case("data audit {data_split_trunc}", "truncated split", "problem"),
    case("data audit {data_split_dir}", "split is a folder"),
    case("data audit {text}", "file as folder"),
    case("data audit {dir}", "empty folder"),
    case("data sample {data} -n -1", "range"),
    case("data bench --documents 0", "range"),
    case("data bench --workers -1", "range"),
    case("data sample {data_split_trunc} --split train", "truncated split",
         "damaged or truncated"),
    case("data sample {data_split_dir} --split train", "split is a folder"),
    case("data sample {data} --split test", "unknown split"),
    # model (chapters 5-7)
    case("model export {ckpt_weights} --out {out} --no-check",
         "damaged weights"),
    case("model export {ckpt_meta} --out {out} --no-check",
         "damaged checkpoint.json"),
    case("model export {text} --out {out} --no-check", "file as folder"),
    case("model export {ckpt} --out {out_file} --no-check", "file as --out"),
    case("model export {ckpt} --out {out} --tokenizer {tok_list} --no-check",
         "bad tokenizer"),
    case("model info --preset ci --batch-size 0", "range"),
    case("model bench-attention --lengths 0", "range"),
    case("model bench-attention --repeats 0", "range"),
    # training (chapter 8)
    case("pretrain --config {config_inf} --artifacts-root {out}", "lr inf",
         "lr must be"),
    case("pretrain --config {config_nan} --artifacts-root {out}", "wd nan",
         "weight_decay must"),
    case("pretrain --config {config_micro} --artifacts-root {out}",
         "micro batch -2", "micro_batch_size"),
    case("pretrain --config {config_keep} --artifacts-root {out}",
         "keep_checkpoints 0", "keep_checkpoints"),
    case("pretrain --config {config_binary} --artifacts-root {out}",
         "binary config",
         "binary.yaml is not a readable config"),
    case("pretrain --config {config_yaml} --artifacts-root {out}",
         "bad YAML", "syntax.yaml is not a readable config"),
    case("pretrain --config {config_toml} --artifacts-root {out}",
         "bad TOML", "syntax.toml is not a readable config"),
    case("pretrain --config {config_list} --artifacts-root {out}",
         "config is a list", "mapping"),
    case("pretrain --config {json_trunc} --artifacts-root {out}",
         "not yaml/toml"),
    case("pretrain --profile ci --artifacts-root {out}", "no shards",
         "no token shards"),
    case("pretrain --profile ci --max-steps 0 --artifacts-root {out}",
         "range"),
    case("estimate --params 124M --flops 1e20", "conflicting options",
         "conflict"),
    case("estimate --params -5", "range"),
    case("estimate --params 124M --mfu nan", "range"),
    case("estimate --params 124M --devices 0", "range"),
    case("bench-train --steps 0 --model ci", "range"),
    case("train bench --steps 0 --model ci", "range"),
    case("tokens index {tokens_odd} --vocab-size 50 --out {out}",
         "odd bytes for uint16", "whole number"),
    case("tokens index {tokens_big} --vocab-size 50 --out {out}",
         "id >= vocab size", "outside the vocabulary"),
    case("tokens index {empty} --vocab-size 50 --out {out}", "empty",
         "empty"),
    case("tokens index {out} --vocab-size 50", "missing file",
         "no such file"),
    case("tokens index {dir} --vocab-size 50 --out {out}", "dir as file",
         "folder"),
    case("tokens index {tokens_big} --vocab-size 0", "range"),
    case("tokens index {tokens_big} --vocab-size 70000 --dtype float32 "
         "--out {out}", "bad dtype", "dtype"),
    case("tokens index {tokens_big} --vocab-size 70000 --val-fraction 1 "
         "--out {out}", "bad val fraction", "val_fraction"),
    case("train bench --model ci --compile maybe", "bad --compile",
         "--compile"),
    case("train bench --model ci --kernels turbo", "bad --kernels",
         "--kernels"),
    case("train bench --model ci --precision fp8", "bad precision",
         "precision"),
    case("train bench --model nope --compile off", "unknown preset",
         "unknown preset"),
    case("train bench --model ci --peak-tflops 0", "range"),
    case("train bench --model ci --json {dir}", "dir as --json"),
    # generation and evaluation (chapter 10)
    case("generate hi --checkpoint {ckpt} --tokenizer {tok} --temperature nan",
         "nan temperature", "temperature"),
    case("generate hi --checkpoint {ckpt} --tokenizer {tok} "
         "--repetition-penalty nan", "nan penalty", "repetition_penalty"),
    case("generate hi --checkpoint {ckpt} --tokenizer {tok} --threads 0",
         "range"),
    case("generate hi --checkpoint {ckpt} --tokenizer {tok} --top-p nan",
         "nan top-p", "top_p"),
    case("generate hi -i --checkpoint {ckpt} --tokenizer {tok}",
         "PROMPT and -i", "not both"),
    case("generate hi --checkpoint {ckpt_weights} --tokenizer {tok}",
         "damaged checkpoint"),
    case("generate hi --checkpoint {ckpt} --tokenizer {tok_list}",
         "bad tokenizer"),
    case("eval --artifacts-root {out} --profile ci", "no checkpoint"),
    case("eval --artifacts-root {dir} --questions {binary} --profile ci",
         "binary questions"),
    case("generate-bench --checkpoint {ckpt_weights} --no-hf",
         "damaged checkpoint"),
    case("generate-bench --checkpoint {text} --no-hf", "file as checkpoint"),
    case("generate-bench --threads 0 --preset ci --no-hf", "range"),
    # distributed (chapter 9)
    case("distributed configs {out_file}", "file as folder"),
    case("distributed memory --devices 0", "range"),
    case("distributed pretrain --profile ci --set "
         "artifacts_root=\"{out}\"", "no shards", "no token shards"),
    case("distributed pretrain --config {config_inf}", "lr inf", "lr must be"),
    case("distributed pretrain --processes 0", "range"),
    case("distributed pretrain --timeout nan", "range", "--timeout"),
    case("distributed bench --processes 2 --profile ci --set "
         "artifacts_root=\"{out}\" --out {out}/bench", "no shards",
         "no token shards"),
    # alignment (chapter 12)
    case("align dpo {pairs_same} --sft {ckpt} --tokenizer {tok_chat} "
         "--output {out}", "identical pair", "identical"),
    case("align reward {pairs_empty} --sft {ckpt} --tokenizer {tok_chat} "
         "--output {out}", "empty response", "chosen is empty"),
    case("align dpo {pairs_long} --sft {ckpt} --tokenizer {tok_chat} "
         "--output {out}", "prompt longer than the context", "no room"),
    case("align reward {pairs_bad} --sft {ckpt} --tokenizer {tok_chat} "
         "--output {out}", "bad jsonl", "pairs.jsonl:2"),
    case("align reward {empty} --sft {ckpt} --tokenizer {tok_chat} "
         "--output {out}", "no pairs", "no preference pairs"),
    case("align dpo {pairs_same} --sft {ckpt} --tokenizer {tok_list} "
         "--output {out}", "bad tokenizer"),
    case("align dpo {pairs_same} --beta 0", "beta 0", "beta"),
    case("align dpo {pairs_same} --steps 0", "range", "--steps"),
    case("align reward {pairs_same} --lr nan --sft {ckpt} "
         "--tokenizer {tok_chat} --output {out}", "lr nan"),
    case("align grpo --group-size 3 --batch-size 8", "group size",
         "multiple of the group size"),
    case("align grpo --requests 0", "range", "--requests"),
    case("align grpo --sft {text} --tokenizer {tok_chat} --output {out}",
         "file as checkpoint"),
    # audit (chapter 14)
    case("audit {out}", "missing artifacts folder"),
    case("audit {dir}", "empty artifacts folder"),
    case("audit {text}", "file as artifacts folder"),
    case("audit {dir} --samples -1", "range", "--samples"),
    # fine-tuning (chapter 11)
    case("sft --profile ci --artifacts-root {out}", "no checkpoint"),
    case(SFT + "--data {jsonl_bad}", "not a chat", "bad.jsonl:1"),
    case(SFT + "--data {chat_bad}", "bad jsonl", "chat_bad.jsonl:2"),
    case(SFT + "--data {jsonl_binary}", "binary jsonl", "binary.jsonl:1"),
    case(SFT + "--data {chat_binary}", "binary line",
         "chat_binary.jsonl:2: not UTF-8"),
    case(SFT + "--data {empty}", "empty data", "empty"),
    case(SFT + "--data {dir}", "dir as --data"),
    case(SFT.replace("{ckpt}", "{ckpt_weights}") + "--data {jsonl_bad}",
         "damaged checkpoint"),
    case(SFT.replace("{ckpt}", "{text}") + "--data {jsonl_bad}",
         "file as checkpoint"),
    case(SFT.replace("{tok}", "{tok_dir}") + "--data {jsonl_bad}",
         "bpe.json is a folder", "bpe.json"),
    case(SFT.replace("{tok}", "{text}") + "--data {jsonl_bad}",
         "file as tokenizer folder"),
    case(SFT + "--data {chat_bad} --steps 0", "range", "max_steps"),
    case(SFT + "--data {chat_bad} --batch-size -1", "range",
         "batch_size"),
    case(SFT + "--data {chat_bad} --lr nan", "range", "lr must be"),
    case(SFT + "--data {chat_bad} --context 0", "range", "context_length"),
    case(SFT + "--data {chat_bad} --lora-rank -1", "range", "--lora-rank"),
    case(SFT + "--data {chat_bad} --lora-rank 4 --lora-alpha nan",
         "range", "--lora-alpha"),
    case(SFT + "--data {chat_bad} --precision fp8", "unknown precision",
         "precision must be"),
    case(SFT.replace("{out}", "{out_file}") + "--data {jsonl_bad}",
         "file as --out"),
    # chat (chapter 11)
    case("chat --once hi --profile ci --artifacts-root {out}",
         "no checkpoint"),
    case("chat --once hi --checkpoint {ckpt_weights} --tokenizer {tok}",
         "damaged checkpoint"),
    case("chat --once hi --checkpoint {text} --tokenizer {tok}",
         "file as checkpoint"),
    case("chat --once hi --checkpoint {ckpt} --tokenizer {tok_dir}",
         "bpe.json is a folder", "bpe.json"),
    case("chat --once hi --checkpoint {ckpt} --tokenizer {text}",
         "file as tokenizer folder"),
    case("chat --once hi --checkpoint {ckpt} --tokenizer {tok} "
         "--temperature nan", "range", "temperature"),
    case("chat --once hi --checkpoint {ckpt} --tokenizer {tok} "
         "--max-new-tokens 0", "range", "max_new_tokens"),
    case("chat --once hi --checkpoint {ckpt} --tokenizer {tok} --top-k -1",
         "range", "top_k"),
    # serving (chapter 13): every row fails before a server starts
    case("serve {ckpt_weights} --tokenizer {tok}", "damaged checkpoint"),
    case("serve {ckpt_meta} --tokenizer {tok}", "damaged checkpoint.json"),
    case("serve {text} --tokenizer {tok}", "file as checkpoint"),
    case("serve {ckpt} --tokenizer {tok_list}", "bpe.json is []",
         "bpe.json"),
    case("serve {ckpt} --tokenizer {text}", "file as tokenizer folder"),
    case("serve {ckpt} --tokenizer {tok} --threads 0", "range",
         "--threads"),
    case("serve {ckpt} --tokenizer {tok} --quantize int3",
         "unknown quantization", "int3"),
    case("serve-bench {ckpt_weights} --tokenizer {tok}",
         "damaged checkpoint"),
    case("serve-bench {text} --tokenizer {tok}", "file as checkpoint"),
    case("serve-bench {ckpt} --tokenizer {tok_dir}", "bpe.json is a folder",
         "bpe.json"),
    case("serve-bench {ckpt} --tokenizer {tok} --threads 0", "range",
         "--threads"),
    case("serve-bench {ckpt} --tokenizer {tok} --quantize int3",
         "unknown quantization", "int3"),
    # quantization and export (chapter 12)
    case("quantize {ckpt_weights} --tokenizer {tok} --tokens {dir}",
         "damaged checkpoint"),
    case("quantize {text} --tokenizer {tok} --tokens {dir}",
         "file as checkpoint"),
    case("quantize {ckpt} --tokenizer {tok_trunc} --tokens {dir}",
         "truncated bpe.json", "bpe.json"),
    case("quantize {ckpt} --tokenizer {tok} --tokens {dir}",
         "no token shards"),
    case("quantize {ckpt} --tokenizer {tok} --tokens {text}",
         "file as token folder"),
    case("quantize {ckpt} --tokenizer {tok} --tokens {dir} --threads 0",
         "range", "--threads"),
    case("export {ckpt_weights} {out} --tokenizer {tok}",
         "damaged checkpoint"),
    case("export {ckpt_meta} {out} --tokenizer {tok} --format hf",
         "damaged checkpoint.json"),
    case("export {text} {out} --tokenizer {tok}", "file as checkpoint"),
    case("export {ckpt} {out} --tokenizer {tok_nomerges}",
         "bpe.json lacks merges", "bpe.json"),
    case("export {ckpt} {out_file} --tokenizer {tok} --format hf",
         "file as output folder"),
    case("export {ckpt} {out} --tokenizer {tok} --format onnx",
         "unknown format", "onnx"),
    case("export {ckpt} {out} --tokenizer {tok} --type q4_k",
         "unknown GGUF type", "q4_k"),
    # starter repository (chapter 15)
    case("scaffold {dir_full}", "non-empty folder"),
    case("scaffold {out_file}", "file as folder"),
    case("scaffold {out} --track wizard", "unknown track", "wizard"),
    case("scaffold {out} --budget moon", "unknown budget", "moon"),
    # book
    case("book execute --profile nope", "unknown profile"),
    case("book release --no-check", "not in a book", "_toc.yml",
         cwd="dir"),
    case("book release --no-check", "book not built", "build the book",
         cwd="book_root"),
    case("book new 04_tokenization Again", "chapter exists"),
]


def snapshot(folder: Path) -> dict[str, tuple[int, int]]:
    """Every path under ``folder`` with its size and modification time."""
    return {str(p.relative_to(folder)): (p.stat().st_size,
                                         p.stat().st_mtime_ns)
            for p in sorted(folder.rglob("*"))}


def error_lines(stderr: str) -> list[str]:
    """The lines of stderr, progress bars (``\\r`` updates) left out."""
    return [line for line in re.split(r"[\r\n]+", stderr)
            if line.strip() and not PROGRESS.search(line)]


PROGRESS = re.compile(r"\d+(it| ?docs?| ?doc)?(/s)? \[\d\d:\d\d")


@pytest.mark.parametrize(("line", "why", "expect", "cwd"), CASES)
def test_bad_input_gets_one_clean_line(line: str, why: str, expect: str,
                                       cwd: str, good, tmp_path: Path,
                                       monkeypatch) -> None:
    monkeypatch.delenv(DEBUG_VARIABLE, raising=False)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    paths = make_inputs(tmp_path, good)
    argv = [part.format_map(paths) for part in line.split()]
    if cwd:
        monkeypatch.chdir(paths[cwd])
    before, shared = snapshot(tmp_path), snapshot(good["tok"].parent)
    result = runner().invoke(app, argv)
    assert result.exception is None or isinstance(
        result.exception, SystemExit), (
        f"{why}: raised {result.exception!r}\n{result.output}")
    assert result.exit_code != 0, f"{why}: exit 0\n{result.output}"
    lines = error_lines(result.stderr)
    assert len(lines) == 1 and lines[0].startswith("error: "), (
        f"{why}: stderr {result.stderr!r}")
    assert expect in lines[0], f"{why}: wanted {expect!r} in {lines[0]!r}"
    # Nothing on stdout before the error, but what an audit found.
    printed = [line for line in result.stdout.splitlines()
               if not line.startswith("PROBLEM: ")]
    assert printed == [], f"{why}: printed {printed!r} first"
    assert "Traceback" not in result.output
    assert snapshot(tmp_path) == before, f"{why}: wrote into {tmp_path}"
    assert snapshot(good["tok"].parent) == shared


def test_debug_variable_shows_the_traceback(good, tmp_path: Path,
                                            monkeypatch) -> None:
    """``SCRATCHLLM_DEBUG=1`` lets an expected error through unchanged."""
    monkeypatch.setenv(DEBUG_VARIABLE, "1")
    paths = make_inputs(tmp_path, good)
    result = runner().invoke(app, ["tokenizer", "encode",
                                   str(paths["tok_trunc"]), "hi"])
    assert isinstance(result.exception, ValueError)


def test_a_bug_keeps_its_traceback(monkeypatch) -> None:
    """Only expected error kinds are turned into one line."""
    from scratchllm.model import config

    def broken(*args, **kwargs):
        raise ZeroDivisionError("a bug")

    monkeypatch.delenv(DEBUG_VARIABLE, raising=False)
    monkeypatch.setattr(config.ModelConfig, "preset", broken)
    result = runner().invoke(app, ["model", "info", "--preset", "ci"])
    assert isinstance(result.exception, ZeroDivisionError)


def test_cases_cover_every_command() -> None:
    """A command without a row in the corpus fails this test."""
    import typer.main

    def leaves(command, path):
        children = getattr(command, "commands", None)
        if not children:
            yield " ".join(path)
            return
        for name, child in children.items():
            yield from leaves(child, [*path, name])

    lines = [case.values[0] for case in CASES]
    covered = {line.split()[0] for line in lines}
    covered |= {" ".join(line.split()[:2]) for line in lines}
    # These read no user file or number: the book's own sources, or the
    # worker, which the launcher calls with arguments checked before.
    exempt = {"distributed worker", "distributed build-ops", "book tangle",
              "book lint", "book html", "book pdf", "book check-pdf",
              "book all"}
    missing = [c for c in leaves(typer.main.get_command(app), [])
               if c not in covered and c not in exempt]
    assert not missing, f"add rows to CASES for {missing}"
    assert os.environ.get(DEBUG_VARIABLE) in (None, "", "0")


def test_stdin_and_file_refuse_bad_utf8_alike(good, tmp_path: Path) -> None:
    """``encode`` from stdin no longer replaces bad bytes silently: it
    refuses them as ``--file`` does, and says that nothing was encoded."""
    binary = tmp_path / "binary.txt"
    binary.write_bytes(BINARY)
    tok = str(good["tok"])
    for args, stdin in ((["--file", str(binary)], None), ([], BINARY)):
        result = runner().invoke(app, ["tokenizer", "encode", tok, *args],
                                 input=stdin)
        assert result.exit_code == 1
        assert "not UTF-8" in result.stderr
        assert "nothing was encoded" in result.stderr
    good_text = runner().invoke(app, ["tokenizer", "encode", tok],
                                input=TEXT.encode())
    assert good_text.exit_code == 0 and good_text.stdout.split()


def test_distributed_config_profile_beats_the_default(tmp_path: Path):
    """``distributed pretrain --config`` uses the file's profile unless
    --profile is given, and finds the missing shards before launching."""
    settings = tmp_path / "laptop.yaml"
    settings.write_text(f"profile: laptop\nartifacts_root: {tmp_path}\n")
    result = runner().invoke(app, ["distributed", "pretrain", "--config",
                                   str(settings)])
    assert result.exit_code == 1
    assert f"{tmp_path / 'laptop' / 'tokens'}" in result.stderr
    given = runner().invoke(app, ["distributed", "pretrain", "--config",
                                  str(settings), "--profile", "ci"])
    assert f"{tmp_path / 'ci' / 'tokens'}" in given.stderr


@pytest.mark.slow
def test_the_installed_entry_point_fails_the_same_way(tmp_path: Path):
    """The console script (``scratchllm = scratchllm.cli:app``) runs the
    same guard as CliRunner: one line, exit 1, and the traceback only with
    SCRATCHLLM_DEBUG=1."""
    import subprocess
    import sys

    bad = tmp_path / "bpe.json"
    bad.write_text("[]", encoding="utf-8")
    command = [sys.executable, "-c", "from scratchllm.cli import app; app()",
               "tokenizer", "encode", str(bad), "hi"]
    environment = {**os.environ, "PYTHONPATH": str(
        Path(__file__).resolve().parents[1] / "src")}
    environment.pop(DEBUG_VARIABLE, None)
    plain = subprocess.run(command, capture_output=True, text=True,
                           env=environment, timeout=120)
    assert plain.returncode == 1
    assert plain.stderr.strip().splitlines() == [
        f"error: {bad} is not a scratchllm-bpe version 1 file"]
    debug = subprocess.run(command, capture_output=True, text=True,
                           env={**environment, DEBUG_VARIABLE: "1"},
                           timeout=120)
    assert debug.returncode == 1 and "Traceback" in debug.stderr
