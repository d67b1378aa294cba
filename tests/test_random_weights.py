"""--random-weights: shipped configs and tokenizers, built and booted offline.

Budget: the whole file runs in well under a minute on one thread (three
bridges of 6-12 layers, each booted once).
"""

from __future__ import annotations

import json
import socket
from importlib import resources

import pytest
import torch

from pytest_annotate.models.random_weights import RandomModel, TokenizerFallbackWarning, available_random_configs, boot_random_bridge, build_random_model, load_random_config, load_shipped_tokenizer

torch.set_num_threads(1)

# Published shapes: (n_layers, d_model, n_heads, d_mlp, d_vocab of the weights, n_ctx)
PUBLISHED = {
    "gpt2": (12, 768, 12, 3072, 50257, 1024),
    "EleutherAI/pythia-70m": (6, 512, 8, 2048, 50304, 2048),
    "EleutherAI/pythia-70m-deduped": (6, 512, 8, 2048, 50304, 2048),
    "EleutherAI/pythia-160m": (12, 768, 12, 3072, 50304, 2048),
    "EleutherAI/pythia-160m-deduped": (12, 768, 12, 3072, 50304, 2048),
    "EleutherAI/pythia-410m": (24, 1024, 16, 4096, 50304, 2048),
    "EleutherAI/pythia-410m-deduped": (24, 1024, 16, 4096, 50304, 2048),
}
BOOTED = ["gpt2", "EleutherAI/pythia-70m", "EleutherAI/pythia-160m-deduped"]

# Known ids. The longer cases are llama.cpp's tokenizer test vectors, which
# were produced with the Hugging Face tokenizers of openai-community/gpt2 and
# mosaicml/mpt-7b (whose tokenizer is GPT-NeoX-20B's, i.e. Pythia's).
GPT2_IDS = [
    ("Hello world", [15496, 995]),
    (" 5", [642]),
    (" May", [1737]),
    ("<|endoftext|>", [50256]),
    ("1 2 3 4", [16, 362, 513, 604]),
    (" Hello, world!", [18435, 11, 995, 0]),
    ("\n\n\n", [628, 198]),
    ("   Hello", [220, 220, 18435]),
    ("333333333", [24840, 2091, 20370]),
    ("Äpfel", [127, 226, 79, 69, 417]),
    ("ied 4 ½ months", [798, 604, 25208, 1933]),
]
NEOX_IDS = [
    ("Hello world", [12092, 1533]),
    ("<|endoftext|>", [0]),
    ("<|padding|>", [1]),
    (" Hello, world!", [24387, 13, 1533, 2]),
    ("\n\n\n", [2756]),
    # runs of spaces are added tokens 50254-50276 in this tokenizer
    ("  ", [50276]),
    ("    Hello\n    Hello", [50274, 12092, 187, 50274, 12092]),
    ("333333333", [26409, 1610, 20084]),
    ("Äpfel", [37515, 18569, 293]),
    ("ied 4 ½ months", [728, 577, 24142, 2607]),
    ("Cửa Việt", [36, 6829, 244, 66, 17721, 35177, 85]),
]


@pytest.fixture(scope="module")
def gpt2_tokenizer():
    tokenizer, is_real, _ = load_shipped_tokenizer("gpt2")
    assert is_real
    return tokenizer


@pytest.fixture(scope="module")
def neox_tokenizer():
    tokenizer, is_real, _ = load_shipped_tokenizer("gpt_neox")
    assert is_real
    return tokenizer


@pytest.mark.parametrize(("text", "ids"), GPT2_IDS)
def test_gpt2_tokenizer_matches_known_ids(gpt2_tokenizer, text, ids):
    assert gpt2_tokenizer.encode(text, add_special_tokens=False) == ids


@pytest.mark.parametrize(("text", "ids"), NEOX_IDS)
def test_neox_tokenizer_matches_known_ids(neox_tokenizer, text, ids):
    assert neox_tokenizer.encode(text, add_special_tokens=False) == ids


def test_tokenizer_sizes_and_bos(gpt2_tokenizer, neox_tokenizer):
    assert len(gpt2_tokenizer) == 50257
    assert len(neox_tokenizer) == 50277
    assert gpt2_tokenizer.bos_token_id == gpt2_tokenizer.eos_token_id == 50256
    assert neox_tokenizer.bos_token_id == neox_tokenizer.eos_token_id == 0
    # Built with add_bos_token=True, so TransformerLens keeps it instead of
    # re-loading it from the hub.
    assert gpt2_tokenizer("Hello world").input_ids == [50256, 15496, 995]
    assert neox_tokenizer("Hello world").input_ids == [0, 12092, 1533]


def test_available_configs_are_the_shipped_files():
    names = available_random_configs()
    assert names == sorted(PUBLISHED)
    for name in BOOTED:
        assert name in names


@pytest.mark.parametrize("name", sorted(PUBLISHED))
def test_shipped_config_has_published_shape(name):
    from transformers import AutoConfig

    raw = load_random_config(name)
    assert raw["architectures"] and raw["model_type"]
    cfg = AutoConfig.for_model(**raw)
    n_layers, d_model, n_heads, d_mlp, d_vocab, n_ctx = PUBLISHED[name]
    assert cfg.num_hidden_layers == n_layers
    assert cfg.hidden_size == d_model
    assert cfg.num_attention_heads == n_heads
    assert cfg.vocab_size == d_vocab
    if raw["model_type"] == "gpt2":
        assert raw["architectures"] == ["GPT2LMHeadModel"]
        assert cfg.n_inner is None  # 4 * n_embd
        assert cfg.n_positions == n_ctx
        assert cfg.activation_function == "gelu_new"
        assert cfg.tie_word_embeddings is True
    else:
        assert raw["architectures"] == ["GPTNeoXForCausalLM"]
        assert cfg.intermediate_size == d_mlp
        assert cfg.max_position_embeddings == n_ctx
        assert cfg.rope_parameters["partial_rotary_factor"] == 0.25
        assert cfg.rope_parameters["rope_theta"] == 10000
        assert cfg.use_parallel_residual is True
        assert cfg.tie_word_embeddings is False
        assert (cfg.bos_token_id, cfg.eos_token_id) == (0, 0)


def test_unbooted_variants_share_a_booted_config():
    """Deduped and non-deduped Pythia share one architecture: booting one covers both.

    The 410m pair is only checked for shape here (building it takes ~6 s).
    """
    booted = {name: load_random_config(name) for name in BOOTED}
    for name in available_random_configs():
        if name in BOOTED or "410m" in name:
            continue
        assert load_random_config(name) in booted.values(), name
    assert load_random_config("EleutherAI/pythia-410m") == load_random_config(
        "EleutherAI/pythia-410m-deduped"
    )


def test_unknown_name_names_the_value_and_the_choices():
    with pytest.raises(ValueError) as info:
        build_random_model("EleutherAI/pythia-12b")
    message = str(info.value)
    assert "'EleutherAI/pythia-12b'" in message
    for name in available_random_configs():
        assert name in message


def test_transformer_lens_alias_resolves_to_official_name():
    raw = load_random_config("pythia-70m")  # TransformerLens' deprecated alias
    assert raw["hidden_size"] == 512


@pytest.fixture
def no_network(monkeypatch):
    """Fail any socket connection or DNS look-up, and record the attempts."""
    attempts: list = []

    def refuse(*args, **kwargs):
        attempts.append(args)
        raise OSError("network access attempted during an offline test")

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    return attempts


@pytest.fixture(scope="module", params=BOOTED)
def booted(request):
    """(name, bridge, random model, tokens of "1 2 3 4", logits, cache), one boot each."""
    with pytest.MonkeyPatch.context() as mp:
        attempts: list = []

        def refuse(*args, **kwargs):
            attempts.append(args)
            raise OSError("network access attempted while booting offline")

        mp.setenv("HF_HUB_OFFLINE", "1")
        mp.setattr(socket.socket, "connect", refuse)
        mp.setattr(socket, "getaddrinfo", refuse)
        bridge, rm = boot_random_bridge(request.param, seed=0, device="cpu")
        tokens = bridge.to_tokens("1 2 3 4")
        with torch.no_grad():
            logits, cache = bridge.run_with_cache(tokens)
    assert attempts == []
    return request.param, bridge, rm, tokens, logits, cache


def test_boot_gives_published_dimensions(booted):
    name, bridge, rm, *_ = booted
    n_layers, d_model, n_heads, d_mlp, d_vocab, n_ctx = PUBLISHED[name]
    assert isinstance(rm, RandomModel)
    assert rm.official_name == name
    assert rm.tokenizer_is_real
    assert "random weights" in rm.note and "not judged" in rm.note
    assert not rm.hf_model.training
    cfg = bridge.cfg
    assert (cfg.n_layers, cfg.d_model, cfg.n_heads, cfg.d_mlp, cfg.d_vocab, cfg.n_ctx) == (
        n_layers,
        d_model,
        n_heads,
        d_mlp,
        d_vocab,
        n_ctx,
    )


def test_logits_shape_and_bos(booted):
    name, bridge, rm, tokens, logits, _ = booted
    d_vocab = PUBLISHED[name][4]
    if name == "gpt2":
        # GPT-2: BOS (<|endoftext|>, 50256) is prepended.
        assert tokens.tolist() == [[50256, 16, 362, 513, 604]]
        assert logits.shape == (1, 5, d_vocab)
    else:
        # TransformerLens' NeoX adapter sets default_prepend_bos=False (Pythia
        # was trained without BOS), with real weights as with random ones.
        assert tokens.tolist() == [[18, 374, 495, 577]]
        assert logits.shape == (1, 4, d_vocab)
        assert bridge.to_tokens("1 2 3 4", prepend_bos=True).tolist() == [[0, 18, 374, 495, 577]]
    assert torch.isfinite(logits).all()


def test_hook_points_exist_with_shapes(booted):
    name, bridge, _, tokens, _, cache = booted
    n_layers, d_model, n_heads, *_ = PUBLISHED[name]
    pos = tokens.shape[1]
    for i in range(n_layers):
        assert cache[f"blocks.{i}.hook_resid_pre"].shape == (1, pos, d_model)
        assert cache[f"blocks.{i}.attn.hook_pattern"].shape == (1, n_heads, pos, pos)
        assert cache[f"blocks.{i}.hook_mlp_out"].shape == (1, pos, d_model)
    # Attention patterns are causal distributions even with random weights.
    pattern = cache["blocks.0.attn.hook_pattern"][0]
    assert torch.allclose(pattern.sum(-1), torch.ones(n_heads, pos), atol=1e-5)
    assert torch.triu(pattern, diagonal=1).abs().max() == 0
    assert f"blocks.{n_layers - 1}.hook_resid_post" in cache
    assert f"blocks.{n_layers}.hook_resid_pre" not in cache


def test_seed_determinism_and_global_rng_untouched(no_network):
    torch.manual_seed(1234)
    expected_next = torch.rand(3)
    torch.manual_seed(1234)
    a = build_random_model("EleutherAI/pythia-70m", seed=0)
    assert torch.equal(torch.rand(3), expected_next)
    b = build_random_model("EleutherAI/pythia-70m", seed=0)
    c = build_random_model("EleutherAI/pythia-70m", seed=1)
    sa, sb, sc = (m.hf_model.state_dict() for m in (a, b, c))
    assert sa.keys() == sb.keys() == sc.keys()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert not all(torch.equal(sa[k], sc[k]) for k in sa)
    assert {p.dtype for p in a.hf_model.parameters()} == {torch.float32}
    assert no_network == []


def test_missing_tokenizer_falls_back_to_gpt2_explicitly(monkeypatch, no_network):
    import pytest_annotate.models.random_weights as rw

    table = dict(rw._TOKENIZER_FOR_MODEL_TYPE)
    del table["gpt_neox"]
    monkeypatch.setattr(rw, "_TOKENIZER_FOR_MODEL_TYPE", table)
    with pytest.warns(TokenizerFallbackWarning, match="GPT-2"):
        rm = build_random_model("EleutherAI/pythia-70m")
    assert rm.tokenizer_is_real is False
    assert "NOT the model's own tokenizer" in rm.note
    assert rm.tokenizer.encode("Hello world", add_special_tokens=False) == [15496, 995]


def test_tokenizer_files_and_licences_are_present():
    """pyproject's package-data ("configs/*.json", "tokenizers/**/*") ships these."""
    root = resources.files("pytest_annotate.models")
    for folder, files in {
        "tokenizers/gpt2": ["vocab.json", "merges.txt", "LICENSE"],
        "tokenizers/gpt-neox-20b": ["tokenizer.json", "LICENSE-Apache-2.0"],
    }.items():
        for f in files:
            assert root.joinpath(folder, f).is_file(), f"{folder}/{f}"
    vocab = json.loads(root.joinpath("tokenizers/gpt2/vocab.json").read_text(encoding="utf-8"))
    assert len(vocab) == 50257
