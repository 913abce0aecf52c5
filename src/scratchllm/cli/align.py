"""``scratchllm align reward|dpo|grpo`` (chapter 12; hand-written, never
tangled)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from scratchllm.cli.errors import fail
from scratchllm.cli.options import ARTIFACTS_ROOT, ArtifactsRoot, Profile
SftOption = Annotated[Path | None, typer.Option(
    help="Starting checkpoint (default: <artifacts>/checkpoints/sft).")]
TokenizerOption = Annotated[Path | None, typer.Option(
    help="Chat tokenizer (default: <artifacts>/tokenizer-chat).")]
TokensOption = Annotated[Path | None, typer.Option(
    help="Token shards for the validation loss (default: "
    "<artifacts>/tokens/storyworld).")]
OutputOption = Annotated[Path | None, typer.Option(
    help="Run folder (default: <artifacts>/checkpoints/<method>).")]
StepsOption = Annotated[int, typer.Option(min=1, help="Optimiser steps.")]
BatchOption = Annotated[int, typer.Option(
    min=1, help="Pairs (or answers, for grpo) per step.")]
LrOption = Annotated[float, typer.Option(min=0.0, help="Peak learning rate.")]
PairsArgument = Annotated[Path, typer.Argument(
    help="prompt/chosen/rejected JSONL file.")]


if TYPE_CHECKING:
    from accelerate import Accelerator

    from scratchllm.align.dpo import PairSampler
    from scratchllm.align.train import Objective
    from scratchllm.model.gpt import GPT
    from scratchllm.train.config import TrainConfig
    from scratchllm.train.loop import TrainResult


@dataclass(frozen=True)
class Budget:
    """The optimisation settings every align command takes."""

    steps: int
    batch_size: int
    lr: float
    seed: int


class Setting:
    """The paths and model shared by every align command."""

    def __init__(self, profile: str, artifacts_root: Path,
                 sft: Path | None, tokenizer: Path | None,
                 tokens: Path | None) -> None:
        from scratchllm.tokenizer import load_tokenizer
        from scratchllm.train.checkpoint import load_model

        artifacts = artifacts_root / profile
        self.profile, self.artifacts_root = profile, str(artifacts_root)
        self.sft = sft or artifacts / "checkpoints/sft"
        self.tokens = tokens or artifacts / "tokens/storyworld"
        folder = tokenizer or artifacts / "tokenizer-chat"
        if not Path(folder).exists():
            raise FileNotFoundError(
                f"no chat tokenizer at {folder}: run chapter 11 first or "
                "pass --tokenizer")
        self.tokenizer = load_tokenizer(folder)
        self.model, self.model_config = load_model(self.sft)

    def config(self, method: str, output: Path | None, budget: Budget,
               **values: Any) -> TrainConfig:
        """The TrainConfig of this run; `dataset` (default: preferences)
        is the A/data folder the audit traces the run to."""
        from scratchllm.align.train import align_config

        return align_config(
            self.profile, method, self.artifacts_root,
            self.model_config.context_length, tokens_dir=str(self.tokens),
            output_dir=str(output) if output else None,
            max_steps=budget.steps, batch_size=budget.batch_size,
            lr=budget.lr, seed=budget.seed, **values)


@contextmanager
def one_line_errors() -> Iterator[None]:
    """Turn a failed run's error into one ``error:`` line."""
    try:
        yield
    except (ValueError, FileNotFoundError, RuntimeError) as error:
        fail(str(error).splitlines()[0])


def make_accelerator() -> Accelerator:
    """An Accelerator; on a machine without GPUs, gloo CPU processes."""
    import torch
    from accelerate import Accelerator

    return Accelerator(cpu=not torch.cuda.is_available())


def pair_sampler(setting: Setting, pairs_path: Path, batch_size: int,
                 seed: int,
                 accelerator: Accelerator | None = None) -> PairSampler:
    """The checked, encoded pairs with reference log-probs."""
    from scratchllm.align.dpo import (
        PairSampler,
        encode_pairs,
        reference_logprobs,
    )
    from scratchllm.align.preferences import load_pairs
    from scratchllm.finetune.chat import end_of_turn_id

    pairs = load_pairs(pairs_path)
    encoded = encode_pairs(setting.tokenizer, pairs,
                           setting.model_config.context_length)
    pad_id = end_of_turn_id(setting.tokenizer)
    if accelerator is not None:
        setting.model.to(accelerator.device)
    answers = [example for pair in encoded for example in pair]
    reference = reference_logprobs(setting.model, answers, pad_id)
    return PairSampler(encoded, reference, batch_size, pad_id, seed)


def train_on_pairs(method: str, pairs: Path, setting: Setting,
                   budget: Budget, output: Path | None, model: GPT,
                   objective: Objective,
                   accelerator: Accelerator | None = None) -> TrainResult:
    """Train `model` on the preference pairs in `pairs` (dpo, reward)."""
    from scratchllm.align.train import align

    sampler = pair_sampler(setting, pairs, budget.batch_size, budget.seed,
                           accelerator)
    config = setting.config(method, output, budget,
                            dataset=pairs.resolve().parent.name)
    return align(config, model, setting.model_config, sampler, objective,
                 setting.tokenizer, accelerator)


def report(method: str, result: TrainResult, main: bool = True) -> None:
    """One line about the finished run."""
    if main:
        typer.echo(f"{method}: {result.steps} steps, loss "
                   f"{result.train_loss:.4f}, {result.seconds:.1f} s -> "
                   f"{result.run_dir}")


def register(app: typer.Typer) -> None:
    """Add `scratchllm align ...` to the main app."""
    align_app = typer.Typer(
        help="Align a chat model with preferences or rewards (chapter 12).",
        no_args_is_help=True)
    app.add_typer(align_app, name="align")

    @align_app.command()
    def dpo(
        pairs: PairsArgument,
        beta: Annotated[float, typer.Option(
            min=0.0, help="DPO's beta: the price of moving away from "
            "the reference.")] = 0.1,
        steps: StepsOption = 50, batch_size: BatchOption = 8,
        lr: LrOption = 5e-4, seed: int = 0,
        accelerate: Annotated[bool, typer.Option(
            help="Run under `accelerate launch` (one process each).")
        ] = False,
        profile: Profile = "laptop",
        artifacts_root: ArtifactsRoot = ARTIFACTS_ROOT,
        sft: SftOption = None, tokenizer: TokenizerOption = None,
        tokens: TokensOption = None, output: OutputOption = None,
    ) -> None:
        """Direct preference optimisation from the SFT model."""
        from scratchllm.align.dpo import dpo_objective

        with one_line_errors():
            if beta <= 0:
                raise ValueError("beta must be positive")
            accelerator = make_accelerator() if accelerate else None
            setting = Setting(profile, artifacts_root, sft, tokenizer,
                              tokens)
            result = train_on_pairs(
                "dpo", pairs, setting, Budget(steps, batch_size, lr, seed),
                output, setting.model, dpo_objective(beta), accelerator)
        report("dpo", result,
               accelerator is None or accelerator.is_main_process)

    @align_app.command()
    def reward(
        pairs: PairsArgument,
        steps: StepsOption = 50, batch_size: BatchOption = 8,
        lr: LrOption = 1.5e-3, seed: int = 0,
        profile: Profile = "laptop",
        artifacts_root: ArtifactsRoot = ARTIFACTS_ROOT,
        sft: SftOption = None, tokenizer: TokenizerOption = None,
        tokens: TokensOption = None, output: OutputOption = None,
    ) -> None:
        """Train a Bradley–Terry reward model on preference pairs."""
        from scratchllm.align.reward import RewardModel, reward_objective

        with one_line_errors():
            setting = Setting(profile, artifacts_root, sft, tokenizer,
                              tokens)
            result = train_on_pairs(
                "reward", pairs, setting,
                Budget(steps, batch_size, lr, seed), output,
                RewardModel.from_model(setting.model), reward_objective)
        report("reward", result)

    @align_app.command()
    def grpo(
        requests: Annotated[int, typer.Option(
            min=1, help="StoryWorld story requests to train on.")] = 256,
        reward_model: Annotated[Path | None, typer.Option(
            help="Optimise this reward model's score instead of the "
            "exact StoryWorld reward.")] = None,
        group_size: Annotated[int, typer.Option(
            min=2, help="Answers sampled per prompt.")] = 8,
        beta: Annotated[float, typer.Option(
            min=0.0, help="Weight of the KL penalty.")] = 0.04,
        max_new_tokens: Annotated[int, typer.Option(
            min=1, help="Longest answer sampled.")] = 64,
        steps: StepsOption = 50, batch_size: BatchOption = 16,
        lr: LrOption = 5e-4, seed: int = 0,
        profile: Profile = "laptop",
        artifacts_root: ArtifactsRoot = ARTIFACTS_ROOT,
        sft: SftOption = None, tokenizer: TokenizerOption = None,
        tokens: TokensOption = None, output: OutputOption = None,
    ) -> None:
        """GRPO: online RL from the exact reward (or a reward model)."""
        from scratchllm.align.grpo import (
            GroupSampler,
            exact_reward,
            grpo_objective,
            learned_reward,
        )
        from scratchllm.align.preferences import story_requests
        from scratchllm.align.reward import load_reward_model
        from scratchllm.align.sampling import prompt_ids
        from scratchllm.align.train import align
        from scratchllm.generate.sampling import SamplingConfig
        from scratchllm.train.checkpoint import load_model

        with one_line_errors():
            if batch_size % group_size:
                raise ValueError(f"batch size {batch_size} is not a "
                                 f"multiple of the group size {group_size}")
            setting = Setting(profile, artifacts_root, sft, tokenizer,
                              tokens)
            context = setting.model_config.context_length
            asked = story_requests(requests, seed=1)
            longest = max(len(prompt_ids(setting.tokenizer, request.prompt,
                                         context)) for request in asked)
            budget = min(max_new_tokens, context - longest - 8)
            if budget < 1:
                raise ValueError(f"the context of {context} tokens leaves "
                                 "no room for answers")
            scorer = exact_reward if reward_model is None else \
                learned_reward(load_reward_model(reward_model),
                               setting.tokenizer, context)
            sampler = GroupSampler(
                setting.model, load_model(setting.sft)[0],
                setting.tokenizer, asked, scorer,
                SamplingConfig(max_new_tokens=budget, seed=seed),
                group_size=group_size,
                prompts_per_step=batch_size // group_size, updates=2,
                seed=seed)
            config = setting.config("grpo", output,
                                    Budget(steps, batch_size, lr, seed))
            result = align(config, setting.model, setting.model_config,
                           sampler, grpo_objective(beta=beta),
                           setting.tokenizer)
        report("grpo", result)
