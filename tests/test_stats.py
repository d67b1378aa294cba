"""The statistics behind family verdicts: published values, exact coverage, error rates by simulation.

Every simulation runs on a fixed seed, so these tests give the same numbers on every run; their
bounds are the nominal rate plus three standard errors of the simulation.
"""

from __future__ import annotations

import doctest
import itertools
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats as sps

import pytest_annotate.stats
from pytest_annotate.stats import (
    Interval,
    _rate_bounds,
    bootstrap_interval,
    control_test,
    holm,
    items_to_settle,
    judge,
    paired_test,
    rate_interval,
)

DETERMINISTIC = settings(database=None, derandomize=True, deadline=None)


def three_se(rate: float, n: int) -> float:
    return 3 * math.sqrt(rate * (1 - rate) / n)


# --------------------------------------------------------------------------- rate intervals: published values


@pytest.mark.parametrize(("k", "n", "low", "high"), [
    (0, 10, 0.0, 0.3085), (5, 10, 0.1871, 0.8129), (10, 10, 0.6915, 1.0),
    # Newcombe (1998), Statistics in Medicine 17:857, Table II, method 5 (exact):
    (81, 263, 0.2527, 0.3676), (15, 148, 0.0578, 0.1617), (0, 20, 0.0, 0.1684), (1, 29, 0.0009, 0.1776),
])  # fmt: skip
def test_clopper_pearson_matches_published_values(k: int, n: int, low: float, high: float) -> None:
    r = rate_interval(k, n)
    assert (round(r.low, 4), round(r.high, 4)) == (low, high)
    assert r.method == "Clopper-Pearson" and r.estimate == k / n


@pytest.mark.parametrize(("k", "n", "low", "high"), [
    (0, 10, 0.0, 0.2775), (5, 10, 0.2366, 0.7634), (10, 10, 0.7225, 1.0),
    # Newcombe (1998), Table II, method 3 (score, without continuity correction):
    (81, 263, 0.2553, 0.3662), (15, 148, 0.0624, 0.1605), (0, 20, 0.0, 0.1611), (1, 29, 0.0061, 0.1718),
])  # fmt: skip
def test_wilson_matches_published_values(k: int, n: int, low: float, high: float) -> None:
    r = rate_interval(k, n, method="wilson")
    assert (round(r.low, 4), round(r.high, 4)) == (low, high)


@pytest.mark.parametrize("method", ["exact", "wilson"])
def test_rate_intervals_agree_with_scipys_binomtest(method: str) -> None:
    ours = "clopper-pearson" if method == "exact" else "wilson"
    for n in (1, 2, 7, 30, 101):
        for k in range(n + 1):
            for confidence in (0.8, 0.95, 0.99):
                ci = sps.binomtest(k, n).proportion_ci(confidence_level=confidence, method=method)
                r = rate_interval(k, n, confidence=confidence, method=ours)
                assert r.low == pytest.approx(ci.low, abs=1e-12) and r.high == pytest.approx(ci.high, abs=1e-12)


def test_rate_prints_as_one_line() -> None:
    r = rate_interval(27, 30, label="top-1", items="held-out items")
    assert str(r) == "top-1 on 27/30 held-out items = 90.0% [73.5%, 97.9%] (Clopper-Pearson 95%)"
    assert str(rate_interval(27, 30)) == "27/30 items = 90.0% [73.5%, 97.9%] (Clopper-Pearson 95%)"
    assert str(rate_interval(3, 4, confidence=0.999, method="wilson")).endswith("(Wilson 99.9%)")
    assert str(r.labelled("top-5")).startswith("top-5 on 27/30 held-out items")
    assert 0.8 in r and 0.99 not in r


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"k": 0, "n": 0}, "at least one item"),
    ({"k": 11, "n": 10}, "0 <= k <= n"),
    ({"k": -1, "n": 10}, "0 <= k <= n"),
    ({"k": 1, "n": 10, "confidence": 95}, "strictly between 0 and 1"),
    ({"k": 1, "n": 10, "method": "wilsn"}, "Did you mean 'wilson'"),
])  # fmt: skip
def test_rate_interval_rejects_bad_input(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        rate_interval(**kwargs)


@pytest.mark.parametrize("k", [2.0, True, "2"])
def test_rate_interval_wants_whole_numbers(k: object) -> None:
    with pytest.raises(TypeError, match="whole number"):
        rate_interval(k, 10)  # type: ignore[arg-type]


def test_rate_interval_takes_numpy_integers() -> None:
    assert rate_interval(np.int64(3), np.int64(4)) == rate_interval(3, 4)


# --------------------------------------------------------------------------- rate intervals: coverage


def exact_coverage(n: int, p: float, method: str, confidence: float = 0.95) -> float:
    """P(the interval covers p) when k ~ Binomial(n, p), summed exactly over k."""
    pmf = sps.binom.pmf(np.arange(n + 1), n, p)
    covered = [rate_interval(k, n, confidence=confidence, method=method) for k in range(n + 1)]
    return float(sum(w for w, r in zip(pmf, covered, strict=True) if r.low <= p <= r.high))


@DETERMINISTIC
@given(n=st.integers(1, 120), p=st.floats(0.0005, 0.9995), confidence=st.sampled_from([0.8, 0.9, 0.95, 0.99]))
def test_clopper_pearson_covers_every_rate_at_least_at_its_level(n: int, p: float, confidence: float) -> None:
    assert exact_coverage(n, p, "clopper-pearson", confidence) >= confidence - 1e-9


@pytest.mark.parametrize(("n", "p"), [(10, 0.5), (30, 0.9), (30, 0.97), (100, 0.2), (12, 0.05)])
def test_clopper_pearson_covers_in_simulation(n: int, p: float) -> None:
    rng = np.random.default_rng(20240514)
    draws = 4000
    ks = rng.binomial(n, p, size=draws)
    intervals = {k: rate_interval(int(k), n) for k in np.unique(ks)}
    coverage = np.mean([intervals[k].low <= p <= intervals[k].high for k in ks])
    assert coverage >= 0.95 - three_se(0.95, draws)


def test_wilson_covers_at_its_level_on_average_over_rates() -> None:
    # Wilson is not exact: its coverage dips below 95% for some p (Brown, Cai & DasGupta 2001), but
    # its mean over p is close to nominal, and it is never wider than Clopper-Pearson.
    for n in (20, 50):
        grid = np.linspace(0.02, 0.98, 97)
        coverage = [exact_coverage(n, float(p), "wilson") for p in grid]
        assert 0.935 <= np.mean(coverage) <= 0.965
        assert min(coverage) < 0.95  # the documented caveat is real
    for k in range(31):
        assert rate_interval(k, 30, method="wilson").width <= rate_interval(k, 30).width + 1e-12


# --------------------------------------------------------------------------- bootstrap intervals


DIFFS = [2.1, 1.4, 3.0, 0.2, 2.6, 1.9, 2.2, 1.1, 2.8, 1.7]


def test_bootstrap_is_deterministic_with_a_seed_and_varies_with_it() -> None:
    a, b = bootstrap_interval(DIFFS, seed=3), bootstrap_interval(DIFFS, seed=3)
    assert (a.low, a.high) == (b.low, b.high)
    c = bootstrap_interval(DIFFS, seed=4)
    assert (a.low, a.high) != (c.low, c.high)
    assert abs(a.low - c.low) < 0.1 and abs(a.high - c.high) < 0.1


@pytest.mark.parametrize("method", ["BCa", "percentile", "basic"])
def test_bootstrap_interval_brackets_the_estimate(method: str) -> None:
    r = bootstrap_interval(DIFFS, method=method, label="logit difference", items="held-out items")
    assert r.low < r.estimate < r.high and r.estimate == pytest.approx(np.mean(DIFFS))
    assert r.method == f"bootstrap {method}" and r.n == 10 and not r.is_rate
    assert str(r).startswith("logit difference over 10 held-out items = 1.9 [")


def test_bootstrap_agrees_with_the_t_interval_for_a_large_normal_sample() -> None:
    x = np.random.default_rng(1).normal(2.0, 1.0, size=400)
    r = bootstrap_interval(x)
    t = sps.t.interval(0.95, len(x) - 1, loc=x.mean(), scale=sps.sem(x))
    assert r.low == pytest.approx(t[0], abs=0.02) and r.high == pytest.approx(t[1], abs=0.02)


def test_bootstrap_takes_statistics_without_an_axis_argument() -> None:
    r = bootstrap_interval(DIFFS, lambda v: float(np.percentile(v, 75)), n_resamples=500, label="q75")
    assert r.low <= r.estimate <= r.high and str(r).startswith("q75 over 10 items")
    assert bootstrap_interval(DIFFS, np.median).label == "median"


def test_bootstrap_of_equal_values_is_that_point_and_a_degenerate_bca_falls_back() -> None:
    r = bootstrap_interval([1.5] * 6)
    assert (r.low, r.high, r.note) == (1.5, 1.5, "all values equal")
    assert str(r) == "mean over 6 items = 1.5 [1.5, 1.5] (bootstrap 95%; all values equal)"
    m = bootstrap_interval([1, 1, 1, 2, 1, 1, 1, 1], np.median)
    assert (m.method, m.note) == ("bootstrap percentile", "BCa was degenerate")
    assert math.isfinite(m.low) and math.isfinite(m.high)


def test_bootstrap_covers_the_mean_in_simulation() -> None:
    rng = np.random.default_rng(7)
    reps, hits = 300, 0
    for _ in range(reps):
        x = rng.exponential(1.0, size=30)  # skewed: BCa's case
        r = bootstrap_interval(x, n_resamples=999, seed=int(rng.integers(2**31)))
        hits += r.low <= 1.0 <= r.high
    # Bootstrap intervals under-cover a little at n = 30 on skewed data (~0.93 here).
    assert 0.95 - 0.04 - three_se(0.95, reps) <= hits / reps <= 1.0


@pytest.mark.parametrize(("values", "message"), [
    ([1.0], "at least 2"), ([1.0, float("nan")], r"values\[1\] is nan"), ([[1.0, 2.0]], "one number per item"),
    (["a", "b"], "give numbers"),
])  # fmt: skip
def test_bootstrap_rejects_bad_values(values: list, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        bootstrap_interval(values)


def test_bootstrap_rejects_bad_options() -> None:
    with pytest.raises(ValueError, match="Did you mean 'percentile'"):
        bootstrap_interval(DIFFS, method="percentil")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="at least 100"):
        bootstrap_interval(DIFFS, n_resamples=10)


# --------------------------------------------------------------------------- paired sign-flip test


def test_paired_test_exact_p_values() -> None:
    claim = np.array([2.0, 1.5, 3.1, 0.7, 2.2, 1.8])
    control = np.zeros(6)
    t = paired_test(claim, control)
    assert t.exact and t.n_resamples == 64 and t.p_value == 1 / 64
    assert paired_test(claim, control, alternative="less").p_value == 1.0
    assert paired_test(claim, control, alternative="two-sided").p_value == 2 / 64
    # One negative difference: the sign vectors at least as extreme are the identity and flipping
    # the smallest positive difference (0.7 > 0.5)... counted by brute force:
    d = claim - np.array([0, 0, 0, 0, 0, 2.5])
    brute = np.mean([np.dot(s, d) >= d.sum() - 1e-12 for s in itertools.product([1, -1], repeat=6)])
    assert paired_test(d, np.zeros(6)).p_value == brute


def test_paired_test_agrees_with_scipys_permutation_test() -> None:
    rng = np.random.default_rng(5)
    x, y = rng.normal(0.4, 1, 12), rng.normal(0, 1, 12)
    for alternative in ("greater", "less", "two-sided"):
        ref = sps.permutation_test(
            (x, y), lambda a, b, axis: np.mean(a - b, axis=axis), permutation_type="samples",
            alternative=alternative, n_resamples=np.inf,
        )  # fmt: skip
        assert paired_test(x, y, alternative=alternative).p_value == pytest.approx(ref.pvalue, abs=1e-12)


def test_paired_test_monte_carlo_is_seeded_and_never_zero() -> None:
    rng = np.random.default_rng(0)
    x, y = rng.normal(3, 1, 40), rng.normal(0, 1, 40)
    a, b = paired_test(x, y, n_resamples=999), paired_test(x, y, n_resamples=999)
    assert not a.exact and a.n_resamples == 999 and a == b
    assert a.p_value == 1 / 1000  # the floor (b + 1) / (m + 1): no random flip comes close
    x2 = x - 2.8
    assert paired_test(x2, y, seed=1).p_value != paired_test(x2, y, seed=2).p_value


def test_paired_test_reports_its_counts_and_prints() -> None:
    t = paired_test([1.0, 2.0, 0.0, -1.0], [0.0, 0.0, 0.0, 0.0])
    assert (t.n_higher, t.n_lower, t.statistic, t.mean_claim, t.mean_control) == (2, 1, 0.5, 0.5, 0.0)
    assert "claim higher on 2, lower on 1" in str(t) and "exact over all 16 relabellings" in str(t)
    assert t.significant(alpha=0.5) is (t.p_value <= 0.5)


def test_paired_test_rejects_mismatched_and_bad_input() -> None:
    with pytest.raises(ValueError, match="3 items and control_values 2"):
        paired_test([1, 2, 3], [1, 2])
    with pytest.raises(ValueError, match=r"control_values\[1\] is inf"):
        paired_test([1, 2], [1, float("inf")])
    with pytest.raises(ValueError, match="Did you mean 'greater'"):
        paired_test([1, 2], [0, 0], alternative="greter")  # type: ignore[arg-type]


@DETERMINISTIC
@given(d=st.lists(st.floats(-5, 5, allow_nan=False).map(lambda v: round(v, 3)), min_size=1, max_size=20))
def test_paired_test_p_values_are_consistent(d: list[float]) -> None:
    zero = np.zeros(len(d))
    g = paired_test(d, zero, n_resamples=999)
    le = paired_test(d, zero, alternative="less", n_resamples=999)
    assert 0 < g.p_value <= 1 and 0 < le.p_value <= 1
    assert g.p_value + le.p_value >= 1 - 1e-9  # the observed statistic counts on both sides
    # Swapping claim and control swaps the alternatives.
    assert paired_test(zero, d, alternative="less", n_resamples=999).p_value == pytest.approx(g.p_value)


@pytest.mark.parametrize(("n", "n_resamples", "reps"), [(10, 9999, 2000), (30, 499, 800)])
def test_paired_test_false_positive_rate_under_the_null_is_at_most_alpha(n: int, n_resamples: int, reps: int) -> None:
    rng = np.random.default_rng(11)
    alpha = 0.05
    rejections = 0
    for i in range(reps):
        base = rng.normal(size=n)  # item difficulty, shared by claim and control
        claim, control = base + rng.standard_t(3, size=n), base + rng.standard_t(3, size=n)
        rejections += paired_test(claim, control, n_resamples=n_resamples, seed=i).p_value <= alpha
    assert rejections / reps <= alpha + three_se(alpha, reps)


def test_paired_test_has_power_against_a_real_effect() -> None:
    rng = np.random.default_rng(12)
    powers = [paired_test(rng.normal(1, 1, 20), rng.normal(0, 1, 20), seed=i).p_value <= 0.05 for i in range(100)]
    assert np.mean(powers) >= 0.9


# --------------------------------------------------------------------------- several control draws per item


def brute_force_relabelling_p(claim: np.ndarray, controls: np.ndarray) -> float:
    values = np.concatenate([claim[:, None], controls], axis=1)
    k = controls.shape[1]

    def stat(labels: tuple[int, ...]) -> float:
        picked = values[np.arange(len(claim)), labels]
        rest = (values.sum(axis=1) - picked) / k
        return float(np.mean(picked - rest))

    observed = stat((0,) * len(claim))
    null = [stat(labels) for labels in itertools.product(range(k + 1), repeat=len(claim))]
    return float(np.mean(np.array(null) >= observed - 1e-12))


def test_control_test_matches_brute_force_relabelling() -> None:
    rng = np.random.default_rng(3)
    claim, controls = rng.normal(0.5, 1, 4), rng.normal(0, 1, (4, 3))
    t = control_test(claim, controls)
    assert t.exact and t.n_resamples == 4**4 and t.n_controls == 3
    assert t.p_value == pytest.approx(brute_force_relabelling_p(claim, controls))
    assert t.statistic == pytest.approx(np.mean(claim - controls.mean(axis=1)))


def test_control_test_with_one_draw_is_the_paired_test() -> None:
    claim, control = [1.0, 2.0, 0.5, 3.0], [0.0, 0.5, 1.0, 0.1]
    assert control_test(claim, [[c] for c in control]) == paired_test(claim, control)


def test_control_test_smallest_p_and_report() -> None:
    claim = [3.0, 2.5, 2.8, 3.3]
    controls = [[0.1, 0.9, 0.3], [0.2, 0.4, 1.0], [0.0, 0.6, 0.5], [0.8, 0.2, 0.3]]
    t = control_test(claim, controls)
    assert t.p_value == 1 / 256 and (t.n_higher, t.n_lower) == (4, 0)
    assert "(mean of 3 draws per item)" in str(t) and "above every draw on 4" in str(t)
    assert "relabelling permutation test" in str(t)


def test_control_test_monte_carlo_is_seeded() -> None:
    rng = np.random.default_rng(4)
    claim, controls = rng.normal(0.3, 1, 30), rng.normal(0, 1, (30, 5))
    a = control_test(claim, controls, n_resamples=999, seed=1)
    assert not a.exact and a == control_test(claim, controls, n_resamples=999, seed=1)
    assert a.p_value >= 1 / 1000


def test_control_test_rejects_bad_shapes() -> None:
    with pytest.raises(ValueError, match="one row per item"):
        control_test([1, 2], [1, 2])
    with pytest.raises(ValueError, match="2 items and control_values 3 rows"):
        control_test([1, 2], [[1], [2], [3]])
    with pytest.raises(ValueError, match="at least one control draw"):
        control_test([1, 2], np.zeros((2, 0)))


@pytest.mark.parametrize(("n", "k", "n_resamples", "reps"), [(5, 4, 9999, 1500), (25, 5, 499, 800)])
def test_control_test_false_positive_rate_under_exchangeability(n: int, k: int, n_resamples: int, reps: int) -> None:
    # Skewed values (exponential), exchangeable within each item: the null the test assumes.
    rng = np.random.default_rng(13)
    alpha = 0.05
    rejections = 0
    for i in range(reps):
        scale = rng.uniform(0.5, 3, size=(n, 1))  # items differ, draws within an item do not
        values = rng.exponential(1.0, size=(n, k + 1)) * scale
        rejections += control_test(values[:, 0], values[:, 1:], n_resamples=n_resamples, seed=i).p_value <= alpha
    assert rejections / reps <= alpha + three_se(alpha, reps)


@pytest.mark.parametrize("alternative", ["greater", "less", "two-sided"])
def test_relabelling_is_calibrated_where_a_sign_flip_on_the_mean_of_draws_is_not(alternative: str) -> None:
    # One exponential claim value against the mean of 5 exponential draws: exchangeable, but the
    # difference is skewed, so sign flips are not its null distribution.
    rng = np.random.default_rng(13)
    alpha, reps, n = 0.05, 1500, 8
    relabel = sign_flip = 0
    for i in range(reps):
        v = rng.exponential(1.0, size=(n, 6))
        relabel += control_test(v[:, 0], v[:, 1:], alternative=alternative, n_resamples=999, seed=i).p_value <= alpha
        sign_flip += paired_test(v[:, 0], v[:, 1:].mean(axis=1), alternative=alternative, seed=i).p_value <= alpha
    assert relabel / reps <= alpha + three_se(alpha, reps)
    if alternative != "greater":
        assert sign_flip / reps > alpha + three_se(alpha, reps)


# --------------------------------------------------------------------------- Holm-Bonferroni


def test_holm_hand_computed_example() -> None:
    h = holm([0.01, 0.04, 0.03, 0.005], alpha=0.05)
    assert h.adjusted == pytest.approx((0.03, 0.06, 0.06, 0.02))
    assert h.rejected == (True, False, False, True)
    assert h.names == ("#0", "#1", "#2", "#3")
    named = holm({"MLP9": 0.01, "attn9": 0.5})
    assert named["MLP9"] == 0.02 and named["attn9"] == 0.5
    assert "MLP9   p = 0.01     adjusted 0.02     rejected" in str(named)


def test_holm_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="at least one"):
        holm([])
    with pytest.raises(ValueError, match="between 0 and 1"):
        holm([0.5, 1.2])
    with pytest.raises(ValueError, match="alpha"):
        holm([0.5], alpha=5)


@DETERMINISTIC
@given(p=st.lists(st.floats(0, 1), min_size=1, max_size=30), alpha=st.sampled_from([0.01, 0.05, 0.1]))
def test_holm_properties(p: list[float], alpha: float) -> None:
    h = holm(p, alpha)
    adj, raw = np.array(h.adjusted), np.array(p)
    assert np.all(adj >= raw - 1e-15) and np.all(adj <= 1)
    order = np.argsort(raw, kind="stable")
    assert np.all(np.diff(adj[order]) >= 0)  # monotone in the raw p-values
    bonferroni = raw * len(p) <= alpha
    assert np.all(np.array(h.rejected) >= bonferroni)  # rejects at least what Bonferroni rejects
    assert np.all(adj <= np.minimum(1, raw * len(p)) + 1e-15)


@pytest.mark.parametrize("dependence", ["independent", "equal", "mixed"])
def test_holm_controls_the_family_wise_error_rate(dependence: str) -> None:
    rng = np.random.default_rng(17)
    alpha, reps, m_true, m_false = 0.05, 4000, 8, 4
    errors = 0
    for _ in range(reps):
        if dependence == "independent":
            null_p = rng.uniform(size=m_true)
        elif dependence == "equal":
            null_p = np.full(m_true, rng.uniform())
        else:
            z = rng.normal() + rng.normal(size=m_true)  # positively correlated z-scores
            null_p = sps.norm.sf(z / math.sqrt(2))
        false_p = rng.uniform(0, 1e-4, size=m_false)  # real effects
        h = holm(np.concatenate([null_p, false_p]), alpha)
        errors += any(h.rejected[:m_true])
    assert errors / reps <= alpha + three_se(alpha, reps)


# --------------------------------------------------------------------------- verdicts


@pytest.mark.parametrize(("k", "n", "threshold", "direction", "verdict"), [
    (27, 30, 0.7, ">=", "holds"), (27, 30, 0.8, ">=", "inconclusive"), (27, 30, 0.99, ">=", "fails"),
    (1, 30, 0.3, "<=", "holds"), (1, 30, 0.1, "<=", "inconclusive"), (20, 30, 0.3, "<=", "fails"),
    (30, 30, 1.0, ">=", "inconclusive"), (0, 30, 0.0, "<=", "inconclusive"), (0, 5, 0.0, ">=", "holds"),
])  # fmt: skip
def test_judge_rate_claims(k: int, n: int, threshold: float, direction: str, verdict: str) -> None:
    j = judge(rate_interval(k, n), threshold, direction)  # type: ignore[arg-type]
    assert j.verdict == verdict and j.holds is (verdict == "holds")
    assert (j.more_items == 0) is (verdict != "inconclusive")


def test_judge_uses_the_whole_interval_at_its_edges() -> None:
    r = Interval(0.7, 0.9, "Wilson", 0.95, 0.8, n=50, k=40)
    assert judge(r, 0.7).verdict == "holds"  # low == threshold: the whole interval is >= it
    assert judge(r, 0.9, "<=").verdict == "holds"
    assert judge(r, 0.8999999).verdict == "inconclusive" and judge(r, 0.9000001).verdict == "fails"
    assert judge(r, 0.95).verdict == "fails" and judge(r, 0.65, "<=").verdict == "fails"


def test_an_interval_must_be_ordered() -> None:
    with pytest.raises(ValueError, match="low=0.9 > high=0.7"):
        Interval(0.9, 0.7, "Wilson", 0.95, 0.8)
    with pytest.raises(ValueError, match="confidence=1.5"):
        Interval(0.1, 0.7, "Wilson", 1.5, 0.4)


def test_judge_messages() -> None:
    r = rate_interval(27, 30, label="top-1", items="held-out items")
    assert str(judge(r, 0.7)).endswith("; the whole interval is >= 70.0%")
    assert str(judge(r, 0.99)).startswith("fails: top-1 on 27/30") and str(judge(r, 0.99)).endswith("below 99.0%")
    assert str(judge(r, 0.95, "<=")).startswith("inconclusive")
    assert str(judge(r, 0.5, "<=")).endswith("the whole interval is above 50.0%")
    msg = str(judge(r, 0.8))
    assert "the interval straddles 80.0%; about 35 more items at the observed rate would settle it" in msg
    assert "would not settle it (the estimate is at the threshold)" in str(judge(rate_interval(8, 10), 0.8))


def test_judge_rejects_bad_thresholds() -> None:
    with pytest.raises(ValueError, match="between 0 and 1"):
        judge(rate_interval(3, 4), 80)
    with pytest.raises(ValueError, match="finite"):
        judge(rate_interval(3, 4), float("nan"))
    with pytest.raises(ValueError, match="direction='=>' is not one of: '>=', '<='"):
        judge(rate_interval(3, 4), 0.5, "=>")  # type: ignore[arg-type]


@DETERMINISTIC
@given(
    n=st.integers(5, 200), data=st.data(), threshold=st.floats(0.05, 0.95),
    direction=st.sampled_from([">=", "<="]), method=st.sampled_from(["clopper-pearson", "wilson"]),
)  # fmt: skip
def test_items_to_settle_is_the_smallest_number_that_settles(n, data, threshold, direction, method) -> None:
    k = data.draw(st.integers(0, n))
    m = items_to_settle(k, n, threshold, direction, method=method)
    rate = k / n

    def settled(total: int) -> bool:
        low, high = _rate_bounds(rate * total, total, 0.95, method)
        return judge(Interval(low, high, "x", 0.95, rate), threshold, direction).verdict != "inconclusive"

    if m is None:
        assert rate == threshold or not settled(n + 10**6)
    else:
        assert settled(n + m) and (m == 0 or not settled(n + m - 1))


def test_items_to_settle_at_the_observed_rate_in_whole_items() -> None:
    m = items_to_settle(27, 30, 0.8)
    assert m == 35
    total = 30 + m
    assert judge(rate_interval(math.ceil(0.9 * total), total), 0.8).verdict == "holds"  # 59/65
    assert judge(rate_interval(round(0.9 * 60), 60), 0.8).verdict == "inconclusive"
    assert items_to_settle(5, 10, 0.5) is None and items_to_settle(3, 10, 0.5, max_items=5) is None


def test_judge_effect_claims_with_a_bootstrap_interval() -> None:
    r = bootstrap_interval(DIFFS, label="logit difference")
    assert judge(r, 1.0).verdict == "holds" and judge(r, 3.0).verdict == "fails"
    j = judge(r, 1.6)
    assert j.verdict == "inconclusive" and j.more_items is not None and j.more_items > 0
    assert "at the observed value and spread would settle it" in str(j)
    assert "the interval straddles 1.6;" in str(j)


def test_docstring_examples_run() -> None:
    failures, _ = doctest.testmod(pytest_annotate.stats, optionflags=doctest.ELLIPSIS)
    assert failures == 0
