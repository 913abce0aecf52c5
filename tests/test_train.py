"""Chapter 8 components: loss, AdamW, clipping, schedules, sampler,
checkpoints, config, scaling (each pinned exactly where it can be)."""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from scratchllm.model.config import ModelConfig
from scratchllm.model.gpt import GPT
from scratchllm.train.checkpoint import (
    CheckpointError,
    capture_rng,
    load_checkpoint,
    load_model,
    restore_rng,
    save_checkpoint,
)
from scratchllm.train.config import TrainConfig, load_config, preset
from scratchllm.train.data import WindowSampler
from scratchllm.train.loss import bits_per_byte, cross_entropy, perplexity
from scratchllm.train.optim import (
    AdamW,
    clip_grad_norm,
    warmup_cosine,
    warmup_stable_decay,
)
from scratchllm.train.scaling import (
    CHINCHILLA,
    CHINCHILLA_REFIT,
    estimate_run,
    fit_isoflop,
    parse_count,
    tokens_per_parameter_rule,
)


# ---------------------------------------------------------------- loss


def test_cross_entropy_matches_torch_value_and_gradient():
    torch.manual_seed(0)
    logits = (torch.randn(3, 7, 50) * 40).requires_grad_()
    targets = torch.randint(0, 50, (3, 7))
    targets[1, 2:5] = -100
    ours = cross_entropy(logits, targets)
    (g_ours,) = torch.autograd.grad(ours, logits)
    ref = F.cross_entropy(logits.reshape(-1, 50), targets.reshape(-1))
    (g_ref,) = torch.autograd.grad(ref, logits)
    torch.testing.assert_close(ours, ref, rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(g_ours, g_ref, rtol=1e-5, atol=1e-7)


def test_cross_entropy_is_finite_for_huge_logits():
    logits = torch.tensor([[1e4, 0.0, -1e4]])
    assert cross_entropy(logits, torch.tensor([1])).item() == \
        pytest.approx(1e4)


def test_cross_entropy_rejects_bad_input():
    with pytest.raises(ValueError, match="do not match"):
        cross_entropy(torch.zeros(2, 3, 5), torch.zeros(2, 4).long())
    with pytest.raises(ValueError, match="ignore_index"):
        cross_entropy(torch.zeros(2, 5), torch.full((2,), -100))


def test_bits_per_byte_and_perplexity():
    assert bits_per_byte(math.log(2), 10, 10) == pytest.approx(1.0)
    assert bits_per_byte(math.log(2), 10, 40) == pytest.approx(0.25)
    assert perplexity(math.log(7)) == pytest.approx(7.0)
    with pytest.raises(ValueError):
        bits_per_byte(1.0, 0, 10)


# ------------------------------------------------------------ optimiser


def _network(seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Linear(8, 32), torch.nn.Tanh(),
                               torch.nn.Linear(32, 3))


def _train(optimizer_factory, steps: int = 100) -> torch.nn.Module:
    net = _network()
    decay = [p for p in net.parameters() if p.dim() == 2]
    other = [p for p in net.parameters() if p.dim() < 2]
    opt = optimizer_factory([{"params": decay, "weight_decay": 0.1},
                             {"params": other, "weight_decay": 0.0}])
    gen = torch.Generator().manual_seed(1)
    for step in range(steps):
        for group in opt.param_groups:
            group["lr"] = 1e-2 * (0.99 ** step)
        x = torch.randn(16, 8, generator=gen)
        loss = (net(x) - x[:, :3]).pow(2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    return net


def test_adamw_is_bit_identical_to_torch_over_many_steps():
    options = dict(lr=1e-2, betas=(0.9, 0.95), eps=1e-8)
    ours = _train(lambda g: AdamW(g, **options))
    ref = _train(lambda g: torch.optim.AdamW(g, foreach=False, **options))
    for a, b in zip(ours.parameters(), ref.parameters()):
        assert torch.equal(a, b)


def test_adamw_matches_torch_default_multi_tensor_path():
    options = dict(lr=1e-2, betas=(0.9, 0.95), eps=1e-8)
    ours = _train(lambda g: AdamW(g, **options))
    ref = _train(lambda g: torch.optim.AdamW(g, **options))
    for a, b in zip(ours.parameters(), ref.parameters()):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-5)


def test_adamw_rejects_bad_hyperparameters():
    params = [torch.nn.Parameter(torch.zeros(2))]
    with pytest.raises(ValueError):
        AdamW(params, lr=-1.0)
    with pytest.raises(ValueError):
        AdamW(params, betas=(0.9, 1.0))


@pytest.mark.parametrize("max_norm", [0.05, 1e6])
def test_clip_matches_clip_grad_norm_exactly(max_norm):
    nets = [_network(3), _network(3)]
    for net in nets:
        net(torch.ones(4, 8)).pow(2).sum().backward()
    ours = clip_grad_norm(nets[0].parameters(), max_norm)
    ref = torch.nn.utils.clip_grad_norm_(nets[1].parameters(), max_norm)
    assert torch.equal(ours, ref)
    for a, b in zip(nets[0].parameters(), nets[1].parameters()):
        assert torch.equal(a.grad, b.grad)


def test_clip_result_has_the_limit_as_norm():
    net = _network(3)
    net(torch.ones(4, 8)).pow(2).sum().backward()
    clip_grad_norm(net.parameters(), 0.1)
    norm = torch.linalg.vector_norm(
        torch.cat([p.grad.flatten() for p in net.parameters()]))
    assert norm.item() == pytest.approx(0.1, rel=1e-4)
    with pytest.raises(ValueError):
        clip_grad_norm(net.parameters(), 0.0)


def test_warmup_cosine_shape():
    shape = dict(peak_lr=1.0, warmup_steps=10, total_steps=110, min_lr=0.1)
    rates = [warmup_cosine(s, **shape) for s in range(110)]
    assert rates[0] == pytest.approx(0.1)
    assert rates[9] == pytest.approx(1.0)
    assert rates[10] == pytest.approx(1.0)
    assert rates[-1] == pytest.approx(0.1)
    assert rates[60] == pytest.approx(0.55, abs=0.01)
    assert all(a >= b for a, b in zip(rates[10:], rates[11:]))


def test_warmup_stable_decay_shape():
    shape = dict(peak_lr=2.0, warmup_steps=4, total_steps=20, min_lr=0.0)
    rates = [warmup_stable_decay(s, decay_steps=5, **shape)
             for s in range(20)]
    assert rates[:4] == pytest.approx([0.5, 1.0, 1.5, 2.0])
    assert rates[4:15] == pytest.approx([2.0] * 11)
    assert rates[15:] == pytest.approx([1.6, 1.2, 0.8, 0.4, 0.0])


def test_schedules_reject_bad_arguments():
    with pytest.raises(ValueError):
        warmup_cosine(0, peak_lr=1.0, warmup_steps=10, total_steps=10)
    with pytest.raises(ValueError):
        warmup_cosine(0, peak_lr=1.0, warmup_steps=1, total_steps=10,
                      min_lr=2.0)
    with pytest.raises(ValueError):
        warmup_stable_decay(0, peak_lr=1.0, warmup_steps=1, total_steps=10,
                            decay_steps=10)


# -------------------------------------------------------------- sampler


def _shards():
    return [np.arange(0, 50, dtype=np.uint16),
            np.arange(1000, 1003, dtype=np.uint16),
            np.arange(2000, 2100, dtype=np.uint16)]


def test_sampler_is_deterministic_and_shifted():
    sampler = WindowSampler(_shards(), context_length=8, batch_size=16,
                            seed=3)
    x1, y1 = sampler.batch(5)
    x2, y2 = WindowSampler(_shards(), 8, 16, seed=3).batch(5)
    assert torch.equal(x1, x2) and torch.equal(y1, y2)
    assert x1.dtype == torch.int64 and x1.shape == (16, 8)
    assert torch.equal(x1[:, 1:], y1[:, :-1])
    assert not torch.equal(x1, sampler.batch(6)[0])
    assert not torch.equal(x1, WindowSampler(_shards(), 8, 16, 4).batch(5)[0])


def test_sampler_windows_stay_inside_one_shard():
    sampler = WindowSampler(_shards(), context_length=8, batch_size=64)
    for step in range(20):
        x, y = sampler.batch(step)
        window = torch.cat([x, y[:, -1:]], dim=1)
        assert torch.all(window[:, 1:] - window[:, :-1] == 1)
        assert not torch.any((window >= 1000) & (window < 1003))


def test_sampler_rows_are_slices_of_the_global_batch():
    sampler = WindowSampler(_shards(), context_length=4, batch_size=8)
    full, _ = sampler.batch(2)
    parts = [sampler.batch(2, slice(i, i + 2))[0] for i in range(0, 8, 2)]
    assert torch.equal(full, torch.cat(parts))


def test_sampler_rejects_bad_input():
    with pytest.raises(ValueError, match="no shard holds"):
        WindowSampler(_shards(), context_length=500, batch_size=2)
    with pytest.raises(ValueError, match="1-D"):
        WindowSampler([np.zeros((3, 3), dtype=np.int32)], 1, 1)
    with pytest.raises(ValueError):
        WindowSampler(_shards(), context_length=0, batch_size=2)


# ---------------------------------------------------------- checkpoints


def _tiny_gpt() -> GPT:
    torch.manual_seed(0)
    return GPT(ModelConfig(vocab_size=50, context_length=16, d_model=16,
                           n_layers=1, n_heads=2, n_kv_heads=1,
                           ffn_hidden=32))


def _save(folder, model, step=3, keep=2):
    opt = AdamW(model.parameters(), lr=1e-3)
    model(torch.zeros(1, 4, dtype=torch.long)).sum().backward()
    opt.step()
    meta = {"model_config": model.config.to_dict()}
    return save_checkpoint(folder, step, model.state_dict(),
                           opt.state_dict(), meta, keep=keep)


def test_checkpoint_round_trip_with_tied_weights(tmp_path):
    model = _tiny_gpt()
    _save(tmp_path, model)
    checkpoint = load_checkpoint(tmp_path)
    assert checkpoint.step == 3
    assert checkpoint.meta["aliases"]
    loaded, config = load_model(tmp_path)
    assert config == model.config and not loaded.training
    for (name, a), b in zip(model.state_dict().items(),
                            loaded.state_dict().values()):
        assert torch.equal(a, b), name
    assert loaded.output.weight is loaded.token_embedding.weight
    opt = AdamW(loaded.parameters(), lr=1e-3)
    opt.load_state_dict(checkpoint.optimizer_state)
    assert opt.state_dict()["state"][0]["step"].item() == 1


def test_checkpoint_keeps_newest_steps_and_no_temporary_folders(tmp_path):
    model = _tiny_gpt()
    for step in [1, 2, 3, 4]:
        _save(tmp_path, model, step=step, keep=2)
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "latest.json", "step_00000003", "step_00000004"]
    assert load_checkpoint(tmp_path).step == 4
    assert load_checkpoint(tmp_path / "step_00000003").step == 3


def test_truncated_checkpoint_is_a_clear_error(tmp_path):
    step_dir = _save(tmp_path, _tiny_gpt())
    weights = step_dir / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])
    with pytest.raises(CheckpointError, match="truncated"):
        load_checkpoint(tmp_path)


def test_corrupt_checkpoint_is_a_clear_error(tmp_path):
    step_dir = _save(tmp_path, _tiny_gpt())
    weights = step_dir / "optimizer.safetensors"
    data = bytearray(weights.read_bytes())
    data[-5] ^= 0xFF
    weights.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="corrupt"):
        load_checkpoint(tmp_path)


def test_damaged_manifests_are_clear_errors(tmp_path):
    step_dir = _save(tmp_path, _tiny_gpt())
    (tmp_path / "latest.json").write_text('{"step": ')
    with pytest.raises(CheckpointError, match="latest.json"):
        load_checkpoint(tmp_path)
    (step_dir / "checkpoint.json").write_text("{")
    with pytest.raises(CheckpointError, match="not valid JSON"):
        load_checkpoint(step_dir)
    with pytest.raises(CheckpointError, match="no checkpoint"):
        load_checkpoint(tmp_path / "nowhere")


def _assert_same_structure(one, other, where="state"):
    """Equal values of identical types, tensors bit for bit."""
    assert type(one) is type(other), f"{where}: {type(one)} {type(other)}"
    if isinstance(one, torch.Tensor):
        assert one.dtype == other.dtype and torch.equal(one, other), where
    elif isinstance(one, dict):
        assert one.keys() == other.keys(), where
        for key in one:
            _assert_same_structure(one[key], other[key], f"{where}.{key}")
    elif isinstance(one, (list, tuple)):
        assert len(one) == len(other), where
        for i, (a, b) in enumerate(zip(one, other)):
            _assert_same_structure(a, b, f"{where}[{i}]")
    else:
        assert one == other, f"{where}: {one!r} != {other!r}"


@pytest.mark.parametrize("kind", ["ours", "torch"])
def test_optimizer_state_round_trip_keeps_types(tmp_path, kind):
    model = _tiny_gpt()
    make = AdamW if kind == "ours" else torch.optim.AdamW
    opt = make(model.parameters(), lr=1e-3, betas=(0.8, 0.95))
    model(torch.zeros(1, 4, dtype=torch.long)).sum().backward()
    opt.step()
    save_checkpoint(tmp_path, 1, model.state_dict(), opt.state_dict(),
                    {"model_config": model.config.to_dict()})
    restored = make(model.parameters(), lr=1e-3)
    restored.load_state_dict(load_checkpoint(tmp_path).optimizer_state)
    assert isinstance(restored.param_groups[0]["betas"], tuple)
    _assert_same_structure(opt.state_dict(), restored.state_dict())


@pytest.mark.parametrize("bad, key", [
    (np.float64(0.9), "param_groups[0].momentum"),
    (torch.tensor(0.9), "param_groups[0].momentum"),
    ({1: 2.0}, "param_groups[0].momentum"),
    ({"__tuple__": [1]}, "param_groups[0].momentum"),
])
def test_optimizer_values_json_cannot_hold_fail_at_save(tmp_path, bad, key):
    model = _tiny_gpt()
    opt = AdamW(model.parameters(), lr=1e-3)
    state = opt.state_dict()
    state["param_groups"][0]["momentum"] = bad
    with pytest.raises(CheckpointError, match=key.replace("[", r"\[")
                       .replace("]", r"\]")):
        save_checkpoint(tmp_path, 1, model.state_dict(), state, {})
    assert not list(tmp_path.glob("step_*"))


def test_rng_state_round_trip():
    import random

    tensors, values = capture_rng()
    first = (torch.rand(3), np.random.rand(3), random.random())
    restore_rng(tensors, values)
    second = (torch.rand(3), np.random.rand(3), random.random())
    assert torch.equal(first[0], second[0])
    assert np.array_equal(first[1], second[1]) and first[2] == second[2]


# --------------------------------------------------------------- config


def test_presets_and_files(tmp_path):
    assert preset("laptop").model == "laptop"
    with pytest.raises(ValueError, match="unknown profile"):
        preset("moon")
    yaml_file = tmp_path / "run.yaml"
    yaml_file.write_text("profile: laptop\nmax_steps: 200\nbetas: [0.8, 0.9]")
    config = load_config(yaml_file)
    assert (config.profile, config.max_steps, config.betas) == \
        ("laptop", 200, (0.8, 0.9))
    toml_file = tmp_path / "run.toml"
    toml_file.write_text('lr = 0.01\nschedule = "wsd"')
    assert load_config(toml_file, profile="ci", seed=5).schedule == "wsd"
    (tmp_path / "bad.yaml").write_text("max_stepz: 3")
    with pytest.raises(ValueError, match="unknown field"):
        load_config(tmp_path / "bad.yaml")
    with pytest.raises(ValueError, match="precision"):
        TrainConfig(precision="fp8")
    with pytest.raises(ValueError, match="warmup_steps"):
        TrainConfig(max_steps=5, warmup_steps=5)


# -------------------------------------------------------------- scaling


def test_compute_optimal_is_the_minimum_on_the_budget():
    for law in [CHINCHILLA, CHINCHILLA_REFIT]:
        budget = 1e21
        n, d = law.compute_optimal(budget)
        assert 6 * n * d == pytest.approx(budget)
        best = law.loss(n, d)
        for factor in [0.8, 1.25]:
            assert law.loss(n * factor, d / factor) > best


def test_refit_law_agrees_with_twenty_tokens_per_parameter():
    n, d = CHINCHILLA_REFIT.compute_optimal(1e23)
    assert 15 < d / n < 30
    n20, d20 = tokens_per_parameter_rule(1e23)
    assert d20 / n20 == pytest.approx(20.0)
    assert 6 * n20 * d20 == pytest.approx(1e23)


def test_fit_isoflop_finds_the_vertex():
    params = [1e5, 3e5, 1e6, 3e6, 1e7]
    losses = [(math.log10(p) - 6.2) ** 2 + 3.0 for p in params]
    fit = fit_isoflop(params, losses)
    assert fit.inside
    assert math.log10(fit.best_params) == pytest.approx(6.2)
    assert fit.best_loss == pytest.approx(3.0)
    edge = fit_isoflop(params[:3], [3.0, 2.0, 1.0])
    assert not edge.inside and edge.best_params == 1e6


def test_estimate_run_and_parse_count():
    e = estimate_run(1e9, 20e9, "h100-sxm", devices=8, mfu=0.5)
    assert e.flops == pytest.approx(1.2e20)
    assert e.hours == pytest.approx(1.2e20 / (8 * 989e12 * 0.5) / 3600)
    assert e.dollars == pytest.approx(e.hours * 8 * 2.99)
    assert e.state_gb == pytest.approx(16.0) and e.fits
    assert parse_count("124M") == 124e6 and parse_count("2.5B") == 2.5e9
    assert parse_count("1e21") == 1e21
    with pytest.raises(ValueError):
        parse_count("lots")
    with pytest.raises(ValueError, match="unknown hardware"):
        estimate_run(1e9, 1e9, "abacus")


# ------------------------------------------------------------ exercises


def test_training_step_check_rejects_the_classic_bugs():
    """The exercise check fails for a loop without zero_grad and for
    unshifted targets, and passes for the reference step."""
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]
                           / "exercises"))
    try:
        from checks import pretraining as check
        from solutions import pretraining as solution
    finally:
        sys.path.pop(0)

    def no_zero_grad(model, optimizer, tokens):
        loss = cross_entropy(model(tokens[:, :-1]), tokens[:, 1:])
        loss.backward()
        optimizer.step()
        return loss.item()

    def no_shift(model, optimizer, tokens):
        loss = cross_entropy(model(tokens[:, :-1]), tokens[:, :-1])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        return loss.item()

    for broken in (no_zero_grad, no_shift):
        with pytest.raises(AssertionError, match="entropy"):
            check.training_step(broken)
    check.training_step(solution.training_step)


def test_benchmark_repeats_reports_the_median_of_each_figure():
    from scratchllm.train.bench import benchmark_repeats

    config = ModelConfig.preset("ci", vocab_size=64)
    figures = benchmark_repeats(config, 2, batch_size=2, context_length=8,
                                precision="fp32", steps=1, warmup=1)
    assert set(figures) == {"ms_per_step", "tokens_per_s", "warmup_s",
                            "mfu", "data_share"}
    assert figures["mfu"] is None      # a CPU has no peak to divide by
    assert all(figures[name] > 0 for name in
               ("ms_per_step", "tokens_per_s", "warmup_s", "data_share"))
    with pytest.raises(ValueError, match="repeats"):
        benchmark_repeats(config, 0)


def test_benchmark_step_reports_mfu_only_with_a_peak():
    from scratchllm.model.config import ModelConfig
    from scratchllm.train.bench import benchmark_step
    from scratchllm.train.monitor import training_flops_per_token

    config = ModelConfig.preset("ci", vocab_size=200, n_layers=1,
                                context_length=16)
    shape = dict(batch_size=2, context_length=16, precision="fp32",
                 steps=1, warmup=1)
    plain = benchmark_step(config, **shape)
    assert plain["mfu"] is None and 0 <= plain["data_share"] < 1
    given = benchmark_step(config, peak_flops=1e9, **shape)
    from scratchllm.model.gpt import GPT
    flops = training_flops_per_token(GPT(config).num_parameters(), 1,
                                     config.d_model, 16)
    assert given["mfu"] == pytest.approx(
        given["tokens_per_s"] * flops / 1e9)
    reference = benchmark_step(config, kernels="reference", **shape)
    assert reference["tokens_per_s"] > 0
