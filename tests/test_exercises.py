"""Every exercise check passes on its solution and rejects its stub and
every plausible wrong solution in ``exercises/wrong``."""

from __future__ import annotations

import ast
import importlib
import sys
from pathlib import Path

import jupytext
import pytest

ROOT = Path(__file__).resolve().parents[1]
EXERCISES = ROOT / "exercises"
NOTEBOOKS = sorted(EXERCISES.glob("[0-9][0-9]_*.md"))


def slug(notebook: Path) -> str:
    """``01_background.md`` → ``background``."""
    return notebook.stem[3:]


def stubs(notebook: Path) -> dict[str, str]:
    """Name → source of every function or class a stub cell defines."""
    found = {}
    for cell in jupytext.read(notebook).cells:
        if "stub" not in cell.metadata.get("tags", []):
            continue
        for node in ast.parse(cell.source).body:
            if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
                found[node.name] = cell.source
    return found


def setup_cells(notebook: Path) -> str:
    """The code a learner runs besides stubs and checks (the imports)."""
    return "\n".join(
        cell.source for cell in jupytext.read(notebook).cells
        if cell.cell_type == "code"
        and not {"stub", "raises-exception"} & set(
            cell.metadata.get("tags", []))
    )


def cases() -> list[tuple[Path, str]]:
    """(notebook, exercise name) for every stub of every notebook."""
    return [(nb, name) for nb in NOTEBOOKS for name in stubs(nb)]


def wrong_names(notebook: Path) -> list[str]:
    """Names of the wrong solutions (``<exercise>__<mistake>``) defined in
    ``exercises/wrong/<slug>.py``, read without importing it."""
    path = EXERCISES / "wrong" / f"{slug(notebook)}.py"
    if not path.exists():
        return []
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return [node.name for node in tree.body
            if isinstance(node, ast.FunctionDef) and "__" in node.name
            and not node.name.startswith("_")]


def wrong_cases() -> list[tuple[Path, str]]:
    """(notebook, wrong solution name) for every wrong solution."""
    return [(nb, name) for nb in NOTEBOOKS for name in wrong_names(nb)]


@pytest.fixture(autouse=True, scope="module")
def importable_checks():
    """Make ``checks``, ``solutions`` and ``wrong`` importable, as the
    notebooks import ``checks``."""
    sys.path.insert(0, str(EXERCISES))
    yield
    sys.path.remove(str(EXERCISES))


def module(kind: str, notebook: Path):
    """The checks or solutions module of a notebook."""
    return importlib.import_module(f"{kind}.{slug(notebook)}")


def test_every_notebook_has_exercises() -> None:
    assert NOTEBOOKS, "no exercise notebooks found"
    for notebook in NOTEBOOKS:
        assert stubs(notebook), f"{notebook.name} has no stub cells"


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda p: p.stem)
def test_checks_and_stubs_match_one_to_one(notebook: Path) -> None:
    checks = module("checks", notebook)
    defined = {
        name for name, value in vars(checks).items()
        if callable(value) and getattr(value, "__module__", "")
        == checks.__name__ and not name.startswith("_")
    }
    assert defined == set(stubs(notebook)), (
        f"{notebook.name}: checks without stubs "
        f"{sorted(defined - set(stubs(notebook)))}, stubs without checks "
        f"{sorted(set(stubs(notebook)) - defined)}")
    text = notebook.read_text(encoding="utf-8")
    for name in defined:
        assert f"check.{name}({name})" in text, (
            f"{notebook.name}: no cell runs check.{name}({name})")


@pytest.mark.parametrize(
    "notebook, name", cases(), ids=lambda x: getattr(x, "stem", x))
def test_check_fails_on_the_stub(notebook: Path, name: str) -> None:
    namespace: dict = {}
    for source in (setup_cells(notebook), stubs(notebook)[name]):
        exec(compile(source, str(notebook), "exec", dont_inherit=True),
             namespace)
    check = getattr(module("checks", notebook), name)
    with pytest.raises((AssertionError, NotImplementedError)) as failed:
        check(namespace[name])
    assert not isinstance(failed.value.__cause__, NotImplementedError), (
        f"check.{name} turns the stub's NotImplementedError into "
        f"{failed.value!r}: let it through")


@pytest.mark.parametrize(
    "notebook, name", cases(), ids=lambda x: getattr(x, "stem", x))
def test_check_passes_on_the_solution(notebook: Path, name: str) -> None:
    solution = getattr(module("solutions", notebook), name)
    getattr(module("checks", notebook), name)(solution)


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda p: p.stem)
def test_every_exercise_has_a_wrong_solution(notebook: Path) -> None:
    exercises = set(stubs(notebook))
    covered = {name.split("__")[0] for name in wrong_names(notebook)}
    assert exercises <= covered, (
        f"exercises/wrong/{slug(notebook)}.py has no wrong solution for "
        f"{sorted(exercises - covered)}")
    assert covered <= exercises, (
        f"exercises/wrong/{slug(notebook)}.py has wrong solutions for "
        f"{sorted(covered - exercises)}, which are not exercises")


@pytest.mark.parametrize(
    "notebook, name", wrong_cases(), ids=lambda x: getattr(x, "stem", x))
def test_check_rejects_the_wrong_solution(notebook: Path, name: str) -> None:
    wrong = getattr(module("wrong", notebook), name)
    assert wrong.__doc__, f"{name}: say in a docstring what is wrong"
    assert len(getattr(wrong, "says", "")) >= 5, (
        f"{name}: mark it @says(<part of the check's message>, five "
        "characters or more)")
    check = getattr(module("checks", notebook), name.split("__")[0])
    with pytest.raises(AssertionError) as rejected:
        check(wrong)
    message = str(rejected.value)
    assert wrong.says.lower() in message.lower(), (
        f"the check rejects {name} with {message!r}, which does not say "
        f"{wrong.says!r}")
