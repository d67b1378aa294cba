"""Put a measurement in the report: ``record(head_scores(model, "induction"))``.

Every ``assert_*`` helper (every ``Result.raise_if_failed``) records its result for the report.
A measurement that makes no claim, such as a :class:`~pytest_annotate.scoring.head_scores.HeadScores`
table or a :class:`~pytest_annotate.scoring.sweeps.SweepResult`, is never asserted; :func:`record` adds it,
so that the report draws its heatmap or bar chart beside the test's verdict.
"""

from __future__ import annotations

from typing import Any, TypeVar, overload

from pytest_annotate.results import RECORDERS

R = TypeVar("R")


@overload
def record(result: R, /) -> R: ...
@overload
def record(*results: Any) -> tuple[Any, ...]: ...


def record(*results: Any) -> Any:
    """Record results for the running test's report entry; returns what it was given.

    Outside a pytest run (a notebook), nothing listens and this does nothing.

    >>> record(3)
    3
    >>> record(1, 2)
    (1, 2)
    """
    for result in results:
        for recorder in RECORDERS:
            recorder(result)
    return results[0] if len(results) == 1 else results


__all__ = ["record"]
