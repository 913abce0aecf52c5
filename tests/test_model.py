"""Chapters 5-7: every model component against its reference."""

import math

import pytest
import torch
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

from scratchllm.model.attention import (
    CausalSelfAttention,
    KVCache,
    attention,
    causal_mask,
    repeat_kv,
    stable_softmax,
)
from scratchllm.model.bench import bench_attention, saved_bytes
from scratchllm.model.config import PRESETS, ModelConfig
from scratchllm.model.embeddings import (
    LearnedPositions,
    RotaryEmbedding,
    apply_rope,
    rope_cos_sin,
    rope_frequencies,
    rotate_half,
)
from scratchllm.model.estimate import (
    count_parameters,
    flops_per_token,
    memory_estimate,
)
from scratchllm.model.feedforward import GeluMLP, SwiGLU, make_feed_forward
from scratchllm.model.gpt import GPT
from scratchllm.model.norms import BatchNorm, LayerNorm, RMSNorm, make_norm

TIGHT = dict(atol=1e-5, rtol=1e-5)


@pytest.fixture(autouse=True)
def seeded():
    """Every test starts from seed 0 (conftest.py sets one thread)."""
    torch.manual_seed(0)


# --- chapter 5: embeddings and RoPE -------------------------------------


def test_rope_frequencies_values():
    freqs = rope_frequencies(8, base=10000.0)
    expected = torch.tensor([1.0, 0.1, 0.01, 0.001])
    torch.testing.assert_close(freqs, expected)
    with pytest.raises(ValueError, match="even"):
        rope_frequencies(7)


def test_rotate_half_by_hand():
    x = torch.tensor([1.0, 2.0, 3.0, 4.0])
    assert rotate_half(x).tolist() == [-3.0, -4.0, 1.0, 2.0]


def test_rope_at_position_zero_is_identity_and_preserves_norm():
    rope = RotaryEmbedding(16, max_length=32)
    x = torch.randn(2, 3, 32, 16)
    rotated = rope(x)
    torch.testing.assert_close(rotated[:, :, 0], x[:, :, 0])
    torch.testing.assert_close(rotated.norm(dim=-1), x.norm(dim=-1))


def test_rope_rotates_one_pair_by_the_right_angle():
    cos, sin = rope_cos_sin(torch.tensor([3]), head_dim=2, base=10000.0)
    x = torch.tensor([[1.0, 0.0]])
    rotated = apply_rope(x, cos, sin)[0]
    torch.testing.assert_close(
        rotated, torch.tensor([math.cos(3.0), math.sin(3.0)])
    )


def test_rope_scores_depend_only_on_offset():
    rope = RotaryEmbedding(32, max_length=64)
    q, k = torch.randn(32), torch.randn(32)
    rq = rope(q.expand(1, 1, 64, -1))[0, 0]
    rk = rope(k.expand(1, 1, 64, -1))[0, 0]
    scores = rq @ rk.T
    for offset in (-20, -1, 0, 5, 30):
        diagonal = scores.diagonal(offset)
        assert (diagonal - diagonal[0]).abs().max() < 1e-4


def test_rope_matches_transformers_llama():
    transformers = pytest.importorskip("transformers")
    from transformers.models.llama import modeling_llama

    config = transformers.LlamaConfig(
        hidden_size=64, num_attention_heads=4, rope_theta=500.0,
        max_position_embeddings=40,
    )
    hf_rope = modeling_llama.LlamaRotaryEmbedding(config)
    x = torch.randn(1, 4, 40, 16)
    positions = torch.arange(40)[None]
    cos, sin = hf_rope(x, positions)
    expected, _ = modeling_llama.apply_rotary_pos_emb(x, x, cos, sin)
    ours = RotaryEmbedding(16, max_length=40, base=500.0)(x)
    torch.testing.assert_close(ours, expected, **TIGHT)


def test_rope_and_positions_reject_overflow():
    with pytest.raises(ValueError, match="positions up to"):
        RotaryEmbedding(8, max_length=4)(torch.randn(1, 1, 3, 8), start=2)
    with pytest.raises(ValueError, match="only 4 rows"):
        LearnedPositions(4, 8)(torch.randn(1, 5, 8))


def test_learned_positions_add_table_rows():
    positions = LearnedPositions(10, 4)
    x = torch.zeros(2, 3, 4)
    out = positions(x, start=5)
    torch.testing.assert_close(out[1], positions.table.weight[5:8])


# --- chapter 6: attention -----------------------------------------------


def test_stable_softmax_matches_torch_and_survives_large_scores():
    scores = torch.randn(4, 7) * 50 + 300
    torch.testing.assert_close(
        stable_softmax(scores), torch.softmax(scores, -1)
    )
    masked = torch.full((2, 3), float("-inf"))
    assert stable_softmax(masked).eq(0).all()


def test_causal_mask_square_and_bottom_right():
    assert causal_mask(3, 3).tolist() == [
        [True, False, False], [True, True, False], [True, True, True],
    ]
    assert causal_mask(2, 4).tolist() == [
        [True, True, True, False], [True, True, True, True],
    ]
    with pytest.raises(ValueError):
        causal_mask(5, 3)


def test_attention_matches_sdpa():
    q, k, v = torch.randn(3, 2, 4, 20, 16).unbind(0)
    ours, weights = attention(q, k, v, causal_mask(20, 20))
    expected = F.scaled_dot_product_attention(q, k, v, is_causal=True)
    torch.testing.assert_close(ours, expected, **TIGHT)
    torch.testing.assert_close(weights.sum(-1), torch.ones(2, 4, 20))


def test_repeat_kv_matches_sdpa_gqa_and_interleave():
    x = torch.randn(2, 3, 5, 4)
    torch.testing.assert_close(
        repeat_kv(x, 4), x.repeat_interleave(4, dim=1)
    )
    q = torch.randn(2, 12, 10, 8)
    k, v = torch.randn(2, 2, 3, 10, 8).unbind(0)
    ours, _ = attention(q, repeat_kv(k, 4), repeat_kv(v, 4),
                        causal_mask(10, 10))
    expected = F.scaled_dot_product_attention(
        q, k, v, is_causal=True, enable_gqa=True
    )
    torch.testing.assert_close(ours, expected, **TIGHT)


@pytest.mark.parametrize("kv_heads", [8, 2, 1])
def test_attention_layer_backends_agree_with_gradients(kv_heads):
    layer = CausalSelfAttention(64, 8, kv_heads, max_length=32)
    x = torch.randn(2, 24, 64, requires_grad=True)
    outs, grads = [], []
    for backend in ("scratch", "sdpa"):
        layer.backend = backend
        out = layer(x)
        outs.append(out)
        grads.append(torch.autograd.grad(out.square().sum(), x)[0])
    torch.testing.assert_close(outs[0], outs[1], **TIGHT)
    torch.testing.assert_close(grads[0], grads[1], atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("backend", ["scratch", "sdpa"])
def test_attention_layer_kv_cache_equals_full(backend):
    layer = CausalSelfAttention(32, 4, 2, max_length=32,
                                backend=backend).eval()
    x = torch.randn(2, 16, 32)
    cache = KVCache(1, 2, 2, 8, max_length=32)
    with torch.no_grad():
        full = layer(x)
        parts = [layer(x[:, :5], cache), layer(x[:, 5:6], cache),
                 layer(x[:, 6:], cache)]
    torch.testing.assert_close(torch.cat(parts, 1), full, **TIGHT)
    assert cache.length == 16


def test_attention_layer_is_causal():
    layer = CausalSelfAttention(32, 4, 4, max_length=16).eval()
    x = torch.randn(1, 10, 32)
    changed = x.clone()
    changed[0, 7] += 1.0
    with torch.no_grad():
        before, after = layer(x), layer(changed)
    torch.testing.assert_close(before[:, :7], after[:, :7])
    assert (before[:, 7:] - after[:, 7:]).abs().max() > 1e-3


def test_attention_layer_rejects_bad_shapes():
    with pytest.raises(ValueError, match="divisible"):
        CausalSelfAttention(30, 4, 4, max_length=8)
    with pytest.raises(ValueError, match="multiple"):
        CausalSelfAttention(32, 4, 3, max_length=8)
    with pytest.raises(ValueError, match="backend"):
        CausalSelfAttention(32, 4, 4, max_length=8, backend="fast")


def test_kv_cache_errors():
    cache = KVCache(1, 2, 1, 4, max_length=3)
    with pytest.raises(ValueError, match="batch size"):
        cache.update(0, torch.zeros(1, 1, 1, 4), torch.zeros(1, 1, 1, 4))
    with pytest.raises(ValueError, match="full"):
        cache.update(0, torch.zeros(2, 1, 4, 4), torch.zeros(2, 1, 4, 4))
    cache.update(0, torch.zeros(2, 1, 2, 4), torch.zeros(2, 1, 2, 4))
    assert cache.length == 2 and cache.nbytes == 2 * 2 * 3 * 4 * 4
    cache.reset()
    assert cache.length == 0


# --- chapter 7: norms, feed-forward, model ------------------------------


def test_norms_match_torch_nn():
    x = 3 * torch.randn(4, 6, 16) + 2
    scale = torch.randn(16)
    pairs = [
        (RMSNorm(16, eps=1e-6), torch.nn.RMSNorm(16, eps=1e-6)),
        (LayerNorm(16), torch.nn.LayerNorm(16)),
    ]
    for ours, reference in pairs:
        with torch.no_grad():
            ours.weight.copy_(scale)
            reference.weight.copy_(scale)
        torch.testing.assert_close(ours(x), reference(x), **TIGHT)


def test_batchnorm_matches_torch_in_train_and_eval():
    ours, reference = BatchNorm(16), torch.nn.BatchNorm1d(16)
    for _ in range(3):
        x = 2 * torch.randn(4, 6, 16) + 1
        torch.testing.assert_close(
            ours(x), reference(x.flatten(0, 1)).view_as(x), **TIGHT
        )
    torch.testing.assert_close(ours.running_mean, reference.running_mean)
    torch.testing.assert_close(ours.running_var, reference.running_var)
    ours.eval(), reference.eval()
    x = torch.randn(1, 5, 16)
    torch.testing.assert_close(
        ours(x), reference(x.flatten(0, 1)).view_as(x), **TIGHT
    )


def test_rmsnorm_in_bfloat16_keeps_dtype():
    norm = RMSNorm(8)
    x = torch.randn(2, 8, dtype=torch.bfloat16)
    assert norm(x).dtype == torch.float32  # fp32 weight promotes
    assert norm.to(torch.bfloat16)(x).dtype == torch.bfloat16


def test_feed_forwards_by_hand():
    swiglu = SwiGLU(4, 6)
    x = torch.randn(3, 4)
    expected = (F.silu(x @ swiglu.gate_proj.weight.T)
                * (x @ swiglu.up_proj.weight.T)) @ swiglu.down_proj.weight.T
    torch.testing.assert_close(swiglu(x), expected)
    mlp = GeluMLP(4, 9)
    expected = F.gelu(x @ mlp.up_proj.weight.T) @ mlp.down_proj.weight.T
    torch.testing.assert_close(mlp(x), expected)
    assert sum(p.numel() for p in SwiGLU(64, 128).parameters()) == sum(
        p.numel() for p in GeluMLP(64, 192).parameters())
    with pytest.raises(ValueError):
        make_feed_forward("relu", 4, 4)
    with pytest.raises(ValueError):
        make_norm("group", 4)


def test_config_presets_and_validation():
    for name in PRESETS:
        config = ModelConfig.preset(name)
        assert ModelConfig.from_dict(config.to_dict()) == config
    assert ModelConfig.preset("ci", vocab_size=4096).vocab_size == 4096
    sizes = {name: count_parameters(ModelConfig.preset(name))
             for name in PRESETS}
    assert 200_000 <= sizes["ci"] <= 500_000
    assert 1_000_000 <= sizes["laptop"] <= 2_000_000
    assert 30_000_000 <= sizes["gpu"] <= 50_000_000
    assert 115_000_000 <= sizes["gpt2-small"] <= 130_000_000
    laptop = ModelConfig.preset("laptop")
    assert (laptop.d_model, laptop.n_layers) == (128, 4)
    with pytest.raises(ValueError, match="unknown preset"):
        ModelConfig.preset("huge")
    with pytest.raises(ValueError, match="divisible"):
        ModelConfig(d_model=100, n_heads=3)
    with pytest.raises(ValueError, match="unknown ModelConfig"):
        ModelConfig.from_dict({"width": 3})
    with pytest.raises(ValueError, match="positive"):
        ModelConfig(n_layers=0)


@pytest.mark.parametrize("overrides", [
    {}, {"tie_embeddings": False}, {"n_kv_heads": 1},
    {"norm": "layer", "feed_forward": "gelu"}, {"norm": "batch"},
])
def test_parameter_count_matches_module(overrides):
    config = ModelConfig.preset("ci", **overrides)
    assert GPT(config).num_parameters() == count_parameters(config)


@pytest.mark.parametrize("overrides", [
    {}, {"tie_embeddings": False, "n_kv_heads": 1},
    {"feed_forward": "gelu"},
])
def test_flops_match_pytorch_flop_counter(overrides):
    config = ModelConfig.preset("ci", **overrides)
    model = GPT(config)
    for block in model.blocks:
        block.attention.backend = "scratch"
    tokens = torch.randint(0, config.vocab_size, (2, 48))
    with FlopCounterMode(display=False) as counter:
        model(tokens)
    assert counter.get_total_flops() == 96 * flops_per_token(config, 48)
    with FlopCounterMode(display=False) as counter:
        model(tokens).sum().backward()
    assert counter.get_total_flops() == 96 * flops_per_token(
        config, 48, training=True)


def test_memory_estimate_close_to_saved_activations():
    config = ModelConfig.preset("ci")
    model = GPT(config)
    tokens = torch.randint(0, config.vocab_size, (2, 64))
    measured = saved_bytes(
        lambda: F.cross_entropy(model(tokens).flatten(0, 1),
                                tokens.flatten()),
        exclude=[*model.parameters(), *model.buffers()])
    estimate = memory_estimate(config, 2, 64)
    assert 0.8 < estimate["activations"] / measured < 1.25
    params = count_parameters(config)
    assert estimate["weights"] == 4 * params
    assert estimate["optimizer"] == 8 * params
    assert estimate["total"] == sum(
        v for k, v in estimate.items() if k != "total")
    inference = memory_estimate(config, 1, 100, training=False)
    assert inference["kv_cache"] == model.new_cache(1, 100).nbytes
    assert inference["gradients"] == 0


def test_gpt_forward_shapes_dtype_and_errors():
    config = ModelConfig.preset("ci", vocab_size=100, context_length=16)
    model = GPT(config)
    logits = model(torch.randint(0, 100, (3, 16)))
    assert logits.shape == (3, 16, 100) and logits.dtype == torch.float32
    assert model.output.weight is model.token_embedding.weight
    with pytest.raises(ValueError, match="context_length"):
        model(torch.randint(0, 100, (1, 17)))
    with pytest.raises(ValueError, match="LongTensor"):
        model(torch.zeros(2, 3))
    with pytest.raises(ValueError, match="max_length"):
        model.new_cache(1, 32)


def test_gpt_initialisation_scales_residual_projections():
    config = ModelConfig.preset("laptop")
    model = GPT(config)
    expected = 0.02 / math.sqrt(2 * config.n_layers)
    block = model.blocks[0]
    assert abs(block.attention.o_proj.weight.std() - expected) < 2e-3
    assert abs(block.feed_forward.down_proj.weight.std() - expected) < 2e-3
    assert abs(block.attention.q_proj.weight.std() - 0.02) < 2e-3
    assert block.attention_norm.weight.eq(1).all()


@pytest.mark.parametrize("norm", ["rms", "layer"])
def test_gpt_kv_cache_decoding_equals_full_forward(norm):
    model = GPT(ModelConfig.preset("ci", norm=norm)).eval()
    tokens = torch.randint(0, model.config.vocab_size, (2, 30))
    with torch.no_grad():
        full = model(tokens)
        cache = model.new_cache(2, 30)
        steps = [model(tokens[:, :11], cache)]
        steps += [model(tokens[:, t:t + 1], cache) for t in range(11, 27)]
        steps.append(model(tokens[:, 27:], cache))
    torch.testing.assert_close(torch.cat(steps, 1), full, **TIGHT)
    with pytest.raises(ValueError, match="full"):
        model(tokens[:, :1], cache)


@pytest.mark.parametrize("backend", ["sdpa", "scratch"])
def test_gpt_left_padded_rows_equal_each_sequence_alone(backend):
    torch.manual_seed(0)
    model = GPT(ModelConfig.preset("ci", vocab_size=100)).eval()
    for block in model.blocks:
        block.attention.backend = backend
    tokens = torch.randint(0, 100, (1, 30))
    lengths = [30, 11, 1]
    padded = torch.full((3, 30), 7, dtype=torch.long)
    real = torch.zeros(3, 30, dtype=torch.bool)
    for row, length in enumerate(lengths):
        padded[row, 30 - length:] = tokens[0, :length]
        real[row, 30 - length:] = True
    with torch.no_grad():
        together = model(padded, attention_mask=real)
        cache = model.new_cache(3)
        steps = [model(padded[:, :20], cache, attention_mask=real[:, :20])]
        for t in range(20, 30):
            steps.append(model(padded[:, t:t + 1], cache,
                               attention_mask=real[:, :t + 1]))
        cached = torch.cat(steps, dim=1)
        for row, length in enumerate(lengths):
            alone = model(tokens[:, :length])[0]
            for logits in (together, cached):
                torch.testing.assert_close(logits[row, 30 - length:], alone,
                                           atol=1e-5, rtol=1e-5)
        assert torch.isfinite(together).all()
        full = torch.ones(3, 30, dtype=torch.bool)
        torch.testing.assert_close(model(padded, attention_mask=full),
                                   model(padded), atol=1e-6, rtol=1e-6)
        with pytest.raises(ValueError, match="attention_mask must be"):
            model(padded, attention_mask=real[:, :29])


def test_batchnorm_leaks_future_in_training_mode_only():
    model = GPT(ModelConfig.preset("ci", norm="batch", vocab_size=50))
    tokens = torch.randint(0, 50, (4, 12))
    changed = tokens.clone()
    changed[0, -1] = (tokens[0, -1] + 1) % 50
    with torch.no_grad():
        moved = (model(tokens) - model(changed))[:, :-1].abs().max()
        model.eval()
        still = (model(tokens) - model(changed))[:, :-1].abs().max()
    assert moved > 1e-4
    assert still == 0


def test_gpt_trains_on_a_tiny_batch():
    model = GPT(ModelConfig.preset("ci", vocab_size=32,
                                   context_length=16))
    tokens = torch.randint(0, 32, (4, 17))
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(30):
        loss = F.cross_entropy(model(tokens[:, :-1]).flatten(0, 1),
                               tokens[:, 1:].flatten())
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]


def test_saved_bytes_counts_each_storage_once_without_the_inputs():
    inputs = torch.randn(1000, requires_grad=True)
    assert saved_bytes(lambda: inputs.exp().sum(), exclude=[inputs]) == 4000
    assert saved_bytes(lambda: (inputs * inputs).sum(),
                       exclude=[inputs]) == 0
    assert saved_bytes(lambda: (inputs * inputs).sum()) == 4000


def test_bench_attention_sdpa_saves_less_than_scratch():
    costs = bench_attention([16, 64], heads=2, head_dim=8, repeats=1)
    assert set(costs) == {"from scratch", "SDPA"}
    for cost in costs.values():
        assert len(cost.seconds) == len(cost.megabytes) == 2
        assert all(seconds > 0 for seconds in cost.seconds)
    scratch, sdpa = costs["from scratch"], costs["SDPA"]
    # the T x T weights: 16x more saved at 4x the length
    assert scratch.megabytes[1] > 8 * scratch.megabytes[0]
    assert sdpa.megabytes[1] < scratch.megabytes[1]
