"""Issue #16's CPU target: our training step against nanoGPT's.

Side by side in one process, at matched parameter counts, on the same
random token ids, batch, learning-rate schedule and settings (fp32, one
thread unless --threads): one full training step each (forward, loss,
backward, gradient clipping at 1.0, AdamW step, zero_grad), timed in
interleaved rounds with `scratchllm.timing.median_seconds` so that load
from other processes falls on every model alike. Rows:

- nanoGPT: Karpathy's `model.py` (LayerNorm, fused qkv, GELU MLP,
  learned positions, tied head), its own `configure_optimizers` (torch
  AdamW with whatever implementation PyTorch picks on the CPU) and
  `torch.nn.utils.clip_grad_norm_`, loss inside its forward;
- ours fast: `scratchllm.model.GPT` (RMSNorm, RoPE, separate q/k/v,
  SwiGLU) set up as `pretrain` does with `kernels: fast` (the default):
  `speed_up(model)`, `make_optimizer("fast", ...)`, `CLIPPERS["fast"]`,
  chapter 8's `cross_entropy`;
- ours reference: the same with the chapter's reference kernels.

nanoGPT is not a dependency and is not vendored: pass the path of its
`model.py` (https://github.com/karpathy/nanoGPT/blob/master/model.py).
From the repository root:

    PYTHONPATH=src python benchmarks/nanogpt_cpu.py \
        --nanogpt /path/to/nanoGPT/model.py [--shape small laptop]
        [--profile]

Shapes: `small` is nanoGPT's shakespeare-char setup scaled to ~0.8 M
parameters (4 x 128, context 64, vocabulary 65, batch 12); `laptop` is
the book's laptop pretraining shape (4 x 128, context 256, vocabulary
4096, batch 16); `wide` is nanoGPT's shakespeare-char model itself
(6 x 384, context 256, vocabulary 65, batch 12; slow on one thread). Our
SwiGLU hidden size is chosen (a multiple of 8) so that the parameter
counts match as closely as possible; both counts are printed.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import importlib.util
import io
import math
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import torch
import torch.nn.functional as F

from scratchllm.model.config import ModelConfig
from scratchllm.model.gpt import GPT
from scratchllm.timing import median_seconds
from scratchllm.train.fast import (
    CLIPPERS,
    fast_modules,
    make_optimizer,
    speed_up,
)
from scratchllm.train.loop import parameter_groups
from scratchllm.train.loss import cross_entropy

NANOGPT_URL = "https://github.com/karpathy/nanoGPT/blob/master/model.py"


@dataclass(frozen=True)
class Shape:
    """One model and batch shape, in nanoGPT's terms."""

    n_layer: int
    n_head: int
    n_embd: int
    block_size: int
    vocab_size: int
    batch_size: int
    steps: int        # steps per timed round


SHAPES = {
    "small": Shape(4, 4, 128, 64, 65, 12, 20),
    "laptop": Shape(4, 4, 128, 256, 4096, 16, 5),
    "wide": Shape(6, 6, 384, 256, 65, 12, 2),
}

# nanoGPT's config/train_shakespeare_char.py: the optimiser settings and
# schedule both models train with here.
LR, MIN_LR, WARMUP, DECAY_ITERS = 1e-3, 1e-4, 100, 5000
BETAS, WEIGHT_DECAY, GRAD_CLIP = (0.9, 0.99), 0.1, 1.0


def learning_rate(step: int) -> float:
    """nanoGPT's get_lr: linear warm-up, then cosine down to MIN_LR."""
    if step < WARMUP:
        return LR * (step + 1) / (WARMUP + 1)
    ratio = min(1.0, (step - WARMUP) / (DECAY_ITERS - WARMUP))
    return MIN_LR + 0.5 * (1.0 + math.cos(math.pi * ratio)) * (LR - MIN_LR)


def load_nanogpt(path: Path) -> ModuleType:
    """Import nanoGPT's model.py from `path`."""
    spec = importlib.util.spec_from_file_location("nanogpt_model", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    for name in ("GPT", "GPTConfig"):
        if not hasattr(module, name):
            raise ImportError(f"{path} defines no {name}")
    return module


def count(model: torch.nn.Module) -> int:
    """Distinct trainable numbers (tied weights once)."""
    return sum(p.numel() for p in model.parameters())


def our_config(shape: Shape, hidden: int, kv_heads: int = 0
               ) -> ModelConfig:
    """Our model at `shape`'s depth and width, with SwiGLU hidden size
    `hidden` and `kv_heads` key/value heads (0: as many as query heads,
    full multi-head attention as nanoGPT's)."""
    return ModelConfig(
        vocab_size=shape.vocab_size, context_length=shape.block_size,
        d_model=shape.n_embd, n_layers=shape.n_layer,
        n_heads=shape.n_head, n_kv_heads=kv_heads or shape.n_head,
        ffn_hidden=hidden)


def matched_hidden(shape: Shape, target: int, kv_heads: int = 0) -> int:
    """The SwiGLU hidden size (a multiple of 8) whose parameter count is
    closest to `target`."""
    base = count(GPT(our_config(shape, 8, kv_heads)))
    per_unit = 3 * shape.n_embd * shape.n_layer     # gate, up, down
    ideal = 8 + (target - base) / per_unit
    low = max(8, 8 * math.floor(ideal / 8))
    return min((low, low + 8), key=lambda h: abs(
        base + (h - 8) * per_unit - target))


def nanogpt_step(nanogpt: ModuleType, shape: Shape, inputs: torch.Tensor,
                 targets: torch.Tensor, compile: bool = False
                 ) -> tuple[Callable, torch.nn.Module]:
    """nanoGPT's training step (train.py's loop body, one micro-step),
    its model compiled with `compile` (as train.py's compile=True)."""
    config = nanogpt.GPTConfig(
        n_layer=shape.n_layer, n_head=shape.n_head, n_embd=shape.n_embd,
        block_size=shape.block_size, vocab_size=shape.vocab_size,
        bias=False, dropout=0.0)
    with contextlib.redirect_stdout(io.StringIO()):   # its own prints
        model = nanogpt.GPT(config)
        optimizer = model.configure_optimizers(WEIGHT_DECAY, LR, BETAS,
                                               "cpu")
    model.train()
    if compile:
        model.compile()
    step = training_step(model, optimizer,
                         lambda: model(inputs, targets)[1],
                         torch.nn.utils.clip_grad_norm_)
    return step, model


def training_step(model: torch.nn.Module, optimizer: torch.optim.Optimizer,
                  loss_of: Callable[[], torch.Tensor],
                  clip: Callable) -> Callable[[], float]:
    """One step as both loops run it: the scheduled learning rate, the
    loss, backward, clipping at GRAD_CLIP, the optimizer step."""
    clock = {"step": 0}

    def step() -> float:
        lr = learning_rate(clock["step"])
        for group in optimizer.param_groups:
            group["lr"] = lr
        loss = loss_of()
        loss.backward()
        clip(model.parameters(), GRAD_CLIP)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        clock["step"] += 1
        return loss.item()
    return step


def torch_cross_entropy(logits: torch.Tensor,
                        targets: torch.Tensor) -> torch.Tensor:
    """PyTorch's fused cross-entropy (an ablation, not `pretrain`'s)."""
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]),
                           targets.reshape(-1))


def our_step(config: ModelConfig, kernels: str, inputs: torch.Tensor,
             targets: torch.Tensor, loss_fn: Callable = cross_entropy,
             pad: bool = True, compile: bool = False
             ) -> tuple[Callable, torch.nn.Module]:
    """`pretrain`'s step (Run.step with one micro-batch, fp32) with the
    `kernels` it would use, compiled with `compile` (as pretrain's
    compile: true); `loss_fn` and `pad` (the padded head of the fast
    kernels) change it for the ablations."""
    model = GPT(config)
    if kernels != "reference" and pad:
        speed_up(model)
    elif kernels != "reference":
        fast_modules(model)
    optimizer = make_optimizer(
        kernels, parameter_groups(model, WEIGHT_DECAY), lr=LR,
        betas=BETAS, eps=1e-8)
    model.train()
    if compile:
        model.compile()
    step = training_step(model, optimizer,
                         lambda: loss_fn(model(inputs), targets),
                         CLIPPERS[kernels])
    return step, model


def torch_adamw_mode(optimizer_params: list[torch.Tensor]) -> str:
    """Which torch.optim.AdamW implementation runs for these tensors
    when neither fused nor foreach is asked for."""
    try:
        from torch.optim.optimizer import _default_to_fused_or_foreach
        fused, foreach = _default_to_fused_or_foreach(
            optimizer_params, differentiable=False, use_fused=False)
    except (ImportError, TypeError):
        return "unknown"
    return "fused" if fused else "foreach" if foreach else "for-loop"


def ablations(config: ModelConfig, shape: Shape, inputs: torch.Tensor,
              targets: torch.Tensor, compile: bool
              ) -> dict[str, Callable[[], float]]:
    """Our fast step with one thing changed each: PyTorch's
    cross-entropy, no padded head, both; and (architecture, for scale)
    nanoGPT's GELU MLP of 4 x width instead of SwiGLU."""
    rows = {"+ torch CE": {"loss_fn": torch_cross_entropy},
            "+ no pad": {"pad": False},
            "+ torch CE, no pad": {"loss_fn": torch_cross_entropy,
                                   "pad": False}}
    steps = {}
    for name, options in rows.items():
        torch.manual_seed(0)
        steps[name] = our_step(config, "fast", inputs, targets,
                               compile=compile, **options)[0]
    gelu = dataclasses.replace(config, feed_forward="gelu",
                               ffn_hidden=4 * shape.n_embd)
    torch.manual_seed(0)
    steps["+ GELU MLP (arch)"] = our_step(gelu, "fast", inputs,
                                          targets, compile=compile)[0]
    return steps


def many(step: Callable[[], float], steps: int) -> Callable[[], None]:
    """`steps` training steps as one timed work."""
    def work() -> None:
        for _ in range(steps):
            step()
    return work


def profile_rows(steps: dict[str, Callable[[], float]], repeats: int,
                 top: int) -> None:
    """Self CPU milliseconds per step of the `top` heaviest operators,
    per model, from torch.profiler."""
    from torch.profiler import ProfilerActivity, profile

    tables: dict[str, dict[str, tuple[float, float]]] = {}
    for name, step in steps.items():
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            for _ in range(repeats):
                step()
        tables[name] = {
            event.key: (event.self_cpu_time_total / 1e3 / repeats,
                        event.count / repeats)
            for event in prof.key_averages()}
    names = list(steps)
    totals = {name: sum(ms for ms, _ in tables[name].values())
              for name in names}
    heaviest = sorted(
        {op for table in tables.values() for op in table},
        key=lambda op: -max(tables[n].get(op, (0, 0))[0] for n in names))
    print(f"\nprofile: self CPU ms/step (calls/step), {repeats} steps "
          "each, profiler overhead included")
    print(f"{'operator':<34}" + "".join(f"{n:>22}" for n in names))
    for op in heaviest[:top]:
        cells = []
        for name in names:
            ms, calls = tables[name].get(op, (0.0, 0.0))
            cells.append(f"{ms:9.2f} ({calls:6.0f})" if calls else "-")
        print(f"{op[:34]:<34}" + "".join(f"{c:>22}" for c in cells))
    print(f"{'total':<34}" + "".join(f"{totals[n]:>22.2f}" for n in names))
    groups = {
        "matmul (mm/addmm/bmm)": ("aten::mm", "aten::addmm", "aten::bmm"),
        "element-wise mul": ("aten::mul", "aten::mul_"),
    }
    for label, ops in groups.items():
        shares = [sum(tables[n].get(op, (0, 0))[0] for op in ops)
                  / totals[n] for n in names]
        print(f"{label + ' share':<34}"
              + "".join(f"{s:>22.1%}" for s in shares))
    for name in names:
        calls = sum(tables[name].get(op, (0, 0))[1]
                    for op in groups["matmul (mm/addmm/bmm)"])
        print(f"{name}: {calls:.0f} matmul calls/step")


def measure(nanogpt: ModuleType, shape_name: str, shape: Shape,
            args: argparse.Namespace) -> None:
    """Build the three steps at `shape`, time them, print the figures."""
    steps_per_round = args.steps or shape.steps
    generator = torch.Generator().manual_seed(0)
    tokens = torch.randint(0, shape.vocab_size,
                           (shape.batch_size, shape.block_size + 1),
                           generator=generator)
    inputs = tokens[:, :-1].contiguous()
    targets = tokens[:, 1:].contiguous()

    torch.manual_seed(0)
    nano_step, nano_model = nanogpt_step(nanogpt, shape, inputs, targets,
                                         args.compile)
    target = count(nano_model)
    hidden = args.ffn_hidden or matched_hidden(shape, target,
                                               args.kv_heads)
    config = our_config(shape, hidden, args.kv_heads)
    torch.manual_seed(0)
    fast_step, ours = our_step(config, "fast", inputs, targets,
                               compile=args.compile)
    torch.manual_seed(0)
    reference_step, _ = our_step(config, "reference", inputs, targets,
                                 compile=args.compile)
    ours_count = count(ours)
    steps = {"nanoGPT": nano_step, "ours fast": fast_step,
             "ours reference": reference_step}
    if args.ablations:
        steps.update(ablations(config, shape, inputs, targets,
                               args.compile))

    mode = torch_adamw_mode(list(nano_model.parameters()))
    tokens_per_step = shape.batch_size * shape.block_size
    print(f"\n== shape {shape_name}: {shape.n_layer} layers x "
          f"{shape.n_embd}, {shape.n_head} heads, context "
          f"{shape.block_size}, vocabulary {shape.vocab_size}, batch "
          f"{shape.batch_size} ({tokens_per_step} tokens/step), fp32, "
          f"{torch.get_num_threads()} thread(s)"
          + (", every model compiled" if args.compile else ", eager"))
    print(f"parameters: nanoGPT {target:,} (non-embedding "
          f"{nano_model.get_num_params():,}); ours {ours_count:,} "
          f"(SwiGLU hidden {hidden}, {config.n_kv_heads} kv heads): "
          f"{ours_count / target - 1:+.1%}")
    print(f"nanoGPT optimiser: torch.optim.AdamW ({mode} on CPU); ours: "
          "ForeachAdamW (fast), AdamW (reference)")
    first = {name: step() for name, step in steps.items()}
    print("first-step losses: " + ", ".join(
        f"{name} {loss:.4f}" for name, loss in first.items())
        + f" (ln V = {math.log(shape.vocab_size):.4f})")
    for step in steps.values():     # warm-up
        many(step, args.warmup_steps)()

    seconds = median_seconds(
        {name: many(step, steps_per_round) for name, step in steps.items()},
        repeats=args.rounds, warm_up=False)
    print(f"median of {args.rounds} interleaved rounds of "
          f"{steps_per_round} steps:")
    print(f"{'model':<20}{'ms/step':>10}{'tokens/s':>12}{'vs nanoGPT':>12}")
    nano_rate = tokens_per_step * steps_per_round / seconds["nanoGPT"]
    for name, total in seconds.items():
        rate = tokens_per_step * steps_per_round / total
        print(f"{name:<20}{1000 * total / steps_per_round:>10.2f}"
              f"{rate:>12,.0f}{rate / nano_rate:>11.2f}x")
    if args.profile:
        main_rows = ("nanoGPT", "ours fast", "ours reference")
        profile_rows({name: steps[name] for name in main_rows},
                     max(3, steps_per_round // 2), args.top)


def parse(argv: list[str] | None) -> argparse.Namespace:
    """The command line."""
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0],
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--nanogpt", type=Path, required=True,
                        help=f"path of nanoGPT's model.py ({NANOGPT_URL})")
    parser.add_argument("--shape", nargs="+", choices=list(SHAPES),
                        default=["small"])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--steps", type=int, default=0,
                        help="steps per round (default: the shape's)")
    parser.add_argument("--warmup-steps", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--ffn-hidden", type=int, default=0,
                        help="our SwiGLU hidden size (default: matched)")
    parser.add_argument("--kv-heads", type=int, default=0,
                        help="our key/value heads (default: as many as "
                        "query heads; the book's presets use half)")
    parser.add_argument("--ablations", action="store_true",
                        help="also time our fast step with PyTorch's "
                        "cross-entropy, without the padded head, and "
                        "with a GELU MLP")
    parser.add_argument("--compile", action="store_true",
                        help="torch.compile every model (slow to start)")
    parser.add_argument("--profile", action="store_true",
                        help="also print torch.profiler's heaviest ops")
    parser.add_argument("--top", type=int, default=25,
                        help="operators in the profile table")
    args = parser.parse_args(argv)
    for name in ("rounds", "threads", "top"):
        if getattr(args, name) < 1:
            parser.error(f"--{name} must be at least 1")
    if min(args.steps, args.warmup_steps, args.ffn_hidden,
           args.kv_heads) < 0:
        parser.error("--steps, --warmup-steps, --ffn-hidden and "
                     "--kv-heads must be >= 0")
    return args


def main(argv: list[str] | None = None) -> int:
    """Run the comparison; 2 with one error line when nanoGPT's model.py
    is missing or does not load."""
    args = parse(argv)
    if not args.nanogpt.is_file():
        print(f"error: nanoGPT's model.py not found at {args.nanogpt}; "
              f"save {NANOGPT_URL} there (see benchmarks/README.md)",
              file=sys.stderr)
        return 2
    try:
        nanogpt = load_nanogpt(args.nanogpt)
    except Exception as problem:  # noqa: BLE001 (foreign code)
        print(f"error: cannot load nanoGPT from {args.nanogpt}: "
              f"{type(problem).__name__}: {problem}", file=sys.stderr)
        return 2
    for name in args.shape:
        try:
            our_config(SHAPES[name], args.ffn_hidden or 8, args.kv_heads)
        except ValueError as problem:
            print(f"error: shape {name}: {problem}", file=sys.stderr)
            return 2
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}; nanoGPT from {args.nanogpt}")
    for name in args.shape:
        measure(nanogpt, name, SHAPES[name], args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
