"""The text a failing snapshot shows: a table of the fields that moved, then statistics
and what to do next (pytest-regressions' mismatch report is the model).

>>> from pytest_annotate.snapshot.compare import compare
>>> from pytest_annotate.snapshot.serialize import flatten
>>> c = compare(flatten({"rank": 0, "prob": 0.70, "logit": 18.0}), flatten({"rank": 2, "prob": 0.65, "logit": 18.001}))
>>> print("\\n".join(mismatch_lines(c)))
2 numeric fields compared, 1 beyond tolerance; |Δ| max 0.05, mean 0.0255; |Δ|/max(|x|) max 0.07143, mean 0.03574
2 of 3 fields differ beyond tolerance:
  field  snapshot  received  Δ      allowed
  rank   0         2         +2     exact
  prob   0.7       0.65      -0.05  ±0.002 (prob)
"""

from __future__ import annotations

import shlex
from collections.abc import Iterable, Sequence
from typing import Any

from pytest_annotate.snapshot.compare import ABSENT, Comparison, FieldDiff
from pytest_annotate.snapshot.serialize import Empty, render_value

#: Rows shown before the table is cut ("... and N more").
MAX_ROWS = 40
_MAX_CELL = 48


def format_cell(value: Any) -> str:
    """A value as shown in the table: full digits for numbers, long strings cut.

    >>> format_cell(0.7043651938438416), format_cell("x" * 60)[-4:], format_cell(ABSENT)
    ('0.7043651938438416', "xx…'", '(absent)')
    """
    if value is ABSENT:
        return "(absent)"
    if isinstance(value, (Empty, tuple)):
        return render_value(value)
    text = render_value(value) if value is None or isinstance(value, (str, int, float, bool)) else repr(value)
    if len(text) > _MAX_CELL:
        keep = _MAX_CELL - 2
        text = text[:keep] + "…" + text[-1] if text[-1] in "'\")]" else text[: keep + 1] + "…"
    return text


def _delta_cell(f: FieldDiff) -> str:
    if f.status == "added":
        return "new field"
    if f.status == "removed":
        return "field gone"
    if f.delta is None:
        return ""
    return f"{f.delta:+.4g}"


def _allowed_cell(f: FieldDiff) -> str:
    if f.band.is_exact:
        return "exact"
    if f.allowed is not None:
        return f"±{f.allowed:.4g} ({f.kind})"
    return f"{f.band.describe()} ({f.kind})"


def table(rows: Sequence[Sequence[str]], indent: str = "  ") -> list[str]:
    """Left-aligned columns separated by two spaces.

    >>> table([["a", "bb"], ["ccc", "d"]])
    ['  a    bb', '  ccc  d']
    """
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return [indent + "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip() for row in rows]


def field_rows(fields: Iterable[FieldDiff], limit: int = MAX_ROWS) -> list[str]:
    """The table of differing fields: old value, new value, Δ and the allowed band."""
    fields = list(fields)
    rows = [["field", "snapshot", "received", "Δ", "allowed"]]
    for f in fields[:limit]:
        rows.append([f.path, format_cell(f.old), format_cell(f.new), _delta_cell(f), _allowed_cell(f)])
    lines = table(rows)
    if len(fields) > limit:
        lines.append(f"  … and {len(fields) - limit} more")
    return lines


def stats_line(comparison: Comparison) -> str:
    """One line of error statistics over the banded numbers (pytest-regressions style:
    max and mean of the absolute and relative errors)."""
    numeric = comparison.numeric
    failed = sum(1 for f in numeric if not f.ok)
    head = f"{len(numeric)} numeric field{'s' if len(numeric) != 1 else ''} compared, {failed} beyond tolerance"
    if not numeric:
        return head
    return (
        f"{head}; |Δ| max {comparison.max_abs_error:.4g}, mean {comparison.mean_abs_error:.4g}; "
        f"|Δ|/max(|x|) max {comparison.max_rel_error:.4g}, mean {comparison.mean_rel_error:.4g}"
    )


def mismatch_lines(comparison: Comparison) -> list[str]:
    """The statistics, then the table of differing fields, then any band widening."""
    failures = comparison.failures
    lines = [stats_line(comparison), f"{len(failures)} of {comparison.n_compared} fields differ beyond tolerance:"]
    lines += field_rows(failures)
    if comparison.factor != 1.0:
        dtypes = ", ".join(comparison.dtypes)
        lines.append(f"Bands widened ×{comparison.factor:g} for {dtypes} (see pytest_annotate.snapshot.tolerance).")
    return lines


def failure_report(comparison: Comparison, *, location: str, model_id: str, nodeid: str) -> list[str]:
    """Everything a failed snapshot assertion shows. The essentials come first, because
    pytest cuts assertion explanations after 8 lines unless run with ``-vv``."""
    return [
        f"Snapshot of {model_id!r} differs: {location}",
        f"To accept the new values, run with --snapshot-update: pytest {shlex.quote(nodeid)} --snapshot-update",
        *mismatch_lines(comparison),
        "Or widen a band for this assertion: snapshot(tolerance={'<field, path glob or kind>': <width>}).",
    ]


def missing_report(*, location: str, model_id: str, nodeid: str) -> list[str]:
    """What an assertion without a snapshot file shows."""
    return [
        f"No snapshot of {model_id!r} for this assertion yet: {location}",
        f"Run with --snapshot-update to record it: pytest {shlex.quote(nodeid)} --snapshot-update",
    ]
