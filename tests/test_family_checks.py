"""Claims over prompt families: three verdicts with intervals, batching, controls, drift, the summary.

Model tests run on the embedded Gemma 3 270M (``model``) with 12 month windows: every prompt is
5 tokens, so a family costs one batched forward pass. A random-weights Pythia checks that the rate
claims do not hold where nothing is true.
"""

from __future__ import annotations

import textwrap

import pytest
import torch

from pytest_annotate import (
    EffectFamilyResult,
    FamilyResult,
    VerdictError,
    assert_necessary_family,
    assert_top_token_rate,
    check_logit_diff_effect,
    check_necessity_family,
    check_prob_rate,
    check_rank_rate,
    check_sufficiency_family,
    check_top_token,
    check_top_token_rate,
    load_model,
)
from pytest_annotate.checks.families import family_summary_line
from pytest_annotate.families import FamilyError, from_list, ioi, windows
from pytest_annotate.results import VERDICTS
from pytest_annotate.stats import judge, rate_interval

torch.set_num_threads(1)

MONTHS = windows("months-w4", "months", 4)
#: The same windows, each asking for the month after the next: never the model's top token.
SKIPPED = from_list(
    "months-skip-one", [(it.prompt, " " + MONTHS[(i + 1) % len(MONTHS)].answer.strip()) for i, it in enumerate(MONTHS)]
)


def _forwards(model):
    return model.stats.executed, model.stats.executed_rows


# --------------------------------------------------------------------------- rates


def test_months_successor_top1_rate_holds(model) -> None:
    r = check_top_token_rate(model, MONTHS, min_rate=0.5, split="all")
    assert isinstance(r, FamilyResult)
    assert (r.verdict, r.passed, r.n, r.k) == ("holds", True, 12, 10)
    assert r.low == pytest.approx(rate_interval(10, 12).low) and r.low >= 0.5
    assert r.headline() == "PASSED  months-w4 (items): the answer is top-1 on ≥ 50% of items: 10/12 = 83.3% [51.6%, 97.9%]"
    # the misses (the year's end, beaten by a blank line) are listed even though the claim holds, worst first
    misses = r.failing()
    assert [m.answer for m in misses] == [" January", " December"]
    assert all(m.rank >= 1 and not m.ok for m in misses)
    assert "2 of 12 items miss the claim on their own:" in r.report()


def test_a_wrong_answer_family_fails_with_the_failing_items_in_the_message(model) -> None:
    with pytest.raises(VerdictError) as excinfo:
        assert_top_token_rate(model, SKIPPED, min_rate=0.9, split="all")
    message = str(excinfo.value)
    r = excinfo.value.result
    assert (r.verdict, r.k, r.n) == ("fails", 0, 12)
    first = message.splitlines()[0]
    assert first == "FAILED  months-skip-one (items): the answer is top-1 on ≥ 90% of items: 0/12 = 0.0% [0.0%, 26.5%]"
    assert "fails: top-1 on 0/12 items = 0.0% [0.0%, 26.5%] (Clopper-Pearson 95%); the whole interval is below 90.0%" in message
    assert "months-skip-one v1: 12 items (" in message  # the family's size and split
    assert "'January February March April' -> ' June'" in message  # a few of its items
    assert "12 of 12 items miss the claim on their own (the first 5 shown, worst first):" in message
    shown = [line for line in message.splitlines() if line.startswith("            '") and ": rank " in line]
    assert len(shown) == 5
    assert all("prob" in line and "top-1 |" in line for line in shown)  # rank, prob, and what won
    ranks = [item.rank for item in r.failing()]
    assert ranks == sorted(ranks, reverse=True)  # worst first


def test_tiny_family_is_inconclusive_and_says_how_many_items_would_settle_it(model) -> None:
    tiny = MONTHS.sample(2)
    r = check_top_token_rate(model, tiny, min_rate=0.9, split="all")
    assert (r.verdict, r.passed, r.n, r.k) == ("inconclusive", False, 2, 2)
    assert r.more_items == judge(rate_interval(2, 2), 0.9).more_items > 0
    with pytest.raises(VerdictError) as excinfo:
        assert_top_token_rate(model, tiny, min_rate=0.9, split="all")
    message = str(excinfo.value)
    assert message.startswith("INCONCLUSIVE  months-w4 (items): the answer is top-1 on ≥ 90% of items: 2/2 = 100.0% [15.8%")
    assert f"about {r.more_items} more items" in message
    assert "interval straddles 90.0%" in message


def test_heldout_is_the_default_split(model) -> None:
    r = check_top_token_rate(model, MONTHS, min_rate=0.3)
    assert r.n == len(MONTHS.heldout) and r.split == "heldout"
    assert "(held-out items)" in r.headline()
    assert check_top_token_rate(model, MONTHS, min_rate=0.3, split="dev").n == len(MONTHS.dev)


def test_rank_and_prob_rates(model) -> None:
    assert check_rank_rate(model, MONTHS, max_rank=3, min_rate=0.7, split="all").verdict == "holds"  # 12/12: [73.5%, 100%]
    r = check_prob_rate(model, MONTHS, min_prob=0.999, min_rate=0.5, split="all")
    assert (r.verdict, r.k) == ("fails", 0)
    probs = [item.prob for item in r.failing()]
    assert probs == sorted(probs)  # lowest probability first


def test_family_numbers_agree_with_the_single_prompt_check(model) -> None:
    r = check_top_token_rate(model, MONTHS, split="all")
    for item in r.items[:3]:
        single = check_top_token(model, item.prompt, item.answer)
        assert item.rank == single.rank
        assert item.prob == pytest.approx(single.prob, abs=1e-5)


def test_a_family_of_12_equal_length_items_costs_one_forward_pass(model) -> None:
    assert len({len(model.tokens(it.prompt)) for it in MONTHS}) == 1
    before = _forwards(model)
    check_top_token_rate(model, MONTHS, split="all")
    after = _forwards(model)
    assert after[0] - before[0] == 1  # not 12
    assert after[1] - before[1] == 12


def test_items_of_two_lengths_share_one_padded_pass_and_score_as_alone(model, monkeypatch) -> None:
    from pytest_annotate.interventions.ablations import ablate
    from pytest_annotate.scoring import items as scoring_items
    from pytest_annotate.scoring.items import score_items
    from pytest_annotate.scoring.sweeps import BATCH_ATOL

    mixed = MONTHS + windows("months-w3", "months", 3)
    assert len({len(model.tokens(it.prompt)) for it in mixed}) == 2
    pairs = [(it.prompt, it.answer) for it in mixed]
    ivs = [None, ablate(model, "L3", "zero")]
    model.clear_memo()
    before = _forwards(model)
    padded = score_items(model, pairs, ivs)
    assert (_forwards(model)[0] - before[0], padded.groups) == (1, 1)  # 24 items x 2 interventions, one pass
    monkeypatch.setattr(scoring_items, "MAX_PADDING", 0.0)  # exact lengths: one pass per length
    exact = score_items(model, pairs, ivs)
    assert exact.groups == 2
    for p_row, e_row in zip(padded.scores, exact.scores, strict=True):
        for p, e in zip(p_row, e_row, strict=True):
            assert (p.score.rank, p.top_id) == (e.score.rank, e.top_id)
            assert p.score.joint_logprob == pytest.approx(e.score.joint_logprob, abs=BATCH_ATOL)
    r = check_top_token_rate(model, mixed, split="all", min_rate=0.5)
    assert r.n == 24
    # what --parity re-runs and reports: the items' own sequences, not their padding
    ran = set(model.prompts)
    for it in mixed:
        toks = tuple(model.tokens(it.prompt).tolist())
        assert toks in ran and toks + toks[-1:] not in ran


def test_position_aligned_ablations_keep_one_pass_per_length(model) -> None:
    from pytest_annotate.interventions.ablations import ablate
    from pytest_annotate.scoring.items import score_items

    pairs = [(it.prompt, it.answer) for it in (MONTHS + windows("months-w3", "months", 3))]
    seen: list[set[int]] = []

    def mean_over_the_group(group):  # a mean ablation over the group's own prompts, position by position
        seen.append({len(item.tokens) for item in group})
        return [None, ablate(model, "L3", "mean", reference=[pairs[item.index][0] for item in group])]

    scores = score_items(model, pairs, mean_over_the_group)
    assert scores.groups == 2 and sorted(len(s) for s in seen) == [1, 1]


def test_pad_batches_bound_the_padding() -> None:
    from pytest_annotate.scoring.items import PreparedItem, pad_batches

    def batches(lengths, answers=None, **kw):
        items = [PreparedItem(i, (7,) * n, n, (1,) * (answers[i] if answers else 1)) for i, n in enumerate(lengths)]
        return [[(len(it.tokens), len(it.answer_ids)) for it in b] for b in pad_batches(items, **kw)]

    assert batches([5] * 8 + [6] * 8) == [[(5, 1)] * 8 + [(6, 1)] * 8]
    assert batches([4] * 9 + [5] * 11 + [6] * 12) == [[(4, 1)] * 9 + [(5, 1)] * 11 + [(6, 1)] * 12]  # 192 for 163
    assert batches([4, 40]) == [[(4, 1)], [(40, 1)]]  # 80 padded tokens for 44 real: two passes
    assert batches([5, 6], max_padding=0.0) == [[(5, 1)], [(6, 1)]]
    assert batches([5, 5], answers=[1, 2]) == [[(5, 1)], [(5, 2)]]  # answer positions differ in number
    for lengths in ([3, 9, 4, 12, 5, 30, 31, 6], [10] * 5 + [13] * 3):
        for b in batches(lengths):
            widest = max(n for n, _ in b)
            assert widest * len(b) <= 1.25 * sum(n for n, _ in b)


def test_logit_lens_rate_agrees_with_the_single_prompt_lens(model) -> None:
    from pytest_annotate import check_logit_lens, check_logit_lens_rate

    few = MONTHS.sample(3)  # the lens unembeds every block's output: 18 full-vocabulary reads per item
    r = check_logit_lens_rate(model, few, max_layer=16, min_rate=0.5, split="all")
    firsts = [check_logit_lens(model, it.prompt, it.answer).first_top1_layer for it in few]
    assert [int(item.value) for item in r.items] == firsts
    assert r.k == sum(f is not None and f <= 16 for f in firsts)
    for item in r.failing():
        assert f"first top-1 in the lens at L{int(item.value)}" in r.report()


# --------------------------------------------------------------------------- effects


def test_logit_diff_effect_on_ioi_agrees_with_the_items(model) -> None:
    family = ioi(n=12)
    r = check_logit_diff_effect(model, family, min_mean=0.0, split="all")
    assert isinstance(r, EffectFamilyResult)
    assert r.verdict == "holds" and r.low > 0
    assert r.estimate == pytest.approx(sum(item.value for item in r.items) / r.n)
    assert r.low <= r.estimate <= r.high
    from pytest_annotate import check_logit_diff

    first = family[0]
    assert r.items[0].value == pytest.approx(
        check_logit_diff(model, first.prompt, first.answer, first.wrong, min_diff=0.0).logit_diff, abs=1e-4
    )


def test_logit_diff_effect_needs_a_foil(model) -> None:
    with pytest.raises(FamilyError, match="have no wrong= foil"):
        check_logit_diff_effect(model, MONTHS, split="all")


# --------------------------------------------------------------------------- necessity and sufficiency


def test_block_3_is_necessary_for_the_next_month_against_random_blocks(model) -> None:
    r = assert_necessary_family(model, MONTHS, "L3", split="all")
    assert r.verdict == "holds" and r.low >= 1.0
    assert r.control is not None and r.control.p_value <= 0.05 and len(r.control.controls) == 5
    assert r.control.mean_claim > r.control.mean_control
    text = r.report()
    assert "p = " in r.headline() and "relabelling permutation test" in text
    assert all(item.control is not None for item in r.items)


def test_block_8_is_not_necessary_but_is_unneeded(model) -> None:
    r = check_necessity_family(model, MONTHS, "L8", split="all")
    assert r.verdict == "fails" and r.high < 1.0
    with pytest.raises(VerdictError, match="FAILED  months-w4"):
        r.raise_if_failed()  # what assert_necessary_family raises
    unneeded = check_necessity_family(model, MONTHS, "L8", claim="unnecessary", max_effect=0.5, split="all")
    assert unneeded.verdict == "holds" and unneeded.high <= 0.5


def test_necessity_batches_every_item_and_control_in_one_pass(model) -> None:
    before = _forwards(model)
    check_necessity_family(model, MONTHS, "L5", ablation="zero", n_controls=3, split="all")
    executed, rows = (a - b for a, b in zip(_forwards(model), before, strict=True))
    assert executed == 1 and rows == 12 * (1 + 1 + 3)  # clean, the component, 3 controls


def test_circuit_of_early_blocks_is_sufficient_against_random_circuits(model) -> None:
    r = check_sufficiency_family(model, MONTHS, "L0-L16", min_rate=0.5, split="all")
    assert r.verdict == "holds"
    assert r.control is not None and r.control.p_value <= 0.05


def test_bad_arguments_say_what_is_valid(model) -> None:
    with pytest.raises(ValueError, match="split='held-out' is not one of: 'heldout', 'dev', 'all'"):
        check_top_token_rate(model, MONTHS, split="held-out")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="give a Family"):
        check_top_token_rate(model, ["January February March April"])  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="min_rate=90"):
        check_top_token_rate(model, MONTHS, min_rate=90)
    with pytest.raises(ValueError, match="not supported over a family"):
        check_necessity_family(model, MONTHS, "L3", ablation="resample")
    with pytest.raises(ValueError, match="max_effect is for claim='unnecessary'"):
        check_necessity_family(model, MONTHS, "L3", max_effect=0.1)
    one_long = from_list("odd", [("January February March April", " May"), ("One two", " three"),
                                 ("Monday Tuesday Wednesday Thursday", " Friday")])
    with pytest.raises(FamilyError, match="prompt\\(s\\) of 3 tokens"):
        check_necessity_family(model, one_long, "L3", split="all")


# --------------------------------------------------------------------------- random weights: nothing is true


@pytest.fixture(scope="module")
def random_lab():
    return load_model("pythia-70m-deduped", random_weights=True, device="cpu")


def test_rate_claims_do_not_hold_on_random_weights(random_lab) -> None:
    for r in (
        check_top_token_rate(random_lab, MONTHS, min_rate=0.5, split="all"),
        check_top_token_rate(random_lab, MONTHS, k=10, min_rate=0.1, split="all"),
        check_rank_rate(random_lab, MONTHS, max_rank=100, min_rate=0.2, split="all"),
    ):
        assert r.verdict in VERDICTS and r.verdict != "holds", r.report()


# --------------------------------------------------------------------------- results without a model


def _rate(k: int, n: int, threshold: float = 0.8, **extra) -> FamilyResult:
    iv = rate_interval(k, n, label="top-1", items="held-out items")
    j = judge(iv, threshold)
    return FamilyResult(
        family="months", family_summary="months v1: 30 items", split="heldout", model_id="m",
        subject="the answer is top-1 on ≥ 80% of items", label="top-1", threshold=threshold, direction=">=",
        verdict=j.verdict, passed=j.verdict == "holds", n=n, k=k, estimate=iv.estimate, low=iv.low, high=iv.high,
        method=iv.method, confidence=0.95, more_items=j.more_items, **extra,
    )  # fmt: skip


def test_result_contract() -> None:
    held, unsure, failed = _rate(30, 30), _rate(26, 30), _rate(10, 30)
    assert [r.verdict for r in (held, unsure, failed)] == ["holds", "inconclusive", "fails"]
    assert [r.passed for r in (held, unsure, failed)] == [True, False, False]
    assert [r.headline().split()[0] for r in (held, unsure, failed)] == ["PASSED", "INCONCLUSIVE", "FAILED"]
    primary = held.measurements()[0]
    assert primary.primary and primary.value == 1.0 and primary.threshold == 0.8
    assert {m.name for m in held.measurements()} >= {"interval low", "interval high", "items"}
    assert held == _rate(30, 30) and held != unsure
    with pytest.raises(VerdictError, match="^INCONCLUSIVE"):
        unsure.raise_if_failed()


def test_summary_line_counts_holds_inconclusive_and_fails() -> None:
    results = [_rate(30, 30), _rate(30, 30), _rate(26, 30), _rate(10, 30), object()]
    assert family_summary_line(results) == "pytest-annotate: family claims: 2 hold, 1 inconclusive, 1 fail"
    assert family_summary_line([object()]) is None


def test_drift_calls_a_moved_interval_weakened_and_a_changed_verdict_flipped() -> None:
    from pytest_annotate.snapshot.compare import compare
    from pytest_annotate.snapshot.drift import (
        classify,
        describe_key_numbers,
        key_numbers_from_comparison,
    )
    from pytest_annotate.snapshot.serialize import flatten

    base = flatten(_rate(30, 30))
    same = compare(base, flatten(_rate(30, 30)))
    assert classify(same) == "held"
    weaker = compare(base, flatten(_rate(29, 30)))  # holds still, but the interval moved
    assert classify(weaker) == "weakened"
    numbers = describe_key_numbers(key_numbers_from_comparison(weaker))
    assert numbers.startswith("verdict holds → holds · n 30 → 30 · ")
    assert "low 0.8843 → 0.8278*" in numbers
    flipped = compare(base, flatten(_rate(26, 30)))
    assert classify(flipped) == "flipped"
    assert describe_key_numbers(key_numbers_from_comparison(flipped)).startswith("verdict holds → inconclusive*")
    # inconclusive -> fails leaves passed False on both sides: only the verdict word says it flipped
    assert classify(compare(flatten(_rate(26, 30)), flatten(_rate(10, 30)))) == "flipped"


def test_terminal_summary_counts_family_claims(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_claims=textwrap.dedent('''
        import pytest
        from pytest_annotate import FamilyResult
        from pytest_annotate.stats import judge, rate_interval

        def rate(k, n):
            iv = rate_interval(k, n)
            j = judge(iv, 0.8)
            return FamilyResult(family="f", family_summary="f v1", split="all", model_id="m", subject="s",
                label="top-1", threshold=0.8, direction=">=", verdict=j.verdict, passed=j.holds, n=n, k=k,
                estimate=iv.estimate, low=iv.low, high=iv.high, method=iv.method, confidence=0.95)

        @pytest.mark.parametrize("k", [30, 30, 26, 10])
        def test_claim(k):
            rate(k, 30).raise_if_failed()

        def test_plain():
            assert True
    '''))
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(passed=3, failed=2)
    result.stdout.fnmatch_lines(["pytest-annotate: family claims: 2 hold, 1 inconclusive, 1 fail"])
    result.stdout.fnmatch_lines(["*INCONCLUSIVE  f (items): s: 26/30*"])
