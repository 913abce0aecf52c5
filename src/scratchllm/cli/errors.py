"""One way for every command to fail: a line ``error: ...``, exit 1.

Hand-written (never tangled). Commands call :func:`fail` for problems they
find themselves. The project's code raises ordinary exceptions for bad
input (a ``ValueError`` from validation, a ``CheckpointError``, a missing
or unreadable file, a file that is not UTF-8 or not JSON, a training
run whose loss became NaN, a hub that cannot be reached);
:class:`GuardedGroup`, the top-level command group, turns those kinds, and
only those, into the same one line. Any other exception is a bug and keeps
its traceback. ``SCRATCHLLM_DEBUG=1`` shows the traceback of the expected
kinds too.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, NoReturn

import typer
from typer.core import TyperGroup

try:  # recent typer releases carry their own copy of click
    from typer._click import Context
    from typer._click.exceptions import NoArgsIsHelpError, UsageError
except ImportError:
    from click import Context
    from click.exceptions import NoArgsIsHelpError, UsageError

DEBUG_VARIABLE = "SCRATCHLLM_DEBUG"


def fail(message: str) -> NoReturn:
    """Print ``error: message`` on stderr and exit with status 1."""
    close_progress_bars()
    line = "; ".join(part.strip() for part in str(message).splitlines()
                     if part.strip()) or "unknown error"
    typer.secho(f"error: {line}", fg=typer.colors.RED, err=True)
    raise typer.Exit(1)


def close_progress_bars() -> None:
    """End the line of any progress bar left open by the failed work, so
    that the error starts a line of its own."""
    from tqdm import tqdm

    for bar in list(getattr(tqdm, "_instances", ())):
        bar.close()


def debugging() -> bool:
    """Whether ``SCRATCHLLM_DEBUG`` asks for full tracebacks."""
    value = os.environ.get(DEBUG_VARIABLE, "").strip().lower()
    return value not in ("", "0", "false", "no")


def expected_errors() -> tuple[type[BaseException], ...]:
    """The exception kinds that mean bad input, not a bug."""
    from scratchllm.data.atomic import FolderLocked
    from scratchllm.train.checkpoint import CheckpointError

    return (ValueError, CheckpointError, FolderLocked, FileNotFoundError,
            FileExistsError, IsADirectoryError, NotADirectoryError,
            PermissionError, json.JSONDecodeError, UnicodeDecodeError,
            FloatingPointError, ConnectionError)


def describe(error: BaseException) -> str:
    """One line that says what went wrong, naming the file if known."""
    if isinstance(error, OSError) and error.filename is not None:
        reason = error.strerror or type(error).__name__
        return f"{error.filename}: {reason}"
    if isinstance(error, UnicodeDecodeError):
        return (f"input is not valid UTF-8 (byte {error.start}: "
                f"{error.reason})")
    lines = str(error).strip().splitlines() or [type(error).__name__]
    return " ".join(line.strip() for line in lines)


class GuardedGroup(TyperGroup):
    """The top-level group: expected errors and usage errors of any
    command become one ``error:`` line."""

    def invoke(self, ctx: Context) -> Any:
        """Run the command; report bad input in one line."""
        try:
            return super().invoke(ctx)
        except NoArgsIsHelpError:
            raise
        except UsageError as error:
            if debugging():
                raise
            where = error.ctx.command_path if error.ctx else "scratchllm"
            close_progress_bars()
            typer.secho(f"error: {error.format_message()} (see `{where} "
                        "--help`)", fg=typer.colors.RED, err=True)
            raise typer.Exit(error.exit_code) from None
        except expected_errors() as error:
            if debugging():
                raise
            fail(describe(error))


def check_output_folder(path: Path) -> None:
    """Refuse, before any work, an output folder that is a file."""
    if path.exists() and not path.is_dir():
        fail(f"{path} exists and is not a folder; choose another --out")


def check_input_folder(path: Path, *needed: str) -> None:
    """Refuse a folder that is missing or lacks the files ``needed``."""
    if not path.is_dir():
        fail(f"{path} is not a folder" if path.exists()
             else f"no such folder: {path}")
    for name in needed:
        if not (path / name).is_file():
            fail(f"{path / name} is missing or not a file")


def read_utf8(path: Path) -> str:
    """A text file's contents; a file that is not UTF-8 is refused."""
    if not path.is_file():
        fail(f"{path} is not a file" if path.exists()
             else f"no such file: {path}")
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as error:
        fail(f"{path} is not UTF-8 text (byte {error.start}: "
             f"{error.reason}); nothing was read. Convert it first, e.g. "
             "with iconv")
