"""The residual stream is the sum of its terms, on two architectures and both processings.

Gemma 3 270M (RMSNorm with post-attention/post-MLP norms, rotary positions, gain ``1 + w``) in
``compat`` (the session's ``model``) and ``raw`` processing; GPT-2-style tiny models (learned
positions, LayerNorm with biases) in both, once with GPT-2's initial LayerNorm parameters
(``γ = 1``, ``β = 0``, zero biases) and once with random ones, so that the explicit ``γ``, ``β``,
``b_O`` and ``b_U`` terms are exercised.
"""

from __future__ import annotations

import functools
from pathlib import Path

import pytest
import torch

from pytest_annotate import Lab, PromptError, load_model
from pytest_annotate.scoring.decomposition import LEVELS, decompose
from pytest_annotate.checks.decomposition import DecompositionResult, assert_decomposition_sums, check_decomposition
from pytest_annotate.errors import VerdictError

PROMPT = "The capital of Ireland is"


def make_biased_gpt2(source: Path, target: Path, *, seed: int = 1) -> Path:
    """A copy of a GPT-2 model whose LayerNorm gains/biases and linear biases are random.

    GPT-2's initialization sets ``γ = 1`` and every bias to 0, which would hide any mistake in
    how the decomposition reads them.
    """
    from transformers import AutoTokenizer, GPT2LMHeadModel

    hf = GPT2LMHeadModel.from_pretrained(source)
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, param in hf.named_parameters():
            if name.endswith(".bias"):
                param.copy_(0.1 * torch.randn(param.shape, generator=generator))
            elif ".ln_" in name and name.endswith(".weight"):
                param.copy_(1 + 0.5 * torch.randn(param.shape, generator=generator))
    hf.save_pretrained(target)
    AutoTokenizer.from_pretrained(source).save_pretrained(target)
    return target


@functools.cache
def load_gemma_raw() -> Lab:
    """Gemma 3 270M in raw (HuggingFace) numerics, loaded once per session (test_algebra uses it too)."""
    return load_model("gemma-3-270m", device="cpu", processing="raw")


@pytest.fixture
def gemma_raw() -> Lab:
    return load_gemma_raw()


@pytest.fixture(scope="module")
def biased_dir(tiny_gpt2_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_biased_gpt2(tiny_gpt2_dir, tmp_path_factory.mktemp("biased") / "tiny-gpt2-biased")


@pytest.fixture(scope="module")
def biased(biased_dir: Path):
    return load_model(str(biased_dir), device="cpu")


@pytest.fixture(scope="module")
def biased_raw(biased_dir: Path):
    return load_model(str(biased_dir), device="cpu", processing="raw")


LABS = ["model", "gemma_raw", "tiny_gpt2", "tiny_gpt2_raw", "biased", "biased_raw"]


@pytest.mark.parametrize("lab_name", LABS)
def test_every_identity_holds_to_1e_4(lab_name: str, request: pytest.FixtureRequest) -> None:
    """embed, residual, heads and logit identities, every layer and position, fp32 model, atol 1e-4.

    Measured on gemma-3-270m-q4_k_m (both processings): residual 3e-6 of the RMS (4e-3 to 9e-3
    absolute), heads 6e-6 of the RMS, logits 4e-6. Tiny GPT-2s: all below 4e-7.
    """
    lab = request.getfixturevalue(lab_name)
    answer = " Dublin" if "gemma" in lab.model_id else " is"
    result = assert_decomposition_sums(lab, PROMPT, answer=answer)
    assert result.passed
    assert result.answer_logit == pytest.approx(result.answer_logit_sum, abs=1e-4)
    assert {i.identity for i in result.identities} == {"embed", "residual", "heads", "logits"}


@pytest.mark.parametrize("processing", ["compat", "raw"])
def test_identities_hold_on_pythias_architecture(processing: str) -> None:
    """GPT-NeoX (Pythia): parallel attention and MLP, rotary positions, LayerNorm. Random weights
    (the real ones are not available offline), so only the structure is checked: errors ~4e-7."""
    lab = load_model("pythia-70m-deduped", random_weights=True, device="cpu", processing=processing)
    assert lab.cfg.parallel_attn_mlp
    assert assert_decomposition_sums(lab, PROMPT, answer=" Dublin").passed


@pytest.mark.parametrize("lab_name", ["model", "gemma_raw"])
def test_gemma_residual_is_large_so_errors_are_relative(lab_name: str, request: pytest.FixtureRequest) -> None:
    """Gemma's residual stream has an RMS in the thousands: float32 sums are off by ~1e-3 absolute,
    which is ~1e-6 of what the next norm sees. The result reports both."""
    lab = request.getfixturevalue(lab_name)
    residual = check_decomposition(lab, PROMPT).identity("residual")
    d = decompose(lab, PROMPT)
    assert float(d.resid_post[-1].pow(2).mean(-1).sqrt().max()) > 1000
    assert residual.max_rel_error is not None and residual.max_rel_error < 1e-5
    assert residual.max_abs_error > residual.max_rel_error


def test_gemma_heads_need_the_frozen_post_attention_norm(model) -> None:
    """On Gemma, hook_attn_out comes after the post-attention RMSNorm: the heads' raw writes
    z[h] @ W_O[h] do not sum to it, and with the norm's scale frozen they do."""
    d = decompose(model, PROMPT)
    assert d.post_attention_norm
    cache = model.cache(PROMPT, names=["blocks.3.attn.hook_z"])
    z = cache["blocks.3.attn.hook_z"][0].double()
    raw_heads = torch.einsum("phd,hdm->pm", z, model.bridge.blocks[3].attn.W_O.detach().double())
    rms = d.resid_post[3].pow(2).mean(-1).sqrt()[:, None]
    assert float(((raw_heads - d.attn[3]).abs() / rms).max()) > 1e-2
    assert float(((d.heads[3].sum(1) - d.attn[3]).abs() / rms).max()) < 1e-4


def test_gain_and_bias_are_explicit_in_raw_and_folded_in_compat(model, gemma_raw, biased, biased_raw) -> None:
    """Gemma raw: γ = 1 + w, not 1; compat folds it (γ ≡ 1). GPT-2 raw: γ, β explicit and no b_U;
    compat: γ ≡ 1, β ≡ 0, folded into a non-zero b_U."""
    assert decompose(model, PROMPT).final_norm.gain_is_one
    gemma_norm = decompose(gemma_raw, PROMPT).final_norm
    assert (gemma_norm.kind, gemma_norm.gain_formula, gemma_norm.gain_is_one) == ("RMSNorm", "1 + w", False)
    torch.testing.assert_close(gemma_norm.gain, 1 + gemma_raw.bridge.ln_final.weight.double())

    raw_d, compat_d = decompose(biased_raw, PROMPT), decompose(biased, PROMPT)
    assert raw_d.final_norm.kind == "LayerNorm" and not raw_d.final_norm.gain_is_one
    assert raw_d.final_norm.bias is not None and raw_d.unembed([5])[1] is None
    assert compat_d.final_norm.gain_is_one and compat_d.final_norm.bias is None
    assert compat_d.unembed([5])[1] is not None
    assert raw_d.attn_bias is not None and compat_d.attn_bias is not None


@pytest.mark.parametrize("level", LEVELS)
@pytest.mark.parametrize("lab_name", ["model", "gemma_raw", "biased", "biased_raw"])
def test_logit_attribution_sums_at_every_level(lab_name: str, level: str, request: pytest.FixtureRequest) -> None:
    lab = request.getfixturevalue(lab_name)
    d = decompose(lab, PROMPT)
    top = d.logits[-1].topk(5).indices.tolist()
    attribution = d.logit_attribution(top, level=level)  # type: ignore[arg-type]
    torch.testing.assert_close(attribution.total(), attribution.measured, atol=1e-4, rtol=0)


def test_term_names_follow_component_names(model, biased) -> None:
    """Terms are named as pytest-annotate names components: embed, pos_embed, L3, attn3, MLP3, L3H1."""
    gemma = [t.name for t in decompose(model, PROMPT).terms("heads")]
    assert gemma[:6] == ["embed", "L0H0", "L0H1", "L0H2", "L0H3", "MLP0"]
    assert len(gemma) == 1 + model.n_layers * (model.n_heads + 1)
    gpt2 = [t.name for t in decompose(biased, PROMPT).terms("sublayers")]
    assert gpt2 == ["embed", "pos_embed", "attn0", "MLP0", "attn1", "MLP1"]
    assert "attn0.b_O" in [t.name for t in decompose(biased, PROMPT).terms("heads")]


def test_report_reads_like_a_finding(model) -> None:
    result = check_decomposition(model, PROMPT, answer=" Dublin")
    text = result.report()
    assert isinstance(result, DecompositionResult) and str(result) == text
    assert "['<bos>', 'The', ' capital', ' of', ' Ireland', ' is']" in text
    assert "Answer | Dublin| at the last position" in text
    assert "post-attention norm frozen" in text
    assert "Every identity holds within atol." in text
    assert result.as_dict()["identities"][1]["identity"] == "residual"


def test_failure_says_what_missed_by_how_much_and_where_to_look(model) -> None:
    """An atol no float32 run can meet: the error names the identity, the miss, and what to inspect."""
    with pytest.raises(VerdictError) as info:
        assert_decomposition_sums(model, PROMPT, atol=1e-12)
    message = str(info.value)
    assert message.startswith("FAILED  the residual stream of gemma-3-270m-q4_k_m on 'The capital of Ireland is'")
    assert "FAILED" in message and "exceeds atol 1e-12 by" in message
    assert "hook_attn_out" in message  # what to look at next
    assert isinstance(info.value.result, DecompositionResult) and not info.value.result.passed


def test_answer_must_be_one_token(model) -> None:
    with pytest.raises(PromptError, match="' 5' is 2 tokens"):
        check_decomposition(model, "1 2 3 4", answer=" 5")
