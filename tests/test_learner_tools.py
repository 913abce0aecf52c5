"""Learner tools (issue 14): exercise downloads, the roadmap's cost
column and ``scratchllm estimate``."""

from __future__ import annotations

import ast
import json
import zipfile
from pathlib import Path

import pytest
from typer.testing import CliRunner

from scratchllm.book import render, roadmap
from scratchllm.book.chapters import chapters
from scratchllm.cli import app

runner = CliRunner()


# --- exercise downloads ----------------------------------------------------


def test_exercise_downloads_are_clean_notebooks_scripts_and_checks(
    root: Path, tmp_path: Path
) -> None:
    written = render.write_exercise_downloads(root, tmp_path)
    notebooks = render.exercise_notebooks(root)
    assert notebooks
    assert len(written) == 2 * len(notebooks) + 1
    for source in notebooks:
        notebook = json.loads((tmp_path / f"{source.stem}.ipynb").read_text())
        code = [c for c in notebook["cells"] if c["cell_type"] == "code"]
        assert code and all(not c["outputs"] for c in code)
        assert any("stub" in c["metadata"].get("tags", []) for c in code)
        script = (tmp_path / f"{source.stem}.py").read_text()
        ast.parse(script)  # a runnable script, not Markdown
        assert "from checks import" in script
    with zipfile.ZipFile(tmp_path / "checks.zip") as archive:
        names = set(archive.namelist())
    assert "checks/__init__.py" in names and "checks/_expect.py" in names
    assert not any("__pycache__" in name for name in names)
    before = (tmp_path / "checks.zip").read_bytes()
    render.write_exercise_downloads(root, tmp_path)
    assert (tmp_path / "checks.zip").read_bytes() == before


def test_exercise_pages_link_their_downloads_after_the_heading(
    tmp_path: Path,
) -> None:
    page = tmp_path / "03_x.md"
    page.write_text(
        "---\njupytext:\n  # a YAML comment\n---\n\n"
        "```{code-cell} python\n# not a heading\n```\n\n"
        "# Exercises: X\n\nText.\n", encoding="utf-8")
    staged = render.staged_exercise(page).decode()
    heading = staged.index("# Exercises: X")
    links = staged.index("/downloads/exercises/03_x.ipynb")
    assert heading < links < staged.index("Text.")
    assert "/downloads/exercises/03_x.py" in staged
    assert "/downloads/exercises/checks.zip" in staged
    assert staged.count("**Downloads:**") == 1


# --- the roadmap's cost column ---------------------------------------------


def timings() -> dict:
    return {
        "ci": {"machine": {"cpu_count": 2, "torch": "2.13"},
               "chapters": {"01_background": {"seconds": 3600.0},
                            "03_data": {"seconds": 1800.0}}},
        "gpu": {"machine": {"gpu": "NVIDIA H100 80GB HBM3",
                            "gpu_count": 2, "torch": "2.13"},
                "chapters": {"08_pretraining": {"seconds": 7200.0}}},
        "cluster": {"machine": {"gpu": "Mystery GPU 9000"},
                    "chapters": {"08_pretraining": {"seconds": 60.0}}},
    }


def test_cost_is_measured_time_times_the_dated_price() -> None:
    from scratchllm.train.monitor import HARDWARE

    cpu = 2 * roadmap.CPU_CORE_USD_PER_HOUR
    assert roadmap.chapter_cost(timings(), "ci", "01_background") == \
        pytest.approx(cpu)
    assert roadmap.chapter_cost(timings(), "gpu", "08_pretraining") == \
        pytest.approx(2 * 2 * HARDWARE["h100-sxm"].usd_per_hour)
    assert roadmap.chapter_cost(timings(), "gpu", "03_data") is None
    assert roadmap.chapter_cost(timings(), "cluster", "08_pretraining") \
        is None  # a GPU the table does not know is not priced


def test_roadmap_table_has_cost_columns_and_a_total(root: Path) -> None:
    from scratchllm.train.monitor import HARDWARE

    book = chapters(root)
    table = roadmap.table(book, timings())
    assert "ci: time, cost" in table and "gpu: time, cost" in table
    total = next(line for line in table.splitlines()
                 if "Whole book" in line)
    ci_total = 1.5 * 2 * roadmap.CPU_CORE_USD_PER_HOUR
    assert f"1.5 h, {roadmap.money(ci_total)}" in total
    gpu = 4 * HARDWARE["h100-sxm"].usd_per_hour
    assert f"2.0 h, {roadmap.money(gpu)}" in total
    page = roadmap.page(book, timings())
    assert roadmap.CPU_PRICE_AS_OF in page
    assert "not priced" in page


def test_money_reads_well() -> None:
    assert [roadmap.money(x) for x in (None, 0, 0.00123, 2.5, 12345.6)] \
        == ["—", "$0", "$0.0012", "$2.50", "$12,346"]


# --- scratchllm estimate ---------------------------------------------------


def test_estimate_prints_time_memory_and_cost() -> None:
    result = runner.invoke(app, ["estimate", "--model", "laptop",
                                 "--tokens", "100M", "--hardware", "l4"])
    assert result.exit_code == 0, result.output
    for word in ("preset laptop", "memory", "time", "cost", "$0.80",
                 "fits in 24 GB", "prices as of"):
        assert word in result.output


@pytest.mark.parametrize("arguments, message", [
    (["--params", "1M", "--model", "ci"], "--params and --model conflict"),
    (["--params", "1M", "--flops", "1e18"], "--params and --flops conflict"),
    (["--flops", "1e18", "--tokens", "1B"], "--flops picks the token"),
    (["--list", "--params", "1M"], "--list prints the hardware table"),
    ([], "give --params or --model"),
    (["--tokens", "1B"], "give --params or --model"),
    (["--params", "1Q"], "cannot read '1Q'"),
    (["--model", "huge"], "unknown preset 'huge'"),
    (["--params", "1M", "--hardware", "abacus"], "unknown hardware"),
    (["--params", "1M", "--devices", "0"], "'--devices'"),
])
def test_estimate_refuses_bad_or_conflicting_options(
    arguments: list[str], message: str
) -> None:
    result = runner.invoke(app, ["estimate", *arguments])
    assert result.exit_code in (1, 2)  # 2: a usage error caught by typer
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ")
    assert not lines[0].startswith("error: error:")
    assert message in lines[0]


def test_appendix_chapters_are_labelled_by_letter(root: Path) -> None:
    book = {chapter.stem: chapter for chapter in chapters(root)}
    assert roadmap.label(book["15_compliance"]) == \
        "Appendix A. Compliance audit"
    assert roadmap.label(book["16_starter"]) == \
        "Appendix B. Starter repositories"
    assert roadmap.label(book["08_pretraining"]) == "8. Pretraining"
