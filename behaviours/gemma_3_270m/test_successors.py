"""Gemma 3 270M continues counting sequences: months, weekdays, letters, number words, digits.

Measured on gemma-3-270m-q4_k_m (the 4-bit GGUF of the embedded package), compat processing.
Digits are multi-token answers: Gemma splits " 5" into " " + "5", so the claim is about the
joint probability and the greedy rank of both tokens.
"""

import pytest
from hypothesis import given, settings

from pytest_annotate.checks.predictions import assert_top_token, check_top_token
from pytest_annotate.strategies import counting_sequences

pytestmark = pytest.mark.model("gemma-3-270m")

SUCCESSORS = [
    # prompt, answer, the least probability measured here minus a margin
    ("January February March April", " May", 0.2),
    ("Sunday Monday Tuesday Wednesday", " Thursday", 0.6),
    ("A B C D", " E", 0.5),
    ("one two three four", " five", 0.35),
    ("1 2 3 4", " 5", 0.6),
]


@pytest.mark.parametrize(("prompt", "answer", "min_prob"), SUCCESSORS, ids=[p for p, _, _ in SUCCESSORS])
def test_successor_is_top1(model, snapshot, prompt, answer, min_prob):
    """The next item of a counting sequence is Gemma's top-1 continuation (measured: May 29%, Thursday 87%,
    E 76%, five 53%, ' 5' joint 78%)."""
    result = assert_top_token(model, prompt, answer, min_prob=min_prob)
    assert result == snapshot


def test_digit_answer_is_two_tokens(model):
    """Gemma tokenizes ' 5' as ' ' + '5', so digit successors are two-token answers."""
    assert model.to_str(model.answer_tokens(" 5")) == [" ", "5"]


@settings(max_examples=12)
@given(counting_sequences("months", min_len=5))
def test_every_month_run_of_five_or_more_is_continued(model, case):
    """Every non-wrapping run of at least five months has the next month top-1 (exhaustive check here:
    all such runs hold; shorter runs starting in August fall to rank 1-3)."""
    assert_top_token(model, case.prompt, case.answer)


@settings(max_examples=12)
@given(counting_sequences("months", min_len=3))
def test_every_month_run_of_three_or_more_has_the_next_month_in_the_top4(model, case):
    """Every non-wrapping run of at least three months has the next month in the top 4."""
    assert_top_token(model, case.prompt, case.answer, k=4)


@settings(max_examples=10)
@given(counting_sequences("digits", min_len=3))
def test_every_digit_run_is_continued(model, case):
    """Every run of three or more digits 0-9 is continued by the next digit, top-1 (lowest measured: 67%)."""
    assert_top_token(model, case.prompt, case.answer)


def test_wrapping_months_are_weaker(model):
    """Wrapping past December is harder: 'October November December' -> ' January' is not top-1 (rank 8)."""
    result = check_top_token(model, "October November December", " January")
    assert not result.passed and result.rank >= 3
