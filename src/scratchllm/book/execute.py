"""Execute the chapters with papermill, in table-of-contents order.

Each chapter runs in a fresh kernel with ``book/`` as working directory and
the ``profile`` parameter injected.  Chapters pass artifacts to each other
through ``_build/artifacts/<profile>/``.  Run times are recorded in
``_build/timings/<profile>.json`` for the roadmap.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from scratchllm.book import kernel
from scratchllm.book.chapters import PROFILES, BookError, Chapter

#: Where chapters keep artifacts, relative to ``book/`` (their working
#: directory); injected with the profile so the executed notebook shows both.
ARTIFACTS_ROOT = "../_build/artifacts"

#: Set in the kernels' environment: the book runs offline.
KERNEL_ENV = {
    "HF_HUB_OFFLINE": "1",
    "HF_DATASETS_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "PYTHONHASHSEED": "0",
}

#: Kernel command-line options: progress bars as plain text (see
#: ``scratchllm.book.kernel``).
KERNEL_ARGUMENTS = [f"--IPKernelApp.exec_lines={[kernel.SETUP_LINE]!r}"]


def stale_sources(root: Path) -> list[str]:
    """The files of ``src/`` that differ from the chapters (``src/...``
    paths; empty when the tangle is up to date)."""
    from scratchllm.book import tangle

    _, stale, differing = tangle.plan(root)
    return [f"src/{path}" for path in sorted(differing | stale)]


def kernel_package(root: Path) -> Path | None:
    """The folder the chapters' kernels import ``scratchllm`` from (this
    Python, the kernels' environment and working directory)."""
    probe = ("import importlib.util as u; s = u.find_spec('scratchllm'); "
             "print(s.submodule_search_locations[0] if s else '')")
    found = subprocess.run(
        [sys.executable, "-c", probe], cwd=root / "book",
        env={**os.environ, **KERNEL_ENV}, capture_output=True, text=True,
        check=False,
    ).stdout.strip()
    return Path(found).resolve() if found else None


def check_sources(root: Path) -> None:
    """Refuse to run the chapters against code that is not theirs: the
    package the kernels import must be this checkout's ``src/``, and
    ``src/`` must match the chapters (``scratchllm book tangle``)."""
    stale = stale_sources(root)
    if stale:
        raise BookError(
            f"src/ is out of date with the chapters ({', '.join(stale)}); "
            "run `scratchllm book tangle` first"
        )
    package = kernel_package(root)
    expected = (root / "src" / "scratchllm").resolve()
    if package != expected:
        where = f"from {package}" if package else "nowhere (not installed)"
        raise BookError(
            f"the chapters would import scratchllm {where}, not from "
            f"{expected}: run `pip install -e .` in {root} (or set "
            f"PYTHONPATH={root / 'src'})"
        )


def write_downloads(chapter: Chapter, downloads: Path) -> Path:
    """Write the clean ``.ipynb`` and the ``.py`` script of a chapter;
    return the notebook's path."""
    import jupytext

    downloads.mkdir(parents=True, exist_ok=True)
    notebook = downloads / f"{chapter.stem}.ipynb"
    jupytext.write(chapter.notebook, notebook, fmt="ipynb")
    jupytext.write(chapter.notebook, downloads / f"{chapter.stem}.py",
                   fmt="py:percent")
    return notebook


def failure_message(chapter: Chapter, error: Exception) -> str:
    """Name the chapter and the cell that failed, and show its source."""
    index = getattr(error, "cell_index", "?")
    lines = str(getattr(error, "source", "")).splitlines()[:8]
    shown = "\n".join(f"    | {line}" for line in lines)
    ename = getattr(error, "ename", type(error).__name__)
    evalue = getattr(error, "evalue", str(error))
    return (
        f"chapter {chapter.stem} ({chapter.path}) failed in cell "
        f"{index} (counting from 0, parameters cell included):\n"
        f"  {ename}: {evalue}\n{shown}"
    )


def machine() -> dict[str, Any]:
    """What the chapters ran on, recorded next to their run times."""
    description = {
        "cpu_count": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
    }
    try:
        import torch

        description["torch"] = torch.__version__
        if torch.cuda.is_available():
            description["gpu"] = torch.cuda.get_device_name(0)
            description["gpu_count"] = torch.cuda.device_count()
    except ImportError:
        pass
    return description


def record_timing(
    timings_file: Path, chapter: Chapter, seconds: float, profile: str
) -> None:
    """Merge one chapter's run time into the profile's timings file."""
    timings = {}
    if timings_file.is_file():
        timings = json.loads(timings_file.read_text(encoding="utf-8"))
    cells = timings.get("chapters", {})
    cells[chapter.stem] = {
        "seconds": round(seconds, 2),
        "finished": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    timings = {"profile": profile, "machine": machine(), "chapters": cells}
    timings_file.parent.mkdir(parents=True, exist_ok=True)
    timings_file.write_text(json.dumps(timings, indent=2, sort_keys=True))


def execute(
    root: Path, book: list[Chapter], profile: str, build: Path | None = None
) -> dict[str, float]:
    """Execute ``book`` in order; return seconds per chapter.

    Raises ``BookError`` naming the chapter and cell at the first failure;
    the failed notebook is still written, with the error in it.
    """
    import papermill

    if profile not in PROFILES:
        raise BookError(
            f"unknown profile {profile!r}; choose one of {', '.join(PROFILES)}"
        )
    build = build or root / "_build"
    executed = build / "executed"
    executed.mkdir(parents=True, exist_ok=True)
    (build / "artifacts" / profile).mkdir(parents=True, exist_ok=True)
    os.environ.update(KERNEL_ENV)
    for chapter in book:
        if not any(
            "parameters" in cell.metadata.get("tags", [])
            for cell in chapter.notebook.cells
        ):
            raise BookError(
                f"{chapter.path} has no code cell tagged 'parameters' "
                "(see book/README.md)"
            )
    seconds = {}
    for chapter in book:
        clean = write_downloads(chapter, build / "downloads")
        output = executed / f"{chapter.stem}.ipynb"
        print(f"[{profile}] executing {chapter.path} ...", flush=True)
        start = time.perf_counter()
        try:
            papermill.execute_notebook(
                str(clean),
                str(output),
                parameters={
                    "profile": profile,
                    "artifacts_root": ARTIFACTS_ROOT,
                },
                cwd=str(root / "book"),
                kernel_name="python3",
                language="python",
                progress_bar=True,
                request_save_on_cell_execute=False,
                extra_arguments=KERNEL_ARGUMENTS,
            )
        except papermill.PapermillExecutionError as error:
            raise BookError(failure_message(chapter, error)) from error
        seconds[chapter.stem] = time.perf_counter() - start
        tag_run(output, profile)
        record_timing(
            build / "timings" / f"{profile}.json",
            chapter,
            seconds[chapter.stem],
            profile,
        )
        print(f"[{profile}] {chapter.stem}: {seconds[chapter.stem]:.1f} s")
    return seconds


def tag_run(notebook_path: Path, profile: str) -> None:
    """Record the profile in the executed notebook's metadata."""
    import nbformat

    notebook = nbformat.read(notebook_path, as_version=4)
    notebook.metadata.setdefault("scratchllm", {})["profile"] = profile
    nbformat.write(notebook, notebook_path)
