"""The roadmap: a dependency graph of chapters and artifacts, drawn from
the chapters' front matter, with the run time measured for each profile."""

from __future__ import annotations

import json
from itertools import pairwise
from pathlib import Path
from typing import Any

from scratchllm.book.chapters import PROFILES, Chapter


def load_timings(timings: Path) -> dict[str, dict[str, Any]]:
    """Measured timings per profile, from ``_build/timings/*.json``."""
    found = {}
    for profile in PROFILES:
        path = timings / f"{profile}.json"
        if path.is_file():
            found[profile] = json.loads(path.read_text(encoding="utf-8"))
    return found


def duration(seconds: float | None) -> str:
    """A short human reading of a run time."""
    if seconds is None:
        return "—"
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


def chapter_seconds(
    timings: dict[str, dict[str, Any]], profile: str, stem: str
) -> float | None:
    """The measured run time of one chapter under one profile."""
    entry = timings.get(profile, {}).get("chapters", {}).get(stem)
    return None if entry is None else float(entry["seconds"])


def label(chapter: Chapter) -> str:
    """A chapter's name as the roadmap shows it."""
    if chapter.number:
        return f"{chapter.number}. {chapter.title}"
    return chapter.title


def dot(book: list[Chapter], timings: dict[str, dict[str, Any]]) -> str:
    """The roadmap in graphviz's language; chapter nodes link to pages."""
    lines = [
        "digraph roadmap {",
        '  rankdir=TB; bgcolor="transparent"; ranksep=0.3; nodesep=0.25;',
        '  node [fontname="Helvetica", fontsize=11];',
        '  edge [color="#777777"];',
    ]
    for chapter in book:
        times = [
            f"{p}: {duration(chapter_seconds(timings, p, chapter.stem))}"
            for p in PROFILES
            if chapter_seconds(timings, p, chapter.stem) is not None
        ]
        text = "\\n".join([label(chapter), *times])
        lines.append(
            f'  "{chapter.stem}" [shape=box, style="rounded,filled", '
            f'fillcolor="#dbe8fb", label="{text}", '
            f'URL="../book/{chapter.stem}.html", target="_top"];'
        )
    artifacts = sorted({a for c in book for a in c.reads + c.writes})
    for artifact in artifacts:
        lines.append(
            f'  "{artifact}" [shape=note, style=filled, '
            f'fillcolor="#fff4d6", fontsize=9];'
        )
    for before, after in pairwise(book):
        lines.append(
            f'  "{before.stem}" -> "{after.stem}" '
            '[style=dotted, arrowhead=none, weight=5];'
        )
    for chapter in book:
        for artifact in chapter.writes:
            lines.append(f'  "{chapter.stem}" -> "{artifact}";')
        for artifact in chapter.reads:
            lines.append(f'  "{artifact}" -> "{chapter.stem}";')
    lines.append("}")
    return "\n".join(lines) + "\n"


def table(book: list[Chapter], timings: dict[str, dict[str, Any]]) -> str:
    """The roadmap as a MyST table: links, tracks, artifacts, run times."""
    measured = [p for p in PROFILES if p in timings]
    head = ["Step", "Tracks (B/P/R)", "Reads", "Writes"] + measured
    rows = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for chapter in book:
        cells = [
            f"{{doc}}`{label(chapter)} <{chapter.stem}>`",
            " · ".join(t[0].upper() for t in chapter.tracks) or "all",
            ", ".join(f"`{a}`" for a in chapter.reads) or "—",
            ", ".join(f"`{a}`" for a in chapter.writes) or "—",
        ] + [
            duration(chapter_seconds(timings, p, chapter.stem))
            for p in measured
        ]
        rows.append("| " + " | ".join(cells) + " |")
    return "\n".join(rows) + "\n"


def machines(timings: dict[str, dict[str, Any]]) -> str:
    """One line per profile saying what its times were measured on."""
    lines = []
    for profile, entry in timings.items():
        info = entry.get("machine", {})
        where = info.get("gpu") or f"{info.get('cpu_count', '?')} CPU cores"
        lines.append(
            f"- `{profile}`: {where}, torch {info.get('torch', '?')}"
        )
    return "\n".join(lines) + "\n" if lines else ""


def page(book: list[Chapter], timings: dict[str, dict[str, Any]]) -> str:
    """The MyST fragment the preface includes: graph, table, machines."""
    measured = machines(timings) or (
        "No chapter has been executed yet: run "
        "`scratchllm book execute` to measure the times.\n"
    )
    return (
        "```{graphviz} roadmap.dot\n"
        ":caption: The roadmap: chapters (blue; click one to open it) and "
        "the artifacts they write and read (yellow), with the measured "
        "run time of each chapter per profile.\n"
        ":align: center\n```\n\n"
        + table(book, timings)
        + "\nTracks: B beginner, P practitioner, R researcher. "
        "Run times were measured by the executor on:\n\n"
        + measured
    )
