"""Pythia-70m's mover heads (seed 002): L3H3, L4H2 and L3H0 move the next token from its earlier copies.

Source: seed 002, a TransformerLens notebook on Pythia-70m head roles (mover, induction, copying
heads) using the NeelNanda/pile-10k dataset, on ``HookedTransformer.from_pretrained("pythia-70m")``
(compat processing: ``--processing compat`` here); tabulated in the project's findings table
("Pythia-70m: head roles"); the numbers below are the notebook's ``head_df`` rows for L3H3, L4H2
and L3H0.

**BOS.** The notebook's HookedTransformer prepended BOS (``<|endoftext|>``) to Pythia's prompts: its
``test_prompt`` output starts with it, and its induction rows are ``cat([bos, r, r])``. TransformerLens
4 gives Pythia no BOS, so the marker says ``bos=True``: every text prompt here gets BOS, as in the
source, and the induction inputs are built with ``bos=True``.

**Pile-dependent numbers are not tested.** The mover metrics (mover DLA 0.70 at the 90th
percentile for L3H3, mover attention, head DLA) and the dataset fractions (45.7% of positions
movable, 82.2% not covered by induction) were measured on 288 × 256 tokens of NeelNanda/pile-10k,
which is not available offline. The mover claim here is a *ranking* on a stand-in input,
:data:`MOVER_PROMPTS` (English prose in which names and nouns recur), with a mean instead of a
90th percentile; its numbers are not snapshotted. The induction score (random tokens), the
copying scores (weights only) and the IOI prompt's top tokens do not depend on the Pile and are
snapshotted with their published values.

    pytest behaviours/pythia_70m --model pythia-70m
"""

from __future__ import annotations

import pytest

from pytest_annotate import (
    CopyingBasis,
    HeadScores,
    Projection,
    RepeatedRandomTokens,
    assert_head_role,
    assert_top_token,
    each,
    head_scores,
)

pytestmark = pytest.mark.model("pythia-70m", processing="compat", bos=True)

#: Seed 002's induction inputs: BOS + 200 random tokens ×2, batch 16 (the source drew ids 1000-9999
#: with an unrecorded seed; these are ordinary tokens, seed 0).
INDUCTION_INPUTS = RepeatedRandomTokens(n=200, batch=16, seed=0, bos=True)
#: Seed 002's vocab-basis copying score: eigenvalues of (W_E + MLP0(W_E)) · W_V W_O · W_U, all tokens.
VOCAB_COPYING = CopyingBasis(basis="vocab", embedding="post_mlp0")
RESIDUAL_COPYING = CopyingBasis(basis="residual")
#: Stand-in for the Pile prompts (NOT the source's data): prose where the next token often has an earlier copy.
MOVER_PROMPTS = [
    "Alice met Bob at the station. Later that evening Alice gave Bob the keys, and Bob thanked Alice for the keys.",
    "The committee approved the budget on Monday. On Tuesday the committee published the budget and the minutes.",
    "Paris is the capital of France. Every year millions of tourists visit Paris, the capital of France.",
    "import numpy as np\nimport torch\nx = np.zeros(3)\ny = torch.tensor(x)\nprint(np.sum(x), torch.sum(y))",
    "Dr. Smith reviewed the samples. The samples that Dr. Smith reviewed were sent back to the lab in Boston.",
    "When Mary and John went to the park, John gave a ball to Mary, and Mary threw the ball back to John.",
]
IOI_PROMPT = "When John and Mary went to the store, John gave the bag to his friend"
MOVERS = ("L3H3", "L4H2", "L3H0")
#: What the published-baseline snapshots keep: one role's scores for the three movers (head_df's
#: columns), and the top 3 tokens of TransformerLens's ``test_prompt`` printout.
MOVER_SCORES = Projection("PublishedHeadScores", "role", *MOVERS, kinds=dict.fromkeys(MOVERS, "prob"))
TOP3 = Projection("PublishedTop3", top=each("top_tokens", Projection("PublishedTopToken", "token", "logit", "prob"), 3))


def _movers(role: str, table: HeadScores):
    return MOVER_SCORES.record(role=role, **{head: table.score(head) for head in MOVERS})


def test_l3h3_is_the_strongest_mover(model):
    """L3H3 is the strongest mover head, L4H2 and L3H0 move too (seed 002, head_df sorted by mover DLA:
    L3H3 0.70, L3H0 0.22, L4H2 0.096 at the 90th percentile over Pile tokens).

    Pile-dependent: on :data:`MOVER_PROMPTS` (a stand-in) the claim is the ranking only: L3H3 top-1 of 48,
    L3H0 and L4H2 in the top 4 (the source's fourth mover, L2H5, scores 0.061). Published in compat
    processing, BOS before each Pile row; the stand-in prompts get BOS too.
    """
    assert_head_role(model, "L3H3", "mover", top_k=1, inputs=MOVER_PROMPTS)
    for head in ("L3H0", "L4H2"):
        assert_head_role(model, head, "mover", top_k=4, inputs=MOVER_PROMPTS)


def test_l3h0_is_the_most_inductive_mover(model, snapshot):
    """Of the three movers, L3H0 has the highest induction score, ≈ 0.39 (seed 002, head_df "induction":
    L3H0 0.3946, L4H2 0.1526, L3H3 0.0861, on BOS + 200 random tokens ×2, batch 16).

    Band ±0.05: another draw of random tokens, and the source's diagonal mean also counted two positions
    with no earlier copy (≤ 1% of 202). Published in compat processing, BOS first in every row.
    """
    table = head_scores(model, "induction", inputs=INDUCTION_INPUTS)
    others = max(table.score("L4H2"), table.score("L3H3"))
    assert_head_role(model, "L3H0", "induction", min_score=others, inputs=INDUCTION_INPUTS)
    assert snapshot(tolerance={"prob": 0.05}) == _movers("induction", table)


def test_l3h3_copies_its_input_token(model, snapshot):
    """L3H3's OV circuit copies tokens: vocab-basis copying score 0.997 (seed 002, head_df "eigenvals_vocab";
    residual basis "eigenvals_resid" 0.50). Weights only, so the band is set by the 6 published decimals
    and TransformerLens's numerics: ±0.005. Published in compat processing (weights only: no BOS involved)."""
    vocab = head_scores(model, "copying", inputs=VOCAB_COPYING)
    resid = head_scores(model, "copying", inputs=RESIDUAL_COPYING)
    assert_head_role(model, "L3H3", "copying", min_score=0.99, inputs=VOCAB_COPYING)
    assert snapshot(tolerance={"prob": 0.005}) == _movers("copying, vocab basis", vocab)
    assert snapshot(tolerance={"prob": 0.005}) == _movers("copying, residual basis", resid)


def test_ioi_prompt_is_not_solved(model, snapshot):
    """Pythia-70m does not solve this IOI prompt: its top tokens are ',' 27.10%, ' and' 13.78%, '.' 13.50%,
    not ' Mary' (seed 002, ``utils.test_prompt`` cell, BOS prepended). Published in compat
    processing with BOS prepended (its tokenized prompt starts with ``<|endoftext|>``)."""
    result = assert_top_token(model, IOI_PROMPT, ",", k=1)
    assert snapshot(tolerance={"logit": {"abs": 0.01, "rel": 0.0}, "prob": 1e-3}) == TOP3.of(result)
