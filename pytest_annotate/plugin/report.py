"""pytest plugin: ``--annotate-report PATH`` writes the run's report (HTML, Markdown, JSON summary).

It only collects what the run produced (each test's outcome and docstring, the results the
``assert_*`` helpers recorded, the snapshot drift records) and hands them to
:mod:`pytest_annotate.report`, which builds and writes the report from those values.

Load it with pytest-annotate's plugin (``pytest_plugins``) or alone with
``-p pytest_annotate.plugin.report``.
"""

from __future__ import annotations

import dataclasses
import importlib.metadata
import platform
import re
import shlex
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from pytest_annotate.plugin import keys
from pytest_annotate.report.build import (
    ReportPaths,
    TestOutcome,
    build_report,
    check_report_path,
    summarize_run,
    write_report,
)
from pytest_annotate.report.summary import (
    ReportError,
    RunInfo,
    RunSummary,
    first_sentence,
    load_summaries,
    step_of,
)

#: Packages whose versions go in the report's header.
VERSIONED = ("pytest-annotate", "torch", "transformers", "transformer-lens", "numpy", "pytest")


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("annotate", "pytest-annotate (model behaviour tests)")
    group.addoption(
        "--annotate-report",
        metavar="PATH",
        dest="annotate_report",
        default=None,
        help="write the run's report: PATH (.html, self-contained, with plots), and beside it the same stem "
        ".md (for CI job summaries) and .json (a summary later runs can use as history)",
    )
    group.addoption(
        "--annotate-report-history",
        metavar="PATH",
        dest="annotate_report_history",
        action="append",
        default=[],
        help="an earlier run's report .json, or a folder of them (repeatable): the report then shows each "
        "finding's key number across checkpoints, and drift statuses across runs",
    )
    parser.addini("annotate_report", default="", help="default for --annotate-report (relative to the rootdir)")


@dataclass
class _Collected:
    """What the run produced, gathered as it happens."""

    paths: ReportPaths
    history: list[RunSummary]
    docs: dict[str, str] = field(default_factory=dict)
    """Docstring first sentence per collected test, in collection order."""
    outcomes: dict[str, TestOutcome] = field(default_factory=dict)
    written: ReportPaths | None = None
    n_plots: int = 0
    n_runs: int = 1
    error: str | None = None


_COLLECTED = pytest.StashKey[_Collected]()


def _report_path(config: pytest.Config) -> tuple[str, Path] | None:
    cli = config.getoption("annotate_report", None)
    if cli:
        return f"--annotate-report {cli}", config.invocation_params.dir / Path(cli).expanduser()
    ini = str(config.getini("annotate_report") or "")
    if ini:
        base = config.inipath.parent if config.inipath else config.rootpath
        return f"annotate_report = {ini}", base / Path(ini).expanduser()
    return None


def pytest_configure(config: pytest.Config) -> None:
    where = _report_path(config)
    if where is None or hasattr(config, "workerinput"):
        return  # no report asked for; or an xdist worker (the controller writes it)
    given, path = where
    try:
        paths = check_report_path(path)
    except ValueError as e:
        raise pytest.UsageError(f"{given}: {e}") from None
    history_args = [config.invocation_params.dir / Path(p).expanduser()
                    for p in config.getoption("annotate_report_history", [])]
    try:
        history = load_summaries(history_args, exclude=[paths.json])
    except ReportError as e:
        raise pytest.UsageError(f"--annotate-report-history: {e}") from None
    collected = _Collected(paths, history)
    config.stash[_COLLECTED] = collected
    config.pluginmanager.register(_Collector(collected), "annotate-report-collector")


class _Collector:
    """Per-test hooks (those without a ``config`` argument need the state at hand)."""

    def __init__(self, collected: _Collected) -> None:
        self.c = collected

    def pytest_itemcollected(self, item: pytest.Item) -> None:
        obj = getattr(item, "obj", None)
        self.c.docs[item.nodeid] = first_sentence(getattr(obj, "__doc__", None)) if callable(obj) else ""

    def pytest_collectreport(self, report: pytest.CollectReport) -> None:
        if report.failed:
            self.c.outcomes[report.nodeid] = TestOutcome(
                report.nodeid, "error", "collection failed", _first_line(report.longreprtext), report.longreprtext)

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        previous = self.c.outcomes.get(report.nodeid)
        duration = (previous.duration if previous else 0.0) + report.duration
        doc = self.c.docs.get(report.nodeid, "")
        outcome: str | None = None
        reason, details = "", ""
        xfail = hasattr(report, "wasxfail")
        if report.when == "setup":
            if report.failed:
                outcome, reason, details = "error", "setup: " + _first_line(report.longreprtext), report.longreprtext
            elif report.skipped:
                outcome, reason = "skipped", _skip_reason(report)
        elif report.when == "call":
            if report.passed:
                outcome, reason = ("xpassed", f"expected to fail: {report.wasxfail}") if xfail else ("passed", "")
            elif report.skipped and xfail:
                outcome, reason = "xfailed", report.wasxfail or "expected failure"
            elif report.skipped:
                outcome, reason = "skipped", _skip_reason(report)
            else:
                outcome, reason, details = "failed", _first_line(report.longreprtext), report.longreprtext
        elif report.failed and previous is not None and previous.outcome in ("passed", "xfailed", "skipped"):
            outcome, reason, details = "error", "teardown: " + _first_line(report.longreprtext), report.longreprtext
        if outcome is None:
            if previous is not None:
                self.c.outcomes[report.nodeid] = dataclasses.replace(previous, duration=duration)
            return
        self.c.outcomes[report.nodeid] = TestOutcome(report.nodeid, outcome, doc, reason, details, duration)  # type: ignore[arg-type]


_QUALIFIED_ERROR = re.compile(r"^(?:[A-Za-z_]\w*\.)+(?=[A-Z]\w*(?:Error|Exception|Failed)\b)")


def _first_line(text: str) -> str:
    """The line a researcher reads first: the exception's message (``E   ...`` in pytest's report),
    its class unqualified (``VerdictError: ...``)."""
    lines = text.splitlines()
    errors = [line[4:].strip() for line in lines if line.startswith("E   ") and line[4:].strip()]
    # syrupy's first line says only that the snapshot differs; its next line says which and how.
    if len(errors) > 1 and re.match(r"(AssertionError: )?assert \[[-+] (received|snapshot)\] == ", errors[0]):
        errors = errors[1:]
    found = errors[0] if errors else None
    if found is None:
        found = next((line.strip() for line in reversed(lines) if line.strip()), "")
    return _QUALIFIED_ERROR.sub("", found)[:300]


def _skip_reason(report: pytest.TestReport) -> str:
    longrepr = report.longrepr
    if isinstance(longrepr, tuple) and len(longrepr) == 3:
        return str(longrepr[2]).removeprefix("Skipped: ")
    return _first_line(str(longrepr))


def _versions() -> tuple[tuple[str, str], ...]:
    out = [("python", platform.python_version())]
    for dist in VERSIONED:
        try:
            out.append((dist, importlib.metadata.version(dist)))
        except importlib.metadata.PackageNotFoundError:
            continue
    return tuple(out)


def _run_info(config: pytest.Config) -> RunInfo:
    spec = config.stash.get(keys.MODEL_SPEC, None)
    model_id = config.stash.get(keys.MODEL_ID, None) or "(no model)"
    device = spec.device if spec is not None else ""
    lab = None
    try:
        from pytest_annotate.plugin.core import LAB

        lab = config.stash.get(LAB, None)
    except ImportError:  # pragma: no cover - the report plugin loaded without the main plugin's module
        pass
    if lab is not None:
        device = str(lab.device)
    elif spec is not None:
        device = f"{spec.device} (the model was not loaded: no test used it)"
    notes = []
    if getattr(config.option, "numprocesses", None):
        notes.append("pytest-xdist ran the tests in worker processes: their docstrings, recorded numbers and figures "
                     "are not in this report (verdicts and failures are). Run with -n0 for the full report.")
    if spec is not None and getattr(spec, "random_weights", False):
        notes.append("RANDOM WEIGHTS: a structural dry run; no verdict was judged (failed verdicts count as passed).")
    checkpoint = getattr(spec, "checkpoint", None)
    return RunInfo(
        model_id=model_id,
        step=checkpoint if checkpoint is not None else step_of(model_id),
        device=device,
        dtype=config.stash.get(keys.DTYPE, None) or (getattr(spec, "dtype", "") or ""),
        processing=getattr(spec, "processing", "") or "",
        date=datetime.now(UTC).isoformat(timespec="seconds"),
        versions=_versions(),
        baseline=config.getoption("annotate_snapshot_baseline", None) or None,
        command=shlex.join(["pytest", *config.invocation_params.args]),
        notes=tuple(notes),
    )


@pytest.hookimpl(trylast=True)  # after the snapshot plugin has recorded the baseline's missing snapshots
def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    config = session.config
    collected = config.stash.get(_COLLECTED, None)
    if collected is None:
        return
    from pytest_annotate.plugin.snapshots import drift_records

    order = {nodeid: i for i, nodeid in enumerate(collected.docs)}
    outcomes = sorted(collected.outcomes.values(), key=lambda o: order.get(o.nodeid, len(order)))
    outcomes = [o if o.doc else dataclasses.replace(o, doc=collected.docs.get(o.nodeid, "")) for o in outcomes]
    empty: list[tuple[str, Any]] = []
    stashed = config.stash.get(keys.RECORDED_RESULTS, empty)
    recorded = list(stashed)
    run = summarize_run(_run_info(config), outcomes=outcomes, recorded=recorded, drift=drift_records(config))
    report = build_report(run, results=recorded, history=collected.history)
    try:
        collected.written = write_report(report, collected.paths.html)
    except OSError as e:
        collected.error = f"could not write the report {collected.paths.html}: {e}"
        if session.exitstatus == pytest.ExitCode.OK:
            session.exitstatus = pytest.ExitCode.INTERNAL_ERROR
        return
    collected.n_plots = len(report.plots)
    collected.n_runs = len(report.runs)


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    collected = config.stash.get(_COLLECTED, None)
    if collected is None:
        return
    if collected.error:
        terminalreporter.write_line(f"pytest-annotate: {collected.error}", red=True)
        return
    paths = collected.written
    if paths is None:
        return
    runs = f", trajectories over {collected.n_runs} runs" if collected.n_runs > 1 else ""
    terminalreporter.write_line(
        f"pytest-annotate report: {_shown(paths.html)} ({collected.n_plots} figure{'s' * (collected.n_plots != 1)}"
        f"{runs}); Markdown {_shown(paths.markdown)}; summary {_shown(paths.json)}"
    )


def _shown(path: Path) -> str:
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)
