"""Assemble a report from values, and write it: ``report.html``, ``report.md`` and ``report.json``.

Usable from a notebook as from the plugin::

    from pytest_annotate.report import RunInfo, RunSummary, build_report, summarize_run, write_report

    run = summarize_run(RunInfo("checkpoints@step900", step=900), recorded=[("my finding", result)])
    write_report(build_report(run, results=[("my finding", result)]), "out/report.html")
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pytest_annotate.report.measurements import summarize_result
from pytest_annotate.report.plots import Plot, plots_for_results, trajectory_plot
from pytest_annotate.report.summary import (
    Finding,
    Outcome,
    RunInfo,
    RunSummary,
    order_runs,
    step_of,
)
from pytest_annotate.report.trajectory import (
    DriftMatrix,
    Trajectory,
    drift_matrix,
    trajectories,
    uses_steps,
)
from pytest_annotate.snapshot.drift import DriftRecord

REPORT_SUFFIXES = (".html", ".htm")


@dataclass(frozen=True)
class TestOutcome:
    """How one test ended, as the plugin saw it (or as a notebook states it)."""

    __test__ = False  # not a pytest test class, despite the name

    nodeid: str
    outcome: Outcome
    doc: str = ""
    reason: str = ""
    details: str = ""
    duration: float = 0.0


def summarize_run(
    info: RunInfo,
    *,
    outcomes: Sequence[TestOutcome] = (),
    recorded: Sequence[tuple[str, Any]] = (),
    drift: Sequence[DriftRecord] = (),
) -> RunSummary:
    """A :class:`RunSummary` from the tests' outcomes and the results they recorded.

    ``recorded``: ``(nodeid, result)`` pairs; a nodeid with results but no outcome (a notebook's
    finding) counts as ``passed`` or ``failed`` by its results' verdicts.
    """
    results: dict[str, list[Any]] = {}
    for nodeid, result in recorded:
        bucket = results.setdefault(nodeid, [])
        if not any(r is result for r in bucket):
            bucket.append(result)
    findings = []
    seen = set()
    for o in outcomes:
        seen.add(o.nodeid)
        summaries = tuple(summarize_result(r) for r in results.get(o.nodeid, ()))
        findings.append(Finding(o.nodeid, o.doc, o.outcome, o.reason, o.details, o.duration, summaries))
    for nodeid, rs in results.items():
        if nodeid in seen:
            continue
        summaries = tuple(summarize_result(r) for r in rs)
        failed = any(s.passed is False for s in summaries)
        findings.append(Finding(nodeid, "", "failed" if failed else "passed", results=summaries))
    return RunSummary(info, tuple(findings), tuple(drift))


@dataclass(frozen=True)
class Report:
    """Everything a report shows: this run, the earlier runs it is compared with, and the figures."""

    run: RunSummary
    history: tuple[RunSummary, ...] = ()
    plots: tuple[Plot, ...] = ()
    trajectories: tuple[Trajectory, ...] = ()
    drift_matrix: DriftMatrix | None = None

    @property
    def runs(self) -> list[RunSummary]:
        """This run and the history, in trajectory order (by step)."""
        return order_runs([*self.history, self.run])

    def html(self) -> str:
        from pytest_annotate.report.html import render_html

        return render_html(self)

    def markdown(self) -> str:
        from pytest_annotate.report.markdown import render_markdown

        return render_markdown(self)


def build_report(
    run: RunSummary,
    *,
    results: Sequence[tuple[str, Any]] = (),
    history: Iterable[RunSummary] = (),
) -> Report:
    """The report of ``run``: figures for its recorded ``results``, and trajectories and drift
    across ``history`` (earlier runs' summaries; a run of the same model id is replaced by this one)."""
    earlier = tuple(h for h in history if h.info.model_id != run.info.model_id)
    plots = plots_for_results(results)
    all_runs = order_runs([*earlier, run])
    tracks = tuple(trajectories(all_runs)) if len(all_runs) > 1 else ()
    if tracks:
        # The baseline run itself compares with nothing: take the baseline the other runs share.
        baselines = {r.info.baseline for r in all_runs if r.info.baseline}
        baseline = run.info.baseline or (baselines.pop() if len(baselines) == 1 else None)
        baseline_step = step_of(baseline) if baseline else None
        plots.append(trajectory_plot(tracks, by_step=uses_steps(all_runs), baseline_step=baseline_step))
    return Report(run, earlier, tuple(plots), tracks, drift_matrix(all_runs))


# --------------------------------------------------------------------------- files


@dataclass(frozen=True)
class ReportPaths:
    """Where a report was written."""

    html: Path
    markdown: Path
    json: Path


def report_paths(path: str | Path) -> ReportPaths:
    """``report.html`` → the HTML, the Markdown (``report.md``) and the summary (``report.json``) beside it."""
    html = Path(path)
    return ReportPaths(html, html.with_suffix(".md"), html.with_suffix(".json"))


def check_report_path(path: str | Path) -> ReportPaths:
    """Check that a report can be written at ``path`` before the tests run; raise ``ValueError`` saying why not."""
    html = Path(path).expanduser()
    if html.is_dir():
        raise ValueError(f"{html} is a folder; give the report's file name, e.g. {html / 'report.html'}")
    if html.suffix.lower() not in REPORT_SUFFIXES:
        raise ValueError(
            f"give the HTML file's path, ending in .html (e.g. {html.with_suffix('.html')}); the Markdown "
            "and JSON summary are written beside it with the same name"
        )
    folder = html.parent
    if not folder.exists():
        raise ValueError(f"the folder {folder} does not exist; create it (mkdir -p {folder}) or choose another path")
    if not folder.is_dir():
        raise ValueError(f"{folder} is not a folder, so {html.name} cannot be written in it")
    try:
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".annotate-report-", suffix=".probe"):
            pass
    except OSError as e:
        raise ValueError(f"cannot write in {folder}: {e.strerror or e}; choose a writable folder") from None
    paths = report_paths(html)
    for p in (paths.html, paths.markdown, paths.json):
        if p.exists() and not os.access(p, os.W_OK):
            raise ValueError(f"{p} exists and is not writable")
    return paths


def write_report(report: Report, path: str | Path) -> ReportPaths:
    """Write the HTML at ``path`` and the Markdown and JSON summary beside it (each replaced atomically)."""
    paths = report_paths(Path(path).expanduser())
    contents: Mapping[Path, str] = {
        paths.json: report.run.to_json(),
        paths.markdown: report.markdown(),
        paths.html: report.html(),
    }
    for target, text in contents.items():
        _atomic_write(target, text)
    return paths


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _atomic_write(target: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as f:
            f.write(text)
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; a report is for sharing
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


__all__ = [
    "Report",
    "ReportPaths",
    "TestOutcome",
    "build_report",
    "check_report_path",
    "report_paths",
    "summarize_run",
    "write_report",
]
