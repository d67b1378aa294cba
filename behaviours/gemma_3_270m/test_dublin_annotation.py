"""Annotated prediction: ``The capital of Ireland is`` → `` Dublin`` on Gemma 3 270M.

The notebook's Pythia-160m-deduped annotation (seed 000), redone on the embedded model:
``T = PromptedTransformer(model, "The capital of Ireland")``, ``v = T(" is")``, and the logit of
`` Dublin`` written as a sum of one term per block, ``λ(<unembed(' Dublin'), γ ⊙ embed(' is')>
+ <unembed(' Dublin'), γ ⊙ ΔB^0> + …)``.

All numbers measured on gemma-3-270m-q4_k_m, float32, BOS prepended. The facts hold in both
processings: ``compat`` centres the unembedding over the vocabulary, which shifts every logit by
one constant (4.52 here) and every term by its vocabulary mean, so single-term values differ
between processings while probabilities, rankings and logit *differences* do not.

================  ==============================  ==============================
                  compat                          raw
================  ==============================  ==============================
top 5             Dublin 22.81 (15.39%), the       Dublin 18.28 (15.39%), the
                  22.70, a 22.57, one 21.96,       18.18, a 18.05, one 17.44,
                  Ireland 21.12; 6th: an 20.96     Ireland 16.60; 6th: an 16.44
largest blocks    ΔB^12 +8.54, ΔB^15 +5.12,        ΔB^12 +8.66, ΔB^15 +3.55,
                  ΔB^16 +3.99, ΔB^11 +2.15,        ΔB^16 +3.09, ΔB^17 +2.78,
                  ΔB^17 +1.85; 6th ΔB^14 +0.95     ΔB^11 +2.07; 6th ΔB^10 +0.19
largest heads     Δhead^15.3 +5.09, 12.2 +4.29     Δhead^15.3 +4.40, 12.2 +4.20
Dublin − the      ΔB^12 +6.75 of a total +0.11     the same (a difference)
================  ==============================  ==============================
"""

from __future__ import annotations

import re

import pytest

from pytest_annotate.algebra import PromptedTransformer, expand, logits, predict

pytestmark = pytest.mark.model("gemma-3-270m")

CONTEXT = "The capital of Ireland"
CONTINUATION = " is"
TOP5 = [" Dublin", " the", " a", " one", " Ireland"]


def dublin_annotation(model):
    """The annotation's expressions: the residual vector, its logits and its distribution."""
    v = PromptedTransformer(model, CONTEXT)(CONTINUATION)
    return v, logits(v), predict(v)


def dublin_snapshot(model) -> dict[str, object]:
    """The annotation in snapshot form (for the syrupy extension, once it is wired in).

    ``top5``: the five most likely tokens with logit and probability; ``dublin``: the logit of
    `` Dublin`` with one term per block; ``dublin_prob``: its probability with the same terms.
    """
    _, L, p = dublin_annotation(model)
    return {
        "top5": p.to_snapshot(k=5),
        "dublin": expand(L[" Dublin"]).to_snapshot(),
        "dublin_prob": expand(p[" Dublin"]).to_snapshot(),
    }


def test_dublin_is_the_top_prediction(model):
    """Gemma 3 270M completes "The capital of Ireland is" with " Dublin" (15.39%), 0.11 logits
    ahead of " the", and its top 5 are Dublin, the, a, one, Ireland (measured on gemma-3-270m-q4_k_m)."""
    _, L, p = dublin_annotation(model)
    top = [x.token for x in L.top(6)]
    assert top[:5] == TOP5, p.summary(6)
    assert L[" Dublin"].value - L[" the"].value > 0.05, p.summary()
    assert 0.10 < p[" Dublin"].value < 0.25, p.summary()
    assert L[" Ireland"].value - L[top[5]].value > 0.1, L.summary(6)  # measured 0.16: the top 5 is a set


def test_block_terms_sum_to_the_logit(model):
    """The logit of " Dublin" is the sum of one term per block (final norm frozen at its measured
    scale) to 1e-4, and so are the finer splits (measured on gemma-3-270m-q4_k_m: error ~3e-6)."""
    _, L, _ = dublin_annotation(model)
    x = expand(L[" Dublin"])
    assert [t.name for t in x.terms] == ["embed(' is')"] + [f"ΔB^{i}" for i in range(model.n_layers)]
    for level in ("blocks", "sublayers", "heads"):
        y = expand(L[" Dublin"], level)
        assert abs(sum(t.value for t in y.terms) - y.value) < 1e-4, y.summary()


def test_five_late_blocks_write_dublin(model):
    """Blocks 11, 12, 15, 16 and 17 are the five largest contributions to the " Dublin" logit,
    each above 1.5 logits, and block 12 is the largest by more than 2 logits (measured on
    gemma-3-270m-q4_k_m: ΔB^12 +8.54, next +5.12 in compat; +8.66, next +3.55 raw)."""
    _, L, _ = dublin_annotation(model)
    x = expand(L[" Dublin"])
    top5 = x.top(5)
    assert {t.layer for t in top5} == {11, 12, 15, 16, 17}, x.summary(6)
    assert all(t.value > 1.5 for t in top5), x.summary(6)
    assert top5[0].component == "L12" and top5[0].value - top5[1].value > 2, x.summary(6)
    assert x.sorted_terms()[5].value < top5[4].value - 0.5, x.summary(6)  # measured gap: 0.9 compat, 1.9 raw


def test_block_12_is_what_puts_dublin_ahead_of_the(model):
    """Block 12 adds 6.75 more to " Dublin" than to " the", while the two logits end only 0.11
    apart: without block 12's direct write, " the" would win (measured on gemma-3-270m-q4_k_m;
    a logit difference, so the same in compat and raw processing)."""
    _, L, _ = dublin_annotation(model)
    dublin, the = expand(L[" Dublin"]), expand(L[" the"])
    gap = {a.name: a.value - b.value for a, b in zip(dublin.terms, the.terms, strict=True)}
    total = L[" Dublin"].value - L[" the"].value
    assert gap["ΔB^12"] > 5, gap
    assert total - gap["ΔB^12"] < -4, gap


def test_two_attention_heads_write_dublin(model):
    """Heads L15H3 and L12H2 are the two attention heads that push " Dublin" most, each by more
    than 3.5 logits, and no other head reaches 3 (measured on gemma-3-270m-q4_k_m: +5.09 and
    +4.29 compat, +4.40 and +4.20 raw)."""
    _, L, _ = dublin_annotation(model)
    x = expand(L[" Dublin"], "heads")
    heads = [t for t in x.sorted_terms() if re.fullmatch(r"L\d+H\d+", t.component)]
    assert {t.component for t in heads[:2]} == {"L15H3", "L12H2"}, x.summary(8)
    assert heads[1].value > 3.5 and heads[2].value < 3, x.summary(8)


def test_snapshot_form_is_plain(model):
    """The snapshot helper returns plain frozen values whose fields carry tolerance kinds."""
    snap = dublin_snapshot(model)
    assert snap["top5"].top[0].token == " Dublin"
    assert snap["dublin"].expression == "<unembed(' Dublin'), T(embed(' is'))>"
    assert len(snap["dublin"].terms) == model.n_layers + 1
