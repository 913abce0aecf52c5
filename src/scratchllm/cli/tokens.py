"""``scratchllm tokens index``: token arrays made elsewhere, indexed for
``pretrain`` (chapter 8; hand-written, never tangled)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from scratchllm.cli.errors import fail


def register(app: typer.Typer) -> None:
    """Add `scratchllm tokens ...` to the main app."""
    tokens_app = typer.Typer(
        help="Token arrays made elsewhere, for pretrain (chapter 8).",
        no_args_is_help=True)
    app.add_typer(tokens_app, name="tokens")

    @tokens_app.command("index")
    def index(
        path: Annotated[Path, typer.Argument(
            help="A raw .bin of little-endian ids or a .npy array.")],
        vocab_size: Annotated[int, typer.Option(
            min=1, help="Vocabulary size: every id must be below it.")],
        dtype: Annotated[Optional[str], typer.Option(
            help="Id type of a .bin: uint16 (default), uint32, int32 or "
            "int64; a .npy has its own.")] = None,
        val_fraction: Annotated[float, typer.Option(
            help="Share of the ids, at the end, kept for validation.")
        ] = 0.1,
        out: Annotated[Optional[Path], typer.Option(
            file_okay=False,
            help="Folder for index.json (default: the array's); point "
            "pretrain's tokens_dir at it.")] = None,
    ) -> None:
        """Check a token array and write the index.json pretrain reads
        (the array is read in place, not copied)."""
        from scratchllm.train.tokens import index_tokens

        if path.is_dir():
            fail(f"{path} is a folder; give a .bin or .npy file")
        written = index_tokens(path, vocab_size, dtype, val_fraction, out)
        splits = {name: entries[0]["tokens"]
                  for name, entries in written["splits"].items()}
        folder = out or path.parent
        typer.echo(f"{written['dtype']} ids, vocabulary {vocab_size:,}: "
                   f"{splits['train']:,} train, {splits['val']:,} val; "
                   f"wrote {folder / 'index.json'}\n"
                   f"train with: scratchllm pretrain --tokens-dir {folder}")
