"""From a check's result object to the few numbers a report shows: :func:`summarize_result`.

Every result knows more than a report line can hold; each result type chooses its **key numbers**
itself (:meth:`~pytest_annotate.results.Result.measurements`: a
:class:`~pytest_annotate.results.Measurement` each, with the claim's bound, the one the finding is
about marked ``primary``, the number drawn across checkpoints). Objects that are not results, or
results that choose nothing, fall back to the numbers the snapshot drift table would pick.

>>> from dataclasses import dataclass
>>> from pytest_annotate.results import Result
>>> @dataclass(frozen=True, eq=False)
... class Copying(Result):
...     accuracy: float
...     passed: bool
...     def report(self):
...         return f"copying accuracy {self.accuracy:.2%}"
>>> s = summarize_result(Copying(0.994, True))
>>> s.headline, [m.text for m in s.measurements], s.verdict, s.interval
('copying accuracy 99.40%', ['accuracy 0.994'], 'holds', None)

A claim over a family keeps its verdict word (it may be ``inconclusive``) and the interval it rests on:

>>> from pytest_annotate.stats import judge, rate_interval
>>> from pytest_annotate.checks.families import FamilyResult
>>> iv = rate_interval(27, 30)
>>> r = FamilyResult(family="months", family_summary="months v1", split="heldout", model_id="m", subject="top-1",
...                  label="top-1", threshold=0.8, direction=">=", verdict=judge(iv, 0.8).verdict, passed=False,
...                  n=30, k=27, estimate=iv.estimate, low=iv.low, high=iv.high, method=iv.method, confidence=0.95)
>>> summarize_result(r).interval_text
'[0.7347, 0.9789] inconclusive (30)'
"""

from __future__ import annotations

import math
from typing import Any

from pytest_annotate.report.summary import ResultSummary
from pytest_annotate.results import VERDICTS, Measurement, Verdict

#: Longest full report text kept per result (a whole-vocabulary table is not a report).
MAX_REPORT_CHARS = 20_000
MAX_HEADLINE_CHARS = 240



def summarize_result(result: Any) -> ResultSummary:
    """The headline (the first line of its report), verdict, key numbers and full report of a result."""
    text = _report_text(result)
    headline = text.strip().splitlines()[0] if text.strip() else type(result).__name__
    if len(headline) > MAX_HEADLINE_CHARS:
        headline = headline[: MAX_HEADLINE_CHARS - 1] + "…"
    passed = getattr(result, "passed", None)
    judged = isinstance(passed, bool) and getattr(result, "judged", True)
    low, high, n = interval_of(result)
    return ResultSummary(
        kind=type(result).__name__,
        headline=headline,
        passed=passed if judged else None,
        measurements=measurements_of(result),
        report=text if len(text) <= MAX_REPORT_CHARS else text[:MAX_REPORT_CHARS] + "\n… (cut)",
        verdict=verdict_of(result) if judged else None,
        low=low,
        high=high,
        n=n,
    )


def verdict_of(result: Any) -> Verdict:
    """The result's verdict word: its own ``verdict`` (``holds``/``inconclusive``/``fails``), else from ``passed``."""
    verdict = getattr(result, "verdict", None)
    if verdict in VERDICTS:
        return verdict  # type: ignore[no-any-return]
    return "holds" if getattr(result, "passed", False) else "fails"


def interval_of(result: Any) -> tuple[float | None, float | None, int | None]:
    """``(low, high, n)`` of the interval a result's verdict rests on (its ``interval``: a claim over a
    family), else ``(None, None, None)``. A result whose interval cannot be read has none: the report
    never fails on it."""
    try:
        interval = getattr(result, "interval", None)
    except (ArithmeticError, TypeError, ValueError):  # a property that cannot build it (a NaN bound)
        return None, None, None
    low, high = getattr(interval, "low", None), getattr(interval, "high", None)
    if not (_real(low) and _real(high)):
        return None, None, None
    n = getattr(interval, "n", None)
    return float(low), float(high), n if isinstance(n, int) and not isinstance(n, bool) else None


def _real(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and not math.isnan(value)


def measurements_of(result: Any) -> tuple[Measurement, ...]:
    """The key numbers of a result: its own :meth:`measurements`, else the drift table's pick."""
    own = getattr(result, "measurements", None)
    if callable(own):
        chosen = tuple(own())
        if chosen:
            return chosen
    return _generic(result)


def _report_text(result: Any) -> str:
    report = getattr(result, "report", None)
    if callable(report):
        return str(report())
    return repr(result)


def _generic(result: Any) -> tuple[Measurement, ...]:
    """The headline numbers the snapshot drift table would pick: ranks, probabilities, logits,
    shallowest first (verdicts are the result's ``passed``, shown apart)."""
    from pytest_annotate.snapshot.drift import key_numbers_from_leaves
    from pytest_annotate.snapshot.errors import SnapshotSerializeError
    from pytest_annotate.snapshot.serialize import flatten

    try:
        leaves = flatten(result)
    except SnapshotSerializeError:
        return ()
    numbers = [k for k in key_numbers_from_leaves(leaves, baseline=False) if k.kind != "verdict"]
    numbers = [k for k in numbers if not isinstance(k.current, str)]
    return tuple(Measurement(k.path, k.current, primary=i == 0) for i, k in enumerate(numbers))  # type: ignore[arg-type]


__all__ = ["interval_of", "measurements_of", "summarize_result", "verdict_of"]
