"""Hardening II: real SIGKILLs. A training process is killed at random
moments (most of them inside `save_checkpoint`, since it saves every
step), resumed each time, and must finish with the weights of an
uninterrupted run, bit for bit; a resharding process killed at random
moments leaves either the old shards or the new ones, whole."""

from __future__ import annotations

import json
import random
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file
from test_train_loop import TINY_MODEL, artifacts  # noqa: F401

from scratchllm.tokenizer import load_tokenizer
from scratchllm.tokenizer.shards import read_split, write_shards

TRAIN = """
import json, sys
import torch
torch.set_num_threads(1)
from scratchllm.train import preset, pretrain
def on_step(done, record):
    print(done, flush=True)
pretrain(preset("ci", **json.loads(sys.argv[1])), on_step=on_step)
print("finished", flush=True)
"""


def options(artifacts: Path, name: str) -> dict:
    return dict(artifacts_root=str(artifacts), run_name=name,
                model_overrides={**TINY_MODEL, "dropout": 0.1},
                context_length=16, batch_size=4, max_steps=80,
                warmup_steps=2, log_every=1, eval_every=40,
                eval_tokens=128, checkpoint_every=1, keep_checkpoints=2,
                sample_every=-1, progress=False, precision="fp32",
                device="cpu", resume=True)


def start(settings: dict) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", TRAIN,
                             json.dumps(settings)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)


def final_weights(run_dir: Path) -> dict[str, torch.Tensor]:
    latest = json.loads((run_dir / "latest.json").read_text())
    return load_file(run_dir / latest["path"] / "model.safetensors")


@pytest.mark.slow
def test_training_killed_at_random_moments_resumes_bit_for_bit(artifacts):
    straight = start(options(artifacts, "straight"))
    out, err = straight.communicate(timeout=120)
    assert straight.returncode == 0, err
    settings = options(artifacts, "sigkilled")
    run_dir = Path(artifacts) / "ci" / "checkpoints" / "sigkilled"
    rng = random.Random(15)
    kills, inside_save, finished_early = 0, 0, 0
    for _ in range(10):
        process = start(settings)
        first = process.stdout.readline()       # training has begun
        if first.strip() == "finished":
            finished_early += 1
            process.wait()
            break
        time.sleep(rng.uniform(0.0, 0.25))
        process.kill()
        process.wait()
        if process.returncode == -9:
            kills += 1
            inside_save += bool(list(run_dir.glob(".step_*.tmp-*")))
    resumed = start(settings)
    out, err = resumed.communicate(timeout=120)
    assert resumed.returncode == 0, err
    assert "finished" in out
    expected = final_weights(Path(artifacts) / "ci" / "checkpoints"
                             / "straight")
    got = final_weights(run_dir)
    assert expected.keys() == got.keys()
    assert all(torch.equal(expected[k], got[k]) for k in expected)
    log = [json.loads(line) for line in
           (run_dir / "log.jsonl").read_text().splitlines()]
    steps = [r["step"] for r in log if r["kind"] == "train"]
    assert steps == list(range(1, 81))
    assert not list(run_dir.glob(".*.tmp-*"))
    print(f"\nSIGKILL training: {kills} kills, {inside_save} inside "
          f"save_checkpoint, {finished_early} finished before the kill; "
          "final weights bit-identical")
    assert kills >= 8 and inside_save >= 1


SHARD = """
import sys
from scratchllm.tokenizer import load_tokenizer
from scratchllm.tokenizer.shards import write_shards
tokenizer = load_tokenizer(sys.argv[1])
print("ready", flush=True)
write_shards(tokenizer, sys.argv[2], sys.argv[3], shard_tokens=4000)
print("finished", flush=True)
"""


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
        process = subprocess.Popen(
            [sys.executable, "-c", SHARD, str(A / "tokenizer"),
             str(bigger), str(out)], stdout=subprocess.PIPE, text=True)
        process.stdout.readline()
        time.sleep(rng.uniform(0.0, 1.0))
        process.kill()
        process.wait()
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
