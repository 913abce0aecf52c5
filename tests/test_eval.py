"""Chapter 10, evaluation: bits per byte, the multiple-choice harness and
its loader, the Wilson interval, the StoryWorld task, sample statistics,
the report, and the command line on a tiny artifact folder."""

from __future__ import annotations

import itertools
import json
import math
import re
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from typer.testing import CliRunner

from scratchllm.data.storyworld import StoryWorld, is_grammatical
from scratchllm.eval.intrinsic import (Intrinsic, encode_documents,
                                       evaluate_tokens, loss_by_position,
                                       token_byte_lengths)
from scratchllm.eval.multiple_choice import (Question, choice_scores,
                                             evaluate_choices, load_jsonl,
                                             parse_question, story_questions,
                                             wilson_interval)
from scratchllm.eval.samples import (acceptance, distinct_n, repetition_rate,
                                     sentences)
from scratchllm.model.config import ModelConfig
from scratchllm.model.gpt import GPT
from scratchllm.tokenizer import SPECIAL_TOKENS, Tokenizer, train_bpe


@pytest.fixture(scope="module")
def byte_tokenizer() -> Tokenizer:
    return Tokenizer({}, special_tokens={t: 256 + i for i, t in
                                         enumerate(SPECIAL_TOKENS)})


@pytest.fixture(scope="module")
def stories() -> list:
    return list(itertools.islice(StoryWorld(seed=3).stories(), 120))


@pytest.fixture(scope="module")
def tokenizer(stories) -> Tokenizer:
    return train_bpe([s.text for s in stories], 400)


@pytest.fixture(scope="module")
def tiny_model(tokenizer) -> GPT:
    torch.manual_seed(0)
    config = ModelConfig(vocab_size=tokenizer.vocab_size, context_length=64,
                         d_model=32, n_layers=2, n_heads=4, n_kv_heads=2,
                         ffn_hidden=64)
    return GPT(config).eval()


class Uniform(torch.nn.Module):
    """A model that gives every token the same probability."""

    def __init__(self, vocab_size: int, context_length: int) -> None:
        super().__init__()
        self.config = SimpleNamespace(vocab_size=vocab_size,
                                      context_length=context_length)
        self.anchor = torch.nn.Parameter(torch.zeros(1))

    def forward(self, tokens: torch.Tensor, cache=None) -> torch.Tensor:
        return torch.zeros(*tokens.shape, self.config.vocab_size)


# --- intrinsic ------------------------------------------------------------

def test_byte_lengths_count_bytes_and_not_special_tokens(tokenizer) -> None:
    lengths = token_byte_lengths(tokenizer)
    assert lengths[:256].tolist() == [1] * 256
    for token in tokenizer.special_tokens.values():
        assert lengths[token] == 0
    ids = tokenizer.encode("Tom has a ball. ✓")
    assert lengths[ids].sum() == len("Tom has a ball. ✓".encode("utf-8"))


def test_uniform_model_costs_log_v_per_token(byte_tokenizer) -> None:
    ids = encode_documents(byte_tokenizer, ["hello there", "ab"])
    result = evaluate_tokens(Uniform(260, 4), ids,
                             token_byte_lengths(byte_tokenizer))
    assert result.tokens == len(ids) - 1
    assert result.bytes == len("hello there") + len("ab")
    assert math.isclose(result.loss, math.log(260), rel_tol=1e-6)
    assert math.isclose(result.perplexity, 260, rel_tol=1e-5)
    assert math.isclose(result.bits_per_byte,
                        math.log2(260) * result.tokens / result.bytes,
                        rel_tol=1e-6)


def test_windows_score_every_token_once(tiny_model, tokenizer) -> None:
    ids = encode_documents(tokenizer, ["Tom has a red ball and a dog."] * 6)
    window = tiny_model.config.context_length
    result = evaluate_tokens(tiny_model, ids, token_byte_lengths(tokenizer))
    expected, tokens = 0.0, 0
    with torch.no_grad():
        for start in range(0, len(ids) - 1, window):
            piece = torch.from_numpy(ids[start: start + window + 1])
            logits = tiny_model(piece[None, :-1])[0]
            expected += F.cross_entropy(logits, piece[1:],
                                        reduction="sum").item()
            tokens += len(piece) - 1
    assert result.tokens == tokens == len(ids) - 1
    assert math.isclose(result.nats, expected, rel_tol=1e-5)
    capped = evaluate_tokens(tiny_model, ids, token_byte_lengths(tokenizer),
                             max_tokens=10)
    assert capped.tokens == 10


def test_split_counts_the_bytes_of_exactly_the_scored_tokens(
        tiny_model, tokenizer) -> None:
    from scratchllm.eval.intrinsic import (evaluate_split, evaluate_windows,
                                           validation_windows)

    lengths = token_byte_lengths(tokenizer)
    shards = [encode_documents(tokenizer, ["Tom has a red ball."] * 9),
              encode_documents(tokenizer, ["Lily sees a big dog!"] * 4)]
    budget = len(shards[0]) + 20
    windows = validation_windows(shards, 64, budget)
    assert sum(stop - start - 1 for _, start, stop in windows) == budget
    whole = evaluate_split(tiny_model, shards, lengths, budget)
    scored = np.concatenate([shards[n][start + 1: stop]
                             for n, start, stop in windows])
    special = set(tokenizer.special_tokens.values())
    text = tokenizer.decode_bytes([int(t) for t in scored
                                   if t not in special])
    assert whole.tokens == budget and whole.bytes == len(text)
    parts = [evaluate_split(tiny_model, shards, lengths, budget, (r, 3))
             for r in range(3)]
    assert sum(p.tokens for p in parts) == whole.tokens
    assert sum(p.bytes for p in parts) == whole.bytes
    assert math.isclose(sum(p.nats for p in parts), whole.nats,
                        rel_tol=1e-6)
    one_by_one = evaluate_windows(tiny_model, shards, windows, lengths,
                                  batch_size=1)
    assert math.isclose(one_by_one.nats, whole.nats, rel_tol=1e-5)


def test_loss_by_position_averages_full_windows(tiny_model,
                                               tokenizer) -> None:
    ids = encode_documents(tokenizer, ["Lily has a big blue kite."] * 20)
    window = tiny_model.config.context_length
    by_position = loss_by_position(tiny_model, ids, max_tokens=2 * window,
                                   batch_size=1)
    assert by_position.shape == (window,)
    pieces = torch.from_numpy(ids[: 2 * window + 1])
    rows = torch.stack([pieces[:window + 1], pieces[window:]])
    with torch.no_grad():
        logits = tiny_model(rows[:, :-1])
    expected = F.cross_entropy(logits.transpose(1, 2), rows[:, 1:],
                               reduction="none").mean(0)
    assert np.allclose(by_position, expected.numpy(), rtol=1e-5)
    flat = loss_by_position(Uniform(300, 8), np.arange(50) % 300, 40)
    assert np.allclose(flat, math.log(300))
    with pytest.raises(ValueError, match="for one window"):
        loss_by_position(Uniform(300, 8), np.arange(5), 40)


def test_intrinsic_conversions() -> None:
    result = Intrinsic(tokens=100, bytes=400, nats=100 * math.log(8))
    assert math.isclose(result.perplexity, 8)
    assert math.isclose(result.bits_per_token, 3)
    assert math.isclose(result.bits_per_byte, 0.75)


def test_bad_token_input_is_refused(byte_tokenizer) -> None:
    lengths = token_byte_lengths(byte_tokenizer)
    with pytest.raises(ValueError, match="at least two tokens"):
        evaluate_tokens(Uniform(260, 4), np.array([1]), lengths)
    with pytest.raises(ValueError, match="outside the tokenizer"):
        evaluate_tokens(Uniform(300, 4), np.array([1, 290]), lengths)


# --- multiple choice ------------------------------------------------------

def test_wilson_interval_known_values() -> None:
    low, high = wilson_interval(5, 10)
    assert (round(low, 4), round(high, 4)) == (0.2366, 0.7634)
    low, high = wilson_interval(0, 10)
    assert low == 0.0 and round(high, 4) == 0.2775
    low, high = wilson_interval(81, 100)
    assert (round(low, 4), round(high, 4)) == (0.7222, 0.8749)
    with pytest.raises(ValueError):
        wilson_interval(3, 0)


def test_parse_question_reads_three_layouts() -> None:
    ours = parse_question({"context": "A", "choices": [" b", " c"],
                           "answer": 1})
    assert ours == Question("A", (" b", " c"), 1)
    hellaswag = parse_question({"ctx": "He ran", "endings": ["far.", "up."],
                                "label": "1"})
    assert hellaswag == Question("He ran", (" far.", " up."), 1)
    arc = parse_question({"question": "2+2?", "choices": {
        "text": ["3", "4"], "label": ["A", "B"]}, "answerKey": "B"})
    assert arc == Question("Question: 2+2?\nAnswer:", (" 3", " 4"), 1)
    with pytest.raises(ValueError, match="unknown question layout"):
        parse_question({"prompt": "x"})
    with pytest.raises(ValueError, match="answer 2 is not the index"):
        parse_question({"context": "A", "choices": ["b", "c"], "answer": 2})


def test_load_jsonl_names_the_bad_line(tmp_path: Path) -> None:
    path = tmp_path / "q.jsonl"
    path.write_text(json.dumps({"context": "A", "choices": ["b", "c"],
                                "answer": 0}) + "\n\n"
                    + json.dumps({"ctx": "x", "endings": ["y"],
                                  "label": 0}) + "\n")
    with pytest.raises(ValueError, match=r"q.jsonl:3: .*at least two"):
        load_jsonl(path)
    path.write_text("")
    with pytest.raises(ValueError, match="holds no questions"):
        load_jsonl(path)


def test_choice_scores_are_continuation_log_likelihoods(
        tiny_model, tokenizer) -> None:
    question = Question("Tom has a dog.", (" The dog is big.", " Hi."), 0)
    scores = choice_scores(tiny_model, tokenizer, question)
    context = [tokenizer.eot_id] + tokenizer.encode(question.context)
    for (nats, size), choice in zip(scores, question.choices):
        ids = tokenizer.encode(choice)
        sequence = torch.tensor([context + ids])
        with torch.no_grad():
            logp = tiny_model(sequence[:, :-1])[0].log_softmax(-1)
        expected = sum(logp[len(context) - 1 + j, ids[j]].item()
                       for j in range(len(ids)))
        assert math.isclose(nats, expected, rel_tol=1e-4)
        assert size == len(choice.encode("utf-8"))


def test_evaluate_choices_counts_and_chance(tiny_model, tokenizer) -> None:
    questions = [Question("a", (" x", " y"), 0),
                 Question("b", (" x", " y", " z", " w"), 2)]
    result = evaluate_choices(tiny_model, tokenizer, questions)
    scores = [choice_scores(tiny_model, tokenizer, q) for q in questions]
    right = sum(max(range(len(s)), key=lambda i: s[i][0]) == q.answer
                for s, q in zip(scores, questions))
    assert result.correct == right
    assert math.isclose(result.chance, (1 / 2 + 1 / 4) / 2)
    with pytest.raises(ValueError, match="no questions"):
        evaluate_choices(tiny_model, tokenizer, [])


def test_story_questions_have_known_consistent_answers(stories) -> None:
    records = [{"text": s.text, "facts": s.facts} for s in stories]
    questions = story_questions(records, 30, seed=1)
    assert len(questions) == 30
    by_context = {}
    for record in records:
        by_context.setdefault(record["text"][:80], record)
    for question in questions:
        record = by_context[question.context[:80]]
        truth = question.choices[question.answer]
        assert record["text"].startswith(question.context + truth)
        assert all(is_grammatical(c.strip()) for c in question.choices)
        assert len(set(question.choices)) == 4
        entities = {record["facts"]["who"], record["facts"]["what"]}
        true_words = set(re.findall(r"\w+", truth))
        for index, choice in enumerate(question.choices):
            if index == question.answer:
                continue
            words = set(re.findall(r"\w+", choice))
            (removed,), (added,) = true_words - words, words - true_words
            assert removed in entities
            assert not re.search(rf"\b{added}\b", record["text"])


def test_story_answers_are_spread_over_positions(stories) -> None:
    records = [{"text": s.text, "facts": s.facts} for s in stories]
    questions = story_questions(records, 20, seed=2)
    assert {q.answer for q in questions} == {0, 1, 2, 3}


# --- samples --------------------------------------------------------------

def test_sentences_drop_an_unfinished_tail() -> None:
    text = 'Tom ran. "Oh no!" cried Tom. He was'
    assert sentences(text) == ["Tom ran.", '"Oh no!" cried Tom.']


def test_acceptance_of_real_and_broken_stories(stories) -> None:
    texts = [s.text for s in stories[:5]]
    accepted, total = acceptance(texts, is_grammatical)
    assert accepted == total > 20
    assert acceptance(["Tom ran blue the. Dog dog dog."],
                      is_grammatical) == (0, 2)


def test_distinct_n_and_repetition_rate() -> None:
    assert distinct_n(["a b a b", "a b"], 1) == 2 / 6
    assert distinct_n(["a b c", "a b d"], 2) == 3 / 4
    assert distinct_n([""], 2) == 0.0
    assert repetition_rate("x y z w x y z w", 4) == 1 / 5
    assert repetition_rate("a b c d e", 4) == 0.0
    assert repetition_rate("The cat. the cat.", 2) == 2 / 5


# --- report and command line on a tiny artifact folder --------------------

def write_artifacts(root: Path, stories: list, tokenizer: Tokenizer) -> Path:
    """A profile folder root/ci with StoryWorld data, its stats, the
    tokenizer and the token shards; return root/ci."""
    from scratchllm.tokenizer.shards import write_shards

    folder = root / "ci"
    data = folder / "data" / "storyworld"
    data.mkdir(parents=True)
    lines = [json.dumps({"id": s.id, "text": s.text, "facts": s.facts,
                         "log2prob": s.log2prob}) for s in stories]
    for split in ("train", "val"):
        (data / f"{split}.jsonl").write_text("\n".join(lines) + "\n")
    bits = -sum(s.log2prob for s in stories)
    size = sum(len(s.text.encode("utf-8")) for s in stories)
    (data / "stats.json").write_text(json.dumps(
        {"entropy_bits_per_byte": bits / size, "documents": len(stories),
         "bytes": size}))
    tokenizer.save(folder / "tokenizer")
    write_shards(tokenizer, data, folder / "tokens" / "storyworld")
    return folder


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory, stories, tokenizer, tiny_model) -> Path:
    from scratchllm.train.checkpoint import save_checkpoint

    root = tmp_path_factory.mktemp("artifacts")
    folder = write_artifacts(root, stories, tokenizer)
    save_checkpoint(folder / "checkpoints" / "pretrain", 1,
                    tiny_model.state_dict(),
                    {"state": {}, "param_groups": []},
                    {"model_config": tiny_model.config.to_dict(),
                     "train_config": {"eval_tokens": 4096}})
    return root


def test_one_checkpoint_has_one_bits_per_byte_everywhere(
        tmp_path: Path, stories, tokenizer) -> None:
    import re

    from scratchllm.cli import app
    from scratchllm.eval.intrinsic import evaluate_split
    from scratchllm.eval.report import EvalSettings, evaluate_checkpoint
    from scratchllm.tokenizer.shards import read_split
    from scratchllm.train import load_config, pretrain
    from scratchllm.train.checkpoint import checkpoint_meta, load_model
    from scratchllm.train.monitor import read_log

    folder = write_artifacts(tmp_path, stories, tokenizer)
    settings = tmp_path / "tiny.yaml"
    settings.write_text(
        "model_overrides: {d_model: 64, n_heads: 4, n_kv_heads: 2, "
        "ffn_hidden: 192, n_layers: 2}\ncontext_length: 128\n"
        "batch_size: 2\nwarmup_steps: 1\nprogress: false\n"
        "run_name: pretrain\nsample_every: -1\neval_tokens: 300\n"
        "precision: bf16\ndevice: cpu\n")
    runner = CliRunner()
    trained = runner.invoke(app, [
        "pretrain", "--profile", "ci", "--config", str(settings),
        "--artifacts-root", str(tmp_path), "--max-steps", "2"])
    assert trained.exit_code == 0, trained.output
    printed = float(re.search(r"= ([0-9.]+) bits/byte",
                              trained.output).group(1))
    run = folder / "checkpoints" / "pretrain"
    logged = [r for r in read_log(run / "log.jsonl")
              if r["kind"] == "eval"][-1]["val_bits_per_byte"]
    again = pretrain(load_config(settings, "ci", resume=True, max_steps=2,
                                 artifacts_root=str(tmp_path)))
    assert again.steps == 2
    model, _ = load_model(run)
    chapter_9 = evaluate_split(
        model, read_split(folder / "tokens" / "storyworld", "val"),
        token_byte_lengths(tokenizer),
        checkpoint_meta(run)["train_config"]["eval_tokens"])
    report = evaluate_checkpoint(folder, EvalSettings(
        questions=4, samples=1, sample_tokens=4))
    command = runner.invoke(app, ["eval", "--profile", "ci",
                                  "--artifacts-root", str(tmp_path)])
    assert command.exit_code == 0, command.output
    shown = json.loads(command.output[: command.output.rindex("}") + 1])
    figures = {"log": logged, "pretrain": again.val_bits_per_byte,
               "chapter 10": chapter_9.bits_per_byte,
               "report": report["storyworld"]["bits_per_byte"],
               "scratchllm eval": shown["storyworld"]["bits_per_byte"]}
    assert len(set(figures.values())) == 1, figures
    assert printed == round(logged, 4)
    assert chapter_9.tokens == 300


def test_evaluate_checkpoint_report(artifacts: Path) -> None:
    from scratchllm.eval.report import (EvalSettings, evaluate_checkpoint,
                                        write_report)

    settings = EvalSettings(val_tokens=500, questions=8, samples=3,
                            sample_tokens=20)
    report = evaluate_checkpoint(artifacts / "ci", settings)
    story = report["storyworld"]
    assert story["tokens"] == 500
    assert story["gap_bits_per_byte"] > 0
    assert story["bits_per_byte"] < story["uniform_bits_per_byte"] * 1.5
    assert report["story_choice"]["questions"] == 8
    assert report["story_choice"]["chance"] == 0.25
    assert report["samples"]["count"] == 3
    path = write_report(report, artifacts / "out")
    assert json.loads(path.read_text()) == report


def test_report_puts_context_free_baselines_beside_chance(
        artifacts: Path, tokenizer, tiny_model) -> None:
    from scratchllm.cli import app
    from scratchllm.eval.multiple_choice import (
        Unigram, context_free_scorers, evaluate_choices, evaluate_scorer,
        paired_difference_interval)
    from scratchllm.eval.report import EVAL_PRESETS
    from scratchllm.tokenizer.shards import read_split

    folder = artifacts / "ci"
    result = CliRunner().invoke(app, [
        "eval", "--profile", "ci", "--artifacts-root", str(artifacts),
        "--output", str(artifacts / "cli")])
    assert result.exit_code == 0, result.output
    assert '"baselines"' in result.output and '"unigram"' in result.output
    choice = json.loads((artifacts / "cli" / "report.json").read_text())[
        "story_choice"]
    assert set(choice["baselines"]) == {"unigram", "no_context"}
    records = [json.loads(line) for line in (
        folder / "data" / "storyworld" / "val.jsonl").read_text().split("\n")
        if line]
    questions = story_questions(records, EVAL_PRESETS["ci"].questions)
    unigram = Unigram.fit(read_split(folder / "tokens" / "storyworld",
                                     "train"), tokenizer.vocab_size)
    model = evaluate_choices(tiny_model, tokenizer, questions)
    assert choice["accuracy"] == model.accuracy
    assert choice["chance"] == 0.25
    for name, scorer in context_free_scorers(tiny_model, tokenizer,
                                             unigram).items():
        baseline = evaluate_scorer(scorer, questions)
        figures = choice["baselines"][name]
        assert figures["accuracy"] == baseline.accuracy
        assert figures["interval_95"] == list(baseline.interval)
        assert figures["model_minus_baseline"] == pytest.approx(
            model.accuracy - baseline.accuracy)
        assert figures["model_minus_baseline_interval_95"] == list(
            paired_difference_interval(model.hits, baseline.hits))


def test_cli_generate_and_its_errors(artifacts: Path) -> None:
    from scratchllm.cli import app

    runner = CliRunner()
    common = ["--profile", "ci", "--artifacts-root", str(artifacts)]
    result = runner.invoke(app, ["generate", "Tom has", "--max-new-tokens",
                                 "5", "--temperature", "0", *common])
    assert result.exit_code == 0, result.output
    assert result.output.startswith("Tom has")
    for arguments, message in [
        (["", *common], "the prompt is empty"),
        (["<|system|>", *common], "unknown special token"),
        (["hi", "--max-new-tokens", "0", *common],
         "max_new_tokens must be at least 1"),
        (["Tom " * 80, *common], "shorten it to at most 63 tokens"),
        ([*common], "give a PROMPT, or --interactive"),
        (["hi", "--profile", "nowhere", "--artifacts-root",
          str(artifacts)], "no checkpoint at"),
    ]:
        result = runner.invoke(app, ["generate", *arguments])
        assert result.exit_code == 1, result.output
        assert message in result.output, result.output
    result = runner.invoke(app, ["generate", "-i", *common],
                           input="Tom\n\nLily\n")
    assert result.exit_code == 0, result.output
    assert "the prompt is empty" in result.output
