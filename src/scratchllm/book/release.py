"""The release: wheel and sdist of the package, checked in a clean virtual
environment, collected with the PDF and an HTML archive in
``_build/release/``.

The package needs no book toolchain to install: its core dependencies are
enough for ``scratchllm --help`` and for ``scratchllm generate`` on a
checkpoint, and the check proves it in a venv that has nothing else.
The book itself is not built here: build it first (``make book`` or
``scratchllm book all``).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

from scratchllm.book.chapters import BookError

#: What the wheel and sdist are built from (everything else is the book).
PACKAGE_FILES = ("pyproject.toml", "README.md", "src")
#: The book-toolchain distributions the wheel must not require.
BOOK_ONLY = ("jupyter-book", "papermill", "jupytext", "nbconvert",
             "sphinx", "myst")
PDF = Path("_build/latex/book.pdf")
HTML = Path("_build/html")

#: Made with the wheel's own code in the clean venv: a tiny tokenizer and
#: checkpoint, so the check needs no artifact of the book.
TINY_CHECKPOINT = """
import sys
import torch
from scratchllm.data.storyworld import StoryWorld
from scratchllm.model.config import ModelConfig
from scratchllm.model.gpt import GPT
from scratchllm.tokenizer import train_bpe
from scratchllm.train.checkpoint import save_checkpoint

folder = sys.argv[1]
texts = [doc.text for doc in StoryWorld(0).documents(40)]
tokenizer = train_bpe(texts, 300)
tokenizer.save(folder + "/tokenizer")
torch.manual_seed(0)
model = GPT(ModelConfig(vocab_size=tokenizer.vocab_size, context_length=32,
                        d_model=16, n_layers=1, n_heads=2, n_kv_heads=1,
                        ffn_hidden=32))
save_checkpoint(folder + "/checkpoint", 1, model.state_dict(),
                {"state": {}, "param_groups": []},
                {"model_config": model.config.to_dict()})
"""


def run(command: list[str], **options) -> subprocess.CompletedProcess:
    """Run a command; raise BookError with its output when it fails."""
    done = subprocess.run(command, text=True, capture_output=True,
                          **options)
    if done.returncode != 0:
        tail = (done.stdout + done.stderr).strip().splitlines()[-15:]
        raise BookError(f"`{' '.join(command[:4])} ...` failed:\n  "
                        + "\n  ".join(tail))
    return done


def build_distributions(root: Path, out: Path) -> list[Path]:
    """Build the sdist and the wheel from a clean copy of the package
    sources (no build/ or egg-info left in the checkout); return both."""
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as scratch:
        source = Path(scratch) / "scratchllm"
        source.mkdir()
        for name in PACKAGE_FILES:
            path = root / name
            if not path.exists():
                raise BookError(f"{path} is missing: cannot build")
            if path.is_dir():
                shutil.copytree(path, source / name, ignore=(
                    shutil.ignore_patterns("__pycache__", "*.egg-info")))
            else:
                shutil.copyfile(path, source / name)
        for hook in ("build_sdist", "build_wheel"):  # PEP 517, offline
            backend = ("import sys, setuptools.build_meta as b; "
                       f"b.{hook}(sys.argv[1])")
            run([sys.executable, "-c", backend, str(out)], cwd=source)
    found = sorted(out.glob("*.tar.gz")) + sorted(out.glob("*.whl"))
    if len(found) != 2:
        raise BookError(f"expected one sdist and one wheel in {out}, "
                        f"found {[p.name for p in found]}")
    return found


def wheel_problems(wheel: Path) -> list[str]:
    """What is wrong with the wheel's contents and requirements."""
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        metadata = next(n for n in names if n.endswith(".dist-info/METADATA"))
        entry = next(n for n in names
                     if n.endswith(".dist-info/entry_points.txt"))
        requires = [line.split(":", 1)[1].strip()
                    for line in archive.read(metadata).decode().splitlines()
                    if line.startswith("Requires-Dist:")]
        scripts = archive.read(entry).decode()
    problems = []
    for module in ("scratchllm/cli/__init__.py",
                   "scratchllm/generate/decode.py",
                   "scratchllm/train/checkpoint.py"):
        if module not in names:
            problems.append(f"the wheel lacks {module}")
    if "scratchllm = scratchllm.cli:app" not in scripts:
        problems.append("the wheel installs no `scratchllm` command")
    for requirement in requires:
        if "extra ==" in requirement:
            continue
        if any(requirement.lower().startswith(n) for n in BOOK_ONLY):
            problems.append(f"the wheel requires {requirement} (book "
                            "toolchain) outside an extra")
    return problems


def check_in_clean_venv(wheel: Path, venv: Path,
                        torch: str = "torch==2.13.0") -> list[str]:
    """Install the wheel with its core dependencies only into a new venv
    (torch first, as the README says), then run ``scratchllm --help``
    and a short ``scratchllm generate`` on a tiny checkpoint; return what
    each check printed, one line each."""
    if venv.exists():
        shutil.rmtree(venv)
    run([sys.executable, "-m", "venv", str(venv)])
    python, scratchllm = venv / "bin" / "python", venv / "bin" / "scratchllm"
    pip = [str(python), "-m", "pip", "install", "--quiet"]
    run([*pip, torch])
    run([*pip, str(wheel)])
    run([str(python), "-m", "pip", "check"])
    installed = run([str(python), "-m", "pip", "list", "--format=freeze"])
    extra = [line for line in installed.stdout.lower().splitlines()
             if line.startswith(BOOK_ONLY)]
    if extra:
        raise BookError(f"the clean venv got book packages: {extra}")
    env = {key: value for key, value in os.environ.items()
           if key not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env["HF_HUB_OFFLINE"] = "1"
    shown = run([str(scratchllm), "--help"], env=env).stdout
    if "generate" not in shown or "pretrain" not in shown:
        raise BookError("`scratchllm --help` does not list its commands")
    with tempfile.TemporaryDirectory() as scratch:
        run([str(python), "-c", TINY_CHECKPOINT, scratch], env=env)
        text = run([str(scratchllm), "generate", "Once upon a time",
                    "--checkpoint", f"{scratch}/checkpoint",
                    "--tokenizer", f"{scratch}/tokenizer",
                    "--max-new-tokens", "8", "--no-stream"], env=env,
                   cwd=scratch).stdout.strip()
    if not text.startswith("Once upon a time"):
        raise BookError(f"`scratchllm generate` printed {text!r}")
    return [f"installed {wheel.name} and its core dependencies in {venv}",
            "`scratchllm --help` lists the commands",
            f"`scratchllm generate` on a checkpoint: {text[:60]!r}"]


def sha256(path: Path) -> str:
    """The SHA-256 of a file, as hex."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def copy_atomic(source: Path, target: Path) -> None:
    """Copy a file through a temporary name and a rename."""
    temporary = target.with_name(f".{target.name}.tmp")
    shutil.copyfile(source, temporary)
    os.replace(temporary, target)


def release(root: Path, torch: str = "torch==2.13.0",
            check: bool = True) -> tuple[list[Path], list[str]]:
    """Build, check and collect the release in ``_build/release``;
    return the files and the checks' lines."""
    pdf, html = root / PDF, root / HTML
    missing = [str(p.relative_to(root)) for p in (pdf, html / "index.html")
               if not p.is_file()]
    if missing:
        raise BookError(f"{', '.join(missing)} missing: build the book "
                        "first (`make book` or `scratchllm book all`)")
    out = root / "_build" / "release"
    with tempfile.TemporaryDirectory(dir=root / "_build") as scratch:
        dists = build_distributions(root, Path(scratch) / "dist")
        wheel = next(p for p in dists if p.suffix == ".whl")
        problems = wheel_problems(wheel)
        if problems:
            raise BookError("; ".join(problems))
        lines = [f"built {', '.join(p.name for p in dists)}"]
        if check:
            lines += check_in_clean_venv(
                wheel, root / "_build" / "release-venv", torch)
        archive = shutil.make_archive(str(Path(scratch) / "book-html"),
                                      "zip", root_dir=html)
        out.mkdir(parents=True, exist_ok=True)
        files = [*dists, pdf, Path(archive)]
        collected = []
        for path in files:
            copy_atomic(path, out / path.name)
            collected.append(out / path.name)
    sums = "".join(f"{sha256(p)}  {p.name}\n" for p in collected)
    (out / ".SHA256SUMS.tmp").write_text(sums)
    os.replace(out / ".SHA256SUMS.tmp", out / "SHA256SUMS")
    return [*collected, out / "SHA256SUMS"], lines
