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
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from pytest_annotate.report.summary import (
    Finding,
    Measurement,
    Op,
    RunSummary,
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


def key_measurements(finding: Finding) -> tuple[Measurement, ...]:
    """The numbers a finding is about: its primary measurements, else its first one; one per name."""
    every = finding.measurements
    chosen = [m for m in every if m.primary] or list(every[:1])
    seen: dict[str, Measurement] = {}
    for m in chosen:
        seen.setdefault(m.name, m)
    return tuple(seen.values())


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
            for m in key_measurements(finding):
                if isinstance(m.value, bool) or not isinstance(m.value, (int, float)):
                    continue
                key = (finding.nodeid, m.name)
                series.setdefault(key, []).append(
                    TrajectoryPoint(x, run.info.label, float(m.value), m.holds, finding.outcome))
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
