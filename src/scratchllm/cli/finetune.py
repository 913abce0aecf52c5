"""``scratchllm sft`` and ``scratchllm chat`` (chapter 11; hand-written,
never tangled)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Annotated, Optional

import typer

from scratchllm.cli.errors import fail
from scratchllm.cli.options import ARTIFACTS_ROOT, ArtifactsRoot, Profile



def default_instructions(folder: Path, profile: str) -> Path:
    """Chapter 11's StoryWorld instructions in `folder`, written (at the
    profile's sizes) when no earlier run left them there."""
    from scratchllm.finetune.data import (INSTRUCTION_SIZES,
                                          write_instructions)

    data = folder / "data" / "instructions"
    if not (data / "train.jsonl").is_file():
        if profile not in INSTRUCTION_SIZES:
            fail(f"--profile must be one of {', '.join(INSTRUCTION_SIZES)}")
        typer.echo(f"note: no instruction data in {data}; writing "
                   "chapter 11's StoryWorld instructions there", err=True)
        write_instructions(data, INSTRUCTION_SIZES[profile])
    return data / "train.jsonl"


def register(app: typer.Typer) -> None:
    """Add the fine-tuning commands to the main app."""

    @app.command()
    def sft(
        profile: Profile = "laptop",
        artifacts_root: ArtifactsRoot = ARTIFACTS_ROOT,
        data: Annotated[Optional[Path], typer.Option(
            help="Chat JSONL file (default: the chapter's train.jsonl).")
        ] = None,
        checkpoint: Annotated[Optional[Path], typer.Option(
            help="Checkpoint to start from (default: checkpoints/"
            "pretrain).")] = None,
        tokenizer: Annotated[Optional[Path], typer.Option(
            help="Tokenizer folder (default: the chapter 4 tokenizer).")
        ] = None,
        out: Annotated[Optional[Path], typer.Option(
            help="Run folder (default: checkpoints/sft or sft-lora).")
        ] = None,
        steps: Annotated[int, typer.Option(help="Optimizer steps.")] = 200,
        batch_size: Annotated[int, typer.Option(
            help="Rows per step.")] = 16,
        lr: Annotated[float, typer.Option(
            help="Peak learning rate.")] = 1e-3,
        context: Annotated[int, typer.Option(
            help="Context length of the run.")] = 256,
        precision: Annotated[str, typer.Option(
            help="auto (bf16 where it is faster), fp32, bf16 or fp16 "
                 "(GPU).")] = "auto",
        lora_rank: Annotated[int, typer.Option(
            help="LoRA rank; 0 trains every weight.")] = 0,
        lora_alpha: Annotated[float, typer.Option(
            help="LoRA alpha.")] = 16.0,
        mask: Annotated[bool, typer.Option(
            help="Loss only on assistant tokens.")] = True,
        packing: Annotated[bool, typer.Option(
            help="Pack conversations into rows (else pad).")] = True,
        train_vocabulary: Annotated[bool, typer.Option(
            help="Also train the pretrained tokens' embedding rows "
                 "(else only the chat tokens' rows).")] = False,
        seed: Annotated[int, typer.Option()] = 0,
        accelerate: Annotated[bool, typer.Option(
            help="Use Hugging Face Accelerate (for `accelerate launch`).")
        ] = False,
    ) -> None:
        """Fine-tune a checkpoint on chat conversations (chapter 11)."""
        from scratchllm.finetune.sft import run_sft, sft_config
        from scratchllm.train.checkpoint import CheckpointError

        if lora_rank < 0:
            fail(f"--lora-rank must be 0 or more, got {lora_rank}")
        if lora_rank and not 0 < lora_alpha < math.inf:
            fail(f"--lora-alpha must be positive and finite, got "
                 f"{lora_alpha}")
        folder = Path(artifacts_root) / profile
        name = "sft-lora" if lora_rank else "sft"
        checkpoint = checkpoint or folder / "checkpoints" / "pretrain"
        if not checkpoint.exists():
            fail(f"no checkpoint at {checkpoint}: run chapter 8 "
                 "(`scratchllm pretrain`) or pass --checkpoint")
        if data is None:
            data = default_instructions(folder, profile)
        try:
            config = sft_config(
                profile, artifacts_root, name, max_steps=steps,
                dataset=data.resolve().parent.name,  # A/data/<dataset>/
                batch_size=batch_size, lr=lr, context_length=context,
                precision=precision, seed=seed, progress=False,
                warmup_steps=max(1, steps // 10),
                log_every=max(1, steps // 25),
                output_dir=str(out) if out else None)
            accelerator = None
            if accelerate:
                import torch
                from accelerate import Accelerator

                accelerator = Accelerator(cpu=not torch.cuda.is_available())
            result = run_sft(
                config, checkpoint,
                tokenizer or folder / "tokenizer",
                data,
                lora_rank, lora_alpha, mask, packing, accelerator,
                train_vocabulary)
        except (ValueError, FileNotFoundError, CheckpointError,
                RuntimeError) as error:
            fail(str(error))
        if accelerator is None or accelerator.is_main_process:
            processes = accelerator.num_processes if accelerator else 1
            typer.echo(
                f"{result.steps} steps on {processes} process(es) in "
                f"{result.seconds:.0f} s; train loss "
                f"{result.train_loss:.4f}; pretraining validation "
                f"{result.val_bits_per_byte:.4f} bits/byte; checkpoint in "
                f"{result.run_dir}")

    @app.command()
    def chat(
        profile: Profile = "laptop",
        artifacts_root: ArtifactsRoot = ARTIFACTS_ROOT,
        checkpoint: Annotated[Optional[Path], typer.Option(
            help="Chat model (default: checkpoints/sft).")] = None,
        tokenizer: Annotated[Optional[Path], typer.Option(
            help="Tokenizer (default: tokenizer-chat).")] = None,
        system: Annotated[Optional[str], typer.Option(
            help="A system message.")] = None,
        once: Annotated[Optional[str], typer.Option(
            help="Send this one message, print the reply and exit.")
        ] = None,
        temperature: Annotated[float, typer.Option(
            help="0 is greedy.")] = 0.0,
        top_k: Annotated[Optional[int], typer.Option()] = None,
        max_new_tokens: Annotated[int, typer.Option()] = 96,
        seed: Annotated[int, typer.Option()] = 0,
    ) -> None:
        """Chat with a fine-tuned model in the terminal (streaming; /reset
        clears the history, /quit or Ctrl-D ends)."""
        from scratchllm.finetune.session import ChatSession
        from scratchllm.generate.sampling import SamplingConfig
        from scratchllm.tokenizer import load_tokenizer
        from scratchllm.train.checkpoint import CheckpointError, load_model

        folder = Path(artifacts_root) / profile
        try:
            model, _ = load_model(checkpoint
                                  or folder / "checkpoints" / "sft")
            chat_tokenizer = load_tokenizer(
                tokenizer or folder / "tokenizer-chat")
            sampling = SamplingConfig(
                max_new_tokens=max_new_tokens, temperature=temperature,
                top_k=top_k, seed=seed)
            session = ChatSession(model, chat_tokenizer, sampling, system)
        except (ValueError, FileNotFoundError, CheckpointError) as error:
            fail(str(error))

        def say(text: str) -> None:
            try:
                for piece in session.reply(text):
                    typer.echo(piece, nl=False)
            except ValueError as error:
                fail(str(error))
            typer.echo()

        if once is not None:
            say(once)
            return
        typer.echo("Chatting; /reset clears the history, /quit ends.")
        while True:
            try:
                text = input("you> ")
            except EOFError:
                typer.echo()
                return
            if text.strip() == "/quit":
                return
            if text.strip() == "/reset":
                session.reset()
                continue
            if text.strip():
                typer.echo("model> ", nl=False)
                say(text)
