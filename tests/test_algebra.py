"""The annotation algebra (issue 5): notation, values, expansions that add up, LaTeX, snapshots, errors.

Gemma 3 270M in compat (the session's ``model``) and raw processing; GPT-2-style tiny models
(learned positions, LayerNorm biases) for the ``pos(n)``, ``β`` and ``b_U`` terms.
"""

from __future__ import annotations

import gc
import math
import re
from pathlib import Path

import pytest
import torch

# Fixtures shared with the decomposition tests: Gemma in raw numerics (loaded once per session) and
# GPT-2-style tiny models with random LayerNorm gains/biases (see make_biased_gpt2).
from test_decomposition import biased, biased_dir, biased_raw, gemma_raw  # noqa: F401

from pytest_annotate import PromptError
from pytest_annotate.algebra import (
    LogitSnapshot,
    LogitSum,
    NamedLogit,
    ProbSnapshot,
    ProbSum,
    PromptedTransformer,
    TopSnapshot,
    VectorSum,
    expand,
    logits,
    predict,
)
from pytest_annotate.snapshot.tolerance import kind_for_name

CONTEXT = "The capital of Ireland"


def is_vector(lab):
    return PromptedTransformer(lab, CONTEXT)(" is")


# --------------------------------------------------------------------------- notation


def test_prompted_transformer_counts_the_context_tokens(model, tiny_gpt2) -> None:
    """T(<n tokens>) counts every token the model conditions on, BOS included."""
    T = PromptedTransformer(model, CONTEXT)
    assert repr(T) == "T(<5 tokens>)"
    assert T.str_tokens == ["<bos>", "The", " capital", " of", " Ireland"]
    assert repr(PromptedTransformer(model, CONTEXT, bos=False)) == "T(<4 tokens>)"
    assert repr(PromptedTransformer(tiny_gpt2, CONTEXT)) == f"T(<{len(tiny_gpt2.tokens(CONTEXT))} tokens>)"
    assert T._repr_latex_() == r"$T(\langle 5\ \text{tokens} \rangle)$"


def test_residual_vector_is_the_measured_residual_stream(model) -> None:
    v = is_vector(model)
    assert repr(v) == "T(embed(' is'))" and str(v) == "T(embed(' is'))"
    assert type(v).__name__ == "ResidualVector"
    cache = model.cache("The capital of Ireland is", names=[f"blocks.{model.n_layers - 1}.hook_resid_post"])
    torch.testing.assert_close(v.value, cache[f"blocks.{model.n_layers - 1}.hook_resid_post"][0, -1].double())


def test_expand_writes_block_contributions(model, tiny_gpt2) -> None:
    e = expand(is_vector(model))
    assert isinstance(e, VectorSum)
    assert repr(e) == "embed(' is') + " + " + ".join(f"ΔB^{i}" for i in range(18))
    n = len(tiny_gpt2.tokens(CONTEXT))
    assert repr(expand(is_vector(tiny_gpt2))) == f"embed(' is') + pos({n}) + ΔB^0 + ΔB^1"


def test_expanding_again_splits_blocks_then_attention_into_heads(model, biased) -> None:
    e2 = expand(expand(is_vector(model)))
    assert [t.name for t in e2.terms[:5]] == ["embed(' is')", "Δattn^0", "ΔMLP^0", "Δattn^1", "ΔMLP^1"]
    e3 = expand(e2)
    assert [t.name for t in e3.terms[:6]] == ["embed(' is')", "Δhead^0.0", "Δhead^0.1", "Δhead^0.2", "Δhead^0.3",
                                              "ΔMLP^0"]
    assert [t.component for t in e3.terms[:3]] == ["embed", "L0H0", "L0H1"]
    assert len(e3.terms) == 1 + 18 * 5 and "… (83 more terms) …" in repr(e3)
    assert expand(e3).level == "heads"  # the finest level is a fixed point
    gpt2 = expand(is_vector(biased), "heads")
    assert [t.name for t in gpt2.terms[2:8]] == ["Δhead^0.0", "Δhead^0.1", "Δhead^0.2", "Δhead^0.3", "b_O^0",
                                                 "ΔMLP^0"]


@pytest.mark.parametrize("lab_name", ["model", "gemma_raw", "tiny_gpt2", "biased_raw"])
@pytest.mark.parametrize("level", ["blocks", "sublayers", "heads"])
def test_vector_terms_sum_to_the_residual(lab_name: str, level: str, request: pytest.FixtureRequest) -> None:
    """Relative to the residual's RMS (Gemma's is ~1,400: float32 sums are off by ~1e-3 absolute)."""
    e = expand(is_vector(request.getfixturevalue(lab_name)), level)  # type: ignore[arg-type]
    assert e.relative_error < 1e-4
    rms = float(e.value.pow(2).mean().sqrt())
    assert float((sum(t.value for t in e.terms) - e.value).abs().max()) / rms < 1e-4


# --------------------------------------------------------------------------- logits and probabilities


def test_logits_index_by_token_and_print_as_inner_products(model) -> None:
    L = logits(is_vector(model))
    assert repr(L) == "logits(T(embed(' is')))"
    dublin = L[" Dublin"]
    measured = float(model.run("The capital of Ireland is")[-1, model.single_token(" Dublin")])
    assert dublin.value == pytest.approx(measured, abs=1e-6)
    assert repr(dublin) == f"<unembed(' Dublin'), T(embed(' is'))> = {measured:.2f}"
    assert L[model.single_token(" Dublin")].value == dublin.value
    assert len(L) == model.d_vocab


def test_predict_gives_the_softmax(model) -> None:
    p = predict(is_vector(model))
    assert repr(p) == "P(token | T(embed(' is')))"
    logits_row = model.run("The capital of Ireland is")[-1].double()
    expected = float(logits_row.softmax(-1)[model.single_token(" Dublin")])
    assert p[" Dublin"].value == pytest.approx(expected, rel=1e-9)
    assert repr(p[" Dublin"]) == f"P(' Dublin' | T(embed(' is'))) = {100 * expected:.2f}%"
    assert float(p.value.sum()) == pytest.approx(1.0, abs=1e-9)


def test_summaries_use_the_notebooks_format(model) -> None:
    v = is_vector(model)
    top = logits(v).summary()
    assert top.splitlines()[0] == "Top 5 predictions:"
    assert re.fullmatch(r"  1\. ' Dublin' \(logit: \d+\.\d\d\)", top.splitlines()[1])
    assert len(top.splitlines()) == 6
    probs = predict(v).summary()
    assert re.fullmatch(r"  1\. ' Dublin' \(\d+\.\d\d%, logit=\d+\.\d\d\)", probs.splitlines()[1])
    assert predict(v).summary(3).count("\n") == 3


@pytest.mark.parametrize("lab_name", ["model", "gemma_raw", "tiny_gpt2_raw", "biased", "biased_raw"])
@pytest.mark.parametrize("level", ["blocks", "sublayers", "heads"])
def test_expanded_logit_terms_sum_to_the_measured_logit(lab_name: str, level: str,
                                                        request: pytest.FixtureRequest) -> None:
    lab = request.getfixturevalue(lab_name)
    L = logits(is_vector(lab))
    for logit in L.top(3):
        x = expand(logit, level)  # type: ignore[arg-type]
        assert isinstance(x, LogitSum)
        assert sum(t.value for t in x.terms) == pytest.approx(x.value, abs=1e-4)
        assert x.value == logit.value and abs(x.error) < 1e-4


def test_expanded_logit_pulls_out_lambda_and_gamma(model, gemma_raw) -> None:
    """λ(<unembed(t), γ ⊙ embed(x)> + <unembed(t), γ ⊙ ΔB^0> + …): γ explicit in raw, folded in compat."""
    raw = expand(logits(is_vector(gemma_raw))[" Dublin"])
    assert repr(raw).startswith("λ·(<unembed(' Dublin'), γ ⊙ embed(' is')> + "
                                "<unembed(' Dublin'), γ ⊙ ΔB^0> + ")
    assert "<unembed(' Dublin'), γ ⊙ ΔB^17>) = " in repr(raw)
    assert "γ = 1 + w, the final RMSNorm's gain" in repr(raw)
    scale = gemma_raw.cache("The capital of Ireland is", names=["ln_final.hook_scale"])["ln_final.hook_scale"]
    assert raw.scale == pytest.approx(float(scale[0, -1]))
    compat = expand(logits(is_vector(model))[" Dublin"])
    assert repr(compat).startswith("λ·(<unembed(' Dublin'), embed(' is')> + <unembed(' Dublin'), ΔB^0> + ")
    assert "folded into unembed by compat processing" in repr(compat)
    term = compat.terms[13]
    assert (term.name, term.component, term.layer) == ("ΔB^12", "L12", 12)
    assert repr(term) == f"λ·<unembed(' Dublin'), ΔB^12> = {term.value:+.3f}"


def test_layernorm_bias_and_unembedding_bias_are_terms(biased, biased_raw) -> None:
    """GPT-2 raw: <unembed(t), β> is a term; compat folds β into b_U, which is a term."""
    raw = expand(logits(is_vector(biased_raw))["D"])
    assert [t.name for t in raw.terms[-2:]] == ["ΔB^1", "β"]
    assert repr(raw).split(" = ")[0].endswith(") + <unembed('D'), β>")
    assert "centred (x − mean(x))" in repr(raw)
    compat = expand(logits(is_vector(biased))["D"])
    assert compat.terms[-1].name == "b_U" and compat.terms[-1].kind == "unembed_bias"
    assert repr(compat).split(" = ")[0].endswith(") + b_U('D')")


def test_compat_terms_are_raw_terms_minus_their_vocabulary_mean(model, gemma_raw) -> None:
    """Compat centres unembed over the vocabulary: logits shift by a per-position constant, so
    probabilities and logit differences (term by term) agree with raw; single logits do not."""
    compat, raw = logits(is_vector(model)), logits(is_vector(gemma_raw))
    assert predict(is_vector(model))[" Dublin"].value == pytest.approx(predict(is_vector(gemma_raw))[" Dublin"].value,
                                                                       abs=1e-5)
    assert abs(compat[" Dublin"].value - raw[" Dublin"].value) > 1  # measured: 4.52
    def dublin_minus_the(L):
        return [x.value - y.value for x, y in zip(expand(L[" Dublin"]).terms, expand(L[" the"]).terms, strict=True)]

    assert dublin_minus_the(compat) == pytest.approx(dublin_minus_the(raw), abs=1e-3)


def test_probability_expansion_exponentiates_its_logit_terms(model) -> None:
    p = predict(is_vector(model))[" Dublin"]
    x = expand(p)
    assert isinstance(x, ProbSum) and x.value == p.value
    assert math.exp(sum(t.value for t in x.terms) - x.log_z) == pytest.approx(x.value, rel=1e-4)
    assert repr(x).startswith("P(' Dublin' | T(embed(' is'))) = exp(λ·(<unembed(' Dublin'), embed(' is')> + ")
    assert "log Z = log Σ_v exp(logit_v)" in repr(x)
    assert expand(x).level == "sublayers"


def test_terms_sort_by_contribution(model) -> None:
    x = expand(logits(is_vector(model))[" Dublin"], "heads")
    values = [t.value for t in x.sorted_terms()]
    assert values == sorted(values, reverse=True)
    assert [t.value for t in x.top(5)] == values[:5]
    magnitudes = [abs(t.value) for t in x.top(10, by="abs")]
    assert magnitudes == sorted(magnitudes, reverse=True) and magnitudes[0] == max(abs(v) for v in values)
    summary = x.summary(3)
    assert summary.splitlines()[0].endswith("sum of 91 terms (λ = 1/1412.54); largest contributions:")
    assert summary.splitlines()[-1].startswith("  (88 more terms: ")
    vec = expand(is_vector(model))
    norms = [t.norm for t in vec.sorted_terms()]
    assert norms == sorted(norms, reverse=True)


# --------------------------------------------------------------------------- LaTeX and snapshots


def test_latex_uses_underlined_inputs_and_overlined_outputs(model, gemma_raw) -> None:
    v = is_vector(model)
    assert v._repr_latex_() == r"$T(\underline{\text{is}})$"
    d = logits(v)[" Dublin"]
    assert d._repr_latex_() == (rf"$\langle \overline{{\text{{Dublin}}}}, T(\underline{{\text{{is}}}}) \rangle = "
                                rf"{d.value:.2f}$")
    p = predict(v)[" Dublin"]
    assert p._repr_latex_() == (rf"$P(\overline{{\text{{Dublin}}}} \mid T(\underline{{\text{{is}}}})) = "
                                rf"{100 * p.value:.2f}\%$")
    assert expand(v)._repr_latex_().startswith(r"$\underline{\text{is}} + \Delta B^{0}(\underline{\text{is}}) + ")
    raw = expand(logits(is_vector(gemma_raw))[" Dublin"])._repr_latex_()
    assert raw.startswith(r"$\lambda\left(\langle \overline{\text{Dublin}}, "
                          r"\gamma \odot \underline{\text{is}} \rangle + ")
    assert r"\right) = " in raw and raw.endswith(r", \quad \lambda = 1/1412.54$")
    assert r"\exp\left(\lambda\left(" in expand(p)._repr_latex_()


def test_snapshot_forms_name_their_fields_by_tolerance_kind(model) -> None:
    v = is_vector(model)
    x = expand(logits(v)[" Dublin"])
    snap = x.to_snapshot()
    assert isinstance(snap, LogitSnapshot) and snap.logit == x.value
    assert snap.expression == "<unembed(' Dublin'), T(embed(' is'))>"
    assert snap.terms[13] == NamedLogit("ΔB^12", x.terms[13].value)
    name, value = snap.terms[13]
    assert (name, value) == ("ΔB^12", x.terms[13].value)
    psnap = expand(predict(v)[" Dublin"]).to_snapshot()
    assert isinstance(psnap, ProbSnapshot) and len(psnap.terms) == 19
    top = predict(v).to_snapshot()
    assert isinstance(top, TopSnapshot) and top.top[0].token == " Dublin"
    assert [kind_for_name(n) for n in ("logit", "prob", "norm")] == ["logit", "prob", None]


# --------------------------------------------------------------------------- errors


def test_a_string_that_is_several_tokens_is_a_clear_error(model) -> None:
    L = logits(is_vector(model))
    with pytest.raises(PromptError) as info:
        L[" Dublinnnn"]
    message = str(info.value)
    pieces = model.to_str(model.answer_tokens(" Dublinnnn"))
    assert "logits(...)[' Dublinnnn']: ' Dublinnnn' is not one token of gemma-3-270m-q4_k_m's vocabulary" in message
    assert str(pieces) in message and "score_answer" in message
    with pytest.raises(PromptError, match="empty"):
        predict(is_vector(model))[""]
    with pytest.raises(PromptError, match="out of range"):
        L[10**9]


def test_continuation_must_be_one_token(model) -> None:
    T = PromptedTransformer(model, CONTEXT)
    with pytest.raises(PromptError, match=r"T\(' is the'\): the continuation is 2 tokens .*"
                                          r"PromptedTransformer\(lab, 'The capital of Ireland is'\)\(' the'\)"):
        T(" is the")


def test_expand_refuses_what_it_cannot_expand(model) -> None:
    v = is_vector(model)
    with pytest.raises(TypeError, match="expand the whole sum one level"):
        expand(expand(v).terms[3])
    with pytest.raises(ValueError, match="level 'layers' is not valid"):
        expand(v, "layers")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="takes a residual vector"):
        logits(logits(v))  # type: ignore[arg-type]


# --------------------------------------------------------------------------- raw numerics


def test_raw_processing_reproduces_huggingface_logits(tiny_gpt2_raw, tiny_gpt2_dir: Path, gemma_raw) -> None:
    """In raw processing the Lab's logits are HuggingFace's (measured: tiny 2e-7, Gemma 0.0).

    The seed's Pythia-160m-deduped numbers (' the' 786.61, ' Dublin' 784.47) are raw numerics
    without BOS; they cannot be checked here (no weights offline).
    """
    from transformers import AutoModelForCausalLM

    from pytest_annotate.models.embedded import EMBEDDED, dense_copy

    for lab, source in [(tiny_gpt2_raw, tiny_gpt2_dir), (gemma_raw, dense_copy(EMBEDDED["gemma-3-270m"]))]:
        hf = AutoModelForCausalLM.from_pretrained(source, dtype=torch.float32, attn_implementation="eager").eval()
        tokens = lab.tokens("The capital of Ireland is")
        with torch.inference_mode():
            expected = hf(tokens[None].to("cpu")).logits[0]
        torch.testing.assert_close(lab.run(tokens).to("cpu"), expected, atol=1e-4, rtol=0)
        del hf
        gc.collect()
