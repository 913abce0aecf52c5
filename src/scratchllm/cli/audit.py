"""``scratchllm audit``: the compliance audit of the book's appendix A
(hand-written, never tangled: it parses, calls
``scratchllm.compliance.audit`` and prints)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from scratchllm.cli.errors import fail



def register(app: typer.Typer) -> None:
    """Add ``scratchllm audit`` to the main app."""

    @app.command()
    def audit(
        artifacts: Annotated[Path, typer.Argument(
            help="A profile's artifact folder, e.g. _build/artifacts/ci.")],
        samples: Annotated[int, typer.Option(
            help="Stories to sample from each model for the PII scan.")
        ] = 16,
        seed: Annotated[int, typer.Option(help="Sampling seed.")] = 0,
        out: Annotated[Optional[Path], typer.Option(
            help="Where to write report.json and MODEL_CARD.md "
            "(default: ARTIFACTS/audit).")] = None,
    ) -> None:
        """Check licences and provenance, scan the corpus and model
        samples for PII, look for evaluation sets in the training data,
        and write a model card; exit 1 with one line per problem."""
        from scratchllm.compliance.audit import run_audit, write_audit

        if samples < 0:
            fail(f"--samples must be 0 or more, got {samples}")
        if not artifacts.is_dir():
            fail(f"no artifacts folder at {artifacts}: give a profile's "
                 "folder, e.g. _build/artifacts/ci")
        if not any((artifacts / part).exists()
                   for part in ("data", "checkpoints")):
            fail(f"{artifacts} holds no artifacts (no data/ or "
                 "checkpoints/): give a profile's folder, e.g. "
                 "_build/artifacts/ci")
        try:
            report = run_audit(artifacts, samples=samples, seed=seed)
            written = write_audit(report, out or artifacts / "audit")
        except (OSError, ValueError, KeyError) as error:
            fail(f"{type(error).__name__}: {error}")
        corpus, sampled = report.corpus, report.samples
        typer.echo(f"PII in the corpus: {corpus.total} in "
                   f"{corpus.texts:,} documents "
                   f"{dict(sorted(corpus.counts.items())) or ''}")
        typer.echo(f"PII in model samples: {sampled.total} in "
                   f"{sampled.texts:,} samples "
                   f"{dict(sorted(sampled.counts.items())) or ''}")
        for found in report.contamination:
            typer.echo(f"contamination of {found.eval_set}: "
                       f"{len(found.exact)} exact, {len(found.near)} near "
                       f"of {found.documents} documents")
        for path in written:
            typer.echo(f"wrote {path}")
        for problem in report.problems:
            typer.secho(f"problem: {problem}", fg=typer.colors.RED,
                        err=True)
        if report.problems:
            raise typer.Exit(1)
        typer.echo(f"{artifacts}: no problems found")
