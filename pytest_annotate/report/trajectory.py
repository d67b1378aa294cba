"""Findings across runs: a key number per finding against the checkpoint step, and drift statuses.

Each run of the suite on one checkpoint writes a summary (``report.json``); given several,
:func:`trajectories` lines up every finding's primary number across them (x = the checkpoint
step), and :func:`drift_matrix` lines up the drift statuses (held, weakened, flipped...) of each
snapshot against the same baseline. Pure functions on :class:`RunSummary` values.

>>> from pytest_annotate.report.summary import Finding, Measurement, ResultSummary, RunInfo, RunSummary
>>> def run(step, score):
...     m = Measurement("L1H0 induction score", score, ">=", 0.8, primary=True)
...     f = Finding("t.py::test_ind", "L1H0 is an induction head.", "passed" if score >= 0.8 else "failed",
...                 results=(ResultSummary("HeadRoleResult", "", measurements=(m,)),))
...     return RunSummary(RunInfo(f"checkpoints@step{step}", step=step), (f,))
>>> [t] = trajectories([run(3500, 0.90), run(900, 0.63)])
>>> [(p.x, p.value, p.holds) for p in t.points]
[(900.0, 0.63, False), (3500.0, 0.9, True)]

A claim over a family brings the interval its verdict rests on, the verdict word and the number of items:

>>> def family(step, k, low, high, verdict):
...     m = Measurement("top-1 rate", k / 30, ">=", 0.8, primary=True)
...     r = ResultSummary("FamilyResult", "", verdict == "holds", (m,), verdict=verdict, low=low, high=high, n=30)
...     return RunSummary(RunInfo(f"m@step{step}", step=step), (Finding("t.py::test_months", "", "passed", results=(r,)),))
>>> [t] = trajectories([family(900, 27, 0.7347, 0.9789, "inconclusive"), family(3500, 30, 0.8843, 1.0, "holds")])
>>> [(p.interval, p.status, p.text) for p in t.points]
[((0.7347, 0.9789), 'inconclusive', '0.9 [0.7347, 0.9789] inconclusive (30)'), ((0.8843, 1.0), 'holds', '1 [0.8843, 1] holds (30)')]
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from pytest_annotate.report.summary import (
    Finding,
    Measurement,
    Op,
    ResultSummary,
    RunSummary,
    Verdict,
    format_number,
    interval_text,
    order_runs,
)

#: Most trajectories drawn in one plot (the table lists them all).
MAX_TRAJECTORIES = 24


@dataclass(frozen=True)
class TrajectoryPoint:
    """One run's value of a finding's number."""

    x: float
    """The checkpoint step, or the run's position when the runs have no steps."""
    label: str
    """``step 900`` or the model id."""
    value: float
    holds: bool | None
    """Whether the value meets the claim's bound at this run (``None``: no bound)."""
    outcome: str
    """The test's outcome at this run."""
    interval: tuple[float, float] | None = None
    """``(low, high)``: the interval the verdict rests on (claims over families); ``None`` without one."""
    verdict: Verdict | None = None
    """The verdict of the result the value belongs to (``None``: no claim, or a summary that does not say)."""
    n: int | None = None
    """How many items the interval rests on."""

    @property
    def status(self) -> Verdict | None:
        """How the point is drawn: a family claim's verdict (judged on this interval, so it may be
        ``inconclusive``); else whether the value meets its bound, as ``holds``/``fails``; ``None``
        without a bound."""
        if self.interval is not None and self.verdict is not None:
            return self.verdict
        if self.holds is None:
            return None
        return "holds" if self.holds else "fails"

    @property
    def text(self) -> str:
        """``0.9 [0.7347, 0.9789] inconclusive (30)``; just the value without an interval."""
        value = format_number(self.value)
        if self.interval is None:
            return value
        return f"{value} {interval_text(*self.interval, self.verdict, self.n)}"


@dataclass(frozen=True)
class Trajectory:
    """A finding's number across runs."""

    nodeid: str
    doc: str
    name: str
    op: Op | None
    threshold: float | None
    unit: str
    points: tuple[TrajectoryPoint, ...]

    @property
    def bound(self) -> str:
        return Measurement(self.name, None, self.op, self.threshold).bound

    @property
    def test_name(self) -> str:
        return self.nodeid.rsplit("::", 1)[-1]

    def at(self, labels: Sequence[str]) -> list[TrajectoryPoint | None]:
        """The point of each run label, in that order (``None`` where the run has no value)."""
        by_label = {p.label: p for p in self.points}
        return [by_label.get(label) for label in labels]

    @property
    def has_intervals(self) -> bool:
        return any(p.interval is not None for p in self.points)


def key_measurements(finding: Finding) -> tuple[Measurement, ...]:
    """The numbers a finding is about: its primary measurements, else its first one; one per name."""
    return tuple(m for m, _ in _key_pairs(finding))


def _key_pairs(finding: Finding) -> list[tuple[Measurement, ResultSummary]]:
    """:func:`key_measurements`, each with the result it belongs to (which holds its verdict and interval)."""
    every = [(m, r) for r in finding.results for m in r.measurements]
    chosen = [(m, r) for m, r in every if m.primary] or every[:1]
    seen: dict[str, tuple[Measurement, ResultSummary]] = {}
    for m, r in chosen:
        seen.setdefault(m.name, (m, r))
    return list(seen.values())


def _point(x: float, label: str, m: Measurement, result: ResultSummary, outcome: str) -> TrajectoryPoint:
    # The interval is around the result's primary number: a non-primary number (a finding without a
    # primary one) draws none.
    interval = result.interval if m.primary else None
    return TrajectoryPoint(x, label, float(m.value), m.holds, outcome,  # type: ignore[arg-type]
                           interval=interval, verdict=result.verdict, n=result.n if interval else None)


def uses_steps(runs: Sequence[RunSummary]) -> bool:
    """Whether every run is a checkpoint with a step (then x is the step)."""
    return bool(runs) and all(r.info.step is not None for r in runs)


def trajectories(runs: Sequence[RunSummary], *, min_points: int = 2) -> list[Trajectory]:
    """Every finding's key numbers across ``runs`` (ordered by step), those with ``min_points`` or more."""
    ordered = order_runs(runs)
    by_step = uses_steps(ordered)
    series: dict[tuple[str, str], list[TrajectoryPoint]] = {}
    meta: dict[tuple[str, str], tuple[Finding, Measurement]] = {}
    for i, run in enumerate(ordered):
        x = float(run.info.step) if by_step else float(i)  # type: ignore[arg-type]
        for finding in run.findings:
            for m, result in _key_pairs(finding):
                if isinstance(m.value, bool) or not isinstance(m.value, (int, float)):
                    continue
                key = (finding.nodeid, m.name)
                series.setdefault(key, []).append(_point(x, run.info.label, m, result, finding.outcome))
                meta[key] = (finding, m)  # the latest run's bound and docstring win
    out = []
    for key, points in series.items():
        if len(points) < min_points:
            continue
        finding, m = meta[key]
        out.append(Trajectory(finding.nodeid, finding.doc, m.name, m.op, m.threshold, m.unit, tuple(points)))
    return out


@dataclass(frozen=True)
class DriftMatrix:
    """Drift status of each snapshot (rows) at each run (columns), against the runs' baselines."""

    columns: tuple[str, ...]
    """Run labels (``step 900``), in trajectory order."""
    baselines: tuple[str, ...]
    """Each column's baseline model id."""
    rows: tuple[tuple[str, tuple[str | None, ...]], ...]
    """``(snapshot label, status per column)``; ``None`` where that run has no such record."""


def drift_matrix(runs: Sequence[RunSummary]) -> DriftMatrix | None:
    """The drift statuses of the runs that compared with a baseline; ``None`` when fewer than two did."""
    ordered = [r for r in order_runs(runs) if r.drift]
    if len(ordered) < 2:
        return None
    labels: dict[str, None] = {}
    for run in ordered:
        for record in run.drift:
            labels.setdefault(record.label, None)
    rows = []
    for label in labels:
        cells = []
        for run in ordered:
            status = next((r.status for r in run.drift if r.label == label), None)
            cells.append(status)
        rows.append((label, tuple(cells)))
    return DriftMatrix(
        columns=tuple(r.info.label for r in ordered),
        baselines=tuple(r.drift[0].baseline_model_id for r in ordered),
        rows=tuple(rows),
    )


__all__ = [
    "MAX_TRAJECTORIES",
    "DriftMatrix",
    "Trajectory",
    "TrajectoryPoint",
    "drift_matrix",
    "key_measurements",
    "trajectories",
    "uses_steps",
]
