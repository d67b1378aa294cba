"""Prediction checks on Gemma 3 270M (real weights) and on a random tiny GPT-2 (a second architecture).

The numbers asserted here were measured on this machine (float32, compat processing) and are
probabilities and ranks, which do not depend on the processing mode.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Hashable, Sequence
from dataclasses import dataclass

import pytest
import torch

from pytest_annotate.errors import PromptError, VerdictError
from pytest_annotate.checks.predictions import LogitDiffResult, ProbResult, RankResult, TopTokenResult, assert_logit_diff, assert_prob, assert_rank, assert_top_token, check_logit_diff, check_prob, check_rank, check_top_token

IOI = "When Mary and John went to the store, John gave a drink to"


# --------------------------------------------------------------------------- true findings pass


@pytest.mark.parametrize(
    ("prompt", "answer", "prob"),
    [
        ("January February March April", " May", 0.2929),
        ("1 2 3 4", " 5", 0.7807),
        ("A B C D", " E", 0.7587),
        ("The capital of Ireland is", " Dublin", 0.1539),
    ],
)
def test_true_findings_pass_and_return_their_numbers(model, prompt: str, answer: str, prob: float) -> None:
    result = assert_top_token(model, prompt, answer)
    assert isinstance(result, TopTokenResult)
    assert result.passed and result.rank == 0
    assert result.prob == pytest.approx(prob, abs=2e-3)
    assert result.top_tokens[0].token == model.to_str(model.answer_tokens(answer))[0]


def test_multi_token_answer_is_scored_by_its_joint_probability(model) -> None:
    result = assert_top_token(model, "1 2 3 4", " 5", min_prob=0.7)
    assert [t.token for t in result.answer_tokens] == [" ", "5"]
    assert [t.rank for t in result.answer_tokens] == [0, 0]
    assert result.prob == pytest.approx(math.prod(t.prob for t in result.answer_tokens), rel=1e-9)
    assert result.prob == pytest.approx(0.7807, abs=2e-3)
    assert result.logit == result.answer_tokens[0].logit
    report = result.report()
    assert "Tokenized answer: [' ', '5']" in report
    assert "Joint prob: 78.07%" in report
    assert "Rank: 0        Logit:  26.58 Prob:  97.73% Token: |5|" in report


def test_report_reads_like_test_prompt(model) -> None:
    report = check_top_token(model, "January February March April", " May").report()
    lines = report.splitlines()
    assert lines[0] == "PASSED  ' May' is top-1 after 'January February March April': rank 0, logit 23.01, prob 29.29%"
    assert "Tokenized prompt: ['<bos>', 'January', ' February', ' March', ' April']" in lines
    assert "Tokenized answer: [' May']" in lines
    assert "Rank: 0        Logit:  23.01 Prob:  29.29% Token: | May|" in lines
    assert "Top 1th token. Logit:  22.59 Prob:  19.40% Token: | June|" in lines
    assert sum(line.startswith("Top ") for line in lines) == 5


# --------------------------------------------------------------------------- false claims fail, and say why


def test_false_claim_fails_with_what_beat_it(model) -> None:
    with pytest.raises(VerdictError) as info:
        assert_top_token(model, "August September October", " November")
    message = str(info.value)
    assert message.startswith("FAILED  ' November' is top-1 after 'August September October': rank 3")
    assert "3 places short of top-1" in message
    assert "beaten by | | is top-1 at 25.46%, 1.53 logits above | November| (5.50%)" in message
    assert "check_logit_lens(model, 'August September October', ' November')" in message
    assert "Tokenized prompt: ['<bos>', 'August', ' September', ' October']" in message
    assert "Top 3th token. Logit:  19.54 Prob:   5.50% Token: | November|" in message
    assert isinstance(info.value.result, TopTokenResult) and info.value.result.rank == 3


def test_multi_token_failure_shows_the_step_where_the_answer_lost(model) -> None:
    with pytest.raises(VerdictError) as info:
        assert_top_token(model, "1 2 3 4", " 7")
    message = str(info.value)
    assert "greedy rank 5, joint prob 0.16%" in message
    assert "lost at   answer token 2 of 2 (|7|): rank 5; |5| is top-1 at 97.73%, 6.19 logits above |7|" in message
    assert "Top tokens at answer token 2 of 2 (|7|, after the prompt + | |):" in message
    assert "Top 0th token. Logit:  26.58 Prob:  97.73% Token: |5|" in message


def test_min_prob_failure_says_how_many_points_short(model) -> None:
    result = check_top_token(model, "1 2 3 4", " 5", min_prob=0.9)
    assert not result.passed and result.rank == 0
    assert "(needs >= 90.00%, 11.93 points short)" in result.report()


def test_k_widens_the_claim(model) -> None:
    assert not check_top_token(model, "The capital of Ireland is", " the").passed
    result = assert_top_token(model, "The capital of Ireland is", " the", k=2)
    assert result.rank == 1 and result.claim.startswith("' the' is in the top 2")


def test_missing_leading_space_is_pointed_out(model) -> None:
    result = check_top_token(model, "January February March April", "May")
    assert not result.passed and result.rank == 128
    assert "' May' (leading space added) has rank 0, prob 29.29% here: did you mean ' May'?" in result.report()


# --------------------------------------------------------------------------- rank, prob, logit diff


def test_exact_rank_and_max_rank(model) -> None:
    assert isinstance(assert_rank(model, "The capital of Ireland is", " the", rank=1), RankResult)
    assert_rank(model, "The capital of Ireland is", " a", max_rank=2)
    with pytest.raises(VerdictError, match="ranks 1 place better than the claimed rank 2"):
        assert_rank(model, "The capital of Ireland is", " the", rank=2)
    with pytest.raises(VerdictError, match="2 places worse than the allowed rank 0"):
        assert_rank(model, "The capital of Ireland is", " a", max_rank=0)


def test_prob_bounds(model) -> None:
    result = assert_prob(model, "A B C D", " E", min_prob=0.7, max_prob=0.8)
    assert isinstance(result, ProbResult) and result.prob == pytest.approx(0.7587, abs=2e-3)
    with pytest.raises(VerdictError, match=r"25\.87 points above 50\.00%"):
        assert_prob(model, "A B C D", " E", max_prob=0.5)


def test_logit_diff_for_an_ioi_prompt(model) -> None:
    result = assert_logit_diff(model, IOI, " Mary", " John", min_diff=4.0)
    assert isinstance(result, LogitDiffResult)
    assert result.logit_diff == pytest.approx(result.answer_logit - result.other_logit)
    assert result.logit_diff == pytest.approx(5.22, abs=0.02)
    assert (result.answer_rank, result.other_rank) == (0, 5)
    with pytest.raises(VerdictError, match=r"measured  5\.22 = 24\.99 \(\| Mary\|, rank 0\) - 19\.77"):
        assert_logit_diff(model, IOI, " Mary", " John", max_diff=3.0)


def test_logit_diff_compares_multi_token_answers_where_they_differ(model) -> None:
    result = check_logit_diff(model, "1 2 3 4", " 5", " 6", min_diff=1.0)
    assert result.passed and result.shared_prefix == (" ",)
    assert (result.answer_token, result.other_token) == ("5", "6")
    assert "Compared tokens: |5| vs |6| (after the shared answer prefix [' '])" in result.report()


def test_logit_diff_of_identical_answers_is_refused(model) -> None:
    with pytest.raises(PromptError, match="no token where they differ"):
        check_logit_diff(model, "1 2 3 4", " 5", " 5", min_diff=0.0)


# --------------------------------------------------------------------------- interventions


@dataclass(frozen=True)
class ZeroMLP:
    """A minimal intervention (the duck type the checks accept): zero one MLP's output."""

    layer: int

    @property
    def key(self) -> Hashable:
        return ("zero-mlp", self.layer)

    def fwd_hooks(self, lab, tokens) -> Sequence:
        return [(f"blocks.{self.layer}.hook_mlp_out", lambda act, hook: torch.zeros_like(act))]

    def __str__(self) -> str:
        return f"zero MLP{self.layer}"


def test_any_intervention_value_is_accepted_and_memoized(tiny_gpt2) -> None:
    clean = check_top_token(tiny_gpt2, "January February", " March", k=400)
    before = tiny_gpt2.stats.executed
    ablated = check_top_token(tiny_gpt2, "January February", " March", k=400, intervention=ZeroMLP(1))
    again = check_top_token(tiny_gpt2, "January February", " March", k=400, intervention=ZeroMLP(1))
    assert tiny_gpt2.stats.executed == before + 1  # the clean run was memoized; the ablated one is, by key
    assert ablated.prob != clean.prob and again.prob == ablated.prob
    assert ablated.intervention == "zero MLP1"
    assert (ablated.clean_rank, ablated.clean_prob) == (clean.rank, clean.prob)
    assert "after 'January February', under zero MLP1" in ablated.claim
    assert "Intervention: zero MLP1" in ablated.report()


def test_a_library_intervention_reads_as_one_line(model) -> None:
    from pytest_annotate.interventions.ablations import keep_only

    result = assert_top_token(model, "1 2 3 4", " 5", intervention=keep_only(model, ["L0-L13"]))
    assert result.intervention == "keep L0-L13" and result.clean_rank == 0
    with pytest.raises(VerdictError) as info:
        assert_top_token(model, "1 2 3 4", " 5", intervention=keep_only(model, ["L0-L11"]))
    assert "the clean model gives rank 0, prob 78.07% (the intervention moved it to rank 3)" in str(info.value)


def test_raw_hooks_work_and_cannot_be_mixed_with_an_intervention(tiny_gpt2) -> None:
    hooks = ZeroMLP(0).fwd_hooks(tiny_gpt2, None)
    via_hooks = check_prob(tiny_gpt2, "A B C", " D", min_prob=0.0, fwd_hooks=hooks)
    via_value = check_prob(tiny_gpt2, "A B C", " D", min_prob=0.0, intervention=ZeroMLP(0))
    assert via_hooks.prob == via_value.prob
    with pytest.raises(ValueError, match="either intervention= or fwd_hooks="):
        check_prob(tiny_gpt2, "A B C", " D", min_prob=0.0, intervention=ZeroMLP(0), fwd_hooks=hooks)
    with pytest.raises(TypeError, match=r"no \.fwd_hooks\(lab, tokens\) method"):
        check_prob(tiny_gpt2, "A B C", " D", min_prob=0.0, intervention="L0")


# --------------------------------------------------------------------------- second architecture


def test_checks_agree_with_the_logits_on_tiny_gpt2(tiny_gpt2) -> None:
    logits = tiny_gpt2.run("The capital of Ireland is")[-1]
    third = int(logits.argsort(descending=True)[2])
    result = check_top_token(tiny_gpt2, "The capital of Ireland is", third, k=3)
    assert result.passed and result.rank == 2 and result.answer == tiny_gpt2.to_str([third])[0]
    assert result.prompt_tokens[0] == "<|endoftext|>"
    assert [t.token_id for t in result.top_tokens[:3]] == logits.argsort(descending=True)[:3].tolist()
    assert result.prob == pytest.approx(float(logits.double().softmax(-1)[third]), rel=1e-6)


def test_probabilities_and_ranks_agree_between_compat_and_raw(tiny_gpt2, tiny_gpt2_raw) -> None:
    compat = check_top_token(tiny_gpt2, "one two three", " four", k=5)
    raw = check_top_token(tiny_gpt2_raw, "one two three", " four", k=5)
    assert compat.rank == raw.rank
    assert compat.prob == pytest.approx(raw.prob, rel=1e-4)
    diff_c = check_logit_diff(tiny_gpt2, "one two three", " four", " five", min_diff=-100.0).logit_diff
    diff_r = check_logit_diff(tiny_gpt2_raw, "one two three", " four", " five", min_diff=-100.0).logit_diff
    assert diff_c == pytest.approx(diff_r, rel=1e-4, abs=1e-5)


# --------------------------------------------------------------------------- results are values


def _leaves(value: object) -> list[object]:
    if isinstance(value, dict):
        return [x for v in value.values() for x in _leaves(v)]
    if isinstance(value, (list, tuple)):
        return [x for v in value for x in _leaves(v)]
    return [value]


def test_results_are_frozen_plain_values(tiny_gpt2) -> None:
    results = [
        check_top_token(tiny_gpt2, "A B C", " D"),
        check_rank(tiny_gpt2, "A B C", " D", max_rank=3),
        check_prob(tiny_gpt2, "A B C", " D", min_prob=0.1),
        check_logit_diff(tiny_gpt2, "A B C", " D", " E", min_diff=0.0, intervention=ZeroMLP(0)),
    ]
    for result in results:
        assert all(type(leaf) in (int, float, str, bool, type(None)) for leaf in _leaves(result.as_dict()))
        with pytest.raises(dataclasses.FrozenInstanceError):
            result.passed = True  # type: ignore[misc]
        assert str(result) == result.report()


def test_field_names_give_snapshot_tolerance_kinds(tiny_gpt2) -> None:
    from pytest_annotate.snapshot.serialize import flatten

    kinds = {leaf.path_str: leaf.kind for leaf in flatten(check_top_token(tiny_gpt2, "A B C", " D"))}
    assert kinds["rank"] == "exact" and kinds["answer_tokens.0.rank"] == "exact"
    assert kinds["prob"] == "prob" and kinds["top_tokens.0.prob"] == "prob" and kinds["clean_prob"] == "prob"
    assert kinds["logit"] == "logit" and kinds["answer_tokens.0.logit"] == "logit"
    assert kinds["passed"] == "verdict"
    diff_result = check_logit_diff(tiny_gpt2, "A B C", " D", " E", min_diff=0.5)
    diff = {leaf.path_str: leaf.kind for leaf in flatten(diff_result)}
    assert diff["logit_diff"] == "logit" and diff["min_diff"] == "logit" and diff["answer_prob"] == "prob"


# --------------------------------------------------------------------------- bad input


def test_empty_prompt(tiny_gpt2) -> None:
    with pytest.raises(PromptError, match="the prompt is empty"):
        check_top_token(tiny_gpt2, "", " D")


def test_answer_not_in_vocab(tiny_gpt2) -> None:
    with pytest.raises(PromptError, match=r"not valid ids 0\.\.\d+"):
        check_top_token(tiny_gpt2, "A B C", 10**9)
    with pytest.raises(PromptError, match="the answer is empty"):
        check_top_token(tiny_gpt2, "A B C", "")


@pytest.mark.parametrize("k", [0, -1, 1.5, True])
def test_k_must_be_a_whole_number_from_1(tiny_gpt2, k) -> None:
    with pytest.raises(ValueError, match=rf"k={k!r} is not a valid top-k: give a whole number >= 1"):
        check_top_token(tiny_gpt2, "A B C", " D", k=k)


@pytest.mark.parametrize("p", [-0.1, 1.5, float("nan")])
def test_probabilities_must_lie_in_0_1(tiny_gpt2, p: float) -> None:
    with pytest.raises(ValueError, match=r"min_prob=.* is not a probability: give a number between 0 and 1"):
        check_top_token(tiny_gpt2, "A B C", " D", min_prob=p)
    with pytest.raises(ValueError, match=r"max_prob=.* is not a probability"):
        check_prob(tiny_gpt2, "A B C", " D", max_prob=p)


def test_a_percentage_is_recognised(tiny_gpt2) -> None:
    with pytest.raises(ValueError, match=r"min_prob=50 looks like a percentage: min_prob=0\.5\?"):
        check_prob(tiny_gpt2, "A B C", " D", min_prob=50)


def test_claims_need_their_bounds(tiny_gpt2) -> None:
    with pytest.raises(ValueError, match="give exactly one of rank= .* and max_rank="):
        check_rank(tiny_gpt2, "A B C", " D")
    with pytest.raises(ValueError, match="give exactly one of rank="):
        check_rank(tiny_gpt2, "A B C", " D", rank=1, max_rank=2)
    with pytest.raises(ValueError, match=r"rank=-1 is not a rank: give a whole number >= 0"):
        check_rank(tiny_gpt2, "A B C", " D", rank=-1)
    with pytest.raises(ValueError, match="give min_prob=, max_prob= or both"):
        check_prob(tiny_gpt2, "A B C", " D")
    with pytest.raises(ValueError, match="min_prob=0.8 is above max_prob=0.2"):
        check_prob(tiny_gpt2, "A B C", " D", min_prob=0.8, max_prob=0.2)
    with pytest.raises(ValueError, match="give min_diff=, max_diff= or both"):
        check_logit_diff(tiny_gpt2, "A B C", " D", " E")
