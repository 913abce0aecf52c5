"""``scratchllm model``: inspect model configurations, export checkpoints to
the Hugging Face Llama format, and benchmark attention (chapters 5-7)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer

from scratchllm.cli.errors import check_output_folder, fail

model_app = typer.Typer(
    help="The model: sizes and FLOPs, Hugging Face export, benchmarks.",
    no_args_is_help=True,
)

PRESET_NAMES = ("ci", "laptop", "gpu", "gpt2-small")



def human(number: float, unit: str = "") -> str:
    """12_345_678 -> '12.35 M'."""
    for scale, prefix in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(number) >= scale:
            return f"{number / scale:.2f} {prefix}{unit}"
    return f"{number:.0f} {unit}".rstrip()


@model_app.command()
def info(
    preset: Annotated[Optional[list[str]], typer.Option(
        help="Preset(s) to show (default: all).")] = None,
    vocab_size: Annotated[Optional[int], typer.Option(
        min=1, help="Override the vocabulary size.")] = None,
    batch_size: Annotated[int, typer.Option(
        min=1, help="Batch size for the memory estimate.")] = 8,
    seq_length: Annotated[Optional[int], typer.Option(
        min=1, help="Sequence length (default: the context length).")
    ] = None,
    as_json: Annotated[bool, typer.Option(
        "--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """Parameters, FLOPs per token and training memory of the presets."""
    from scratchllm.model.config import ModelConfig
    from scratchllm.model.estimate import (
        count_parameters,
        flops_per_token,
        memory_estimate,
    )

    names = preset or list(PRESET_NAMES)
    overrides = {} if vocab_size is None else {"vocab_size": vocab_size}
    rows = []
    for name in names:
        try:
            config = ModelConfig.preset(name, **overrides)
        except ValueError as error:
            fail(str(error))
        length = seq_length or config.context_length
        memory = memory_estimate(config, batch_size, length)
        rows.append({
            "preset": name,
            "config": config.to_dict(),
            "parameters": count_parameters(config),
            "non_embedding_parameters": count_parameters(
                config, non_embedding=True),
            "forward_flops_per_token": flops_per_token(config, length),
            "training_flops_per_token": flops_per_token(
                config, length, training=True),
            "training_memory_bytes": memory,
        })
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"model presets (batch {batch_size})")
    for column in ("preset", "d", "layers", "heads/kv", "vocab", "context",
                   "params", "non-emb", "train FLOP/tok", "train memory"):
        table.add_column(column, justify="right")
    for row in rows:
        shape = row["config"]
        table.add_row(
            row["preset"], str(shape["d_model"]), str(shape["n_layers"]),
            f"{shape['n_heads']}/{shape['n_kv_heads']}",
            str(shape["vocab_size"]), str(shape["context_length"]),
            human(row["parameters"]),
            human(row["non_embedding_parameters"]),
            human(row["training_flops_per_token"], "FLOP"),
            human(row["training_memory_bytes"]["total"], "B"),
        )
    console = Console()
    Console(width=max(console.width, 132)).print(table)


@model_app.command()
def export(
    checkpoint: Annotated[Path, typer.Argument(
        help="A training checkpoint folder (chapter 8).")],
    out: Annotated[Path, typer.Option(
        help="Folder for config.json + model.safetensors.")],
    tokenizer: Annotated[Optional[Path], typer.Option(
        help="Tokenizer folder to export alongside (chapter 4).")] = None,
    check: Annotated[bool, typer.Option(
        help="Reload with transformers and compare logits.")] = True,
) -> None:
    """Export a checkpoint to the Hugging Face Llama format."""
    import torch

    from scratchllm.model.hf import export_hf

    from scratchllm.train.checkpoint import CheckpointError, load_model

    if not checkpoint.is_dir():
        fail(f"no such checkpoint folder: {checkpoint}")
    check_output_folder(out)
    try:
        model, _ = load_model(checkpoint)
    except (CheckpointError, FileNotFoundError, ValueError,
            KeyError) as error:
        fail(f"cannot load {checkpoint}: {error}")
    loaded_tokenizer = None
    if tokenizer is not None:
        from scratchllm.train.checkpoint import matching_tokenizer

        loaded_tokenizer = matching_tokenizer(checkpoint, tokenizer)
    export_hf(model, out, tokenizer=loaded_tokenizer)
    typer.echo(f"wrote {out}: " + ", ".join(
        sorted(path.name for path in out.iterdir())))
    if check:
        import os

        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        from transformers import LlamaForCausalLM

        reference = LlamaForCausalLM.from_pretrained(out).eval()
        length = min(64, model.config.context_length)
        tokens = torch.randint(0, model.config.vocab_size, (1, length))
        with torch.no_grad():
            gap = (model.float()(tokens) - reference(tokens).logits)
        typer.echo(f"transformers logits differ by at most "
                   f"{gap.abs().max().item():.2e}")


@model_app.command("bench-attention")
def bench_attention_command(
    lengths: Annotated[str, typer.Option(
        help="Comma-separated sequence lengths.")] = "128,256,512,1024",
    heads: Annotated[int, typer.Option(
        min=1, help="Attention heads.")] = 8,
    head_dim: Annotated[int, typer.Option(
        min=1, help="Width per head.")] = 64,
    batch_size: Annotated[int, typer.Option(min=1, help="Batch size.")] = 1,
    repeats: Annotated[int, typer.Option(
        min=1, help="Timed runs each.")] = 5,
    threads: Annotated[int, typer.Option(
        min=0, help="CPU threads (0: leave PyTorch's default).")] = 0,
    device: Annotated[str, typer.Option(help="cpu or cuda.")] = "cpu",
) -> None:
    """Time forward + backward of from-scratch attention and SDPA, and
    the memory each saves for backward (chapter 6)."""
    import torch

    from scratchllm.model.bench import bench_attention

    try:
        sizes = [int(n) for n in lengths.split(",") if n.strip()]
    except ValueError:
        fail(f"--lengths must be integers separated by commas: {lengths}")
    if not sizes or min(sizes) < 1:
        fail(f"--lengths must be positive integers: {lengths}")
    if device == "cuda" and not torch.cuda.is_available():
        fail("--device cuda, but no CUDA device is available")
    if threads:
        torch.set_num_threads(threads)
    costs = bench_attention(sizes, heads=heads, head_dim=head_dim,
                            batch_size=batch_size, repeats=repeats,
                            device=device)
    scratch, sdpa = costs["from scratch"], costs["SDPA"]
    typer.echo(f"{'T':>7} {'scratch ms':>11} {'SDPA ms':>9} {'ratio':>6} "
               f"{'scratch MiB':>12} {'SDPA MiB':>9}")
    for row, length in enumerate(sizes):
        slow, fast = scratch.seconds[row], sdpa.seconds[row]
        typer.echo(f"{length:>7} {1000 * slow:>11.2f} {1000 * fast:>9.2f} "
                   f"{slow / fast:>6.1f} {scratch.megabytes[row]:>12.2f} "
                   f"{sdpa.megabytes[row]:>9.2f}")


def register(app: typer.Typer) -> None:
    """Add the ``model`` command group."""
    app.add_typer(model_app, name="model")
