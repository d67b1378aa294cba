"""Gemma 3 270M continues counting sequences, judged over every window of each sequence.

A claim is over a family (``gemma_families.py``: every window of several items, the answer the next item),
its threshold chosen on the family's dev split and judged on the held-out split with a
Clopper-Pearson 95% interval. Measured on gemma-3-270m-q4_k_m (the 4-bit GGUF of the embedded
package), compat processing, BOS prepended, float32.

The suite used to state these on one prompt each ("January February March April" -> " May");
over their families, weekdays and digits hold, months are inconclusive at the bound their dev split
gave (marked xfail with the measured numbers: strict, so a change of verdict shows), and number words
and letters do not hold: the one-prompt findings for those were anecdotes, reported as such here.
"""

import pytest

from gemma_families import DIGITS, LETTERS, MONTHS, NUMBER_WORDS, WEEKDAYS
from pytest_annotate import VerdictError, assert_top_token_rate, check_top_token_rate

pytestmark = pytest.mark.model("gemma-3-270m")

# family, min_rate: each the Clopper-Pearson lower bound of the dev split's top-1 rate, rounded down
# to 5 points (dev: months 33/35 [81%, 99%], weekdays 10/11 [59%, 100%], digits 12/13 [64%, 100%]).
HOLDS = [
    pytest.param(MONTHS, 0.8, id="months", marks=pytest.mark.xfail(
        raises=VerdictError, strict=True,
        reason="inconclusive on the held-out runs: 33/37 = 89.2% [74.6%, 97.0%] straddles 80%; about 40 more "
               "items would settle it (measured 2026-12-06, CPU float32)")),
    pytest.param(WEEKDAYS, 0.55, id="weekdays"),
    pytest.param(DIGITS, 0.6, id="digits"),
]


@pytest.mark.parametrize(("family", "min_rate"), HOLDS)
def test_next_item_is_top1(model, snapshot, family, min_rate):
    """The next item of a counting sequence is Gemma's top-1 continuation on most windows (held-out)."""
    result = assert_top_token_rate(model, family, min_rate=min_rate)
    assert result == snapshot


@pytest.mark.parametrize("family", [NUMBER_WORDS, LETTERS], ids=["number-words", "letters"])
def test_number_words_and_letters_are_not_reliably_continued(model, snapshot, family):
    """Number words and letters are NOT continued top-1 on most windows: the one-prompt findings
    ("one two three four" -> " five", "A B C D" -> " E") do not generalize (dev: number words 5/22
    top-1 [8%, 45%], letters 14/37 [23%, 55%]). The claim "top-1 on >= 50% of windows" must not
    hold on the held-out items; if it starts to, this finding has changed and should be restated."""
    result = check_top_token_rate(model, family, min_rate=0.5)
    assert result.verdict != "holds", result.report()
    assert result == snapshot


def test_digit_answer_is_two_tokens(model):
    """Gemma tokenizes ' 5' as ' ' + '5', so digit successors are two-token answers (joint probability,
    greedy rank: the worst of the two tokens' ranks)."""
    assert model.to_str(model.answer_tokens(" 5")) == [" ", "5"]
