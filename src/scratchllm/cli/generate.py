"""``scratchllm generate``, ``scratchllm eval`` and
``scratchllm generate-bench`` (chapter 10; hand-written, never tangled)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Optional

import typer

from scratchllm.cli.errors import fail
from scratchllm.cli.options import (ARTIFACTS_ROOT, ArtifactsRoot, Profile,
                                    Threads)

if TYPE_CHECKING:
    from scratchllm.model.gpt import GPT
    from scratchllm.tokenizer import Tokenizer


def load(
    profile: str,
    artifacts_root: Path,
    checkpoint: Optional[Path],
    tokenizer: Optional[Path],
) -> tuple[GPT, Tokenizer]:
    """The pretrained model and its tokenizer, or a readable error."""
    from scratchllm.train.checkpoint import (CheckpointError, load_model,
                                             matching_tokenizer)

    artifacts = artifacts_root / profile
    checkpoint = checkpoint or artifacts / "checkpoints" / "pretrain"
    tokenizer = tokenizer or artifacts / "tokenizer"
    for what, path in (("checkpoint", checkpoint), ("tokenizer", tokenizer)):
        if not path.exists():
            fail(f"no {what} at {path}; run the book's earlier chapters "
                 f"(`scratchllm book execute --profile {profile}`) or "
                 f"pass --{what}")
    try:
        model, _ = load_model(checkpoint)
        return model, matching_tokenizer(checkpoint, tokenizer)
    except (CheckpointError, ValueError, OSError) as error:
        fail(str(error))


def register(app: typer.Typer) -> None:
    """Add the generation and evaluation commands to the main app."""

    @app.command()
    def generate(
        prompt: Annotated[Optional[str], typer.Argument(
            help="Text to continue; '<|endoftext|>' starts a new "
            "document.")] = None,
        interactive: Annotated[bool, typer.Option(
            "--interactive", "-i",
            help="Read prompts in a loop (Ctrl-D to quit).")] = False,
        max_new_tokens: Annotated[int, typer.Option(min=0)] = 100,
        temperature: Annotated[float, typer.Option(
            help="0 is greedy.")] = 0.8,
        top_k: Annotated[Optional[int], typer.Option()] = None,
        top_p: Annotated[Optional[float], typer.Option()] = None,
        repetition_penalty: float = 1.0,
        stop: Annotated[Optional[list[str]], typer.Option(
            help="A string that ends the completion (repeatable).")] = None,
        seed: int = 0,
        stream: Annotated[bool, typer.Option(
            help="Print tokens as they are produced.")] = True,
        profile: Profile = "laptop",
        artifacts_root: ArtifactsRoot = ARTIFACTS_ROOT,
        checkpoint: Annotated[Optional[Path], typer.Option(
            help="Checkpoint folder (default: the profile's pretrain "
            "run).")] = None,
        tokenizer: Annotated[Optional[Path], typer.Option(
            help="Tokenizer folder (default: the profile's).")] = None,
        threads: Threads = 1,
    ) -> None:
        """Continue a prompt with the pretrained model (streaming)."""
        import torch

        from scratchllm.generate.decode import stream as stream_text
        from scratchllm.generate.sampling import SamplingConfig

        if prompt is None and not interactive:
            fail("give a PROMPT, or --interactive for a prompt loop")
        if prompt is not None and interactive:
            fail("give a PROMPT or --interactive, not both")
        try:
            config = SamplingConfig(
                max_new_tokens=max_new_tokens, temperature=temperature,
                top_k=top_k, top_p=top_p,
                repetition_penalty=repetition_penalty,
                stop=tuple(stop or ()), seed=seed)
        except ValueError as error:
            fail(str(error))
        torch.set_num_threads(threads)
        model, text_tokenizer = load(profile, artifacts_root, checkpoint,
                                     tokenizer)

        def complete(text: str) -> None:
            pieces = stream_text(model, text_tokenizer, text, config)
            try:
                if stream:
                    typer.echo(text, nl=False)
                    for piece in pieces:
                        typer.echo(piece, nl=False)
                        sys.stdout.flush()
                    typer.echo("")
                else:
                    shown = "".join(pieces)
                    typer.echo(text + shown)
            except ValueError as error:
                if not interactive:
                    fail(str(error))
                typer.secho(f"error: {error}", fg=typer.colors.RED,
                            err=True)

        if not interactive:
            complete(prompt)
            return
        typer.echo("Type a prompt and press Enter; Ctrl-D quits.")
        while True:
            try:
                line = input("> ")
            except (EOFError, KeyboardInterrupt):
                typer.echo("")
                return
            complete(line)

    @app.command("eval")
    def evaluate(
        profile: Profile = "laptop",
        artifacts_root: ArtifactsRoot = ARTIFACTS_ROOT,
        questions: Annotated[Optional[Path], typer.Option(
            help="Also score a multiple-choice JSONL file (our layout, "
            "HellaSwag's or ARC's).")] = None,
        output: Annotated[Optional[Path], typer.Option(
            help="Where to write report.json (default: "
            "A/eval/report/).")] = None,
        threads: Threads = 1,
    ) -> None:
        """Evaluate the pretrained checkpoint and write report.json."""
        import torch

        from scratchllm.eval.report import (EVAL_PRESETS,
                                            evaluate_checkpoint,
                                            write_report)
        from scratchllm.train.checkpoint import CheckpointError

        if profile not in EVAL_PRESETS:
            fail(f"unknown profile {profile!r}; choose one of "
                 f"{list(EVAL_PRESETS)}")
        if questions is not None and not questions.is_file():
            fail(f"no questions file at {questions}")
        artifacts = artifacts_root / profile
        torch.set_num_threads(threads)
        try:
            report = evaluate_checkpoint(artifacts, EVAL_PRESETS[profile],
                                         questions)
        except (CheckpointError, ValueError, OSError, KeyError) as error:
            fail(f"{type(error).__name__}: {error}")
        path = write_report(report, output or artifacts / "eval" / "report")
        figures = {key: report[key] for key in report
                   if key not in ("settings", "model")}
        typer.echo(json.dumps(figures, indent=2))
        typer.echo(f"wrote {path}")

    @app.command("generate-bench")
    def generate_bench(
        preset: Annotated[str, typer.Option(
            help="Model preset to time when no --checkpoint is given.")
        ] = "laptop",
        checkpoint: Annotated[Optional[Path], typer.Option(
            help="Time this checkpoint instead of a fresh model.")] = None,
        new_tokens: Annotated[list[int], typer.Option(
            help="Lengths to time (repeatable).")] = [32, 64, 128, 256],
        prompt_tokens: Annotated[int, typer.Option(min=1)] = 16,
        repeats: Annotated[int, typer.Option(min=1)] = 3,
        hf: Annotated[bool, typer.Option(
            help="Also compare with transformers' generate.")] = True,
        threads: Threads = 1,
    ) -> None:
        """Time decoding with and without the KV cache, and vs HF."""
        import dataclasses

        import torch

        from scratchllm.generate.bench import (cache_speedups,
                                               compare_with_hf)
        from scratchllm.model.config import ModelConfig
        from scratchllm.model.gpt import GPT

        if min(new_tokens) < 1 or prompt_tokens < 1 or repeats < 1:
            fail("--new-tokens, --prompt-tokens and --repeats must be "
                 "positive")
        torch.set_num_threads(threads)
        torch.manual_seed(0)
        if checkpoint is not None:
            from scratchllm.train.checkpoint import load_model
            trained, config = load_model(checkpoint)
        else:
            try:
                config = ModelConfig.preset(preset)
            except ValueError as error:
                fail(str(error))
            trained = GPT(config)
        needed = prompt_tokens + max(new_tokens)
        config = dataclasses.replace(
            config, context_length=max(config.context_length, needed))
        model = GPT(config).eval()
        model.load_state_dict(trained.state_dict())
        prompt = torch.randint(0, config.vocab_size, (prompt_tokens,),
                               generator=torch.Generator().manual_seed(0))
        prompt_ids = prompt.tolist()
        typer.echo(f"model: {model.num_parameters():,} parameters, "
                   f"{prompt_tokens}-token prompt, {threads} thread(s), "
                   f"median of {repeats}")
        typer.echo(f"{'new tokens':>10} {'no cache':>12} {'KV cache':>12} "
                   f"{'speed-up':>9}")
        for row in cache_speedups(model, prompt_ids, sorted(new_tokens),
                                  repeats):
            typer.echo(f"{row['new_tokens']:>10} "
                       f"{row['no_cache_tokens_per_s']:>10.1f}/s "
                       f"{row['cache_tokens_per_s']:>10.1f}/s "
                       f"{row['speedup']:>8.1f}x")
        if hf:
            result = compare_with_hf(model, prompt_ids, max(new_tokens),
                                     repeats)
            ours = result["ours_tokens_per_s"]
            theirs = result["hf_tokens_per_s"]
            typer.echo(
                f"greedy, {result['new_tokens']} new tokens: ours "
                f"{ours:.1f}/s, transformers {theirs:.1f}/s "
                f"(ours/theirs {ours / theirs:.2f}); identical tokens: "
                f"{result['identical']}")
