"""Shared fixtures: the project root and the shared data folder.

The shared data (Tiny Shakespeare, the GPT-2 BPE files) is not generated
by the package; it lives in the folder named by ``SCRATCHLLM_SHARED_DATA``,
by default ``shared/data`` next to the repository (README, "Data"). A test
that needs one of its files asks the ``shared_data`` fixture for it: on a
reader's machine a missing file skips the test, under ``CI=true`` it fails
it, naming the file and the variable.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

# The tests use tiny models, which run several times faster on one thread
# than on two threads contending for a 2-core machine.
torch.set_num_threads(1)


def under_ci(environ: Mapping[str, str] = os.environ) -> bool:
    """Whether we run under CI (``CI=true``, as CI services set it)."""
    return environ.get("CI", "").strip().lower() in {"1", "true", "yes"}


class SharedData:
    """The shared data folder; call it with a file's relative path."""

    VARIABLE = "SCRATCHLLM_SHARED_DATA"

    def __init__(self, environ: Mapping[str, str] = os.environ) -> None:
        self.folder = Path(
            environ.get(self.VARIABLE) or ROOT.parent / "shared" / "data")
        self.required = under_ci(environ)

    def __call__(self, relative: str) -> Path:
        """The path of ``relative`` in the folder; skip the test when it
        is missing (fail it under CI)."""
        path = self.folder / relative
        if path.is_file():
            return path
        message = (
            f"shared data file {path} is missing: put it there or set "
            f"{self.VARIABLE} to the folder that holds {relative} "
            "(README, Data)")
        if self.required:
            pytest.fail(f"CI=true and {message}", pytrace=False)
        pytest.skip(message)


@pytest.fixture(autouse=True)
def one_thread() -> Iterator[None]:
    """Every test starts on one thread; a test that changes the count (a
    command's ``--threads``) does not change it for the next one."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def write_tiny_corpus(folder: Path, stories: list[str], validation: int,
                      vocab_size: int):
    """``folder/data/storyworld/{train,val}.jsonl`` (the last
    ``validation`` stories are val), a BPE tokenizer of ``vocab_size``
    trained on the stories, and its token shards in
    ``folder/tokens/storyworld``, as chapters 3 and 4 leave them. Returns
    the tokenizer, unsaved."""
    from scratchllm.tokenizer import train_bpe
    from scratchllm.tokenizer.shards import write_shards

    data = folder / "data" / "storyworld"
    data.mkdir(parents=True)
    splits = {"train": stories[:-validation], "val": stories[-validation:]}
    for split, part in splits.items():
        (data / f"{split}.jsonl").write_text("".join(
            json.dumps({"id": str(number), "text": text}) + "\n"
            for number, text in enumerate(part)), encoding="utf-8")
    tokenizer = train_bpe(stories, vocab_size)
    write_shards(tokenizer, data, folder / "tokens" / "storyworld")
    return tokenizer


@pytest.fixture(scope="session")
def tiny_corpus() -> Callable[..., object]:
    """:func:`write_tiny_corpus`, for the tests that train a tiny model."""
    return write_tiny_corpus


@pytest.fixture(scope="session")
def root() -> Path:
    """The project root."""
    return ROOT


@pytest.fixture(scope="session")
def shared_data() -> SharedData:
    """The shared data: ``shared_data("tinyshakespeare/input.txt")`` is the
    file's path (skips the test when missing; fails it under CI)."""
    return SharedData()


@pytest.fixture(scope="session")
def deepspeed_ops() -> None:
    """DeepSpeed's CPU ops, compiled before any test launches DeepSpeed
    (``make setup`` has usually done it: then this takes seconds), so
    that no compilation runs inside a launch's timeout."""
    build = subprocess.run(
        [sys.executable, "-c", "from scratchllm.cli import app; app()",
         "distributed", "build-ops"],
        capture_output=True, text=True, timeout=1800, check=False)
    if build.returncode != 0:
        pytest.fail(f"scratchllm distributed build-ops failed:\n"
                    f"{build.stdout}{build.stderr}", pytrace=False)
