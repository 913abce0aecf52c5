"""Quantization and GGUF export (chapter 13)."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest
import torch
from torch import nn

from scratchllm.generate.decode import decode_tokens
from scratchllm.generate.sampling import SamplingConfig
from scratchllm.model.config import ModelConfig
from scratchllm.model.gpt import GPT
from scratchllm.quantize.gguf import (
    gguf_metadata,
    gguf_vocabulary,
    llama_cpp_greedy,
    load_gguf,
    rope_from_pairs,
    rope_to_pairs,
    write_gguf,
)
from scratchllm.quantize.int4 import (
    dequantize_int4,
    pack_int4,
    quantize_int4,
    unpack_int4,
)
from scratchllm.quantize.int8 import dequantize_int8, quantize_int8
from scratchllm.quantize.linear import (
    QuantizedLinear,
    quantize_model,
    stored_bytes,
)
from scratchllm.quantize.measure import library_int8, top1_agreement
from scratchllm.tokenizer import GPT2_SPLIT_PATTERN, train_bpe

TEXT = ("Once upon a time there was a little cat. The cat liked milk. "
        "One day the cat met a dog, and they played in the sun.\n") * 20


@pytest.fixture(scope="module")
def tokenizer():
    return train_bpe([TEXT], 256 + 40 + 4)


@pytest.fixture(scope="module")
def model(tokenizer) -> GPT:
    torch.manual_seed(0)
    config = ModelConfig(vocab_size=tokenizer.vocab_size + 4,
                         context_length=64, d_model=64, n_layers=2,
                         n_heads=4, n_kv_heads=2, ffn_hidden=96)
    return GPT(config).eval()


# int8 ----------------------------------------------------------------------

def test_int8_error_is_at_most_half_a_step_per_row() -> None:
    torch.manual_seed(1)
    weight = torch.randn(16, 40) * torch.logspace(-3, 1, 16)[:, None]
    codes, scales = quantize_int8(weight)
    assert codes.dtype == torch.int8 and scales.shape == (16,)
    assert codes.abs().max() == 127
    error = (dequantize_int8(codes, scales) - weight).abs()
    assert (error <= scales[:, None] / 2 + 1e-7).all()
    # each row keeps its own scale: the small rows stay accurate
    assert error[0].max() < 1e-4


def test_int8_zero_rows_and_bad_shapes() -> None:
    codes, scales = quantize_int8(torch.zeros(2, 8))
    assert (codes == 0).all() and (scales == 1).all()
    with pytest.raises(ValueError, match="2-D"):
        quantize_int8(torch.zeros(8))


# int4 ----------------------------------------------------------------------

def test_int4_packing_round_trips_every_code() -> None:
    codes = torch.arange(-8, 8, dtype=torch.int8).repeat(3, 2)
    packed = pack_int4(codes)
    assert packed.dtype == torch.uint8 and packed.shape == (3, 16)
    assert torch.equal(unpack_int4(packed), codes)
    assert pack_int4(torch.tensor([[-8, 7]])).item() == 0xF0
    with pytest.raises(ValueError, match="even"):
        pack_int4(torch.zeros(1, 3, dtype=torch.int8))


@pytest.mark.parametrize("group", [32, 64, 128])
def test_int4_groups_bound_the_error_and_pad_odd_rows(group) -> None:
    torch.manual_seed(2)
    weight = torch.randn(8, 96)
    packed, scales = quantize_int4(weight, group)
    groups = -(-96 // group)
    assert scales.shape == (8, groups)
    assert packed.shape == (8, groups * group // 2)
    back = dequantize_int4(packed, scales, 96)
    assert back.shape == weight.shape
    step = scales.repeat_interleave(group, dim=1)[:, :96]
    assert ((back - weight).abs() <= step / 2 + 1e-6).all()


def test_smaller_groups_fit_better() -> None:
    torch.manual_seed(3)
    weight = torch.randn(32, 256) * (1 + 10 * (torch.rand(32, 256) > 0.99))
    errors = [(dequantize_int4(*quantize_int4(weight, g), 256) - weight)
              .norm().item() for g in (32, 64, 128)]
    assert errors[0] < errors[1] < errors[2]


def test_int4_refuses_odd_groups() -> None:
    with pytest.raises(ValueError, match="group_size"):
        quantize_int4(torch.zeros(2, 8), 3)


# Quantized layers and models ---------------------------------------------------

@pytest.mark.parametrize("bits", [8, 4])
def test_quantized_linear_equals_linear_with_dequantized_weight(bits
                                                                ) -> None:
    torch.manual_seed(4)
    linear = nn.Linear(64, 24, bias=False)
    layer = QuantizedLinear(linear, bits, 32)
    x = torch.randn(3, 5, 64)
    expected = x @ layer.dequantized().T
    assert torch.allclose(layer(x), expected, atol=1e-5)
    assert (layer(x) - linear(x)).abs().max() < (0.05 if bits == 8 else 0.5)
    with pytest.raises(ValueError, match="bias"):
        QuantizedLinear(nn.Linear(4, 4), bits)


def test_quantized_models_shrink_and_stay_close(model) -> None:
    tokens = torch.randint(0, 200, (2, 32), generator=torch.Generator()
                           .manual_seed(0))
    reference = model(tokens)
    sizes = {}
    for name, variant in [("int8", quantize_model(model, 8)),
                          ("int4", quantize_model(model, 4, 32)),
                          ("torch", library_int8(model))]:
        sizes[name] = stored_bytes(variant)
        assert (variant(tokens) - reference).abs().max() < 0.5, name
        assert top1_agreement(model, variant, tokens.flatten().numpy()
                              ) > 0.5
    assert sizes["int4"] < sizes["int8"] < stored_bytes(model)
    assert sizes["torch"] < stored_bytes(model)
    # the original model is untouched
    assert isinstance(model.blocks[0].attention.q_proj, nn.Linear)


# GGUF ----------------------------------------------------------------------

def test_rope_permutation_is_inverted(model) -> None:
    weight = np.arange(64 * 6, dtype=np.float32).reshape(64, 6)
    moved = rope_to_pairs(weight, 4)
    assert not np.array_equal(moved, weight)
    assert np.array_equal(rope_from_pairs(moved, 4), weight)
    # head 0 of width 16: rows 0..7 pair with rows 8..15, interleaved
    assert list(moved[:4, 0] // 6) == [0, 8, 1, 9]


def test_gguf_vocabulary_spells_tokens_like_gpt2(tokenizer) -> None:
    tokens, types, merges = gguf_vocabulary(tokenizer,
                                            tokenizer.vocab_size + 2)
    assert len(tokens) == len(types) == tokenizer.vocab_size + 2
    assert tokens[ord(" ")] == "Ġ" and tokens[ord("\n")] == "Ċ"
    assert tokens[tokenizer.eot_id] == "<|endoftext|>"
    assert types[tokenizer.eot_id] == 3 and types[-1] == 5
    assert len(merges) == len(tokenizer.merges)
    assert all(len(m.split(" ")) == 2 for m in merges)


@pytest.mark.parametrize("kind", ["f32", "q8_0"])
def test_gguf_round_trip_through_the_gguf_reader(model, tokenizer, tmp_path,
                                                 kind) -> None:
    path = write_gguf(model, tokenizer, tmp_path / f"m-{kind}.gguf", kind,
                      chat_template="{{ x }}")
    assert not list(tmp_path.glob("*.partial"))
    meta = gguf_metadata(path)
    assert meta["general.architecture"] == "llama"
    assert meta["tokenizer.ggml.model"] == "gpt2"
    assert meta["tokenizer.ggml.pre"] == "llama-bpe"
    assert meta["llama.attention.head_count_kv"] == 2
    assert meta["tokenizer.chat_template"] == "{{ x }}"
    back = load_gguf(path)
    tokens = torch.tensor([tokenizer.encode("Once upon a time")])
    gap = (back(tokens) - model(tokens)).abs().max().item()
    assert gap < (1e-5 if kind == "f32" else 0.05)


def test_q8_0_file_is_smaller(model, tokenizer, tmp_path) -> None:
    f32 = write_gguf(model, tokenizer, tmp_path / "a.gguf", "f32")
    q8 = write_gguf(model, tokenizer, tmp_path / "b.gguf", "q8_0")
    assert q8.stat().st_size < 0.4 * f32.stat().st_size


def test_gguf_refuses_what_llama_cpp_cannot_read(model, tokenizer,
                                                 tmp_path) -> None:
    with pytest.raises(ValueError, match="file_type"):
        write_gguf(model, tokenizer, tmp_path / "x.gguf", "q2")
    odd = train_bpe([TEXT], 256 + 10 + 4, pattern=r"\w+|\s+|[^\w\s]+")
    with pytest.raises(ValueError, match="pre-tokenizer"):
        write_gguf(model, odd, tmp_path / "y.gguf")
    assert not (tmp_path / "y.gguf").exists()


@pytest.mark.slow
@pytest.mark.skipif(importlib.util.find_spec("llama_cpp") is None,
                    reason="llama-cpp-python is not installed (the `gguf` "
                    "extra builds llama.cpp from source)")
@pytest.mark.parametrize("kind", ["f32", "q8_0"])
@pytest.mark.parametrize("pattern", ["gpt4", "gpt2"])
def test_llama_cpp_greedy_tokens_equal_ours(model, tmp_path, kind,
                                            pattern) -> None:
    """llama.cpp loads our GGUF, tokenizes like us and picks the same
    greedy tokens."""
    from llama_cpp import Llama

    tokenizer = (train_bpe([TEXT], 256 + 40 + 4) if pattern == "gpt4" else
                 train_bpe([TEXT], 256 + 40 + 4, GPT2_SPLIT_PATTERN))
    path = write_gguf(model, tokenizer, tmp_path / f"{kind}.gguf", kind)
    prompt = tokenizer.encode("Once upon a time, the cat")
    greedy = SamplingConfig(max_new_tokens=20, temperature=0)
    ours = list(decode_tokens(model, prompt, greedy))
    assert llama_cpp_greedy(path, prompt, 20) == ours
    llm = Llama(model_path=str(path), n_ctx=64, verbose=False)
    try:
        for text in ["Once upon a time, the cat.", "a  b\n\nc 123 dog's",
                     "<|endoftext|>The dog<|im_end|>\n"]:
            assert llm.tokenize(text.encode(), add_bos=False,
                                special=True) == tokenizer.encode(text)
    finally:
        llm.close()


# GPTQ ----------------------------------------------------------------------

def test_gptq_lowers_the_output_error_of_round_to_nearest() -> None:
    from scratchllm.quantize.gptq import gptq_int4

    torch.manual_seed(5)
    inputs = torch.randn(2048, 16) @ torch.randn(16, 96)   # correlated
    weight = torch.randn(32, 96)
    hessian = 2 * inputs.T @ inputs / len(inputs)
    rtn = dequantize_int4(*quantize_int4(weight, 32), 96)
    gptq = dequantize_int4(*gptq_int4(weight, hessian, 32), 96)
    rtn_error = ((rtn - weight) @ inputs.T).norm()
    gptq_error = ((gptq - weight) @ inputs.T).norm()
    assert gptq_error < 0.7 * rtn_error
    # without information about the inputs (H = I) it is plain rounding
    same = dequantize_int4(*gptq_int4(weight, torch.eye(96), 32,
                                      damping=0.0), 96)
    assert torch.allclose(same, rtn, atol=1e-6)


def test_gptq_model_uses_calibration_and_keeps_the_format(model) -> None:
    from scratchllm.quantize.gptq import gptq_model, input_hessians

    tokens = torch.randint(0, 200, (4, 64), generator=torch.Generator()
                           .manual_seed(1))
    hessians = input_hessians(model, tokens)
    assert set(hessians) == {n for n, m in model.named_modules()
                             if isinstance(m, nn.Linear)
                             and n.startswith("blocks.")}
    assert hessians["blocks.0.attention.q_proj"].shape == (64, 64)
    quantized = gptq_model(model, tokens, 32)
    assert stored_bytes(quantized) == stored_bytes(
        quantize_model(model, 4, 32))
    assert (quantized(tokens) - model(tokens)).abs().max() < 0.5


def test_measure_scores_with_the_one_evaluator(model, tokenizer) -> None:
    """The table's bits per byte is chapter 8's evaluate_split on the
    same shards and budget (windows never cross a shard boundary)."""
    from scratchllm.eval.intrinsic import evaluate_split, token_byte_lengths
    from scratchllm.quantize.measure import measure

    ids = np.array(tokenizer.encode(TEXT[:600]), dtype=np.int64)
    shards = [ids[:90], ids[90:]]
    lengths = np.pad(token_byte_lengths(tokenizer), (0, 4))
    row = measure("float32", model, model, shards, 150, lengths,
                  tokenizer.encode("Once"), new_tokens=2, repeats=1)
    expected = evaluate_split(model, shards, lengths, 150)
    assert row["bits_per_byte"] == pytest.approx(expected.bits_per_byte,
                                                 rel=1e-6)
    assert row["top1_agreement"] == 1.0
