"""``scratchllm distributed``: chapter 9's commands (hand-written).

* ``configs OUT`` writes the Accelerate/DeepSpeed/FSDP config files;
* ``memory`` prints the per-device memory of DDP and ZeRO 1/2/3;
* ``worker COMMAND ...`` is the program each process runs under
  ``accelerate launch --no_python scratchllm distributed worker ...``;
* ``pretrain`` trains on N local processes (CPU or GPU) through that worker;
* ``bench`` measures tokens/s for 1 and N processes on one global batch;
* ``build-ops`` compiles DeepSpeed's C++ ops for CPU runs ahead of time
  (``make setup`` runs it), in the project's ``_build/torch_extensions``.
"""

from __future__ import annotations

import json
from pathlib import Path

import typer

from scratchllm.cli.errors import check_output_folder, fail

distributed_app = typer.Typer(
    help="Scale out: Accelerate configs, memory arithmetic, multi-process "
    "training (chapter 9).",
    no_args_is_help=True,
)


def _multi_gpu_config() -> Path:
    """The shipped multi_gpu.yaml, written to a temporary folder."""
    import tempfile

    from scratchllm.distributed.configs import write_configs

    folder = Path(tempfile.mkdtemp(prefix="scratchllm-configs-"))
    write_configs(folder)
    return folder / "multi_gpu.yaml"


@distributed_app.command("configs")
def configs(
    out: Path = typer.Argument(..., help="Folder to write the files into."),
) -> None:
    """Write the Accelerate config files (multi-GPU, multi-node, FSDP,
    DeepSpeed ZeRO-2/3) into OUT."""
    from scratchllm.distributed.configs import write_configs

    check_output_folder(out)
    for path in write_configs(out):
        typer.echo(path)


@distributed_app.command("memory")
def memory(
    devices: int = typer.Option(8, help="Devices the run is spread over."),
    micro_batch: int = typer.Option(1, help="Sequences per device."),
    seq_length: int = typer.Option(2048, help="Tokens per sequence (at "
                                   "most each model's context)."),
) -> None:
    """Per-device GB of bf16 AdamW training under DDP and ZeRO 1/2/3 for
    the model presets, and the smallest GPU that holds each."""
    from scratchllm.distributed.memory import (
        STRATEGIES,
        device_memory,
        smallest_fit,
    )
    from scratchllm.model.config import PRESETS, ModelConfig

    if devices < 1 or micro_batch < 1 or seq_length < 1:
        raise typer.BadParameter("devices, micro-batch and seq-length must "
                                 "be positive")
    typer.echo(f"{'preset':>10} {'strategy':>8} {'GB':>8}  smallest GPU")
    for name in PRESETS:
        config = ModelConfig.preset(name)
        length = min(seq_length, config.context_length)
        for strategy in STRATEGIES:
            need = device_memory(config, strategy, devices, micro_batch,
                                 length).total
            typer.echo(f"{name:>10} {strategy:>8} {need / 1e9:8.2f}  "
                       f"{smallest_fit(need) or 'none'}")


@distributed_app.command(
    "worker",
    context_settings={"allow_extra_args": True,
                      "ignore_unknown_options": True},
    add_help_option=False,
)
def worker(ctx: typer.Context) -> None:
    """The per-process program (run it under accelerate launch):
    pretrain | check | deepspeed | fail, with --profile, --config,
    --set field=JSON, --out."""
    from scratchllm.distributed.worker import main

    main(ctx.args)


def _settings(values: list[str]) -> list[str]:
    """Validate ``field=JSON`` pairs and turn them into ``--set`` options."""
    options = []
    for item in values:
        key, sep, value = item.partition("=")
        if not sep:
            raise typer.BadParameter(f"--set wants field=value, got {item!r}")
        try:
            json.loads(value)
        except ValueError:
            value = json.dumps(value)
        options.append(f"--set={key}={value}")
    return options


def _checked_options(profile: str | None, config: Path | None,
                     settings: list[str]) -> list[str]:
    """Check the run's TrainConfig and its token shards here, before any
    process starts (a worker's failure is a page of per-rank
    tracebacks); return ``--mixed_precision`` matching its precision
    (pretrain refuses to run when the two disagree)."""
    import argparse

    from scratchllm.distributed.worker import train_config

    if config is not None and not config.is_file():
        fail(f"no such config file: {config}")
    arguments = argparse.Namespace(
        profile=profile, config=str(config) if config else None,
        set=[setting.removeprefix("--set=") for setting in settings])
    checked = train_config(arguments)
    index = checked.tokens_path() / "index.json"
    if not index.is_file():
        fail(f"no token shards at {index.parent} (missing index.json): run "
             "chapter 4 first or set tokens_dir")
    from scratchllm.train.loop import pick_device, run_precision

    precision = run_precision(checked, pick_device(checked, None))
    return ["--mixed_precision", {"fp32": "no"}.get(precision, precision)]


@distributed_app.command("pretrain")
def pretrain(
    processes: int = typer.Option(2, min=1,
                                  help="Processes on this machine."),
    profile: str | None = typer.Option(
        None, help="TrainConfig preset (default: the --config file's "
        "profile, else ci)."),
    config: Path | None = typer.Option(None, help="YAML/TOML config."),
    set_: list[str] = typer.Option([], "--set", help="field=value "
                                   "override (repeatable)."),
    config_file: Path | None = typer.Option(
        None, help="Accelerate config (default: multi_gpu.yaml)."),
    timeout: float = typer.Option(3600, min=1, help="Kill the run after "
                                  "this many seconds."),
) -> None:
    """Chapter 8's pretrain on N local processes via accelerate launch."""
    from scratchllm.distributed.launch import launch

    import math

    if not 0 < timeout < math.inf:
        fail(f"--timeout must be a positive number of seconds, got {timeout}")
    settings = _settings(set_)
    precision = _checked_options(profile, config, settings)
    if config_file is not None and not config_file.is_file():
        fail(f"no such Accelerate config: {config_file}")
    arguments = ["pretrain", *settings]
    if profile is not None:
        arguments += ["--profile", profile]
    if config is not None:
        arguments += ["--config", str(config)]
    accelerate_config = config_file or _multi_gpu_config()
    result = launch(arguments, processes, accelerate_config, precision,
                    timeout=timeout, check=False)
    typer.echo(result.output)
    raise typer.Exit(result.returncode)


@distributed_app.command("bench")
def bench(
    processes: int = typer.Option(2, help="Processes to compare with 1."),
    profile: str = typer.Option("ci", help="TrainConfig preset."),
    steps: int = typer.Option(10, help="Steps per run."),
    repeats: int = typer.Option(3, help="Runs per process count."),
    set_: list[str] = typer.Option([], "--set", help="field=value "
                                   "override (repeatable)."),
    out: Path = typer.Option(Path("_build/bench/distributed"),
                             help="Folder for the runs' logs."),
) -> None:
    """Median tokens/s of 1 vs N processes on the same global batch (CPU
    processes on a machine without GPUs)."""
    from scratchllm.distributed.bench import compare_processes

    if steps < 3 or repeats < 1 or processes < 2:
        raise typer.BadParameter("need steps >= 3, repeats >= 1 and "
                                 "processes >= 2")
    settings = _settings(set_)
    precision = _checked_options(profile, None, settings)
    check_output_folder(out)

    def heard(repeat: int, count: int, tokens_per_s: float) -> None:
        typer.echo(f"repeat {repeat}: {count} process(es): "
                   f"{tokens_per_s:,.0f} tokens/s")

    medians = compare_processes(processes, profile, steps, repeats,
                                settings, out, _multi_gpu_config(),
                                precision, on_run=heard)
    one, many = medians[1], medians[processes]
    typer.echo(f"median: 1 process {one:,.0f} tokens/s; {processes} "
               f"processes {many:,.0f} tokens/s; ratio {many / one:.2f}")


@distributed_app.command("build-ops")
def build_ops() -> None:
    """Compile the C++ ops DeepSpeed needs on CPU (its shared-memory
    collectives) into the project's build folder, so that no run or test
    compiles them; a no-op when they are up to date."""
    import importlib.util
    import os
    import time

    from scratchllm.distributed.launch import (
        clear_stale_locks,
        extensions_folder,
    )

    if importlib.util.find_spec("deepspeed") is None:
        typer.echo("deepspeed is not installed: no ops to build.")
        return
    folder = extensions_folder()
    os.environ["TORCH_EXTENSIONS_DIR"] = str(folder)
    os.environ["DS_ACCELERATOR"] = "cpu"
    for lock in clear_stale_locks(folder):
        typer.echo(f"removed a stale lock left by a killed build: {lock}")
    from deepspeed.ops.op_builder.cpu import ShareMemCommBuilder

    builder = ShareMemCommBuilder()
    if not builder.is_compatible():
        typer.echo(f"{builder.NAME} does not build here; DeepSpeed falls "
                   "back to gloo.")
        return
    began = time.perf_counter()
    try:
        builder.jit_load(verbose=False)
    except (RuntimeError, OSError) as error:  # the compiler failed
        first = (str(error).splitlines() or [repr(error)])[0]
        typer.secho(f"error: building {builder.NAME} in {folder} failed: "
                    f"{first}", fg=typer.colors.RED, err=True)
        raise typer.Exit(1) from None
    typer.echo(f"{builder.NAME} is built in {folder} "
               f"({time.perf_counter() - began:.1f} s)")


def register(app: typer.Typer) -> None:
    """Add the ``distributed`` command group to the main CLI."""
    app.add_typer(distributed_app, name="distributed")
