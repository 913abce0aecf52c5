"""Appendix B: ``scratchllm scaffold``, starter repositories for every
track and budget, and (slow) each repository's own tests."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from scratchllm.cli import app
from scratchllm.model.estimate import count_parameters
from scratchllm.starter.files import repository, scaffold
from scratchllm.starter.plan import (BUDGETS, CHINCHILLA_REFIT, TRACKS,
                                     compute_budget, model_for, plan,
                                     size_run)
from scratchllm.train import load_config
from scratchllm.train.scaling import estimate_run

runner = CliRunner()
COMBINATIONS = [(t, b) for t in TRACKS for b in BUDGETS]


@pytest.fixture(scope="module")
def generated(tmp_path_factory) -> dict[tuple[str, str], Path]:
    """Every track x budget, generated once through the command line."""
    root = tmp_path_factory.mktemp("starters")
    found = {}
    for track, budget in COMBINATIONS:
        folder = root / f"{track}-{budget}"
        result = runner.invoke(app, ["scaffold", "--track", track,
                                     "--budget", budget, str(folder)])
        assert result.exit_code == 0, result.output
        assert f"the {track} track on the {budget} budget" in result.output
        found[track, budget] = folder
    return found


def test_sizes_follow_chapter_7s_compute_optimal_rule() -> None:
    for budget in BUDGETS.values():
        sizes = size_run(budget)
        params, tokens = CHINCHILLA_REFIT.compute_optimal(
            compute_budget(budget))
        assert sizes.tokens == pytest.approx(tokens)
        assert 0.7 < sizes.params / params < 1.4  # the nearest shape
        assert sizes.steps * budget.batch_size * budget.context_length \
            >= tokens
    laptop, cluster = (size_run(BUDGETS[b]) for b in ("laptop", "cluster"))
    assert laptop.params < 5e6 and cluster.params > 1e9


def test_the_nearest_shape_is_nearest() -> None:
    model = model_for(124e6, 50257, 1024)
    assert 100e6 < count_parameters(model) < 150e6
    assert model.n_heads % model.n_kv_heads == 0


def test_every_combination_has_its_files(
    generated: dict[tuple[str, str], Path],
) -> None:
    for (track, budget), folder in generated.items():
        names = {str(p.relative_to(folder)) for p in folder.rglob("*")
                 if p.is_file()}
        for expected in ("README.md", "pyproject.toml", "run.py",
                         "starter.yaml", "tests/test_starter.py",
                         "configs/budget/pretrain.yaml",
                         "configs/ci/pretrain.yaml", "scripts/1_data.sh"):
            assert expected in names, (track, budget, expected)
        assert ("accelerate.yaml" in names) == (BUDGETS[budget].devices > 1)
        assert any(n.endswith("_serve.sh") for n in names)
        assert any(n.endswith("_sft.sh") for n in names)
        assert not any("/." in n or n.startswith(".") and n != ".gitignore"
                       for n in names)  # no temporary files left
        assert 'dependencies = ["scratchllm>=' in (
            folder / "pyproject.toml").read_text()
        assert os.access(folder / "scripts" / "1_data.sh", os.X_OK)
        compile((folder / "run.py").read_text(), "run.py", "exec")


def test_configs_are_sized_to_the_budget(
    generated: dict[tuple[str, str], Path],
) -> None:
    for (track, budget), folder in generated.items():
        sizes = size_run(BUDGETS[budget])
        config = load_config(folder / "configs/budget/pretrain.yaml")
        assert config.max_steps == sizes.steps
        assert config.model_overrides["d_model"] == sizes.model.d_model
        data = yaml.safe_load((folder / "configs/budget/data.yaml")
                              .read_text())
        assert data["documents"] == sizes.stories
        sweep = sorted((folder / "configs/budget/sweep").glob("*.yaml"))
        assert len(sweep) == (3 if track == "researcher" else 0)
        steps = yaml.safe_load((folder / "configs/budget/run.yaml")
                               .read_text())["steps"]
        assert steps[:6] == ["data", "tokenizer", "pretrain", "sft", "eval",
                             "audit"] and steps[-1] == "serve"


def test_the_readme_prices_every_step(
    generated: dict[tuple[str, str], Path],
) -> None:
    from scratchllm.train.monitor import PRICES_AS_OF

    folder = generated["beginner", "gpu"]
    text = (folder / "README.md").read_text()
    sizes = size_run(BUDGETS["gpu"])
    run = estimate_run(sizes.params, sizes.tokens, "a100-80gb", 1, 0.35)
    assert f"| `python run.py pretrain` | 7 | pretrain the model | " \
        f"{run.hours:.1f} h | ${run.dollars:,.2f} |" in text
    assert f"as of {PRICES_AS_OF}" in text
    for step in plan(sizes, "beginner"):
        assert f"`python run.py {step.name}`" in text


def test_the_ci_path_is_shared_across_budgets(
    generated: dict[tuple[str, str], Path],
) -> None:
    """The tiny path does not depend on the budget, so one end-to-end run
    per track covers all three budgets; the beginner's steps are the
    practitioner's without the export."""
    for track in TRACKS:
        first = generated[track, "laptop"] / "configs" / "ci"
        for budget in ("gpu", "cluster"):
            other = generated[track, budget] / "configs" / "ci"
            for path in first.rglob("*.yaml"):
                assert path.read_bytes() == (
                    other / path.relative_to(first)).read_bytes()
    beginner = generated["beginner", "laptop"] / "configs" / "ci"
    practitioner = generated["practitioner", "laptop"] / "configs" / "ci"
    steps = {name: yaml.safe_load((folder / "run.yaml").read_text())
             ["steps"] for name, folder in (("b", beginner),
                                            ("p", practitioner))}
    assert [s for s in steps["p"] if s != "export"] == steps["b"]
    for path in beginner.glob("*.yaml"):
        if path.name != "run.yaml":
            assert path.read_bytes() == (practitioner / path.name) \
                .read_bytes()


def test_a_folder_that_is_not_empty_is_refused(tmp_path: Path) -> None:
    (tmp_path / "mine.txt").write_text("keep me")
    result = runner.invoke(app, ["scaffold", str(tmp_path)])
    assert result.exit_code == 1
    assert result.output.strip() == (
        f"error: {tmp_path} exists and is not empty: choose a new folder")
    assert [p.name for p in tmp_path.iterdir()] == ["mine.txt"]
    empty = tmp_path / "empty"
    empty.mkdir()
    assert scaffold(empty, "beginner", "laptop")


@pytest.mark.parametrize("arguments, message", [
    (["--track", "expert"], "error: unknown track 'expert'"),
    (["--budget", "tpu"], "error: unknown budget 'tpu'"),
    (["--budget", "gpu", "{file}"], "is a file, not a folder"),
])
def test_bad_input_gives_one_error_line(
    tmp_path: Path, arguments: list[str], message: str
) -> None:
    file = tmp_path / "file.txt"
    file.write_text("x")
    arguments = [a.replace("{file}", str(file)) for a in arguments]
    if "{file}" not in " ".join(arguments) and str(file) not in arguments:
        arguments.append(str(tmp_path / "new"))
    result = runner.invoke(app, ["scaffold", *arguments])
    assert result.exit_code == 1
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and message in lines[0]


def test_unknown_track_or_budget_in_the_library() -> None:
    with pytest.raises(ValueError, match="unknown budget"):
        repository(Path("x"), "beginner", "moon")
    with pytest.raises(ValueError, match="unknown track"):
        repository(Path("x"), "novice", "laptop")


def run_generated_tests(folder: Path, *options: str) -> str:
    """Run a generated repository's own pytest; return its output."""
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
         *options], cwd=folder, text=True, capture_output=True,
        env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"})
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done.stdout


@pytest.mark.slow
@pytest.mark.parametrize("track", ["practitioner", "researcher"])
def test_generated_repositories_pass_their_own_tests(
    generated: dict[tuple[str, str], Path], track: str
) -> None:
    """End to end at the ci size once per track that adds steps (the
    beginner's path is the practitioner's without the export); the
    other budgets' configuration tests too."""
    output = run_generated_tests(generated[track, "laptop"])
    assert "passed" in output
    for budget in ("gpu", "cluster"):
        run_generated_tests(generated[track, budget], "-k",
                            "not end_to_end")
    if track == "practitioner":
        run_generated_tests(generated["beginner", "laptop"], "-k",
                            "not end_to_end")
