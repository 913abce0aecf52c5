"""``scratchllm tokenizer``: train, encode, export, shard and benchmark
byte-level BPE tokenizers (chapter 4).

Also adds ``scratchllm data tokenize`` (the same as ``tokenizer shard``)
when the ``data`` command group exists.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer

from scratchllm.cli.errors import (
    check_input_folder,
    check_output_folder,
    fail,
    read_utf8,
)

tokenizer_app = typer.Typer(
    help="Byte-level BPE tokenizers: train, encode, export, shard, bench.",
    no_args_is_help=True,
)

GPT_PATTERNS = ("gpt4", "gpt2")



def read_corpus(paths: list[Path]) -> list[str]:
    """Documents from ``.jsonl`` files (their "text" field) or whole text
    files (one document each)."""
    from scratchllm.tokenizer.shards import iter_jsonl_texts

    texts: list[str] = []
    for path in paths:
        if path.suffix == ".jsonl" and path.is_file():
            texts.extend(iter_jsonl_texts(path))
        else:
            texts.append(read_utf8(path))
    if not any(texts):
        fail(f"no text in {', '.join(map(str, paths))}")
    return texts


def load_or_fail(folder: Path):
    """The tokenizer in ``folder`` (errors are reported by the CLI)."""
    from scratchllm.tokenizer.bpe import load_tokenizer

    return load_tokenizer(folder)


@tokenizer_app.command()
def train(
    inputs: Annotated[list[Path], typer.Argument(
        help="Training text: .jsonl files (field 'text') or text files.")],
    out: Annotated[Path, typer.Option(help="Folder to save into.")],
    vocab_size: Annotated[int, typer.Option(
        help="Tokens in all: 256 bytes + merges + special tokens (fewer, "
        "with a note, if the text runs out of pairs).")] = 4096,
    pattern: Annotated[str, typer.Option(
        help="Split pattern: gpt4 or gpt2.")] = "gpt4",
    hf: Annotated[bool, typer.Option(
        help="Also write tokenizer.json for Hugging Face.")] = True,
) -> None:
    """Train a tokenizer and save it (bpe.json, vocab.txt, tokenizer.json)."""
    import time
    import warnings

    from scratchllm.tokenizer.bpe import GPT2_SPLIT_PATTERN, GPT4_SPLIT_PATTERN
    from scratchllm.tokenizer.export import save_folder
    from scratchllm.tokenizer.train import SmallVocabularyWarning, train_bpe

    if pattern not in GPT_PATTERNS:
        fail(f"--pattern must be one of {', '.join(GPT_PATTERNS)}")
    split = GPT4_SPLIT_PATTERN if pattern == "gpt4" else GPT2_SPLIT_PATTERN
    check_output_folder(out)
    texts = read_corpus(inputs)
    start = time.perf_counter()
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", SmallVocabularyWarning)
            tokenizer = train_bpe(texts, vocab_size, split, progress=True)
    except ValueError as error:
        fail(str(error))
    for warning in caught:
        typer.echo(f"note: {warning.message}", err=True)
    seconds = time.perf_counter() - start
    try:
        save_folder(tokenizer, out, hf=hf)
    except OSError as error:
        fail(str(error))
    typer.echo(f"{tokenizer} trained in {seconds:.1f} s, saved to {out}")


@tokenizer_app.command()
def encode(
    tokenizer_dir: Annotated[Path, typer.Argument(
        help="Folder holding bpe.json.")],
    text: Annotated[str | None, typer.Argument(
        help="Text to encode (default: read --file or stdin).")] = None,
    file: Annotated[Path | None, typer.Option(
        help="Stream-encode this file.")] = None,
    show: Annotated[bool, typer.Option(
        help="Print each token's text next to its id.")] = False,
) -> None:
    """Print the ids of a text (special tokens recognised), streaming a
    file or stdin in fixed-size pieces (flat memory, even for one huge
    line). Text that is not UTF-8 is refused, never silently repaired."""
    import io

    if text is not None and file is not None:
        fail("give TEXT or --file, not both")
    if file is not None and not file.is_file():
        fail(f"{file} is not a file" if file.exists()
             else f"no such file: {file}")
    tokenizer = load_or_fail(tokenizer_dir)
    if text is not None:
        echo_ids(tokenizer.encode(text), tokenizer, show)
        return
    name = str(file) if file is not None else "stdin"
    if file is not None:
        check_utf8(file)
    source = (open(file, "rb") if file is not None  # noqa: SIM115
              else getattr(sys.stdin, "buffer", None))
    if source is None:  # a text-only stdin (tests): already decoded
        source = io.BytesIO(sys.stdin.read().encode("utf-8"))
    printed = [0]
    with io.TextIOWrapper(source, encoding="utf-8") as handle:
        try:
            echo_ids(tokenizer.encode_iterable(read_chunks(handle)),
                     tokenizer, show, printed)
        except UnicodeDecodeError as error:
            done = ("nothing was encoded" if not printed[0] else
                    f"the {printed[0]} ids printed before it are "
                    "incomplete")
            fail(f"{name} is not UTF-8 text (byte {error.start} of a "
                 f"block: {error.reason}); {done}")


def check_utf8(file: Path) -> None:
    """Fail unless ``file`` is UTF-8, reading it in blocks (flat memory)
    before a single id is printed."""
    import codecs

    decoder = codecs.getincrementaldecoder("utf-8")()
    offset = 0
    with open(file, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            try:
                decoder.decode(block)
            except UnicodeDecodeError as error:
                fail(f"{file} is not UTF-8 text (byte "
                     f"{offset + error.start}: {error.reason}); nothing "
                     "was encoded")
            offset += len(block)
    try:
        decoder.decode(b"", final=True)
    except UnicodeDecodeError as error:
        fail(f"{file} is not UTF-8 text (it ends inside a character: "
             f"{error.reason}); nothing was encoded")


def read_chunks(handle, size: int = 1 << 16):
    """Fixed-size pieces of a text stream: a single huge line is never
    held whole; ``encode_iterable`` cuts the stream where it is safe."""
    return iter(lambda: handle.read(size), "")


def echo_ids(ids, tokenizer, show: bool, printed: list | None = None
             ) -> None:
    """Print ids as they come (one line of ids, or one id and its text
    per line with ``show``), holding only a batch at a time; count them
    in ``printed[0]``."""
    from itertools import islice

    from scratchllm.tokenizer.bpe import render_token

    printed = printed if printed is not None else [0]
    if show:
        for token_id in ids:
            typer.echo(f"{token_id}\t"
                       f"{render_token(tokenizer.vocab[token_id])}")
            printed[0] += 1
        return
    ids, separator = iter(ids), ""
    while batch := list(islice(ids, 4096)):
        typer.echo(separator + " ".join(map(str, batch)), nl=False)
        printed[0] += len(batch)
        separator = " "
    typer.echo()


@tokenizer_app.command()
def decode(
    tokenizer_dir: Annotated[Path, typer.Argument(
        help="Folder holding bpe.json.")],
    ids: Annotated[list[int], typer.Argument(help="Token ids.")],
) -> None:
    """Print the text of a list of ids."""
    tokenizer = load_or_fail(tokenizer_dir)
    typer.echo(tokenizer.decode(ids))


@tokenizer_app.command()
def export(
    tokenizer_dir: Annotated[Path, typer.Argument(
        help="Folder holding bpe.json.")],
    out: Annotated[Path, typer.Option(
        help="Folder for tokenizer.json + tokenizer_config.json.")],
) -> None:
    """Export to Hugging Face (PreTrainedTokenizerFast.from_pretrained)."""
    from scratchllm.tokenizer.export import save_hf

    check_output_folder(out)
    tokenizer = load_or_fail(tokenizer_dir)
    save_hf(tokenizer, out)
    typer.echo(f"wrote {out / 'tokenizer.json'}")


@tokenizer_app.command()
def shard(
    tokenizer_dir: Annotated[Path, typer.Argument(
        help="Folder holding bpe.json.")],
    data_dir: Annotated[Path, typer.Argument(
        help="Folder with train.jsonl and val.jsonl.")],
    out: Annotated[Path, typer.Option(help="Folder for the shards.")],
    splits: Annotated[str, typer.Option(
        help="Comma-separated splits.")] = "train,val",
    shard_tokens: Annotated[int, typer.Option(
        min=1, help="Tokens per shard (at most, batches kept whole).")
    ] = 1 << 24,
    workers: Annotated[int, typer.Option(
        min=1, help="Worker processes.")] = 1,
) -> None:
    """Tokenize a prepared dataset into memory-mapped shards + index.json."""
    from scratchllm.tokenizer.shards import write_shards

    names = [name.strip() for name in splits.split(",") if name.strip()]
    if not names:
        fail("--splits names no split")
    check_input_folder(data_dir, *(f"{name}.jsonl" for name in names))
    check_output_folder(out)
    tokenizer = load_or_fail(tokenizer_dir)
    index = write_shards(tokenizer, data_dir, out, names, shard_tokens,
                         workers)
    for split, entries in index["splits"].items():
        tokens = sum(entry["tokens"] for entry in entries)
        typer.echo(f"{split}: {len(entries)} shard(s), {tokens:,} tokens "
                   f"({index['dtype']}) in {out}")


@tokenizer_app.command()
def bench(
    text: Annotated[Path, typer.Option(
        help="Text file (.txt, or .jsonl with 'text'); repeated up to "
        "--megabytes if shorter.")],
    megabytes: Annotated[float, typer.Option(
        help="Training text size.")] = 10.0,
    vocab_size: Annotated[int, typer.Option(min=257)] = 8192,
    repeats: Annotated[int, typer.Option(
        min=1, help="Runs per timing.")] = 3,
    stream_megabytes: Annotated[str, typer.Option(
        help="Comma-separated file sizes for the streaming memory test "
        "(empty to skip).")] = "10,50,120",
) -> None:
    """Time training (ours vs HF tokenizers), encoding (ours vs tiktoken)
    and streaming memory. Prints JSON; not part of the tests."""
    import tempfile
    import warnings

    from scratchllm.tokenizer.bench import (
        compare_training,
        encoding_speed,
        streaming_peak_memory,
        write_text_of_size,
    )
    from scratchllm.tokenizer.train import SmallVocabularyWarning, train_bpe

    import math

    if not 0 < megabytes < math.inf:
        fail(f"--megabytes must be positive, got {megabytes}")
    try:
        sizes = [float(size) for size in stream_megabytes.split(",")
                 if size.strip()]
    except ValueError:
        fail(f"--stream-megabytes must be numbers: {stream_megabytes}")
    if not all(0 < mb < math.inf for mb in sizes):
        fail(f"--stream-megabytes must be positive: {stream_megabytes}")
    documents = read_corpus([text])
    corpus = "\n\n".join(documents).encode("utf-8")
    size = int(megabytes * 1e6)
    corpus = (corpus * (size // len(corpus) + 1))[:size]
    docs = corpus.decode("utf-8", "ignore").split("\n\n")
    report: dict = {"megabytes": len(corpus) / 1e6,
                    "vocab_size": vocab_size}
    typer.echo(f"training on {report['megabytes']:.1f} MB, "
               f"vocab {vocab_size}, {repeats} repeats...", err=True)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", SmallVocabularyWarning)
            report["training"] = compare_training(docs, vocab_size, repeats)
            tokenizer = train_bpe(docs, vocab_size)
    except ValueError as error:
        fail(f"{text}: {error}")
    if caught:
        typer.echo(f"note: {caught[-1].message}", err=True)
        report["vocab_size"] = tokenizer.vocab_size
    sample = corpus[:2_000_000].decode("utf-8", "ignore")
    report["encoding"] = encoding_speed(tokenizer, sample, repeats)
    if sizes:
        report["streaming"] = {}
        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp)
            tokenizer.save(folder / "tok")
            for mb in sizes:
                path = folder / "stream.txt"
                write_text_of_size(path, corpus, int(mb * 1e6))
                typer.echo(f"streaming {mb:g} MB...", err=True)
                result = streaming_peak_memory(folder / "tok", path)
                result["file_mb"] = path.stat().st_size / 1e6
                report["streaming"][f"{mb:g}"] = result
    typer.echo(json.dumps(report, indent=2))


def register(app: typer.Typer) -> None:
    """Add ``scratchllm tokenizer`` (and ``scratchllm data tokenize``)."""
    app.add_typer(tokenizer_app, name="tokenizer")
    for group in app.registered_groups:
        if group.name == "data" and group.typer_instance is not None:
            group.typer_instance.command(
                "tokenize", help="Tokenize a prepared dataset into shards "
                "(same as `scratchllm tokenizer shard`)."
            )(shard)
