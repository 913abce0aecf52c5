"""Start a new chapter that already keeps the chapter contract."""

from __future__ import annotations

import re
from pathlib import Path

from scratchllm.book.chapters import BookError

STEM = re.compile(r"(?P<number>\d\d)_(?P<slug>[a-z][a-z0-9_]*)")

CHAPTER = '''\
---
jupytext:
  text_representation:
    extension: .md
    format_name: myst
kernelspec:
  name: python3
  display_name: Python 3
  language: python
scratchllm:
  id: {slug}
  number: {number}
  title: {title}
  tracks: [beginner, practitioner, researcher]
  reads: []
  writes: []
---

# {title}

## What you will build

```{{code-cell}} python
:tags: [parameters]
profile = "ci"                        # ci | laptop | gpu | cluster
artifacts_root = "../_build/artifacts"
```

```{{code-cell}} python
#| export scratchllm.{slug}.core
"""{title}: the chapter's exported code."""
```

## Check yourself

The exercises for this chapter are in `exercises/{stem}.md`.
'''

EXERCISES = '''\
---
jupytext:
  text_representation:
    extension: .md
    format_name: myst
kernelspec:
  name: python3
  display_name: Python 3
  language: python
---

# Exercises: {title}

```{{code-cell}} python
from checks import {slug} as check
```
'''


def new_chapter(root: Path, stem: str, title: str) -> list[Path]:
    """Write a chapter and its exercise files; return their paths."""
    match = STEM.fullmatch(stem)
    if match is None:
        raise BookError(
            f"{stem!r} is not a chapter name: use NN_slug, e.g. 10_finetuning"
        )
    fields = {**match.groupdict(), "stem": stem, "title": title}
    fields["number"] = int(fields["number"])
    files = {
        root / "book" / f"{stem}.md": CHAPTER.format(**fields),
        root / "exercises" / f"{stem}.md": EXERCISES.format(**fields),
        root / "exercises" / "checks" / f"{match['slug']}.py":
            f'"""Checks for the exercises of "{title}"."""\n',
        root / "exercises" / "solutions" / f"{match['slug']}.py":
            f'"""Solutions to the exercises of "{title}"."""\n',
        root / "exercises" / "wrong" / f"{match['slug']}.py":
            f'"""Wrong solutions to the exercises of "{title}" (see '
            f'``__init__``)."""\n\nfrom wrong import says  # noqa: F401\n',
    }
    existing = [str(p.relative_to(root)) for p in files if p.exists()]
    if existing:
        raise BookError(f"already there, not overwritten: {existing}")
    for path, text in files.items():
        path.write_text(text, encoding="utf-8")
    return list(files)
