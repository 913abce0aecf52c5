"""``scratchllm book release``: wheel, sdist, PDF and HTML archive in
``_build/release/`` (hand-written; ``make release`` calls it)."""

from __future__ import annotations

import os
from typing import Annotated

import typer


def register(app: typer.Typer) -> None:
    """Add ``release`` to the ``scratchllm book`` group."""
    from scratchllm.cli.book import book_app, fail, root_or_fail

    @book_app.command("release")
    def release_command(
        check: Annotated[bool, typer.Option(
            help="Install the wheel in a clean venv and run it.")] = True,
        torch: Annotated[str, typer.Option(
            help="How the clean venv gets PyTorch (default: $TORCH or "
            "torch==2.13.0).")] = "",
    ) -> None:
        """Build the wheel and sdist, check that the wheel installs with
        its core dependencies and runs, and collect them with the PDF
        and an HTML archive in _build/release/."""
        from scratchllm.book.chapters import BookError
        from scratchllm.book.release import release

        root = root_or_fail()
        spec = torch or os.environ.get("TORCH") or "torch==2.13.0"
        try:
            files, lines = release(root, spec, check)
        except BookError as error:
            fail(str(error))
        for line in lines:
            typer.echo(line)
        for path in files:
            typer.echo(f"wrote {path.relative_to(root)}")
