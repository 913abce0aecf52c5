"""The project's infrastructure: shared data, compiled-extension builds,
and the guard that keeps ``book execute`` from running stale code."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ROOT, SharedData
from typer.testing import CliRunner

from scratchllm.distributed.configs import write_configs
from scratchllm.distributed.launch import (
    clear_stale_locks,
    extensions_folder,
    launch,
    launch_environment,
)

FP32 = ["--mixed_precision", "no"]


# ------------------------------------------------------------ shared data
def test_shared_data_honours_the_variable(tmp_path: Path) -> None:
    (tmp_path / "gpt2").mkdir()
    (tmp_path / "gpt2" / "vocab.json").write_text("{}")
    shared = SharedData({"SCRATCHLLM_SHARED_DATA": str(tmp_path)})
    assert shared("gpt2/vocab.json") == tmp_path / "gpt2" / "vocab.json"
    default = SharedData({})
    assert default.folder == ROOT.parent / "shared" / "data"


def test_missing_shared_data_skips_but_fails_under_ci(tmp_path: Path) -> None:
    reader = SharedData({"SCRATCHLLM_SHARED_DATA": str(tmp_path)})
    with pytest.raises(pytest.skip.Exception) as skipped:
        reader("gpt2/merges.txt")
    ci = SharedData({"SCRATCHLLM_SHARED_DATA": str(tmp_path), "CI": "true"})
    with pytest.raises(pytest.fail.Exception) as failed:
        ci("gpt2/merges.txt")
    for message in (str(skipped.value), str(failed.value)):
        assert str(tmp_path / "gpt2" / "merges.txt") in message
        assert "SCRATCHLLM_SHARED_DATA" in message


@pytest.mark.slow
def test_tokenizer_tests_read_the_shared_data_variable(tmp_path: Path
                                                       ) -> None:
    """With the variable naming an empty folder under CI, the tests that
    need Tiny Shakespeare fail, naming the variable: they look there."""
    env = {**os.environ, "SCRATCHLLM_SHARED_DATA": str(tmp_path),
           "CI": "true"}
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
         "-m", "", "-k", "shakespeare", "tests/test_tokenizer.py"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=600,
        check=False)
    assert run.returncode == 1, run.stdout[-2000:]
    assert "SCRATCHLLM_SHARED_DATA" in run.stdout
    summary = run.stdout.splitlines()[-1]
    assert "failed" in summary or "error" in summary
    assert "skipped" not in summary


def test_no_test_skips_on_the_projects_own_modules() -> None:
    """The package is always installed: failing to import one of its
    modules is a failure, never a skip."""
    needle = re.compile(r"importorskip\(\s*[\"']scratchllm")
    offenders = [
        f"{path.name}:{number}"
        for path in sorted((ROOT / "tests").glob("*.py"))
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if needle.search(line)
    ]
    assert offenders == []


# ------------------------------------------- compiled extensions (DeepSpeed)
def test_extensions_build_inside_the_project(monkeypatch) -> None:
    monkeypatch.delenv("TORCH_EXTENSIONS_DIR", raising=False)
    folder = ROOT / "_build" / "torch_extensions"
    assert extensions_folder() == folder
    env = launch_environment(2, cpu=True)
    assert env["TORCH_EXTENSIONS_DIR"] == str(folder)
    monkeypatch.setenv("TORCH_EXTENSIONS_DIR", "/elsewhere")
    assert launch_environment(2, cpu=True)["TORCH_EXTENSIONS_DIR"] == (
        "/elsewhere")


def test_the_makefile_builds_into_the_launchers_folder(monkeypatch) -> None:
    monkeypatch.delenv("TORCH_EXTENSIONS_DIR", raising=False)
    shown = subprocess.run(
        ["make", "-s", "--no-print-directory", "--eval",
         "show-extensions: ; @echo $(TORCH_EXTENSIONS_DIR)",
         "show-extensions"],
        cwd=ROOT, capture_output=True, text=True, check=True)
    assert Path(shown.stdout.strip()) == extensions_folder()


def test_only_stale_locks_are_removed(tmp_path: Path) -> None:
    for name in ["killed_op", "running_op"]:
        (tmp_path / name).mkdir()
        (tmp_path / name / "lock").touch()
    handle = os.open(tmp_path / "running_op" / "lock", os.O_RDONLY)
    try:
        assert clear_stale_locks(tmp_path) == [tmp_path / "killed_op/lock"]
        assert (tmp_path / "running_op" / "lock").exists()
    finally:
        os.close(handle)
    assert clear_stale_locks(tmp_path) == [tmp_path / "running_op/lock"]


def test_a_timeout_during_a_build_names_it(tmp_path: Path,
                                           monkeypatch) -> None:
    """A stale lock is removed before the run; a build still under way
    when the run times out is named in the error."""
    configs = tmp_path / "configs"
    write_configs(configs)
    extensions = tmp_path / "extensions"
    for name in ["killed_op", "deepspeed_shm_comm"]:
        (extensions / name).mkdir(parents=True)
        (extensions / name / "lock").touch()
    monkeypatch.setenv("TORCH_EXTENSIONS_DIR", str(extensions))
    lock = extensions / "deepspeed_shm_comm" / "lock"
    handle = os.open(lock, os.O_RDONLY)  # a build in progress holds it
    try:
        with pytest.raises(TimeoutError) as error:
            launch(["check"], 2, configs / "multi_gpu.yaml", FP32,
                   timeout=2, cpu=True)
    finally:
        os.close(handle)
    assert not (extensions / "killed_op" / "lock").exists()
    message = str(error.value).splitlines()[0]
    assert f"while PyTorch was compiling deepspeed_shm_comm in {extensions}" \
        in message
    assert "killed_op" not in message
    assert "scratchllm distributed build-ops" in message


# ------------------------------------------------------------ book execute
def mini_book(root: Path) -> None:
    """A one-chapter book that exports one module."""
    (root / "src" / "scratchllm").mkdir(parents=True)
    (root / "src" / "scratchllm" / "__init__.py").write_text('"""x"""\n')
    (root / "_toc.yml").write_text(
        "format: jb-book\nroot: book/01_first\n")
    (root / "book").mkdir()
    (root / "book" / "01_first.md").write_text(
        "---\nkernelspec:\n  name: python3\n  display_name: Python 3\n"
        "scratchllm:\n  id: first\n  number: 1\n  title: First\n"
        "  tracks: [beginner]\n  reads: []\n  writes: []\n---\n\n"
        "# First\n\n```{code-cell} python\n:tags: [parameters]\n"
        'profile = "ci"\n```\n\n```{code-cell} python\n'
        "#| export scratchllm.demo\n"
        "def double(x: int) -> int:\n    return 2 * x\n```\n")


def test_execute_refuses_a_stale_src(tmp_path: Path, monkeypatch) -> None:
    from scratchllm.book import tangle
    from scratchllm.cli import app

    mini_book(tmp_path)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PYTHONPATH", str(tmp_path / "src"))
    for command in (["book", "execute", "--profile", "ci"],
                    ["book", "all", "--profile", "ci"]):
        result = CliRunner().invoke(app, command)
        assert result.exit_code == 1
        assert "src/scratchllm/demo.py" in result.output
        assert "scratchllm book tangle" in result.output
    tangle.tangle(tmp_path)
    from scratchllm.book.execute import check_sources

    check_sources(tmp_path)  # up to date, and the kernels import it


def test_execute_refuses_another_checkouts_package(tmp_path: Path,
                                                   monkeypatch) -> None:
    from scratchllm.book import tangle
    from scratchllm.cli import app

    mini_book(tmp_path)
    tangle.tangle(tmp_path)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PYTHONPATH", str(ROOT / "src"))
    result = CliRunner().invoke(app, ["book", "execute", "--profile", "ci"])
    assert result.exit_code == 1
    assert f"would import scratchllm from {ROOT / 'src' / 'scratchllm'}" \
        in result.output
