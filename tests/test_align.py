"""Chapter 12: preference data, the true reward, sequence log-probs, DPO,
the reward model, GRPO, training on chapter 8's loop, and the CLI."""

from __future__ import annotations

import dataclasses
import json

import pytest
import torch
from typer.testing import CliRunner

from scratchllm.align.dpo import (
    PairSampler,
    dpo_loss,
    dpo_objective,
    encode_answer,
    encode_pairs,
    pad,
    reference_logprobs,
    sequence_logprobs,
)
from scratchllm.align.grpo import (
    GroupSampler,
    exact_reward,
    group_advantages,
    grpo_loss,
    grpo_objective,
    learned_reward,
)
from scratchllm.align.metrics import kl_to_reference, paired_interval
from scratchllm.align.preferences import (
    PreferencePair,
    Request,
    label_pairs,
    load_pairs,
    save_pairs,
    score,
    story_requests,
    true_reward,
    write_manifest,
)
from scratchllm.align.reward import RewardModel, load_reward_model
from scratchllm.align.sampling import answer_texts, prompt_ids
from scratchllm.align.train import align, align_config
from scratchllm.cli import app
from scratchllm.data.storyworld import StoryWorld
from scratchllm.finetune.chat import add_chat_tokens, end_of_turn_id
from scratchllm.generate.sampling import SamplingConfig
from scratchllm.model.config import ModelConfig
from scratchllm.model.gpt import GPT
from scratchllm.train.checkpoint import (
    load_checkpoint,
    load_model,
    save_checkpoint,
)

CONTEXT = 96


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory, tiny_corpus):
    """ci/tokenizer-chat, ci/checkpoints/sft (a tiny random GPT) and
    ci/tokens/storyworld, as chapters 4 and 11 leave them."""
    root = tmp_path_factory.mktemp("artifacts")
    A = root / "ci"
    stories = [s.text for s in StoryWorld(0).documents(120)]
    base = tiny_corpus(A, stories, validation=20, vocab_size=400)
    tokenizer = add_chat_tokens(base)
    tokenizer.save(A / "tokenizer-chat")
    config = ModelConfig(vocab_size=tokenizer.vocab_size,
                         context_length=CONTEXT, d_model=32, n_layers=2,
                         n_heads=2, n_kv_heads=1, ffn_hidden=64)
    torch.manual_seed(0)
    model = GPT(config)
    save_checkpoint(A / "checkpoints" / "sft", 0, model.state_dict(), {
        "state": {}, "param_groups": []}, {
        "model_config": dataclasses.asdict(config), "train_config": {},
        "tokenizer_sha256": tokenizer.sha256(), "data": {}})
    return root


@pytest.fixture(scope="module")
def tokenizer(artifacts):
    from scratchllm.tokenizer import load_tokenizer

    return load_tokenizer(artifacts / "ci" / "tokenizer-chat")


@pytest.fixture()
def sft(artifacts):
    return load_model(artifacts / "ci" / "checkpoints" / "sft")[0]


def some_pairs(count: int = 6) -> list[PreferencePair]:
    requests = story_requests(count, seed=3)
    return [PreferencePair(
        r.prompt, f"{r.hero} was a happy cat who lived in a big city.",
        "The dog was sad.") for r in requests]


# --- the true reward and the pairs -------------------------------------

def test_true_reward_checks():
    request = Request("Write the start of a story about Mia.", "Mia")
    best = score(request, "Mia was a happy girl who lived in a big city. "
                          "She was very brave and loved to play outside.")
    assert best.names_hero and best.cheerful
    assert best.well_formed == 1.0 and best.total == 3.0
    worst = score(request, "the the dog dog")
    assert worst.total == 0.0
    one_line = score(request, "Mia was a happy girl who lived in a big "
                              "city.")
    assert one_line.well_formed == 0.5, "at least two sentences count"
    assert not score(request, "Mial was glad.").names_hero


def test_requests_are_deterministic_and_differ_by_seed():
    assert story_requests(5, seed=1) == story_requests(5, seed=1)
    assert story_requests(5, seed=1) != story_requests(5, seed=2)
    assert story_requests(1)[0].prompt.startswith(
        "Write the start of a story about")


def test_label_pairs_prefers_the_higher_true_reward():
    requests = story_requests(40, seed=1)
    answers = [[f"{r.hero} was happy.", "no", "no"] for r in requests]
    answers[0] = ["same", "same"]          # a tie: dropped
    pairs = label_pairs(requests, answers)
    assert len(pairs) == 39
    by_prompt = {r.prompt: r for r in requests}
    assert all(true_reward(by_prompt[p.prompt], p.chosen)
               > true_reward(by_prompt[p.prompt], p.rejected)
               for p in pairs)
    flipped = label_pairs(requests, answers, noise=0.5, seed=0)
    share = sum(p.chosen == "no" for p in flipped) / len(flipped)
    assert 0.25 < share < 0.75
    with pytest.raises(ValueError, match="noise"):
        label_pairs(requests, answers, noise=0.7)


def test_jsonl_round_trip(tmp_path):
    pairs = some_pairs()
    path = save_pairs(pairs, tmp_path / "pairs.jsonl")
    assert load_pairs(path) == pairs
    assert load_pairs(path)[2].source == f"{path}:3"


@pytest.mark.parametrize(("line", "message"), [
    ('{"prompt": "p", "chosen": "a", "rejected": "a"}', "identical"),
    ('{"prompt": "p", "chosen": " ", "rejected": "a"}', "chosen is empty"),
    ('{"prompt": "p", "chosen": "a", "rejected": ""}', "rejected is empty"),
    ('{"prompt": "p", "chosen": "a"}', "missing rejected"),
    ('{"prompt": "p", "chosen": 3, "rejected": "a"}', "must be text"),
    ('["p", "a", "b"]', "expected an object"),
    ('{"prompt": "p", ', "not valid JSON"),
])
def test_bad_pairs_name_file_and_line(tmp_path, line, message):
    path = tmp_path / "bad.jsonl"
    good = '{"prompt": "p", "chosen": "a", "rejected": "b"}'
    path.write_text(f"{good}\n\n{line}\n")
    with pytest.raises(ValueError, match=f"bad.jsonl:3: .*{message}"):
        load_pairs(path)


def test_empty_and_missing_files(tmp_path):
    (tmp_path / "empty.jsonl").write_text("\n")
    with pytest.raises(ValueError, match="no preference pairs"):
        load_pairs(tmp_path / "empty.jsonl")
    with pytest.raises(FileNotFoundError):
        load_pairs(tmp_path / "absent.jsonl")


# --- log-probabilities and DPO -----------------------------------------

def test_answer_mask_covers_answer_and_end_of_turn_only(tokenizer):
    example = encode_answer(tokenizer, "Hi there", "Mia ran.", CONTEXT)
    masked = [i for i, m in zip(example.ids, example.loss_mask) if m]
    assert tokenizer.decode(masked) == "Mia ran.<|im_end|>"
    prompt = prompt_ids(tokenizer, "Hi there", CONTEXT)
    assert example.ids[:len(prompt)] == prompt


def test_prompt_longer_than_context_is_refused(tokenizer):
    long_prompt = "Mia ran to the big city. " * 40
    with pytest.raises(ValueError, match="no room for an answer"):
        encode_answer(tokenizer, long_prompt, "ok", CONTEXT)
    pair = PreferencePair(long_prompt, "a", "b", source="x.jsonl:7")
    with pytest.raises(ValueError, match="x.jsonl:7: the prompt is"):
        encode_pairs(tokenizer, [pair], CONTEXT)


def test_sequence_logprobs_ignore_padding(tokenizer, sft):
    examples = [encode_answer(tokenizer, "Hi", answer, CONTEXT)
                for answer in ("Mia ran.", "Tom was a happy dog all day.")]
    batch = pad(examples, end_of_turn_id(tokenizer))
    together = sequence_logprobs(sft, batch)
    for row, example in enumerate(examples):
        ids = torch.tensor([example.ids])
        per_token = torch.log_softmax(sft(ids[:, :-1]), -1)[
            0, torch.arange(ids.shape[1] - 1), ids[0, 1:]]
        alone = per_token[torch.tensor(example.loss_mask[1:])].sum()
        assert torch.allclose(together[row], alone, atol=1e-5)


def test_dpo_loss_is_log_two_at_the_reference_and_pushes_right():
    chosen = torch.tensor([-5.0, -9.0], requires_grad=True)
    rejected = torch.tensor([-6.0, -4.0], requires_grad=True)
    loss = dpo_loss(chosen, rejected, chosen.detach(), rejected.detach(),
                    beta=0.1)
    assert torch.isclose(loss, torch.log(torch.tensor(2.0)))
    loss.backward()
    assert (chosen.grad < 0).all() and (rejected.grad > 0).all()


def test_pair_sampler_rows_split_the_global_batch(tokenizer):
    encoded = encode_pairs(tokenizer, some_pairs(5), CONTEXT)
    reference = torch.arange(10, dtype=torch.float)
    sampler = PairSampler(encoded, reference, batch_size=4, pad_id=0)
    full = sampler.batch(3, slice(0, 4))
    halves = [sampler.batch(3, slice(0, 2)), sampler.batch(3, slice(2, 4))]
    chosen = torch.cat([h.reference[:2] for h in halves])
    assert torch.equal(full.reference[:4], chosen)
    assert (full.reference[:4] % 2 == 0).all(), "chosen rows come first"
    assert torch.equal(full.reference[4:], full.reference[:4] + 1)
    seen = {i for step in range(5) for i in sampler.indices(step)[:1]}
    epoch = sampler.indices(0) + sampler.indices(1)[:1]
    assert sorted(epoch) == list(range(5)), "an epoch sees every pair once"
    assert seen


def test_dpo_training_on_the_chapter_7_loop(artifacts, tokenizer, sft,
                                            tmp_path):
    encoded = encode_pairs(tokenizer, some_pairs(8), CONTEXT)
    pad_id = end_of_turn_id(tokenizer)
    answers = [e for pair in encoded for e in pair]
    reference = reference_logprobs(sft, answers, pad_id)
    config = align_config("ci", "dpo", str(artifacts), CONTEXT,
                          max_steps=8, batch_size=4, lr=3e-3,
                          output_dir=str(tmp_path / "dpo"),
                          eval_tokens=256)
    before = dpo_objective(0.5)(sft, PairSampler(
        encoded, reference, 8, pad_id).batch(0, slice(0, 8))).item()
    result = align(config, sft, sft.config,
                   PairSampler(encoded, reference, 4, pad_id),
                   dpo_objective(0.5), tokenizer)
    after = dpo_objective(0.5)(sft, PairSampler(
        encoded, reference, 8, pad_id).batch(0, slice(0, 8))).item()
    assert after < before
    saved, _ = load_model(tmp_path / "dpo")
    for name, tensor in saved.state_dict().items():
        assert torch.equal(tensor, sft.state_dict()[name])
    log = [json.loads(line) for line in
           (tmp_path / "dpo" / "log.jsonl").read_text().splitlines()]
    assert {"train", "eval"} <= {record["kind"] for record in log}
    assert result.steps == 8
    meta = load_checkpoint(tmp_path / "dpo").meta
    assert meta["train_config"]["dataset"] == "preferences"
    assert meta["tokenizer_sha256"] == tokenizer.sha256()


def test_preferences_pass_the_data_audit(tmp_path):
    """data/preferences is a chapter 3 dataset: licensed records and a
    manifest with a source and checksummed splits."""
    from scratchllm.compliance.checks import check_provenance
    from scratchllm.data.pipeline import audit

    folder = tmp_path / "ci" / "data" / "preferences"
    save_pairs(some_pairs(3), folder / "train.jsonl")
    manifest = write_manifest(folder, seed=1)
    assert manifest["splits"]["train"]["documents"] == 3
    assert audit(folder) == []
    assert check_provenance(tmp_path / "ci") == []
    assert load_pairs(folder / "train.jsonl") == some_pairs(3)
    with (folder / "train.jsonl").open("a") as handle:
        handle.write("{}\n")
    assert "train.jsonl: differs from the manifest" in audit(folder)


# --- reward model -------------------------------------------------------

def test_reward_model_reads_the_last_answer_token(sft):
    reward_model = RewardModel.from_model(sft)
    torch.nn.init.normal_(reward_model.value_head.weight)
    ids = torch.randint(0, 100, (2, 10))
    mask = torch.zeros(2, 10, dtype=torch.bool)
    mask[:, 3:7] = True
    scores = reward_model.scores(ids, mask)
    changed = ids.clone()
    changed[:, 8:] = 5                    # after the last answer token
    assert torch.equal(reward_model.scores(changed, mask), scores)
    changed[:, 6] = 7                     # the last answer token itself
    assert not torch.equal(reward_model.scores(changed, mask), scores)
    for name, tensor in sft.state_dict().items():
        assert torch.equal(reward_model.state_dict()[name], tensor)


def test_reward_model_trains_saves_and_loads(artifacts, tokenizer, sft,
                                             tmp_path):
    from scratchllm.align.reward import reward_objective

    encoded = encode_pairs(tokenizer, some_pairs(8), CONTEXT)
    sampler = PairSampler(encoded, torch.zeros(16), 4,
                          end_of_turn_id(tokenizer))
    reward_model = RewardModel.from_model(sft)
    config = align_config("ci", "reward", str(artifacts), CONTEXT,
                          max_steps=10, batch_size=4, lr=1e-2,
                          output_dir=str(tmp_path / "rm"),
                          eval_tokens=256)
    align(config, reward_model, sft.config, sampler, reward_objective,
          tokenizer)
    loaded = load_reward_model(tmp_path / "rm")
    batch = sampler.batch(0, slice(0, 4)).sequences
    chosen, rejected = loaded.scores(batch.ids, batch.mask).chunk(2)
    assert (chosen > rejected).all()


# --- GRPO ---------------------------------------------------------------

def test_group_advantages_are_per_group():
    rewards = torch.tensor([[1.0, 3.0], [7.0, 7.0]])
    advantages = group_advantages(rewards)
    assert torch.allclose(advantages[0], torch.tensor([-0.7071, 0.7071]),
                          atol=1e-3)
    assert torch.equal(advantages[1], torch.zeros(2))


def test_grpo_loss_clips_and_penalises_kl():
    mask = torch.ones(2, 3)
    old = torch.log(torch.full((2, 3), 0.5))
    advantages = torch.tensor([1.0, -1.0])
    new = old.clone().requires_grad_()
    grpo_loss(new, old, old, advantages, mask, beta=0.0).backward()
    expected = -advantages[:, None].expand(2, 3) / 3 / 2
    assert torch.allclose(new.grad, expected), "ratio 1: policy gradient"
    far = (old + 1.0).requires_grad_()   # ratio e > 1 + clip
    grpo_loss(far, old, old, advantages, mask, beta=0.0).backward()
    assert torch.equal(far.grad[0], torch.zeros(3)), "clipped: no push"
    assert (far.grad[1] > 0).all(), "a negative advantage still pulls"
    assert grpo_loss(old, old, old, torch.zeros(2), mask, beta=1.0) == 0
    assert grpo_loss(old, old, old - 1, torch.zeros(2), mask, beta=1.0) > 0


def test_grpo_online_sampling_and_training(artifacts, tokenizer, sft,
                                           tmp_path):
    reference = load_model(artifacts / "ci" / "checkpoints" / "sft")[0]
    sampler = GroupSampler(
        sft, reference, tokenizer, story_requests(6, seed=1),
        exact_reward, SamplingConfig(max_new_tokens=8, seed=0),
        group_size=4, prompts_per_step=2, updates=2,
        monitor=learned_reward(RewardModel.from_model(reference),
                               tokenizer, CONTEXT))
    first = sampler.batch(0, slice(0, 8))
    again = sampler.batch(1, slice(4, 8))
    assert torch.equal(again.old, first.old[4:]), "reused for 2 updates"
    assert first.sequences.ids.shape[0] == 8
    assert torch.allclose(first.advantages.view(2, 4).mean(1),
                          torch.zeros(2), atol=1e-5)
    config = align_config("ci", "grpo", str(artifacts), CONTEXT,
                          max_steps=4, batch_size=8, lr=1e-3,
                          output_dir=str(tmp_path / "grpo"),
                          eval_tokens=256)
    align(config, sft, sft.config, sampler, grpo_objective(),
          tokenizer)
    assert [h["step"] for h in sampler.history] == [0, 2]
    assert all("monitor" in h for h in sampler.history)


# --- metrics ------------------------------------------------------------

def test_paired_interval_and_kl(tokenizer, sft):
    mean, low, high = paired_interval([2, 3, 4, 5], [1, 1, 1, 1])
    assert mean == 2.5 and low < 2.5 < high
    examples = [encode_answer(tokenizer, "Hi", "Mia ran.", CONTEXT)]
    batch = pad(examples, 0)
    assert kl_to_reference(sft, sft, batch) == 0.0


def test_answers_stop_before_special_tokens(tokenizer, sft):
    texts = answer_texts(sft, tokenizer, ["Hi", "Write a story."],
                         SamplingConfig(max_new_tokens=6, seed=0),
                         per_prompt=2)
    assert [len(t) for t in texts] == [2, 2]
    specials = tokenizer.special_tokens
    assert not any(s in t for group in texts for t in group
                   for s in specials)


def test_answer_text_drops_stop_token_and_broken_bytes(tokenizer):
    from scratchllm.align.sampling import answer_text, fits

    ids = tokenizer.encode("Mia ran.") + [end_of_turn_id(tokenizer)]
    assert answer_text(tokenizer, ids) == "Mia ran."
    half = list("é".encode())[:1]         # half of a two-byte character
    broken = [tokenizer.byte_ids[b] for b in half]
    assert tokenizer.decode(broken) == "\ufffd"
    assert answer_text(tokenizer, broken) == ""
    assert fits(tokenizer, "Hi", "Mia ran.", CONTEXT)
    assert not fits(tokenizer, "Hi", "Mia ran. " * 60, CONTEXT)


# --- command line -------------------------------------------------------

def run_cli(artifacts, *arguments):
    return CliRunner().invoke(app, [
        "align", *arguments, "--profile", "ci",
        "--artifacts-root", str(artifacts)])


@pytest.mark.parametrize(("record", "message"), [
    ({"prompt": "p", "chosen": "same", "rejected": "same"}, "identical"),
    ({"prompt": "p", "chosen": "", "rejected": "b"}, "chosen is empty"),
    ({"prompt": "Mia ran far. " * 60, "chosen": "a", "rejected": "b"},
     "no room for an answer"),
])
def test_cli_bad_input_is_one_line(artifacts, tmp_path, record, message):
    path = tmp_path / "pairs.jsonl"
    path.write_text(json.dumps(record) + "\n")
    for command in ("dpo", "reward"):
        result = run_cli(artifacts, command, str(path),
                         "--output", str(tmp_path / command))
        assert result.exit_code == 1
        lines = result.output.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: ")
        assert "pairs.jsonl:1: " in lines[0] and message in lines[0]


def test_cli_dpo_trains(artifacts, tmp_path):
    path = save_pairs(some_pairs(4), tmp_path / "pairs.jsonl")
    result = run_cli(artifacts, "dpo", str(path), "--steps", "2",
                     "--batch-size", "2", "--output", str(tmp_path / "run"))
    assert result.exit_code == 0, result.output
    assert result.output.startswith("dpo: 2 steps")
    load_model(tmp_path / "run")
    missing = run_cli(artifacts, "dpo", str(tmp_path / "absent.jsonl"))
    assert missing.exit_code == 1
    assert missing.output.startswith("error: no preference file")


def test_cli_reward_then_grpo_against_it(artifacts, tmp_path):
    path = save_pairs(some_pairs(4), tmp_path / "pairs.jsonl")
    result = run_cli(artifacts, "reward", str(path), "--steps", "2",
                     "--batch-size", "2", "--output", str(tmp_path / "rm"))
    assert result.exit_code == 0, result.output
    grpo = ["grpo", "--requests", "4", "--group-size", "2",
            "--batch-size", "4", "--steps", "2", "--max-new-tokens", "6"]
    for extra in ([], ["--reward-model", str(tmp_path / "rm")]):
        result = run_cli(artifacts, *grpo, *extra,
                         "--output", str(tmp_path / "grpo"))
        assert result.exit_code == 0, result.output
        assert result.output.startswith("grpo: 2 steps")
    uneven = run_cli(artifacts, *grpo[:-6], "--batch-size", "5")
    assert uneven.exit_code == 1
    assert "not a multiple of the group size" in uneven.output


# --- verification against TRL and Accelerate (slow) ---------------------

@pytest.mark.slow
@pytest.mark.parametrize("beta", [0.1, 0.5])
def test_dpo_loss_equals_trl(beta):
    from scratchllm.align.verify import trl_dpo_loss

    generator = torch.Generator().manual_seed(1)
    per_token = -5 * torch.rand(10, 7, generator=generator)
    reference = -30 * torch.rand(10, generator=generator)
    ours = dpo_loss(*per_token.sum(-1).chunk(2), *reference.chunk(2),
                    beta=beta)
    theirs = trl_dpo_loss(per_token, reference, beta)
    assert torch.allclose(ours, theirs, atol=1e-6), (ours, theirs)
    from accelerate import Accelerator
    from accelerate.state import AcceleratorState

    Accelerator(cpu=True, mixed_precision="bf16")   # TRL's state is gone
    AcceleratorState._reset_state(reset_partial_state=True)


@pytest.mark.slow
def test_dpo_on_two_processes_equals_one(artifacts, tmp_path):
    import subprocess
    import sys

    from safetensors.torch import load_file

    from scratchllm.distributed.launch import (
        free_port,
        launch_environment,
        worker_command,
    )
    from scratchllm.train.checkpoint import resolve

    path = save_pairs(some_pairs(8), tmp_path / "pairs.jsonl")
    common = ["align", "dpo", str(path), "--steps", "3", "--batch-size",
              "4", "--lr", "1e-2", "--profile", "ci", "--artifacts-root",
              str(artifacts)]
    program = worker_command()[0]
    weights = {}
    for processes in (1, 2):
        launcher = [sys.executable, "-m", "accelerate.commands.launch",
                    "--multi_gpu", "--num_processes", "2",
                    "--num_machines", "1", "--mixed_precision", "no",
                    "--dynamo_backend", "no", "--main_process_port",
                    str(free_port()), "--no_python", program,
                    ] if processes == 2 else [program]
        extra = ["--accelerate"] if processes == 2 else []
        output = tmp_path / str(processes)
        done = subprocess.run(
            [*launcher, *common, "--output", str(output), *extra],
            capture_output=True, text=True, timeout=600,
            env=launch_environment(processes, cpu=True))
        assert done.returncode == 0, done.stderr[-3000:]
        weights[processes] = load_file(resolve(output) / "model.safetensors")
    sft = load_model(artifacts / "ci" / "checkpoints" / "sft")[0]
    moved = max((weights[1][n] - sft.state_dict()[n]).abs().max().item()
                for n in weights[1])
    assert moved > 1e-4, "the run must change the weights"
    for name, tensor in weights[1].items():
        assert torch.allclose(tensor, weights[2][name], atol=1e-5), name
