"""Pythia-160m-deduped's prediction after "The capital of Ireland is", read through the algebra (seed 000).

Source: seed 000, "Investigation of single token prediction in Pythia 160m", a notebook of the
annotate-transformer project (prior-technology/annotate-transformer on GitHub) on the HuggingFace
model (raw numerics, no BOS, hence logits near 786); tabulated in the project's findings table
("Pythia-160m-deduped: annotated prediction"). Published: ``predict(T(" is"))`` top-5 ' the'
786.61 (22.66%), ' a' 784.93 (4.22%), ' Belfast' 784.57 (2.94%), ' Dublin' 784.47 (2.67%,
rank 3), ' now' 784.44 (2.59%).

The numbers hold only in raw processing (compat mode centres the unembedding, which moves every
logit), so run::

    pytest behaviours/pythia_160m --model pythia-160m-deduped --processing raw

(the marker declares ``processing="raw", bos=False``: without ``--processing raw`` these tests skip,
saying so, and a session that skips them all exits non-zero). Snapshots live under
``snapshots/pythia-160m-deduped+raw/``: compare a checkpoint with them by
``--snapshot-baseline pythia-160m-deduped+raw``.
"""

from __future__ import annotations

import pytest

from pytest_annotate import Projection, VerdictError, check_rank, each
from pytest_annotate.algebra import PromptedTransformer, expand, logits, predict

pytestmark = pytest.mark.model("pythia-160m-deduped", processing="raw", bos=False)

CONTEXT = "The capital of Ireland"
#: Logits published as 784.47 (rounding ±0.005) at a magnitude where float32 resolves 6e-5; 0.01 keeps
#: ' Belfast' (784.57) and ' Dublin' (784.47) apart. Probabilities published as 2.67%: ±0.1 points.
PUBLISHED_TOLERANCE = {"logit": {"abs": 0.01, "rel": 0.0}, "prob": 1e-3}


#: What the published-baseline snapshots keep: ``predict(T(embed(' is'))).summary()``'s top 5 tokens, and
#: ``L[' Dublin']`` and ``p[' Dublin']`` with the answer's rank.
TOKEN = Projection("PublishedToken", "token", logit="logit.value", prob="value")
TOP5 = Projection("PublishedTop5", top=each("top", TOKEN))
ANSWER = Projection("PublishedAnswer", "token", "rank", "logit", "prob")


def test_dublin_is_fourth_after_the_capital_of_ireland_is(model, snapshot):
    """' Dublin' is only the 4th prediction (rank 3, 2.67%, logit 784.47) after "The capital of Ireland is",
    behind ' the', ' a' and ' Belfast' (seed 000, cells 18-30). Published in raw processing, no BOS."""
    T = PromptedTransformer(model, CONTEXT, bos=False)
    p = predict(T(" is"))
    dublin = p[" Dublin"]
    result = check_rank(model, CONTEXT + " is", " Dublin", rank=3, bos=False)
    if abs(result.prob - dublin.value) > 1e-6:
        raise AssertionError(  # plumbing, judged under --random-weights too
            f"the algebra and check_rank disagree on P(' Dublin'): {dublin.value:.6f} vs {result.prob:.6f}; "
            f"T tokens {T.str_tokens} + ' is' vs check_rank's {list(result.prompt_tokens)}"
        )
    result.raise_if_failed()
    measured = ANSWER.record(token=dublin.token, rank=result.rank, logit=dublin.logit.value, prob=dublin.value)
    assert snapshot(tolerance=PUBLISHED_TOLERANCE) == measured


def test_top5_predictions(model, snapshot):
    """The top 5 after "The capital of Ireland is" are ' the' 22.66%, ' a', ' Belfast', ' Dublin', ' now'
    (seed 000, cell 28's ``p.summary()``). Published in raw processing, no BOS."""
    T = PromptedTransformer(model, CONTEXT, bos=False)
    top = predict(T(" is")).top(5)
    if top[0].token != " the":
        raise VerdictError(
            f"seed 000: ' the' is the top prediction after {CONTEXT + ' is'!r}; measured: "
            f"{top[0].token!r} ({top[0].value:.2%}).\n{predict(T(' is')).summary()}\n"
            "next: check --processing raw and that the prompt has no BOS (T(<4 tokens>) + ' is')"
        )
    assert snapshot(tolerance=PUBLISHED_TOLERANCE) == TOP5.of({"top": top})


def test_dublin_logit_expands_into_block_terms(model):
    """``expand(L[' Dublin'])`` writes the logit 784.47 as λ·(embed + ΔB^0 + … + ΔB^11) terms that sum to it
    (seed 000's wanted notation, cells 23-34). Raw processing, no BOS, as the source."""
    T = PromptedTransformer(model, CONTEXT, bos=False)
    logit = logits(T(" is"))[" Dublin"]
    expansion = expand(logit)
    total = sum(term.value for term in expansion.terms)
    assert abs(total - logit.value) <= 1e-3 * max(1.0, abs(logit.value)), expansion.text()
    assert len(T) == 4, f"seed 000 conditions on 4 tokens, no BOS; got {T.str_tokens}"
