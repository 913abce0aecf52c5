"""Chapter 9: memory arithmetic, configs, and exactness of DDP, FSDP,
DeepSpeed ZeRO, tensor and pipeline parallelism on two CPU processes.

Every distributed test launches two processes through
``scratchllm.distributed.launch`` (``accelerate launch``, gloo) with a
timeout, and asserts the world size the processes saw.
"""

from __future__ import annotations

import importlib.util
import itertools
import json
import shutil
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from safetensors.torch import load_file

from scratchllm.distributed.configs import CONFIGS, write_configs
from scratchllm.distributed.fsdp import setup, train_steps
from scratchllm.distributed.launch import launch, set_options
from scratchllm.distributed.memory import (
    STRATEGIES,
    device_memory,
    smallest_fit,
)
from scratchllm.distributed.pipeline import bubble_fraction, gpipe_schedule
from scratchllm.model.config import ModelConfig
from scratchllm.model.estimate import count_parameters
from scratchllm.tokenizer import SPECIAL_TOKENS, Tokenizer
from scratchllm.train import preset, pretrain
from scratchllm.train.checkpoint import load_checkpoint, load_model
from scratchllm.train.monitor import read_log

TIMEOUT = 180
FP32 = ["--mixed_precision", "no"]


# --------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def artifacts(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An artifacts root with small random token shards under
    ci/tokens/storyworld (the layout chapter 4 writes) and a byte-level
    tokenizer under ci/tokenizer."""
    root = tmp_path_factory.mktemp("artifacts")
    tokenizer = Tokenizer({}, special_tokens={
        t: 256 + i for i, t in enumerate(SPECIAL_TOKENS)})
    tokenizer.save(root / "ci" / "tokenizer")
    vocab = tokenizer.vocab_size
    folder = root / "ci" / "tokens" / "storyworld"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    splits = {}
    for split, count in [("train", 40_000), ("val", 8_000)]:
        tokens = rng.integers(0, vocab, count).astype(np.uint16)
        tokens.tofile(folder / f"{split}_0000.bin")
        splits[split] = [{"file": f"{split}_0000.bin", "tokens": count,
                          "documents": count // 50, "bytes": 4 * count}]
    (folder / "index.json").write_text(json.dumps({
        "dtype": "uint16", "vocab_size": vocab, "eot_id": 256,
        "tokenizer_sha256": "test", "splits": splits}))
    return root


@pytest.fixture(scope="module")
def configs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The shipped Accelerate config files, written to a folder."""
    folder = tmp_path_factory.mktemp("configs")
    write_configs(folder)
    return folder


def small_run(artifacts: Path, out: Path, **changes) -> dict:
    """TrainConfig fields of a tiny fp32 run."""
    return {"artifacts_root": str(artifacts), "model": "ci",
            "model_overrides": {"n_layers": 2}, "precision": "fp32",
            "context_length": 32, "batch_size": 8, "max_steps": 2,
            "warmup_steps": 1, "log_every": 1, "eval_tokens": 512,
            "checkpoint_every": 0, "progress": False,
            "output_dir": str(out), **changes}


def max_difference(one: dict, other: dict) -> float:
    """Largest absolute difference between two state dicts."""
    assert one.keys() == other.keys()
    return max((one[k].float() - other[k].float()).abs().max().item()
               for k in one)


# ----------------------------------------------------- memory arithmetic
def test_device_memory_follows_the_zero_paper() -> None:
    config = ModelConfig.preset("gpt2-small")
    phi = count_parameters(config)
    ddp = device_memory(config, "ddp", 8)
    assert (ddp.weights, ddp.gradients, ddp.optimizer) == (
        2 * phi, 2 * phi, 12 * phi)
    zero1 = device_memory(config, "zero1", 8)
    assert zero1.optimizer == 12 * phi / 8 and zero1.gradients == 2 * phi
    zero2 = device_memory(config, "zero2", 8)
    assert zero2.gradients == 2 * phi / 8 and zero2.weights == 2 * phi
    zero3 = device_memory(config, "zero3", 8)
    assert zero3.weights + zero3.gradients + zero3.optimizer == pytest.approx(
        16 * phi / 8)
    assert len({m.activations for m in [ddp, zero1, zero2, zero3]}) == 1
    totals = [device_memory(config, s, 8).total for s in STRATEGIES]
    assert totals == sorted(totals, reverse=True)
    assert device_memory(config, "zero3", 1).total == ddp.total


def test_device_memory_rejects_bad_input() -> None:
    config = ModelConfig.preset("ci")
    with pytest.raises(ValueError, match="strategy"):
        device_memory(config, "zero4", 8)
    with pytest.raises(ValueError, match="positive"):
        device_memory(config, "ddp", 0)


def test_smallest_fit() -> None:
    assert smallest_fit(1e9) == "t4"
    assert smallest_fit(70e9) == "a100-80gb"
    assert smallest_fit(120e9) == "h200"
    assert smallest_fit(1e12) is None


# ------------------------------------------------------------- pipeline
def test_bubble_fraction_and_schedule() -> None:
    assert bubble_fraction(1, 4) == 0
    assert bubble_fraction(2, 1) == pytest.approx(1 / 2)
    assert bubble_fraction(4, 4) == pytest.approx(3 / 7)
    with pytest.raises(ValueError):
        bubble_fraction(0, 4)
    for stages, micro in [(2, 2), (4, 4), (3, 8)]:
        work = gpipe_schedule(stages, micro, forward=1.0, backward=2.0)
        assert len(work) == 2 * stages * micro
        end = max(start + length for *_, start, length in work)
        assert end == pytest.approx((micro + stages - 1) * 3.0)
        busy = sum(length for *_, length in work)
        idle = 1 - busy / (stages * end)
        assert idle == pytest.approx(bubble_fraction(stages, micro))
        for stage in range(stages):
            spans = sorted((s, s + d) for st, _, _, s, d in work
                           if st == stage)
            assert all(a[1] <= b[0] + 1e-9
                       for a, b in itertools.pairwise(spans))
        forward_end = {(st, m): s + d for st, m, k, s, d in work if k == "F"}
        for st, m, kind, start, _ in work:
            if kind == "F" and st > 0:
                assert start >= forward_end[(st - 1, m)]


# --------------------------------------------------------------- configs
def test_configs_are_valid_accelerate_files(configs: Path) -> None:
    from accelerate.commands.config.config_args import load_config_from_file

    assert sorted(p.name for p in configs.iterdir()) == sorted(CONFIGS)
    for name in CONFIGS:
        values = yaml.safe_load((configs / name).read_text())
        assert values == CONFIGS[name]
        parsed = load_config_from_file(str(configs / name))
        assert parsed.distributed_type.value == values["distributed_type"]
    zero3 = CONFIGS["deepspeed_zero3.yaml"]["deepspeed_config"]
    assert zero3["zero_stage"] == 3 and zero3["zero3_save_16bit_model"]
    assert CONFIGS["fsdp.yaml"]["fsdp_config"][
        "fsdp_transformer_layer_cls_to_wrap"] == "Block"


def test_launch_rejects_bad_input(configs: Path) -> None:
    with pytest.raises(ValueError, match="positive"):
        launch(["check"], 0, configs / "multi_gpu.yaml")
    with pytest.raises(FileNotFoundError, match="config"):
        launch(["check"], 2, configs / "missing.yaml")


# ------------------------------------------------- two processes (gloo)
@pytest.mark.slow
def test_ddp_equals_one_process(artifacts: Path, configs: Path,
                                tmp_path: Path) -> None:
    """Two processes of 4 rows, each in 2 micro-batches (gradient
    accumulation with no_sync), against one process of 8 rows."""
    single = pretrain(preset("ci", **small_run(artifacts, tmp_path / "one")))
    two_processes = small_run(artifacts, tmp_path / "two",
                              micro_batch_size=2)
    run = launch(["pretrain", "--profile", "ci",
                  *set_options(two_processes)],
                 2, configs / "multi_gpu.yaml", FP32, TIMEOUT, cpu=True)
    assert "pretraining on 2 processes (DistributedType.MULTI_CPU)" in (
        run.output)
    gap = max_difference(load_checkpoint(tmp_path / "one").model_state,
                         load_checkpoint(tmp_path / "two").model_state)
    assert gap < 1e-4
    one = [r["loss"] for r in read_log(tmp_path / "one" / "log.jsonl")
           if r["kind"] == "train"]
    two = [r["loss"] for r in read_log(tmp_path / "two" / "log.jsonl")
           if r["kind"] == "train"]
    assert len(one) == len(two) == 2
    assert one == pytest.approx(two, abs=1e-5)
    assert single.train_loss == pytest.approx(two[-1], abs=1e-5)


@pytest.mark.slow
def test_two_process_resume_is_bit_identical_with_dropout(
        artifacts: Path, configs: Path, tmp_path: Path) -> None:
    """Each rank draws its own dropout masks (seed + rank) and the
    checkpoint keeps every rank's random state: a run stopped after 2
    steps and resumed on two processes ends where an uninterrupted one
    does."""
    def run(out: Path, resume: bool) -> None:
        values = small_run(artifacts, out, max_steps=4, checkpoint_every=2,
                           resume=resume,
                           model_overrides={"n_layers": 2, "dropout": 0.2})
        launch(["pretrain", "--profile", "ci", *set_options(values)],
               2, configs / "multi_gpu.yaml", FP32, TIMEOUT, cpu=True)

    run(tmp_path / "whole", resume=False)
    parts = tmp_path / "parts"
    parts.mkdir()
    shutil.copytree(tmp_path / "whole" / "step_00000002",
                    parts / "step_00000002")
    (parts / "latest.json").write_text(
        json.dumps({"step": 2, "path": "step_00000002"}))
    run(parts, resume=True)
    whole = load_checkpoint(tmp_path / "whole")
    parts = load_checkpoint(parts)
    assert whole.step == parts.step == 4
    for name, tensor in whole.model_state.items():
        assert torch.equal(tensor, parts.model_state[name]), name
    first, second = whole.rng_state
    assert not torch.equal(first["tensors"]["torch"],
                           second["tensors"]["torch"])


@pytest.fixture(scope="module")
def checks(artifacts: Path, configs: Path,
           tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, Path]:
    """The worker's `check` command on two processes: its results and
    output folder."""
    out = tmp_path_factory.mktemp("checks")
    launch(["check", "--profile", "ci", "--out", str(out),
            *set_options(small_run(artifacts, out))],
           2, configs / "multi_gpu.yaml", FP32, TIMEOUT, cpu=True)
    return json.loads((out / "checks.json").read_text()), out


@pytest.mark.slow
def test_checks_ran_on_two_gloo_processes(checks: tuple[dict, Path]) -> None:
    results, _ = checks
    assert results["world_size"] == 2
    assert results["backend"] == "gloo"


@pytest.mark.slow
def test_fsdp_equals_one_process_and_checkpoint_reloads(
        checks: tuple[dict, Path], artifacts: Path) -> None:
    results, out = checks
    model, optimizer, sampler = setup(preset("ci", **small_run(artifacts,
                                                                out)))
    losses = train_steps(model, optimizer, sampler, 2)
    reference = {k: p.detach() for k, p in model.named_parameters()}
    sharded, _ = load_model(out / "fsdp")
    assert max_difference(dict(sharded.named_parameters()), reference) < 1e-4
    checkpoint = load_checkpoint(out / "fsdp")
    assert len(checkpoint.rng_state) == 2
    moments = checkpoint.optimizer_state["state"]
    assert moments.keys() == {k for k, _ in model.named_parameters()}
    assert all(set(slots) == {"step", "exp_avg", "exp_avg_sq"}
               for slots in moments.values())
    assert results["fsdp"]["loss"] == pytest.approx(losses[-1], abs=1e-5)
    assert results["fsdp"]["reload_gap"] == 0.0
    assert results["fsdp"]["resume_gap"] < 1e-6
    vocab = model.token_embedding.weight.shape[0]
    assert results["fsdp"]["local_rows"] == vocab // 2


@pytest.mark.slow
def test_tensor_parallel_equals_full_layer(checks: tuple[dict, Path]) -> None:
    tp = checks[0]["tensor_parallel"]
    assert tp["output"] < 1e-5
    assert tp["input_grad"] < 1e-6 and tp["weight_grad"] < 1e-6


@pytest.mark.slow
def test_pipeline_equals_whole_model(checks: tuple[dict, Path]) -> None:
    pp = checks[0]["pipeline"]
    assert pp["grad"] < 1e-6 and pp["loss"] < 1e-5


@pytest.mark.slow
@pytest.mark.usefixtures("deepspeed_ops")
@pytest.mark.skipif(importlib.util.find_spec("deepspeed") is None,
                    reason="deepspeed is not installed "
                    "(pip install deepspeed==0.19.8)")
def test_deepspeed_zero3_equals_one_process(artifacts: Path, configs: Path,
                                            tmp_path: Path) -> None:
    values = small_run(artifacts, tmp_path)
    launch(["deepspeed", "--profile", "ci", "--out", str(tmp_path),
            *set_options(values)], 2, configs / "deepspeed_zero3.yaml",
           [*FP32, "--gradient_clipping", "0"], TIMEOUT, cpu=True)
    log = json.loads((tmp_path / "zero3.json").read_text())
    assert log["world_size"] == 2
    model, optimizer, sampler = setup(preset("ci", **values))
    losses = train_steps(model, optimizer, sampler, 2)
    reference = {k: p.detach() for k, p in model.named_parameters()}
    weights = load_file(tmp_path / "zero3.safetensors")
    assert max_difference(weights, reference) < 1e-4
    assert log["losses"] == pytest.approx(losses, abs=1e-5)


@pytest.mark.slow
def test_a_failing_rank_stops_the_others(configs: Path) -> None:
    result = launch(["fail"], 2, configs / "multi_gpu.yaml", FP32,
                    TIMEOUT, check=False, cpu=True)
    assert result.returncode != 0
    assert "deliberate failure on rank 1" in result.output
    assert result.seconds < TIMEOUT


def test_launch_timeout_kills_the_run(configs: Path) -> None:
    began = time.perf_counter()
    with pytest.raises(TimeoutError, match="did not finish"):
        launch(["check"], 2, configs / "multi_gpu.yaml", FP32, timeout=2,
               cpu=True)
    assert time.perf_counter() - began < 20


def test_world_size_is_required() -> None:
    from scratchllm.distributed.ranks import require_world

    if not torch.distributed.is_initialized():
        with pytest.raises(RuntimeError, match="needs 2 processes"):
            require_world(2)


# ------------------------------------------------------------------ CLI
def test_cli_writes_configs_and_prints_memory(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from scratchllm.cli import app

    runner = CliRunner()
    result = runner.invoke(app, ["distributed", "configs", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(CONFIGS)
    result = runner.invoke(app, ["distributed", "memory", "--devices", "8"])
    assert result.exit_code == 0, result.output
    assert "gpt2-small" in result.output and "zero3" in result.output
    result = runner.invoke(app, ["distributed", "memory", "--devices", "0"])
    assert result.exit_code != 0


def test_throughput_is_the_median_after_the_first_window() -> None:
    from scratchllm.distributed.bench import throughput

    log = [{"tokens_per_s": 1.0}, {"tokens_per_s": 30.0},
           {"tokens_per_s": 10.0}, {"tokens_per_s": 20.0}]
    assert throughput(log) == 20.0


def test_compare_processes_alternates_and_takes_medians(
        tmp_path, monkeypatch) -> None:
    """Runs alternate 1, N, 1, N...; each run's rate is its median, and
    each process count reports the median over repeats."""
    from scratchllm.distributed import bench

    launched: list[int] = []
    speeds = iter([100.0, 150.0, 300.0, 200.0, 200.0, 400.0])

    def fake_launch(arguments, count, config, precision, timeout):
        launched.append(count)
        run_dir = next(json.loads(value.split("=", 2)[2])
                       for value in arguments
                       if value.startswith("--set=output_dir="))
        rate = next(speeds)
        records = [{"kind": "train", "tokens_per_s": 1.0}] + [
            {"kind": "train", "tokens_per_s": rate}] * 3 + [
            {"kind": "eval", "tokens_per_s": 0.0}]
        folder = Path(run_dir)
        folder.mkdir(parents=True)
        (folder / "log.jsonl").write_text(
            "".join(json.dumps(r) + "\n" for r in records))

    monkeypatch.setattr(bench, "launch", fake_launch)
    heard = []
    medians = bench.compare_processes(
        2, "ci", 3, 3, [], tmp_path / "runs", tmp_path / "a.yaml", "fp32",
        on_run=lambda *run: heard.append(run))
    assert launched == [1, 2, 1, 2, 1, 2]
    assert medians == {1: 200.0, 2: 200.0}
    assert heard[1] == (0, 2, 150.0)
