"""Chapter 8 training loop: exact resume after a kill, accumulation,
Accelerate, logs, and clear errors (the real GPT on tiny shards)."""

import json
import random

import pytest
import torch

from scratchllm.train import preset, pretrain
from scratchllm.train.checkpoint import CheckpointError
from scratchllm.train.monitor import plot_training, read_log

TINY_MODEL = {"d_model": 32, "n_heads": 2, "n_kv_heads": 1,
              "ffn_hidden": 64, "n_layers": 2}


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory, tiny_corpus):
    """A/tokenizer and A/tokens/storyworld for a tiny corpus of stories."""
    root = tmp_path_factory.mktemp("artifacts")
    rng = random.Random(0)
    names, things = ["Mia", "Tom", "Ada"], ["ball", "cat", "kite"]
    stories = [
        f"{rng.choice(names)} had a {rng.choice(things)}. "
        f"{rng.choice(names)} liked the {rng.choice(things)}."
        for _ in range(600)
    ]
    tokenizer = tiny_corpus(root / "ci", stories, validation=100,
                            vocab_size=270)
    tokenizer.save(root / "ci" / "tokenizer")
    return root


def config(artifacts, name, **overrides):
    options = dict(artifacts_root=str(artifacts), run_name=name,
                   model_overrides=TINY_MODEL, context_length=16,
                   batch_size=4, max_steps=6, warmup_steps=1, log_every=2,
                   eval_every=3, eval_tokens=256, checkpoint_every=3,
                   sample_every=-1, sample_tokens=8, progress=False,
                   precision="fp32", device="cpu")
    return preset("ci", **{**options, **overrides})


class Killed(Exception):
    pass


def kill_after(step):
    def on_step(done, record):
        if done == step:
            raise Killed
    return on_step


def same_weights(a, b):
    return all(torch.equal(x, y) for x, y in
               zip(a.state_dict().values(), b.state_dict().values()))


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_resume_after_kill_is_bit_identical(artifacts, precision):
    dropout = {**TINY_MODEL, "dropout": 0.1}
    straight = pretrain(config(artifacts, f"straight-{precision}",
                               precision=precision,
                               model_overrides=dropout))
    killed = config(artifacts, f"killed-{precision}", precision=precision,
                    model_overrides=dropout)
    with pytest.raises(Killed):
        pretrain(killed, on_step=kill_after(5))
    resumed = pretrain(config(artifacts, f"killed-{precision}",
                              precision=precision, model_overrides=dropout,
                              resume=True))
    assert same_weights(straight.model, resumed.model)
    assert resumed.val_loss == straight.val_loss


def test_without_resume_a_run_starts_over(artifacts):
    first = pretrain(config(artifacts, "again"))
    with pytest.raises(CheckpointError, match="--overwrite"):
        pretrain(config(artifacts, "again"))
    assert (first.run_dir / "step_00000006").is_dir()
    second = pretrain(config(artifacts, "again", overwrite=True))
    assert same_weights(first.model, second.model)
    log = read_log(first.run_dir / "log.jsonl")
    assert [r["step"] for r in log if r["kind"] == "train"] == [2, 4, 6]


def test_resuming_a_finished_run_only_evaluates(artifacts):
    done = pretrain(config(artifacts, "finished"))
    again = pretrain(config(artifacts, "finished", resume=True))
    assert same_weights(done.model, again.model)
    assert again.val_loss == pytest.approx(done.val_loss)


def test_accumulation_matches_one_large_batch(artifacts):
    whole = pretrain(config(artifacts, "whole", max_steps=3))
    parts = pretrain(config(artifacts, "parts", max_steps=3,
                            micro_batch_size=1))
    for a, b in zip(whole.model.parameters(), parts.model.parameters()):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-5)


def test_loss_goes_down_and_logs_are_complete(artifacts):
    result = pretrain(config(artifacts, "learns", max_steps=40,
                             eval_every=40, lr=1e-2, sample_every=0))
    log = read_log(result.run_dir / "log.jsonl")
    train = [r for r in log if r["kind"] == "train"]
    assert train[-1]["loss"] < train[0]["loss"] - 1.0
    assert {"loss", "lr", "grad_norm", "tokens_per_s", "ms_per_step"} <= \
        set(train[0])
    assert [r["kind"] for r in log].count("sample") == 1
    assert result.val_bits_per_byte > 0
    plot_training(log)


def test_accelerate_single_process_matches_plain_loop(artifacts):
    accelerate = pytest.importorskip("accelerate")
    plain = pretrain(config(artifacts, "plain", max_steps=3))
    accelerator = accelerate.Accelerator(cpu=True, mixed_precision="no")
    accelerated = pretrain(config(artifacts, "accelerated", max_steps=3),
                           accelerator=accelerator)
    for a, b in zip(plain.model.parameters(),
                    accelerated.model.parameters()):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-6)
    with pytest.raises(ValueError, match="mixed_precision"):
        pretrain(config(artifacts, "mismatch", precision="bf16"),
                 accelerator=accelerator)


def test_each_process_draws_its_own_dropout_masks(artifacts):
    accelerate = pytest.importorskip("accelerate")

    class PretendRank(accelerate.Accelerator):
        """One real process that reports being rank `rank` of two."""

        def __init__(self, rank):
            super().__init__(cpu=True, mixed_precision="no")
            self.pretend = rank

        process_index = property(lambda self: self.pretend)
        num_processes = property(lambda self: 2)
        is_main_process = property(lambda self: self.pretend == 0)

    draws, weights = {}, {}
    for rank in (0, 1):
        def on_step(done, record, rank=rank):
            if done == 1:
                draws[rank] = (torch.initial_seed(), torch.rand(8))
        result = pretrain(
            config(artifacts, f"rank{rank}", max_steps=2, lr=1e-30,
                   model_overrides={**TINY_MODEL, "dropout": 0.1}),
            accelerator=PretendRank(rank), on_step=on_step)
        weights[rank] = result.model.state_dict()
    seed = config(artifacts, "x").seed
    assert draws[0][0] == seed and draws[1][0] == seed + 1
    assert not torch.equal(draws[0][1], draws[1][1])
    for name, tensor in weights[0].items():
        assert torch.equal(tensor, weights[1][name]), name


def test_checkpoint_keeps_every_process_random_state(tmp_path):
    from scratchllm.model.config import ModelConfig
    from scratchllm.model.gpt import GPT
    from scratchllm.train.checkpoint import (capture_rng, load_checkpoint,
                                             save_checkpoint)

    model = GPT(ModelConfig(vocab_size=50, context_length=8, d_model=16,
                            n_layers=1, n_heads=2, n_kv_heads=1,
                            ffn_hidden=32))
    states = []
    for seed in (3, 4):
        torch.manual_seed(seed)
        states.append(capture_rng())
    save_checkpoint(tmp_path, 1, model.state_dict(),
                    {"state": {}, "param_groups": []}, {}, rng=states)
    loaded = load_checkpoint(tmp_path).rng_state
    assert len(loaded) == 2
    for (tensors, values), again in zip(states, loaded):
        assert again["values"] == values
        assert tensors.keys() == again["tensors"].keys()
        for name, tensor in tensors.items():
            assert torch.equal(tensor, again["tensors"][name]), name


def truncate(path):
    path.write_bytes(path.read_bytes()[:-10])


def test_damaged_latest_checkpoint_falls_back_to_the_one_before(
        artifacts, capsys):
    result = pretrain(config(artifacts, "corrupt"))
    truncate(result.run_dir / "step_00000006" / "model.safetensors")
    again = pretrain(config(artifacts, "corrupt", resume=True))
    assert "newest intact one, step_00000003" in capsys.readouterr().err
    assert same_weights(result.model, again.model)
    for step in ["step_00000003", "step_00000006"]:
        truncate(result.run_dir / step / "model.safetensors")
    with pytest.raises(CheckpointError,
                       match="no intact checkpoint.*truncated"):
        pretrain(config(artifacts, "corrupt", resume=True))


def test_resume_refuses_another_model(artifacts):
    pretrain(config(artifacts, "other"))
    wider = {**TINY_MODEL, "d_model": 64}
    with pytest.raises(CheckpointError, match="another model"):
        pretrain(config(artifacts, "other", resume=True,
                        model_overrides=wider))


def test_clear_errors_for_bad_setups(artifacts, tmp_path):
    with pytest.raises(FileNotFoundError, match="no token shards"):
        pretrain(config(artifacts, "none", tokens_dir=str(tmp_path)))
    with pytest.raises(ValueError, match="fp16"):
        pretrain(config(artifacts, "fp16", precision="fp16"))
    with pytest.raises(ValueError, match="micro-batches"):
        pretrain(config(artifacts, "odd", micro_batch_size=3))


def test_command_line(artifacts, tmp_path):
    from typer.testing import CliRunner

    from scratchllm.cli import app

    runner = CliRunner()
    estimate = runner.invoke(app, ["estimate", "--params", "124M",
                                   "--tokens", "10B", "--devices", "8"])
    assert estimate.exit_code == 0, estimate.output
    assert "7.44e+18 FLOPs" in estimate.output
    optimal = runner.invoke(app, ["estimate", "--flops", "1e21"])
    assert optimal.exit_code == 0 and "compute-optimal" in optimal.output
    assert runner.invoke(app, ["estimate", "--params", "x"]).exit_code == 1
    settings = tmp_path / "tiny.yaml"
    settings.write_text(
        "model_overrides: {d_model: 32, n_heads: 2, n_kv_heads: 1, "
        "ffn_hidden: 64, n_layers: 1}\ncontext_length: 16\nbatch_size: 2\n"
        "warmup_steps: 1\nprogress: false\nrun_name: cli\n"
        "sample_every: -1\neval_tokens: 64\n")
    trained = runner.invoke(app, [
        "pretrain", "--profile", "ci", "--config", str(settings),
        "--artifacts-root", str(artifacts), "--max-steps", "2"])
    assert trained.exit_code == 0, trained.output
    assert "bits/byte" in trained.output
    missing = runner.invoke(app, [
        "pretrain", "--profile", "ci", "--artifacts-root", str(tmp_path)])
    assert missing.exit_code == 1 and "no token shards" in missing.output
    bench = runner.invoke(app, [
        "bench-train", "--model", "ci", "--precision", "fp32",
        "--compile", "off", "--batch-size", "2", "--context-length", "16",
        "--vocab-size", "64", "--steps", "1", "--repeats", "1"])
    assert bench.exit_code == 0, bench.output
    assert "tokens/s" in bench.output
    rows = tmp_path / "bench.json"
    bench = runner.invoke(app, [
        "train", "bench", "--model", "ci", "--precision", "fp32",
        "--compile", "off", "--batch-size", "2", "--context-length", "16",
        "--vocab-size", "200", "--n-layers", "1", "--steps", "1",
        "--repeats", "1", "--peak-tflops", "1", "--json", str(rows)])
    assert bench.exit_code == 0, bench.output
    assert "MFU" in bench.output and "n/a" not in bench.output
    row, = json.loads(rows.read_text())
    assert row["model"] == "ci" and 0 < row["mfu"] < 1
    assert 0 <= row["data_share"] < 1 and row["tokens_per_s"] > 0


@pytest.mark.parametrize(("field", "value"), [
    ("lr", float("inf")), ("lr", float("nan")), ("weight_decay", float("nan")),
    ("micro_batch_size", -2), ("keep_checkpoints", 0), ("grad_clip", -1.0),
    ("eps", 0.0), ("betas", (0.9,)), ("lr", "fast"), ("checkpoint_every", -1),
])
def test_bad_numbers_are_refused_when_read(field, value):
    with pytest.raises(ValueError, match=field):
        preset("ci", **{field: value})


def test_a_diverging_run_stops_with_a_clear_message(artifacts):
    with pytest.raises(FloatingPointError, match="diverged"):
        pretrain(config(artifacts, "diverge", lr=1e30, grad_clip=0.0,
                        warmup_steps=0, log_every=1))


def test_config_file_profile_beats_the_default_profile(artifacts, tmp_path):
    from typer.testing import CliRunner

    from scratchllm.cli import app

    settings = tmp_path / "ci.yaml"
    settings.write_text(
        f"profile: ci\nartifacts_root: {artifacts}\nmax_steps: 2\n"
        "model_overrides: {d_model: 32, n_heads: 2, n_kv_heads: 1, "
        "ffn_hidden: 64, n_layers: 1}\ncontext_length: 16\nbatch_size: 2\n"
        "warmup_steps: 1\nprogress: false\nrun_name: profile\n"
        "sample_every: -1\neval_tokens: 64\n")
    trained = CliRunner().invoke(app, ["pretrain", "--config",
                                       str(settings)])
    assert trained.exit_code == 0, trained.output
    assert (artifacts / "ci" / "checkpoints" / "profile").is_dir()


def test_auto_precision_rule_follows_the_hardware():
    from scratchllm.train.precision import auto_precision

    assert auto_precision("cpu", {"avx2", "amx_bf16"}) == "bf16"
    assert auto_precision("cpu", {"avx512f", "avx512_bf16"}) == "bf16"
    assert auto_precision("cpu", {"avx2", "fma", "avx512f"}) == "fp32"
    assert auto_precision("cpu", set()) == "fp32"
    assert auto_precision("cuda", set(), cuda_bf16=True) == "bf16"
    assert auto_precision("cuda", {"amx_bf16"}, cuda_bf16=False) == "fp32"
    assert auto_precision("mps", {"amx_bf16"}) == "fp32"


X86_CPUINFO = """processor\t: 0
vendor_id\t: GenuineIntel
model name\t: Intel(R) Xeon(R) Platinum 8481C CPU @ 2.70GHz
flags\t\t: fpu avx2 avx512f avx512_bf16 amx_bf16 amx_tile
vmx flags\t: vnmi preemption_timer
bugs\t\t: spectre_v1

processor\t: 1
flags\t\t: fpu
"""
GRAVITON3_CPUINFO = """processor\t: 0
BogoMIPS\t: 2100.00
Features\t: fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp \
asimdhp cpuid asimdrdm jscvt fcma lrcpc dcpop sha3 sm3 sm4 asimddp sha512 \
sve asimdfhm dit uscat ilrcpc flagm ssbs paca pacg dcpodp svei8mm svebf16 \
i8mm bf16 dgh rng
CPU implementer\t: 0x41
CPU architecture: 8
CPU variant\t: 0x1
CPU part\t: 0xd40
CPU revision\t: 1
"""
GRAVITON2_CPUINFO = """processor\t: 0
BogoMIPS\t: 243.75
Features\t: fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp \
asimdhp cpuid asimdrdm lrcpc dcpop asimddp ssbs
CPU implementer\t: 0x41
CPU part\t: 0xd0c
"""


@pytest.mark.parametrize(("text", "listed", "precision"), [
    (X86_CPUINFO, {"avx512_bf16", "amx_bf16"}, "bf16"),
    (X86_CPUINFO.replace(" avx512_bf16 amx_bf16", ""), set(), "fp32"),
    (GRAVITON3_CPUINFO, {"bf16"}, "bf16"),
    (GRAVITON2_CPUINFO, set(), "fp32"),
])
def test_cpu_flags_read_the_x86_and_arm_lines(tmp_path, text, listed,
                                              precision):
    from scratchllm.train.precision import (CPU_BF16_FLAGS, auto_precision,
                                            cpu_flags)

    info = tmp_path / "cpuinfo"
    info.write_text(text)
    flags = cpu_flags(info)
    assert "fpu" in flags or "asimd" in flags     # the first CPU's line
    assert "preemption_timer" not in flags        # not "vmx flags"
    assert flags & CPU_BF16_FLAGS == listed
    assert auto_precision("cpu", flags) == precision


def test_cpu_flags_are_unknown_without_a_list(tmp_path):
    from scratchllm.train.precision import auto_precision, cpu_flags

    no_list = tmp_path / "cpuinfo"
    no_list.write_text("processor\t: 0\nmodel name\t: something\n")
    for unknown in (tmp_path / "missing", no_list, tmp_path):
        assert cpu_flags(unknown) is None
    assert auto_precision("cpu", None) == "fp32"


def test_auto_precision_is_recorded_and_kept_on_resume(artifacts,
                                                      monkeypatch):
    import scratchllm.train.loop as loop
    from scratchllm.train.checkpoint import checkpoint_meta

    monkeypatch.setattr(loop, "resolve_precision",
                        lambda precision, device: "bf16")
    killed = config(artifacts, "auto", precision="auto")
    with pytest.raises(Killed):
        pretrain(killed, on_step=kill_after(4))
    saved = checkpoint_meta(killed.run_path())["train_config"]
    assert saved["precision"] == "bf16"
    # on a machine where the rule would pick fp32, the resume keeps bf16
    monkeypatch.setattr(loop, "resolve_precision",
                        lambda precision, device: "fp32")
    pretrain(config(artifacts, "auto", precision="auto", resume=True))
    records = read_log(killed.run_path() / "log.jsonl")
    assert checkpoint_meta(killed.run_path())["train_config"][
        "precision"] == "bf16"
    assert records[-1]["step"] == 6


def test_fast_kernels_train_like_the_reference(artifacts):
    reference = pretrain(config(artifacts, "ref-kernels",
                                kernels="reference"))
    fast = pretrain(config(artifacts, "fast-kernels", kernels="fast"))
    for a, b in zip(reference.model.state_dict().values(),
                    fast.model.state_dict().values()):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)
    with pytest.raises(ValueError, match="kernels"):
        config(artifacts, "x", kernels="turbo")


def test_tokens_made_elsewhere_are_indexed_in_place(tmp_path):
    import numpy as np

    from scratchllm.tokenizer.shards import read_split
    from scratchllm.train.tokens import index_tokens

    ids = (np.arange(1000) % 97).astype(np.uint16)
    np.save(tmp_path / "ids.npy", ids)
    ids.astype("<u4").tofile(tmp_path / "ids.bin")
    for name, dtype in (("ids.npy", None), ("ids.bin", "uint32")):
        out = tmp_path / name.replace(".", "_")
        index = index_tokens(tmp_path / name, 97, dtype, 0.2, out)
        assert index["tokenizer_sha256"] is None
        train, = read_split(out, "train")
        val, = read_split(out, "val")
        assert np.array_equal(np.concatenate([train, val]), ids)
        assert len(val) == 200
    with pytest.raises(ValueError, match="outside the vocabulary"):
        index_tokens(tmp_path / "ids.npy", 96, out_dir=tmp_path / "x")
    assert not (tmp_path / "x").exists()          # nothing written
    (tmp_path / "odd.bin").write_bytes(bytes(9))
    with pytest.raises(ValueError, match="whole number"):
        index_tokens(tmp_path / "odd.bin", 97, out_dir=tmp_path / "y")


def test_our_own_index_is_never_overwritten(artifacts):
    import numpy as np

    from scratchllm.train.tokens import index_tokens

    shards = artifacts / "ci" / "tokens" / "storyworld"
    before = (shards / "index.json").read_text()
    np.save(shards / "extra.npy", np.zeros(100, dtype=np.uint16))
    with pytest.raises(ValueError, match="--out"):
        index_tokens(shards / "extra.npy", 10)
    (shards / "extra.npy").unlink()
    assert (shards / "index.json").read_text() == before


def test_pretrain_runs_on_tokens_made_elsewhere(tmp_path, capsys):
    import math

    import numpy as np

    from scratchllm.train.tokens import index_tokens

    rng = np.random.default_rng(0)
    np.save(tmp_path / "ids.npy", rng.integers(0, 40, 3000).astype(
        np.uint16))
    index_tokens(tmp_path / "ids.npy", 40)
    result = pretrain(config(tmp_path, "foreign", tokens_dir=str(tmp_path),
                             sample_every=1))
    assert math.isfinite(result.val_loss)
    assert math.isnan(result.val_bits_per_byte)
    assert "made elsewhere" in capsys.readouterr().err
    records = read_log(result.run_dir / "log.jsonl")
    assert not [r for r in records if r["kind"] == "sample"]
    resumed = pretrain(config(tmp_path, "foreign", tokens_dir=str(tmp_path),
                              sample_every=1, resume=True))
    assert resumed.val_loss == result.val_loss


def test_auto_precision_must_agree_with_an_accelerate_launch(monkeypatch):
    from types import SimpleNamespace

    import scratchllm.train.loop as loop

    launched_fp32 = SimpleNamespace(mixed_precision="no")
    cpu = torch.device("cpu")
    monkeypatch.setattr(loop, "resolve_precision",
                        lambda precision, device: "fp32" if precision ==
                        "auto" else precision)
    loop.autocast_factory(preset("ci", precision="auto"), cpu,
                          launched_fp32)
    monkeypatch.setattr(loop, "resolve_precision",
                        lambda precision, device: "bf16" if precision ==
                        "auto" else precision)
    with pytest.raises(ValueError, match="launched with mixed_precision"):
        loop.autocast_factory(preset("ci", precision="auto"), cpu,
                              launched_fp32)
    with pytest.raises(ValueError, match="asks for bf16"):
        loop.autocast_factory(preset("ci", precision="bf16"), cpu,
                              launched_fp32)


@pytest.mark.parametrize("kernels", ["fast", "torch"])
def test_resume_is_exact_with_each_optimizer(artifacts, kernels):
    straight = pretrain(config(artifacts, f"straight-{kernels}",
                               kernels=kernels))
    killed = config(artifacts, f"killed-{kernels}", kernels=kernels)
    with pytest.raises(Killed):
        pretrain(killed, on_step=kill_after(4))
    resumed = pretrain(config(artifacts, f"killed-{kernels}",
                              kernels=kernels, resume=True))
    assert same_weights(straight.model, resumed.model)
