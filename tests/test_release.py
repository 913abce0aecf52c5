"""``make release`` / ``scratchllm book release``: the wheel needs no book
toolchain, installs in a clean venv and runs."""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest
from typer.testing import CliRunner

from scratchllm.book import release
from scratchllm.book.chapters import BookError
from scratchllm.cli import app


def build_metadata(root: Path) -> dict[Path, float]:
    """The setuptools metadata folders in the tree, with their times."""
    return {path: path.stat().st_mtime
            for path in root.glob("src/*.egg-info")}


@pytest.fixture(scope="module")
def dists(root: Path, tmp_path_factory) -> list[Path]:
    before = build_metadata(root)
    built = release.build_distributions(
        root, tmp_path_factory.mktemp("dist"))
    # built from a copy: the tree's own metadata (an editable install's)
    # is neither made nor touched
    assert build_metadata(root) == before
    return built


@pytest.mark.slow
def test_wheel_and_sdist_hold_the_package_and_its_command(
    root: Path, dists: list[Path]
) -> None:
    sdist, wheel = dists
    assert sdist.name.endswith(".tar.gz") and wheel.suffix == ".whl"
    assert release.wheel_problems(wheel) == []
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
    assert "scratchllm/compliance/audit.py" in names
    assert "scratchllm/starter/files.py" in names
    assert not any(name.startswith(("book/", "tests/", "exercises/"))
                   for name in names)
    assert not (root / "build").exists()


def test_a_wheel_requiring_the_book_toolchain_is_refused(
    tmp_path: Path,
) -> None:
    wheel = tmp_path / "x-0-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        archive.writestr("x.dist-info/METADATA",
                         "Name: x\nRequires-Dist: jupyter-book==1\n"
                         "Requires-Dist: pytest; extra == \"verify\"\n")
        archive.writestr("x.dist-info/entry_points.txt", "")
    problems = release.wheel_problems(wheel)
    assert "the wheel requires jupyter-book==1 (book toolchain) outside " \
        "an extra" in problems
    assert "the wheel installs no `scratchllm` command" in problems
    assert not any("pytest" in p for p in problems)


def test_release_without_the_built_book_says_so(tmp_path: Path) -> None:
    (tmp_path / "_toc.yml").write_text("root: x\n")
    with pytest.raises(BookError, match="build the book first"):
        release.release(tmp_path, check=False)


def test_the_command_stops_with_one_line_when_the_book_is_missing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "_toc.yml").write_text("root: x\n")
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(app, ["book", "release"])
    assert result.exit_code == 1
    lines = result.output.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("error: _build/latex/book.pdf")


@pytest.mark.slow
def test_release_collects_everything_after_a_clean_venv_check(
    root: Path, tmp_path: Path, dists: list[Path]
) -> None:
    """The whole release on a stand-in book: a clean venv gets torch and
    the wheel's core dependencies only, and runs --help and generate."""
    lines = release.check_in_clean_venv(dists[1], tmp_path / "venv")
    assert "`scratchllm --help` lists the commands" in lines
    assert lines[-1].startswith("`scratchllm generate` on a checkpoint: "
                                "'Once upon a time")
