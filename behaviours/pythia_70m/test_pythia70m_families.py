"""Pythia-70m: seed 002's general claim about L3H0, stated over draws for the first GPU run to judge.

Seed 002 found L3H0 to be the most inductive of the three mover heads (induction score 0.3946 on one
draw of BOS + 200 random tokens ×2; ``test_pythia70m_head_roles.py`` keeps that published figure). Its
reading, that L3H0 is an induction head, is a claim about any such draw, so it is stated here over 8
draws, each part judged on its interval over them.

**Not yet measured.** Pythia's weights cannot be fetched where this suite was written; the GPU
workflow's ``pythia-70m`` job is the first run to judge it. The bound is the source's figure rounded
down (0.39 -> 0.3), not tuned on any run. Compat processing and BOS first in every row, as seed 002 ran.

    pytest behaviours/pythia_70m/test_pythia70m_families.py --model pythia-70m
"""

from __future__ import annotations

import pytest

from pytest_annotate import RepeatedRandomTokens, assert_head_role_family

pytestmark = pytest.mark.model("pythia-70m", processing="compat", bos=True)

#: Seed 002's induction inputs (BOS + 200 random tokens ×2), 4 rows a draw, one draw per seed.
REPEATED = RepeatedRandomTokens(n=200, batch=4, bos=True)


def test_l3h0_is_an_induction_head_over_draws(model):
    """L3H0's mean induction score over 8 draws is at least 0.3; no rank is claimed (the source ranked
    it among the movers only, not among all 48 heads)."""
    assert_head_role_family(model, "L3H0", "induction", seeds=range(8), inputs=REPEATED, min_score=0.3, top_k=None)
