"""``scratchllm data``: prepare, audit, sample and benchmark datasets.

Hand-written (never tangled): a thin layer over ``scratchllm.data``, the
package tangled from chapters 2 and 3 (book/02_storyworld.md,
book/03_data.md).
"""

from __future__ import annotations

import json
import random
import time
from collections import Counter
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional

import typer

from scratchllm.cli.errors import (check_input_folder, check_output_folder,
                                   fail)

if TYPE_CHECKING:
    from scratchllm.data.sources import Document

SOURCES = ("storyworld", "crawl", "shakespeare", "local", "hf")


def _source(kind: str, *, documents: int, seed: int,
            paths: Optional[list[Path]] = None,
            license: Optional[str] = None, name: str = "",
            split: str = "train", limit: Optional[int] = None
            ) -> tuple[Iterable[Document], str, list[dict[str, Any]]]:
    """(documents, dataset name, provenance entries) for one source."""
    from scratchllm.data.atomic import sha256_file
    from scratchllm.data.crawl import Crawl
    from scratchllm.data.sources import (hf_documents, local_documents,
                                         shakespeare_documents)
    from scratchllm.data.storyworld import StoryWorld

    paths = paths or []
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
                 "path": str(paths[0]), "sha256": sha256_file(paths[0])}
        return shakespeare_documents(paths[0]), "shakespeare", [entry]
    if kind == "local":
        if not paths or not license:
            raise typer.BadParameter("local needs --path (one or more) "
                                     "and --license")
        entries = [{"name": "local", "license": license, "path": str(p),
                    "sha256": sha256_file(p)} for p in paths]
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
                       "datasets (chapters 2 and 3).", no_args_is_help=True)
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
        from scratchllm.data.pipeline import (PROFILE_STORIES,
                                              PipelineConfig, run_pipeline,
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
        docs, dataset, sources = _source(
            source, documents=count, seed=seed, paths=path,
            license=license, name=name, split=split, limit=limit)
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
            docs, _, _ = _source(what, documents=n, seed=seed)
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
        from scratchllm.data.bench import run_bench

        _print_report(run_bench(documents, workers, compare, seed))


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
