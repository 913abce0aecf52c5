"""Hardening II, data: the shared atomic writes (files, folders, lock),
and prepared datasets that are never half-written and are checked when
read."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from scratchllm.data import pipeline
from scratchllm.data.atomic import (FolderLocked, atomic_folder,
                                    claim_folder, folder_lock,
                                    remove_leftovers, sha256_file,
                                    write_json_atomic)
from scratchllm.data.pipeline import (PipelineConfig, run_pipeline,
                                      verify_split, write_dataset)
from scratchllm.data.storyworld import StoryWorld


def run_limited(code: str, limit: int) -> subprocess.CompletedProcess:
    """Run `code` in a Python whose files may not grow past `limit` bytes:
    a full disk, for real (writes fail with EFBIG)."""
    prelude = textwrap.dedent(f"""
        import resource, signal
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, ({limit}, {limit}))
    """)
    return subprocess.run([sys.executable, "-c", prelude + code],
                          capture_output=True, text=True,
                          env={**os.environ})


def test_a_full_disk_leaves_the_old_json_whole(tmp_path):
    path = tmp_path / "value.json"
    write_json_atomic(path, {"old": True})
    ran = run_limited(
        "from scratchllm.data.atomic import write_json_atomic\n"
        f"write_json_atomic({str(path)!r}, {{'new': 'x' * 10000}})\n", 1000)
    assert ran.returncode != 0 and "File too large" in ran.stderr
    assert json.loads(path.read_text()) == {"old": True}
    assert [p.name for p in tmp_path.iterdir()] == ["value.json"]


def test_a_failed_folder_write_leaves_the_old_folder(tmp_path):
    final = tmp_path / "out"
    with atomic_folder(final) as scratch:
        (scratch / "a.txt").write_text("old")
    with pytest.raises(RuntimeError), atomic_folder(final) as scratch:
        (scratch / "a.txt").write_text("new")
        raise RuntimeError("killed")
    assert (final / "a.txt").read_text() == "old"
    with atomic_folder(final) as scratch:
        (scratch / "b.txt").write_text("new")
    assert [p.name for p in final.iterdir()] == ["b.txt"]
    assert [p.name for p in tmp_path.iterdir()] == ["out"]


def test_claim_folder_refuses_foreign_files(tmp_path):
    (tmp_path / "index.json").write_text("{}")
    claim_folder(tmp_path, ["*.bin", "index.json"], "token shards")
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="notes.txt"):
        claim_folder(tmp_path, ["*.bin", "index.json"], "token shards")
    with pytest.raises(FileExistsError, match="is a file"):
        claim_folder(tmp_path / "notes.txt", ["*"], "anything")


def test_lock_names_its_holder_and_leftovers_are_removed(tmp_path):
    with folder_lock(tmp_path):
        with pytest.raises(FolderLocked, match=f"pid {os.getpid()}"):
            with folder_lock(tmp_path):
                pass
    (tmp_path / ".step_1.tmp-7").mkdir()
    (tmp_path / ".x.json.tmp-7").write_text("")
    (tmp_path / "keep.json").write_text("")
    assert len(remove_leftovers(tmp_path)) == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == [".lock",
                                                           "keep.json"]


def prepare(folder: Path, count: int) -> dict:
    config = PipelineConfig()
    result = run_pipeline(StoryWorld(0).documents(count), config,
                          progress=False)
    return write_dataset(result, folder, "storyworld",
                         [{"name": "storyworld", "license": "CC0"}],
                         config)


def test_a_dataset_write_killed_midway_leaves_the_old_one(tmp_path,
                                                           monkeypatch):
    folder = tmp_path / "data"
    old = prepare(folder, 60)

    def killed() -> str:
        raise KeyboardInterrupt("killed after the splits were written")

    monkeypatch.setattr(pipeline, "code_version", killed)
    with pytest.raises(KeyboardInterrupt):
        prepare(folder, 120)
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest == old
    for split, entry in manifest["splits"].items():
        assert sha256_file(folder / entry["file"]) == entry["sha256"]
        verify_split(folder, split)
    assert [p.name for p in tmp_path.iterdir()] == ["data"]


def test_readers_refuse_a_split_that_differs_from_the_manifest(tmp_path):
    folder = tmp_path / "data"
    prepare(folder, 60)
    assert verify_split(folder, "train") == folder / "train.jsonl"
    with open(folder / "train.jsonl", "a") as handle:
        handle.write('{"id": "x", "text": "added later"}\n')
    with pytest.raises(ValueError, match="differs from .*manifest.json"):
        verify_split(folder, "train")
    with pytest.raises(FileNotFoundError, match="no test split"):
        verify_split(folder, "test")


def test_prepare_command_refuses_a_folder_of_other_files(tmp_path):
    from typer.testing import CliRunner

    from scratchllm.cli import app

    out = tmp_path / "mine"
    out.mkdir()
    (out / "thesis.tex").write_text("precious")
    ran = CliRunner().invoke(app, ["data", "prepare", "storyworld",
                                   "--documents", "200", "--out", str(out)])
    assert ran.exit_code == 1
    assert "error:" in ran.output and "thesis.tex" in ran.output
    assert (out / "thesis.tex").read_text() == "precious"


def write_report_into(folder: Path, version: int) -> Path:
    from scratchllm.eval.report import write_report

    return write_report({"version": version}, folder)


def write_configs_into(folder: Path, version: int) -> Path:
    from scratchllm.distributed import configs

    first = next(iter(configs.CONFIGS))
    original = configs.CONFIGS[first]
    configs.CONFIGS[first] = {**original, "version": version}
    try:
        configs.write_configs(folder)
    finally:
        configs.CONFIGS[first] = original
    return folder / first


@pytest.mark.parametrize("write", [write_report_into, write_configs_into])
def test_a_report_or_config_write_that_fails_keeps_the_old_file(
        tmp_path, monkeypatch, write) -> None:
    """A crash after the bytes are written but before they are on disk
    (here: fsync fails) leaves the previous file whole, and no temp."""
    path = write(tmp_path, 1)
    before = path.read_bytes()

    def crash(_: int) -> None:
        raise OSError("disk gone")

    monkeypatch.setattr(os, "fsync", crash)
    with pytest.raises(OSError, match="disk gone"):
        write(tmp_path, 2)
    assert path.read_bytes() == before
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]
