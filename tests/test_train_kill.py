"""Hardening II: real SIGKILLs. A training process is killed at random
moments (many of them inside `save_checkpoint`, since it saves every
step), resumed each time, and must finish with the weights of an
uninterrupted run, bit for bit; a resharding process killed at random
moments leaves either the old shards or the new ones, whole.

The processes are forked from the test (torch already imported, one
thread), so each start costs milliseconds instead of an import of torch;
the kill is a real SIGKILL all the same."""

from __future__ import annotations

import json
import multiprocessing
import os
import random
import signal
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file
from test_train_loop import TINY_MODEL, artifacts  # noqa: F401

from scratchllm.tokenizer import load_tokenizer
from scratchllm.tokenizer.shards import read_split, write_shards
from scratchllm.train import preset, pretrain

FORK = multiprocessing.get_context("fork")


def train(settings: dict, connection) -> None:
    """The child: train, telling the parent each finished step."""
    pretrain(preset("ci", **settings),
             on_step=lambda done, record: connection.send(done))
    connection.send("finished")


def start(target, *args):
    """Fork `target(*args, connection)`; return the process and the
    parent's end of the pipe."""
    parent, child = FORK.Pipe()
    process = FORK.Process(target=target, args=(*args, child))
    process.start()
    return process, parent


def kill(process) -> None:
    os.kill(process.pid, signal.SIGKILL)
    process.join()


# On a fast, idle machine the run can finish after about seven kills;
# at least five must land (and one inside save_checkpoint).
STEPS = 80


def options(artifacts: Path, name: str) -> dict:
    return dict(artifacts_root=str(artifacts), run_name=name,
                model_overrides={**TINY_MODEL, "dropout": 0.1},
                context_length=16, batch_size=4, max_steps=STEPS,
                warmup_steps=2, log_every=1, eval_every=STEPS // 2,
                eval_tokens=128, checkpoint_every=1, keep_checkpoints=2,
                sample_every=-1, progress=False, precision="fp32",
                device="cpu", resume=True)


def final_weights(run_dir: Path) -> dict[str, torch.Tensor]:
    latest = json.loads((run_dir / "latest.json").read_text())
    return load_file(run_dir / latest["path"] / "model.safetensors")


@pytest.mark.slow
def test_training_killed_at_random_moments_resumes_bit_for_bit(artifacts):
    straight, _ = start(train, options(artifacts, "straight"))
    straight.join(120)
    assert straight.exitcode == 0
    settings = options(artifacts, "sigkilled")
    run_dir = Path(artifacts) / "ci" / "checkpoints" / "sigkilled"
    rng = random.Random(15)
    kills, inside_save, finished_early = 0, 0, 0
    for attempt in range(10):
        process, steps = start(train, settings)
        assert steps.poll(60)                   # training has begun
        if steps.recv() == "finished":
            finished_early += 1
            process.join()
            break
        if attempt % 3 == 0:  # aim inside save_checkpoint: its temp folder
            deadline = time.monotonic() + 5
            while (not list(run_dir.glob(".step_*.tmp-*"))
                   and time.monotonic() < deadline):
                time.sleep(0.001)
        else:
            time.sleep(rng.uniform(0.0, 0.25))
        kill(process)
        if process.exitcode == -signal.SIGKILL:
            kills += 1
            inside_save += bool(list(run_dir.glob(".step_*.tmp-*")))
    resumed, _ = start(train, settings)
    resumed.join(120)
    assert resumed.exitcode == 0
    expected = final_weights(Path(artifacts) / "ci" / "checkpoints"
                             / "straight")
    got = final_weights(run_dir)
    assert expected.keys() == got.keys()
    assert all(torch.equal(expected[k], got[k]) for k in expected)
    log = [json.loads(line) for line in
           (run_dir / "log.jsonl").read_text().splitlines()]
    steps = [r["step"] for r in log if r["kind"] == "train"]
    assert steps == list(range(1, STEPS + 1))
    assert not list(run_dir.glob(".*.tmp-*"))
    print(f"\nSIGKILL training: {kills} kills, {inside_save} inside "
          f"save_checkpoint, {finished_early} finished before the kill; "
          "final weights bit-identical")
    assert kills >= 5 and inside_save >= 1


def shard(tokenizer, data: Path, out: Path, connection) -> None:
    """The child: reshard, after telling the parent it starts."""
    connection.send("ready")
    write_shards(tokenizer, data, out, shard_tokens=4000)


def split_tokens(folder: Path) -> list[np.ndarray]:
    return [np.concatenate([np.asarray(s) for s in read_split(folder, s)])
            for s in ("train", "val")]


@pytest.mark.slow
def test_sharding_killed_at_random_moments_keeps_whole_shards(artifacts,
                                                              tmp_path):
    A = Path(artifacts) / "ci"
    tokenizer = load_tokenizer(A / "tokenizer")
    bigger = tmp_path / "bigger"
    bigger.mkdir()
    for split in ("train", "val"):
        lines = (A / "data" / "storyworld" / f"{split}.jsonl").read_text()
        (bigger / f"{split}.jsonl").write_text(lines * 30)
    out = tmp_path / "tokens"
    write_shards(tokenizer, A / "data" / "storyworld", out,
                 shard_tokens=4000)
    old = split_tokens(out)
    write_shards(tokenizer, bigger, tmp_path / "reference",
                 shard_tokens=4000)
    new = split_tokens(tmp_path / "reference")
    rng = random.Random(3)
    outcomes = {"old": 0, "new": 0}
    for _ in range(6):
        process, ready = start(shard, tokenizer, bigger, out)
        assert ready.recv() == "ready"
        time.sleep(rng.uniform(0.0, 1.0))
        kill(process)
        now = split_tokens(out)          # read_split checks every shard
        if all(np.array_equal(a, b) for a, b in zip(now, old)):
            outcomes["old"] += 1
        else:
            assert all(np.array_equal(a, b) for a, b in zip(now, new))
            outcomes["new"] += 1
            write_shards(tokenizer, A / "data" / "storyworld", out,
                         shard_tokens=4000)
    print(f"\nSIGKILL sharding: {outcomes['old']} kills left the old "
          f"shards whole, {outcomes['new']} came after the new ones were "
          "complete")
    assert outcomes["old"] >= 1
