"""Chapter 3 pipeline: sources, bad input, counts, split, manifest, audit
and the ``scratchllm data`` commands."""

from __future__ import annotations

import json
import os
from dataclasses import replace
from pathlib import Path

import pytest

from scratchllm.data.crawl import Crawl
from scratchllm.data.pipeline import (STAGES, PipelineConfig, audit,
                                      run_pipeline, split_of,
                                      storyworld_stats, write_dataset)
from scratchllm.data.sources import (hf_documents, local_documents,
                                     shakespeare_documents)
from scratchllm.data.storyworld import StoryWorld

STORY = StoryWorld(0).story(0).text


def accounted(result) -> None:
    """Every input document is kept or dropped, and stages chain."""
    table = result.stages
    assert [row["stage"] for row in table] == list(STAGES)
    assert table[0]["in"] == len(result.kept) + len(result.dropped)
    assert table[-1]["out"] == len(result.kept)
    for row in table:
        assert row["in"] - row["out"] == sum(row["dropped"].values())
    for before, after in zip(table, table[1:]):
        assert before["out"] == after["in"]


def test_bad_input_never_crashes_and_every_document_has_a_fate(tmp_path):
    (tmp_path / "a_empty.txt").write_bytes(b"")
    (tmp_path / "b_binary.bin").write_bytes(os.urandom(4096))
    (tmp_path / "c_huge.txt").write_bytes(b"x" * 50_000_000)
    (tmp_path / "d_invalid.txt").write_bytes(
        STORY.encode() + b"\xc3\x28\xff")
    (tmp_path / "e_records.jsonl").write_bytes(
        json.dumps({"text": STORY}).encode() + b"\n{oops\n"
        + json.dumps({"body": "no text field"}).encode() + b"\n"
        + b"\xff\xfe\n" + json.dumps({"text": ""}).encode() + b"\n")
    result = run_pipeline(local_documents(sorted(tmp_path.iterdir()),
                                          license="CC0-1.0"),
                          PipelineConfig(), progress=False)
    accounted(result)
    fates = {o.id: (o.stage, o.reason) for o in result.dropped}
    assert fates["local:a_empty.txt"] == ("decode", "empty")
    assert fates["local:b_binary.bin"] == ("decode", "invalid_utf8")
    assert fates["local:c_huge.txt"] == ("decode", "too_long")
    for line in (2, 3, 4):
        assert fates[f"local:e_records.jsonl:{line}"] == (
            "decode", "bad_record")
    assert fates["local:e_records.jsonl:5"] == ("decode", "empty")
    assert fates["local:e_records.jsonl:1"] == (
        "exact_dedup", "duplicate_of:local:d_invalid.txt")
    assert [d.id for d in result.kept] == ["local:d_invalid.txt"]
    assert result.kept[0].text == STORY + "("


def test_pipeline_on_the_crawl_meets_the_targets():
    docs = list(Crawl(1).documents(800))
    result = run_pipeline(docs, PipelineConfig(), progress=False)
    accounted(result)
    fate = {o.id: o for o in result.dropped}
    for doc in docs:
        if doc.meta["exact_dup_of"] or doc.meta["near_dup_of"]:
            assert fate[doc.id].stage in ("exact_dedup", "near_dedup")
        elif doc.meta["expect"] == "drop":
            assert doc.id in fate and "dedup" not in fate[doc.id].stage
        else:
            assert doc.id not in fate, fate[doc.id]
    for doc in result.kept:
        assert "@" not in doc.text or "[EMAIL]" in doc.text
    exact = [d for d in docs if d.meta["exact_dup_of"]]
    assert all(fate[d.id].stage == "exact_dedup" for d in exact)


def test_workers_give_the_same_result():
    docs = list(Crawl(2).documents(300))
    one = run_pipeline(docs, PipelineConfig(), progress=False)
    two = run_pipeline(docs, PipelineConfig(), workers=2, batch_size=64,
                       progress=False)
    assert [d.text for d in one.kept] == [d.text for d in two.kept]
    assert one.stages == two.stages
    assert one.input_sha256 == two.input_sha256


def test_split_is_deterministic_and_proportional():
    ids = [f"doc-{i}" for i in range(20_000)]
    sides = [split_of(i, 0.05) for i in ids]
    assert sides == [split_of(i, 0.05) for i in ids]
    assert 0.045 < sides.count("val") / len(ids) < 0.055
    assert split_of("doc-1", 0.0) == "train"
    assert split_of("doc-1", 1.0) == "val"


def prepared(folder: Path, count: int = 200,
             config: PipelineConfig = PipelineConfig()) -> dict:
    result = run_pipeline(StoryWorld(5).documents(count), config,
                          progress=False)
    return write_dataset(result, folder, "storyworld",
                         [{"name": "storyworld", "license": "CC0-1.0",
                           "seed": 5}], config)


def test_manifest_files_and_stats(tmp_path):
    manifest = prepared(tmp_path)
    assert manifest["inputs"]["documents"] == 200
    assert manifest["config"]["filters"]["min_words"] == 50
    assert manifest["code_version"].startswith("0.")
    splits = manifest["splits"]
    assert splits["train"]["documents"] + splits["val"]["documents"] == 200
    records = [json.loads(line) for line in
               (tmp_path / "val.jsonl").read_text().splitlines()]
    for record in records:
        assert {"id", "text", "source", "license", "log2prob",
                "facts"} <= set(record)
        assert split_of(record["id"], 0.05) == "val"
    stats = storyworld_stats(tmp_path)
    bits = -sum(r["log2prob"] for r in records)
    size = sum(len(r["text"].encode()) for r in records)
    assert stats["entropy_bits_per_byte"] == pytest.approx(bits / size)
    assert stats["documents"] == len(records) and stats["bytes"] == size
    assert json.loads((tmp_path / "stats.json").read_text()) == stats
    again = tmp_path / "again"
    prepared(again)
    assert (again / "train.jsonl").read_bytes() == (
        tmp_path / "train.jsonl").read_bytes()


def test_audit_is_clean_then_flags_each_problem(tmp_path):
    prepared(tmp_path / "ok")
    assert audit(tmp_path / "ok") == []
    assert "no manifest" in audit(tmp_path)[0]
    train = tmp_path / "ok" / "train.jsonl"
    train.write_text(train.read_text() + json.dumps(
        {"id": "x", "text": "call 555-123-4567", "source": "s",
         "license": ""}) + "\n")
    problems = audit(tmp_path / "ok")
    assert any("differs from the manifest" in p for p in problems)
    assert any("without a licence" in p for p in problems)
    assert any("phone PII left" in p for p in problems)
    leaky = replace(PipelineConfig(), redact_pii=False)
    result = run_pipeline(Crawl(0).documents(200), leaky, progress=False)
    write_dataset(result, tmp_path / "leaky", "crawl",
                  [{"name": "crawl", "license": None}], leaky)
    problems = audit(tmp_path / "leaky")
    assert "source 'crawl' has no licence" in problems
    assert any("email PII left" in p for p in problems)


def test_local_sources(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    (tmp_path / "a.txt").write_text("hello")
    (tmp_path / "b.jsonl").write_text(
        '{"id": "x1", "text": "one", "lang": "en"}\n[1, 2]\n')
    pq.write_table(pa.table({"text": ["p1", None], "n": [1, 2]}),
                   tmp_path / "c.parquet")
    docs = list(local_documents(
        [tmp_path / n for n in ("a.txt", "b.jsonl", "c.parquet")],
        license="MIT"))
    assert [d.id for d in docs] == ["local:a.txt", "x1", "local:b.jsonl:2",
                                    "local:c.parquet:1",
                                    "local:c.parquet:2"]
    assert docs[0].text == b"hello" and docs[1].meta == {"lang": "en"}
    assert "bad record" in docs[2].meta["error"]
    assert docs[3].text == "p1" and docs[4].text == ""
    assert all(d.license == "MIT" for d in docs)
    with pytest.raises(FileNotFoundError):
        list(local_documents([tmp_path / "missing.txt"], license="MIT"))
    with pytest.raises(ValueError, match="no column"):
        list(local_documents([tmp_path / "c.parquet"], license="MIT",
                             text_field="body"))


def test_hf_source_on_local_json_and_parquet(tmp_path, monkeypatch):
    import pyarrow as pa
    import pyarrow.parquet as pq

    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    rows = [{"text": f"Story number {i}."} for i in range(5)]
    (tmp_path / "tiny.jsonl").write_text(
        "\n".join(json.dumps(r) for r in rows) + "\n")
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "tiny.parquet")
    for builder, name in (("json", "tiny.jsonl"),
                          ("parquet", "tiny.parquet")):
        docs = list(hf_documents(builder, data_files=str(tmp_path / name),
                                 license="CC0-1.0", limit=3))
        assert [d.text for d in docs] == [r["text"] for r in rows[:3]]
        assert docs[0].id == f"{builder}:train:0"
        assert docs[0].source == builder and docs[0].license == "CC0-1.0"
    with pytest.raises(ValueError, match="licence"):
        next(hf_documents("json", data_files=str(tmp_path / "tiny.jsonl")))


def test_shakespeare_by_path(shared_data):
    docs = list(shakespeare_documents(
        shared_data("tinyshakespeare/input.txt")))
    assert docs[0].text.startswith("First Citizen:")
    assert all(d.license == "public-domain" for d in docs)
    assert sum(len(d.text) for d in docs) > 1_000_000


def test_command_line(tmp_path):
    from typer.testing import CliRunner

    from scratchllm.cli import app

    runner = CliRunner()
    out = tmp_path / "sw"
    result = runner.invoke(app, ["data", "prepare", "storyworld",
                                 "--documents", "150", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "entropy" in result.output
    assert (out / "stats.json").is_file()
    result = runner.invoke(app, ["data", "audit", str(out)])
    assert result.exit_code == 0 and "no problems" in result.output
    result = runner.invoke(app, ["data", "audit", str(tmp_path)])
    assert result.exit_code == 1 and "no manifest" in result.output
    result = runner.invoke(app, ["data", "sample", str(out), "-n", "1"])
    assert result.exit_code == 0 and "storyworld-0-" in result.output
    result = runner.invoke(app, ["data", "sample", "crawl", "-n", "2"])
    assert result.exit_code == 0 and "crawl-0-1" in result.output
    result = runner.invoke(app, ["data", "prepare", "local"])
    assert result.exit_code != 0


def test_bench_scores_a_small_crawl_and_agrees_with_datasketch():
    from scratchllm.data.bench import run_bench

    report = run_bench(400, workers=1, compare=200, seed=0,
                       entropy_stories=200)
    assert report["documents"] == 400 and report["docs_per_s"] > 0
    assert report["exact_recall"] == 1.0
    assert report["near"]["true_pairs"] > 0
    assert report["near"]["precision"] == report["near"]["recall"] == 1.0
    assert set(report["pii"]) == {"address", "card", "email", "ipv4",
                                  "phone"}
    assert all(s["recall"] == 1.0 for s in report["pii"].values())
    ds = report["datasketch"]
    assert ds["documents"] == 200 and ds["verified_agreement"] == 1.0
    assert 0 < ds["candidate_agreement"] < 1 and ds["speed_ratio"] > 0
    assert 0.1 < report["storyworld_bits_per_byte"] < 0.3


def test_bench_comparison_counts_verified_pairs_only():
    from scratchllm.data.bench import overlap, shingle_sets, verified
    from scratchllm.data.dedup import LSHConfig

    text = " ".join(f"word{i}" for i in range(60))
    texts = [text, text.replace("word7 ", "other "), "nothing alike here"]
    sets = shingle_sets(texts, LSHConfig().shingle)
    pairs = {(0, 1), (0, 2), (1, 2)}
    assert verified(pairs, sets, 0.8) == {(0, 1)}
    assert overlap(set(), set()) == 1.0
    assert overlap({(0, 1)}, {(0, 1), (1, 2)}) == 0.5


def test_corpus_entropy_is_a_ratio_of_sums():
    from scratchllm.data.storyworld import Story, corpus_entropy

    stories = [Story("a", "ab", -2.0, {}), Story("b", "abcdef", -2.0, {})]
    rate, stderr = corpus_entropy(stories)
    assert rate == 4.0 / 8  # not the mean of 1.0 and 1/3
    assert stderr > 0


def test_bench_command_prints_every_figure():
    from typer.testing import CliRunner

    from scratchllm.cli import app

    result = CliRunner().invoke(app, ["data", "bench", "--documents", "300",
                                      "--compare", "100", "--workers", "1"])
    assert result.exit_code == 0, result.output
    for figure in ("docs/s", "near-dup", "exact-dup recall", "PII    email",
                   "datasketch (100 docs)", "StoryWorld entropy"):
        assert figure in result.output
