"""Induction on Gemma 3 270M: the heads, copying, and what copying needs, over draws and families.

Head roles are judged over draws of random repeated tokens (BOS + 50 random ordinary tokens,
repeated once, 8 rows a draw: the seed-003 protocol): bounds chosen on draws 0-7 (dev), judged on
draws 8-15 (held out). Copying is judged on a family of repeated random segments
(:func:`~pytest_annotate.induction_family`: 15 random word tokens, then the first 7 again; the
answer is the 8th, the foil a later one): bounds chosen on its dev split, judged on held-out items.
Measured on gemma-3-270m-q4_k_m, compat processing, CPU float32.

Dev measurements (draws 0-7; the family's 47 dev items of 96):

- induction score, L5H1: mean 0.871 [0.866, 0.878], the top head on 8/8 draws; L11H2: 0.645
  [0.635, 0.652], 2nd on 8/8; previous-token score, L2H3: 0.692 [0.691, 0.693], top on 8/8.
- copying: the segment's next token is top-1 on 44/47 = 93.6% [82.5%, 98.7%].
- zero-ablating L5H1 + L11H2 drops it by 15.0 nats [14.1, 16.0] (random head pairs: ~0.05).

Bounds are the dev intervals' lower ends rounded down (scores to 0.05, the rate to 0.1, the drop to
whole nats minus a margin), so a held-out draw or item that behaves like the dev ones passes.
"""

import pytest

from pytest_annotate import (
    RepeatedRandomTokens,
    assert_head_role_family,
    assert_necessary_family,
    assert_top_token_rate,
    induction_family,
)

pytestmark = pytest.mark.model("gemma-3-270m")

#: One draw: 8 rows of BOS + 50 random ordinary tokens, repeated once; the draw's seed comes from ``seeds=``.
DRAW = RepeatedRandomTokens(n=50, batch=8)
#: Draws the bounds were chosen on (dev) and the draws that judge them (held out).
DEV_DRAWS, HELDOUT_DRAWS = range(0, 8), range(8, 16)


@pytest.fixture(scope="module")
def copying(model):
    """96 repeated random segments (deterministic; the same token count each, so a mean ablation could
    average over them): the family the dev figures were measured on."""
    return induction_family(model, n_items=96, seed=0)


@pytest.fixture(scope="module")
def copying_48(model):
    """Its first 48 items (the same items, so the same split): enough for the ablation, whose effect is
    large, at half the cost (each item runs under the ablation and 5 controls)."""
    return induction_family(model, n_items=48, seed=0)


def test_l5h1_is_the_top_induction_head(model, snapshot):
    """L5H1 is Gemma 3 270M's strongest induction head: mean score ≥ 0.8 over held-out draws, and the
    top head on at least half of them (dev: 0.871, top on 8/8)."""
    result = assert_head_role_family(model, "L5H1", "induction", seeds=HELDOUT_DRAWS, inputs=DRAW, min_score=0.8)
    assert result == snapshot


def test_l11h2_is_a_second_induction_head(model):
    """L11H2 is the second induction head: mean score ≥ 0.6, in the top 2 on at least half of the
    held-out draws (dev: 0.645, 2nd on 8/8)."""
    assert_head_role_family(model, "L11H2", "induction", seeds=HELDOUT_DRAWS, inputs=DRAW, min_score=0.6, top_k=2)


def test_l2h3_is_a_previous_token_head(model):
    """L2H3 attends to the previous token: mean score ≥ 0.65, the top previous-token head on at least
    half of the held-out draws (dev: 0.692, top on 8/8)."""
    assert_head_role_family(model, "L2H3", "previous_token", seeds=HELDOUT_DRAWS, inputs=DRAW, min_score=0.65)


def test_repeated_segment_is_copied(model, copying, snapshot):
    """After a random segment and the start of its repeat, the segment's next token is top-1 on at
    least 80% of held-out items (dev: 93.6% [82.5%, 98.7%])."""
    result = assert_top_token_rate(model, copying, min_rate=0.8)
    assert result == snapshot


def test_induction_heads_are_necessary_for_copying(model, copying_48):
    """Zero-ablating L5H1 and L11H2 together costs the copied token at least 10 nats on average over
    held-out items, far more than zeroing random pairs of heads (dev: 15.0 [14.1, 16.0] vs ~0.05)."""
    assert_necessary_family(model, copying_48, ["L5H1", "L11H2"], ablation="zero", min_effect=10.0)
