"""The GPU check of issue #16: `pretrain`'s step at GPT-2-small shape.

One short run for a session that has a GPU for minutes (budget: under 8
minutes on one H100/H200, with only PyTorch, transformers and accelerate
installed, no network). From the repository root:

    PYTHONPATH=src python benchmarks/gpu_check.py          # the GPU run
    PYTHONPATH=src python benchmarks/gpu_check.py --tiny   # CPU smoke test

It runs chapter 8's `benchmark_step` (forward, loss, backward, clipping,
AdamW: the step `pretrain` takes) at 12 x 768, context 1024, batch 12,
bf16, random tokens, eager and compiled, with the fast kernels and the
reference ones; then the book's `gpu` preset compiled; then a profiler
look at which attention kernels SDPA picked for each shape. Every row is printed and
written to $OUT/gpu_check.json (or --out) as soon as it is measured, so a
run cut short keeps what it measured. The nanoGPT figures printed beside
ours are the ones issue #16 measured on an H200, not measured here.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import sys
import time
from pathlib import Path

import torch

from scratchllm.data.atomic import write_json_atomic
from scratchllm.model.config import ModelConfig
from scratchllm.model.gpt import GPT
from scratchllm.train.bench import benchmark_step, training_step

#: nanoGPT's bench.py on one H200, GPT-2-small shape, batch 12, bf16
#: (issue #16's table): tokens/s.
NANOGPT_H200 = {"eager": 364e3, "compiled": 458e3}


def plan(tiny: bool) -> list[dict]:
    """The rows to measure: (label, preset, overrides, batch, context,
    compile, kernels)."""
    if tiny:
        shape = {"preset": "ci", "overrides": {"vocab_size": 200},
                 "batch_size": 2, "context_length": 32}
        return [{"label": "tiny eager fast", **shape, "compile": False,
                 "kernels": "fast"},
                {"label": "tiny eager reference", **shape,
                 "compile": False, "kernels": "reference"}]
    gpt2 = {"preset": "gpt2-small", "overrides": {}, "batch_size": 12,
            "context_length": 1024}
    book_gpu = {"preset": "gpu", "overrides": {}, "batch_size": 64,
                "context_length": 512}
    return [
        {"label": "gpt2-small eager fast", **gpt2, "compile": False,
         "kernels": "fast", "nanogpt": NANOGPT_H200["eager"]},
        {"label": "gpt2-small eager reference", **gpt2, "compile": False,
         "kernels": "reference"},
        {"label": "gpt2-small eager torch-fused", **gpt2,
         "compile": False, "kernels": "torch"},
        {"label": "gpt2-small compiled fast", **gpt2, "compile": True,
         "kernels": "fast", "nanogpt": NANOGPT_H200["compiled"]},
        {"label": "book gpu preset compiled fast", **book_gpu,
         "compile": True, "kernels": "fast"},
    ]


def attention_kernels(config: ModelConfig, device: str, batch: int,
                      context: int) -> list[str]:
    """Names of the attention kernels one eager step runs (profiler)."""
    from torch.profiler import ProfilerActivity, profile

    torch.manual_seed(0)
    model = GPT(dataclasses.replace(config, context_length=context)) \
        .to(device)
    tokens = torch.randint(0, config.vocab_size, (batch, context + 1),
                           device=device)
    step = training_step(model, tokens, "bf16" if device == "cuda"
                         else "fp32", False, "fast")
    step()
    activities = [ProfilerActivity.CPU]
    if device == "cuda":
        activities.append(ProfilerActivity.CUDA)
    with profile(activities=activities) as prof:
        step()
    names = {event.key for event in prof.key_averages()}
    return sorted(n for n in names if any(
        key in n.lower() for key in ("flash", "attention", "sdpa", "fmha")))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tiny", action="store_true",
                        help="a tiny shape on the CPU, to check the script")
    parser.add_argument("--out", type=Path,
                        default=Path(os.environ.get("OUT", "out")),
                        help="folder for gpu_check.json (default: $OUT)")
    parser.add_argument("--steps", type=int, default=None)
    parser.add_argument("--budget-s", type=float, default=420.0,
                        help="skip the rows left after this many seconds")
    args = parser.parse_args()
    device = "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cpu" and not args.tiny:
        print("error: no CUDA GPU here; use --tiny for the CPU check",
              file=sys.stderr)
        return 1
    steps = args.steps or (2 if args.tiny else 20)
    precision = "fp32" if device == "cpu" else "bf16"
    report = {
        "torch": torch.__version__, "python": platform.python_version(),
        "device": torch.cuda.get_device_name() if device == "cuda"
        else platform.processor() or "cpu",
        "precision": precision, "steps": steps, "rows": [],
        "nanogpt_reference": "issue #16, one H200, not measured here",
    }
    out = args.out / "gpu_check.json"
    began = time.perf_counter()
    print(f"{report['device']}, torch {report['torch']}, {precision}")
    for row in plan(args.tiny):
        if time.perf_counter() - began > args.budget_s:
            print(f"skipped (time budget): {row['label']}")
            report["rows"].append({"label": row["label"], "skipped": True})
            continue
        config = ModelConfig.preset(row["preset"], **row["overrides"])
        config = dataclasses.replace(config,
                                     context_length=row["context_length"])
        figures = benchmark_step(
            config, batch_size=row["batch_size"],
            context_length=row["context_length"], precision=precision,
            compile=row["compile"], steps=steps, warmup=3, device=device,
            kernels=row["kernels"])
        result = {**row, **figures}
        if row.get("nanogpt"):
            result["vs_nanogpt_h200"] = figures["tokens_per_s"] \
                / row["nanogpt"]
        report["rows"].append(result)
        mfu = figures["mfu"]
        print(f"{row['label']:32s} {figures['ms_per_step']:8.1f} ms "
              f"{figures['tokens_per_s']:11,.0f} tok/s  MFU "
              f"{'n/a' if mfu is None else f'{mfu:.1%}'}  data "
              f"{figures['data_share']:.1%}  warmup "
              f"{figures['warmup_s']:.0f} s", flush=True)
        write_json_atomic(out, report)
    # GQA (the gpu preset: 8 heads, 4 kv heads) may keep SDPA off flash
    report["attention_kernels"] = {}
    for row in plan(args.tiny):
        if row["preset"] in report["attention_kernels"]:
            continue
        names = attention_kernels(
            ModelConfig.preset(row["preset"], **row["overrides"]), device,
            row["batch_size"], row["context_length"])
        report["attention_kernels"][row["preset"]] = names
        print(f"attention kernels, {row['preset']}:", ", ".join(names))
    report["seconds"] = time.perf_counter() - began
    write_json_atomic(out, report)
    print(f"wrote {out} in {report['seconds']:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
