"""Shared fixtures: the project root and the shared data folder."""

from __future__ import annotations

import os
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


@pytest.fixture(scope="session")
def root() -> Path:
    """The project root."""
    return ROOT


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """``../shared/data`` (Tiny Shakespeare, GPT-2 files); skip if absent."""
    folder = Path(
        os.environ.get("SCRATCHLLM_SHARED_DATA", ROOT.parent / "shared/data")
    )
    if not folder.is_dir():
        pytest.skip(f"shared data folder {folder} is not available")
    return folder
