"""Find the book's chapters in table-of-contents order and read their
front matter."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import yaml

CHAPTER_NAME = re.compile(r"book/\d\d_\w+")
PROFILES = ("ci", "laptop", "gpu", "cluster")
TRACKS = ("beginner", "practitioner", "researcher")


class BookError(RuntimeError):
    """A problem with the book's sources, reported without a traceback."""


def find_root(start: Path | None = None) -> Path:
    """The project root: the nearest folder upwards holding ``_toc.yml``."""
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / "_toc.yml").is_file():
            return folder
    raise BookError(f"no _toc.yml in {here} or any folder above it")


@dataclass(frozen=True)
class Chapter:
    """One chapter: its source file and the metadata in its front matter."""

    root: Path
    path: Path  # relative to root, e.g. book/03_data.md
    meta: dict[str, Any] = field(compare=False)

    @property
    def stem(self) -> str:
        return self.path.stem

    @property
    def source(self) -> Path:
        return self.root / self.path

    @property
    def id(self) -> str:
        return str(self.meta.get("id", self.stem))

    @property
    def number(self) -> int:
        return int(self.meta.get("number", 0))

    @property
    def title(self) -> str:
        return str(self.meta.get("title", self.stem))

    @property
    def reads(self) -> list[str]:
        return list(self.meta.get("reads", []))

    @property
    def writes(self) -> list[str]:
        return list(self.meta.get("writes", []))

    @property
    def tracks(self) -> list[str]:
        return list(self.meta.get("tracks", []))

    @cached_property
    def notebook(self) -> Any:
        """The chapter as an nbformat notebook (read with jupytext)."""
        import jupytext

        try:
            return jupytext.read(self.source)
        except Exception as error:  # jupytext raises many kinds
            raise BookError(f"{self.path}: cannot read: {error}") from error


def toc_files(root: Path) -> list[str]:
    """Every file named in ``_toc.yml``, in reading order, no extension."""
    toc = yaml.safe_load((root / "_toc.yml").read_text(encoding="utf-8"))
    files = [toc["root"]]

    def walk(entries: list[dict[str, Any]]) -> None:
        for entry in entries:
            if "file" in entry:
                files.append(entry["file"])
            for key in ("parts", "chapters", "sections"):
                walk(entry.get(key, []))

    walk(toc.get("parts", []) + toc.get("chapters", []))
    return files


def read_front_matter(path: Path) -> dict[str, Any]:
    """The ``scratchllm`` block of a MyST notebook's YAML front matter."""
    text = path.read_text(encoding="utf-8")
    if not text.startswith("---\n"):
        return {}
    end = text.find("\n---", 4)
    if end < 0:
        raise BookError(f"{path}: front matter has no closing '---'")
    try:
        front = yaml.safe_load(text[4:end]) or {}
    except yaml.YAMLError as error:
        raise BookError(f"{path}: bad front matter: {error}") from error
    return dict(front.get("scratchllm") or {})


def chapters(root: Path | None = None) -> list[Chapter]:
    """The book's chapters (``book/NN_slug.md``), in table-of-contents
    order.  Other pages in the table of contents (the bibliography, say)
    are plain pages: never executed, never tangled."""
    root = find_root(root)
    found = []
    for name in toc_files(root):
        if not CHAPTER_NAME.fullmatch(name):
            continue
        path = Path(name).with_suffix(".md")
        if not (root / path).is_file():
            raise BookError(f"_toc.yml names {name}, but {path} is missing")
        meta = read_front_matter(root / path)
        if not meta:
            raise BookError(
                f"{path} has no 'scratchllm:' block in its front matter "
                "(see book/README.md)"
            )
        found.append(Chapter(root, path, meta))
    return found


def select(all_chapters: list[Chapter], names: list[str]) -> list[Chapter]:
    """The chapters matching ``names`` (stem, id or number), in book order."""
    wanted = set(names)
    picked = [
        chapter
        for chapter in all_chapters
        if wanted & {chapter.stem, chapter.id, str(chapter.number)}
    ]
    known = {n for c in picked for n in (c.stem, c.id, str(c.number))}
    missing = wanted - known
    if missing:
        stems = ", ".join(c.stem for c in all_chapters)
        raise BookError(
            f"no chapter named {', '.join(sorted(missing))}; "
            f"chapters are: {stems}"
        )
    return picked
