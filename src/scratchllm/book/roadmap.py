"""The roadmap: a dependency graph of chapters and artifacts, drawn from
the chapters' front matter, with the run time measured for each profile
and what that time costs at a dated price table."""

from __future__ import annotations

import json
from itertools import pairwise
from pathlib import Path
from typing import Any

from scratchllm.book.chapters import PROFILES, Chapter

#: On-demand price of one CPU core (vCPU) for an hour, to price runs
#: measured on CPUs: AWS m7i.large (2 vCPUs, us-east-1) at $0.1008/h.
#: GPUs are priced from chapter 8's table (``scratchllm.train.monitor``).
CPU_CORE_USD_PER_HOUR = 0.0504
CPU_PRICE_SOURCE = "AWS m7i.large on demand, us-east-1"
#: The month the CPU price was read; prices change, check them.
CPU_PRICE_AS_OF = "2025-06"
GPU_KEYS = ("h200", "h100", "a100", "l4", "a10", "4090", "t4")


def machine_price(info: dict[str, Any]) -> tuple[float, str] | None:
    """(USD per hour, how it was priced) of the machine a profile ran on,
    or None for a GPU the price table does not know."""
    gpu = info.get("gpu")
    if gpu:
        from scratchllm.train.monitor import HARDWARE

        name, count = gpu.lower(), int(info.get("gpu_count", 1))
        for key in GPU_KEYS:
            if key in name:
                hardware = next(h for h in HARDWARE.values()
                                if key in h.name)
                return (count * hardware.usd_per_hour,
                        f"{count} x {hardware.name} at "
                        f"${hardware.usd_per_hour:.2f}/h")
        return None
    cores = int(info.get("cpu_count") or 1)
    return (cores * CPU_CORE_USD_PER_HOUR,
            f"{cores} x ${CPU_CORE_USD_PER_HOUR:.4f}/h per core "
            f"({CPU_PRICE_SOURCE})")


def money(dollars: float | None) -> str:
    """A short reading of a cost in US dollars."""
    if dollars is None:
        return "—"
    if dollars == 0:
        return "$0"
    if dollars < 0.01:  # a CPU chapter: a fraction of a cent
        return f"${dollars:.2g}"
    if dollars < 100:
        return f"${dollars:.2f}"
    return f"${dollars:,.0f}"


def chapter_cost(
    timings: dict[str, dict[str, Any]], profile: str, stem: str
) -> float | None:
    """What one chapter's measured run costs on its profile's machine."""
    seconds = chapter_seconds(timings, profile, stem)
    price = machine_price(timings.get(profile, {}).get("machine", {}))
    if seconds is None or price is None:
        return None
    return seconds / 3600 * price[0]


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
    if chapter.meta.get("appendix"):
        return f"Appendix {chapter.meta['appendix']}. {chapter.title}"
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


def time_and_cost(
    timings: dict[str, dict[str, Any]], profile: str, stem: str
) -> str:
    """One roadmap cell: measured time and its cost, or a dash."""
    seconds = chapter_seconds(timings, profile, stem)
    if seconds is None:
        return "—"
    cost = chapter_cost(timings, profile, stem)
    return f"{duration(seconds)}, {money(cost)}"


def table(book: list[Chapter], timings: dict[str, dict[str, Any]]) -> str:
    """The roadmap as a MyST table: links, tracks, artifacts, run times."""
    measured = [p for p in PROFILES if p in timings]
    head = ["Step", "Tracks (B/P/R)", "Reads", "Writes"] + [
        f"{p}: time, cost" for p in measured]
    rows = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for chapter in book:
        cells = [
            f"{{doc}}`{label(chapter)} <{chapter.stem}>`",
            " · ".join(t[0].upper() for t in chapter.tracks) or "all",
            ", ".join(f"`{a}`" for a in chapter.reads) or "—",
            ", ".join(f"`{a}`" for a in chapter.writes) or "—",
        ] + [
            time_and_cost(timings, p, chapter.stem) for p in measured
        ]
        rows.append("| " + " | ".join(cells) + " |")
    if measured:
        totals = ["**Whole book**", "", "", ""]
        for profile in measured:
            seconds = [chapter_seconds(timings, profile, c.stem)
                       for c in book]
            costs = [chapter_cost(timings, profile, c.stem) for c in book]
            known = [s for s in seconds if s is not None]
            priced = [c for c in costs if c is not None]
            totals.append(
                f"{duration(sum(known) if known else None)}, "
                f"{money(sum(priced) if priced else None)}")
        rows.append("| " + " | ".join(totals) + " |")
    return "\n".join(rows) + "\n"


def machines(timings: dict[str, dict[str, Any]]) -> str:
    """One line per profile saying what its times were measured on."""
    lines = []
    for profile, entry in timings.items():
        info = entry.get("machine", {})
        where = info.get("gpu") or f"{info.get('cpu_count', '?')} CPU cores"
        price = machine_price(info)
        priced = (f"priced at {money(price[0])}/h ({price[1]})" if price
                  else "not priced (a GPU the price table does not know)")
        lines.append(
            f"- `{profile}`: {where}, torch {info.get('torch', '?')}; "
            f"{priced}"
        )
    return "\n".join(lines) + "\n" if lines else ""


def page(book: list[Chapter], timings: dict[str, dict[str, Any]]) -> str:
    """The MyST fragment the preface includes: graph, table, machines."""
    from scratchllm.train.monitor import PRICES_AS_OF as GPU_PRICES_AS_OF

    measured = machines(timings) or (
        "No chapter has been executed yet: run "
        "`scratchllm book execute` to measure the times.\n"
    )
    return (
        "```{graphviz} roadmap.dot\n"
        ":caption: The roadmap: chapters (blue; click one to open it) and "
        "the artifacts they write and read (yellow), with the measured "
        "run time of each chapter per profile; the table adds its cost."
        "\n"
        ":align: center\n```\n\n"
        + table(book, timings)
        + "\nTracks: B beginner, P practitioner, R researcher. "
        "Costs are the measured time at on-demand cloud prices (CPU as of "
        f"{CPU_PRICE_AS_OF}, GPUs as of {GPU_PRICES_AS_OF}; check current "
        "prices). "
        "Run times were measured by the executor on:\n\n"
        + measured
    )
