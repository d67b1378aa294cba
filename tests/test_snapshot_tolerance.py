"""Tolerance bands: kinds, edges just inside and just outside, dtype widening, overrides."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import pytest

from pytest_annotate.snapshot import Band, Tolerance, ToleranceError, compare, flatten
from pytest_annotate.plugin.testing import make_suite, run_suite
from pytest_annotate.snapshot.tolerance import DEFAULT_BANDS, DTYPE_FACTORS, kind_for, kind_for_name

pytest_plugins = ["pytester"]


@pytest.mark.parametrize(
    ("name", "value", "kind"),
    [
        ("rank", 0, "exact"),
        ("answer_rank", 3, "exact"),
        ("token_ids", 7, "exact"),
        ("prob", 0.5, "prob"),
        ("target_prob", 0.5, "prob"),
        ("p_correct", 0.5, "prob"),
        ("accuracy", 0.5, "prob"),
        ("logit", 1.0, "logit"),
        ("answer_logit", 1.0, "logit"),
        ("logit_diff", 1.0, "logit"),
        ("loss", 1.0, "logit"),
        ("log_prob", -1.0, "logit"),
        ("passed", True, "verdict"),
        ("verdict", "pass", "verdict"),
        ("score", 0.5, "float"),
        ("count", 3, "exact"),
        ("prompt", "x", "exact"),
        ("flag", True, "exact"),
    ],
)
def test_kinds_follow_names_and_types(name: str, value: object, kind: str) -> None:
    assert kind_for(name, value) == kind


def test_metadata_kind_wins_over_the_name() -> None:
    @dataclass(frozen=True)
    class R:
        score: float = field(metadata={"kind": "prob"})
        rank: float = field(metadata={"kind": "float"})

    leaves = {leaf.path_str: leaf.kind for leaf in flatten(R(0.5, 1.0))}
    assert leaves == {"score": "prob", "rank": "float"}


def test_unknown_metadata_kind_is_an_error_naming_the_field() -> None:
    @dataclass(frozen=True)
    class R:
        score: float = field(metadata={"kind": "probability"})

    with pytest.raises(ValueError, match=r"score.*unknown tolerance kind .probability."):
        flatten(R(0.5))


def _edge(band: Band, old: float, inside: bool) -> float:
    """A value just inside (0.99 of the band) or just outside (1.01) of ``old``."""
    width = band.allowed(old, old)
    return old + width * (0.99 if inside else 1.01)


@pytest.mark.parametrize(
    ("field_name", "old"),
    [("prob", 0.70), ("logit", 18.5), ("logit", 0.2), ("score", 3.25), ("score", 1e-7)],
)
@pytest.mark.parametrize("inside", [True, False])
def test_each_kind_just_inside_and_just_outside_its_band(field_name: str, old: float, inside: bool) -> None:
    kind = kind_for(field_name, old)
    new = _edge(DEFAULT_BANDS[kind], old, inside)
    result = compare(flatten({field_name: old}), flatten({field_name: new}))
    assert result.ok is inside, result.fields


@pytest.mark.parametrize(("old", "new", "ok"), [(0, 0, True), (0, 1, False), (True, False, False), ("a", "b", False)])
def test_exact_kinds_have_no_band(old: object, new: object, ok: bool) -> None:
    assert compare(flatten({"rank": old}), flatten({"rank": new})).ok is ok


def test_bands_are_symmetric() -> None:
    band = DEFAULT_BANDS["logit"]
    for a, b in [(10.0, 10.0101), (0.001, 0.0021), (-5.0, -5.006)]:
        assert band.allows(a, b) == band.allows(b, a)


def test_nan_equals_only_nan_and_inf_only_itself() -> None:
    nan, inf = math.nan, math.inf
    assert compare(flatten({"logit": nan}), flatten({"logit": nan})).ok
    assert not compare(flatten({"logit": nan}), flatten({"logit": 1.0})).ok
    assert compare(flatten({"logit": -inf}), flatten({"logit": -inf})).ok
    assert not compare(flatten({"logit": inf}), flatten({"logit": 1e308})).ok


@pytest.mark.parametrize(("dtype", "factor"), [("float32", 1), ("bfloat16", 50), ("float16", 10)])
def test_dtype_widens_every_non_exact_band(dtype: str, factor: float) -> None:
    assert DTYPE_FACTORS[dtype] == factor
    tol = Tolerance.default().for_dtype(dtype)
    for kind in ("prob", "logit", "float"):
        assert tol.band("x", kind) == DEFAULT_BANDS[kind].scaled(factor)
    assert tol.band("rank", "exact").is_exact


@pytest.mark.parametrize("dtype", ["bfloat16", "float16"])
def test_a_change_beyond_float32_bands_passes_in_low_precision(dtype: str) -> None:
    old, new = flatten({"prob": 0.70}), flatten({"prob": 0.70 + 0.002 * 5})
    assert not compare(old, new).ok
    assert compare(old, new, Tolerance.default().for_dtype(dtype)).ok
    assert not compare(old, flatten({"prob": 0.70 + 0.002 * DTYPE_FACTORS[dtype] * 1.01}),
                       Tolerance.default().for_dtype(dtype)).ok  # fmt: skip


def test_widening_takes_the_lower_precision_of_run_and_snapshot() -> None:
    from pytest_annotate.snapshot import SnapshotHeader, dumps, loads

    old = loads(dumps(SnapshotHeader("m", dtype="bfloat16"), flatten({"prob": 0.70})), "old.snap")
    new = loads(dumps(SnapshotHeader("m", dtype="float32"), flatten({"prob": 0.75})), "new.snap")
    result = compare(old, new)
    assert result.ok and result.factor == 50


def test_overrides_by_kind_by_field_name_and_by_path_glob() -> None:
    tol = Tolerance.default().with_overrides(
        {"prob": 0.01, "top_tokens.*.prob": 0.02, "logit_diff": {"abs": 0.5}, "rank": 1}
    )
    assert tol.band("prob", "prob") == Band(abs=0.01)
    assert tol.band("top_tokens.3.prob", "prob") == Band(abs=0.02)
    assert tol.band("nested.top_tokens.3.prob", "prob") == Band(abs=0.01)  # dotted patterns anchor at the root
    assert tol.band("a.b.logit_diff", "logit") == Band(abs=0.5, rel=1e-3)  # dot-less: the field anywhere
    assert tol.band("rank", "exact") == Band(abs=1)
    assert Tolerance.default().with_overrides({"**.prob": 0.3}).band("a.b.prob", "prob") == Band(abs=0.3)


def test_exact_overrides_are_not_widened_for_low_precision() -> None:
    tol = Tolerance.default().with_overrides(rank=1).for_dtype("bfloat16")
    assert tol.band("rank", "exact") == Band(abs=1)


def test_later_overrides_win() -> None:
    tol = Tolerance.default().with_overrides({"logit": 0.1}).with_overrides({"logit": 0.2})
    assert tol.band("logit", "logit").rel == 0.2


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"prob": -1}, "must be >= 0"),
        ({"prob": "wide"}, "must be a number"),
        ({"prob": {"absolute": 1}}, "unknown keys"),
        ({"prob": True}, "not a bool"),
    ],
)
def test_malformed_overrides_are_rejected(spec: dict[str, object], message: str) -> None:
    with pytest.raises(ToleranceError, match=message):
        Tolerance.default().with_overrides(spec)  # type: ignore[arg-type]


def test_kind_for_name_is_case_insensitive() -> None:
    assert kind_for_name("Answer_Logit") == "logit"


TEST_OVERRIDES = """
def test_call_override(snapshot, values):
    assert snapshot(tolerance={"prob": 0.05}) == {"prob": values["prob"]}
    assert snapshot == {"prob": values["prob"]}

def test_with_tolerance(snapshot, values):
    loose = snapshot.with_tolerance({"top.*.prob": 0.05})
    assert loose == {"top": [{"prob": values["prob"]}], "prob": values["other"]}

def test_bad_override(snapshot, values):
    snapshot(tolerance={"prob": -1})
"""


def test_per_assertion_and_per_fixture_overrides_end_to_end(pytester: pytest.Pytester) -> None:
    make_suite(pytester, test_over=TEST_OVERRIDES)
    run_suite(pytester, "--snapshot-update", values={"prob": 0.5, "other": 0.5}).assert_outcomes(passed=2, failed=1)
    result = run_suite(pytester, values={"prob": 0.54, "other": 0.5})
    result.assert_outcomes(passed=1, failed=2)
    # the overridden assertion passed; the second assertion of the same test (default
    # band, the call option does not stick) is the one that failed
    result.stdout.fnmatch_lines(["*test_over/test_call_override.1.snap*"])
    assert "test_call_override.snap" not in result.stdout.str()
    result.stdout.fnmatch_lines(["*ToleranceError: tolerance for 'prob' must be >= 0*"])
    run_suite(pytester, values={"prob": 0.54, "other": 0.503}).assert_outcomes(passed=0, failed=3)


@pytest.mark.parametrize(("dtype", "outcome"), [("float32", "failed"), ("bfloat16", "passed")])
def test_dtype_of_the_session_widens_bands_end_to_end(pytester: pytest.Pytester, dtype: str, outcome: str) -> None:
    make_suite(pytester, test_w="def test_w(snapshot, values):\n    assert snapshot == {'logit': values['logit']}\n")
    run_suite(pytester, "--snapshot-update", values={"logit": 10.0}).assert_outcomes(passed=1)
    result = run_suite(pytester, dtype=dtype, values={"logit": 10.2})  # 2 %: beyond 0.1 %, within 5 %
    result.assert_outcomes(**{outcome: 1})
