"""Chapter 11: SFT under `accelerate launch` on two CPU processes equals
one process with the same micro-batches (slow: starts processes)."""

from __future__ import annotations

import json

import pytest
import torch
from test_finetune import artifacts  # noqa: F401 (a fixture)

from scratchllm.distributed.configs import write_configs
from scratchllm.finetune.sft import launch_sft, run_sft, sft_config
from scratchllm.train.checkpoint import load_checkpoint

pytestmark = pytest.mark.slow


def test_two_processes_equal_one(artifacts, tmp_path):  # noqa: F811
    A = artifacts / "ci"
    settings = dict(max_steps=3, batch_size=4, context_length=64,
                    warmup_steps=1, log_every=1, eval_tokens=128,
                    precision="fp32", device="cpu", progress=False,
                    lr=3e-3)
    torch.set_num_threads(1)
    run_sft(sft_config("ci", artifacts, "one",
                       output_dir=str(tmp_path / "one"),
                       micro_batch_size=2, **settings),
            A / "checkpoints" / "pretrain", A / "tokenizer",
            A / "chats.jsonl")
    configs = write_configs(tmp_path / "configs")
    multi_gpu = next(p for p in configs if p.name == "multi_gpu.yaml")
    output = launch_sft(
        ["--profile", "ci", "--artifacts-root", str(artifacts),
         "--data", str(A / "chats.jsonl"), "--out", str(tmp_path / "two"),
         "--steps", "3", "--batch-size", "4", "--lr", "3e-3",
         "--context", "64", "--precision", "fp32"],
        2, multi_gpu, ["--mixed_precision", "no"], timeout=240)
    assert "3 steps on 2 process(es)" in output
    one = load_checkpoint(tmp_path / "one").model_state
    two = load_checkpoint(tmp_path / "two").model_state
    for name in one:
        torch.testing.assert_close(one[name], two[name], rtol=0,
                                   atol=1e-5)
    losses = [[r["loss"] for r in map(json.loads, (tmp_path / run /
               "log.jsonl").read_text().splitlines())
               if r["kind"] == "train"] for run in ("one", "two")]
    assert losses[0] == pytest.approx(losses[1], abs=1e-5)


def test_launch_failure_is_reported(artifacts, tmp_path):  # noqa: F811
    configs = write_configs(tmp_path / "configs")
    multi_gpu = next(p for p in configs if p.name == "multi_gpu.yaml")
    with pytest.raises(RuntimeError, match="failed"):
        launch_sft(["--profile", "ci", "--artifacts-root",
                    str(artifacts), "--data", str(tmp_path / "none.jsonl")],
                   2, multi_gpu, ["--mixed_precision", "no"], timeout=120)
