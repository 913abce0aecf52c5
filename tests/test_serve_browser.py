"""The chat page (chapter 13) in a real browser: headless Chromium driven
by Selenium against a live server on 127.0.0.1."""

from __future__ import annotations

import re

import pytest
import torch

from scratchllm.model.config import ModelConfig
from scratchllm.model.gpt import GPT
from scratchllm.serve.api import create_app
from scratchllm.serve.browser import chat_in_browser, chromium_available
from scratchllm.serve.engine import Engine
from scratchllm.serve.server import BackgroundServer
from scratchllm.tokenizer import SPECIAL_TOKENS, Tokenizer

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not chromium_available(),
                       reason="needs Debian's chromium and chromium-driver"),
]


@pytest.fixture(scope="module")
def server():
    torch.manual_seed(0)
    tokenizer = Tokenizer({}, special_tokens={
        t: 256 + i for i, t in enumerate(SPECIAL_TOKENS)})
    model = GPT(ModelConfig(vocab_size=260, context_length=128, d_model=32,
                            n_layers=2, n_heads=4, n_kv_heads=2,
                            ffn_hidden=64, tie_embeddings=False)).eval()
    # A random model may end its turn at once (an empty reply is then
    # right): this one writes ASCII letters only. Other tokens get a logit
    # of 0, letters logits of spread ~20, so a letter always wins.
    letters = torch.tensor([ord(c) for c in "abcdefghijklmnopqrstuvwxyz"])
    with torch.no_grad():
        head = model.output.weight
        kept = head[letters] * 200
        head.zero_()
        head[letters] = kept
    with BackgroundServer(create_app(Engine(model), tokenizer,
                                     "tiny")) as running:
        yield running


def test_page_streams_replies_and_keeps_the_conversation(server,
                                                         tmp_path) -> None:
    shot = tmp_path / "chat.png"
    seen = chat_in_browser(server.url + "/?max_tokens=8", ["Hi", "More"],
                           shot)
    roles = [role for role, _ in seen["bubbles"]]
    assert roles == ["user", "assistant", "user", "assistant"]
    assert seen["bubbles"][0][1] == "Hi"
    replies = [text for role, text in seen["bubbles"] if role == "assistant"]
    assert all(re.fullmatch("[a-z]{8}", text) for text in replies), seen
    assert seen["history"] == 4 and seen["error"] == ""
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_page_shows_errors(server) -> None:
    """A message longer than the context: the server's 400 message is
    shown in the page and the failed turn leaves the conversation."""
    seen = chat_in_browser(server.url + "/?max_tokens=8", ["x" * 200])
    assert seen["error"].startswith("error: the prompt is")
    assert "context" in seen["error"]
    assert [role for role, _ in seen["bubbles"]] == ["user"]
    assert seen["history"] == 0
