"""Chapter 11: instruction data, SFT batches on the chapter 8 loop, LoRA
against peft, evaluation, the chat session and the CLI's errors."""

from __future__ import annotations

import copy
import json

import pytest
import torch
from typer.testing import CliRunner

from scratchllm.cli import app
from scratchllm.data.storyworld import StoryWorld
from scratchllm.compliance.checks import source_problems, trained_on
from scratchllm.data.pipeline import audit as audit_dataset
from scratchllm.finetune.chat import CHAT_TOKENS, end_of_turn_id
from scratchllm.finetune.data import (
    HELDOUT_NAMES,
    HELDOUT_PLACES,
    TASKS,
    DatasetError,
    instructions,
    is_correct,
    load_chat_jsonl,
    satisfies,
    write_instructions,
    write_jsonl,
)
from scratchllm.finetune.evaluate import few_shot_prompt, name_recall, score
from scratchllm.finetune.lora import (
    LoRALinear,
    add_lora,
    merge_lora,
    peft_state_dict,
    trainable_parameters,
)
from scratchllm.finetune.session import ChatSession
from scratchllm.finetune.sft import (
    IGNORE,
    ChatBatches,
    encode_records,
    finetune,
    pack,
    pretraining_bits_per_byte,
    run_sft,
    sft_config,
    with_context,
)
from scratchllm.generate.sampling import SamplingConfig
from scratchllm.model.config import ModelConfig
from scratchllm.model.gpt import GPT
from scratchllm.tokenizer import load_tokenizer
from scratchllm.train import preset, pretrain
from scratchllm.train.checkpoint import load_model

runner = CliRunner()
TINY_MODEL = {"d_model": 32, "n_heads": 2, "n_kv_heads": 1,
              "ffn_hidden": 64, "n_layers": 2}
CHATS = [
    {"messages": [{"role": "user", "content": f"Who has the {thing}?"},
                  {"role": "assistant", "content": f"{name} has it."}]}
    for name in ("Mia", "Tom", "Ada") for thing in ("ball", "kite", "cup")
]


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory, tiny_corpus):
    """A tiny A/: tokenizer, token shards, a 3-step pretrained model and
    a chat JSONL file."""
    root = tmp_path_factory.mktemp("artifacts")
    A = root / "ci"
    stories = [d.text for d in StoryWorld(0).documents(60)]
    tokenizer = tiny_corpus(A, stories, validation=10,
                            vocab_size=256 + 200 + 4)
    tokenizer.save(A / "tokenizer")
    pretrain(preset("ci", artifacts_root=str(root), model_overrides=TINY_MODEL,
                    context_length=32, batch_size=4, max_steps=3,
                    warmup_steps=1, eval_every=3, eval_tokens=128,
                    sample_every=-1, progress=False, precision="fp32",
                    device="cpu"))
    write_jsonl(CHATS, A / "chats.jsonl")
    return root


def tiny_sft_config(root, name, **overrides):
    options = dict(max_steps=4, batch_size=4, context_length=64,
                   warmup_steps=1, log_every=1, eval_tokens=128,
                   precision="fp32", device="cpu", progress=False,
                   model_overrides=TINY_MODEL)
    return sft_config("ci", root, name, **{**options, **overrides})


# --- instruction data -------------------------------------------------

def test_every_reference_answer_is_correct_and_tasks_rotate():
    records = instructions(2 * len(TASKS), heldout=False)
    assert [r["task"] for r in records] == list(TASKS) * 2
    for record in records:
        assert is_correct(record, record["messages"][-1]["content"])
        assert record["messages"][-1]["content"] == record["answer"]
    assert instructions(7, False) == instructions(7, False)


def test_wrong_answers_are_rejected():
    who, where = instructions(2, heldout=False)
    assert is_correct(who, f" {who['answer'].upper()}. ")
    assert not is_correct(who, who["answer"] + " and Tom")
    assert not is_correct(where, "in a house")
    write = instructions(7, heldout=False)[-1]
    assert write["task"] == "write"
    assert not satisfies("Once upon a time, there was.",
                         write["constraints"])
    assert not satisfies(write["answer"].replace(
        write["constraints"][0], "Zed"), write["constraints"])


def test_heldout_names_and_places_never_reach_training():
    for record in instructions(140, heldout=False):
        story = StoryWorld(1).story(int(record["story"].rsplit("-", 1)[1]))
        facts = story.facts
        assert facts["who"] not in HELDOUT_NAMES
        assert facts["friend"] not in HELDOUT_NAMES
        assert facts["where"].split()[-1] not in HELDOUT_PLACES
        if record["task"] == "rewrite":
            assert not set(record["answer"].split()) & HELDOUT_NAMES
    for record in instructions(70, heldout=True):
        story = StoryWorld(1).story(int(record["story"].rsplit("-", 1)[1]))
        assert (story.facts["who"] in HELDOUT_NAMES
                or story.facts["where"].split()[-1] in HELDOUT_PLACES)


def test_write_instructions_manifest(tmp_path):
    manifest = write_instructions(tmp_path, {"train": 14, "val": 7,
                                             "heldout": 7})
    assert manifest["splits"]["train"]["documents"] == 14
    assert json.loads((tmp_path / "manifest.json").read_text()) == manifest
    # chapter 3's conventions: the audit and the compliance checks pass
    assert audit_dataset(tmp_path) == []
    assert source_problems(tmp_path.name, manifest["sources"][0]) == []
    train = load_chat_jsonl(tmp_path / "train.jsonl")
    val = load_chat_jsonl(tmp_path / "val.jsonl")
    assert not {r["story"] for r in train} & {r["story"] for r in val}
    with (tmp_path / "val.jsonl").open("a") as handle:
        handle.write('{"messages": [], "license": "CC0-1.0"}\n')
    assert audit_dataset(tmp_path) == ["val.jsonl: differs from the manifest"]


@pytest.mark.parametrize("lines, message", [
    (['{"messages": [{"role": "user", "content": "hi"}]}', "{oops"],
     ":2: not valid JSON"),
    (['{"text": "no messages"}'], ':1: expected an object with "messages"'),
    (['{"messages": [{"role": "robot", "content": "hi"}]}'],
     ":1: message 0: unknown role 'robot'"),
    (["", "  "], "the dataset is empty"),
])
def test_load_chat_jsonl_errors_name_the_line(tmp_path, lines, message):
    path = tmp_path / "bad.jsonl"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(DatasetError, match=message):
        load_chat_jsonl(path)
    with pytest.raises(DatasetError, match="no such file"):
        load_chat_jsonl(tmp_path / "missing.jsonl")


# --- batches ----------------------------------------------------------

@pytest.fixture(scope="module")
def tokenizer(artifacts):
    return load_tokenizer(artifacts / "ci" / "tokenizer")


def test_encode_records_errors(tokenizer):
    with pytest.raises(DatasetError, match="empty"):
        encode_records(tokenizer, [], 64)
    no_answer = [{"messages": [{"role": "user", "content": "hi"}]}]
    with pytest.raises(DatasetError, match="record 0: .*no assistant"):
        encode_records(tokenizer, no_answer, 64)
    with pytest.raises(DatasetError, match="record 0: .*more than the "
                                           "context of 5"):
        encode_records(tokenizer, CHATS, 5)


def test_pack_fills_rows_in_order():
    assert pack([3, 3, 3, 5, 1], 7) == [[0, 1], [2], [3, 4]]
    assert pack([9], 7) == [[0]]


@pytest.mark.parametrize("packing", [False, True])
def test_batches_mask_and_targets(tokenizer, packing):
    examples = encode_records(tokenizer, CHATS, 64)
    batches = ChatBatches(examples, 4, pad_id=0, context_length=64,
                          packing=packing)
    inputs, targets = batches.batch(3)
    assert inputs.shape == targets.shape and inputs.shape[0] == 4
    assert inputs.shape[1] <= 64
    stop = end_of_turn_id(tokenizer)
    learnt = targets[targets != IGNORE]
    # each conversation contributes its answer and <|im_end|>
    assert (learnt == stop).sum() == sum(
        len(batches.rows[batches.row_of(p)]) for p in range(12, 16))
    for row in range(4):
        ids, labels = batches.tokens(batches.row_of(12 + row))
        n = len(ids) - 1
        assert inputs[row, :n].tolist() == ids[:-1]
        assert targets[row, :n].tolist() == labels[1:]
        assert (targets[row, n:] == IGNORE).all()
    halves = [batches.batch(3, slice(0, 2)), batches.batch(3, slice(2, 4))]
    assert halves[0][0].tolist() == inputs[:2, :halves[0][0].shape[1]] \
        .tolist()
    unmasked = ChatBatches(examples, 4, 0, 64, packing=packing,
                           use_mask=False)
    assert (unmasked.batch(3)[1] != IGNORE).sum() > learnt.numel()


def test_batches_visit_every_row_once_per_epoch(tokenizer):
    examples = encode_records(tokenizer, CHATS, 64)
    batches = ChatBatches(examples, 3, 0, 64, seed=5)
    first_epoch = sorted(batches.row_of(p) for p in range(len(CHATS)))
    assert first_epoch == list(range(len(CHATS)))


# --- the chapter 8 loop with model= and batches= --------------------

def test_pretrain_starts_from_the_given_model(artifacts, tokenizer):
    model, _ = load_model(artifacts / "ci" / "checkpoints" / "pretrain")
    model = with_context(model, 64)
    before = copy.deepcopy(model.state_dict())
    examples = encode_records(tokenizer, CHATS, 64)
    batches = ChatBatches(examples, 4, 0, 64)
    config = tiny_sft_config(artifacts, "hook", lr=1e-9, max_steps=2)
    result = pretrain(config, model=model, batches=batches)
    for name, tensor in result.model.state_dict().items():
        torch.testing.assert_close(tensor, before[name], atol=1e-6, rtol=0)
    fresh = pretrain(tiny_sft_config(artifacts, "fresh", lr=1e-9,
                                     max_steps=2), batches=batches)
    assert not torch.allclose(fresh.model.output.weight,
                              before["output.weight"])


def test_run_sft_full_and_lora(artifacts):
    A = artifacts / "ci"
    args = (A / "checkpoints" / "pretrain", A / "tokenizer",
            A / "chats.jsonl")
    full = run_sft(tiny_sft_config(artifacts, "sft"), *args)
    log = [r for r in json.loads("[" + ",".join(
        (full.run_dir / "log.jsonl").read_text().split("\n")[:-1]) + "]")
        if r["kind"] == "train"]
    assert log[-1]["loss"] < log[0]["loss"]
    lora = run_sft(tiny_sft_config(artifacts, "sft-lora"), *args,
                   lora_rank=2, lora_alpha=4.0)
    merged, _ = load_model(A / "checkpoints" / "sft-lora")
    base, _ = load_model(A / "checkpoints" / "pretrain")
    assert (A / "checkpoints" / "sft-lora" / "training").is_dir()
    changed = {n for n, t in merged.state_dict().items()
               if not torch.equal(t, base.state_dict()[n])}
    assert changed and all(n.endswith(("q_proj.weight", "v_proj.weight"))
                           for n in changed)
    assert lora.run_dir == A / "checkpoints" / "sft-lora"
    # the audit finds the fine-tuning data; validation stays chapter 8's
    for run in ("sft", "sft-lora"):
        assert trained_on(A / "checkpoints" / run) == "instructions"
    assert full.val_bits_per_byte > 0


def test_frozen_vocabulary_keeps_every_row_but_the_trainable_ones(
        artifacts, tokenizer):
    model, _ = load_model(artifacts / "ci" / "checkpoints" / "pretrain")
    model = with_context(model, 64)
    before = model.token_embedding.weight.detach().clone()
    batches = ChatBatches(encode_records(tokenizer, CHATS, 64), 4, 0, 64)
    chat_ids = [tokenizer.special_tokens[t] for t in CHAT_TOKENS]
    frozen = finetune(tiny_sft_config(artifacts, "frozen", lr=1e-2),
                      model, batches, trainable_ids=chat_ids).model
    after = frozen.token_embedding.weight.detach()
    moved = (after != before).any(dim=1).nonzero().flatten().tolist()
    assert moved == sorted(chat_ids)
    assert frozen.output.weight is frozen.token_embedding.weight
    others = [n for n, t in frozen.state_dict().items()
              if "embedding" not in n and "output" not in n
              and not torch.equal(t, model.state_dict()[n])]
    assert others, "the rest of the model must still train"
    trained = finetune(tiny_sft_config(artifacts, "open", lr=1e-2),
                       model, batches).model
    assert (trained.token_embedding.weight != before).any(dim=1).sum() \
        > len(chat_ids)
    # the base model itself is untouched, and decay is refused
    assert torch.equal(model.token_embedding.weight, before)
    with pytest.raises(ValueError, match="weight_decay 0"):
        finetune(tiny_sft_config(artifacts, "decay", weight_decay=0.1),
                 model, batches, trainable_ids=chat_ids)


def test_forgetting_uses_chapter_7s_evaluator(artifacts):
    """The base model's pretraining bits per byte is the figure its
    pretraining run logged: the same windows, the same evaluator."""
    A = artifacts / "ci"
    base, base_config = load_model(A / "checkpoints" / "pretrain")
    log = A / "checkpoints" / "pretrain" / "log.jsonl"
    logged = [json.loads(line) for line in log.read_text().splitlines()
              if '"eval"' in line][-1]
    config = tiny_sft_config(artifacts, "forget")
    assert config.tokens_path() == A / "tokens" / "storyworld"
    value = pretraining_bits_per_byte(with_context(base, 64), config,
                                      base_config.context_length)
    assert value == pytest.approx(logged["val_bits_per_byte"], abs=1e-9)


# --- LoRA -------------------------------------------------------------

def test_lora_matches_peft():
    peft = pytest.importorskip("peft")
    torch.manual_seed(0)
    base = GPT(ModelConfig.preset("ci", vocab_size=300))
    ours = add_lora(copy.deepcopy(base), rank=4, alpha=8.0,
                    targets=("q_proj", "v_proj", "down_proj"))
    for module in ours.modules():
        if isinstance(module, LoRALinear):
            torch.nn.init.normal_(module.lora_B, std=0.05)
    theirs = peft.get_peft_model(copy.deepcopy(base), peft.LoraConfig(
        r=4, lora_alpha=8.0, target_modules=["q_proj", "v_proj",
                                             "down_proj"],
        lora_dropout=0.0))
    missing, unexpected = theirs.load_state_dict(
        {k: v.detach().clone() for k, v in peft_state_dict(ours).items()},
        strict=False)
    assert not unexpected and not [m for m in missing if "lora" in m]
    assert trainable_parameters(ours) == \
        theirs.get_nb_trainable_parameters()[0]
    tokens = torch.randint(0, 300, (2, 12))
    ours_out, theirs_out = ours(tokens), theirs(tokens)
    torch.testing.assert_close(ours_out, theirs_out, rtol=0, atol=1e-6)
    ours_out.square().mean().backward()
    theirs_out.square().mean().backward()
    named = dict(theirs.named_parameters())
    for name, parameter in peft_state_dict(ours).items():
        torch.testing.assert_close(parameter.grad, named[name].grad,
                                   rtol=0, atol=1e-7)
    assert base.token_embedding.weight.grad is None
    merged = merge_lora(ours).state_dict()
    for name, tensor in theirs.merge_and_unload().state_dict().items():
        torch.testing.assert_close(merged[name], tensor, rtol=0, atol=1e-6)


def test_lora_starts_at_the_base_model_and_unmerges():
    torch.manual_seed(0)
    base = GPT(ModelConfig.preset("ci", vocab_size=300)).eval()
    adapted = add_lora(copy.deepcopy(base), rank=2).eval()
    tokens = torch.randint(0, 300, (1, 8))
    torch.testing.assert_close(adapted(tokens), base(tokens))
    assert trainable_parameters(adapted) == 2 * 2 * (
        2 * 64 + 64 + 32)      # q: 64->64, v: 64->32, two layers
    layer = adapted.blocks[0].attention.q_proj
    torch.nn.init.normal_(layer.lora_B)
    original = layer.base.weight.clone()
    before = adapted(tokens)
    layer.merge()
    torch.testing.assert_close(adapted(tokens), before)
    layer.unmerge()
    torch.testing.assert_close(layer.base.weight, original)
    with pytest.raises(ValueError, match="no linear layer"):
        add_lora(copy.deepcopy(base), targets=("nope",))
    with pytest.raises(ValueError, match="rank >= 1"):
        LoRALinear(torch.nn.Linear(4, 4), rank=0, alpha=1.0)


# --- evaluation and chat --------------------------------------------

def test_score_counts_and_intervals():
    records = instructions(14, heldout=True)
    replies = [r["answer"] for r in records[:7]] + ["nope"] * 7
    scores = score(records, replies)
    assert set(scores) == set(TASKS)
    for s in scores.values():
        assert (s.correct, s.total) == (1, 2)
        low, high = s.interval
        assert low < 0.5 < high


class Recaller(torch.nn.Module):
    """A stand-in model that copies one token: once `token` has been
    read, all probability goes to it; before, uniform."""

    def __init__(self, vocab_size: int, token: int) -> None:
        super().__init__()
        self.vocab_size, self.token = vocab_size, token

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        logits = torch.zeros(1, ids.shape[1], self.vocab_size)
        seen = (ids[0] == self.token).long().cummax(0).values.bool()
        logits[0, seen, self.token] = 50.0
        return logits


def test_name_recall_separates_a_copier_from_a_guesser(tokenizer):
    story = ("Once upon a time, there was a girl named Zed. One day, "
             "Zed found a ball. Then Zed went home.")
    record = {"task": "who", "answer": "Zed", "messages": [
        {"role": "user", "content": story + "\n\nWho is the story about?"},
        {"role": "assistant", "content": "Zed"}]}
    where = dict(record, task="where")
    vocab = tokenizer.vocab_size
    guess_first, guess_later = name_recall(
        lambda ids: torch.zeros(1, ids.shape[1], vocab), tokenizer,
        [record, where])
    assert guess_first == pytest.approx(1 / vocab)
    assert guess_later == pytest.approx(1 / vocab)
    copier = Recaller(vocab, tokenizer.encode(" Zed")[0])
    copy_first, copy_later = name_recall(copier, tokenizer, [record])
    assert copy_first == pytest.approx(1 / vocab)
    assert copy_later > 0.99
    with pytest.raises(ValueError, match="twice"):
        name_recall(copier, tokenizer, [where])


def test_few_shot_prompt_respects_the_budget(tokenizer):
    records = instructions(21, heldout=False, tasks=("who",))
    prompt = few_shot_prompt(tokenizer, records[0], records[1:], 400)
    text = tokenizer.decode(prompt)
    assert len(prompt) <= 400 and text.endswith("Answer:")
    assert text.count("Answer:") >= 2
    assert text.endswith(records[0]["messages"][0]["content"]
                         + "\nAnswer:")
    shown = text.split("\nAnswer: ")[1].split("\n")[0]
    assert shown in {r["answer"] for r in records[1:]}


def test_chat_session_history_and_errors(artifacts, tokenizer):
    model, _ = load_model(artifacts / "ci" / "checkpoints" / "pretrain")
    model = with_context(model, 64)
    session = ChatSession(model, tokenizer,
                          SamplingConfig(max_new_tokens=4, temperature=0),
                          system="Be brief.")
    reply = "".join(session.reply("Who has the ball?"))
    assert session.messages[-1] == {"role": "assistant", "content": reply}
    for _ in range(6):
        "".join(session.reply("Who has the kite now?"))
    assert session.messages[0]["role"] == "system"
    with pytest.raises(ValueError, match="unknown role|chat token"):
        "".join(session.reply("hi <|im_end|>"))
    assert session.messages[-1]["role"] == "assistant"
    with pytest.raises(ValueError, match="needs .* tokens but the context"):
        "".join(session.reply("word " * 200))
    session.reset()
    assert session.messages == [{"role": "system", "content": "Be brief."}]


def test_transformers_chat_pipeline_on_the_export(artifacts, tokenizer,
                                                  tmp_path):
    transformers = pytest.importorskip("transformers")
    from scratchllm.finetune.chat import export_chat_hf
    from scratchllm.finetune.evaluate import chat_prompt, complete

    model, _ = load_model(artifacts / "ci" / "checkpoints" / "pretrain")
    torch.manual_seed(1)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    folder = export_chat_hf(model, tokenizer, tmp_path / "hf")
    pipe = transformers.pipeline("text-generation", model=str(folder),
                                 device="cpu")
    messages = CHATS[0]["messages"][:1]
    out = pipe(messages, max_new_tokens=8, do_sample=False)
    theirs = out[0]["generated_text"][-1]["content"]
    ours = complete(model, tokenizer, [chat_prompt(tokenizer, CHATS[0])],
                    8, [end_of_turn_id(tokenizer)])[0]
    assert theirs == ours


# --- the command line -------------------------------------------------

def invoke(*args):
    return runner.invoke(app, [str(a) for a in args])


def sft_args(artifacts, data):
    return ["sft", "--profile", "ci", "--artifacts-root", artifacts,
            "--data", data, "--steps", 2, "--batch-size", 2,
            "--context", 64, "--precision", "fp32",
            "--out", artifacts / "cli-run"]


@pytest.mark.parametrize("content, message", [
    ('{"messages": [{"role": "user", "content": "a"}, '
     '{"role": "assistant", "content": "b"}]}\n{broken\n',
     r"error: .*bad\.jsonl:2: not valid JSON"),
    ('{"messages": [{"role": "wizard", "content": "a"}]}\n',
     r"error: .*bad\.jsonl:1: message 0: unknown role 'wizard'"),
    ('{"messages": [{"role": "user", "content": "a"}]}\n',
     "error: record 0: the conversation has no assistant message"),
    ('\n', r"error: .*bad\.jsonl: the dataset is empty"),
    ('{"messages": [{"role": "user", "content": "' + "word " * 300
     + '"}, {"role": "assistant", "content": "b"}]}\n',
     "error: record 0: the conversation is .* tokens long, more than "
     "the context of 64"),
])
def test_sft_cli_bad_input_is_one_clear_line(artifacts, content, message):
    data = artifacts / "bad.jsonl"
    data.write_text(content)
    result = invoke(*sft_args(artifacts, data))
    assert result.exit_code == 1
    lines = result.output.strip().splitlines()
    assert len(lines) == 1, result.output
    assert __import__("re").search(message, lines[0]), lines[0]


def test_sft_and_chat_cli(artifacts):
    A = artifacts / "ci"
    result = invoke(*sft_args(artifacts, A / "chats.jsonl"))
    assert result.exit_code == 0, result.output
    assert "2 steps on 1 process(es)" in result.output
    assert trained_on(artifacts / "cli-run") == A.name  # the data's folder
    result = invoke("chat", "--profile", "ci", "--artifacts-root",
                    artifacts, "--checkpoint", artifacts / "cli-run",
                    "--tokenizer", A / "tokenizer", "--once",
                    "Who has the ball?", "--max-new-tokens", 4)
    assert result.exit_code == 0, result.output
    result = invoke("chat", "--profile", "ci", "--artifacts-root",
                    artifacts, "--checkpoint", artifacts / "nowhere")
    assert result.exit_code == 1
    assert result.output.startswith("error: ")
