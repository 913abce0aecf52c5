"""Chapter 7: export to Hugging Face Llama format and back."""

import json
import os

import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
transformers = pytest.importorskip("transformers")

from scratchllm.model.config import ModelConfig  # noqa: E402
from scratchllm.model.gpt import GPT  # noqa: E402
from scratchllm.model.hf import export_hf, hf_config, import_hf  # noqa: E402


def perturbed_model(**overrides) -> GPT:
    """A tiny model whose weights (norm scales included) are not at their
    initial values, so a mistake in any tensor would show."""
    torch.manual_seed(0)
    config = ModelConfig.preset("ci", vocab_size=300, **overrides)
    model = GPT(config).eval()
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.add_(0.05 * torch.randn_like(parameter))
    return model


def exported_pair(folder, **overrides):
    """A perturbed model, exported to `folder`, and transformers' Llama
    loaded back from there (both in eval mode)."""
    model = perturbed_model(**overrides)
    export_hf(model, folder)
    reference = transformers.LlamaForCausalLM.from_pretrained(folder)
    return model, reference.eval()


@pytest.mark.parametrize("overrides", [
    {},
    {"tie_embeddings": False},
    {"n_kv_heads": 1, "rope_theta": 500.0, "norm_eps": 1e-6},
    {"n_kv_heads": 4},
])
def test_transformers_llama_gives_our_logits(tmp_path, overrides):
    model, reference = exported_pair(tmp_path, **overrides)
    tokens = torch.randint(0, 300, (2, 40))
    with torch.no_grad():
        ours = model(tokens)
        theirs = reference(tokens).logits
    torch.testing.assert_close(ours, theirs, atol=2e-5, rtol=2e-5)
    assert reference.config.tie_word_embeddings == (
        model.config.tie_embeddings)


def test_transformers_generate_matches_our_cached_greedy_decoding(tmp_path):
    model, reference = exported_pair(tmp_path)
    prompt = torch.randint(0, 300, (1, 8))
    with torch.no_grad():
        expected = reference.generate(
            prompt, max_new_tokens=10, do_sample=False, pad_token_id=0
        )
        cache = model.new_cache(1)
        logits = model(prompt, cache)
        tokens = [prompt]
        for _ in range(10):
            tokens.append(logits[:, -1:].argmax(-1))
            logits = model(tokens[-1], cache)
    assert torch.cat(tokens, 1).tolist() == expected.tolist()


def test_attention_mask_matches_transformers_llama_left_padded(tmp_path):
    model, reference = exported_pair(tmp_path)
    tokens = torch.randint(0, 300, (3, 24))
    real = torch.ones(3, 24, dtype=torch.bool)
    real[1, :9] = False
    real[2, :20] = False
    with torch.no_grad():
        ours = model(tokens, attention_mask=real)
        theirs = reference(tokens, attention_mask=real.long()).logits
        cache = model.new_cache(3)
        prefix = model(tokens[:, :16], cache, attention_mask=real[:, :16])
        rest = model(tokens[:, 16:], cache, attention_mask=real)
    torch.testing.assert_close(ours[real], theirs[real], atol=2e-5,
                               rtol=2e-5)
    cached = torch.cat([prefix, rest], dim=1)
    torch.testing.assert_close(cached[real], theirs[real], atol=2e-5,
                               rtol=2e-5)


def test_import_round_trip_is_exact(tmp_path):
    for overrides in ({}, {"tie_embeddings": False}):
        model = perturbed_model(**overrides)
        export_hf(model, tmp_path / str(overrides))
        again = import_hf(tmp_path / str(overrides)).eval()
        assert again.config == model.config
        for (name, a), (_, b) in zip(model.state_dict().items(),
                                     again.state_dict().items()):
            assert torch.equal(a, b), name


def test_import_of_a_transformers_saved_model(tmp_path):
    config = transformers.LlamaConfig(
        vocab_size=120, hidden_size=32, intermediate_size=64,
        num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
        max_position_embeddings=64, tie_word_embeddings=False,
    )
    torch.manual_seed(0)
    reference = transformers.LlamaForCausalLM(config).eval()
    reference.save_pretrained(tmp_path)
    model = import_hf(tmp_path).eval()
    tokens = torch.randint(0, 120, (2, 20))
    with torch.no_grad():
        torch.testing.assert_close(model(tokens), reference(tokens).logits,
                                   atol=2e-5, rtol=2e-5)


def test_config_json_fields(tmp_path):
    model = perturbed_model()
    export_hf(model, tmp_path)
    written = json.loads((tmp_path / "config.json").read_text())
    assert written["architectures"] == ["LlamaForCausalLM"]
    assert written["num_key_value_heads"] == 2
    assert written["max_position_embeddings"] == 128


def test_export_refuses_non_llama_variants(tmp_path):
    with pytest.raises(ValueError, match="Llama"):
        hf_config(ModelConfig.preset("ci", norm="layer"))
    with pytest.raises(ValueError, match="Llama"):
        export_hf(GPT(ModelConfig.preset("ci", feed_forward="gelu")),
                  tmp_path)


def test_import_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="config.json"):
        import_hf(tmp_path)
    export_hf(perturbed_model(), tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    config["model_type"] = "gpt2"
    (tmp_path / "config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match="Llama"):
        import_hf(tmp_path)


def test_export_with_tokenizer_writes_loadable_files(tmp_path):
    from scratchllm.tokenizer.train import train_bpe

    words = ["the", "cat", "sat", "on", "mat", "a", "dog", "ran", "big",
             "red", "house", "tree", "bird", "sang", "under", "over"]
    texts = [" ".join(words[(i * j) % len(words)] for j in range(40))
             for i in range(1, 30)]
    tokenizer = train_bpe(texts, vocab_size=280)
    model = perturbed_model()
    export_hf(model, tmp_path, tokenizer=tokenizer)
    written = json.loads((tmp_path / "config.json").read_text())
    assert written["eos_token_id"] == tokenizer.eot_id
    hf_tokenizer = transformers.PreTrainedTokenizerFast.from_pretrained(
        tmp_path)
    text = "the cat ran."
    assert hf_tokenizer.encode(text) == tokenizer.encode(text)
    with pytest.raises(ValueError, match="embedding rows"):
        small = GPT(ModelConfig.preset("ci", vocab_size=200))
        export_hf(small, tmp_path / "small", tokenizer=tokenizer)
