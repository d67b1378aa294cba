"""The report as Markdown, for CI job summaries (``cat report.md >> $GITHUB_STEP_SUMMARY``).

Same sections as the HTML page, as tables; figures are left to the HTML page (GitHub does not
show ``data:`` images in a job summary, which is also capped at 1 MiB), and so are the full
result reports: a failing finding's first line of error is here, its whole report there.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pytest_annotate.report.summary import Finding, RunSummary
from pytest_annotate.snapshot.drift import describe_key_numbers, summary_line

if TYPE_CHECKING:
    from pytest_annotate.report.build import Report

_DRIFT_ORDER = {"flipped": 0, "weakened": 1, "missing": 2, "new": 3, "held": 4}
#: Rows per table before it is cut (job summaries are capped at 1 MiB).
MAX_ROWS = 300
_LOUD = {"failed", "error", "xpassed", "flipped", "weakened"}


def _cell(text: object) -> str:
    """A table cell: pipes escaped, on one line."""
    return " ".join(str(text).replace("\\", "\\\\").replace("|", "\\|").split())


def _short(nodeid: str) -> str:
    """``behaviours/x/test_a.py::test_b`` → ``test_a.py::test_b`` (the table is read in a narrow panel)."""
    path, sep, name = nodeid.partition("::")
    return f"{path.rsplit('/', 1)[-1]}{sep}{name}"


def _status(status: str | None) -> str:
    if status is None:
        return "–"
    return f"**{status}**" if status in _LOUD else status


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    out = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    out += ["| " + " | ".join(row) + " |" for row in rows[:MAX_ROWS]]
    if len(rows) > MAX_ROWS:
        out.append(f"\n… and {len(rows) - MAX_ROWS} more rows (see the HTML report)")
    return out


def render_markdown(report: Report) -> str:
    run = report.run
    info = run.info
    lines = [f"## pytest-annotate report: {info.model_id}", ""]
    summary = run.counts_line()
    if info.baseline:
        summary += f" · drift against `{info.baseline}`: {summary_line(run.drift)}"
    lines += [summary, ""]
    lines += [*_header(run), ""]
    lines += [*_findings(run.findings), ""]
    if info.baseline:
        lines += [*_drift(run), ""]
    if report.drift_matrix is not None:
        m = report.drift_matrix
        lines += ["### Drift across runs", "", f"Against {', '.join(sorted(set(m.baselines)))}.", ""]
        lines += _table(["snapshot", *m.columns], [[f"`{_cell(_short(label))}`", *(_status(s) for s in cells)]
                                                    for label, cells in m.rows]) + [""]
    if report.trajectories:
        labels = [r.info.label for r in report.runs]
        rows = []
        for t in report.trajectories:
            cells = ["–" if p is None else f"**{_cell(p.text)}**✗" if p.status == "fails"
                     else f"_{_cell(p.text)}_?" if p.status == "inconclusive" else _cell(p.text)
                     for p in t.at(labels)]
            rows.append([f"`{_cell(t.test_name)}` {_cell(t.name)}", _cell(t.bound) or "–", *cells])
        families = ("; ?: inconclusive. A claim over a family reads value [low, high] verdict (items): the interval its "
                    "verdict rests on" if any(t.has_intervals for t in report.trajectories) else "")
        lines += ["### Findings across checkpoints", "",
                  (f"Key number per finding; ✗: the claim misses at that run{families}. The plot is in the HTML "
                   "report."), ""]
        lines += _table(["finding", "claim", *labels], rows) + [""]
    n_plots = len(report.plots)
    if n_plots:
        lines += [(f"_{n_plots} figure{'s' * (n_plots != 1)} (head-role heatmaps, ablation bars, trajectories) and "
                  "every result's full report are in the HTML report._"), ""]
    return "\n".join(lines).rstrip() + "\n"


def _header(run: RunSummary) -> list[str]:
    info = run.info
    parts = [f"model `{info.model_id}`"]
    if info.step is not None:
        parts.append(f"step {info.step}")
    parts += [f"{k} {v}" for k, v in (("device", info.device), ("dtype", info.dtype),
                                      ("processing", info.processing)) if v]
    lines = [" · ".join(parts)]
    if info.versions:
        lines.append(", ".join(f"{k} {v}" for k, v in info.versions) + (f" · {info.date}" if info.date else ""))
    lines += [f"> {n}" for n in info.notes]
    return [line + "  " if i < len(lines) - 1 else line for i, line in enumerate(lines)]  # "  ": Markdown line break


def _findings(findings: tuple[Finding, ...]) -> list[str]:
    lines = ["### Findings and verdicts", ""]
    if not findings:
        return [*lines, "No test ran."]
    rows = []
    for f in findings:
        nums = "; ".join(("**" + m.text + "**") if m.holds is False else m.text for m in f.key_numbers)
        doc = f.doc or "(no docstring)"
        if f.reason:
            doc += f" — {f.reason}"
        rows.append([_status(f.outcome), f"`{_cell(_short(f.nodeid))}`", _cell(doc), _cell(nums) or "–"])
    return lines + _table(["verdict", "test", "finding", "key numbers"], rows)


def _drift(run: RunSummary) -> list[str]:
    info = run.info
    lines = [f"### Drift: `{info.model_id}` against baseline `{info.baseline}`", ""]
    if not run.drift:
        return [*lines, "No snapshot assertion ran."]
    records = sorted(run.drift, key=lambda r: (_DRIFT_ORDER[r.status], r.nodeid, r.snapshot_name))
    rows = [[_status(r.status), f"`{_cell(_short(r.label))}`", _cell(describe_key_numbers(r.key_numbers)) or "–"]
            for r in records]
    header = ["status", "snapshot", "baseline → this run (* beyond tolerance)"]
    return [*lines, summary_line(run.drift), "", *_table(header, rows)]
