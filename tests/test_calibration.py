"""The checks' own error rates (issue 14, item 5), measured where the answer is known.

Each family claim type, stated at its check's defaults, is judged on random-weights models of the
induction series' architecture (the null: no finding is true there, so every claim that holds is a
false positive) and on the series itself (its known-true claims hold at step 3500 and not at step
0). A type whose false-positive rate is above 5% fails here. One run, about 55 s on one thread;
README.md "Calibration" shows its table.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from pytest_annotate import check_head_role, check_top_token_rate, load_model
from pytest_annotate.families import induction_family
from pytest_annotate.calibration import (
    MAX_FPR,
    MIN_NULL_CLAIMS,
    SERIES,
    CalibrationRow,
    ClaimType,
    at_the_bound,
    calibrate,
    claim_types,
    series_probe,
    series_random_lab,
)

README = Path(__file__).resolve().parent.parent / "README.md"
TYPES = [t.name for t in claim_types()]


@pytest.fixture(scope="module")
def calibration():
    return calibrate()


@pytest.fixture(scope="module")
def trained():
    return load_model(str(SERIES), checkpoint=3500, device="cpu")


def _listed(claims) -> str:
    return "\n".join(f"  {c.model} {c.family}: {c.claim}: {c.verdict} ({c.measured})" for c in claims)


@pytest.mark.parametrize("claim_type", TYPES)
def test_false_positive_rate_is_at_most_5_percent(calibration, claim_type: str) -> None:
    row = calibration.row(claim_type)
    assert row.null_n >= MIN_NULL_CLAIMS, f"{claim_type}: {row.null_n} null claims are too few to bound a rate"
    held = calibration.held("null", claim_type)
    assert len(held) == row.null_held
    assert row.null_held / row.null_n <= MAX_FPR, (
        f"{claim_type} holds on {row.null_held} of {row.null_n} null claims ({row.null_where}), more than "
        f"{MAX_FPR:.0%}:\n{_listed(held)}"
    )


@pytest.mark.parametrize("claim_type", TYPES)
def test_true_claims_hold_where_true_and_not_where_false(calibration, claim_type: str) -> None:
    row = calibration.row(claim_type)
    missed = [c for c in calibration.claims if c.claim_type == claim_type and c.side == "true" and not c.held]
    assert row.true_n >= 3 and not missed, f"{claim_type}: true claims that do not hold:\n{_listed(missed)}"
    wrong = calibration.held("false", claim_type)
    assert not wrong, f"{claim_type}: claims that hold where they are false:\n{_listed(wrong)}"


def test_the_table_is_in_the_readme(calibration) -> None:
    """README.md shows the table this test measures (re-run ``python -m pytest_annotate.calibration``)."""
    assert calibration.ok, calibration.problems()
    assert calibration.markdown() in README.read_text(encoding="utf-8"), (
        "README.md's calibration table differs from the measured one:\n" + calibration.markdown()
    )


# --------------------------------------------------------------------------- the calibration can fail


def test_a_lax_claim_is_caught() -> None:
    """A top-1 rate claimed at min_rate 0 holds everywhere: the calibration reports its false positives."""

    def lax(lab, fam, probe):
        return check_top_token_rate(lab, fam, min_rate=0.0)

    claim = ClaimType("lax top-1 rate", "min_rate 0", lambda lab: [("top-1 on ≥ 0%", lax)],
                      [("top-1 on ≥ 0%", lax)], null_draws=10)
    cal = calibrate(seeds=[1, 2], series_draws=1, types=[claim])
    row = cal.row("lax top-1 rate")
    assert (row.null_held, row.null_n, row.true_held, row.false_held) == (20, 20, 1, 1)
    assert not cal.ok
    problems = cal.problems()
    assert problems[0].startswith("lax top-1 rate: false-positive rate 20/20 = 100.0% > 5% on random weights")
    assert problems[1] == "lax top-1 rate: 1 of 1 claims hold on step 0, where they are not true"
    assert "PROBLEMS:" in str(cal)


def test_row_arithmetic() -> None:
    def row(null_held: int, null_n: int, true_held: int = 3, false_held: int = 0) -> CalibrationRow:
        return CalibrationRow("t", "s", "random weights", null_n, null_held, "step 3500", 3, true_held,
                              "step 0", 3, false_held)

    assert row(1, 20).problems() == []  # 5.0% is allowed
    assert row(2, 20).problems() == ["t: false-positive rate 2/20 = 10.0% > 5% on random weights (s)"]
    assert row(0, 19).problems() == ["t: only 19 null claims (need ≥ 20 for the rate to mean anything)"]
    assert row(0, 20, true_held=2).problems() == ["t: only 2 of 3 true claims hold on step 3500"]
    iv = row(1, 20).fpr
    assert iv.estimate == 0.05 and iv.low == pytest.approx(0.00127, abs=1e-5) and iv.high == pytest.approx(0.2487, abs=1e-4)


def test_clopper_pearson_at_its_bound_holds_at_most_2_5_percent() -> None:
    """The rate interval's error where a claim is false by the least, computed exactly (README "At the bound")."""
    rows = at_the_bound(ns=(20, 48, 100), shapes=())
    assert [r.n for r in rows] == [20, 48, 100] and all(r.sims is None for r in rows)
    assert all(r.held <= 0.025 for r in rows)
    assert rows[1].held == pytest.approx(0.0064, abs=5e-5) and rows[1].fmt() == "0.64% (exact)"


# --------------------------------------------------------------------------- the null and the families


def test_seed_0_draws_step_0(tmp_path: Path) -> None:
    """The null models are drawn as the series' own initialisation was: seed 0 is step 0, bit for bit."""
    fresh = series_random_lab(0, tmp_path).bridge.state_dict()
    step0 = load_model(str(SERIES), checkpoint=0, device="cpu").bridge.state_dict()
    assert fresh.keys() == step0.keys()
    assert all(torch.equal(fresh[k], step0[k]) for k in fresh)


def test_induction_family(trained) -> None:
    fam = induction_family(trained, seed=3)
    assert fam == induction_family(trained, seed=3) and fam != induction_family(trained, seed=4)
    assert len(fam) == 96 and 35 <= len(fam.heldout) <= 61
    lengths = set()
    for item in fam:
        words = item.prompt.split()
        lengths.add(len(trained.tokens(item.prompt)))
        assert len(words) == 22 and len(set(words)) == 15 and words[15:] == words[:7]
        assert item.answer == f" {words[7]}"  # the induction answer: what followed the repeated prefix
        foil = item.wrong.strip()
        assert words.count(foil) == 1 and words.index(foil) > 7  # like the answer, seen once, later
    assert lengths == {23}  # BOS + 22: one token length (a mean ablation averages over it)


def test_a_head_role_by_rank_alone_holds_for_one_head_of_every_random_model(tmp_path: Path) -> None:
    """Why the head-role claims state a min_score: "the top head" alone is true of one head in every model."""
    from pytest_annotate import WeakClaimWarning

    lab = series_random_lab(1, tmp_path)
    probe = series_probe(0)
    for role in ("induction", "previous_token"):
        with pytest.warns(WeakClaimWarning, match="claims a rank only") as caught:
            held = [h for h in (f"L{i}H{j}" for i in range(2) for j in range(4))
                    if check_head_role(lab, h, role, top_k=1, inputs=probe).passed]
            score = check_head_role(lab, held[0], role, top_k=1, inputs=probe).score
        assert len(held) == 1, (role, held)
        assert {Path(w.filename).name for w in caught} == {"test_calibration.py"}  # points at this line
        assert score < 0.5 and not check_head_role(lab, held[0], role, min_score=0.5, top_k=1, inputs=probe).passed


def test_the_command_parses_seed_ranges() -> None:
    from pytest_annotate.calibration import _seeds

    assert _seeds("1-3,7") == [1, 2, 3, 7] and _seeds("") == []
