"""The deployment commands (chapter 13): `scratchllm serve`, `serve-bench`,
`quantize` and `export`, their outputs and their one-line errors."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from scratchllm.cli import app
from scratchllm.model.config import ModelConfig
from scratchllm.model.gpt import GPT
from scratchllm.quantize.gguf import gguf_metadata
from scratchllm.serve.server import free_port
from scratchllm.tokenizer import train_bpe
from scratchllm.tokenizer.shards import write_shards
from scratchllm.train.checkpoint import save_checkpoint

runner = CliRunner()
TEXT = ("Once upon a time there was a little cat. The cat liked milk. "
        "One day the cat met a dog, and they played in the sun.\n")


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory) -> Path:
    """A profile folder: tokenizer, token shards and a checkpoint."""
    folder = tmp_path_factory.mktemp("artifacts") / "ci"
    tokenizer = train_bpe([TEXT * 20], 256 + 40 + 4)
    tokenizer.save(folder / "tokenizer")
    data = folder / "data"
    data.mkdir(parents=True)
    for split in ("train", "val"):
        (data / f"{split}.jsonl").write_text(
            json.dumps({"text": TEXT * 30}) + "\n")
    write_shards(tokenizer, data, folder / "tokens" / "storyworld")
    torch.manual_seed(0)
    model = GPT(ModelConfig(vocab_size=tokenizer.vocab_size,
                            context_length=64, d_model=64, n_layers=2,
                            n_heads=4, n_kv_heads=2, ffn_hidden=96))
    save_checkpoint(folder / "checkpoints" / "pretrain", 1,
                    model.state_dict(), {"state": {}, "param_groups": []},
                    {"model_config": model.config.to_dict()})
    return folder


def checkpoint(artifacts: Path) -> str:
    return str(artifacts / "checkpoints" / "pretrain")


def test_export_gguf_and_hf(artifacts, tmp_path) -> None:
    result = runner.invoke(app, ["export", checkpoint(artifacts),
                                 str(tmp_path / "m.gguf"), "--type",
                                 "q8_0"])
    assert result.exit_code == 0, result.output
    meta = gguf_metadata(tmp_path / "m.gguf")
    assert meta["general.file_type"] == 7          # mostly Q8_0
    assert "tokenizer.chat_template" in meta       # the tokenizer has
    result = runner.invoke(app, ["export", checkpoint(artifacts),  # chat
                                 str(tmp_path / "hf"), "--format", "hf"])
    assert result.exit_code == 0, result.output
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from scratchllm.train.checkpoint import load_model

    ours, _ = load_model(checkpoint(artifacts))
    theirs = AutoModelForCausalLM.from_pretrained(tmp_path / "hf").eval()
    ids = AutoTokenizer.from_pretrained(tmp_path / "hf")(
        "The cat met a dog", return_tensors="pt").input_ids
    with torch.no_grad():
        assert torch.allclose(theirs(ids).logits, ours(ids), atol=1e-4)


def test_quantize_prints_the_table(artifacts) -> None:
    result = runner.invoke(app, ["quantize", checkpoint(artifacts),
                                 "--val-tokens", "300", "--new-tokens",
                                 "4"])
    assert result.exit_code == 0, result.output
    for name in ("float32", "int8", "int4 g32", "int4 g128",
                 "int4 g64 GPTQ", "torch.ao int8"):
        assert name in result.output


@pytest.mark.parametrize("arguments, message", [
    (["serve", "/no/such/checkpoint"], "no checkpoint at"),
    (["serve", "CKPT", "--tokenizer", "/no/tok"], "no tokenizer at"),
    (["serve", "CKPT", "--quantize", "int3"], "--quantize must be"),
    (["serve-bench", "/no/such/checkpoint"], "no checkpoint at"),
    (["quantize", "/no/such/checkpoint"], "no checkpoint at"),
    (["quantize", "CKPT", "--tokens", "/no/shards"],
     "cannot read validation tokens"),
    (["export", "CKPT", "OUT", "--format", "onnx"], "--format must be"),
    (["export", "CKPT", "OUT", "--type", "q4_k"], "--type must be"),
    (["export", "/no/such/checkpoint", "OUT"], "no checkpoint at"),
    (["serve", "TOKDIR", "--tokenizer", "TOKDIR"], "checkpoint"),
])
def test_bad_input_is_one_clear_error_line(artifacts, tmp_path, arguments,
                                           message) -> None:
    replace = {"CKPT": checkpoint(artifacts),
               "TOKDIR": str(artifacts / "tokenizer"),
               "OUT": str(tmp_path / "out.gguf")}
    result = runner.invoke(app, [replace.get(a, a) for a in arguments])
    assert result.exit_code == 1, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), lines
    assert message in lines[0]
    assert "Traceback" not in result.output


def test_serve_on_a_busy_port_is_one_clear_error_line(artifacts) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = runner.invoke(app, ["serve", checkpoint(artifacts),
                                     "--port", str(port)])
    assert result.exit_code == 1, result.output
    assert result.output.strip() == (
        f"error: cannot listen on 127.0.0.1:{port}: Address already in use")
    result = runner.invoke(app, ["serve", checkpoint(artifacts), "--host",
                                 "no.such.host.invalid"])
    assert result.exit_code == 1
    assert result.output.startswith("error: cannot listen on no.such")


def test_serve_bench_prints_latency_and_no_5xx(artifacts) -> None:
    result = runner.invoke(app, ["serve-bench", checkpoint(artifacts),
                                 "--requests", "12", "--concurrency", "4",
                                 "--max-tokens", "4", "--baseline-requests",
                                 "6", "--json"])
    assert result.exit_code == 0, result.output
    figures = json.loads(result.output)
    assert figures["one at a time"]["ok"] == 6
    assert figures["batched"]["ok"] == 12
    for row in figures.values():
        assert row["server_errors"] == 0
        assert 0 < row["p50_s"] <= row["p95_s"]
    assert figures["one at a time"]["mean_batch"] == 1


@pytest.mark.slow
def test_serve_runs_and_stops_cleanly_on_sigterm(artifacts) -> None:
    """`scratchllm serve` in its own process: answers, then on SIGTERM
    shuts down gracefully (the app's shutdown, which stops the engine,
    completes) and exits; uvicorn re-raises the signal at the very end,
    so the status is that of SIGTERM."""
    port = free_port()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    process = subprocess.Popen(
        [sys.executable, "-c", "from scratchllm.cli import app; app()",
         "serve", checkpoint(artifacts), "--port", str(port),
         "--model-name", "tiny"], env=env, stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                with urllib.request.urlopen(
                        f"http://127.0.0.1:{port}/health", timeout=5) as r:
                    assert json.loads(r.read())["status"] == "ok"
                    break
            except OSError:
                assert process.poll() is None, process.stdout.read()
                assert time.monotonic() < deadline, "server never started"
                time.sleep(0.5)
        body = json.dumps({"model": "tiny", "prompt": "The cat",
                           "max_tokens": 5}).encode()
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/v1/completions", data=body,
            headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=60) as response:
            assert json.loads(response.read())["usage"]["total_tokens"] > 3
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) in (0, -signal.SIGTERM)
        log = process.stdout.read()
        assert "serving 'tiny'" in log
        assert "Application shutdown complete" in log
        assert "Traceback" not in log
    finally:
        if process.poll() is None:
            process.kill()
