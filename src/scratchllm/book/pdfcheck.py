"""Check the built PDF the way a reader would notice problems: a bookmark
outline, working internal links, and every chapter's title in the text."""

from __future__ import annotations

import re
from pathlib import Path

from scratchllm.book.chapters import Chapter


def squash(text: str) -> str:
    """Lower-case text with all whitespace and hyphenation removed."""
    return re.sub(r"[\s\-‐]+", "", text).lower()


def count_internal_links(reader) -> int:
    """Link annotations that jump inside the document."""
    count = 0
    for page in reader.pages:
        for annotation in page.get("/Annots") or []:
            annotation = annotation.get_object()
            if annotation.get("/Subtype") != "/Link":
                continue
            action = annotation.get("/A")
            action = action.get_object() if action is not None else None
            if "/Dest" in annotation or (
                action is not None and action.get("/S") == "/GoTo"
            ):
                count += 1
    return count


def check_pdf(path: Path, book: list[Chapter]) -> list[str]:
    """Problems found in the PDF (empty: none)."""
    from pypdf import PdfReader

    if not path.is_file():
        return [f"{path} does not exist: build it with `scratchllm book pdf`"]
    reader = PdfReader(path)
    problems = []
    if not reader.outline:
        problems.append("the PDF has no bookmark outline")
    if count_internal_links(reader) == 0:
        problems.append("the PDF has no internal links")
    text = squash("".join(page.extract_text() or "" for page in reader.pages))
    for chapter in book:
        if chapter.number and squash(chapter.title) not in text:
            problems.append(
                f"chapter title {chapter.title!r} ({chapter.path}) "
                "is not in the PDF's text"
            )
    return problems
