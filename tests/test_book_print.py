"""The printed page: what the renderer trims, what the PDF check catches,
how the kernels print progress, and what importing the package costs."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from scratchllm.book import pdfcheck, render
from scratchllm.book.chapters import Chapter

SRC = Path(__file__).resolve().parents[1] / "src"


def test_export_directives_and_glue_calls_are_not_printed() -> None:
    source = (
        "#| export scratchllm.demo\n"
        "from myst_nb import glue\n"
        "gap = 1.5\n"
        "glue('gap', gap, display=False)\n"
        "glue('long', gap * 2,\n"
        "     display=False)\n"
        "for name in ['a', 'b']:\n"
        "    glue(name, 1, display=False)\n"
        "print(gap)"
    )
    assert render.printed_source(source) == "gap = 1.5\nprint(gap)"


def test_glue_inside_blocks_goes_but_no_block_is_emptied() -> None:
    nested = ("if ready:\n    x = 1\n    glue('x', x, display=False)\n"
              "else:\n    glue('x', 0)\nprint(x)")
    assert render.printed_source(nested) == (
        "if ready:\n    x = 1\nelse:\n    glue('x', 0)\nprint(x)")
    definition = ("def skip(names):\n    print(names)\n"
                  "    for n in names:\n        glue(n, 0)")
    assert render.printed_source(definition) == (
        "def skip(names):\n    print(names)")


def test_magics_and_other_imports_are_kept() -> None:
    magic = "%time glue('x', 1)"
    assert render.printed_source(magic) == magic
    imports = "from myst_nb import glue, glue_figure"
    assert render.printed_source(imports) == imports


def test_a_cell_of_glue_only_keeps_its_outputs_without_its_input() -> None:
    notebook = nbformat.v4.new_notebook()
    glued = nbformat.v4.new_code_cell("glue('fig', fig)")
    glued.outputs = [nbformat.v4.new_output(
        "display_data", data={"text/plain": "<figure>"})]
    plain = nbformat.v4.new_code_cell("#| export scratchllm.x\nx = 1")
    notebook.cells = [glued, plain]
    render.trim_for_print(notebook)
    assert glued.source == ""
    assert "remove-input" in glued.metadata["tags"]
    assert len(glued.outputs) == 1
    assert plain.source == "x = 1"
    assert "tags" not in plain.metadata


def test_progress_bars_keep_their_final_state() -> None:
    stream = [
        {"output_type": "stream", "name": "stdout", "text": "start\n"},
        {"output_type": "stream", "name": "stdout",
         "text": "\rx:   0%|    | 0/5"},
        {"output_type": "stream", "name": "stdout",
         "text": "\rx:  40%|█▌  | 2/5\rx: 100%|████| 5/5"},
        {"output_type": "stream", "name": "stdout", "text": "\n"},
        {"output_type": "stream", "name": "stderr", "text": "\rbar\r"},
    ]
    assert render.collapse_streams(stream) == [
        {"output_type": "stream", "name": "stdout",
         "text": "start\nx: 100%|████| 5/5\n"},
        {"output_type": "stream", "name": "stderr", "text": "bar"},
    ]
    cleared = [{"output_type": "stream", "name": "stdout",
                "text": "\rrms: 50%\r          \r"}]
    assert render.collapse_streams(cleared) == []


def test_the_first_appendix_starts_latex_appendix_numbering(
    tmp_path: Path,
) -> None:
    notebook = nbformat.v4.new_notebook()
    notebook.cells = [nbformat.v4.new_markdown_cell("# Compliance\n\nText"),
                      nbformat.v4.new_code_cell("glue('x', 1)")]
    executed = tmp_path / "15_compliance.ipynb"
    nbformat.write(notebook, executed)
    chapter = Chapter(root=tmp_path, path=Path("book/15_compliance.md"),
                      meta={"appendix": "A"})
    staged = nbformat.reads(
        render.staged_notebook(chapter, executed, first_appendix=True), 4)
    sources = [cell.source for cell in staged.cells]
    assert sources[0] == render.APPENDIX_CELL
    assert sources[1].startswith("# Compliance")
    assert "{download}" in sources[2]
    later = nbformat.reads(render.staged_notebook(chapter, executed), 4)
    assert render.APPENDIX_CELL not in [c.source for c in later.cells]


def test_pdf_check_finds_missing_glyphs_in_the_latex_log(
    tmp_path: Path,
) -> None:
    log = tmp_path / "book.log"
    log.write_text("Overfull \\hbox\n"
                   "Missing character: There is no 🙂 (U+1F642) in font "
                   "FreeMono/OT:script=latn;!\n"
                   "Missing character: There is no 한 (U+D55C) in font "
                   "FreeMono/OT:script=latn;!\n")
    [problem] = pdfcheck.missing_glyphs(log)
    assert problem.startswith("2 characters print as empty boxes")
    assert "🙂" in problem and "한" in problem
    log.write_text("Overfull \\hbox\n")
    assert pdfcheck.missing_glyphs(log) == []
    assert pdfcheck.missing_glyphs(tmp_path / "absent.log") == []


def test_pdf_check_finds_machinery_on_the_page() -> None:
    text = ("#| export scratchllm.x\nglue('a', 1)\nglue('b', 2)\n"
            "<torch._C.Generator at 0x7f00>")
    problems = pdfcheck.machinery(text)
    assert len(problems) == 3
    assert "a glue(...) call is printed 2 times" in problems[1]
    assert pdfcheck.machinery("The glue ties numbers to prose.") == []


def test_pdf_check_wants_the_preface_in_the_outline(tmp_path: Path) -> None:
    from pypdf import PdfWriter

    def write(titles: list[str]) -> Path:
        writer = PdfWriter()
        writer.add_blank_page(200, 200)
        parent = None
        for title in titles:
            parent = writer.add_outline_item(title=title, page_number=0,
                                             parent=parent)
        path = tmp_path / "book.pdf"
        with path.open("wb") as handle:
            writer.write(handle)
        return path

    problems = pdfcheck.check_pdf(write(["Background", "Data"]), [])
    assert "the preface is not in the PDF's outline" in problems
    problems = pdfcheck.check_pdf(write(["Contents", "Preface"]), [])
    assert "the preface is not in the PDF's outline" not in problems


def test_kernels_print_progress_bars_as_text() -> None:
    code = (
        "from scratchllm.book.kernel import use_text_progress\n"
        "use_text_progress()\n"
        "from tqdm.std import tqdm as text_bar\n"
        "from tqdm.auto import tqdm, trange\n"
        "assert issubclass(tqdm, text_bar)\n"
        "for _ in tqdm(range(3), desc='work'): pass\n"
        "for _ in trange(2, desc='more'): pass\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True,
                          text=True, env={**os.environ, "PYTHONPATH": str(SRC)},
                          check=True, timeout=120)
    assert "work: 100%" in done.stdout and "3/3" in done.stdout
    assert "more: 100%" in done.stdout


def package_modules() -> list[str]:
    """Every module of the package, by dotted name."""
    package = SRC / "scratchllm"
    names = []
    for path in sorted(package.rglob("*.py")):
        parts = path.relative_to(SRC).with_suffix("").parts
        if parts[-1] == "__main__":
            continue
        if parts[-1] == "__init__":
            parts = parts[:-1]
        names.append(".".join(parts))
    return names


@pytest.mark.slow
def test_no_package_module_imports_pyplot() -> None:
    # One interpreter: once pyplot is loaded it stays, so the first module
    # that loads it is the one named.
    code = (
        "import importlib, sys\n"
        f"for name in {package_modules()!r}:\n"
        "    try:\n"
        "        importlib.import_module(name)\n"
        "    except ImportError as error:\n"
        "        print(f'skipped {name}: {error}')\n"
        "        continue\n"
        "    if 'matplotlib.pyplot' in sys.modules:\n"
        "        sys.exit(f'{name} imports matplotlib.pyplot')\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True,
                          text=True, env={**os.environ, "PYTHONPATH": str(SRC)},
                          timeout=600, check=False)
    assert done.returncode == 0, done.stderr + done.stdout



@pytest.mark.slow
def test_executed_notebooks_hold_text_bars_not_widgets(
    tmp_path: Path,
) -> None:
    import papermill

    from scratchllm.book.execute import KERNEL_ARGUMENTS

    notebook = nbformat.v4.new_notebook()
    notebook.cells = [nbformat.v4.new_code_cell(
        "from tqdm.auto import tqdm\nfor _ in tqdm(range(4), desc='w'): pass")]
    nbformat.write(notebook, tmp_path / "in.ipynb")
    papermill.execute_notebook(
        str(tmp_path / "in.ipynb"), str(tmp_path / "out.ipynb"),
        kernel_name="python3", progress_bar=False,
        extra_arguments=KERNEL_ARGUMENTS, cwd=str(tmp_path))
    outputs = nbformat.read(tmp_path / "out.ipynb", 4).cells[0].outputs
    assert all(o.output_type == "stream" for o in outputs)
    [shown] = render.collapse_streams(outputs)
    assert shown["text"].startswith("w: 100%|") and "4/4" in shown["text"]


def test_control_characters_in_outputs_print_as_escapes() -> None:
    """A tiny model's sample can hold a control byte; LaTeX stops on it."""
    from scratchllm.book.render import printable_outputs

    outputs = printable_outputs([
        {"output_type": "stream", "name": "stdout", "text": "shaad\x06.\n"},
        {"output_type": "display_data",
         "data": {"text/plain": "'a\x01b'", "image/png": "iVBOR"}}])
    assert outputs[0]["text"] == "shaad\\x06.\n"
    assert outputs[1]["data"] == {"text/plain": "'a\\x01b'",
                                  "image/png": "iVBOR"}


def test_prose_may_name_glue_but_a_printed_call_is_flagged() -> None:
    from scratchllm.book.pdfcheck import machinery

    prose = 'When a chapter writes glue("x", value), myst_nb stores it.\n'
    assert machinery(prose) == []
    assert machinery(prose + '    glue("x", 1, display=False)\n')
    assert machinery("#| export scratchllm.x\n")
