"""``scratchllm scaffold``: a starter repository for a track and a budget
(appendix B; hand-written, never tangled: it parses, calls
``scratchllm.starter.files`` and prints)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from scratchllm.cli.errors import fail

TRACKS = ("beginner", "practitioner", "researcher")
BUDGETS = ("laptop", "gpu", "cluster")



def register(app: typer.Typer) -> None:
    """Add ``scratchllm scaffold`` to the main app."""

    @app.command()
    def scaffold(
        folder: Annotated[Path, typer.Argument(
            metavar="DIR", help="A new (or empty) folder to write into.")],
        track: Annotated[str, typer.Option(
            help="beginner, practitioner or researcher.")] = "beginner",
        budget: Annotated[str, typer.Option(
            help="laptop, gpu or cluster.")] = "laptop",
    ) -> None:
        """Write a starter repository: configs sized to the budget, a
        script per step (data to serving), README with time and cost,
        and its own tests."""
        if track not in TRACKS:
            fail(f"unknown track {track!r}; choose one of "
                 f"{', '.join(TRACKS)}")
        if budget not in BUDGETS:
            fail(f"unknown budget {budget!r}; choose one of "
                 f"{', '.join(BUDGETS)}")
        from scratchllm.starter.files import scaffold as write_repository
        from scratchllm.starter.plan import BUDGETS as PLANNED
        from scratchllm.starter.plan import plan, size_run

        try:
            written = write_repository(folder, track, budget)
        except (FileExistsError, ValueError, OSError) as error:
            fail(str(error))
        sizes = size_run(PLANNED[budget])
        typer.echo(f"wrote {len(written)} files into {folder}: the "
                   f"{track} track on the {budget} budget")
        typer.echo(f"model {sizes.params:,} parameters, "
                   f"{sizes.tokens:.3g} tokens, {sizes.steps:,} steps")
        for step in plan(sizes, track):
            if step.seconds is None:
                typer.echo(f"  {step.name:10s} ${step.dollars:,.2f} per "
                           "hour while it runs")
            else:
                typer.echo(f"  {step.name:10s} {step.seconds / 3600:8.2f}"
                           f" h  ${step.dollars:,.2f}")
        typer.echo(f"next: cd {folder} && pip install -e '.[test]' && "
                   "pytest && python run.py")
