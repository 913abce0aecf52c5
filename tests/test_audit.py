"""Appendix A: ``scratchllm audit``, the compliance audit."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from scratchllm.cli import app
from scratchllm.compliance.audit import run_audit, write_audit
from scratchllm.compliance.checks import find_contamination, mask

runner = CliRunner()
EMAIL = "jane.doe@example.com"


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> Path:
    """A small profile folder made the book's way: a prepared StoryWorld
    dataset with its manifest, a tokenizer, a checkpoint, a report."""
    from scratchllm.data.pipeline import (PipelineConfig, run_pipeline,
                                          write_dataset)
    from scratchllm.data.storyworld import StoryWorld
    from scratchllm.model.config import ModelConfig
    from scratchllm.model.gpt import GPT
    from scratchllm.tokenizer import train_bpe
    from scratchllm.train.checkpoint import save_checkpoint

    artifacts = tmp_path_factory.mktemp("artifacts") / "ci"
    config = PipelineConfig(val_fraction=0.2)
    result = run_pipeline(StoryWorld(0).documents(150), config,
                          progress=False)
    source = {"name": "storyworld", "license": "CC0-1.0", "seed": 0,
              "documents": 150,
              "generator": "scratchllm.data.storyworld.StoryWorld"}
    data = artifacts / "data" / "storyworld"
    write_dataset(result, data, "storyworld", [source], config)
    texts = [json.loads(line)["text"] for line in
             (data / "train.jsonl").read_text().splitlines()]
    tokenizer = train_bpe(texts, 300)
    tokenizer.save(artifacts / "tokenizer")
    torch.manual_seed(0)
    model = GPT(ModelConfig(vocab_size=tokenizer.vocab_size,
                            context_length=32, d_model=16, n_layers=1,
                            n_heads=2, n_kv_heads=1, ffn_hidden=32))
    train = {"dataset": "storyworld", "batch_size": 2,
             "context_length": 32, "precision": "fp32"}
    save_checkpoint(artifacts / "checkpoints" / "pretrain", 3,
                    model.state_dict(), {"state": {}, "param_groups": []},
                    {"model_config": model.config.to_dict(),
                     "train_config": train})
    report = {"storyworld": {"loss": 5.0, "bits_per_byte": 2.5,
                             "source_entropy_bits_per_byte": 0.2},
              "story_choice": {"questions": 8, "accuracy": 0.5,
                               "interval_95": [0.2, 0.8], "chance": 0.25},
              "samples": {"acceptance": 0.1}}
    (artifacts / "eval" / "report").mkdir(parents=True)
    (artifacts / "eval" / "report" / "report.json").write_text(
        json.dumps(report))
    return artifacts


@pytest.fixture()
def artifacts(built: Path, tmp_path: Path) -> Path:
    """A fresh copy of the small profile folder, free to spoil."""
    copy = tmp_path / "ci"
    shutil.copytree(built, copy)
    return copy


def problems(artifacts: Path) -> list[str]:
    return [str(p) for p in run_audit(artifacts, samples=2).problems]


def test_the_audit_passes_on_artifacts_made_the_books_way(
    artifacts: Path,
) -> None:
    report = run_audit(artifacts, samples=2)
    assert report.problems == []
    assert report.corpus.texts > 100 and report.samples.texts == 2
    assert [c.eval_set for c in report.contamination] == [
        "storyworld/val.jsonl"]
    card = report.card
    for expected in ("## Intended use", "## Limitations", "CC0-1.0",
                     "`scratchllm.data.storyworld.StoryWorld`",
                     "| bits per byte | 2.5000 |", "3 steps",
                     "about 192 tokens of `storyworld`"):
        assert expected in card
    paths = write_audit(report, artifacts / "audit")
    assert [p.name for p in paths] == ["report.json", "MODEL_CARD.md"]
    assert json.loads(paths[0].read_text())["problems"] == []
    assert not list((artifacts / "audit").glob(".*"))  # no temp files


def test_an_unlicensed_source_fails_with_one_clear_line(
    artifacts: Path,
) -> None:
    path = artifacts / "data" / "storyworld" / "manifest.json"
    manifest = json.loads(path.read_text())
    manifest["sources"].append({"name": "scraped-forum",
                                "url": "https://forum.example.org"})
    path.write_text(json.dumps(manifest))
    assert problems(artifacts) == [
        "licence: storyworld: source 'scraped-forum' has no licence"]
    result = runner.invoke(app, ["audit", str(artifacts), "--samples", "1"])
    assert result.exit_code == 1
    assert ("problem: licence: storyworld: source 'scraped-forum' has no "
            "licence") in result.output
    assert "**none**" in (artifacts / "audit" / "MODEL_CARD.md").read_text()


def test_a_source_that_cannot_be_traced_is_a_problem(
    artifacts: Path,
) -> None:
    path = artifacts / "data" / "storyworld" / "manifest.json"
    manifest = json.loads(path.read_text())
    del manifest["sources"][0]["seed"]
    path.write_text(json.dumps(manifest))
    assert problems(artifacts) == [
        "provenance: storyworld: source 'storyworld' has no provenance "
        "record (generator and seed, path and sha256, or url)"]


def test_a_pii_leak_in_the_corpus_is_found_and_never_shown(
    artifacts: Path,
) -> None:
    train = artifacts / "data" / "storyworld" / "train.jsonl"
    with train.open("a") as handle:
        handle.write(json.dumps({"id": "x", "license": "CC0-1.0",
                                 "text": f"Write to {EMAIL} now."}) + "\n")
    found = problems(artifacts)
    assert "pii: 1 email in the corpus (left after redaction), e.g. " \
        "j***.***@*******.*** (storyworld/train.jsonl:" in found[-1]
    assert any("differs from the manifest" in p for p in found)
    result = runner.invoke(app, ["audit", str(artifacts), "--samples", "1"])
    assert result.exit_code == 1
    assert EMAIL not in result.output
    assert EMAIL not in (artifacts / "audit" / "report.json").read_text()
    assert EMAIL not in (artifacts / "audit" / "MODEL_CARD.md").read_text()


def test_pii_in_model_samples_is_found(artifacts: Path) -> None:
    log = artifacts / "checkpoints" / "pretrain" / "log.jsonl"
    log.write_text(json.dumps({"kind": "sample", "step": 3,
                               "text": "Call 555-123-4567 today."}) + "\n")
    assert problems(artifacts) == [
        "pii: 1 phone in model samples, e.g. 5**-***-**** "
        "(pretrain/log.jsonl:1)"]


def test_an_evaluation_set_seen_in_training_is_found(
    artifacts: Path,
) -> None:
    data = artifacts / "data" / "storyworld"
    first = json.loads((data / "train.jsonl").read_text().splitlines()[0])
    words = first["text"].split()
    words[len(words) // 2] = "zebra"  # a near duplicate, not an exact one
    questions = artifacts / "eval" / "questions" / "leaked.jsonl"
    questions.parent.mkdir(parents=True)
    questions.write_text(
        json.dumps({"question": first["text"]}) + "\n"
        + json.dumps({"question": " ".join(words)}) + "\n"
        + json.dumps({"question": "A fresh question about a ship.",
                      "choices": ["yes", "no"]}) + "\n")
    report = run_audit(artifacts, samples=1)
    leaked = report.contamination[-1]
    assert leaked.eval_set == "questions/leaked.jsonl"
    assert leaked.documents == 3 and leaked.exact == [
        "questions/leaked.jsonl:1"]
    assert {pair[0] for pair in leaked.near} == {
        "questions/leaked.jsonl:1", "questions/leaked.jsonl:2"}
    assert leaked.fraction == pytest.approx(2 / 3)
    assert [str(p) for p in report.problems] == [
        "contamination: questions/leaked.jsonl: 1 exact and 2 near "
        "duplicates in the training data (66.7%)"]


def test_near_duplicates_need_one_document_on_each_side() -> None:
    story = ("the little robot found a shiny red ball in the garden and "
             "took it home to show his best friend the old cat who lived "
             "under the stairs of a yellow house near the river where "
             "children played every sunny afternoon with kites and boats "
             "until their mothers called them back for a warm supper")
    training = [("t:1", story), ("t:2", story + " again")]
    evaluation = [("e:1", "a completely different tale about ships "
                   "sailing on the wide blue sea at night"),
                  ("e:2", story.replace("red", "blue"))]
    found = find_contamination("e", evaluation, training)
    assert found.exact == []
    assert [(e, t) for e, t, _ in found.near] == [("e:2", "t:1")]
    assert found.near[0][2] >= 0.8


@pytest.mark.parametrize("spoil, expected", [
    ("eval", "results: no eval/report/report.json"),
    ("checkpoints", "model: no trained model in"),
    ("data", "provenance: no datasets in"),
])
def test_missing_pieces_are_problems(artifacts: Path, spoil: str,
                                     expected: str) -> None:
    shutil.rmtree(artifacts / spoil)
    assert any(p.startswith(expected) for p in problems(artifacts))


def test_a_model_whose_dataset_is_gone_is_a_problem(
    artifacts: Path,
) -> None:
    (artifacts / "data" / "storyworld").rename(
        artifacts / "data" / "renamed")
    assert "provenance: checkpoints/pretrain was trained on 'storyworld', " \
        "which has no data/storyworld/manifest.json" in problems(artifacts)


def test_mask_keeps_the_shape_only() -> None:
    assert mask("jane.doe@example.com") == "j***.***@*******.***"
    assert mask("4111 1111 1111 1111") == "4*** **** **** ****"


@pytest.mark.parametrize("arguments, message", [
    (["/no/such/folder"], "error: no artifacts folder at /no/such/folder"),
    (["{tmp}", "--samples", "-1"], "error: --samples must be 0 or more"),
])
def test_bad_input_gives_one_error_line(
    tmp_path: Path, arguments: list[str], message: str
) -> None:
    arguments = [a.replace("{tmp}", str(tmp_path)) for a in arguments]
    result = runner.invoke(app, ["audit", *arguments])
    assert result.exit_code == 1
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(message)


@pytest.mark.slow
def test_the_books_own_ci_artifacts_pass(root: Path, tmp_path: Path) -> None:
    artifacts = root / "_build" / "artifacts" / "ci"
    if not (artifacts / "eval" / "report" / "report.json").is_file():
        pytest.skip("execute chapters 3, 4, 8 and 10 on the ci profile first")
    result = runner.invoke(app, ["audit", str(artifacts), "--samples", "4",
                                 "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert "no problems found" in result.output


def test_a_fine_tuned_run_may_record_its_dataset_and_tokenizer(
    artifacts: Path,
) -> None:
    """A second run (say chapter 11's) with a top-level `dataset` and its
    own tokenizer folder is traced and sampled like pretraining."""
    from scratchllm.model.config import ModelConfig
    from scratchllm.model.gpt import GPT
    from scratchllm.train.checkpoint import load_checkpoint, save_checkpoint

    config = load_checkpoint(artifacts / "checkpoints" / "pretrain").meta[
        "model_config"]
    weights = GPT(ModelConfig.from_dict(config)).state_dict()
    run = artifacts / "checkpoints" / "sft"
    save_checkpoint(run, 1, weights, {"state": {}, "param_groups": []},
                    {"model_config": config, "dataset": "storyworld"})
    shutil.copytree(artifacts / "tokenizer", run / "tokenizer")
    report = run_audit(artifacts, samples=2)
    assert report.problems == []
    assert report.samples.texts == 4  # two from each model
    save_checkpoint(run, 2, weights, {"state": {}, "param_groups": []},
                    {"model_config": config})
    assert problems(artifacts) == [
        "provenance: checkpoints/sft does not record the dataset it was "
        "trained on"]


def test_a_reward_model_is_sampled_through_its_language_head(
    artifacts: Path,
) -> None:
    """Chapter 12's reward model (a GPT with a value head) does not load
    as a plain GPT; the audit samples it all the same."""
    from scratchllm.align.reward import RewardModel
    from scratchllm.model.config import ModelConfig
    from scratchllm.train.checkpoint import load_checkpoint, save_checkpoint

    meta = load_checkpoint(artifacts / "checkpoints" / "pretrain").meta
    model = RewardModel(ModelConfig.from_dict(meta["model_config"]))
    save_checkpoint(artifacts / "checkpoints" / "reward", 1,
                    model.state_dict(), {"state": {}, "param_groups": []},
                    dict(meta))
    report = run_audit(artifacts, samples=2)
    assert report.problems == []
    assert report.samples.texts == 4  # two from each model
