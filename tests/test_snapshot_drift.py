"""--snapshot-baseline: compare with another model's snapshots, report drift, write nothing."""

from __future__ import annotations

from pathlib import Path

import pytest

from pytest_annotate.plugin.keys import DRIFT_RECORDS
from pytest_annotate.plugin.snapshots import drift_records
from pytest_annotate.plugin.testing import inline_suite, make_suite, run_suite
from pytest_annotate.snapshot import DriftRecord, KeyNumber, drift_table

pytest_plugins = ["pytester"]

OLD, NEW = "pythia-160m-deduped@step1000", "pythia-160m-deduped@step3000"

TEST_BEHAVIOURS = """
def test_held(snapshot, values):
    assert snapshot == {"passed": True, "rank": 0, "prob": values["held"], "logit": 12.5}

def test_weakened(snapshot, values):
    assert snapshot == {"passed": True, "rank": 0, "prob": values["weak"]}

def test_flipped(snapshot, values):
    assert snapshot == {"passed": values["rank"] == 0, "rank": values["rank"], "prob": 0.4}

def test_new(snapshot, values):
    if values["new"]:
        assert snapshot == {"rank": 0}

def test_missing(snapshot, values):
    if values["missing"]:
        assert snapshot == {"rank": 3, "prob": 0.125}
"""

BASELINE = {"held": 0.70, "weak": 0.90, "rank": 0, "new": False, "missing": True}
CURRENT = {"held": 0.7005, "weak": 0.60, "rank": 4, "new": True, "missing": False}


def _tree(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in (root / "snapshots").rglob("*") if p.is_file()}


@pytest.fixture
def suite(pytester: pytest.Pytester) -> pytest.Pytester:
    make_suite(pytester, test_behaviours=TEST_BEHAVIOURS)
    run_suite(pytester, "--snapshot-update", model=OLD, values=BASELINE).assert_outcomes(passed=5)
    return pytester


def test_drift_table_shows_held_weakened_flipped_new_and_missing(suite: pytest.Pytester) -> None:
    before = _tree(suite.path)
    result = run_suite(suite, "--snapshot-baseline", OLD, model=NEW, values=CURRENT)
    assert result.ret == 0  # drift never fails the run
    result.assert_outcomes(passed=5)
    result.stdout.fnmatch_lines(
        [
            f"*snapshot drift: {NEW} vs baseline {OLD}*",
            "  status    snapshot                           baseline → this run (* beyond tolerance)",
            "  flipped   test_behaviours.py::test_flipped   passed True → False* · rank 0 → 4* · prob 0.4 → 0.4",
            "  weakened  test_behaviours.py::test_weakened  passed True → True · rank 0 → 0 · prob 0.9 → 0.6*",
            "  missing   test_behaviours.py::test_missing   rank 3 → – · prob 0.125 → –",
            "  new       test_behaviours.py::test_new       rank – → 0",
            "  held      test_behaviours.py::test_held      passed True → True · rank 0 → 0 · prob 0.7 → 0.7005 · logit 12.5 → 12.5",
            "5 snapshots: 1 held, 1 weakened, 1 flipped, 1 new, 1 missing",
        ]
    )
    assert _tree(suite.path) == before  # nothing written, not even the new model's folder
    assert not (suite.path / "snapshots" / NEW).exists()


def test_drift_records_are_values_in_the_stash(suite: pytest.Pytester) -> None:
    recorder = inline_suite(suite, "--snapshot-baseline", OLD, model=NEW, values=CURRENT)
    config = recorder.getcall("pytest_sessionfinish").session.config
    records = drift_records(config)
    assert records == config.stash[DRIFT_RECORDS]
    by_status = {r.status: r for r in records}
    assert sorted(by_status) == ["flipped", "held", "missing", "new", "weakened"]
    flipped = by_status["flipped"]
    assert isinstance(flipped, DriftRecord)
    assert (flipped.nodeid, flipped.model_id, flipped.baseline_model_id) == ("test_behaviours.py::test_flipped", NEW, OLD)
    assert flipped.baseline_path == f"snapshots/{OLD}/test_behaviours/test_flipped.snap"
    assert flipped.key_numbers[:2] == (
        KeyNumber("passed", "verdict", True, False, ok=False),
        KeyNumber("rank", "exact", 0, 4, ok=False),
    )
    assert [f.path for f in flipped.changed] == ["passed", "rank"]
    weakened = by_status["weakened"]
    assert (weakened.n_compared, weakened.n_failed) == (3, 1)
    assert weakened.max_abs_error == pytest.approx(0.3)
    with pytest.raises(AttributeError):
        weakened.status = "held"  # type: ignore[misc]


def test_a_run_against_its_own_snapshots_holds(suite: pytest.Pytester) -> None:
    result = run_suite(suite, "--snapshot-baseline", OLD, model=OLD, values=BASELINE)
    result.stdout.fnmatch_lines(["4 snapshots: 4 held, 0 weakened, 0 flipped, 0 new, 0 missing"])


def test_baseline_and_update_cannot_be_combined(suite: pytest.Pytester) -> None:
    result = run_suite(suite, "--snapshot-baseline", OLD, "--snapshot-update", model=NEW, values=CURRENT)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--snapshot-baseline compares with another model's snapshots and never writes*"])


def test_an_unknown_baseline_lists_the_available_ones(suite: pytest.Pytester) -> None:
    result = run_suite(suite, "--snapshot-baseline", "gpt2-smal", model=NEW, values=CURRENT)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"*--snapshot-baseline gpt2-smal: no snapshot folder *; available: {OLD}"])


def test_a_broken_baseline_file_fails_its_test_with_file_and_line(suite: pytest.Pytester) -> None:
    path = suite.path / "snapshots" / OLD / "test_behaviours" / "test_held.snap"
    path.write_text(path.read_text().replace("rank = 0", "rank = zero"))
    result = run_suite(suite, "--snapshot-baseline", OLD, "-k", "held", model=NEW, values=CURRENT)
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [f"*SnapshotFileError: snapshots/{OLD}/test_behaviours/test_held.snap:7: cannot read the value of 'rank'*"]
    )


def test_a_deselected_test_is_not_missing(suite: pytest.Pytester) -> None:
    result = run_suite(suite, "--snapshot-baseline", OLD, "-k", "not missing", model=NEW, values=CURRENT)
    result.stdout.fnmatch_lines(["4 snapshots: 1 held, 1 weakened, 1 flipped, 1 new, 0 missing"])


def test_drift_table_orders_worst_first() -> None:
    def record(status: str, nodeid: str) -> DriftRecord:
        return DriftRecord(nodeid, nodeid.split("::")[1], status, "b", "a", "x.snap")  # type: ignore[arg-type]

    lines = drift_table([record("held", "t.py::a"), record("new", "t.py::b"), record("flipped", "t.py::c")])
    assert [line.split()[0] for line in lines[1:4]] == ["flipped", "new", "held"]


# --------------------------------------------------------------------------- family claims (verdicts with intervals)

TEST_FAMILY_CLAIMS = """
from pytest_annotate import FamilyResult
from pytest_annotate.stats import judge, rate_interval


def rate(k, n=30):
    iv = rate_interval(k, n)
    j = judge(iv, 0.8)
    return FamilyResult(family="months", family_summary="months v1", split="heldout", model_id="m",
        subject="the answer is top-1", label="top-1", threshold=0.8, direction=">=", verdict=j.verdict,
        passed=j.verdict == "holds", n=n, k=k, estimate=iv.estimate, low=iv.low, high=iv.high,
        method=iv.method, confidence=0.95)


def test_steady(snapshot, values):
    assert snapshot == rate(values["steady"])

def test_narrower(snapshot, values):
    assert snapshot == rate(values["narrower"])

def test_unsure(snapshot, values):
    assert snapshot == rate(values["unsure"])

def test_failing(snapshot, values):
    assert snapshot == rate(values["failing"])
"""


def test_family_claims_drift_by_interval_and_verdict_word(pytester: pytest.Pytester) -> None:
    """A family claim whose interval moved beyond its band but whose verdict stayed is weakened; one whose
    verdict word changed (holds → inconclusive, inconclusive → fails) is flipped, even where ``passed``
    is False on both sides."""
    make_suite(pytester, test_family=TEST_FAMILY_CLAIMS)
    baseline = {"steady": 30, "narrower": 30, "unsure": 30, "failing": 27}
    run_suite(pytester, "--snapshot-update", model=OLD, values=baseline).assert_outcomes(passed=4)
    current = {"steady": 30, "narrower": 29, "unsure": 27, "failing": 10}  # 29/30 holds; 27/30 is inconclusive
    recorder = inline_suite(pytester, "--snapshot-baseline", OLD, model=NEW, values=current)
    records = {r.nodeid.rsplit("::", 1)[1]: r for r in drift_records(recorder.getcall("pytest_sessionfinish").session.config)}
    assert {name: r.status for name, r in records.items()} == {
        "test_steady": "held", "test_narrower": "weakened", "test_unsure": "flipped", "test_failing": "flipped"}
    narrower = records["test_narrower"]
    assert {f.path for f in narrower.changed} >= {"low", "estimate"}  # the interval moved; the verdict did not
    assert not any(f.kind == "verdict" for f in narrower.changed)
    assert narrower.key_numbers[:2] == (KeyNumber("verdict", "verdict", "holds", "holds"), KeyNumber("n", "exact", 30, 30))
    assert records["test_unsure"].key_numbers[0] == KeyNumber("verdict", "verdict", "holds", "inconclusive", ok=False)
    assert records["test_failing"].key_numbers[0] == KeyNumber("verdict", "verdict", "inconclusive", "fails", ok=False)

    result = run_suite(pytester, "--snapshot-baseline", OLD, model=NEW, values=current)
    result.stdout.fnmatch_lines([
        "*flipped   test_family.py::test_failing   verdict inconclusive → fails* · n 30 → 30 · *",
        "*flipped   test_family.py::test_unsure    verdict holds → inconclusive* · n 30 → 30 · *",
        "*weakened  test_family.py::test_narrower  verdict holds → holds · n 30 → 30 · *",
        "*held      test_family.py::test_steady    verdict holds → holds · *",
        "4 snapshots: 1 held, 1 weakened, 2 flipped, 0 new, 0 missing",
    ])
