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
>>> s.headline, [m.text for m in s.measurements]
('copying accuracy 99.40%', ['accuracy 0.994'])
"""

from __future__ import annotations

from typing import Any

from pytest_annotate.report.summary import ResultSummary
from pytest_annotate.results import Measurement

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
    return ResultSummary(
        kind=type(result).__name__,
        headline=headline,
        passed=passed if isinstance(passed, bool) and getattr(result, "judged", True) else None,
        measurements=measurements_of(result),
        report=text if len(text) <= MAX_REPORT_CHARS else text[:MAX_REPORT_CHARS] + "\n… (cut)",
    )


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


__all__ = ["measurements_of", "summarize_result"]
