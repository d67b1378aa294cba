"""GPT-2 small: the sources' general claims, stated over families for the first GPU run to judge.

The other files here hold the sources' single-prompt figures, labelled published. The sources also
state findings in general: seed 001 reads its table as "L0-L7 get the number, MLP9 does the +1",
and seed 003 calls L5H5 an induction head and L4H11 a previous-token head. Those are claims about a
family of inputs, so they are stated here as family claims, judged on held-out items.

**Not yet measured.** GPT-2's weights cannot be fetched where this suite was written, so no run of
this file has judged a claim; the GPU workflow's ``gpt2-small`` job is the first. The thresholds are
therefore the checks' defaults (``min_rate`` 0.9, ``min_effect`` 1 nat, 5 random controls, alpha 0.05),
or, for the head roles, the source's own figure rounded down (L5H5 induction score ≈ 0.91 -> 0.8),
never tuned on any run of these items. A claim that does not hold on that first run is reported as what
it is: the source's general reading did not survive its family. No snapshots yet: the first run's
``--snapshot-update`` stores them, measured, beside the published ones.

Inputs as the sources ran them: compat processing, BOS before every prompt.

    pytest behaviours/gpt2_small/test_gpt2_families.py --model gpt2-small
"""

from __future__ import annotations

import pytest

from pytest_annotate import (
    RepeatedRandomTokens,
    assert_head_role_family,
    assert_necessary_family,
    assert_sufficient_family,
    windows,
)

pytestmark = pytest.mark.model("gpt2-small", processing="compat", bos=True)

#: Every window of 3 to 6 consecutive digits and the digit after it (``"1 2 3 4"`` -> ``" 5"``): 22 items,
#: about half held out. GPT-2 spells each ``" d"`` as one token.
DIGITS = windows("gpt2-digits", "digits", range(3, 7))
#: Seed 003's inputs (BOS + 50 random tokens, repeated once), 8 rows a draw, one draw per seed.
REPEATED = RepeatedRandomTokens(n=50, batch=8, bos=True)
SEEDS = range(8)


def test_mlp9_is_necessary_for_the_next_digit(model):
    """Seed 001's "MLP9 does the +1", as necessity: mean-ablating MLP9 (its mean over the family's
    prompts of the same length) costs the next digit at least 1 nat on average over held-out windows,
    more than mean-ablating random other MLPs does."""
    assert_necessary_family(model, DIGITS, "MLP9", ablation="mean")


def test_blocks_0_to_7_and_mlp9_suffice_for_the_next_digit(model):
    """Seed 001's "L0-L7 get the number, MLP9 does the +1", as sufficiency: with only blocks 0-7 and
    MLP9 running (attn9 and blocks 10-11 skipped), the next digit stays top-1 on at least 90% of
    held-out windows, and better than random circuits of the same size (the source's one prompt:
    rank 0, 98.87%)."""
    assert_sufficient_family(model, DIGITS, ["L0-L7", "MLP9"])


def test_l5h5_is_an_induction_head_over_draws(model):
    """Seed 003's "L5H5 is an induction head" over 8 draws of random repeated tokens: its mean
    induction score is at least 0.8 (the source's one draw: ≈ 0.91), and it is the top induction head
    on at least half of the draws (each part judged on its interval over the draws)."""
    assert_head_role_family(model, "L5H5", "induction", seeds=SEEDS, inputs=REPEATED, min_score=0.8)


def test_l4h11_is_the_previous_token_head_over_draws(model):
    """Seed 003's previous-token head: L4H11 is the top previous-token head on at least half of 8 draws.
    The source published its pattern, not a score, so the claim is the ranking only."""
    assert_head_role_family(model, "L4H11", "previous_token", seeds=SEEDS, inputs=REPEATED)
