"""Book-wide checks that need no execution: printed line widths, cell
sizes and the artifact graph."""

from __future__ import annotations

import unicodedata
from pathlib import Path

from scratchllm.book.chapters import Chapter

MAX_COLUMNS = 79
MAX_CELL_LINES = 80


def display_width(line: str) -> int:
    """Columns `line` takes in print: wide East Asian characters and emoji
    take two, combining marks, joiners and variation selectors none."""
    width = 0
    for character in line:
        if (unicodedata.combining(character)
                or unicodedata.category(character) in ("Mn", "Me", "Cf")
                or 0xFE00 <= ord(character) <= 0xFE0F):
            continue
        wide = unicodedata.east_asian_width(character) in ("W", "F")
        width += 2 if wide else 1
    return width


def long_code_lines(paths: list[Path], root: Path) -> list[str]:
    """Code-cell lines wider than the printed page, as ``file:line``."""
    problems = []
    for path in paths:
        inside = False
        lines = path.read_text(encoding="utf-8").splitlines()
        for number, line in enumerate(lines, start=1):
            if line.startswith("```{code-cell}"):
                inside = True
            elif inside and line.startswith("```"):
                inside = False
            elif inside and display_width(line) > MAX_COLUMNS:
                problems.append(
                    f"{path.relative_to(root)}:{number}: code line of "
                    f"{display_width(line)} columns (at most {MAX_COLUMNS}; "
                    "it would wrap in print)"
                )
    return problems


def long_cells(paths: list[Path], root: Path) -> list[str]:
    """Code cells of more than ``MAX_CELL_LINES`` lines (cell options such
    as ``:tags:`` not counted), as ``file:line`` of the cell's fence."""
    problems = []
    for path in paths:
        start, size = 0, 0
        lines = path.read_text(encoding="utf-8").splitlines()
        for number, line in enumerate(lines, start=1):
            if not start and line.startswith("```{code-cell}"):
                start, size = number, 0
            elif start and line.startswith("```"):
                if size > MAX_CELL_LINES:
                    problems.append(
                        f"{path.relative_to(root)}:{start}: a code cell of "
                        f"{size} lines; split it (at most {MAX_CELL_LINES})"
                    )
                start = 0
            elif start and not line.startswith(":"):
                size += 1
    return problems


def missing_language(paths: list[Path], root: Path) -> list[str]:
    """Notebooks whose kernelspec names no language: Jupyter Book cannot
    highlight their code unless they are executed first."""
    return [
        f"{path.relative_to(root)}: add 'language: python' to the "
        "kernelspec in its front matter"
        for path in paths
        if "\n  language: python\n" not in path.read_text(encoding="utf-8")
    ]


def artifact_order(book: list[Chapter]) -> list[str]:
    """Chapters that read an artifact no earlier chapter writes."""
    problems, written = [], set()
    for chapter in book:
        for artifact in chapter.reads:
            if artifact not in written:
                problems.append(
                    f"{chapter.path} reads {artifact!r}, which no earlier "
                    "chapter writes"
                )
        written.update(chapter.writes)
    return problems


def exercise_notebooks(root: Path) -> list[Path]:
    """The exercise notebooks, ``exercises/NN_slug.md``."""
    return sorted((root / "exercises").glob("[0-9][0-9]_*.md"))


def book_sources(root: Path) -> list[Path]:
    """Every Markdown notebook of the book and the exercises."""
    return sorted((root / "book").glob("*.md")) + sorted(
        (root / "exercises").glob("*.md")
    )
