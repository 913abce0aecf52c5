"""``scratchllm serve``, ``scratchllm serve-bench``, ``scratchllm quantize``
and ``scratchllm export`` (chapter 13; hand-written, never tangled)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Optional

import typer

from scratchllm.cli.errors import fail
from scratchllm.cli.options import Threads

if TYPE_CHECKING:
    import torch

    from scratchllm.tokenizer import Tokenizer

TokenizerFolder = Annotated[Optional[Path], typer.Option(
    help="Tokenizer folder (default: the artifacts' tokenizer-chat next to "
    "an sft checkpoint, else tokenizer).")]


Quantize = Annotated[str, typer.Option(
    help="Serve the weights as float32 (none), int8 or int4.")]



def default_tokenizer(checkpoint: Path) -> Path:
    """``A/tokenizer-chat`` or ``A/tokenizer`` for ``A/checkpoints/X``."""
    artifacts = checkpoint.resolve().parent.parent
    chat = artifacts / "tokenizer-chat"
    return chat if chat.exists() else artifacts / "tokenizer"


def load(checkpoint: Path, tokenizer: Optional[Path], quantize: str = "none",
         group_size: int = 64) -> tuple[torch.nn.Module, Tokenizer]:
    """Model (optionally quantized) and tokenizer, or a one-line error."""
    from scratchllm.tokenizer import load_tokenizer
    from scratchllm.train.checkpoint import CheckpointError, load_model

    if quantize not in ("none", "int8", "int4"):
        fail(f"--quantize must be none, int8 or int4, not {quantize!r}")
    if not checkpoint.exists():
        fail(f"no checkpoint at {checkpoint}")
    tokenizer = tokenizer or default_tokenizer(checkpoint)
    if not tokenizer.exists():
        fail(f"no tokenizer at {tokenizer}; pass --tokenizer")
    try:
        model, _ = load_model(checkpoint)
        text_tokenizer = load_tokenizer(tokenizer)
    except (CheckpointError, ValueError, OSError, KeyError) as error:
        fail(str(error))
    if text_tokenizer.vocab_size > model.config.vocab_size:
        fail(f"the tokenizer at {tokenizer} has "
             f"{text_tokenizer.vocab_size} tokens but "
             f"the model only {model.config.vocab_size}: wrong pair?")
    if quantize != "none":
        from scratchllm.quantize.linear import quantize_model
        bits = 8 if quantize == "int8" else 4
        try:
            model = quantize_model(model, bits, group_size)
        except ValueError as error:
            fail(str(error))
    return model, text_tokenizer


def check_address(host: str, port: int) -> None:
    """Fail with one line unless host:port can be listened on (uvicorn
    would log several lines and exit with status 3)."""
    import socket

    try:
        with socket.socket() as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind((host, port))
    except OSError as error:
        fail(f"cannot listen on {host}:{port}: "
             f"{error.strerror or error}")


# Short prompts for the load benchmark (the chapter's, too).
LOAD_PROMPTS = ["Once upon a time", "The cat", "A little girl named",
                "One day", "The sun was", "In the forest", "Tom and",
                "The king said"]


def register(app: typer.Typer) -> None:
    """Add the deployment commands to the main app."""

    @app.command()
    def serve(
        checkpoint: Annotated[Path, typer.Argument(
            help="Checkpoint folder (chapter 8's format).")],
        tokenizer: TokenizerFolder = None,
        host: Annotated[str, typer.Option(
            help="Address to listen on (127.0.0.1: this machine only).")
        ] = "127.0.0.1",
        port: Annotated[int, typer.Option(min=1, max=65535)] = 8000,
        model_name: Annotated[Optional[str], typer.Option(
            help="The model id clients send (default: the checkpoint's "
            "folder name).")] = None,
        max_batch: Annotated[int, typer.Option(
            min=1, help="Most requests decoded together.")] = 16,
        max_waiting: Annotated[int, typer.Option(
            min=1, help="Most requests queued; more get 429.")] = 64,
        max_body_bytes: Annotated[int, typer.Option(min=256)] = 65536,
        quantize: Quantize = "none",
        threads: Threads = 1,
    ) -> None:
        """Serve a checkpoint with an OpenAI-compatible API and a chat
        page (Ctrl-C stops it cleanly)."""
        import torch
        import uvicorn

        from scratchllm.serve.api import Limits, create_app
        from scratchllm.serve.engine import Engine

        torch.set_num_threads(threads)
        model, text_tokenizer = load(checkpoint, tokenizer, quantize)
        check_address(host, port)
        name = model_name or checkpoint.resolve().name
        app = create_app(Engine(model, max_batch, max_waiting),
                         text_tokenizer, name,
                         Limits(max_body_bytes=max_body_bytes))
        typer.echo(f"serving {name!r} at http://{host}:{port}/ "
                   f"(API under /v1)")
        uvicorn.run(app, host=host, port=port, log_level="info",
                    timeout_graceful_shutdown=5)

    @app.command("serve-bench")
    def serve_bench(
        checkpoint: Annotated[Path, typer.Argument(
            help="Checkpoint folder (chapter 8's format).")],
        tokenizer: TokenizerFolder = None,
        requests: Annotated[int, typer.Option(min=1)] = 1000,
        concurrency: Annotated[int, typer.Option(min=1)] = 16,
        max_tokens: Annotated[int, typer.Option(min=1)] = 16,
        baseline_requests: Annotated[Optional[int], typer.Option(
            min=1, help="Requests for the one-at-a-time baseline "
            "(default: as many).")] = None,
        quantize: Quantize = "none",
        as_json: Annotated[bool, typer.Option(
            "--json", help="Print the figures as JSON.")] = False,
        threads: Threads = 1,
    ) -> None:
        """Load-test a local server: p50/p95 latency, tokens/s, 5xx
        count, batched against one request at a time."""
        import torch

        from scratchllm.serve.load import compare_batching

        torch.set_num_threads(threads)
        model, text_tokenizer = load(checkpoint, tokenizer, quantize)
        results = compare_batching(model, text_tokenizer, LOAD_PROMPTS,
                                   requests,
                                   concurrency, max_tokens,
                                   baseline_requests)
        if as_json:
            typer.echo(json.dumps(results, indent=2))
            return
        typer.echo(f"{requests} requests, {concurrency} concurrent "
                   f"clients, {max_tokens} tokens each, 127.0.0.1")
        typer.echo(f"{'':>14} {'p50 s':>8} {'p95 s':>8} {'tok/s':>8} "
                   f"{'req/s':>7} {'5xx':>4} {'batch':>6}")
        for name, row in results.items():
            typer.echo(f"{name:>14} {row['p50_s']:>8.3f} "
                       f"{row['p95_s']:>8.3f} {row['tokens_per_s']:>8.1f} "
                       f"{row['requests_per_s']:>7.1f} "
                       f"{row['server_errors']:>4} {row['mean_batch']:>6.2f}")
        gain = (results["batched"]["tokens_per_s"]
                / results["one at a time"]["tokens_per_s"])
        typer.echo(f"batching gain: {gain:.2f}x tokens/s")

    @app.command()
    def quantize(
        checkpoint: Annotated[Path, typer.Argument(
            help="Checkpoint folder (chapter 8's format).")],
        tokenizer: TokenizerFolder = None,
        tokens: Annotated[Optional[Path], typer.Option(
            help="Token shards to score (default: the artifacts' "
            "tokens/storyworld).")] = None,
        val_tokens: Annotated[int, typer.Option(min=2)] = 8192,
        new_tokens: Annotated[int, typer.Option(min=1)] = 32,
        threads: Threads = 1,
    ) -> None:
        """Quantize to int8, int4 (groups 32/64/128) and GPTQ int4, and
        compare size, bits per byte and speed with float32 and torch.ao's
        int8."""
        import numpy as np
        import torch

        from scratchllm.eval.intrinsic import token_byte_lengths
        from scratchllm.quantize.gptq import gptq_model
        from scratchllm.quantize.linear import quantize_model
        from scratchllm.quantize.measure import library_int8, measure
        from scratchllm.tokenizer.shards import read_split

        torch.set_num_threads(threads)
        model, text_tokenizer = load(checkpoint, tokenizer)
        shards = tokens or (checkpoint.resolve().parent.parent / "tokens"
                            / "storyworld")
        try:
            val = read_split(shards, "val")
            train = np.asarray(read_split(shards, "train")[0])
        except (OSError, ValueError, IndexError) as error:
            fail(f"cannot read validation tokens from {shards}: {error}")
        window = model.config.context_length
        calibration = torch.from_numpy(
            train[:16 * window].astype(np.int64))
        calibration = calibration[:len(calibration) // window * window]
        lengths = token_byte_lengths(text_tokenizer)
        lengths = np.pad(lengths, (0, model.config.vocab_size - len(lengths)))
        prompt = text_tokenizer.encode("Once upon a time")
        new_tokens = min(new_tokens,
                         model.config.context_length - len(prompt))
        variants = {"float32": model, "int8": quantize_model(model, 8)}
        for group in (32, 64, 128):
            variants[f"int4 g{group}"] = quantize_model(model, 4, group)
        if len(calibration):
            variants["int4 g64 GPTQ"] = gptq_model(
                model, calibration.view(-1, window), 64)
        variants["torch.ao int8"] = library_int8(model)
        typer.echo(f"{'variant':>14} {'bytes':>10} {'bits/byte':>10} "
                   f"{'top-1 agree':>11} {'tok/s':>8}")
        for name, variant in variants.items():
            row = measure(name, variant, model, val, val_tokens, lengths,
                          prompt, new_tokens)
            typer.echo(f"{name:>14} {row['bytes']:>10,} "
                       f"{row['bits_per_byte']:>10.4f} "
                       f"{row['top1_agreement']:>11.3f} "
                       f"{row['tokens_per_s']:>8.1f}")

    @app.command()
    def export(
        checkpoint: Annotated[Path, typer.Argument(
            help="Checkpoint folder (chapter 8's format).")],
        output: Annotated[Path, typer.Argument(
            help="The .gguf file, or the Hugging Face folder, to write.")],
        fmt: Annotated[str, typer.Option(
            "--format", help="gguf or hf.")] = "gguf",
        kind: Annotated[str, typer.Option(
            "--type", help="GGUF tensor type: f32 or q8_0.")] = "f32",
        tokenizer: TokenizerFolder = None,
    ) -> None:
        """Export a checkpoint as GGUF (llama.cpp) or a Hugging Face
        Llama folder."""
        if fmt not in ("gguf", "hf"):
            fail(f"--format must be gguf or hf, not {fmt!r}")
        if kind not in ("f32", "q8_0"):
            fail(f"--type must be f32 or q8_0, not {kind!r}")
        model, text_tokenizer = load(checkpoint, tokenizer)
        try:
            if fmt == "hf":
                from scratchllm.model.hf import export_hf
                path = export_hf(model, output, text_tokenizer)
            else:
                from scratchllm.quantize.gguf import write_gguf
                template = None
                if "<|im_end|>" in text_tokenizer.special_tokens:
                    from scratchllm.finetune.chat import CHAT_TEMPLATE
                    template = CHAT_TEMPLATE
                path = write_gguf(model, text_tokenizer, output, kind,
                                  template)
        except (ValueError, OSError) as error:
            fail(str(error))
        typer.echo(f"wrote {path}")
