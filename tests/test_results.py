"""The results chapter: reading glued values back from executed notebooks,
and the glue names it depends on still being glued by their chapters."""

from __future__ import annotations

import ast
import re
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import nbformat
import numpy as np
import pytest
from myst_nb.ext import glue as myst_glue

from scratchllm.book.chapters import chapters, find_root
from scratchllm.book.execute import record_timing, tag_run
from scratchllm.results import (
    chapter_results,
    read_glued,
    read_timings,
    results_table,
)

ROOT = find_root(Path(__file__).parent)
RESULTS = ROOT / "book" / "14_results.md"


def glued_output(
    monkeypatch: pytest.MonkeyPatch, name: str, value: Any,
    display: bool = False,
) -> nbformat.NotebookNode:
    """The output cell that myst_nb's own `glue` produces for `value`."""
    shown: list[tuple[dict, dict]] = []
    monkeypatch.setattr(myst_glue, "ipy_display",
                        lambda data, raw, metadata: shown.append(
                            (data, metadata)))
    myst_glue.glue(name, value, display=display)
    (data, metadata), = shown
    return nbformat.v4.new_output("display_data", data=data,
                                  metadata=metadata)


def write_notebook(path: Path, outputs: list, profile: str = "ci") -> Path:
    """A one-cell executed notebook holding `outputs`, tagged with
    `profile` as `scratchllm book execute` tags it."""
    cell = nbformat.v4.new_code_cell("glue(...)", outputs=outputs)
    nbformat.write(nbformat.v4.new_notebook(cells=[cell]), path)
    tag_run(path, profile)
    return path


def test_read_glued_returns_the_values_myst_nb_glued(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import matplotlib.pyplot as plt

    fig = plt.figure()
    outputs = [
        glued_output(monkeypatch, "count", 1024),
        glued_output(monkeypatch, "loss", 2.5),
        glued_output(monkeypatch, "numpy_loss", np.float64(0.125)),
        glued_output(monkeypatch, "verdict", "bit-identical"),
        glued_output(monkeypatch, "pair", (1, 2)),
        glued_output(monkeypatch, "shown", 7, display=True),
        glued_output(monkeypatch, "fig", fig),
        glued_output(monkeypatch, "loss", 3.5),
        nbformat.v4.new_output("display_data", data={"text/plain": "9"}),
        nbformat.v4.new_output("stream", text="printed\n"),
    ]
    plt.close(fig)
    glued = read_glued(write_notebook(tmp_path / "ch.ipynb", outputs))
    assert glued["count"] == 1024 and isinstance(glued["count"], int)
    assert glued["numpy_loss"] == 0.125
    assert glued["verdict"] == "bit-identical"
    assert glued["pair"] == (1, 2)
    assert glued["shown"] == 7
    assert glued["loss"] == 3.5, "the last glue of a name wins"
    assert glued["fig"].startswith("<Figure")
    assert set(glued) == {"count", "loss", "numpy_loss", "verdict", "pair",
                          "shown", "fig"}


def test_a_chapter_is_part_of_the_build_only_at_the_same_profile(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    artifacts = tmp_path / "_build" / "artifacts"
    executed = tmp_path / "_build" / "executed"
    executed.mkdir(parents=True)
    write_notebook(executed / "07_x.ipynb",
                   [glued_output(monkeypatch, "val_loss", 1.5)], "laptop")
    assert chapter_results(artifacts, "laptop", "07_x") == {"val_loss": 1.5}
    assert chapter_results(artifacts, "ci", "07_x") is None
    assert chapter_results(artifacts, "laptop", "08_absent") is None


def test_results_table_formats_numbers_and_shows_missing_names() -> None:
    table = results_table(
        {"loss": 2.34567, "count": 12345, "verdict": "not run"},
        [("loss", "validation loss", ".2f"), ("count", "tokens", ","),
         ("verdict", "check", ".3f"), ("renamed", "gone", ".1f")],
    )
    assert list(table["value"]) == ["2.35", "12,345", "not run",
                                    "not glued"]
    assert list(table["glue name"]) == ["loss", "count", "verdict",
                                        "renamed"]


def test_read_timings_reads_what_the_executor_records(tmp_path: Path) -> None:
    artifacts = tmp_path / "_build" / "artifacts"
    timings = tmp_path / "_build" / "timings" / "ci.json"
    record_timing(timings, SimpleNamespace(stem="03_data"), 12.345, "ci")
    assert read_timings(artifacts, "ci") == {"03_data": 12.35}
    assert read_timings(artifacts, "laptop") == {}


def headlines() -> dict[str, list[tuple[str, str, str]]]:
    """The `HEADLINES` table of the results chapter, read statically: its
    assignment and the parts added with `HEADLINES |= {...}`."""
    import jupytext

    table: dict[str, list[tuple[str, str, str]]] | None = None
    for cell in jupytext.read(RESULTS).cells:
        if cell.cell_type != "code":
            continue
        for node in ast.parse(cell.source).body:
            if (isinstance(node, ast.Assign)
                    and getattr(node.targets[0], "id", "") == "HEADLINES"):
                table = ast.literal_eval(node.value)
            elif (isinstance(node, ast.AugAssign)
                    and isinstance(node.op, ast.BitOr)
                    and getattr(node.target, "id", "") == "HEADLINES"):
                assert table is not None, "HEADLINES |= before HEADLINES ="
                table |= ast.literal_eval(node.value)
    if table is None:
        raise AssertionError(f"{RESULTS} defines no HEADLINES table")
    return table


def is_glued(name: str, source: str) -> bool:
    """Whether a chapter's source glues `name` (a `glue("name"` call) or
    prints it (a `{glue:...}` role), the two ways a value reaches its
    page."""
    quoted = re.escape(name)
    return bool(
        re.search(rf"glue\(\s*[\"']{quoted}[\"']", source)
        or re.search(rf"\{{glue(:\w+)?\}}`{quoted}[:`]", source)
    )


def test_is_glued_finds_calls_and_roles_only() -> None:
    assert is_glued("val_loss", 'glue("val_loss", x, display=False)')
    assert is_glued("val_bpb", "falls to {glue:text}`val_bpb:.3f` bits")
    assert is_glued("fig", "```{glue:figure} fig") is False
    assert not is_glued("val_loss", "the val_loss was low")
    assert not is_glued("loss", "{glue:text}`val_loss:.3f`")


def named_elsewhere() -> set[tuple[str, str]]:
    """(chapter stem, glue name) pairs the results chapter's code names
    outside `HEADLINES`: two string constants side by side in a call or
    a tuple, the first a chapter stem, as in
    `measured("08_pretraining", "run_tokens")`."""
    import jupytext

    stem = re.compile(r"^\d\d_[a-z_]+$")
    pairs = set()
    for cell in jupytext.read(RESULTS).cells:
        if cell.cell_type != "code":
            continue
        for node in ast.walk(ast.parse(cell.source)):
            items = (node.args if isinstance(node, ast.Call)
                     else node.elts if isinstance(node, ast.Tuple) else [])
            texts = [item.value if isinstance(item, ast.Constant) else None
                     for item in items]
            pairs |= {(a, b) for a, b in zip(texts, texts[1:])
                      if isinstance(a, str) and isinstance(b, str)
                      and stem.match(a)}
    return pairs


def test_named_elsewhere_finds_calls_and_tuples() -> None:
    pairs = named_elsewhere()
    assert ("08_pretraining", "run_tokens") in pairs
    assert ("06_attention", "gap_layer") in pairs


def test_every_glue_name_the_results_chapter_reads_is_glued() -> None:
    names = {(stem, name) for stem, measures in headlines().items()
             for name, _, _ in measures} | named_elsewhere()
    missing = []
    for stem, name in sorted(names):
        path = ROOT / "book" / f"{stem}.md"
        if not path.is_file():
            continue                      # not merged into this book yet
        if not is_glued(name, path.read_text(encoding="utf-8")):
            missing.append(f"{stem}: {name}")
    assert not missing, f"glue names not found in their chapter: {missing}"


def test_the_results_chapter_summarises_every_chapter_before_it() -> None:
    listed = set(headlines())
    earlier = [c.stem for c in chapters(ROOT) if 0 < c.number < 14]
    assert earlier and not set(earlier) - listed, (
        f"chapters without headline results: {set(earlier) - listed}")


@pytest.mark.slow
def test_read_glued_reads_a_notebook_executed_with_glue(
    tmp_path: Path,
) -> None:
    from nbclient import NotebookClient

    code = ("from myst_nb import glue\n"
            "glue('loss', 2.5, display=False)\n"
            "glue('verdict', 'identical', display=False)\n"
            "import numpy as np\n"
            "glue('count', np.int64(3), display=False)")
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(
        code)])
    NotebookClient(notebook, kernel_name="python3", timeout=120).execute()
    path = tmp_path / "run.ipynb"
    nbformat.write(notebook, path)
    assert read_glued(path) == {"loss": 2.5, "verdict": "identical",
                                "count": 3}
