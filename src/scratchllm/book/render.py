"""Render the executed notebooks to HTML and PDF with Jupyter Book 1.x.

Nothing is executed here.  The sources are staged in ``_build/stage``: the
executed notebooks take the place of the chapters' Markdown, each chapter
page gets links to its downloads, and the roadmap is generated from the
chapters' front matter and the measured timings.

The staged pages are trimmed for the reader (the downloads keep every
line): the tangler's ``#| export`` directives and the ``glue(...)`` calls
that only hand numbers to the prose are not printed, progress bars keep
their final state, and the first appendix starts LaTeX's appendix
numbering (A, B, ...).
"""

from __future__ import annotations

import ast
import io
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

from scratchllm.book import roadmap
from scratchllm.book.chapters import BookError, Chapter, chapters

MATHJAX = Path("_build/node/node_modules/mathjax/es5")
HEADING = "# "
#: A tangler directive line (``#| export scratchllm.x``).
DIRECTIVE = re.compile(r"^#\|.*(\n|$)", re.MULTILINE)
#: Text a later carriage return overwrites on the same line.
OVERWRITTEN = re.compile(r"[^\n]*\r(?=[^\n])")
#: Starts LaTeX's appendix numbering; HTML ignores it.
APPENDIX_CELL = "```{raw} latex\n\\appendix\n```"


def write_if_changed(path: Path, data: bytes) -> None:
    """Write ``data`` unless the file already holds it (keeps mtimes, so
    Sphinx rebuilds only what changed)."""
    if path.is_file() and path.read_bytes() == data:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def copy_tree(source: Path, target: Path, skip: set[Path]) -> None:
    """Copy a folder file by file, leaving out ``skip``."""
    for path in sorted(source.rglob("*")):
        if path.is_file() and path not in skip:
            write_if_changed(target / path.relative_to(source),
                             path.read_bytes())


def downloads_cell(chapter: Chapter) -> dict:
    """A Markdown cell (HTML only) linking the chapter's downloads."""
    import nbformat

    stem = chapter.stem
    links = " · ".join([
        f"{{download}}`notebook </downloads/{stem}.ipynb>`",
        f"{{download}}`executed notebook </downloads/{stem}.executed.ipynb>`",
        f"{{download}}`Python script </downloads/{stem}.py>`",
    ])
    return nbformat.v4.new_markdown_cell(
        f"```{{only}} html\n**Downloads:** {links}\n```"
    )


def exercise_notebooks(root: Path) -> list[Path]:
    """The exercise notebooks, ``exercises/NN_slug.md``, in order."""
    return sorted((root / "exercises").glob("[0-9][0-9]_*.md"))


def checks_zip(checks: Path) -> bytes:
    """The ``checks`` package as a zip, byte-identical for the same files
    (fixed dates), so a learner can run a downloaded exercise notebook."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(checks.rglob("*.py")):
            if "__pycache__" in path.parts:
                continue
            name = f"checks/{path.relative_to(checks).as_posix()}"
            info = zipfile.ZipInfo(name, date_time=(2026, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, path.read_bytes())
    return buffer.getvalue()


def write_exercise_downloads(root: Path, downloads: Path) -> list[Path]:
    """Write the clean ``.ipynb`` and the ``.py`` script of every exercise
    notebook, and ``checks.zip``, into ``downloads``; return the paths."""
    import jupytext

    written = []
    for source in exercise_notebooks(root):
        try:
            notebook = jupytext.read(source)
        except Exception as error:  # jupytext raises many kinds
            raise BookError(
                f"{source.relative_to(root)}: cannot read: {error}"
            ) from error
        for suffix, fmt in ((".ipynb", "ipynb"), (".py", "py:percent")):
            path = downloads / f"{source.stem}{suffix}"
            text = jupytext.writes(notebook, fmt=fmt)
            write_if_changed(path, text.encode("utf-8"))
            written.append(path)
    checks = root / "exercises" / "checks"
    if checks.is_dir():
        write_if_changed(downloads / "checks.zip", checks_zip(checks))
        written.append(downloads / "checks.zip")
    return written


def exercise_downloads_block(stem: str) -> str:
    """A MyST block (HTML only) linking an exercise page's downloads."""
    links = " · ".join([
        f"{{download}}`notebook </downloads/exercises/{stem}.ipynb>`",
        f"{{download}}`Python script </downloads/exercises/{stem}.py>`",
        "{download}`checks (unzip next to the notebook) "
        "</downloads/exercises/checks.zip>`",
    ])
    return f"```{{only}} html\n**Downloads:** {links}\n```\n"


def staged_exercise(source: Path) -> bytes:
    """An exercise page with its downloads block after its heading."""
    lines = source.read_text(encoding="utf-8").splitlines(keepends=True)
    body = 0  # the first line after the front matter
    if lines and lines[0].rstrip() == "---":
        body = next((i + 1 for i, line in enumerate(lines[1:], start=1)
                     if line.rstrip() == "---"), len(lines))
    inside_code = False
    for index, line in enumerate(lines[body:], start=body):
        if line.startswith("```"):
            inside_code = not inside_code
        elif not inside_code and line.startswith(HEADING):
            block = "\n" + exercise_downloads_block(source.stem)
            lines.insert(index + 1, block)
            break
    return "".join(lines).encode("utf-8")


def is_glue_only(statement: ast.stmt) -> bool:
    """Whether a statement does nothing but ``glue(...)`` (or imports
    ``glue``): a call, or a loop or ``if`` whose body is only such calls."""
    if isinstance(statement, ast.Expr):
        call = statement.value
        return (isinstance(call, ast.Call)
                and isinstance(call.func, ast.Name)
                and call.func.id == "glue")
    if isinstance(statement, ast.ImportFrom):
        return [alias.name for alias in statement.names] == ["glue"]
    if isinstance(statement, (ast.For, ast.If, ast.With)):
        body = statement.body + getattr(statement, "orelse", [])
        return all(is_glue_only(inner) for inner in body)
    return False


def glue_lines(body: list[ast.stmt]) -> set[int]:
    """The (0-based) line numbers of the glue-only statements in ``body``
    and in the blocks nested in it.  A block is never emptied: one that
    holds only glue is kept whole, unless its statement goes as a whole."""
    lines: set[int] = set()
    for statement in body:
        if is_glue_only(statement):
            lines.update(range(statement.lineno - 1,
                               statement.end_lineno or statement.lineno))
            continue
        blocks = [getattr(statement, name, [])
                  for name in ("body", "orelse", "finalbody")]
        blocks += [handler.body
                   for handler in getattr(statement, "handlers", [])]
        for block in blocks:
            if block and not all(is_glue_only(inner) for inner in block):
                lines |= glue_lines(block)
    return lines


def strip_glue(source: str) -> str:
    """The cell's code without its glue-only statements (a cell that does
    not parse, e.g. with IPython magics, is left as it is)."""
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return source
    drop = glue_lines(tree.body)
    if not drop:
        return source
    lines = source.splitlines(keepends=True)
    kept = [line for index, line in enumerate(lines) if index not in drop]
    return "".join(kept).rstrip()


def printed_source(source: str) -> str:
    """A code cell's source as the page prints it: no tangler directive,
    no glue-only statements."""
    return strip_glue(DIRECTIVE.sub("", source))


def collapse_streams(outputs: list) -> list:
    """Merge consecutive stream outputs of the same name and keep what a
    terminal would show after carriage returns: a text progress bar's
    final state.  A stream left blank (a bar that cleared itself) goes."""
    merged: list = []
    for output in outputs:
        if (output.get("output_type") == "stream" and merged
                and merged[-1].get("output_type") == "stream"
                and merged[-1].get("name") == output.get("name")):
            merged[-1]["text"] += output["text"]
        else:
            merged.append(output)
    kept = []
    for output in merged:
        if output.get("output_type") == "stream":
            text = OVERWRITTEN.sub("", output["text"])
            text = re.sub(r"\r+(?=\n|$)", "", text)
            if not text.strip():
                continue
            output["text"] = text
        kept.append(output)
    return kept


# Control characters but \t, \n, \r and ESC (ANSI colours are rendered).
CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1a\x1c-\x1f\x7f]")


def printable(text: str) -> str:
    """`text` with control characters (a tiny model's samples can hold
    them; LaTeX stops on them) written as escapes, e.g. ``\\x06``."""
    return CONTROL.sub(lambda match: f"\\x{ord(match[0]):02x}", text)


def printable_outputs(outputs: list) -> list:
    """The outputs with every text made printable (images untouched)."""
    for output in outputs:
        if isinstance(output.get("text"), str):
            output["text"] = printable(output["text"])
        data = output.get("data", {})
        for kind in ("text/plain", "text/markdown"):
            if isinstance(data.get(kind), str):
                data[kind] = printable(data[kind])
    return outputs


def trim_for_print(notebook) -> None:
    """Trim the code cells of a staged notebook for the reader, in place:
    cells whose code is all trimmed away keep only their outputs."""
    for cell in notebook.cells:
        if cell.cell_type != "code":
            continue
        source = printed_source(cell.source)
        if source != cell.source:
            cell.source = source
            if not source.strip():
                tags = cell.metadata.get("tags", [])
                cell.metadata["tags"] = [*tags, "remove-input"]
        cell.outputs = printable_outputs(
            collapse_streams(cell.get("outputs", [])))


def staged_notebook(chapter: Chapter, executed: Path,
                    first_appendix: bool = False) -> bytes:
    """The executed notebook, trimmed for print, with its downloads cell
    after the heading (and, before it, the start of LaTeX's appendices
    when ``first_appendix``)."""
    import nbformat

    if not executed.is_file():
        raise BookError(
            f"{chapter.path} has not been executed ({executed} is missing):"
            " run `scratchllm book execute` first"
        )
    notebook = nbformat.read(executed, as_version=4)
    for cell in notebook.cells:
        tags = cell.metadata.get("tags", [])
        if "parameters" in tags:  # the injected cell shows what ran
            cell.metadata["tags"] = [*tags, "remove-cell"]
    trim_for_print(notebook)
    for index, cell in enumerate(notebook.cells):
        if cell.cell_type == "markdown" and HEADING in "\n" + cell.source:
            notebook.cells.insert(index + 1, downloads_cell(chapter))
            if first_appendix:
                notebook.cells.insert(
                    index, nbformat.v4.new_markdown_cell(APPENDIX_CELL))
            break
    return nbformat.writes(notebook).encode("utf-8")


def stage(root: Path) -> Path:
    """Assemble the sources Jupyter Book renders; return the stage."""
    build = root / "_build"
    staged = build / "stage"
    book = chapters(root)
    chapter_sources = {chapter.source for chapter in book}
    copy_tree(root / "book", staged / "book", skip=chapter_sources)
    copy_tree(root / "exercises", staged / "exercises",
              skip=set((root / "exercises").rglob("__pycache__/*")))
    for name in ("_config.yml", "_toc.yml"):
        write_if_changed(staged / name, (root / name).read_bytes())
    first_appendix = next(
        (chapter for chapter in book if chapter.meta.get("appendix")), None)
    for chapter in book:
        executed = build / "executed" / f"{chapter.stem}.ipynb"
        write_if_changed(
            staged / "book" / f"{chapter.stem}.ipynb",
            staged_notebook(chapter, executed, chapter is first_appendix),
        )
        downloads = build / "downloads"
        shutil.copyfile(executed, downloads / f"{chapter.stem}.executed.ipynb")
    write_exercise_downloads(root, build / "downloads" / "exercises")
    for source in exercise_notebooks(root):
        write_if_changed(staged / "exercises" / source.name,
                         staged_exercise(source))
    copy_tree(build / "downloads", staged / "downloads", skip=set())
    timings = roadmap.load_timings(build / "timings")
    write_if_changed(staged / "book" / "roadmap.dot",
                     roadmap.dot(book, timings).encode())
    write_if_changed(staged / "book" / "roadmap.md",
                     roadmap.page(book, timings).encode())
    mathjax = root / MATHJAX
    if not mathjax.is_dir():
        raise BookError(
            f"MathJax is missing ({MATHJAX}); it makes maths work offline. "
            "Install it with `make setup` (npm install mathjax@3)."
        )
    target = staged / "mathjax_static" / "mathjax"
    if not target.is_dir():
        shutil.copytree(mathjax, target)
    return staged


def jupyter_book(root: Path, builder: str, full: bool) -> None:
    """Run ``jupyter-book build`` on the stage, warnings as errors."""
    staged = stage(root)
    command = [
        str(Path(sys.executable).with_name("jupyter-book")),
        "build", str(staged), "--path-output", str(root),
        "--builder", builder, "-W", "-n", "--keep-going",
    ]
    if full:
        command.append("--all")
    print("$", " ".join(command), flush=True)
    if subprocess.run(command, cwd=root, check=False).returncode != 0:
        raise BookError(f"jupyter-book {builder} build failed (see above)")


def html(root: Path, full: bool = False) -> Path:
    """Build the HTML book; return ``_build/html/index.html``."""
    jupyter_book(root, "html", full)
    return root / "_build" / "html" / "index.html"


def pdf(root: Path, full: bool = False) -> Path:
    """Build the PDF book with xelatex; return ``_build/latex/book.pdf``."""
    if shutil.which("xelatex") is None:
        raise BookError(
            "xelatex is missing: install TeX Live with `make setup` "
            "(texlive-xetex, texlive-latex-extra, ... from Debian)"
        )
    jupyter_book(root, "pdflatex", full)
    return root / "_build" / "latex" / "book.pdf"
