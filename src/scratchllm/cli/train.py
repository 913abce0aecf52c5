"""``scratchllm pretrain``, ``scratchllm estimate`` and
``scratchllm train bench`` (alias ``bench-train``) (chapter 8;
hand-written, never tangled)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from scratchllm.cli.errors import fail



def register(app: typer.Typer) -> None:
    """Add the pretraining commands to the main app."""

    @app.command()
    def pretrain(
        profile: Annotated[Optional[str], typer.Option(
            help="Preset: ci, laptop, gpu or cluster (default: laptop; "
            "with --config, the file's profile, else ci).")] = None,
        config: Annotated[Optional[Path], typer.Option(
            "--config", exists=True, dir_okay=False,
            help="YAML or TOML file overriding TrainConfig fields.")] = None,
        resume: Annotated[Optional[bool], typer.Option(
            help="Continue from the run folder's latest checkpoint "
            "(default: the --config file's resume, else no).")] = None,
        overwrite: Annotated[Optional[bool], typer.Option(
            help="Delete the checkpoints and log an earlier run left in "
            "the run folder and start over (without it, pretrain refuses "
            "to touch them).")] = None,
        artifacts_root: Annotated[Optional[str], typer.Option(
            help="Artifact folder (default: the preset's, "
            "_build/artifacts).")] = None,
        max_steps: Annotated[Optional[int], typer.Option(
            min=1, help="Override the number of steps.")] = None,
        tokens_dir: Annotated[Optional[str], typer.Option(
            help="Folder of the token shards' index.json (default: the "
            "profile's; see `scratchllm tokens index`).")] = None,
        accelerate: Annotated[bool, typer.Option(
            help="Use Hugging Face Accelerate (for `accelerate launch`).")
        ] = False,
    ) -> None:
        """Pretrain a GPT on token shards (chapter 8). Settings come from,
        in order of precedence: the flags given here, the --config file,
        the profile's preset."""
        from scratchllm.train import load_config, preset
        from scratchllm.train import pretrain as run_pretraining

        given = {"resume": resume, "overwrite": overwrite,
                 "artifacts_root": artifacts_root, "max_steps": max_steps,
                 "tokens_dir": tokens_dir}
        overrides = {name: value for name, value in given.items()
                     if value is not None}
        settings = (load_config(config, profile, **overrides) if config
                    else preset(profile or "laptop", **overrides))
        accelerator = None
        if accelerate:
            from accelerate import Accelerator

            from scratchllm.train.loop import pick_device, run_precision

            chosen = run_precision(settings, pick_device(settings, None))
            mixed = {"fp32": "no"}.get(chosen, chosen)
            accelerator = Accelerator(mixed_precision=mixed)
        result = run_pretraining(settings, accelerator=accelerator)
        if accelerator is None or accelerator.is_main_process:
            typer.echo(
                f"{result.steps} steps, {result.tokens:,} tokens in "
                f"{result.seconds:.0f} s; validation loss "
                f"{result.val_loss:.4f} nats/token = "
                f"{result.val_bits_per_byte:.4f} bits/byte\n"
                f"checkpoints and log.jsonl in {result.run_dir}")

    @app.command()
    def estimate(
        params: Annotated[Optional[str], typer.Option(
            help="Model size, e.g. 124M or 7B.")] = None,
        model: Annotated[Optional[str], typer.Option(
            help="A model preset instead of --params (ci, laptop, gpu, "
            "gpt2-small): its exact parameter count.")] = None,
        tokens: Annotated[Optional[str], typer.Option(
            help="Training tokens, e.g. 10B (default: 20 per parameter)."
        )] = None,
        flops: Annotated[Optional[str], typer.Option(
            help="A FLOP budget instead: pick params and tokens "
            "compute-optimally.")] = None,
        hardware: Annotated[str, typer.Option(
            help="A hardware name (see --list).")] = "h100-sxm",
        devices: Annotated[int, typer.Option(
            min=1, help="Number of devices.")] = 1,
        mfu: Annotated[float, typer.Option(
            help="Model FLOPs utilisation to assume.")] = 0.4,
        list_hardware: Annotated[bool, typer.Option(
            "--list", help="List the hardware table and exit.")] = False,
    ) -> None:
        """Estimate FLOPs, memory, hours and dollars of a training run."""
        from scratchllm.train.monitor import HARDWARE, PRICES_AS_OF
        from scratchllm.train.scaling import (
            CHINCHILLA_REFIT,
            estimate_run,
            parse_count,
        )

        sizes = [name for name, value in (("--params", params),
                                          ("--model", model),
                                          ("--flops", flops))
                 if value is not None]
        if list_hardware:
            if sizes or tokens is not None:
                fail("--list prints the hardware table only; give "
                     "it without a model size")
            typer.echo(f"prices as of {PRICES_AS_OF} (on-demand, USD per "
                       "device-hour; check current prices)")
            for device in HARDWARE.values():
                typer.echo(f"  {device.name:10s} {device.peak_flops:9.3g} "
                           f"FLOP/s {device.memory_gb:5.0f} GB  "
                           f"${device.usd_per_hour:5.2f}  {device.note}")
            return
        if len(sizes) > 1:
            fail(f"{' and '.join(sizes)} conflict: give one of "
                 "--params, --model or --flops")
        if flops is not None and tokens is not None:
            fail("--flops picks the token count itself; give "
                 "--tokens with --params or --model instead")
        if not sizes:
            fail("give --params or --model (and optionally "
                 "--tokens), or --flops")
        try:
            if flops is not None:
                size, data = CHINCHILLA_REFIT.compute_optimal(
                    parse_count(flops))
                typer.echo(f"compute-optimal for {parse_count(flops):.3g} "
                           f"FLOPs ({CHINCHILLA_REFIT.source}): "
                           f"{size:.3g} params, {data:.3g} tokens")
            else:
                if model is not None:
                    from scratchllm.model.config import ModelConfig
                    from scratchllm.model.estimate import count_parameters

                    size = float(count_parameters(ModelConfig.preset(model)))
                else:
                    size = parse_count(params)
                data = parse_count(tokens) if tokens else 20 * size
            run = estimate_run(size, data, hardware, devices, mfu)
        except ValueError as error:
            fail(str(error))
        typer.echo(
            f"params {run.params:.3g}"
            + (f" (preset {model})" if model else "")
            + f", tokens {run.tokens:.3g} "
            f"({run.tokens / run.params:.0f} per param)\n"
            f"compute  {run.flops:.3g} FLOPs (6 N D)\n"
            f"memory   {run.state_gb:.3g} GB of training state (16 B/param, "
            f"no activations); {run.state_gb_per_device:.3g} GB per device "
            f"fully sharded: {'fits' if run.fits else 'does NOT fit'} in "
            f"{HARDWARE[run.hardware].memory_gb:.0f} GB\n"
            f"time     {run.hours:.3g} h on {run.devices} x {run.hardware} at "
            f"{run.mfu:.0%} MFU\n"
            f"cost     ${run.dollars:,.2f} at "
            f"${HARDWARE[run.hardware].usd_per_hour:.2f} per device-hour "
            f"(prices as of {run.prices_as_of})")

    train_app = typer.Typer(
        help="Benchmark the training step (chapter 8).",
        no_args_is_help=True)
    app.add_typer(train_app, name="train")

    @train_app.command("bench")
    def train_bench(
        model: Annotated[Optional[list[str]], typer.Option(
            help="ModelConfig preset(s): ci, laptop, gpu, gpt2-small; "
            "repeat for several.")] = None,
        precision: Annotated[Optional[list[str]], typer.Option(
            help="fp32, bf16 or fp16 (GPU); repeat for several.")] = None,
        compile: Annotated[str, typer.Option(
            help="off, on or both.")] = "both",
        batch_size: Annotated[int, typer.Option(min=1)] = 16,
        context_length: Annotated[int, typer.Option(min=1)] = 256,
        vocab_size: Annotated[Optional[int], typer.Option(
            min=1, help="Default: the preset's.")] = None,
        d_model: Annotated[Optional[int], typer.Option(
            min=1, help="Override the preset's width.")] = None,
        n_layers: Annotated[Optional[int], typer.Option(
            min=1, help="Override the preset's depth.")] = None,
        n_heads: Annotated[Optional[int], typer.Option(
            min=1, help="Override the preset's heads (and kv heads).")
        ] = None,
        kernels: Annotated[str, typer.Option(
            help="fast (pretrain's default), reference or torch.")
        ] = "fast",
        steps: Annotated[int, typer.Option(
            min=1, help="Timed steps per repeat.")] = 10,
        repeats: Annotated[int, typer.Option(
            min=1, help="Repeats; the median is reported.")] = 3,
        device: Annotated[str, typer.Option()] = "cpu",
        peak_tflops: Annotated[Optional[float], typer.Option(
            min=0.001, help="Peak TFLOP/s for MFU (default: the table's "
            "for a known GPU; none on a CPU).")] = None,
        json_out: Annotated[Optional[Path], typer.Option(
            "--json", dir_okay=False,
            help="Also write the rows to this JSON file.")] = None,
        prefetch: Annotated[bool, typer.Option(
            help="Prepare the next batch during the step, as pretrain "
            "does (--no-prefetch: load it between steps).")] = True,
    ) -> None:
        """Tokens/s, ms/step, MFU and the data loader's share of
        pretrain's step, for presets or shapes, eager and compiled."""
        run_bench(model, precision, compile, batch_size, context_length,
                  vocab_size, {"d_model": d_model, "n_layers": n_layers,
                               "n_heads": n_heads}, kernels, steps,
                  repeats, device, peak_tflops, json_out, prefetch)

    @app.command("bench-train")
    def bench_train(
        model: Annotated[Optional[list[str]], typer.Option(
            help="ModelConfig preset(s); repeat for several.")] = None,
        precision: Annotated[Optional[list[str]], typer.Option(
            help="fp32, bf16 or fp16 (GPU); repeat for several.")] = None,
        compile: Annotated[str, typer.Option(
            help="off, on or both.")] = "both",
        batch_size: Annotated[int, typer.Option(min=1)] = 16,
        context_length: Annotated[int, typer.Option(min=1)] = 256,
        vocab_size: Annotated[Optional[int], typer.Option(min=1)] = None,
        steps: Annotated[int, typer.Option(
            min=1, help="Timed steps per repeat.")] = 10,
        repeats: Annotated[int, typer.Option(
            min=1, help="Repeats; the median is reported.")] = 3,
        device: Annotated[str, typer.Option()] = "cpu",
    ) -> None:
        """Same as `scratchllm train bench` (kept for old scripts)."""
        run_bench(model, precision, compile, batch_size, context_length,
                  vocab_size, {}, "fast", steps, repeats, device, None,
                  None, True)


def run_bench(models: list[str] | None, precisions: list[str] | None,
              compile: str, batch_size: int, context_length: int,
              vocab_size: int | None, shape: dict[str, int | None],
              kernels: str, steps: int, repeats: int, device: str,
              peak_tflops: float | None, json_out: Path | None,
              prefetch: bool) -> None:
    """Parse the benchmark's choices, run it and print one row each."""
    import dataclasses

    import torch

    from scratchllm.data.atomic import write_json_atomic
    from scratchllm.model.config import ModelConfig
    from scratchllm.train.bench import benchmark_repeats

    if compile not in ("off", "on", "both"):
        fail("--compile must be off, on or both")
    if kernels not in ("fast", "reference", "torch"):
        fail("--kernels must be fast, reference or torch")
    for kind in precisions or []:
        if kind not in ("fp32", "bf16", "fp16"):
            fail(f"--precision must be fp32, bf16 or fp16, not {kind!r}")
    if device.startswith("cuda") and not torch.cuda.is_available():
        fail(f"--device {device}: no CUDA GPU is available here")
    overrides = {name: value for name, value in shape.items()
                 if value is not None}
    if "n_heads" in overrides:
        overrides["n_kv_heads"] = overrides["n_heads"]
    if vocab_size is not None:
        overrides["vocab_size"] = vocab_size
    compiled = {"off": [False], "on": [True], "both": [False, True]}[compile]
    peak = peak_tflops * 1e12 if peak_tflops else None
    configs = {}
    for name in models or ["ci", "laptop"]:
        try:
            configs[name] = dataclasses.replace(
                ModelConfig.preset(name, **overrides),
                context_length=context_length)
        except ValueError as error:
            fail(str(error))
    typer.echo(f"{'model':12s} {'precision':9s} {'compile':7s} "
               f"{'ms/step':>9s} {'tokens/s':>10s} {'MFU':>6s} "
               f"{'data':>6s} {'warmup s':>9s}")
    rows = []
    for name, config in configs.items():
        for kind in precisions or ["fp32", "bf16"]:
            for with_compile in compiled:
                figures = benchmark_repeats(
                    config, repeats, batch_size=batch_size,
                    context_length=context_length, precision=kind,
                    compile=with_compile, steps=steps, device=device,
                    kernels=kernels, peak_flops=peak, prefetch=prefetch)
                mfu = figures["mfu"]
                typer.echo(
                    f"{name:12s} {kind:9s} "
                    f"{'yes' if with_compile else 'no':7s} "
                    f"{figures['ms_per_step']:9.1f} "
                    f"{figures['tokens_per_s']:10,.0f} "
                    f"{'n/a' if mfu is None else f'{mfu:.1%}':>6s} "
                    f"{figures['data_share']:6.2%} "
                    f"{figures['warmup_s']:9.1f}")
                rows.append({"model": name, "precision": kind,
                             "compile": with_compile, "kernels": kernels,
                             "prefetch": prefetch,
                             "batch_size": batch_size,
                             "context_length": context_length,
                             "device": device, **figures})
    if json_out is not None:
        write_json_atomic(json_out, rows)
