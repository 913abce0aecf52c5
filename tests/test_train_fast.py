"""Chapter 8's fast step (#16): each fast piece against the reference
the chapter teaches."""

import copy

import pytest
import torch

from scratchllm.model.config import ModelConfig
from scratchllm.model.embeddings import (RotaryEmbedding, apply_rope,
                                         rope_cos_sin)
from scratchllm.model.gpt import GPT
from scratchllm.model.norms import RMSNorm
from scratchllm.train.fast import (FastRMSNorm, FastRotaryEmbedding,
                                   ForeachAdamW, PaddedHead,
                                   foreach_clip_grad_norm, make_optimizer,
                                   speed_up)
from scratchllm.train.loss import cross_entropy
from scratchllm.train.optim import AdamW, clip_grad_norm


def network():
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.GELU(),
                               torch.nn.Linear(16, 3))


def train(optimizer_class, steps=7):
    net = network()
    groups = [{"params": [net[0].weight, net[2].weight],
               "weight_decay": 0.1},
              {"params": [net[0].bias, net[2].bias], "weight_decay": 0.0}]
    optimizer = optimizer_class(groups, lr=1e-2, betas=(0.9, 0.95))
    data = torch.Generator().manual_seed(1)
    for step in range(steps):
        loss = net(torch.randn(4, 8, generator=data)).pow(2).mean()
        loss.backward()
        if step == 2:          # a step where one tensor has no gradient
            net[2].bias.grad = None
        optimizer.step()
        optimizer.zero_grad()
    return net, optimizer


def test_foreach_adamw_equals_the_reference_over_several_steps():
    (fast, fast_opt), (ref, ref_opt) = train(ForeachAdamW), train(AdamW)
    for a, b in zip(fast.parameters(), ref.parameters()):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-7)
    for a, b in zip(fast.parameters(), ref.parameters()):
        sa, sb = fast_opt.state[a], ref_opt.state[b]
        assert sa["step"].item() == sb["step"].item()
        torch.testing.assert_close(sa["exp_avg_sq"], sb["exp_avg_sq"])
    assert fast_opt.state[fast[2].bias]["step"].item() == 6


def test_foreach_clip_equals_the_reference():
    nets = [network(), network()]
    for net in nets:
        net(torch.ones(5, 8)).pow(2).sum().backward()
    ours = clip_grad_norm(nets[0].parameters(), 0.1)
    fast = foreach_clip_grad_norm(nets[1].parameters(), 0.1)
    assert torch.equal(ours, fast)
    for a, b in zip(nets[0].parameters(), nets[1].parameters()):
        assert torch.equal(a.grad, b.grad)
    with pytest.raises(ValueError, match="max_norm"):
        foreach_clip_grad_norm(nets[1].parameters(), 0.0)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_fast_rmsnorm_matches_the_reference(dtype):
    norm = RMSNorm(32)
    norm.weight.data.uniform_(0.5, 1.5)
    fast = speed_up(copy.deepcopy(norm))
    assert type(fast) is FastRMSNorm
    x = torch.randn(3, 5, 32).to(dtype)
    torch.testing.assert_close(fast(x), norm(x))


def test_fast_rope_equals_apply_rope_at_any_start():
    rope = speed_up(RotaryEmbedding(16, 40))
    assert type(rope) is FastRotaryEmbedding
    x = torch.randn(2, 3, 10, 16)
    cos, sin = rope_cos_sin(torch.arange(40), 16)
    for start in (0, 7, 30):
        assert torch.equal(rope(x, start), apply_rope(
            x, cos[start:start + 10], sin[start:start + 10]))
    with pytest.raises(ValueError, match="built for 40"):
        rope(x, 31)


def test_speed_up_keeps_the_gpt_and_its_weights():
    config = ModelConfig.preset("ci", vocab_size=97)
    torch.manual_seed(0)
    model = GPT(config)
    fast = speed_up(copy.deepcopy(model))
    assert type(fast.output) is PaddedHead
    assert fast.output.weight is fast.token_embedding.weight  # still tied
    assert list(fast.state_dict()) == list(model.state_dict())
    assert fast.num_parameters() == model.num_parameters()
    ids = torch.randint(0, 97, (2, 12))
    assert fast(ids).shape == (2, 12, 97)     # padded rows never appear
    torch.testing.assert_close(fast(ids), model(ids))
    loss = cross_entropy(fast(ids[:, :-1]), ids[:, 1:])
    loss.backward()
    assert all(p.grad is not None for p in fast.parameters())


@pytest.mark.parametrize("kernels", ["reference", "fast", "torch"])
def test_make_optimizer_builds_each_kind(kernels):
    net = network()
    optimizer = make_optimizer(kernels, [{"params": net.parameters()}],
                               lr=1e-3)
    net(torch.ones(2, 8)).sum().backward()
    optimizer.step()
    with pytest.raises(ValueError, match="kernels"):
        make_optimizer("turbo", [{"params": net.parameters()}])


def test_padded_head_gives_the_same_logits_and_gradients():
    torch.manual_seed(0)
    head = torch.nn.Linear(8, 200, bias=False)
    padded = copy.deepcopy(head)
    padded.__class__ = PaddedHead
    x = torch.randn(3, 5, 8)
    out, out_padded = head(x), padded(x)
    assert out_padded.shape == (3, 5, 200)
    torch.testing.assert_close(out_padded, out)
    out.square().sum().backward()
    out_padded.square().sum().backward()
    assert padded.weight.grad.shape == (200, 8)
    torch.testing.assert_close(padded.weight.grad, head.weight.grad)


def test_a_round_vocabulary_keeps_its_plain_head():
    model = speed_up(GPT(ModelConfig.preset("ci", vocab_size=256)))
    assert type(model.output) is torch.nn.Linear


@pytest.mark.slow
def test_the_gpu_check_script_runs_on_a_tiny_cpu_shape(tmp_path):
    import json
    import os
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    env = {**os.environ, "PYTHONPATH": str(root / "src"),
           "OUT": str(tmp_path)}
    done = subprocess.run(
        [sys.executable, str(root / "benchmarks" / "gpu_check.py"),
         "--tiny", "--steps", "1"], env=env, capture_output=True,
        text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    report = json.loads((tmp_path / "gpu_check.json").read_text())
    assert [row["kernels"] for row in report["rows"]] == ["fast",
                                                          "reference"]
    assert all(row["tokens_per_s"] > 0 for row in report["rows"])
    assert any("scaled_dot_product" in name
               for name in report["attention_kernels"]["ci"])
