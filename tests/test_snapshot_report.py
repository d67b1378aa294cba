"""What a failing snapshot assertion tells the user."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from pytest_annotate.snapshot import Tolerance, compare, flatten
from pytest_annotate.snapshot.report import failure_report
from pytest_annotate.plugin.testing import make_suite, run_suite

pytest_plugins = ["pytester"]


@dataclass(frozen=True)
class Top:
    rank: int
    logit: float
    prob: float
    answer: str
    passed: bool


def test_the_report_lists_each_differing_field_with_its_band_and_the_statistics() -> None:
    old = flatten(Top(rank=0, logit=18.0, prob=0.70, answer=" Mary", passed=True))
    new = flatten(Top(rank=2, logit=18.5, prob=0.7015, answer=" John", passed=False))
    lines = failure_report(compare(old, new), location="snapshots/m/t/test_a.snap", model_id="m", nodeid="t.py::test_a")
    assert lines == [
        "Snapshot of 'm' differs: snapshots/m/t/test_a.snap",
        "To accept the new values, run with --snapshot-update: pytest t.py::test_a --snapshot-update",
        "2 numeric fields compared, 1 beyond tolerance; |Δ| max 0.5, mean 0.2508; "
        "|Δ|/max(|x|) max 0.02703, mean 0.01458",
        "4 of 5 fields differ beyond tolerance:",
        "  field   snapshot  received  Δ     allowed",
        "  rank    0         2         +2    exact",
        "  logit   18.0      18.5      +0.5  ±0.0185 (logit)",
        "  answer  ' Mary'   ' John'         exact",
        "  passed  True      False           exact",
        "Or widen a band for this assertion: snapshot(tolerance={'<field, path glob or kind>': <width>}).",
    ]


def test_added_and_removed_fields_are_shown() -> None:
    lines = failure_report(
        compare(flatten({"a": 1.0, "gone": 2.0}), flatten({"a": 1.0, "new": 3.0})),
        location="x.snap",
        model_id="m",
        nodeid="t.py::t",
    )
    assert "  new    (absent)  3.0       new field   ±0.0001·|x| (≥1e-05) (float)" in lines
    assert "  gone   2.0       (absent)  field gone  ±0.0001·|x| (≥1e-05) (float)" in lines


def test_the_report_says_when_bands_were_widened() -> None:
    comparison = compare(flatten({"prob": 0.5}), flatten({"prob": 0.9}), Tolerance.default().for_dtype("bfloat16"))
    lines = failure_report(comparison, location="x.snap", model_id="m", nodeid="t.py::t")
    assert "  prob   0.5       0.9       +0.4  ±0.1 (prob)" in lines
    assert "Bands widened ×50 for bfloat16 (see pytest_annotate.snapshot.tolerance)." in lines


def test_long_tables_are_cut() -> None:
    comparison = compare(flatten({"x": list(range(100))}), flatten({"x": list(range(1, 101))}))
    lines = failure_report(comparison, location="x.snap", model_id="m", nodeid="t.py::t")
    assert "  … and 60 more" in lines


TEST_TOP = """
from dataclasses import dataclass

@dataclass(frozen=True)
class TopTokenResult:
    prompt: str
    answer: str
    rank: int
    logit: float
    prob: float
    top_tokens: tuple
    passed: bool

def test_top(snapshot, values):
    assert snapshot == TopTokenResult(
        prompt="When Mary and John went to the store, John gave a drink to",
        answer=" Mary",
        rank=values["rank"],
        logit=values["logit"],
        prob=values["prob"],
        top_tokens=({"token": " Mary", "prob": values["prob"]}, {"token": " them", "prob": 0.04}),
        passed=values["rank"] == 0,
    )
"""


def test_a_failing_assertion_shows_the_report_in_pytest(pytester: pytest.Pytester) -> None:
    make_suite(pytester, test_top=TEST_TOP)
    run_suite(pytester, "--snapshot-update", values={"rank": 0, "logit": 18.4825, "prob": 0.7043}).assert_outcomes(
        passed=1
    )
    result = run_suite(pytester, "-vv", values={"rank": 1, "logit": 17.9, "prob": 0.7049})
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "E       AssertionError: assert [- snapshot] == [+ received]",
            "E         Snapshot of 'gpt2-small' differs: snapshots/gpt2-small/test_top/test_top.snap",
            "E         To accept the new values, run with --snapshot-update: pytest test_top.py::test_top --snapshot-update",
            "E         4 numeric fields compared, 1 beyond tolerance; |Δ| max 0.5825, mean 0.1459; "
            "|Δ|/max(|x|) max 0.03152, mean 0.008*",
            "E         3 of 10 fields differ beyond tolerance:",
            "E           field   snapshot  received  Δ        allowed",
            "E           rank    0         1         +1       exact",
            "E           logit   18.4825   17.9      -0.5825  ±0.01848 (logit)",
            "E           passed  True      False              exact",
        ]
    )
    # within the bands (prob moved by 6e-4 < 2e-3): the snapshot holds
    run_suite(pytester, values={"rank": 0, "logit": 18.49, "prob": 0.7049}).assert_outcomes(passed=1)


def test_the_essentials_survive_pytests_truncation(pytester: pytest.Pytester) -> None:
    make_suite(pytester, test_top=TEST_TOP)
    run_suite(pytester, "--snapshot-update", values={"rank": 0, "logit": 18.0, "prob": 0.7}).assert_outcomes(passed=1)
    result = run_suite(pytester, values={"rank": 5, "logit": 10.0, "prob": 0.1})
    result.stdout.fnmatch_lines(
        [
            "E         Snapshot of 'gpt2-small' differs: *",
            "E         To accept the new values, run with --snapshot-update: *",
            "E         *numeric fields compared, * beyond tolerance; |Δ| max *",
        ]
    )
    assert "<snapshot of gpt2-small: test_top.py::test_top>" in result.stdout.str()  # a short repr
