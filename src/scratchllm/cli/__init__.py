"""The ``scratchllm`` command line (hand-written, never tangled).

Each module in this package adds its commands through
``register(app: typer.Typer) -> None``; they are found automatically, so a
chapter's commands live next to each other and not in one long file.
Every command fails the same way, with one line ``error: ...`` and a
non-zero exit (``errors.py``; ``SCRATCHLLM_DEBUG=1`` shows tracebacks).
"""

from __future__ import annotations

import importlib
import pkgutil

import typer

from scratchllm.cli.errors import GuardedGroup

app = typer.Typer(
    help="Build a Large Language Model from Scratch: the book's tools.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    cls=GuardedGroup,
)

for _info in sorted(pkgutil.iter_modules(__path__),
                    key=lambda module: module.name):
    _module = importlib.import_module(f"{__name__}.{_info.name}")
    if hasattr(_module, "register"):
        _module.register(app)
