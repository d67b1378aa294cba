"""The report as one self-contained HTML page: inline CSS, figures as ``data:`` PNGs, no scripts,
nothing fetched from the network (it opens from a CI artifact on a machine with no access)."""

from __future__ import annotations

import html
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

from pytest_annotate.report.summary import (
    Finding,
    Measurement,
    RunSummary,
    format_number,
)
from pytest_annotate.snapshot.drift import (
    DRIFT_STATUSES,
    describe_key_numbers,
    summary_line,
)

if TYPE_CHECKING:
    from pytest_annotate.report.build import Report
    from pytest_annotate.report.plots import Plot

_DRIFT_ORDER = {"flipped": 0, "weakened": 1, "missing": 2, "new": 3, "held": 4}

CSS = """
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "DejaVu Sans", sans-serif; color: #1c2833;
       margin: 0 auto; max-width: 1180px; padding: 0 24px 48px; background: #fff; }
h1 { font-size: 22px; margin: 22px 0 2px; }
h2 { font-size: 17px; margin: 30px 0 8px; padding-bottom: 4px; border-bottom: 1px solid #d5d8dc; }
h3 { font-size: 14px; margin: 18px 0 6px; }
.sub { color: #566573; margin: 0 0 8px; }
table { border-collapse: collapse; width: 100%; margin: 6px 0 10px; }
th, td { text-align: left; vertical-align: top; padding: 5px 8px; border-bottom: 1px solid #eaeded; }
th { background: #f4f6f7; font-weight: 600; font-size: 13px; }
table.kv { width: auto; } table.kv th { background: none; color: #566573; font-weight: 500; padding-right: 18px;
                                       white-space: nowrap; }
code, pre, .mono { font-family: ui-monospace, "SFMono-Regular", Menlo, Consolas, "DejaVu Sans Mono", monospace;
                   font-size: 12.5px; }
pre { background: #f8f9f9; border: 1px solid #eaeded; padding: 8px 10px; overflow-x: auto; white-space: pre; }
.badge { display: inline-block; min-width: 62px; text-align: center; padding: 1px 7px; border-radius: 10px;
         font-size: 12px; font-weight: 600; color: #fff; }
.passed, .held, .xfailed { background: #1e8449; } .failed, .flipped, .error, .xpassed { background: #c0392b; }
.skipped, .missing { background: #7f8c8d; } .weakened { background: #d68910; } .new { background: #2e86c1; }
.none { background: #eaeded; color: #566573; }
.test { font-weight: 600; overflow-wrap: anywhere; } .path { color: #566573; font-size: 12px; overflow-wrap: anywhere; }
table.findings { table-layout: fixed; } table.findings td { overflow-wrap: anywhere; }
.nums { margin: 0; padding-left: 16px; } .nums li { margin: 0; }
.primary { font-weight: 600; } .miss { color: #c0392b; font-weight: 600; } .unsure { color: #b9770e; font-weight: 600; }
.reason { color: #922b21; font-size: 12.5px; }
figure { margin: 14px 0 22px; } figure img { max-width: 100%; height: auto; border: 1px solid #eaeded; }
figcaption { color: #566573; font-size: 12.5px; margin-top: 4px; }
details { margin: 6px 0; } summary { cursor: pointer; font-weight: 600; }
td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
td.cell { text-align: center; padding: 4px 3px; } td.cell .badge { min-width: 0; font-size: 11px; padding: 1px 5px; }
.scroll { overflow-x: auto; }
footer { margin-top: 40px; color: #808b96; font-size: 12px; }
"""


def _e(text: object) -> str:
    return html.escape(str(text), quote=True)


def _badge(status: str | None) -> str:
    if status is None:
        return '<span class="badge none">–</span>'
    return f'<span class="badge {_e(status)}">{_e(status)}</span>'


def _anchor(index: int) -> str:
    return f"finding-{index}"


def render_html(report: Report) -> str:
    """The whole page."""
    run = report.run
    info = run.info
    title = f"pytest-annotate report: {info.model_id}"
    n_earlier = len(report.history)
    parts = [
        "<!doctype html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{_e(title)}</title><style>{CSS}</style></head><body>",
        f"<h1>{_e(title)}</h1>",
        f'<p class="sub">{_e(run.counts_line())}'
        + (f" · drift against {_e(info.baseline)}: {_e(summary_line(run.drift))}" if info.baseline else "")
        + (f" · compared with {n_earlier} earlier run{'s' * (n_earlier != 1)}" if n_earlier else "")
        + "</p>",
        _header(run),
        _findings(run.findings),
    ]
    if info.baseline:
        parts.append(_drift(run))
    if report.drift_matrix is not None:
        parts.append(_drift_matrix(report))
    trajectory = [p for p in report.plots if p.section == "trajectory"]
    if report.trajectories:
        parts.append(_trajectories(report, trajectory))
    for section, heading, blurb in (
        ("head roles", "Head roles", "Score of every head for each recorded head-role table (layer × head)."),
        ("ablations", "Ablations", "Per component: how much ablating it costs the answer."),
    ):
        plots = [p for p in report.plots if p.section == section]
        if plots:
            parts.append(_plots(section, heading, blurb, plots, run.findings))
    parts.append(_details(run.findings))
    parts.append(
        "<footer>Written by pytest-annotate. This page is self-contained: figures are embedded, and it loads "
        "nothing from the network. The same run as Markdown and as a JSON summary lie beside it.</footer>"
    )
    parts.append("</body></html>\n")
    return "\n".join(parts)


def _header(run: RunSummary) -> str:
    info = run.info
    rows: list[tuple[str, str]] = [("model", info.model_id)]
    if info.step is not None:
        rows.append(("checkpoint step", str(info.step)))
    rows += [("device", info.device), ("dtype", info.dtype), ("processing", info.processing)]
    if info.baseline:
        rows.append(("snapshot baseline", info.baseline))
    rows.append(("date", info.date))
    if info.versions:
        rows.append(("versions", ", ".join(f"{k} {v}" for k, v in info.versions)))
    if info.command:
        rows.append(("command", info.command))
    body = "".join(f"<tr><th>{_e(k)}</th><td>{_e(v) if k != 'command' else f'<code>{_e(v)}</code>'}</td></tr>"
                   for k, v in rows if v)
    notes = "".join(f'<p class="reason">{_e(n)}</p>' for n in info.notes)
    return f'<section id="run"><h2>Run</h2><table class="kv">{body}</table>{notes}</section>'


def _measurement_item(m: Measurement) -> str:
    cls = "miss" if m.holds is False else ("primary" if m.primary else "")
    return f'<li class="{cls}">{_e(m.text)}</li>' if cls else f"<li>{_e(m.text)}</li>"


def _split_nodeid(nodeid: str) -> tuple[str, str]:
    path, sep, name = nodeid.partition("::")
    return (name, path) if sep else (nodeid, "")


def _test_cell(nodeid: str) -> str:
    name, path = _split_nodeid(nodeid)
    return f'<div class="test">{_e(name)}</div><div class="path">{_e(path)}</div>'


def _findings(findings: Sequence[Finding]) -> str:
    if not findings:
        return '<section id="findings"><h2>Findings and verdicts</h2><p>No test ran.</p></section>'
    rows = []
    for i, f in enumerate(findings):
        nums = "".join(_measurement_item(m) for m in f.key_numbers)
        heads = "".join(f"<div class='path'>{_e(r.headline)}</div>" for r in f.results if not r.measurements)
        reason = f'<div class="reason">{_e(f.reason)}</div>' if f.reason else ""
        more = f' <a href="#{_anchor(i)}">details</a>' if f.details or f.results else ""
        rows.append(
            f"<tr><td>{_badge(f.outcome)}</td>"
            f"<td>{_test_cell(f.nodeid)}</td>"
            f"<td>{_e(f.doc) if f.doc else '<span class=path>(no docstring)</span>'}{reason}{more}</td>"
            f'<td><ul class="nums">{nums}</ul>{heads}</td></tr>'
        )
    return (
        '<section id="findings"><h2>Findings and verdicts</h2>'
        "<table class='findings'><colgroup><col style='width:88px'><col style='width:26%'><col style='width:34%'>"
        "<col></colgroup><thead><tr><th>verdict</th><th>test</th><th>finding (docstring)</th>"
        "<th>key numbers (bold: what the finding is about; red: a claim that misses)</th></tr></thead>"
        f"<tbody>{''.join(rows)}</tbody></table></section>"
    )


def _drift(run: RunSummary) -> str:
    info = run.info
    records = sorted(run.drift, key=lambda r: (_DRIFT_ORDER[r.status], r.nodeid, r.snapshot_name))
    head = f'<section id="drift"><h2>Drift: {_e(info.model_id)} against baseline {_e(info.baseline)}</h2>'
    if not records:
        return head + "<p>No snapshot assertion ran.</p></section>"
    rows = []
    for r in records:
        beyond = f"{r.n_failed} of {r.n_compared}" if r.n_compared else "–"
        worst = format_number(r.max_abs_error) if r.n_failed else "–"
        rows.append(
            f"<tr><td>{_badge(r.status)}</td><td>{_test_cell(r.label)}</td>"
            f"<td class='mono'>{_e(describe_key_numbers(r.key_numbers))}</td>"
            f"<td class='num'>{_e(beyond)}</td><td class='num'>{_e(worst)}</td></tr>"
        )
    legend = ("held: every field within its band; weakened: same verdict, numbers moved beyond their bands; "
              "flipped: a verdict changed; new: no baseline snapshot; missing: no assertion of this run produced it.")
    return (
        head + f"<p>{_e(summary_line(run.drift))}. <span class='path'>{_e(legend)}</span></p>"
        "<table><thead><tr><th>status</th><th>snapshot</th><th>baseline → this run (* beyond tolerance)</th>"
        "<th>fields beyond tolerance</th><th>max |Δ|</th></tr></thead>"
        f"<tbody>{''.join(rows)}</tbody></table></section>"
    )


def _drift_matrix(report: Report) -> str:
    m = report.drift_matrix
    assert m is not None
    baselines = sorted(set(m.baselines))
    cols = "".join(f"<th>{_e(c)}</th>" for c in m.columns)
    rows = "".join(
        f"<tr><td>{_test_cell(label)}</td>" + "".join(f"<td class='cell'>{_badge(s)}</td>" for s in cells) + "</tr>"
        for label, cells in m.rows
    )
    counts = []
    for j, column in enumerate(m.columns):
        statuses = [cells[j] for _, cells in m.rows if cells[j] is not None]
        tally = ", ".join(f"{statuses.count(s)} {s}" for s in DRIFT_STATUSES if statuses.count(s))
        counts.append(f"{column}: {tally}")
    return (
        '<section id="drift-runs"><h2>Drift across runs</h2>'
        f"<p>Each snapshot's status at each run, against {_e(', '.join(baselines))}.</p>"
        f"<div class='scroll'><table><thead><tr><th>snapshot</th>{cols}</tr></thead><tbody>{rows}</tbody></table></div>"
        f"<p class='path'>{_e(' · '.join(counts))}</p></section>"
    )


#: Trajectory cells by a point's status (see :attr:`~pytest_annotate.report.trajectory.TrajectoryPoint.status`).
_TRAJECTORY_CLASS = {"fails": " miss", "inconclusive": " unsure"}


def _trajectories(report: Report, plots: Sequence[Plot]) -> str:
    runs = report.runs
    labels = [r.info.label for r in runs]
    header = "".join(f"<th>{_e(label)}</th>" for label in labels)
    rows = []
    for t in report.trajectories:
        cells = ["<td class='num'>–</td>" if p is None else
                 f"<td class='num{_TRAJECTORY_CLASS.get(p.status or '', '')}'>{_e(p.text)}</td>"
                 for p in t.at(labels)]
        rows.append(f"<tr><td><div class='test'>{_e(t.test_name)}</div><div class='path'>{_e(t.name)}</div></td>"
                    f"<td>{_e(t.bound) or '–'}</td>{''.join(cells)}</tr>")
    figures = "".join(_figure(p) for p in plots)
    return (
        '<section id="trajectory"><h2>Findings across checkpoints</h2>'
        f"<p>Each finding's key number in {len(runs)} runs (this one and the summaries given with "
        "--annotate-report-history). Red: the claim misses at that run"
        + ("; amber: inconclusive. A claim over a family reads value [low, high] verdict (items): the interval "
           "its verdict rests on, and how many items." if any(t.has_intervals for t in report.trajectories) else ".")
        + "</p>"
        f"{figures}<div class='scroll'><table><thead><tr><th>finding</th><th>claim</th>{header}</tr></thead>"
        f"<tbody>{''.join(rows)}</tbody></table></div></section>"
    )


def _figure(plot: Plot) -> str:
    return (f'<figure><img alt="{_e(plot.title)}" src="{plot.data_uri}">'
            f"<figcaption>{_e(plot.caption)}</figcaption></figure>")


def _plots(section: str, heading: str, blurb: str, plots: Iterable[Plot], findings: Sequence[Finding]) -> str:
    index = {f.nodeid: i for i, f in enumerate(findings)}
    parts = [f'<section id="{_e(section.replace(" ", "-"))}"><h2>{_e(heading)}</h2><p>{_e(blurb)}</p>']
    for plot in plots:
        where = ""
        if plot.nodeid:
            name = _split_nodeid(plot.nodeid)[0]
            link = f'<a href="#{_anchor(index[plot.nodeid])}">{_e(name)}</a>' if plot.nodeid in index else _e(name)
            where = f"<h3>{link}</h3>"
        parts.append(where + _figure(plot))
    parts.append("</section>")
    return "".join(parts)


def _details(findings: Sequence[Finding]) -> str:
    parts = [('<section id="details"><h2>Details</h2>'
             "<p>Each test's failure, and the full report of every result it recorded.</p>")]
    any_details = False
    for i, f in enumerate(findings):
        if not (f.details or f.results):
            continue
        any_details = True
        open_attr = " open" if f.outcome in ("failed", "error") else ""
        inner = []
        if f.details:
            inner.append(f"<h3>failure</h3><pre>{_e(f.details)}</pre>")
        for r in f.results:
            verdict = "" if r.passed is None else (" (passed)" if r.passed else " (FAILED)")
            inner.append(f"<h3>{_e(r.kind)}{verdict}</h3><pre>{_e(r.report)}</pre>")
        parts.append(f'<details id="{_anchor(i)}"{open_attr}><summary>{_badge(f.outcome)} '
                     f"<span class='mono'>{_e(f.nodeid)}</span></summary>{''.join(inner)}</details>")
    if not any_details:
        return ""
    parts.append("</section>")
    return "".join(parts)
