"""Which components Gemma 3 270M needs to continue a run of months, judged over the months family.

Every claim is over ``MONTHS`` (every window of 3-8 months, ``gemma_families.py``), judged on its held-out
windows. Necessity: the mean drop of the answer's log-prob when the component is mean-ablated
(replaced by its mean over the family's prompts of the same length), with a bootstrap 95% interval,
compared item by item with 5 random components of the same kind (a relabelling permutation test):
it holds only when the interval clears the bound and p <= 0.05. Thresholds were chosen on the dev
split. On gemma-3-270m-q4_k_m, compat processing, BOS, float32.

Zero ablation is not used for necessity: on the dev split, zeroing a random block hurts about as
much as zeroing L3 or L12 (control tests p = 0.12 and 0.36), so a zero-ablation necessity claim is
not specific to the block. The earlier one-prompt claims used both ablations.
"""

import pytest

from gemma_families import DIGITS_PLUS_TWO, IOI, MONTHS
from pytest_annotate import (
    VerdictError,
    assert_logit_diff_effect,
    assert_logit_lens_rate,
    assert_necessary_family,
    assert_sufficient_family,
    assert_top_token_rate,
    assert_unnecessary_family,
    check_necessity_family,
    check_top_token_rate,
    skip,
)

pytestmark = pytest.mark.model("gemma-3-270m")

# component, min_effect (nats): the dev interval's lower bound rounded down to 0.5
# (dev, mean ablation: L3 4.31 [4.06, 4.50], L12 2.64 [2.31, 3.01], attn12 2.51 [2.20, 2.85]; p = 1e-4 each).
NECESSARY = [("L3", 4.0), ("L12", 2.0), ("attn12", 2.0)]


@pytest.mark.parametrize(("component", "min_effect"), NECESSARY, ids=[c for c, _ in NECESSARY])
def test_component_is_necessary_for_the_next_month(model, snapshot, component, min_effect):
    """Blocks 3 and 12, and block 12's attention, are necessary for the next month: mean-ablating one
    costs the answer at least ``min_effect`` nats on average, far more than random components do."""
    result = assert_necessary_family(model, MONTHS, component, ablation="mean", min_effect=min_effect)
    assert result == snapshot


@pytest.mark.parametrize("block", ["L6", "L8"])
def test_block_is_not_needed_under_mean_ablation(model, block):
    """Mean-ablating block 6 or 8 costs the next month at most 0.5 nats on average (dev: L6 -0.15
    [-0.32, -0.05], L8 -0.10 [-0.22, -0.04]; the bound is the one the one-prompt claim stated)."""
    assert_unnecessary_family(model, MONTHS, block, ablation="mean", max_effect=0.5)


def test_block_8_cannot_be_zeroed_for_free(model, snapshot):
    """The one-prompt claim "block 8 can be zeroed at a cost of at most 0.5 nats" does not generalize:
    over the family, zeroing L8 costs more (dev: 0.68 [0.49, 1.01] nats). The claim must not hold on
    the held-out windows; reported as what it is."""
    result = check_necessity_family(model, MONTHS, "L8", claim="unnecessary", ablation="zero", max_effect=0.5)
    assert result.verdict != "holds", result.report()
    assert result == snapshot


def test_first_thirteen_blocks_suffice(model, snapshot):
    """With only blocks L0-L12 running (the rest skipped; final norm and unembedding run), the next month
    stays top-1 on at least 65% of the windows, and the circuit beats random 13-block circuits
    (dev: 30/35 [70%, 95%], p = 1e-4)."""
    result = assert_sufficient_family(model, MONTHS, "L0-L12", min_rate=0.65)
    assert result == snapshot


def test_next_month_is_formed_by_block_15(model):
    """Through the logit lens the next month is top-1 by block 15 (of 18) on most windows (dev: 33/35
    [81%, 99%])."""
    assert_logit_lens_rate(model, MONTHS, max_layer=15, min_rate=0.8)


def test_skipping_mlp12_does_not_turn_counting_into_plus_two(model, snapshot):
    """The one-prompt finding "without MLP12, '1 2 3 4' is continued with ' 6'" does not generalize:
    over every digit window, skipping MLP12 does not make the digit two ahead top-1 on most windows
    (dev: 2/7 [4%, 71%]). The claim "top-1 on >= 50%" must not hold on the held-out windows; reported
    as what it is."""
    result = check_top_token_rate(model, DIGITS_PLUS_TWO, min_rate=0.5, intervention=skip(model, "MLP12"))
    assert result.verdict != "holds", result.report()
    assert result == snapshot


@pytest.mark.xfail(raises=VerdictError, strict=True,
                   reason="inconclusive on the held-out prompts: 97/98 = 99.0% [94.4%, 100.0%] straddles 95%; about "
                          "18 more items would settle it (measured 2026-12-06, CPU float32)")
def test_ioi_indirect_object_is_top1(model):
    """In indirect-object prompts the indirect object is top-1 on >= 95% of prompts (dev: 102/102
    [96%, 100%])."""
    assert_top_token_rate(model, IOI, min_rate=0.95)


def test_ioi_prefers_the_indirect_object(model, snapshot):
    """In indirect-object prompts the indirect object beats the repeated subject by at least 4 logits
    on average (dev: logit difference 4.70 [4.49, 4.92])."""
    result = assert_logit_diff_effect(model, IOI, min_mean=4.0)
    assert result == snapshot
