"""Chapters 5-7: the ``scratchllm model`` commands."""

import json
import os

import pytest
import torch
from typer.testing import CliRunner

from scratchllm.cli import app
from scratchllm.model.config import ModelConfig
from scratchllm.model.estimate import count_parameters
from scratchllm.model.gpt import GPT

os.environ.setdefault("HF_HUB_OFFLINE", "1")
runner = CliRunner()


def test_info_json_matches_estimates():
    result = runner.invoke(app, ["model", "info", "--preset", "ci",
                                 "--vocab-size", "512", "--json"])
    assert result.exit_code == 0, result.output
    (row,) = json.loads(result.output)
    config = ModelConfig.preset("ci", vocab_size=512)
    assert row["parameters"] == count_parameters(config)
    assert row["config"]["vocab_size"] == 512


def test_info_rejects_unknown_preset():
    result = runner.invoke(app, ["model", "info", "--preset", "huge"])
    assert result.exit_code == 1
    assert "unknown preset" in result.output


def test_export_checkpoint_to_hf(tmp_path):
    pytest.importorskip("transformers")
    import scratchllm.train.checkpoint as checkpoint

    config = ModelConfig.preset("ci", vocab_size=200)
    model = GPT(config)
    optimizer = torch.optim.AdamW(model.parameters())
    checkpoint.save_checkpoint(
        tmp_path / "run", 1, model.state_dict(), optimizer.state_dict(),
        {"model_config": config.to_dict()},
    )
    out = tmp_path / "hf"
    result = runner.invoke(app, ["model", "export", str(tmp_path / "run"),
                                 "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert (out / "model.safetensors").is_file()
    gap = float(result.output.rsplit("at most", 1)[1])
    assert gap < 1e-4


def test_export_missing_checkpoint_fails_cleanly(tmp_path):
    result = runner.invoke(app, ["model", "export", str(tmp_path / "none"),
                                 "--out", str(tmp_path / "out")])
    assert result.exit_code == 1
    assert "no such checkpoint" in result.output


def test_bench_attention_prints_a_row_per_length():
    result = runner.invoke(app, ["model", "bench-attention", "--lengths",
                                 "16,32", "--repeats", "1", "--heads", "2",
                                 "--head-dim", "8"])
    assert result.exit_code == 0, result.output
    assert len(result.output.strip().splitlines()) == 3
    bad = runner.invoke(app, ["model", "bench-attention", "--lengths", "x"])
    assert bad.exit_code == 1
