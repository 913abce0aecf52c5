"""``scratchllm book``: tangle, execute and render the book."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from scratchllm.cli.errors import fail

from scratchllm.book.chapters import BookError, chapters, find_root, select

book_app = typer.Typer(help="Tangle, execute and render the book.",
                       no_args_is_help=True)

DEFAULT_PROFILE = "laptop"
Profile = Annotated[
    str, typer.Option(help="Scale: ci, laptop, gpu or cluster.")
]



def root_or_fail() -> Path:
    try:
        return find_root()
    except BookError as error:
        fail(str(error))


@book_app.command()
def tangle(
    check: Annotated[bool, typer.Option(
        help="Only compare src/ with the book; fail listing the files "
        "that differ.")] = False,
) -> None:
    """Write the chapters' exported cells into src/scratchllm."""
    from scratchllm.book import tangle as tangler

    root = root_or_fail()
    try:
        if check:
            problems = tangler.check(root)
            if problems:
                fail("src/ is out of date with the book:\n  "
                     + "\n  ".join(problems))
            typer.echo("src/ matches the book.")
            return
        written, removed = tangler.tangle(root)
    except BookError as error:
        fail(str(error))
    for path in written:
        typer.echo(f"wrote   src/{path}")
    for path in removed:
        typer.echo(f"removed src/{path}")
    typer.echo(f"{len(written)} written, {len(removed)} removed.")


@book_app.command()
def execute(
    profile: Profile = DEFAULT_PROFILE,
    only: Annotated[list[str] | None, typer.Option(
        help="Run only this chapter (stem, id or number); repeatable.")
    ] = None,
) -> None:
    """Execute the chapters with papermill, in book order; refuse when
    src/ is out of date with the chapters (run `scratchllm book tangle`)."""
    from scratchllm.book.execute import check_sources
    from scratchllm.book.execute import execute as run

    root = root_or_fail()
    try:
        book = chapters(root)
        check_sources(root)
        run(root, select(book, only) if only else book, profile)
    except BookError as error:
        fail(str(error))


@book_app.command()
def lint() -> None:
    """Check printed line widths, cell sizes and the chapters' artifact
    order."""
    from scratchllm.book import lint as linter

    root = root_or_fail()
    try:
        sources = linter.book_sources(root)
        problems = linter.long_code_lines(sources, root)
        problems += linter.long_cells(sources, root)
        problems += linter.missing_language(
            linter.exercise_notebooks(root), root)
        problems += linter.artifact_order(chapters(root))
    except BookError as error:
        fail(str(error))
    if problems:
        fail("\n".join(problems))
    typer.echo("book sources are clean.")


@book_app.command()
def html(
    all_pages: Annotated[bool, typer.Option(
        "--all", help="Rebuild every page, not only changed ones.")] = False,
) -> None:
    """Render the executed notebooks to HTML (_build/html)."""
    from scratchllm.book import render

    try:
        typer.echo(f"built {render.html(root_or_fail(), all_pages)}")
    except BookError as error:
        fail(str(error))


@book_app.command()
def pdf(
    all_pages: Annotated[bool, typer.Option(
        "--all", help="Rebuild every page, not only changed ones.")] = False,
) -> None:
    """Render the executed notebooks to a PDF (_build/latex/book.pdf)."""
    from scratchllm.book import render

    try:
        typer.echo(f"built {render.pdf(root_or_fail(), all_pages)}")
    except BookError as error:
        fail(str(error))


@book_app.command("check-pdf")
def check_pdf() -> None:
    """Check the PDF: outline, internal links, every chapter title."""
    from scratchllm.book.pdfcheck import check_pdf as checker

    root = root_or_fail()
    path = root / "_build" / "latex" / "book.pdf"
    problems = checker(path, chapters(root))
    if problems:
        fail("the PDF has problems:\n  " + "\n  ".join(problems))
    typer.echo(f"{path.relative_to(root)} looks right.")


@book_app.command()
def new(
    stem: Annotated[str, typer.Argument(help="NN_slug, e.g. 10_finetuning")],
    title: Annotated[str, typer.Argument(help="The chapter's title")],
) -> None:
    """Start a chapter (and its exercises) that keeps the contract."""
    from scratchllm.book.scaffold import new_chapter

    root = root_or_fail()
    try:
        paths = new_chapter(root, stem, title)
    except BookError as error:
        fail(str(error))
    for path in paths:
        typer.echo(f"wrote {path.relative_to(root)}")
    typer.echo(f"Now list book/{stem} in _toc.yml, write the chapter, and "
               "run `scratchllm book tangle`.")


@book_app.command("all")
def build_all(profile: Profile = DEFAULT_PROFILE) -> None:
    """Everything, in order: tangle --check, lint, execute, HTML, PDF,
    check the PDF."""
    tangle(check=True)
    lint()
    execute(profile=profile, only=None)
    html(all_pages=True)
    pdf(all_pages=True)
    check_pdf()


def register(app: typer.Typer) -> None:
    """Add ``scratchllm book`` to the main command line."""
    app.add_typer(book_app, name="book")
