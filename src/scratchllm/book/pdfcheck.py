"""Check the built PDF the way a reader would notice problems: a bookmark
outline with the preface, working internal links, every chapter's title in
the text, no characters printed as empty boxes (the LaTeX log's "Missing
character" warnings) and no machinery on the page (tangler directives,
``glue(...)`` calls, stray ``torch.Generator`` reprs)."""

from __future__ import annotations

import re
from pathlib import Path

from scratchllm.book.chapters import Chapter

#: Text that must not be printed (patterns, per line), and why.  A code
#: line starts with the call; prose may name ``glue(...)`` mid-sentence.
MACHINERY = {
    r"^\s*#\| export": "a tangler directive",
    r"^\s*glue\(": "a glue(...) call",
    r"<torch\._C\.Generator": "a torch.Generator repr (end the cell's "
                              "manual_seed line with `_ = ...`)",
}
#: XeTeX's warning for a character the font lacks (printed as a box).
MISSING_GLYPH = re.compile(r"^Missing character: There is no (.+?) in font",
                           re.MULTILINE)


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


def outline_titles(outline: list) -> list[str]:
    """The titles of a PDF outline, nested entries included, in order."""
    titles = []
    for entry in outline:
        if isinstance(entry, list):
            titles.extend(outline_titles(entry))
        else:
            titles.append(str(entry.title))
    return titles


def missing_glyphs(log: Path) -> list[str]:
    """Problems for the characters XeTeX could not print (from the LaTeX
    log next to the PDF; none when there is no log)."""
    if not log.is_file():
        return []
    text = log.read_text(encoding="utf-8", errors="replace")
    found = MISSING_GLYPH.findall(text)
    if not found:
        return []
    shown = " ".join(sorted(set(found)))
    return [(f"{len(found)} characters print as empty boxes ({log.name}: "
             f"Missing character): {shown}")]


def machinery(text: str) -> list[str]:
    """Problems for machinery printed on the page (``text``: the PDF's
    text, unsquashed)."""
    problems = []
    for needle, what in MACHINERY.items():
        count = len(re.findall(needle, text, re.MULTILINE))
        if count:
            problems.append(f"{what} is printed {count} times ({needle!r})")
    return problems


def check_pdf(path: Path, book: list[Chapter]) -> list[str]:
    """Problems found in the PDF and its LaTeX log (empty: none)."""
    from pypdf import PdfReader

    if not path.is_file():
        return [f"{path} does not exist: build it with `scratchllm book pdf`"]
    reader = PdfReader(path)
    problems = []
    if not reader.outline:
        problems.append("the PDF has no bookmark outline")
    elif "preface" not in [t.lower() for t in outline_titles(reader.outline)]:
        problems.append("the preface is not in the PDF's outline")
    if count_internal_links(reader) == 0:
        problems.append("the PDF has no internal links")
    problems += missing_glyphs(path.with_suffix(".log"))
    raw = "\n".join(page.extract_text() or "" for page in reader.pages)
    problems += machinery(raw)
    text = squash(raw)
    for chapter in book:
        if chapter.number and squash(chapter.title) not in text:
            problems.append(
                f"chapter title {chapter.title!r} ({chapter.path}) "
                "is not in the PDF's text"
            )
    return problems
