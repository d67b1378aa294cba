"""Hypothesis strategies: what they draw, how they shrink, and one-test properties over Gemma 3 270M.

The Gemma properties were checked exhaustively here before being sampled: all 45 runs of 3 to 11
months that do not pass December have the next month in the top 4 (rank <= 3; the worst is
"August September October" -> " November", rank 3, 5.5%), and every such run of 5 or more months has
it top-1. Runs that wrap do worse ("October November December" -> " January": rank 8).
"""

from __future__ import annotations

import pytest
import torch
from hypothesis import find, given, settings
from hypothesis import strategies as st

from pytest_annotate.checks.predictions import assert_logit_diff, assert_top_token, check_top_token
from pytest_annotate.strategies import (
    COUNTING_KINDS,
    SEQUENCES,
    CountingPrompt,
    NameSwap,
    RepeatedTokens,
    counting_sequences,
    name_swaps,
    ordinary_token_ids,
    repeated_random_tokens,
)

NO_DB = settings(database=None, derandomize=True)


# --------------------------------------------------------------------------- one test, a whole family of prompts


@settings(max_examples=10, deadline=None)
@given(seq=counting_sequences("months", min_len=3))
def test_next_month_is_in_the_top_4_after_any_run_of_3_or_more(model, seq: CountingPrompt) -> None:
    assert_top_token(model, seq.prompt, seq.answer, k=4)


@settings(max_examples=8, deadline=None)
@given(seq=counting_sequences("months", min_len=5))
def test_next_month_is_top_1_after_any_run_of_5_or_more(model, seq: CountingPrompt) -> None:
    assert_top_token(model, seq.prompt, seq.answer)


@settings(max_examples=6, deadline=None)
@given(swap=name_swaps())
def test_indirect_object_beats_the_subject(model, swap: NameSwap) -> None:
    # 150 sampled (template, names) pairs: logit diff min 1.29, mean 4.7; the IO was top-1 in 149.
    assert_logit_diff(model, swap.prompt, swap.correct, swap.incorrect, min_diff=0.5)


@settings(max_examples=4, deadline=None)
@given(data=st.data())
def test_second_copy_of_random_tokens_is_predicted_by_induction(model, data: st.DataObject) -> None:
    # 40 random segments of 5-30 tokens: the second copy's mean log-prob is 11.9 to 18.9 nats above
    # the first copy's (top-1 accuracy in the second copy 0.0-1.0, median 0.78).
    seq = data.draw(repeated_random_tokens(model, min_len=5, max_len=16))
    log_probs = model.run(seq.tokens).double().log_softmax(-1)
    first = list(range(seq.offset, seq.offset + seq.segment_len - 1))
    first_targets = torch.tensor([seq.tokens[p + 1] for p in first], device=log_probs.device)
    second_targets = torch.tensor(seq.induction_targets, device=log_probs.device)
    first_lp = log_probs[first].gather(-1, first_targets[:, None]).mean()
    second_lp = log_probs[list(seq.induction_positions)].gather(-1, second_targets[:, None]).mean()
    assert second_lp >= first_lp + 8, f"second copy {second_lp:.2f} nats vs first {first_lp:.2f}"


def test_a_failing_property_shrinks_to_the_smallest_prompt(tiny_gpt2) -> None:
    """On a random model nearly everything fails: the failure shrinks to the first kind, the earliest answer
    and the shortest run."""
    smallest = find(counting_sequences(), lambda s: not check_top_token(tiny_gpt2, s.prompt, s.answer).passed,
                    settings=NO_DB)
    assert smallest == CountingPrompt("0 1 2", " 3")


# --------------------------------------------------------------------------- counting sequences


@pytest.mark.parametrize(
    ("kind", "answer", "smallest"),
    [
        ("months", " December", "September October November"),
        ("weekdays", " Sunday", "Thursday Friday Saturday"),
        ("letters", " Z", "W X Y"),
        ("number_words", " twenty", "seventeen eighteen nineteen"),
    ],
)
def test_a_failure_at_one_answer_shrinks_to_the_shortest_run_ending_there(kind, answer, smallest) -> None:
    found = find(counting_sequences(kind), lambda s: s.answer == answer, settings=NO_DB)
    assert found == CountingPrompt(smallest, answer)


def test_a_failure_at_one_item_shrinks_to_the_earliest_run_holding_it() -> None:
    assert find(counting_sequences("months"), lambda s: "August" in s.prompt, settings=NO_DB) == CountingPrompt(
        "June July August", " September"
    )


@settings(max_examples=300, database=None)
@given(seq=counting_sequences(min_len=2))
def test_runs_count_up_and_never_wrap_by_default(seq: CountingPrompt) -> None:
    words = [*seq.prompt.split(" "), seq.answer.removeprefix(" ")]
    kind = next(k for k in COUNTING_KINDS if all(w in SEQUENCES[k] for w in words))
    index = [SEQUENCES[kind].index(w) for w in words]
    assert index == list(range(index[0], index[0] + len(words)))
    assert seq.answer.startswith(" ") and not seq.answer.startswith("  ")


def test_months_and_weekdays_wrap_only_when_asked() -> None:
    months_or_days = counting_sequences(("months", "weekdays"), wrap=True)
    wraps = find(months_or_days, lambda s: s.answer == " January", settings=NO_DB)
    assert wraps == CountingPrompt("October November December", " January")
    assert find(counting_sequences("weekdays", wrap=True), lambda s: True, settings=NO_DB) == CountingPrompt(
        "Monday Tuesday Wednesday", " Thursday"
    )


@settings(max_examples=200, database=None)
@given(seq=counting_sequences("weekdays", min_len=3, max_len=4, wrap=True))
def test_lengths_stay_within_bounds(seq: CountingPrompt) -> None:
    assert 3 <= len(seq.prompt.split(" ")) <= 4


def test_counting_arguments_are_checked() -> None:
    with pytest.raises(ValueError, match="unknown counting kind.*'month'.*valid kinds: digits, number_words, months"):
        counting_sequences("month")
    with pytest.raises(ValueError, match="min_len=7 is longer than the longest run of weekdays .6 items"):
        counting_sequences(("months", "weekdays"), min_len=7)
    with pytest.raises(ValueError, match="max_len=2: give a whole number >= min_len=3"):
        counting_sequences(max_len=2)
    with pytest.raises(ValueError, match="wrap=True has no effect on digits: only months and weekdays go round"):
        counting_sequences("digits", wrap=True)
    with pytest.raises(ValueError, match="min_len=0"):
        counting_sequences(min_len=0)


# --------------------------------------------------------------------------- name swaps


def test_name_swaps_shrink_to_the_first_template_and_names() -> None:
    assert find(name_swaps(), lambda s: True, settings=NO_DB) == NameSwap(
        "When Mary and John went to the store, John gave a drink to", " Mary", " John"
    )


@settings(max_examples=100, database=None)
@given(swap=name_swaps())
def test_the_subject_is_repeated_and_the_answer_is_not(swap: NameSwap) -> None:
    assert swap.correct != swap.incorrect
    assert swap.prompt.count(swap.incorrect.strip()) == 2 and swap.prompt.count(swap.correct.strip()) == 1


def test_default_names_are_single_tokens_for_gemma(model) -> None:
    from pytest_annotate.strategies import IOI_NAMES

    assert all(len(model.answer_tokens(" " + name)) == 1 for name in IOI_NAMES)


def test_name_swap_arguments_are_checked() -> None:
    with pytest.raises(ValueError, match=r"needs both \{IO\} .* and \{S\}"):
        name_swaps(templates=["{IO} met {B}"])
    with pytest.raises(ValueError, match="at least two different names"):
        name_swaps(names=["Mary", "Mary"])


# --------------------------------------------------------------------------- repeated random tokens


def test_repeated_tokens_shrink_to_the_shortest_segment() -> None:
    found = find(repeated_random_tokens(range(100, 200), bos=7, min_len=2, max_len=10, shuffle=False),
                 lambda r: r.segment_len >= 4, settings=NO_DB)
    assert found == RepeatedTokens((7, 100, 101, 102, 103, 100, 101, 102, 103), 4, 2, 1)
    shuffled = find(repeated_random_tokens(range(100, 200), bos=7, min_len=2, max_len=10),
                    lambda r: r.segment_len >= 4, settings=NO_DB)
    assert shuffled.segment_len == 4 and shuffled.segment != (100, 101, 102, 103)  # fixed, random-looking tokens
    again = find(repeated_random_tokens(range(100, 200), bos=7, min_len=2, max_len=10),
                 lambda r: r.segment_len >= 4, settings=NO_DB)
    assert again == shuffled


def test_induction_positions_are_those_an_earlier_copy_determines() -> None:
    seq = RepeatedTokens((7, 10, 11, 12, 10, 11, 12, 10, 11, 12), segment_len=3, repeats=3, offset=1)
    assert seq.segment == (10, 11, 12)
    assert seq.induction_positions == (4, 5, 6, 7, 8)  # not 3: the token after it starts the copy
    assert seq.induction_targets == (11, 12, 10, 11, 12)


@settings(max_examples=50, database=None)
@given(seq=repeated_random_tokens(range(1000, 1050), bos=None, min_len=2, max_len=8, repeats=3))
def test_segments_are_unique_and_repeated(seq: RepeatedTokens) -> None:
    assert seq.offset == 0 and len(set(seq.segment)) == seq.segment_len
    assert seq.tokens == seq.segment * 3


def test_ordinary_tokens_leave_out_special_and_partial_tokens(tiny_gpt2, model) -> None:
    for lab in (tiny_gpt2, model):
        ids = ordinary_token_ids(lab)
        tokenizer = lab.bridge.tokenizer
        assert tokenizer.bos_token_id not in ids and tokenizer.eos_token_id not in ids
        texts = tokenizer.batch_decode([[i] for i in ids[:: max(1, len(ids) // 2000)]])
        assert all(t.strip() and "\ufffd" not in t for t in texts)
    assert len(ordinary_token_ids(model)) == 254_873  # of 262,144: 6,384 added tokens (<unused..>, image...) and
    # byte pieces, partial characters and whitespace-only tokens are left out


def test_the_fast_vocabulary_decode_equals_batch_decode(tiny_gpt2, model) -> None:
    from pytest_annotate.strategies import _decode_each

    for lab in (tiny_gpt2, model):
        tokenizer = lab.bridge.tokenizer
        assert tokenizer.backend_tokenizer is not None  # the fast path is the one under test
        assert _decode_each(tokenizer, lab.d_vocab) == tokenizer.batch_decode([[i] for i in range(lab.d_vocab)])


def test_a_lab_gives_its_bos_and_its_context_limit(tiny_gpt2) -> None:
    seq = find(repeated_random_tokens(tiny_gpt2, min_len=3, max_len=5), lambda r: True, settings=NO_DB)
    assert seq.tokens[0] == tiny_gpt2.bridge.tokenizer.bos_token_id and seq.offset == 1
    assert find(repeated_random_tokens(tiny_gpt2, bos=False, max_len=5), lambda r: True, settings=NO_DB).offset == 0
    with tiny_gpt2.bos_policy(False):  # a Lab whose policy is no BOS (Pythia's): None follows it, True overrides it
        assert find(repeated_random_tokens(tiny_gpt2, max_len=5), lambda r: True, settings=NO_DB).offset == 0
        forced = find(repeated_random_tokens(tiny_gpt2, bos=True, max_len=5), lambda r: True, settings=NO_DB)
    assert forced.tokens[0] == tiny_gpt2.bridge.tokenizer.bos_token_id and forced.offset == 1
    with pytest.raises(ValueError, match=r"81 tokens .* exceed the context of 64; give max_len <= 31"):
        repeated_random_tokens(tiny_gpt2, max_len=40)


def test_repeated_tokens_arguments_are_checked() -> None:
    with pytest.raises(ValueError, match="bos=True needs a Lab as vocab"):
        repeated_random_tokens(range(10, 100), bos=True)
    with pytest.raises(ValueError, match="bos='<s>': give None"):
        repeated_random_tokens(range(10, 100), bos="<s>")
    assert find(repeated_random_tokens(range(10, 100)), lambda r: True, settings=NO_DB).offset == 0  # ids: no BOS
    with pytest.raises(ValueError, match="min_len=1: an induction segment needs at least 2 tokens"):
        repeated_random_tokens(range(10, 100), bos=None, min_len=1)
    with pytest.raises(ValueError, match="unique=True needs max_len <= the 5 token ids"):
        repeated_random_tokens(range(5), bos=None, max_len=6)
    with pytest.raises(ValueError, match="repeats=1: give 2 or more"):
        repeated_random_tokens(range(10, 100), bos=None, repeats=1)
