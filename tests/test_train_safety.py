"""Hardening II, training: one writer per run folder, no silent
overwrite, exact-or-refused resumes, a log without repeated steps, a
checkpoint swap that never leaves no copy, and generation that refuses
another tokenizer."""

import os
import shutil
import subprocess
import sys

import pytest
from test_train_loop import (  # noqa: F401  (the module-scoped fixture)
    Killed,
    artifacts,
    config,
    kill_after,
    same_weights,
)

from scratchllm.data.atomic import FolderLocked, folder_lock
from scratchllm.tokenizer import load_tokenizer, train_bpe
from scratchllm.train import pretrain
from scratchllm.train.checkpoint import (
    CheckpointError,
    load_checkpoint,
    matching_tokenizer,
    save_checkpoint,
)
from scratchllm.train.monitor import read_log


def test_a_second_writer_is_refused_and_told_who_writes(artifacts):
    run_dir = config(artifacts, "locked").run_path()
    with folder_lock(run_dir):
        with pytest.raises(FolderLocked, match=f"pid {os.getpid()} on "):
            pretrain(config(artifacts, "locked"))
    assert not (run_dir / "log.jsonl").exists()


def test_a_stale_lock_of_a_killed_run_is_taken_over(artifacts, capsys):
    run_dir = config(artifacts, "stale").run_path()
    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import sys, time\n"
         "from scratchllm.data.atomic import folder_lock\n"
         f"with folder_lock({str(run_dir)!r}):\n"
         "    print('locked', flush=True)\n"
         "    time.sleep(60)\n"],
        stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "locked"
    holder.kill()
    holder.wait()
    (run_dir / ".step_00000003.tmp-999999").mkdir()
    (run_dir / ".latest.json.tmp-999999").write_text("{")
    pretrain(config(artifacts, "stale"))
    err = capsys.readouterr().err
    assert f"stale lock of pid {holder.pid}" in err
    assert not list(run_dir.glob(".*.tmp-*"))


def test_resume_with_changed_settings_is_refused(artifacts):
    pretrain(config(artifacts, "changed", max_steps=3))
    with pytest.raises(CheckpointError) as error:
        pretrain(config(artifacts, "changed", resume=True, max_steps=6,
                        lr=1e-3, batch_size=2))
    message = str(error.value)
    for field in ["max_steps 3 -> 6", "lr 0.003 -> 0.001",
                  "batch_size 4 -> 2"]:
        assert field in message
    # What does not change the arithmetic may change.
    pretrain(config(artifacts, "changed", resume=True, max_steps=3,
                    log_every=1, eval_tokens=128))


def test_resume_with_other_kernels_is_refused(artifacts):
    """The kernels may round differently (PyTorch's fused AdamW does
    here; the fused norm and padded head may on a GPU), so switching
    mid-run would not be exact."""
    pretrain(config(artifacts, "kernels", max_steps=3, kernels="fast"))
    with pytest.raises(CheckpointError,
                       match="kernels 'fast' -> 'reference'"):
        pretrain(config(artifacts, "kernels", resume=True, max_steps=3,
                        kernels="reference"))
    pretrain(config(artifacts, "kernels", resume=True, max_steps=3,
                    kernels="fast"))


def test_the_log_never_repeats_a_step_after_a_resume(artifacts):
    with pytest.raises(Killed):
        pretrain(config(artifacts, "relog"), on_step=kill_after(5))
    pretrain(config(artifacts, "relog", resume=True))
    log = read_log(config(artifacts, "relog").run_path() / "log.jsonl")
    for kind in ["train", "eval"]:
        steps = [r["step"] for r in log if r["kind"] == kind]
        assert steps == sorted(set(steps)), (kind, steps)
    assert [r["step"] for r in log if r["kind"] == "train"] == [2, 4, 6]


def test_saving_a_step_twice_always_leaves_a_copy(tmp_path, monkeypatch):
    """Every deletion during the second save happens while a complete
    step folder is in place (before the fix the old one was deleted
    first, then the new one renamed in)."""
    import torch

    state = {"w": torch.ones(3)}
    save_checkpoint(tmp_path, 3, state, {"state": {}, "param_groups": []},
                    {"note": "first"})
    final = tmp_path / "step_00000003"
    real_rmtree = shutil.rmtree
    seen = []

    def checked_rmtree(path, *args, **kwargs):
        real_rmtree(path, *args, **kwargs)
        seen.append((final / "checkpoint.json").is_file())

    monkeypatch.setattr(shutil, "rmtree", checked_rmtree)
    save_checkpoint(tmp_path, 3, {"w": torch.zeros(3)},
                    {"state": {}, "param_groups": []}, {"note": "second"})
    assert seen and all(seen)
    assert load_checkpoint(tmp_path).meta["note"] == "second"


def test_generation_refuses_another_tokenizer(artifacts, tmp_path):
    result = pretrain(config(artifacts, "gen", max_steps=3))
    tokenizer_dir = artifacts / "ci" / "tokenizer"
    assert matching_tokenizer(result.run_dir, tokenizer_dir).sha256() == \
        load_tokenizer(tokenizer_dir).sha256()
    other = tmp_path / "other"
    train_bpe(["a completely different text, with other merges"] * 3,
              262).save(other)
    with pytest.raises(CheckpointError, match="another tokenizer"):
        matching_tokenizer(result.run_dir, other)
    from typer.testing import CliRunner

    from scratchllm.cli import app

    ran = CliRunner().invoke(app, [
        "generate", "Once", "--checkpoint", str(result.run_dir),
        "--tokenizer", str(other), "--max-new-tokens", "4"])
    assert ran.exit_code == 1
    assert "another tokenizer" in ran.output
    exported = CliRunner().invoke(app, [
        "model", "export", str(result.run_dir), "--out", str(tmp_path / "hf"),
        "--tokenizer", str(other), "--no-check"])
    assert exported.exit_code == 1
    assert "another tokenizer" in exported.output


def test_pretrain_command_refuses_to_overwrite(artifacts, tmp_path):
    from typer.testing import CliRunner

    from scratchllm.cli import app

    settings = tmp_path / "tiny.yaml"
    settings.write_text(
        "model_overrides: {d_model: 32, n_heads: 2, n_kv_heads: 1, "
        "ffn_hidden: 64, n_layers: 1}\ncontext_length: 16\nbatch_size: 2\n"
        "warmup_steps: 1\nprogress: false\nrun_name: cli-overwrite\n"
        "sample_every: -1\neval_tokens: 64\n")
    args = ["pretrain", "--profile", "ci", "--config", str(settings),
            "--artifacts-root", str(artifacts), "--max-steps", "2"]
    runner = CliRunner()
    assert runner.invoke(app, args).exit_code == 0
    refused = runner.invoke(app, args)
    assert refused.exit_code == 1
    assert "--overwrite" in refused.output
    again = runner.invoke(app, [*args, "--overwrite"])
    assert again.exit_code == 0, again.output
