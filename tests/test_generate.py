"""Chapter 10, generation: sampling filters, the decoding loop, stop rules,
streaming, bad input, left-padded batches, and agreement with
transformers."""

from __future__ import annotations

import math
from types import SimpleNamespace

import pytest
import torch

from scratchllm.generate.batch import generate_batch, left_pad
from scratchllm.generate.decode import (decode_tokens, encode_prompt,
                                        generate, partial_stop, stream)
from scratchllm.generate.sampling import (SamplingConfig,
                                          apply_repetition_penalty,
                                          choose_next, top_k_filter,
                                          top_p_filter)
from scratchllm.model.config import ModelConfig
from scratchllm.model.gpt import GPT
from scratchllm.tokenizer import EOT, SPECIAL_TOKENS, Tokenizer

INF = math.inf


@pytest.fixture(scope="module")
def byte_tokenizer() -> Tokenizer:
    """Bytes only (ids 0-255) plus the special tokens from 256 on."""
    return Tokenizer({}, special_tokens={t: 256 + i for i, t in
                                         enumerate(SPECIAL_TOKENS)})


@pytest.fixture(scope="module")
def tiny_model() -> GPT:
    torch.manual_seed(0)
    config = ModelConfig(vocab_size=260, context_length=48, d_model=32,
                         n_layers=2, n_heads=4, n_kv_heads=2,
                         ffn_hidden=64)
    return GPT(config).eval()


class Scripted(torch.nn.Module):
    """A stand-in model whose greedy continuation of any prompt of
    `prompt_length` tokens is `script` (then its last token forever)."""

    def __init__(self, script: list[int], prompt_length: int,
                 vocab_size: int = 260, context_length: int = 32) -> None:
        super().__init__()
        self.script, self.prompt_length = script, prompt_length
        self.config = SimpleNamespace(vocab_size=vocab_size,
                                      context_length=context_length)
        self.anchor = torch.nn.Parameter(torch.zeros(1))

    def new_cache(self, batch_size: int, max_length: int) -> SimpleNamespace:
        return SimpleNamespace(length=0)

    def forward(self, tokens: torch.Tensor, cache=None) -> torch.Tensor:
        start = 0 if cache is None else cache.length
        if cache is not None:
            cache.length += tokens.shape[1]
        logits = torch.zeros(*tokens.shape, self.config.vocab_size)
        for t in range(tokens.shape[1]):
            step = start + t + 1 - self.prompt_length
            token = self.script[min(max(step, 0), len(self.script) - 1)]
            logits[:, t, token] = 10.0
        return logits


# --- sampling -------------------------------------------------------------

def test_top_k_keeps_exactly_the_k_largest() -> None:
    logits = torch.tensor([[1.0, 4.0, 3.0, -2.0, 0.5]])
    expected = torch.tensor([[-INF, 4.0, 3.0, -INF, -INF]])
    assert torch.equal(top_k_filter(logits, 2), expected)
    assert torch.equal(top_k_filter(logits, 99), logits)


def test_top_p_keeps_the_smallest_nucleus() -> None:
    probs = torch.tensor([[0.5, 0.3, 0.15, 0.05]])
    logits = probs.log()
    kept = lambda p: (top_p_filter(logits, p) > -INF)[0].tolist()  # noqa
    assert kept(0.5) == [True, False, False, False]
    assert kept(0.6) == [True, True, False, False]
    assert kept(0.8) == [True, True, False, False]
    assert kept(0.81) == [True, True, True, False]
    assert kept(0.01) == [True, False, False, False]
    shuffled = logits[:, [2, 0, 3, 1]]
    assert (top_p_filter(shuffled, 0.6) > -INF)[0].tolist() == [
        False, True, False, True]


def test_repetition_penalty_lowers_seen_logits_either_sign() -> None:
    logits = torch.tensor([[2.0, -2.0, 2.0, -2.0]])
    seen = torch.tensor([[True, True, False, False]])
    out = apply_repetition_penalty(logits, seen, 2.0)
    assert torch.equal(out, torch.tensor([[1.0, -4.0, 2.0, -2.0]]))


def test_filters_match_transformers_processors() -> None:
    from transformers import (RepetitionPenaltyLogitsProcessor,
                              TemperatureLogitsWarper, TopKLogitsWarper,
                              TopPLogitsWarper)

    generator = torch.Generator().manual_seed(0)
    logits = torch.randn(8, 100, generator=generator)
    history = torch.randint(0, 100, (8, 20), generator=generator)
    seen = torch.zeros(8, 100, dtype=torch.bool).scatter(1, history, True)
    for ours, theirs in [
        (apply_repetition_penalty(logits, seen, 1.7),
         RepetitionPenaltyLogitsProcessor(1.7)(history, logits.clone())),
        (top_k_filter(logits, 13), TopKLogitsWarper(13)(history, logits)),
        (top_p_filter(logits, 0.7), TopPLogitsWarper(0.7)(history, logits)),
        (logits / 0.6, TemperatureLogitsWarper(0.6)(history, logits)),
    ]:
        assert torch.equal(ours.isinf(), theirs.isinf())
        torch.testing.assert_close(ours[~ours.isinf()],
                                   theirs[~theirs.isinf()])


def test_greedy_is_argmax_and_sampling_is_seeded() -> None:
    logits = torch.randn(3, 50, generator=torch.Generator().manual_seed(3))
    seen = torch.zeros(3, 50, dtype=torch.bool)
    greedy = choose_next(logits, SamplingConfig(temperature=0), seen)
    assert torch.equal(greedy, logits.argmax(-1))
    config = SamplingConfig(top_k=5)
    draws = [choose_next(logits, config, seen,
                         torch.Generator().manual_seed(7))
             for _ in range(2)]
    assert torch.equal(draws[0], draws[1])
    top5 = logits.topk(5).indices
    assert all(draws[0][r] in top5[r] for r in range(3))


def test_sampling_follows_the_tempered_distribution() -> None:
    logits = torch.tensor([[2.0, 1.0, 0.0]]).expand(20000, 3)
    seen = torch.zeros(20000, 3, dtype=torch.bool)
    config = SamplingConfig(temperature=2.0)
    ids = choose_next(logits, config, seen, torch.Generator().manual_seed(0))
    frequencies = torch.bincount(ids, minlength=3) / 20000
    expected = (torch.tensor([2.0, 1.0, 0.0]) / 2).softmax(-1)
    assert torch.allclose(frequencies, expected, atol=0.015)


@pytest.mark.parametrize("settings, message", [
    (dict(max_new_tokens=0), "max_new_tokens must be at least 1"),
    (dict(temperature=-1), "temperature must be >= 0"),
    (dict(top_k=0), "top_k must be at least 1"),
    (dict(top_p=0.0), "top_p must be in (0, 1]"),
    (dict(repetition_penalty=0), "repetition_penalty must be positive"),
    (dict(temperature=float("nan")), "temperature must be >= 0"),
    (dict(temperature=float("inf")), "temperature must be >= 0"),
    (dict(repetition_penalty=float("nan")),
     "repetition_penalty must be positive"),
    (dict(stop=("",)), "stop sequences must be non-empty"),
])
def test_bad_sampling_settings_are_refused(settings, message) -> None:
    with pytest.raises(ValueError, match=message.replace("(", r"\(")
                       .replace(")", r"\)").replace("[", r"\[")
                       .replace("]", r"\]")):
        SamplingConfig(**settings)


# --- the decoding loop ----------------------------------------------------

def test_cache_and_no_cache_decode_the_same_tokens(tiny_model) -> None:
    prompt = [5, 17, 99, 3]
    for config in (SamplingConfig(max_new_tokens=20, temperature=0),
                   SamplingConfig(max_new_tokens=20, top_p=0.9, seed=4),
                   SamplingConfig(max_new_tokens=20, temperature=0,
                                  repetition_penalty=1.5)):
        cached = list(decode_tokens(tiny_model, prompt, config))
        plain = list(decode_tokens(tiny_model, prompt, config,
                                   use_cache=False))
        assert cached == plain and len(cached) == 20


def test_greedy_tokens_match_a_full_forward(tiny_model) -> None:
    prompt = [1, 2, 3]
    ids = list(decode_tokens(tiny_model, prompt,
                             SamplingConfig(max_new_tokens=6,
                                            temperature=0)))
    sequence = prompt + ids
    with torch.no_grad():
        logits = tiny_model(torch.tensor([sequence[:-1]]))[0]
    assert logits[len(prompt) - 1:].argmax(-1).tolist() == ids


def test_stop_token_length_and_context_limits() -> None:
    model = Scripted([10, 11, 256, 12], prompt_length=2, context_length=8)
    config = SamplingConfig(max_new_tokens=10, temperature=0)
    assert list(decode_tokens(model, [1, 2], config, stop_ids=[256])) == [
        10, 11, 256]
    short = SamplingConfig(max_new_tokens=2, temperature=0)
    assert list(decode_tokens(model, [1, 2], short)) == [10, 11]
    assert len(list(decode_tokens(model, [1, 2], config))) == 6


def test_stream_ends_at_end_of_text(byte_tokenizer) -> None:
    eot = byte_tokenizer.eot_id
    model = Scripted([ord("h"), ord("i"), eot, ord("x")], prompt_length=2)
    done = generate(model, byte_tokenizer, "ab",
                    SamplingConfig(max_new_tokens=10, temperature=0))
    assert (done.text, done.finish_reason) == ("hi", "stop")
    assert done.token_ids == [ord("h"), ord("i"), eot]


def test_finish_reasons_length_and_context(byte_tokenizer) -> None:
    model = Scripted([ord("z")], prompt_length=2, context_length=6)
    config = SamplingConfig(max_new_tokens=3, temperature=0)
    done = generate(model, byte_tokenizer, "ab", config)
    assert (done.text, done.finish_reason) == ("zzz", "length")
    done = generate(model, byte_tokenizer, "ab",
                    SamplingConfig(max_new_tokens=30, temperature=0))
    assert (done.text, done.finish_reason) == ("zzzz", "context")


def test_stop_strings_cut_the_text_and_are_held_back(byte_tokenizer) -> None:
    script = [ord(c) for c in "Tom ran. END more"]
    model = Scripted(script, prompt_length=1)
    config = SamplingConfig(max_new_tokens=20, temperature=0,
                            stop=("END", "Tomato"))
    pieces = stream(model, byte_tokenizer, "x", config)
    shown = []
    while True:
        try:
            shown.append(next(pieces))
        except StopIteration as finished:
            done = finished.value
            break
    assert done.text == "Tom ran. " and done.finish_reason == "stop"
    assert "".join(shown) == done.text
    assert "E" not in "".join(shown)
    assert partial_stop("I saw Tom", ("Tomato",)) == 3
    assert partial_stop("abc", ("xyz",)) == 0


def test_streaming_never_splits_a_character(byte_tokenizer) -> None:
    text = "é ✓!"
    script = list(text.encode("utf-8")) + [byte_tokenizer.eot_id]
    model = Scripted(script, prompt_length=1)
    pieces = list(stream(model, byte_tokenizer, "x",
                         SamplingConfig(max_new_tokens=20, temperature=0)))
    assert "".join(pieces) == text
    assert all("\ufffd" not in piece for piece in pieces)
    assert pieces[0] == "é"


@pytest.mark.parametrize("prompt, message", [
    ("", "the prompt is empty"),
    ("<|system|> hello", r"unknown special token\(s\) \['<\|system\|>'\]"),
    ("a" * 40, "the prompt is 40 tokens long but the model's context "
     "holds 32; shorten it to at most 31 tokens"),
])
def test_bad_prompts_get_clear_messages(byte_tokenizer, prompt,
                                        message) -> None:
    model = Scripted([1], prompt_length=1)
    with pytest.raises(ValueError, match=message):
        generate(model, byte_tokenizer, prompt)


def test_known_special_tokens_are_accepted(byte_tokenizer) -> None:
    model = Scripted([ord("a")], prompt_length=1)
    assert encode_prompt(byte_tokenizer, EOT, model) == [
        byte_tokenizer.eot_id]


def test_bad_token_ids_are_refused(tiny_model) -> None:
    config = SamplingConfig(max_new_tokens=2)
    with pytest.raises(ValueError, match="outside the vocabulary"):
        list(decode_tokens(tiny_model, [1, 999], config))
    with pytest.raises(ValueError, match="the prompt is empty"):
        list(decode_tokens(tiny_model, [], config))


# --- batches --------------------------------------------------------------

def test_left_pad_puts_prompts_flush_right() -> None:
    tokens, real = left_pad([[1, 2, 3], [4]], pad_id=0)
    assert tokens.tolist() == [[1, 2, 3], [0, 0, 4]]
    assert real.tolist() == [[True, True, True], [False, False, True]]
    with pytest.raises(ValueError, match="no prompts"):
        left_pad([], 0)


def test_left_padded_batch_equals_one_at_a_time(tiny_model) -> None:
    prompts = [[7, 8, 9, 10, 11, 12, 13], [40], [3, 200, 31]]
    config = SamplingConfig(max_new_tokens=12, temperature=0)
    together = generate_batch(tiny_model, prompts, config, pad_id=256)
    alone = [list(decode_tokens(tiny_model, p, config)) for p in prompts]
    assert together == alone
    with torch.no_grad():
        tokens, real = left_pad(prompts, pad_id=256)
        cache = tiny_model.new_cache(3, 7)
        padded = tiny_model(tokens, cache, attention_mask=real)[:, -1]
        for row, prompt in enumerate(prompts):
            single = tiny_model(torch.tensor([prompt]))[0, -1]
            torch.testing.assert_close(padded[row], single, atol=1e-5,
                                       rtol=1e-5)


def test_batch_rows_stop_independently(tiny_model) -> None:
    prompts = [[7, 8, 9], [40, 41]]
    config = SamplingConfig(max_new_tokens=10, temperature=0)
    alone = [list(decode_tokens(tiny_model, p, config)) for p in prompts]
    stop = alone[0][0]
    together = generate_batch(tiny_model, prompts, config, stop_ids=[stop])
    assert together[0] == [stop]
    expected = alone[1][: alone[1].index(stop) + 1] if stop in alone[1] \
        else alone[1]
    assert together[1] == expected


def test_transformers_generate_gives_the_same_greedy_tokens(
        tiny_model) -> None:
    from scratchllm.generate.bench import compare_with_hf

    result = compare_with_hf(tiny_model, [5, 6, 7, 8], 16, repeats=1)
    assert result["identical"], (result["ours_tokens"], result["hf_tokens"])
    assert len(result["ours_tokens"]) == 16
