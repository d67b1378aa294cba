"""Statistics for claims over families of prompts: intervals, paired tests against controls, verdicts.

A finding over a family is judged on its held-out items, with an interval, not on one prompt:

* :func:`rate_interval`: a rate (top-1 on 27 of 30 items) with an exact Clopper-Pearson or a Wilson
  interval;
* :func:`bootstrap_interval`: an effect (the mean logit difference over the items) with a seeded
  bootstrap interval;
* :func:`paired_test`: is the claim's value higher than a control's, item by item (an exact or
  seeded sign-flip permutation test); :func:`control_test` for several control draws per item
  (random components of the same size);
* :func:`holm`: Holm-Bonferroni adjusted p-values when a file states many claims;
* :func:`judge`: the verdict. A claim is a threshold with a direction; it **holds** when the whole
  interval clears the threshold, **fails** when the whole interval misses it, and is
  **inconclusive** otherwise, with :func:`items_to_settle` saying about how many more items would
  settle it.

Everything here is model-free (numpy and scipy), deterministic (seeded), and returns frozen values
that print as one readable line:

>>> r = rate_interval(27, 30, label="top-1", items="held-out items")
>>> print(r)
top-1 on 27/30 held-out items = 90.0% [73.5%, 97.9%] (Clopper-Pearson 95%)
>>> print(judge(r, 0.7))
holds: top-1 on 27/30 held-out items = 90.0% [73.5%, 97.9%] (Clopper-Pearson 95%); the whole interval is >= 70.0%
>>> print(judge(r, 0.8))  # doctest: +ELLIPSIS
inconclusive: ... straddles 80.0%; about 35 more items at the observed rate would settle it
"""

from __future__ import annotations

import inspect
import math
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, Literal, get_args

import numpy as np
from scipy import stats as _sps

from pytest_annotate.errors import close_matches

Verdict = Literal["holds", "fails", "inconclusive"]
"""A claim's verdict: the whole interval clears the threshold, misses it, or straddles it."""
VERDICTS: tuple[Verdict, ...] = get_args(Verdict)

Direction = Literal[">=", "<="]
"""Which side of the threshold the claim puts the rate or effect on."""
DIRECTIONS: tuple[Direction, ...] = get_args(Direction)

RateMethod = Literal["clopper-pearson", "wilson"]
RATE_METHODS: tuple[RateMethod, ...] = get_args(RateMethod)

BootstrapMethod = Literal["BCa", "percentile", "basic"]
BOOTSTRAP_METHODS: tuple[BootstrapMethod, ...] = get_args(BootstrapMethod)

Alternative = Literal["greater", "less", "two-sided"]
"""The alternative hypothesis of a test: the claim's values are greater than the control's, less, or either."""
ALTERNATIVES: tuple[Alternative, ...] = get_args(Alternative)

#: Largest number of distinct relabellings a permutation test enumerates exactly (2**16 sign flips:
#: every paired test on up to 16 items is exact). Beyond it, a seeded Monte Carlo sample is used.
MAX_EXACT = 2**16

_RATE_NAMES = {"clopper-pearson": "Clopper-Pearson", "wilson": "Wilson"}


# --------------------------------------------------------------------------- validation helpers


def _choice(value: str, valid: Sequence[str], what: str) -> str:
    if value not in valid:
        raise ValueError(
            f"{what}={value!r} is not one of: {', '.join(map(repr, valid))}.{close_matches(str(value), valid)}"
        )
    return value


def _confidence(confidence: float) -> float:
    if isinstance(confidence, bool) or not isinstance(confidence, (int, float)) or not 0 < confidence < 1:
        raise ValueError(f"confidence={confidence!r}: give a level strictly between 0 and 1, e.g. 0.95")
    return float(confidence)


def _count(value: Any, what: str) -> int:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{what}={value!r}: give a whole number of items")
    return int(value)


def _values(values: Any, what: str, *, ndim: int = 1, min_len: int = 1) -> np.ndarray:
    try:
        arr = np.asarray(values, dtype=float)
    except (TypeError, ValueError) as e:
        raise ValueError(f"{what}: give numbers, one per item ({e})") from None
    if arr.ndim != ndim:
        shape = "one number per item" if ndim == 1 else "one row per item, one column per control draw"
        raise ValueError(f"{what} has shape {arr.shape}: give {shape}")
    if arr.shape[0] < min_len:
        raise ValueError(f"{what} has {arr.shape[0]} item(s): give at least {min_len}")
    bad = np.argwhere(~np.isfinite(arr))
    if bad.size:
        where = tuple(int(i) for i in bad[0])
        idx = where[0] if ndim == 1 else where
        raise ValueError(f"{what}[{idx}] is {arr[where]}: every value must be a finite number")
    return arr


def _pct(x: float) -> str:
    return f"{100 * x:.1f}%"


def _num(x: float) -> str:
    return f"{x:.4g}"


def _level(confidence: float) -> str:
    return f"{100 * confidence:g}%"


def _p(p: float) -> str:
    return f"{p:.2g}" if p >= 1e-4 else f"{p:.1e}"


# --------------------------------------------------------------------------- intervals


@dataclass(frozen=True)
class Interval:
    """A point estimate with a two-sided confidence interval ``[low, high]``.

    For a rate, ``k`` of ``n`` items succeeded and ``estimate`` is ``k / n``; for an effect (a bootstrap
    interval), ``k`` is None and ``n`` is the number of items. ``label`` says what was measured
    ("top-1", "mean logit difference") and ``items`` what the ``n`` counts ("held-out items"); both are
    only for printing (see :meth:`labelled`).
    """

    low: float
    high: float
    method: str
    """How the interval was computed, as printed: "Clopper-Pearson", "Wilson", "bootstrap BCa"."""
    confidence: float
    estimate: float
    n: int | None = None
    k: int | None = None
    label: str = ""
    items: str = "items"
    note: str = ""
    """A caveat printed after the method: "all values equal", "BCa was degenerate"."""

    def __post_init__(self) -> None:
        if not self.low <= self.high:
            raise ValueError(f"Interval low={self.low!r} > high={self.high!r}: give low <= high")
        _confidence(self.confidence)

    @property
    def is_rate(self) -> bool:
        return self.k is not None

    @property
    def width(self) -> float:
        return self.high - self.low

    def __contains__(self, value: float) -> bool:
        return self.low <= value <= self.high

    def labelled(self, label: str, items: str | None = None) -> Interval:
        """The same interval, printed as ``label`` over ``items``: ``r.labelled("top-1", "held-out items")``."""
        return replace(self, label=label, items=self.items if items is None else items)

    def fmt(self, x: float) -> str:
        """A value on this interval's scale: a percentage for a rate, 4 significant figures otherwise."""
        return _pct(x) if self.is_rate else _num(x)

    def __str__(self) -> str:
        note = f"; {self.note}" if self.note else ""
        span = f"[{self.fmt(self.low)}, {self.fmt(self.high)}] ({self.method} {_level(self.confidence)}{note})"
        if self.is_rate:
            head = f"{self.label} on " if self.label else ""
            return f"{head}{self.k}/{self.n} {self.items} = {self.fmt(self.estimate)} {span}"
        over = f" over {self.n} {self.items}" if self.n is not None else ""
        return f"{self.label or 'estimate'}{over} = {self.fmt(self.estimate)} {span}"


def _rate_bounds(k: float, n: float, confidence: float, method: str) -> tuple[float, float]:
    """Two-sided bounds for ``k`` successes in ``n`` trials; ``k`` may be fractional (see :func:`items_to_settle`)."""
    alpha = 1 - confidence
    if method == "clopper-pearson":
        # The exact interval: the p at which observing k or more (k or fewer) has probability alpha/2,
        # written with the beta quantiles (Clopper & Pearson 1934); at k = 0 or k = n that side is 0 or 1.
        low = 0.0 if k <= 0 else float(_sps.beta.ppf(alpha / 2, k, n - k + 1))
        high = 1.0 if k >= n else float(_sps.beta.ppf(1 - alpha / 2, k + 1, n - k))
        return low, high
    # Wilson (1927) score interval.
    z = float(_sps.norm.ppf(1 - alpha / 2))
    centre = (k + z * z / 2) / (n + z * z)
    half = z / (n + z * z) * math.sqrt(max(k * (n - k) / n, 0.0) + z * z / 4)
    low = 0.0 if k <= 0 else max(0.0, centre - half)
    high = 1.0 if k >= n else min(1.0, centre + half)
    return low, high


def rate_interval(
    k: int,
    n: int,
    *,
    confidence: float = 0.95,
    method: RateMethod = "clopper-pearson",
    label: str = "",
    items: str = "items",
) -> Interval:
    """A two-sided confidence interval for a rate: ``k`` of ``n`` items succeeded.

    ``method="clopper-pearson"`` (the default) is exact: it covers the true rate with at least the
    stated confidence for every rate and every ``n``, at the price of being wider than needed;
    ``"wilson"`` is narrower and covers it on average, but can dip below the stated level for some
    rates. Both handle ``k = 0`` and ``k = n`` (the interval then touches 0 or 1).

    >>> print(rate_interval(0, 10))
    0/10 items = 0.0% [0.0%, 30.8%] (Clopper-Pearson 95%)
    >>> print(rate_interval(5, 10, method="wilson"))
    5/10 items = 50.0% [23.7%, 76.3%] (Wilson 95%)
    >>> r = rate_interval(10, 10)
    >>> round(r.low, 4), r.high
    (0.6915, 1.0)
    """
    k, n = _count(k, "k"), _count(n, "n")
    if n < 1:
        raise ValueError(f"n={n}: a rate needs at least one item")
    if not 0 <= k <= n:
        raise ValueError(f"k={k} successes out of n={n}: give 0 <= k <= n")
    confidence = _confidence(confidence)
    method = _choice(method, RATE_METHODS, "method")  # type: ignore[assignment]
    low, high = _rate_bounds(k, n, confidence, method)
    return Interval(low, high, _RATE_NAMES[method], confidence, k / n, n=n, k=k, label=label, items=items)


def bootstrap_interval(
    values: Sequence[float] | np.ndarray,
    statistic: Callable[..., Any] = np.mean,
    *,
    confidence: float = 0.95,
    n_resamples: int = 9999,
    seed: int = 0,
    method: BootstrapMethod = "BCa",
    label: str | None = None,
    items: str = "items",
) -> Interval:
    """A two-sided bootstrap confidence interval for ``statistic(values)``, the same for the same ``seed``.

    Uses :func:`scipy.stats.bootstrap`. ``method="BCa"`` (the default; bias-corrected and accelerated)
    is second-order accurate and adapts to skewed statistics; ``"percentile"`` and ``"basic"`` are the
    simpler textbook intervals. ``statistic`` is any function of a 1-D array; one that takes an
    ``axis`` argument (``np.mean``, ``np.median``) is evaluated on all resamples at once.

    When every value is the same, every resample gives the same statistic: the interval is that point
    (noted "all values equal"), never NaN. When BCa cannot be computed (its jackknife
    is degenerate, e.g. a median of heavily tied values), the percentile interval is used and the
    method says so.

    >>> diffs = [2.1, 1.4, 3.0, 0.2, 2.6, 1.9, 2.2, 1.1, 2.8, 1.7]
    >>> print(bootstrap_interval(diffs, label="logit difference", n_resamples=2000))
    logit difference over 10 items = 1.9 [1.349, 2.35] (bootstrap BCa 95%)
    >>> bootstrap_interval(diffs, seed=1) == bootstrap_interval(diffs, seed=1)
    True
    """
    arr = _values(values, "values", min_len=2)
    confidence = _confidence(confidence)
    method = _choice(method, BOOTSTRAP_METHODS, "method")  # type: ignore[assignment]
    n_resamples = _count(n_resamples, "n_resamples")
    if n_resamples < 100:
        raise ValueError(f"n_resamples={n_resamples}: give at least 100 (9999 is the default)")
    if label is None:
        label = getattr(statistic, "__name__", "statistic").lstrip("_")
    estimate = float(statistic(arr))
    base = {"confidence": confidence, "estimate": estimate, "n": len(arr), "label": label, "items": items}
    if np.all(arr == arr[0]):
        return Interval(estimate, estimate, "bootstrap", note="all values equal", **base)  # type: ignore[arg-type]

    def run(m: str) -> tuple[float, float]:
        # A degenerate BCa comes back as NaN with a DegenerateDataWarning; it is handled below.
        with np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            res = _sps.bootstrap(
                (arr,), statistic, n_resamples=n_resamples, confidence_level=confidence, method=m,
                **_rng_kwarg(_sps.bootstrap, seed),
            )  # fmt: skip
        return float(res.confidence_interval.low), float(res.confidence_interval.high)

    used, note = method, ""
    low, high = run(method)
    if method == "BCa" and not (math.isfinite(low) and math.isfinite(high)):
        used, note = "percentile", "BCa was degenerate"
        low, high = run(used)
    return Interval(low, high, f"bootstrap {used}", note=note, **base)  # type: ignore[arg-type]


def _rng_kwarg(fn: Callable[..., Any], seed: int) -> dict[str, Any]:
    """scipy >= 1.15 names its generator argument ``rng``; older versions ``random_state``."""
    name = "rng" if "rng" in inspect.signature(fn).parameters else "random_state"
    return {name: np.random.default_rng(seed)}


# --------------------------------------------------------------------------- paired tests against controls


@dataclass(frozen=True)
class PairedTest:
    """A paired test of the claim's values against a control's, item by item.

    ``statistic`` is the mean over items of ``claim - control``; ``p_value`` is the probability,
    if claim and control were exchangeable within each item, of a statistic at least as extreme
    in the direction of ``alternative``.
    """

    statistic: float
    p_value: float
    n: int
    alternative: Alternative
    exact: bool
    """True when every relabelling was enumerated; False for a seeded Monte Carlo sample of them."""
    n_resamples: int
    """How many relabellings the p-value counts (all of them when exact)."""
    seed: int
    mean_claim: float
    mean_control: float
    n_higher: int
    """Items on which the claim's value is above the control's (above every control draw, for several)."""
    n_lower: int
    """Items on which the claim's value is below the control's (below every control draw, for several)."""
    n_controls: int = 1
    """Control draws per item (1 for :func:`paired_test`)."""
    method: str = "sign-flip permutation test"

    def significant(self, alpha: float = 0.05) -> bool:
        return self.p_value <= alpha

    def __str__(self) -> str:
        per = "" if self.n_controls == 1 else f" (mean of {self.n_controls} draws per item)"
        side = {"greater": "one-sided, claim > control", "less": "one-sided, claim < control",
                "two-sided": "two-sided"}[self.alternative]  # fmt: skip
        how = (f"exact over all {self.n_resamples} relabellings" if self.exact
               else f"{self.n_resamples} random relabellings, seed {self.seed}")  # fmt: skip
        counts = (f"claim higher on {self.n_higher}, lower on {self.n_lower}" if self.n_controls == 1
                  else f"claim above every draw on {self.n_higher}, below every draw on {self.n_lower}")  # fmt: skip
        return (
            f"claim - control{per} = {self.statistic:+.4g} (mean over {self.n} items; claim {_num(self.mean_claim)},"
            f" control {_num(self.mean_control)}; {counts});"
            f" p = {_p(self.p_value)} ({side}; {self.method}, {how})"
        )


def _p_values(null: np.ndarray | None, observed: float, counts: tuple[int, int, int] | None, tol: float) -> tuple[float, float]:
    """(p_greater, p_less) from an enumerated null distribution, or from Monte Carlo counts (ge, le, m)."""
    if null is not None:
        return float(np.mean(null >= observed - tol)), float(np.mean(null <= observed + tol))
    assert counts is not None
    ge, le, m = counts
    # (b + 1) / (m + 1): the observed labelling counts as one of the draws, so the p-value is valid
    # (never below 1 / (m + 1)) for a finite Monte Carlo sample (Phipson & Smyth 2010).
    return (ge + 1) / (m + 1), (le + 1) / (m + 1)


def _combine(p_greater: float, p_less: float, alternative: str) -> float:
    if alternative == "greater":
        return p_greater
    if alternative == "less":
        return p_less
    return min(1.0, 2 * min(p_greater, p_less))


def paired_test(
    claim_values: Sequence[float] | np.ndarray,
    control_values: Sequence[float] | np.ndarray,
    *,
    alternative: Alternative = "greater",
    n_resamples: int = 9999,
    seed: int = 0,
) -> PairedTest:
    """Test whether the claim's values differ from a control's, item by item: an exact sign-flip permutation test.

    ``claim_values[i]`` and ``control_values[i]`` are measured on the same item (the model with the
    claimed circuit kept, and with a random circuit of the same size kept). Under the null hypothesis
    the two labels are exchangeable within each item, so each difference ``d_i = claim_i - control_i``
    is as likely to have come out as ``-d_i``. The statistic is the mean difference; its null
    distribution is that of ``mean(s_i * d_i)`` over all sign vectors ``s``. With at most 16 items all
    ``2**n`` sign vectors are enumerated (exact); beyond, ``n_resamples`` random ones drawn with ``seed``,
    and ``p = (b + 1) / (m + 1)`` (valid for a finite sample, never 0).

    Why this test: it tests the *mean* difference, the effect the bootstrap interval and the report
    state (Wilcoxon's signed-rank test tests a location shift of ranks, which can disagree in sign
    with the mean when the differences are skewed, and drops their magnitudes); it is exact at any
    ``n`` with no assumption of normality (unlike the paired t-test), which matters for families of
    10-30 held-out items; and it is deterministic.

    >>> t = paired_test([2.0, 1.5, 3.1, 0.7, 2.2, 1.8], [0.1, 0.3, -0.2, 0.4, 0.0, 0.2])
    >>> round(t.statistic, 3), t.p_value, t.exact  # all 6 differences positive: 1/2**6
    (1.75, 0.015625, True)
    >>> print(t)  # doctest: +NORMALIZE_WHITESPACE
    claim - control = +1.75 (mean over 6 items; claim 1.883, control 0.1333; claim higher on 6, lower on 0);
    p = 0.016 (one-sided, claim > control; sign-flip permutation test, exact over all 64 relabellings)
    """
    claim = _values(claim_values, "claim_values")
    control = _values(control_values, "control_values")
    if claim.shape != control.shape:
        raise ValueError(
            f"claim_values has {len(claim)} items and control_values {len(control)}: give one of each per item"
        )
    alternative = _choice(alternative, ALTERNATIVES, "alternative")  # type: ignore[assignment]
    n_resamples = _resamples(n_resamples)
    d = claim - control
    n = len(d)
    observed = float(d.mean())
    tol = 1e-9 * float(np.abs(d).mean() + 1e-300)
    if 2**n <= MAX_EXACT:
        codes = np.arange(2**n, dtype=np.int64)[:, None] >> np.arange(n, dtype=np.int64)
        signs = 1.0 - 2.0 * (codes & 1)
        null = signs @ d / n
        p_g, p_l = _p_values(null, observed, None, tol)
        exact, m = True, 2**n
    else:
        rng = np.random.default_rng(seed)
        p_g, p_l = _resampled_p_values(lambda size: (rng.integers(0, 2, size=(size, n)) * 2.0 - 1.0) @ d / n,
                                       n_resamples, n, observed, tol)
        exact, m = False, n_resamples
    return PairedTest(
        statistic=observed, p_value=_combine(p_g, p_l, alternative), n=n, alternative=alternative,
        exact=exact, n_resamples=m, seed=seed, mean_claim=float(claim.mean()), mean_control=float(control.mean()),
        n_higher=int(np.sum(d > 0)), n_lower=int(np.sum(d < 0)),
    )  # fmt: skip


def control_test(
    claim_values: Sequence[float] | np.ndarray,
    control_values: Sequence[Sequence[float]] | np.ndarray,
    *,
    alternative: Alternative = "greater",
    n_resamples: int = 9999,
    seed: int = 0,
) -> PairedTest:
    """Test the claim against several control draws per item: is the claim one of them, or stronger?

    ``control_values[i]`` holds ``k`` draws for item ``i`` (``k`` random components of the claimed
    size). The null hypothesis is that the claim's value is exchangeable with its item's control
    draws: the claimed component is like a random one. The statistic is the mean over items of
    ``claim_i - mean(controls_i)``; its null distribution comes from relabelling, in each item, which
    of the ``k + 1`` values is the claim: exactly, over all ``(k + 1) ** n`` relabellings when there
    are at most 2**16 of them, else over ``n_resamples`` random ones drawn with ``seed``
    (``p = (b + 1) / (m + 1)``). With ``k = 1`` this is :func:`paired_test`.

    This is the test that the random-component null actually licenses. Comparing the claim with the
    *mean* of the draws by a sign-flip test (``paired_test(claim, controls.mean(axis=1))``) assumes
    ``claim_i - mean(controls_i)`` is symmetric about 0, which exchangeability does not give when the
    values are skewed (a mean of k draws is less spread than one draw): with exponential values,
    8 items and 5 draws, that sign-flip test rejects a true null at alpha 0.05 in 11% of simulated
    families for ``alternative="less"`` (2% for "greater"), where this test rejects in 5-6% (see
    tests/test_stats.py). The smallest p-value is
    ``1 / (k + 1) ** n``: with one control draw and 4 items it cannot go below 1/16.

    >>> claim = [3.0, 2.5, 2.8, 3.3]
    >>> controls = [[0.1, 0.9, 0.3], [0.2, 0.4, 1.0], [0.0, 0.6, 0.5], [0.8, 0.2, 0.3]]
    >>> t = control_test(claim, controls)
    >>> t.p_value == 1 / 4**4, t.exact, t.n_controls
    (True, True, 3)
    """
    claim = _values(claim_values, "claim_values")
    controls = _values(control_values, "control_values", ndim=2)
    if controls.shape[0] != len(claim):
        raise ValueError(
            f"claim_values has {len(claim)} items and control_values {controls.shape[0]} rows: give one row of "
            "control draws per item"
        )
    k = controls.shape[1]
    if k < 1:
        raise ValueError("control_values has no columns: give at least one control draw per item")
    if k == 1:  # one draw per item: relabelling is flipping the sign of each difference
        return paired_test(claim, controls[:, 0], alternative=alternative, n_resamples=n_resamples, seed=seed)
    alternative = _choice(alternative, ALTERNATIVES, "alternative")  # type: ignore[assignment]
    n_resamples = _resamples(n_resamples)
    n = len(claim)
    # values[i, 0] is the claim, values[i, 1:] its controls. Labelling value j of item i as the claim
    # contributes t[i, j] = v_ij - (S_i - v_ij) / k to the sum whose mean is the statistic.
    values = np.concatenate([claim[:, None], controls], axis=1)
    t = values * (1 + 1 / k) - values.sum(axis=1, keepdims=True) / k
    observed = float(t[:, 0].mean())
    tol = 1e-9 * float(np.abs(t).mean() + 1e-300)
    rows = np.arange(n)
    if (k + 1) ** n <= MAX_EXACT:
        # The exact null distribution of the sum: convolve the items' (k + 1) equally likely terms.
        sums = np.zeros(1)
        for i in range(n):
            sums = (sums[:, None] + t[i][None, :]).ravel()
        p_g, p_l = _p_values(sums / n, observed, None, tol)
        exact, m = True, (k + 1) ** n
    else:
        rng = np.random.default_rng(seed)
        def relabelled(size: int) -> np.ndarray:
            return t[rows[None, :], rng.integers(0, k + 1, size=(size, n))].mean(axis=1)

        p_g, p_l = _resampled_p_values(relabelled, n_resamples, n, observed, tol)
        exact, m = False, n_resamples
    return PairedTest(
        statistic=observed, p_value=_combine(p_g, p_l, alternative), n=n, alternative=alternative,
        exact=exact, n_resamples=m, seed=seed, mean_claim=float(claim.mean()), mean_control=float(controls.mean()),
        n_higher=int(np.sum(claim > controls.max(axis=1))), n_lower=int(np.sum(claim < controls.min(axis=1))),
        n_controls=k, method="relabelling permutation test",
    )  # fmt: skip


def _resamples(n_resamples: int) -> int:
    n_resamples = _count(n_resamples, "n_resamples")
    if n_resamples < 99:
        raise ValueError(f"n_resamples={n_resamples}: give at least 99 (9999 is the default)")
    return n_resamples


def _resampled_p_values(
    null_batch: Callable[[int], np.ndarray], n_resamples: int, n: int, observed: float, tol: float
) -> tuple[float, float]:
    """One-sided p-values from ``n_resamples`` draws of the null statistic, ``null_batch(size)`` at a time."""
    ge = le = 0
    for size in _batches(n_resamples, n):
        null = null_batch(size)
        ge += int(np.sum(null >= observed - tol))
        le += int(np.sum(null <= observed + tol))
    return _p_values(None, observed, (ge, le, n_resamples), tol)


def _batches(total: int, width: int, budget: int = 2**22) -> list[int]:
    """Batch sizes summing to ``total`` with at most ``budget`` numbers per batch (bounded memory)."""
    size = max(1, budget // max(width, 1))
    return [min(size, total - start) for start in range(0, total, size)]


# --------------------------------------------------------------------------- multiple claims


@dataclass(frozen=True)
class Holm:
    """Holm-Bonferroni adjusted p-values: claim ``i`` is rejected (its null refuted) when ``adjusted[i] <= alpha``.

    The probability of rejecting any true null hypothesis is at most ``alpha``, whatever the
    dependence between the tests (Holm 1979).
    """

    names: tuple[str, ...]
    p_values: tuple[float, ...]
    adjusted: tuple[float, ...]
    rejected: tuple[bool, ...]
    alpha: float

    def __len__(self) -> int:
        return len(self.names)

    def __getitem__(self, name: str) -> float:
        """The adjusted p-value of the test called ``name``."""
        return self.adjusted[self.names.index(name)]

    def __str__(self) -> str:
        width = max(map(len, self.names), default=0)
        lines = [f"Holm-Bonferroni over {len(self)} tests at alpha {self.alpha:g}: {sum(self.rejected)} rejected"]
        for name, p, adj, rej in zip(self.names, self.p_values, self.adjusted, self.rejected, strict=True):
            lines.append(f"  {name:<{width}}  p = {_p(p):<7}  adjusted {_p(adj):<7}  {'rejected' if rej else 'kept'}")
        return "\n".join(lines)


def holm(p_values: Sequence[float] | Mapping[str, float], alpha: float = 0.05) -> Holm:
    """Holm-Bonferroni step-down adjustment of several p-values (a sequence, or a mapping name -> p).

    Sort the ``m`` p-values ascending; the ``j``-th smallest is multiplied by ``m - j + 1`` (j from 1),
    and adjusted values are made non-decreasing along that order and capped at 1. It rejects every
    hypothesis Bonferroni rejects, and often more.

    >>> h = holm({"MLP9": 0.01, "attn9": 0.04, "L8": 0.03, "L5": 0.005})
    >>> h.adjusted
    (0.03, 0.06, 0.06, 0.02)
    >>> h.rejected
    (True, False, False, True)
    """
    if isinstance(p_values, Mapping):
        names = tuple(str(k) for k in p_values)
        raw = list(p_values.values())
    else:
        raw = list(p_values)
        names = tuple(f"#{i}" for i in range(len(raw)))
    if not raw:
        raise ValueError("holm() needs at least one p-value")
    p = _values(raw, "p_values")
    if np.any((p < 0) | (p > 1)):
        i = int(np.argmax((p < 0) | (p > 1)))
        raise ValueError(f"p_values[{names[i]}] = {p[i]}: a p-value is between 0 and 1")
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not 0 < alpha < 1:
        raise ValueError(f"alpha={alpha!r}: give a family-wise error rate strictly between 0 and 1, e.g. 0.05")
    m = len(p)
    order = np.argsort(p, kind="stable")
    scaled = np.minimum(1.0, (m - np.arange(m)) * p[order])
    adjusted = np.empty(m)
    adjusted[order] = np.maximum.accumulate(scaled)
    adj = tuple(float(x) for x in adjusted)
    return Holm(names, tuple(float(x) for x in p), adj, tuple(a <= alpha for a in adj), float(alpha))


# --------------------------------------------------------------------------- verdicts


@dataclass(frozen=True)
class Judgement:
    """The verdict on a claim ``estimate <direction> threshold``, with the interval it rests on."""

    verdict: Verdict
    interval: Interval
    threshold: float
    direction: Direction
    more_items: int | None
    """When inconclusive: about how many more items, at the observed value (and, for an effect, the
    observed spread), would settle it; None when no number would (the estimate sits on the threshold).
    0 when already settled."""

    @property
    def holds(self) -> bool:
        return self.verdict == "holds"

    def __str__(self) -> str:
        thr = self.interval.fmt(self.threshold)
        head = f"{self.verdict}: {self.interval}; "
        if self.verdict == "holds":
            return head + f"the whole interval is {self.direction} {thr}"
        if self.verdict == "fails":
            side = "below" if self.direction == ">=" else "above"
            return head + f"the whole interval is {side} {thr}"
        at = "rate" if self.interval.is_rate else "value and spread"
        tail = (
            f"about {self.more_items} more items at the observed {at} would settle it"
            if self.more_items is not None
            else f"more items at the observed {at} would not settle it (the estimate is at the threshold)"
        )
        return head + f"the interval straddles {thr}; " + tail


def _verdict(low: float, high: float, threshold: float, direction: str) -> Verdict:
    if direction == ">=":
        return "holds" if low >= threshold else "fails" if high < threshold else "inconclusive"
    return "holds" if high <= threshold else "fails" if low > threshold else "inconclusive"


def judge(interval: Interval, threshold: float, direction: Direction = ">=") -> Judgement:
    """The verdict on the claim ``estimate >= threshold`` (or ``<=``), from its interval.

    **holds** when the whole interval is on the claimed side (``low >= threshold`` for ``>=``),
    **fails** when the whole interval is on the other side (``high < threshold``), **inconclusive**
    otherwise. With a two-sided 95% interval, a claim whose true value is exactly at the threshold
    is judged "holds" with probability at most 2.5% (Clopper-Pearson guarantees it; the other
    methods approximately).

    >>> print(judge(rate_interval(2, 30, label="top-1"), 0.5))
    fails: top-1 on 2/30 items = 6.7% [0.8%, 22.1%] (Clopper-Pearson 95%); the whole interval is below 50.0%
    >>> j = judge(rate_interval(1, 30), 0.1, "<=")
    >>> j.verdict, j.more_items
    ('inconclusive', 50)
    """
    direction = _choice(direction, DIRECTIONS, "direction")  # type: ignore[assignment]
    if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) or not math.isfinite(threshold):
        raise ValueError(f"threshold={threshold!r}: give a finite number")
    if interval.is_rate and not 0 <= threshold <= 1:
        raise ValueError(f"threshold={threshold!r} for a rate: give a value between 0 and 1 (0.8 for 80%)")
    verdict = _verdict(interval.low, interval.high, threshold, direction)
    more: int | None = 0
    if verdict == "inconclusive":
        if interval.is_rate:
            assert interval.k is not None and interval.n is not None
            more = items_to_settle(
                interval.k, interval.n, threshold, direction, confidence=interval.confidence,
                method=_method_key(interval.method),
            )  # fmt: skip
        else:
            more = _effect_items_to_settle(interval, threshold)
    return Judgement(verdict, interval, float(threshold), direction, more)


def _method_key(printed: str) -> RateMethod:
    return {v: k for k, v in _RATE_NAMES.items()}[printed]  # type: ignore[return-value]


def items_to_settle(
    k: int,
    n: int,
    threshold: float,
    direction: Direction = ">=",
    *,
    confidence: float = 0.95,
    method: RateMethod = "clopper-pearson",
    max_items: int = 10**7,
) -> int | None:
    """About how many more items, at the observed rate ``k / n``, would make the interval settle the claim.

    The smallest ``m >= 0`` for which the interval of ``(k / n) * (n + m)`` successes in ``n + m``
    items lies wholly on one side of the threshold (a fractional count, so the answer does not jump
    with rounding). 0 when the claim is settled already; None when no number of items would
    settle it (the observed rate equals the threshold, or more than ``max_items`` would be needed).
    It is a planning figure: the rate of new items will not be exactly ``k / n``.

    >>> items_to_settle(27, 30, 0.8)    # 90% observed, claim >= 80%: 59/65 would give [81.0%, 96.5%]
    35
    >>> items_to_settle(27, 30, 0.7)    # already holds
    0
    >>> items_to_settle(30, 30, 1.0) is None   # "always" is never settled by a finite sample
    True
    """
    k, n = _count(k, "k"), _count(n, "n")
    if n < 1 or not 0 <= k <= n:
        raise ValueError(f"k={k}, n={n}: give 0 <= k <= n and n >= 1")
    confidence = _confidence(confidence)
    method = _choice(method, RATE_METHODS, "method")  # type: ignore[assignment]
    direction = _choice(direction, DIRECTIONS, "direction")  # type: ignore[assignment]
    rate = k / n

    def settled(total: int) -> bool:
        low, high = _rate_bounds(rate * total, total, confidence, method)
        return _verdict(low, high, threshold, direction) != "inconclusive"

    if settled(n):
        return 0
    if rate == threshold:
        return None
    hi = n
    while not settled(hi):
        if hi >= n + max_items:
            return None
        hi = min(2 * hi, n + max_items)
    lo = n  # not settled at lo, settled at hi
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (lo, mid) if settled(mid) else (mid, hi)
    return hi - n


def _effect_items_to_settle(interval: Interval, threshold: float) -> int | None:
    """For an effect interval: the interval's half-width on the threshold's side shrinks as 1/sqrt(n)."""
    if interval.n is None or interval.estimate == threshold:
        return None
    gap = abs(interval.estimate - threshold)
    half = interval.estimate - interval.low if threshold < interval.estimate else interval.high - interval.estimate
    if half <= 0:
        return None
    needed = interval.n * (half / gap) ** 2
    return max(1, math.ceil(needed) - interval.n)
