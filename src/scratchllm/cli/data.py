"""``scratchllm data``: prepare, audit, sample and benchmark datasets.

Hand-written (never tangled): a thin layer over ``scratchllm.data``, the
package tangled from chapter 2 (book/02_data.md).
"""

from __future__ import annotations

import json
import random
import time
from collections import Counter
from pathlib import Path
from typing import Any, Optional

import typer

from scratchllm.cli.errors import (check_input_folder, check_output_folder,
                                   fail)

#: StoryWorld stories per profile, as in the chapter's SCALE table.
PROFILE_STORIES = {"ci": 4_000, "laptop": 25_000, "gpu": 100_000,
                   "cluster": 400_000}
SOURCES = ("storyworld", "crawl", "shakespeare", "local", "hf")


def _source(kind: str, documents: int, seed: int, paths: list[Path],
            license: Optional[str], name: str, split: str,
            limit: Optional[int]) -> tuple[Any, str, list[dict[str, Any]]]:
    """(documents, dataset name, provenance entries) for one source."""
    from scratchllm.data.crawl import Crawl
    from scratchllm.data.sources import (hf_documents, local_documents,
                                         shakespeare_documents)
    from scratchllm.data.storyworld import StoryWorld

    if kind == "storyworld":
        entry = {"name": "storyworld", "license": StoryWorld.license,
                 "seed": seed, "documents": documents,
                 "generator": "scratchllm.data.storyworld.StoryWorld"}
        return StoryWorld(seed).documents(documents), "storyworld", [entry]
    if kind == "crawl":
        entry = {"name": "crawl", "license": Crawl.license, "seed": seed,
                 "documents": documents,
                 "generator": "scratchllm.data.crawl.Crawl"}
        return Crawl(seed).documents(documents), "crawl", [entry]
    if kind == "shakespeare":
        if len(paths) != 1:
            raise typer.BadParameter(
                "give the path of input.txt once, e.g. --path "
                "../shared/data/tinyshakespeare/input.txt")
        entry = {"name": "tinyshakespeare", "license": "public-domain",
                 "path": str(paths[0]), "sha256": _sha256(paths[0])}
        return shakespeare_documents(paths[0]), "shakespeare", [entry]
    if kind == "local":
        if not paths or not license:
            raise typer.BadParameter("local needs --path (one or more) "
                                     "and --license")
        entries = [{"name": "local", "license": license, "path": str(p),
                    "sha256": _sha256(p)} for p in paths]
        return local_documents(paths, license), "local", entries
    if kind == "hf":
        docs = hf_documents(name, split, license=license, limit=limit)
        entry = {"name": name, "license": license or _hf_license(name),
                 "url": f"https://huggingface.co/datasets/{name}",
                 "split": split, "limit": limit}
        return docs, name.replace("/", "--"), [entry]
    raise typer.BadParameter(f"unknown source {kind!r}; choose one of "
                             f"{', '.join(SOURCES)}")


def _hf_license(name: str) -> str:
    from scratchllm.data.sources import HF_DATASETS

    return HF_DATASETS.get(name, ("", None, ""))[2]


def _sha256(path: Path) -> str:
    from scratchllm.data.atomic import sha256_file

    if not path.is_file():
        raise typer.BadParameter(f"no such file: {path}")
    return sha256_file(path)


def _record(line: str, where: str) -> dict[str, Any]:
    """One document record of a split file (``where`` names the line)."""
    try:
        record = json.loads(line)
    except ValueError as error:
        fail(f"{where}: not JSON, the file is damaged or truncated "
             f"({error})")
    keys = ("id", "source", "license", "text")
    if not isinstance(record, dict) or any(k not in record for k in keys):
        fail(f"{where}: not a document record (needs {', '.join(keys)})")
    return record


def register(app: typer.Typer) -> None:
    """Add the ``data`` command group to the main app."""
    data = typer.Typer(help="Prepare, audit, sample and benchmark "
                       "datasets (chapter 2).", no_args_is_help=True)
    app.add_typer(data, name="data")

    @data.command()
    def prepare(
        source: str = typer.Argument(..., help="storyworld | crawl | "
                                     "shakespeare | local | hf"),
        profile: str = typer.Option("laptop", help="ci | laptop | gpu | "
                                    "cluster: sets the StoryWorld size "
                                    "and the output folder"),
        documents: Optional[int] = typer.Option(
            None, min=1, help="documents to generate (storyworld, crawl)"),
        seed: int = typer.Option(0, help="seed of generated sources"),
        path: list[Path] = typer.Option([], help="input file(s)"),
        license: Optional[str] = typer.Option(
            None, "--license", help="licence of local / hf sources"),
        name: str = typer.Option("tinystories", help="hf dataset name"),
        split: str = typer.Option("train", help="hf split to read"),
        limit: Optional[int] = typer.Option(None, min=1,
                                            help="hf: at most N"),
        out: Optional[Path] = typer.Option(None, help="output folder"),
        artifacts_root: Path = typer.Option(Path("_build/artifacts")),
        workers: int = typer.Option(1, min=1, help="cleaning processes"),
        val_fraction: float = typer.Option(
            0.05, help="share of documents in val, in (0, 1)"),
    ) -> None:
        """Clean, filter, redact, deduplicate and split a source; write
        train/val JSONL and a manifest."""
        from scratchllm.data.pipeline import (PipelineConfig, run_pipeline,
                                              split_of, storyworld_stats,
                                              write_dataset)

        if profile not in PROFILE_STORIES:
            raise typer.BadParameter(f"unknown profile {profile!r}")
        config = PipelineConfig(val_fraction=val_fraction)
        for file in path:
            if not file.is_file():
                fail(f"{file} is not a file" if file.exists()
                     else f"no such file: {file}")
        count = documents or (PROFILE_STORIES[profile]
                              if source == "storyworld" else 20_000)
        docs, dataset, sources = _source(source, count, seed, path,
                                         license, name, split, limit)
        folder = out or artifacts_root / profile / "data" / dataset
        check_output_folder(folder)
        start = time.perf_counter()
        result = run_pipeline(docs, config, workers=workers)
        sizes = Counter(split_of(doc.id, val_fraction) for doc in result.kept)
        if not sizes["train"] or not sizes["val"]:
            fail(f"{len(result.kept)} of {result.stages[0]['in']} documents "
                 f"survived cleaning: {sizes['train']} for train, "
                 f"{sizes['val']} for val; both need some (nothing written)")
        manifest = write_dataset(result, folder, dataset, sources, config)
        seconds = time.perf_counter() - start
        for stage in manifest["stages"]:
            typer.echo(f"{stage['stage']:>12}: {stage['in']:>8} in "
                       f"{stage['out']:>8} out  {stage['dropped']}")
        if dataset == "storyworld":
            stats = storyworld_stats(folder)
            typer.echo(f"entropy {stats['entropy_bits_per_byte']:.4f} "
                       "bits per byte (val)")
        typer.echo(f"wrote {folder} in {seconds:.1f} s")

    @data.command("audit")
    def audit_command(folder: Path = typer.Argument(
            ..., help="a prepared dataset folder")) -> None:
        """Flag missing licences, PII left, and counts that do not add
        up; exit with status 1 if anything is found."""
        from scratchllm.data.pipeline import audit

        check_input_folder(folder)
        problems = audit(folder)
        for problem in problems:
            typer.echo(f"PROBLEM: {problem}")
        if problems:
            fail(f"{folder}: {len(problems)} problem(s) found")
        typer.echo(f"{folder}: no problems found")

    @data.command()
    def sample(
        what: str = typer.Argument(..., help="a prepared dataset folder, "
                                   "or 'storyworld' / 'crawl' to generate"),
        n: int = typer.Option(3, "-n", min=1, help="how many documents"),
        split: str = typer.Option("val", help="train | val"),
        seed: int = typer.Option(0),
    ) -> None:
        """Print a few documents."""
        if what in ("storyworld", "crawl"):
            docs, _, _ = _source(what, n, seed, [], None, "", "", None)
            for doc in docs:
                text = doc.text.decode("utf-8", errors="replace") \
                    if isinstance(doc.text, bytes) else doc.text
                typer.echo(f"=== {doc.id} {json.dumps(doc.meta)[:200]}\n"
                           f"{text}\n")
            return
        from scratchllm.cli.errors import read_utf8

        if split not in ("train", "val"):
            raise typer.BadParameter(f"--split must be train or val, not "
                                     f"{split!r}")
        path = Path(what) / f"{split}.jsonl"
        if not path.exists():
            fail(f"{path} does not exist; prepare the dataset first")
        records = [_record(line, f"{path}:{number}") for number, line in
                   enumerate(read_utf8(path).splitlines(), 1)]
        for record in random.Random(seed).sample(records,
                                                 min(n, len(records))):
            typer.echo(f"=== {record['id']} ({record['source']}, "
                       f"{record['license']})\n{record['text']}\n")

    @data.command()
    def bench(
        documents: int = typer.Option(100_000, min=1,
                                      help="crawl documents"),
        workers: int = typer.Option(2, min=1, help="cleaning processes"),
        compare: int = typer.Option(
            20_000, min=1, help="documents for the datasketch comparison"),
        seed: int = typer.Option(0),
    ) -> None:
        """Measure the chapter's figures on a large mini crawl."""
        run_bench(documents, workers, compare, seed)


def run_bench(documents: int, workers: int, compare: int,
              seed: int) -> dict[str, Any]:
    """Every figure the chapter promises, printed and returned."""
    from scratchllm.data.clean import decode, normalise
    from scratchllm.data.crawl import (Crawl, pair_scores, pii_scores,
                                       true_clusters)
    from scratchllm.data.pii import find_pii
    from scratchllm.data.pipeline import PipelineConfig, run_pipeline
    from scratchllm.data.storyworld import StoryWorld

    report: dict[str, Any] = {}
    start = time.perf_counter()
    crawl = list(Crawl(seed).documents(documents))
    report["crawl_generation_s"] = time.perf_counter() - start
    size = sum(len(d.text) for d in crawl)
    config = PipelineConfig()
    start = time.perf_counter()
    result = run_pipeline(crawl, config, workers=workers)
    seconds = time.perf_counter() - start
    report.update(documents=documents, megabytes=size / 1e6,
                  workers=workers, pipeline_s=seconds,
                  docs_per_s=documents / seconds,
                  mb_per_s=size / 1e6 / seconds)
    fate = {o.id: o for o in result.dropped}
    passed = [d for d in crawl
              if fate.get(d.id) is None
              or fate[d.id].stage in ("exact_dedup", "near_dedup")]
    exact = [d for d in passed if d.meta["exact_dup_of"]]
    report["exact_recall"] = sum(
        fate.get(d.id) is not None and fate[d.id].stage == "exact_dedup"
        for d in exact) / max(len(exact), 1)
    unique = [d for d in passed if fate.get(d.id) is None
              or fate[d.id].stage == "near_dedup"]
    predicted = [fate[d.id].reason.split(":", 1)[1]
                 if d.id in fate else d.id for d in unique]
    report["near"] = pair_scores(predicted, true_clusters(unique))
    report["pii"] = pii_scores([
        (d.meta["pii"], [(f.kind, f.value) for f in
                         find_pii(normalise(decode(d.text).text))])
        for d in crawl if d.meta["expect"] == "keep"])
    texts = [normalise(decode(d.text).text) for d in unique[:compare]]
    report["datasketch"] = _compare_datasketch(texts, config)
    world = StoryWorld(seed)
    stories = [world.story(i) for i in range(20_000)]
    report["storyworld_bits_per_byte"] = float(
        -sum(s.log2prob for s in stories)
        / sum(len(s.text.encode("utf-8")) for s in stories))
    _print_report(report)
    return report


def _compare_datasketch(texts: list[str], config: Any) -> dict[str, Any]:
    """Candidate-pair agreement and speed, ours against datasketch."""
    import numpy as np
    from datasketch import MinHash, MinHashLSH

    from scratchllm.data.dedup import (Shingler, candidate_pairs, jaccard,
                                       shingle_strings, signatures)

    lsh = config.lsh

    def ours() -> set[tuple[int, int]]:
        h, o = Shingler(lsh.shingle)(texts)
        sig = signatures(h, o, lsh.num_perm, lsh.seed)
        return set(map(tuple, candidate_pairs(sig, lsh.bands,
                                              lsh.rows).tolist()))

    def theirs() -> set[tuple[int, int]]:
        index = MinHashLSH(num_perm=lsh.num_perm,
                           params=(lsh.bands, lsh.rows))
        minhashes = []
        for i, text in enumerate(texts):
            m = MinHash(num_perm=lsh.num_perm, seed=lsh.seed)
            m.update_batch([s.encode("utf-8")
                            for s in shingle_strings(text, lsh.shingle)])
            index.insert(i, m)
            minhashes.append(m)
        return {(min(i, j), max(i, j)) for i, m in enumerate(minhashes)
                for j in index.query(m) if i != j}

    timings: dict[str, list[float]] = {"ours": [], "datasketch": []}
    found: dict[str, set[tuple[int, int]]] = {}
    for _ in range(3):
        for label, function in (("ours", ours), ("datasketch", theirs)):
            start = time.perf_counter()
            found[label] = function()
            timings[label].append(time.perf_counter() - start)
    h, o = Shingler(lsh.shingle)(texts)
    sets = [np.unique(h[o[i]:o[i + 1]]) for i in range(len(texts))]

    def verified(pairs: set[tuple[int, int]]) -> set[tuple[int, int]]:
        return {(i, j) for i, j in pairs
                if jaccard(sets[i], sets[j]) >= lsh.threshold}

    def overlap(a: set, b: set) -> float:
        return len(a & b) / len(a | b) if a | b else 1.0

    ours_s = float(np.median(timings["ours"]))
    theirs_s = float(np.median(timings["datasketch"]))
    return {"documents": len(texts),
            "candidate_agreement": overlap(found["ours"],
                                           found["datasketch"]),
            "verified_agreement": overlap(verified(found["ours"]),
                                          verified(found["datasketch"])),
            "ours_docs_per_s": len(texts) / ours_s,
            "datasketch_docs_per_s": len(texts) / theirs_s,
            "speed_ratio": theirs_s / ours_s}


def _print_report(report: dict[str, Any]) -> None:
    """The bench figures, one per line."""
    echo = typer.echo
    echo(f"pipeline: {report['documents']} documents "
         f"({report['megabytes']:.1f} MB), {report['workers']} workers: "
         f"{report['docs_per_s']:,.0f} docs/s, "
         f"{report['mb_per_s']:.2f} MB/s")
    near = report["near"]
    echo(f"near-dup (Jaccard >= 0.8): precision {near['precision']:.4f}, "
         f"recall {near['recall']:.4f} ({near['true_pairs']} true pairs)")
    echo(f"exact-dup recall: {report['exact_recall']:.4f}")
    for kind, s in report["pii"].items():
        echo(f"PII {kind:>8}: precision {s['precision']:.4f}, recall "
             f"{s['recall']:.4f} ({s['true']} injected)")
    ds = report["datasketch"]
    echo(f"datasketch ({ds['documents']} docs): candidate agreement "
         f"{ds['candidate_agreement']:.3f}, verified agreement "
         f"{ds['verified_agreement']:.3f}; ours "
         f"{ds['ours_docs_per_s']:,.0f} docs/s vs "
         f"{ds['datasketch_docs_per_s']:,.0f} docs/s: ratio "
         f"{ds['speed_ratio']:.1f}")
    echo(f"StoryWorld entropy: {report['storyworld_bits_per_byte']:.4f} "
         "bits per byte")
