"""Options that several commands share, each written once as a typer
``Annotated`` alias (hand-written, never tangled). A command names the
alias and gives its own default: ``profile: Profile = "laptop"``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

Profile = Annotated[str, typer.Option(
    help="Profile whose artifacts are the defaults: ci, laptop, gpu or "
    "cluster.")]
ArtifactsRoot = Annotated[Path, typer.Option(
    help="Folder holding one artifact folder per profile.")]
Threads = Annotated[int, typer.Option(
    min=1, help="CPU threads for PyTorch (1 is fastest for small models).")]

#: Where ``scratchllm book execute`` leaves the artifacts.
ARTIFACTS_ROOT = Path("_build/artifacts")
