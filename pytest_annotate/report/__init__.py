"""The run's report: findings and verdicts, drift, and plots, as HTML, Markdown and JSON.

``pytest --annotate-report out/report.html`` writes

* ``out/report.html``: one self-contained page (figures embedded as PNG, no network needed);
* ``out/report.md``: the same tables, for a CI job summary (``cat out/report.md >> $GITHUB_STEP_SUMMARY``);
* ``out/report.json``: the run's summary; give earlier runs' summaries with
  ``--annotate-report-history`` (files or a folder) and the report draws each finding's key number
  across checkpoints.

The plugin (:mod:`pytest_annotate.plugin.report`) only collects; everything here is plain functions
on values, one module each:

- :mod:`~pytest_annotate.report.summary`: the values (:class:`RunSummary`, :class:`Finding`,
  :class:`Measurement`...) and their JSON;
- :mod:`~pytest_annotate.report.measurements`: a result object → its key numbers;
- :mod:`~pytest_annotate.report.trajectory`: key numbers and drift statuses across runs;
- :mod:`~pytest_annotate.report.plots`: the figures (matplotlib, Agg canvas);
- :mod:`~pytest_annotate.report.html`, :mod:`~pytest_annotate.report.markdown`: the two renderings;
- :mod:`~pytest_annotate.report.build`: assembling and writing;
- :mod:`~pytest_annotate.report.recording`: :func:`record`, to add a measurement (a head-score table,
  a sweep) to the running test's entry.

From a notebook::

    scores = head_scores(lab, "induction")
    run = summarize_run(RunInfo(lab.model_id), recorded=[("induction heads", scores)])
    write_report(build_report(run, results=[("induction heads", scores)]), "induction.html")
"""

from pytest_annotate.report.build import (
    Report,
    ReportPaths,
    TestOutcome,
    build_report,
    check_report_path,
    report_paths,
    summarize_run,
    write_report,
)
from pytest_annotate.report.measurements import measurements_of, summarize_result
from pytest_annotate.report.recording import record
from pytest_annotate.report.summary import (
    SCHEMA,
    Finding,
    Measurement,
    ReportError,
    ResultSummary,
    RunInfo,
    RunSummary,
    first_sentence,
    load_summaries,
    step_of,
)
from pytest_annotate.report.trajectory import (
    DriftMatrix,
    Trajectory,
    drift_matrix,
    trajectories,
)

__all__ = [
    "SCHEMA",
    "DriftMatrix",
    "Finding",
    "Measurement",
    "Report",
    "ReportError",
    "ReportPaths",
    "ResultSummary",
    "RunInfo",
    "RunSummary",
    "TestOutcome",
    "Trajectory",
    "build_report",
    "check_report_path",
    "drift_matrix",
    "first_sentence",
    "load_summaries",
    "measurements_of",
    "record",
    "report_paths",
    "step_of",
    "summarize_result",
    "summarize_run",
    "trajectories",
    "write_report",
]
