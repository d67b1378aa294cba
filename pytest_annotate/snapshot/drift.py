"""Drift between this run and another model's (or checkpoint's) snapshots.

With ``--snapshot-baseline MODEL-ID`` every snapshot assertion compares with
``snapshots/<MODEL-ID>/…`` and, instead of failing, records a :class:`DriftRecord`:

``held``      every field within its band;
``weakened``  the verdict (``passed``/``verdict``) is the same, or there is none, but
              numbers moved beyond their bands;
``flipped``   a verdict changed;
``new``       the baseline has no such snapshot;
``missing``   the baseline has a snapshot that no assertion of this run produced.

Records are plain frozen values, so a report writer can use them without pytest.

>>> from pytest_annotate.snapshot.compare import compare
>>> from pytest_annotate.snapshot.serialize import flatten
>>> old, new = flatten({"passed": True, "prob": 0.9}), flatten({"passed": True, "prob": 0.5})
>>> classify(compare(old, new))
'weakened'
>>> classify(compare(old, flatten({"passed": False, "prob": 0.1})))
'flipped'
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal, TypeAlias, get_args

from pytest_annotate.snapshot.compare import Comparison, FieldDiff
from pytest_annotate.snapshot.report import format_cell, table
from pytest_annotate.snapshot.serialize import Leaf, Scalar
from pytest_annotate.snapshot.tolerance import kind_for_name

DriftStatus: TypeAlias = Literal["held", "weakened", "flipped", "new", "missing"]
DRIFT_STATUSES: tuple[DriftStatus, ...] = get_args(DriftStatus)
#: Kinds shown side by side in the drift table, in this order.
KEY_KINDS = ("verdict", "exact", "prob", "logit")
MAX_KEY_NUMBERS = 5


@dataclass(frozen=True)
class KeyNumber:
    """One headline field, baseline and current side by side (``None`` where absent)."""

    path: str
    kind: str
    baseline: Scalar
    current: Scalar
    ok: bool = True


@dataclass(frozen=True)
class DriftRecord:
    """The drift of one snapshot between the baseline model and this run's model."""

    nodeid: str
    snapshot_name: str
    status: DriftStatus
    model_id: str
    baseline_model_id: str
    #: the baseline snapshot file, relative to the rootdir
    baseline_path: str
    key_numbers: tuple[KeyNumber, ...] = ()
    #: the fields beyond tolerance (empty unless weakened or flipped)
    changed: tuple[FieldDiff, ...] = ()
    n_compared: int = 0
    n_failed: int = 0
    max_abs_error: float = 0.0
    max_rel_error: float = 0.0

    @property
    def label(self) -> str:
        """The test, plus the snapshot's suffix when a test has several."""
        test_name = self.nodeid.rsplit("::", 1)[-1]
        suffix = self.snapshot_name.split(test_name, 1)[-1] if test_name in self.snapshot_name else ""
        return f"{self.nodeid}{' ' + suffix if suffix else ''}"


def classify(comparison: Comparison) -> DriftStatus:
    """``held``, ``weakened`` or ``flipped`` for a comparison with the baseline."""
    if comparison.verdict_flipped:
        return "flipped"
    return "held" if comparison.ok else "weakened"


#: Exact fields shown although their name implies no kind: ``n``, the number of items a family
#: claim's interval rests on (a verdict that moved because the family grew should say so).
KEY_EXACT_NAMES = frozenset({"n"})


def _is_key(kind: str, name: str, value: Any) -> bool:
    if kind == "exact":
        # Only the rank-like exact fields (rank, token_id...), not every int or string.
        named = kind_for_name(name) == "exact" or name in KEY_EXACT_NAMES
        return named and isinstance(value, int) and not isinstance(value, bool)
    if kind == "verdict":
        # ``verdict`` is a word (holds / inconclusive / fails) for claims over families
        return isinstance(value, (bool, str))
    return kind in KEY_KINDS and not isinstance(value, (str, type(None)))


def _drop_derived(items: list[Any], path: Any) -> list[Any]:
    """Without ``passed`` where a ``verdict`` beside it says more (holds / inconclusive / fails)."""
    paths = {path(item) for item in items}

    def derived(item: Any) -> bool:
        p = path(item)
        return p.rsplit(".", 1)[-1] == "passed" and (p[: -len("passed")] + "verdict") in paths

    return [item for item in items if not derived(item)]


def key_numbers_from_comparison(comparison: Comparison) -> tuple[KeyNumber, ...]:
    """The headline fields of a comparison: verdicts, ranks, probabilities, logits,
    shallowest first."""
    picked = [
        f
        for f in comparison.fields
        if _is_key(f.kind, f.path.rsplit(".", 1)[-1], f.new if f.status != "removed" else f.old)
    ]
    picked = _drop_derived(picked, lambda f: f.path)
    headline = _headline(picked, lambda f: (f.kind, f.path))
    return tuple(KeyNumber(f.path, f.kind, _plain(f.old, f.kind), _plain(f.new, f.kind), f.ok) for f in headline)


def key_numbers_from_leaves(leaves: Sequence[Leaf], *, baseline: bool) -> tuple[KeyNumber, ...]:
    """The headline fields of a snapshot seen on one side only (``new``/``missing``)."""
    picked = [leaf for leaf in leaves if _is_key(leaf.kind, leaf.name, leaf.value)]
    picked = _drop_derived(picked, lambda leaf: leaf.path_str)
    out = []
    for leaf in _headline(picked, lambda leaf: (leaf.kind, leaf.path_str)):
        value = _plain(leaf.value, leaf.kind)
        out.append(KeyNumber(leaf.path_str, leaf.kind, value if baseline else None, None if baseline else value))
    return tuple(out)


def _headline(items: list[Any], key: Any) -> list[Any]:
    def order(item: Any) -> tuple[int, int, int]:
        kind, path = key(item)
        return (path.count("."), KEY_KINDS.index(kind), items.index(item))

    return sorted(items, key=order)[:MAX_KEY_NUMBERS]


def _plain(value: Any, kind: str = "") -> Scalar:
    if kind == "verdict" and isinstance(value, str):
        return value
    return value if isinstance(value, (int, float, bool)) else None


def record_from_comparison(
    comparison: Comparison,
    *,
    nodeid: str,
    snapshot_name: str,
    model_id: str,
    baseline_model_id: str,
    baseline_path: str,
) -> DriftRecord:
    """A :class:`DriftRecord` for a snapshot found on both sides."""
    return DriftRecord(
        nodeid=nodeid,
        snapshot_name=snapshot_name,
        status=classify(comparison),
        model_id=model_id,
        baseline_model_id=baseline_model_id,
        baseline_path=baseline_path,
        key_numbers=key_numbers_from_comparison(comparison),
        changed=comparison.failures,
        n_compared=comparison.n_compared,
        n_failed=comparison.n_failed,
        max_abs_error=comparison.max_abs_error,
        max_rel_error=comparison.max_rel_error,
    )


def _number(value: Scalar) -> str:
    if value is None:
        return "–"
    if isinstance(value, str):  # a family claim's verdict word
        return value
    if isinstance(value, float):
        return f"{value:.4g}"
    return format_cell(value)


def describe_key_numbers(numbers: Sequence[KeyNumber]) -> str:
    """``rank 0 → 0 · prob 0.7044 → 0.6512*``; ``*`` marks a field beyond its band.

    >>> describe_key_numbers([KeyNumber("prob", "prob", 0.5, 0.25, ok=False)])
    'prob 0.5 → 0.25*'
    """
    return " · ".join(
        f"{n.path} {_number(n.baseline)} → {_number(n.current)}{'' if n.ok else '*'}" for n in numbers
    )


def summary_line(records: Sequence[DriftRecord]) -> str:
    """``4 snapshots: 2 held, 1 weakened, 1 flipped, 0 new, 0 missing``."""
    counts = Counter(r.status for r in records)
    parts = ", ".join(f"{counts.get(s, 0)} {s}" for s in DRIFT_STATUSES)
    return f"{len(records)} snapshot{'s' if len(records) != 1 else ''}: {parts}"


def drift_table(records: Sequence[DriftRecord]) -> list[str]:
    """The drift table printed in the terminal summary, worst first.

    >>> rec = DriftRecord("t.py::test_a", "test_a", "flipped", "m2", "m1", "snapshots/m1/t/test_a.snap",
    ...                   (KeyNumber("passed", "verdict", True, False, ok=False),))
    >>> print("\\n".join(drift_table([rec])))
      status   snapshot      baseline → this run (* beyond tolerance)
      flipped  t.py::test_a  passed True → False*
    1 snapshot: 0 held, 0 weakened, 1 flipped, 0 new, 0 missing
    """
    order = {"flipped": 0, "weakened": 1, "missing": 2, "new": 3, "held": 4}
    rows = [["status", "snapshot", "baseline → this run (* beyond tolerance)"]]
    for r in sorted(records, key=lambda r: (order[r.status], r.nodeid, r.snapshot_name)):
        rows.append([r.status, r.label, describe_key_numbers(r.key_numbers)])
    return [*table(rows), summary_line(records)]
