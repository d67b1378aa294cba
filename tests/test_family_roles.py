"""Head roles over several random draws, and the residual-stream decomposition over a family.

Head roles run on the committed induction series (``examples/induction_series``): at step 3500 the
2-layer attention-only model has a previous-token head L0H1 and an induction head L1H0 (L1H1 and
L1H3 induct less); at step 0 (random init) every head attends almost uniformly. BOS + 15 random
tokens ×2, batch 8, the series' probe length: one forward pass of 8 × 31 tokens per seed.
The decomposition family runs on the tiny random GPT-2 of ``conftest.py``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

import pytest_annotate as pa
from pytest_annotate import (
    FamilyResult,
    RepeatedRandomTokens,
    VerdictError,
    assert_decomposition_family,
    assert_head_role_family,
    check_decomposition,
    check_decomposition_family,
    check_head_role_family,
    head_scores,
    load_model,
)
from pytest_annotate.checks.families import family_summary_line
from pytest_annotate.checks.family_roles import conjoin
from pytest_annotate.errors import ComponentError
from pytest_annotate.families import windows
from pytest_annotate.scoring.head_scores import RoleError
from pytest_annotate.stats import items_to_settle, rate_interval

torch.set_num_threads(1)

CHECKPOINTS = Path(__file__).resolve().parents[1] / "examples" / "induction_series" / "checkpoints"
PROBE = RepeatedRandomTokens(n=15, batch=8)
MONTHS = windows("months-w4", "months", 4)


@pytest.fixture(scope="module")
def trained():
    return load_model(str(CHECKPOINTS / "step3500"), device="cpu")


@pytest.fixture(scope="module")
def untrained():
    return load_model(str(CHECKPOINTS / "step0"), device="cpu")


# --------------------------------------------------------------------------- head roles over seeds


def test_induction_head_holds_over_seeds(trained) -> None:
    r = assert_head_role_family(trained, "L1H0", "induction", min_score=0.8, inputs=PROBE)
    assert isinstance(r, FamilyResult) and r.is_family_claim
    assert (r.verdict, r.passed, r.n, r.seeds) == ("holds", True, 8, tuple(range(8)))
    score, rank = r.parts
    assert (score.part, score.outcome, rank.part, rank.outcome) == ("score", "holds", "rank", "holds")
    # the per-seed numbers are head_scores' own, on RepeatedRandomTokens drawn with each seed
    expected = [head_scores(trained, "induction", inputs=RepeatedRandomTokens(n=15, batch=8, seed=s)).score("L1H0")
                for s in range(8)]
    assert [o.score for o in r.items] == expected
    assert score.estimate == pytest.approx(np.mean(expected))
    assert 0.8 < score.low <= score.estimate <= score.high < 0.95
    assert all(o.rank == 0 and o.ok for o in r.items)
    assert (rank.k, rank.n) == (8, 8) and rank.low == pytest.approx(rate_interval(8, 8).low)
    # the result's interval (report, report.json, trajectories) is the score part's
    assert (r.low, r.high, r.interval.n) == (score.low, score.high, 8)
    assert r.headline().startswith(
        "PASSED  L1H0 is an induction head on step3500 over 8 random draws: mean score ≥ 0.8 and the top head on "
        "≥ 50% of seeds: mean score 0.8"
    )
    report = r.report()
    assert "BOS + 15 random ordinary tokens ×2, batch 8, seeds 0-7" in report
    assert "L1H0 0.8" in report and "<-" in report
    assert "none of the 8 seeds misses the claim on its own" in report
    assert family_summary_line([r]) == "pytest-annotate: family claims: 1 hold, 0 inconclusive, 0 fail"


def test_previous_token_head_holds_and_the_seeds_are_the_ones_given(trained) -> None:
    r = check_head_role_family(trained, "L0H1", "previous_token", min_score=0.7, top_k=None, seeds=[3, 11, 42],
                               inputs=PROBE)
    assert r.verdict == "holds" and [o.seed for o in r.items] == [3, 11, 42] and len(r.parts) == 1
    assert "seeds 3, 11, 42" in r.inputs


def test_a_head_that_is_not_an_induction_head_fails_with_its_seeds_listed(trained) -> None:
    with pytest.raises(VerdictError) as excinfo:
        assert_head_role_family(trained, "L0H0", "induction", min_score=0.8, inputs=PROBE)
    r = excinfo.value.result
    message = str(excinfo.value)
    assert (r.verdict, r.parts[0].outcome, r.parts[1].outcome) == ("fails", "fails", "fails")
    assert r.high < 0.1 and r.parts[1].k == 0
    assert message.splitlines()[0].startswith("FAILED  L0H0 is an induction head on step3500 over 8 random draws")
    assert "8 of 8 seeds miss the claim on their own (the first 5 shown, worst first):" in message
    shown = [line.strip() for line in message.splitlines() if line.strip().startswith("seed ")]
    assert len(shown) == 5 and all("of 8 heads (top: L1H0" in line for line in shown)
    scores = [o.score for o in r.failing()]
    assert scores == sorted(scores)  # worst (lowest score) first
    assert "check_head_role(lab, 'L0H0', 'induction'" in message


def test_the_claim_is_a_conjunction_the_second_head_scores_but_is_not_the_top(trained) -> None:
    r = check_head_role_family(trained, "L1H1", "induction", min_score=0.7, inputs=PROBE)
    score, rank = r.parts
    assert (score.outcome, rank.outcome, r.verdict) == ("holds", "fails", "fails")
    assert all(o.rank == 1 for o in r.items)
    assert "verdict   fails: the score part holds; the rank part fails" in r.report()
    assert check_head_role_family(trained, "L1H1", "induction", min_score=0.7, top_k=2, inputs=PROBE).verdict == "holds"
    assert conjoin(["holds", "inconclusive"]) == "inconclusive" and conjoin(["inconclusive", "fails"]) == "fails"


def test_random_init_has_no_induction_head(untrained) -> None:
    r = check_head_role_family(untrained, "L1H0", "induction", min_score=0.3, inputs=PROBE)
    assert r.verdict == "fails" and r.parts[0].outcome == "fails" and r.high < 0.1
    # Every head attends almost uniformly: some head is consistently "top" by a hair, so a rank alone
    # holds on random weights. The score part is what makes it a role.
    top = r.mean_top_heads[0][0]
    by_rank = check_head_role_family(untrained, top, "induction", inputs=PROBE)
    assert by_rank.verdict == "holds"
    assert check_head_role_family(untrained, top, "induction", min_score=0.3, inputs=PROBE).verdict == "fails"


def test_inconclusive_says_how_many_more_seeds_and_they_settle_it(trained) -> None:
    # 8/8 seeds top-1 gives [63.1%, 100%]: a claim of >= 70% needs more seeds
    r = check_head_role_family(trained, "L1H0", "induction", min_rate=0.7, inputs=PROBE)
    assert r.verdict == "inconclusive" and not r.passed
    more = items_to_settle(8, 8, 0.7)
    assert r.more_items == more and more > 0
    assert r.headline().startswith("INCONCLUSIVE  L1H0 is an induction head")
    assert f"about {more} more seeds like these would settle it: seeds=range({8 + more})" in r.report()
    with pytest.raises(VerdictError, match="INCONCLUSIVE"):
        assert_head_role_family(trained, "L1H0", "induction", min_rate=0.7, inputs=PROBE)
    assert check_head_role_family(trained, "L1H0", "induction", min_rate=0.7, seeds=range(8 + more),
                                  inputs=PROBE).verdict == "holds"
    # a score bound inside the interval: the score part is inconclusive, and so is the claim
    mean = float(np.mean([o.score for o in r.items]))
    at = check_head_role_family(trained, "L1H0", "induction", min_score=mean, top_k=None, inputs=PROBE)
    assert at.verdict == "inconclusive" and at.low < mean < at.high


def test_the_result_is_a_value_for_snapshots_and_reports(trained) -> None:
    from pytest_annotate.report.measurements import summarize_result
    from pytest_annotate.snapshot.compare import compare
    from pytest_annotate.snapshot.drift import classify
    from pytest_annotate.snapshot.serialize import flatten

    r = check_head_role_family(trained, "L1H0", "induction", min_score=0.8, inputs=PROBE)
    again = check_head_role_family(trained, "L1H0", "induction", min_score=0.8, inputs=PROBE)
    assert r == again and classify(compare(flatten(r), flatten(again))) == "held"
    s = summarize_result(r)
    assert (s.verdict, s.n, s.low, s.high) == ("holds", 8, r.low, r.high)
    primary = [m for m in s.measurements if m.primary]
    assert [m.name for m in primary] == ["mean L1H0 induction score"] and primary[0].threshold == 0.8
    assert r.as_dict()["items"][0]["seed"] == 0


def test_bad_inputs_say_what_to_give(trained) -> None:
    with pytest.raises(RoleError, match="at least 2 seeds"):
        check_head_role_family(trained, "L1H0", "induction", seeds=[], inputs=PROBE)
    with pytest.raises(RoleError, match="at least 2 seeds"):
        check_head_role_family(trained, "L1H0", "induction", seeds=[0], inputs=PROBE)
    with pytest.raises(RoleError, match="seed 1 is given twice"):
        check_head_role_family(trained, "L1H0", "induction", seeds=[0, 1, 1], inputs=PROBE)
    with pytest.raises(RoleError, match="not a seed"):
        check_head_role_family(trained, "L1H0", "induction", seeds=[0, -1], inputs=PROBE)
    with pytest.raises(RoleError, match="give the seeds"):
        check_head_role_family(trained, "L1H0", "induction", seeds="01", inputs=PROBE)
    with pytest.raises(ComponentError, match="out of range"):
        check_head_role_family(trained, "L1H7", "induction", inputs=PROBE)
    with pytest.raises(ComponentError, match="not an attention head"):
        check_head_role_family(trained, "L1", "induction", inputs=PROBE)
    with pytest.raises(RoleError, match="unknown head role 'inductoin'.*induction"):
        check_head_role_family(trained, "L1H0", "inductoin", inputs=PROBE)  # type: ignore[arg-type]
    with pytest.raises(RoleError, match="weights only"):
        check_head_role_family(trained, "L1H0", "copying")
    with pytest.raises(RoleError, match="claims nothing"):
        check_head_role_family(trained, "L1H0", "induction", top_k=None, inputs=PROBE)
    with pytest.raises(RoleError, match="top_k=0"):
        check_head_role_family(trained, "L1H0", "induction", top_k=0, inputs=PROBE)
    with pytest.raises(RoleError, match="min_score=nan"):
        check_head_role_family(trained, "L1H0", "induction", min_score=float("nan"), inputs=PROBE)
    with pytest.raises(ValueError, match="min_rate=1.5"):
        check_head_role_family(trained, "L1H0", "induction", min_rate=1.5, inputs=PROBE)
    with pytest.raises(RoleError, match="RepeatedRandomTokens.*template"):
        check_head_role_family(trained, "L1H0", "induction", inputs=torch.arange(1, 11)[None])  # type: ignore[arg-type]
    with pytest.raises(RoleError, match="seeds are given by seeds="):
        check_head_role_family(trained, "L1H0", "induction", inputs=RepeatedRandomTokens(n=15, seed=5))
    with pytest.raises(pa.PromptError, match="longer than"):  # the default draw (BOS + 50 ×2) exceeds 41 positions
        check_head_role_family(trained, "L1H0", "induction")


# --------------------------------------------------------------------------- the decomposition over a family


def test_decomposition_holds_on_every_held_out_item(tiny_gpt2) -> None:
    r = assert_decomposition_family(tiny_gpt2, MONTHS)
    heldout = MONTHS.heldout
    assert isinstance(r, FamilyResult) and r.is_family_claim and r.every_item
    assert (r.verdict, r.split, r.n, r.k) == ("holds", "heldout", len(heldout), len(heldout))
    assert [o.prompt for o in r.items] == list(heldout.prompts)
    # each item is check_decomposition's verdict on it, with the answer's first token among the logits
    one = check_decomposition(tiny_gpt2, heldout[0].prompt, answer=tiny_gpt2.answer_tokens(heldout[0].answer)[0])
    assert r.items[0].worst_error == max(i.compared_error for i in one.identities)
    assert dict(r.worst_errors).keys() == {"embed", "residual", "heads", "logits"}
    assert max(err for _, err in r.worst_errors) < 1e-4
    assert r.headline().startswith("PASSED  months-w4 (held-out items): every item's residual stream is the sum of")
    assert f"every one of the {r.n} held-out items sums within atol" in r.report()


def test_decomposition_with_an_absurd_atol_fails_and_lists_the_items(tiny_gpt2) -> None:
    with pytest.raises(VerdictError) as excinfo:
        assert_decomposition_family(tiny_gpt2, MONTHS, atol=1e-12)
    r, message = excinfo.value.result, str(excinfo.value)
    assert (r.verdict, r.k) == ("fails", 0)
    assert f"{r.n} of {r.n} items miss atol on their own (the first 5 shown, worst first):" in message
    shown = [line for line in message.splitlines() if line.startswith("            '") and "x atol at" in line]
    assert len(shown) == 5
    errors = [o.worst_error for o in r.failing()]
    assert errors == sorted(errors, reverse=True)
    assert "print(check_decomposition(model, " in message
    # below min_rate=1 the interval is judged as every family rate is
    assert check_decomposition_family(tiny_gpt2, MONTHS, atol=1e-12, min_rate=0.5).verdict == "fails"
    assert check_decomposition_family(tiny_gpt2, MONTHS, min_rate=0.5, split="all").verdict == "holds"
    unsure = check_decomposition_family(tiny_gpt2, MONTHS, min_rate=0.9, split="all")  # 12/12: [73.5%, 100%]
    assert unsure.verdict == "inconclusive" and unsure.more_items == items_to_settle(12, 12, 0.9)


def test_decomposition_fails_on_one_bad_item(tiny_gpt2) -> None:
    # an atol between the items' errors: the claim about every item fails on the ones above it
    full = check_decomposition_family(tiny_gpt2, MONTHS, split="all")
    errors = sorted(o.worst_error for o in full.items)
    r = check_decomposition_family(tiny_gpt2, MONTHS, split="all", atol=(errors[-1] + errors[-2]) / 2)
    assert (r.verdict, r.k, r.n) == ("fails", 11, 12) and len(r.failing()) == 1


def test_decomposition_bad_inputs(tiny_gpt2) -> None:
    with pytest.raises(ValueError, match="atol=0"):
        check_decomposition_family(tiny_gpt2, MONTHS, atol=0)
    with pytest.raises(TypeError, match="give a Family"):
        check_decomposition_family(tiny_gpt2, ["January February"])  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="split='test'"):
        check_decomposition_family(tiny_gpt2, MONTHS, split="test")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="min_rate=2"):
        check_decomposition_family(tiny_gpt2, MONTHS, min_rate=2)


def test_exported() -> None:
    for name in ("check_head_role_family", "assert_head_role_family", "HeadRoleFamilyResult",
                 "check_decomposition_family", "assert_decomposition_family", "DecompositionFamilyResult"):
        assert name in pa.__all__ and getattr(pa, name) is not None
