"""Chapter 11: the chat format (template, tokens, loss mask, export)."""

from __future__ import annotations

import json

import pytest
import torch

from scratchllm.finetune.chat import (
    CHAT_TEMPLATE,
    CHAT_TOKENS,
    ROLES,
    add_chat_tokens,
    encode_chat,
    end_of_turn_id,
    export_chat_hf,
    render_chat,
    resize_vocabulary,
    validate_messages,
)
from scratchllm.model.config import ModelConfig
from scratchllm.model.gpt import GPT
from scratchllm.tokenizer import SPECIAL_TOKENS
from scratchllm.tokenizer.train import train_bpe

transformers = pytest.importorskip("transformers")

TEXT = ("Once upon a time, a shy fox lived in a meadow. Mia the cat met "
        "the fox by the river. Where did Mia meet the fox? By the river.\n"
        "Who is shy? The fox. Is Mia a dog? No.\n") * 8

CONVERSATION = [
    {"role": "system", "content": "You answer questions about stories."},
    {"role": "user", "content": "Story: Mia met the fox by the river.\n"
                                "Where did Mia meet the fox?"},
    {"role": "assistant", "content": "By the river."},
    {"role": "user", "content": "Who is shy?"},
    {"role": "assistant", "content": "The fox."},
]


@pytest.fixture(scope="module")
def tokenizer():
    """A small tokenizer with chapter 4's special tokens."""
    return train_bpe([TEXT], 256 + 60 + len(SPECIAL_TOKENS))


@pytest.fixture(scope="module")
def hf_folder(tokenizer, tmp_path_factory):
    """A model and tokenizer exported with the chat template."""
    folder = tmp_path_factory.mktemp("chat-export")
    torch.manual_seed(0)
    model = GPT(ModelConfig.preset("ci", vocab_size=tokenizer.vocab_size))
    return export_chat_hf(model, tokenizer, folder)


def test_render_is_chatml():
    text = render_chat(CONVERSATION[:3], add_generation_prompt=False)
    assert text == (
        "<|im_start|>system\nYou answer questions about stories."
        "<|im_end|>\n<|im_start|>user\nStory: Mia met the fox by the "
        "river.\nWhere did Mia meet the fox?<|im_end|>\n"
        "<|im_start|>assistant\nBy the river.<|im_end|>\n")
    prompt = render_chat(CONVERSATION[:2], add_generation_prompt=True)
    assert prompt.endswith("<|im_end|>\n<|im_start|>assistant\n")


@pytest.mark.parametrize("generation_prompt", [False, True])
@pytest.mark.parametrize("length", [1, 2, 3, 5])
def test_template_matches_transformers(hf_folder, tokenizer, length,
                                       generation_prompt):
    hf = transformers.AutoTokenizer.from_pretrained(hf_folder)
    assert hf.chat_template == CHAT_TEMPLATE
    messages = CONVERSATION[:length]
    ours = render_chat(messages, add_generation_prompt=generation_prompt)
    theirs = hf.apply_chat_template(
        messages, tokenize=False, add_generation_prompt=generation_prompt)
    assert ours == theirs
    hf_ids = hf.apply_chat_template(
        messages, tokenize=True, add_generation_prompt=generation_prompt,
        return_dict=False)
    assert list(hf_ids) == tokenizer.encode(ours)
    if length in (3, 5) and not generation_prompt:
        assert encode_chat(tokenizer, messages, 10_000).ids == list(hf_ids)


def test_export_sets_end_of_turn(hf_folder, tokenizer):
    config = json.loads((hf_folder / "config.json").read_text())
    generation = json.loads(
        (hf_folder / "generation_config.json").read_text())
    stop = end_of_turn_id(tokenizer)
    assert config["eos_token_id"] == generation["eos_token_id"] == stop
    hf = transformers.AutoTokenizer.from_pretrained(hf_folder)
    assert hf.eos_token == CHAT_TOKENS[1]


def test_loss_mask_on_a_real_example(tokenizer):
    example = encode_chat(tokenizer, CONVERSATION, context_length=10_000)
    assert len(example.ids) == len(example.loss_mask)
    learnt = [t for t, m in zip(example.ids, example.loss_mask) if m]
    stop = end_of_turn_id(tokenizer)
    expected = (tokenizer.encode("By the river.") + [stop]
                + tokenizer.encode("The fox.") + [stop])
    assert learnt == expected
    # the header "<|im_start|>assistant\n" is never learnt
    start = tokenizer.special_tokens[CHAT_TOKENS[0]]
    for token, counted in zip(example.ids, example.loss_mask):
        if token == start:
            assert not counted
    # the mask is a prefix-free run per assistant turn: two runs
    runs = sum(1 for a, b in zip([False] + example.loss_mask,
                                 example.loss_mask) if b and not a)
    assert runs == 2


def test_loss_mask_when_content_starts_with_whitespace(tokenizer):
    messages = [{"role": "user", "content": "Who?"},
                {"role": "assistant", "content": "\n\n  The fox."}]
    example = encode_chat(tokenizer, messages, 10_000)
    decoded = tokenizer.decode(
        [t for t, m in zip(example.ids, example.loss_mask) if m])
    assert decoded.endswith("The fox.<|im_end|>")
    assert "assistant" not in decoded


def test_add_chat_tokens_appends_and_is_idempotent(tokenizer):
    bare = type(tokenizer)(tokenizer.merges, tokenizer.pattern,
                           {"<|endoftext|>": tokenizer.eot_id},
                           tokenizer.byte_ids)
    assert CHAT_TOKENS[0] not in bare.special_tokens
    with pytest.raises(ValueError, match="no chat tokens"):
        end_of_turn_id(bare)
    chat = add_chat_tokens(bare)
    assert chat.special_tokens[CHAT_TOKENS[0]] == bare.vocab_size
    assert chat.special_tokens[CHAT_TOKENS[1]] == bare.vocab_size + 1
    again = add_chat_tokens(chat)
    assert again.special_tokens == chat.special_tokens
    assert add_chat_tokens(tokenizer).special_tokens == \
        tokenizer.special_tokens
    assert chat.encode("<|im_end|>") == [end_of_turn_id(chat)]


def test_resize_vocabulary_keeps_old_logits_and_uses_the_mean():
    torch.manual_seed(0)
    for tied in (True, False):
        config = ModelConfig.preset("ci", vocab_size=300,
                                    tie_embeddings=tied)
        model = GPT(config).eval()
        bigger = resize_vocabulary(model, 302).eval()
        assert bigger.config.vocab_size == 302
        tokens = torch.randint(0, 300, (2, 9))
        old, new = model(tokens), bigger(tokens)
        torch.testing.assert_close(new[..., :300], old)
        mean = model.token_embedding.weight.mean(0)
        torch.testing.assert_close(bigger.token_embedding.weight[301], mean)
        torch.testing.assert_close(bigger.output.weight[300],
                                   model.output.weight.mean(0))
        assert (bigger.output.weight is bigger.token_embedding.weight) \
            == tied
    with pytest.raises(ValueError, match="shrink"):
        resize_vocabulary(model, 10)


@pytest.mark.parametrize("messages, message", [
    ([], "at least one message"),
    ("hello", "list"),
    ([{"role": "robot", "content": "hi"}], "unknown role 'robot'"),
    ([{"role": "user", "content": 3}], "content must be text"),
    ([{"role": "user", "content": "a"}, {"role": "system", "content": "b"}],
     "system message must come first"),
    ([{"role": "user", "content": "x<|im_end|>"}], "chat token"),
    (["hi"], "not a"),
])
def test_bad_messages(messages, message):
    with pytest.raises(ValueError, match=message):
        validate_messages(messages)


def test_encode_errors(tokenizer):
    with pytest.raises(ValueError, match="no assistant message"):
        encode_chat(tokenizer, CONVERSATION[:2], 10_000)
    with pytest.raises(ValueError, match="more than the context of 8"):
        encode_chat(tokenizer, CONVERSATION, 8)


def test_roles():
    assert ROLES == ("system", "user", "assistant")
