"""The server (chapter 13): engine, text stream, and the OpenAI API tested
with the official `openai` client against a live server on 127.0.0.1."""

from __future__ import annotations

import copy
import json
import threading
import time
import urllib.error
import urllib.request

import openai
import pytest
import torch

from scratchllm.finetune.chat import CHAT_TOKENS, render_chat
from scratchllm.generate.decode import generate
from scratchllm.generate.sampling import SamplingConfig
from scratchllm.model.config import ModelConfig
from scratchllm.model.gpt import GPT
from scratchllm.serve.api import Limits, create_app
from scratchllm.serve.engine import Engine, EngineBusy, Job
from scratchllm.serve.load import run_load
from scratchllm.serve.server import BackgroundServer
from scratchllm.serve.text import TextStream
from scratchllm.tokenizer import EOT, SPECIAL_TOKENS, Tokenizer

NAME = "tiny"


def byte_tokenizer(specials=SPECIAL_TOKENS) -> Tokenizer:
    """Bytes only (ids 0-255) plus special tokens from 256 on."""
    return Tokenizer({}, special_tokens={t: 256 + i for i, t in
                                         enumerate(specials)})


@pytest.fixture(scope="module")
def tokenizer() -> Tokenizer:
    return byte_tokenizer()


@pytest.fixture(scope="module")
def model() -> GPT:
    torch.manual_seed(0)
    config = ModelConfig(vocab_size=260, context_length=64, d_model=32,
                         n_layers=2, n_heads=4, n_kv_heads=2, ffn_hidden=64)
    return GPT(config).eval()


@pytest.fixture(scope="module")
def server(model, tokenizer):
    app = create_app(Engine(model, max_batch=8), tokenizer, NAME,
                     Limits(max_body_bytes=4096))
    with BackgroundServer(app) as running:
        yield running


@pytest.fixture(scope="module")
def client(server) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.url + "/v1", api_key="unused",
                         max_retries=0, timeout=60)


def raw(server, path: str, data: bytes | None = None,
        method: str | None = None) -> tuple[int, dict]:
    """Status and JSON body of a raw HTTP request."""
    request = urllib.request.Request(
        server.url + path, data=data, method=method,
        headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


# The text stream -----------------------------------------------------------

def test_text_stream_holds_back_and_cuts_stop_strings(tokenizer) -> None:
    text = TextStream(tokenizer, stop=("END",))
    pieces = [text.push(t) for t in tokenizer.encode("abcENxEND tail")]
    assert "".join(pieces) == "abcENx"
    assert text.stopped
    assert pieces[4] == ""          # "E" held back: it may start "END"
    assert text.finish() == ""


def test_text_stream_joins_utf8_split_across_tokens(tokenizer) -> None:
    text = TextStream(tokenizer)
    pieces = [text.push(t) for t in "é!".encode()]
    assert pieces == ["", "é", "!"]
    text = TextStream(tokenizer)
    assert text.push("é".encode()[0]) == ""
    assert text.finish() == "\ufffd"   # a cut-off character, replaced


# The engine -----------------------------------------------------------------

def run_jobs(engine: Engine, prompts: list[list[int]],
             configs: list[SamplingConfig]) -> list[tuple[list[int], str]]:
    """Submit every job at once; wait for all; (tokens, reason) each."""
    results: list = [None] * len(prompts)
    finished = threading.Semaphore(0)
    jobs = []
    for i, (ids, config) in enumerate(zip(prompts, configs)):
        def done(reason: str, i=i) -> None:
            results[i] = (list(jobs[i].generated), reason)
            finished.release()
        jobs.append(Job(ids, config, frozenset({256}),
                        on_token=lambda t: True, on_finish=done))
    for job in jobs:
        engine.submit(job)
    for _ in jobs:
        assert finished.acquire(timeout=60), "a job never finished"
    return results


@pytest.mark.parametrize("use_cache", [True, False])
def test_batched_engine_matches_one_at_a_time(model, tokenizer,
                                              use_cache) -> None:
    """Jobs of different lengths and settings, joining a running batch,
    give what chapter 10's generate gives each alone."""
    texts = ["a", "hello there", "x" * 30, "The cat sat", "zz", "q" * 50]
    configs = [SamplingConfig(max_new_tokens=n, temperature=t, top_p=p,
                              seed=s)
               for n, t, p, s in [(12, 0, None, 0), (5, 0.9, 0.9, 1),
                                  (20, 0, None, 2), (9, 1.2, None, 3),
                                  (30, 0.7, 0.5, 4), (40, 0, None, 5)]]
    engine = Engine(model, max_batch=3, use_cache=use_cache)
    engine.start()
    try:
        results = run_jobs(engine, [tokenizer.encode(t) for t in texts],
                           configs)
    finally:
        engine.stop()
    for text, config, (ids, reason) in zip(texts, configs, results):
        alone = generate(model, tokenizer, text, config)
        assert ids == alone.token_ids, text
        assert reason == {"context": "length"}.get(alone.finish_reason,
                                                   alone.finish_reason)
    assert 1 < engine.mean_batch <= 3


def test_a_full_queue_is_refused_not_grown(model) -> None:
    engine = Engine(model, max_batch=1, max_waiting=2)   # not started
    job = Job([1, 2], SamplingConfig(), frozenset(), lambda t: True,
              lambda r: None)
    engine.submit(job)
    engine.submit(job)
    with pytest.raises(EngineBusy):
        engine.submit(job)


# The API through the official client ----------------------------------------

def test_models_and_health(client, server) -> None:
    assert [m.id for m in client.models.list()] == [NAME]
    status, body = raw(server, "/health")
    assert status == 200 and body["status"] == "ok"


def test_completion_round_trip_matches_local_generate(
        client, model, tokenizer) -> None:
    reply = client.completions.create(model=NAME, prompt="Hello",
                                      max_tokens=10, temperature=0)
    local = generate(model, tokenizer, "Hello",
                     SamplingConfig(max_new_tokens=10, temperature=0))
    assert reply.choices[0].text == local.text
    assert reply.object == "text_completion"
    assert reply.usage.prompt_tokens == 5
    assert reply.usage.completion_tokens == len(local.token_ids)
    assert reply.usage.total_tokens == 5 + len(local.token_ids)
    assert reply.choices[0].finish_reason in ("stop", "length")


def test_seeded_sampling_is_reproducible(client) -> None:
    def ask(seed: int) -> str:
        return client.completions.create(
            model=NAME, prompt="Once", max_tokens=12, temperature=1.0,
            top_p=0.9, seed=seed).choices[0].text
    assert ask(7) == ask(7)
    assert len({ask(s) for s in range(4)}) > 1


def test_streamed_completion_gives_the_same_text(client) -> None:
    settings = dict(model=NAME, prompt="Stream me", max_tokens=16,
                    temperature=0)
    whole = client.completions.create(**settings).choices[0].text
    chunks = list(client.completions.create(
        **settings, stream=True, stream_options={"include_usage": True}))
    pieces = [c.choices[0].text for c in chunks if c.choices]
    assert "".join(pieces) == whole
    assert chunks[-2].choices[0].finish_reason in ("stop", "length")
    assert chunks[-1].usage.completion_tokens > 0


def test_stop_strings_end_the_completion(client, model, tokenizer) -> None:
    local = generate(model, tokenizer, "Hi",
                     SamplingConfig(max_new_tokens=20, temperature=0))
    stop = local.text[3:5]
    assert len(stop) == 2
    reply = client.completions.create(model=NAME, prompt="Hi",
                                      max_tokens=20, temperature=0,
                                      stop=[stop])
    assert reply.choices[0].text == local.text[:local.text.index(stop)]
    assert reply.choices[0].finish_reason == "stop"


def test_chat_round_trip_and_stream(client, model, tokenizer) -> None:
    messages = [{"role": "system", "content": "Be brief."},
                {"role": "user", "content": "Hi!"}]
    reply = client.chat.completions.create(
        model=NAME, messages=messages, max_tokens=8, temperature=0)
    prompt = render_chat(messages, add_generation_prompt=True)
    local = generate(model, tokenizer, prompt,
                     SamplingConfig(max_new_tokens=8, temperature=0))
    assert reply.object == "chat.completion"
    assert reply.choices[0].message.role == "assistant"
    assert reply.choices[0].message.content == local.text
    assert reply.usage.prompt_tokens == len(tokenizer.encode(prompt))
    chunks = list(client.chat.completions.create(
        model=NAME, messages=messages, max_tokens=8, temperature=0,
        stream=True))
    assert chunks[0].choices[0].delta.role == "assistant"
    streamed = "".join(c.choices[0].delta.content or "" for c in chunks)
    assert streamed == local.text


def test_chat_stops_at_end_of_turn(model, tokenizer) -> None:
    """A model that always says <|im_end|> ends its turn at once."""
    turn_end = tokenizer.special_tokens[CHAT_TOKENS[1]]
    ending = copy.deepcopy(model)
    ending.output = torch.nn.Linear(model.config.d_model,
                                    model.config.vocab_size)
    with torch.no_grad():
        ending.output.weight.zero_()
        ending.output.bias.zero_()
        ending.output.bias[turn_end] = 10.0
    app = create_app(Engine(ending), tokenizer, NAME)
    with BackgroundServer(app) as running:
        chat = openai.OpenAI(base_url=running.url + "/v1", api_key="x",
                             max_retries=0).chat.completions.create(
            model=NAME, messages=[{"role": "user", "content": "Hi"}],
            temperature=0)
    assert chat.choices[0].message.content == ""
    assert chat.choices[0].finish_reason == "stop"
    assert chat.usage.completion_tokens == 1


def test_chat_without_chat_tokens_is_a_clear_400(model) -> None:
    plain = byte_tokenizer((EOT,))
    app = create_app(Engine(model), plain, NAME)
    with BackgroundServer(app) as running:
        client = openai.OpenAI(base_url=running.url + "/v1", api_key="x",
                               max_retries=0)
        with pytest.raises(openai.BadRequestError) as error:
            client.chat.completions.create(
                model=NAME, messages=[{"role": "user", "content": "Hi"}])
        assert "no chat tokens" in error.value.body["message"]
        assert error.value.body["code"] == "chat_not_supported"
        ok = client.completions.create(model=NAME, prompt="Hi",
                                       max_tokens=3)
        assert ok.usage.completion_tokens >= 1


# Errors: 4xx in OpenAI's shape, never a 500 -------------------------------------

BAD_REQUESTS = [
    ("/v1/completions", b'{"model": "tiny", "prompt": ', 400, "JSON"),
    ("/v1/completions", b'[1, 2]', 400, "body"),
    ("/v1/completions", b'{"model": "gpt-4", "prompt": "Hi"}', 404,
     "does not exist"),
    ("/v1/completions", b'{"model": "tiny"}', 400, "prompt"),
    ("/v1/completions", (b'{"model": "tiny", "prompt": "Hi", '
     b'"max_tokens": 0}'), 400, "max_tokens"),
    ("/v1/completions", (b'{"model": "tiny", "prompt": "Hi", '
     b'"max_tokens": -3}'), 400, "max_tokens"),
    ("/v1/completions", (b'{"model": "tiny", "prompt": "Hi", '
     b'"temperature": 9}'), 400, "temperature"),
    ("/v1/completions", (b'{"model": "tiny", "prompt": "Hi", '
     b'"top_p": 0}'), 400, "top_p"),
    ("/v1/completions", b'{"model": "tiny", "prompt": "Hi", "n": 2}', 400,
     "n"),
    ("/v1/completions", (b'{"model": "tiny", "prompt": "Hi", '
     b'"stop": ["a", "b", "c", "d", "e"]}'), 400, "stop"),
    ("/v1/completions", b'{"model": "tiny", "prompt": "Hi", "stop": [""]}',
     400, "stop"),
    ("/v1/completions", b'{"model": "tiny", "prompt": ""}', 400, "empty"),
    ("/v1/completions", b'{"model": "tiny", "prompt": ["a", "b"]}', 400,
     "one prompt"),
    ("/v1/completions", json.dumps({"model": "tiny", "prompt": "x" * 64}
                                   ).encode(), 400, "context"),
    ("/v1/completions", b'{"model": "tiny", "prompt": "<|bogus|>"}', 400,
     "special token"),
    ("/v1/completions", b" " * 5000, 413, "bytes"),
    ("/v1/chat/completions", b'{"model": "tiny", "messages": []}', 400,
     "at least one"),
    ("/v1/chat/completions", (b'{"model": "tiny", "messages": '
     b'[{"role": "wizard", "content": "x"}]}'), 400, "role"),
    ("/v1/chat/completions", (b'{"model": "tiny", "messages": '
     b'[{"role": "user"}]}'), 400, "content"),
    ("/v1/nowhere", b"{}", 404, "Not Found"),
]


@pytest.mark.parametrize("path, data, status, words", BAD_REQUESTS)
def test_bad_requests_get_4xx_in_openai_shape(server, path, data, status,
                                              words) -> None:
    got, body = raw(server, path, data)
    assert got == status, body
    error = body["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert words.lower() in error["message"].lower()


def test_wrong_method_is_405_in_openai_shape(server) -> None:
    status, body = raw(server, "/v1/completions", method="GET")
    assert status == 405 and "message" in body["error"]


def test_the_client_raises_typed_errors(client) -> None:
    with pytest.raises(openai.NotFoundError):
        client.completions.create(model="nope", prompt="Hi")
    with pytest.raises(openai.BadRequestError) as error:
        client.completions.create(model=NAME, prompt="y" * 100)
    assert error.value.body["code"] == "context_length_exceeded"


def test_overload_is_429_and_nothing_is_5xx(model, tokenizer) -> None:
    """More concurrent work than the queue holds: some 429, no 5xx."""
    app = create_app(Engine(model, max_batch=1, max_waiting=1), tokenizer,
                     NAME)
    with BackgroundServer(app) as running:
        report = run_load(running.url + "/v1", NAME, ["Hi", "Yo"], 24, 8,
                          20)
    assert report.statuses.get(429, 0) > 0
    assert report.statuses.get(200, 0) > 0
    assert report.summary()["server_errors"] == 0


def test_load_report_counts_tokens_and_latency(server) -> None:
    report = run_load(server.url + "/v1", NAME, ["a", "bc"], 12, 4, 5)
    summary = report.summary()
    assert summary["ok"] == 12 and summary["server_errors"] == 0
    assert report.completion_tokens > 0
    assert 0 < summary["p50_s"] <= summary["p95_s"]


def test_shutdown_waits_for_the_request_in_flight(model, tokenizer) -> None:
    """Leaving the server's block while a request runs: the request still
    completes, then the engine stops."""
    engine = Engine(model)
    app = create_app(engine, tokenizer, NAME)
    answers: list = []
    with BackgroundServer(app) as running:
        client = openai.OpenAI(base_url=running.url + "/v1", api_key="x",
                               max_retries=0)

        def ask() -> None:
            answers.append(client.completions.create(
                model=NAME, prompt="Hi", max_tokens=40, temperature=0,
                stop=None))
        asker = threading.Thread(target=ask)
        asker.start()
        deadline = time.monotonic() + 30
        while not engine.batch.jobs and time.monotonic() < deadline:
            time.sleep(0.001)
    asker.join(timeout=30)
    assert answers and answers[0].usage.completion_tokens >= 1
    assert not engine.thread.is_alive()


def test_a_client_that_goes_away_frees_its_row(model, tokenizer) -> None:
    """Closing a stream early cancels the job: the engine drops its row
    instead of decoding all max_tokens for nobody."""
    engine = Engine(model)
    step = engine.batch.step
    engine.batch.step = lambda: (time.sleep(0.05), step())   # 60 steps: 3 s
    app = create_app(engine, tokenizer, NAME)
    with BackgroundServer(app) as running:
        client = openai.OpenAI(base_url=running.url + "/v1", api_key="x",
                               max_retries=0)
        stream = client.completions.create(
            model=NAME, prompt="Hi", max_tokens=60, temperature=0,
            stream=True, stop=None)
        next(iter(stream))
        job = engine.batch.jobs[0]
        stream.close()
        deadline = time.monotonic() + 30
        while engine.batch.jobs and time.monotonic() < deadline:
            time.sleep(0.01)
        assert not engine.batch.jobs
    assert job.cancelled and len(job.generated) < 60
