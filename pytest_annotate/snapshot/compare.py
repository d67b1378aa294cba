"""Compare two snapshots field by field, each number within its own band.

Why our own comparison: syrupy decides a match by comparing the serialized *strings*
(``SnapshotComparator.matches`` is ``serialized == snapshot``), so any float that moves in
its last digit fails the snapshot, and users end up rounding by hand before asserting
(syrupy #913, #438). A model's logits move in their last digits between machines, BLAS
builds and thread counts, so we parse both sides back into structure and compare each
leaf with the band of its kind (:mod:`pytest_annotate.snapshot.tolerance`).

>>> from pytest_annotate.snapshot.serialize import flatten
>>> c = compare(flatten({"prob": 0.700, "rank": 0}), flatten({"prob": 0.7015, "rank": 0}))
>>> c.ok, c.n_compared, c.n_failed
(True, 2, 0)
>>> c = compare(flatten({"prob": 0.700, "rank": 0}), flatten({"prob": 0.71, "rank": 1}))
>>> [(f.path, f.status) for f in c.failures]
[('prob', 'changed'), ('rank', 'changed')]
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from statistics import fmean
from typing import Any, Literal, TypeAlias

from pytest_annotate.snapshot.serialize import (
    ArrayValue,
    Leaf,
    PathPart,
    expand,
    field_name,
    render_path,
)
from pytest_annotate.snapshot.textformat import SnapshotDocument
from pytest_annotate.snapshot.tolerance import EXACT_KINDS, Band, Kind, Tolerance

#: ``same``: equal; ``within``: differs inside its band; ``changed``: beyond its band;
#: ``added``: only in the new run; ``removed``: only in the snapshot.
FieldStatus: TypeAlias = Literal["same", "within", "changed", "added", "removed"]


class _Absent:
    """Marks the side of a field that does not exist."""

    def __repr__(self) -> str:
        return "(absent)"


ABSENT: Any = _Absent()


@dataclass(frozen=True)
class FieldDiff:
    """One compared scalar: where, of which kind, both values, and the verdict.

    ``delta`` is ``new - old`` and ``rel`` is ``|delta| / max(|old|, |new|)`` for numbers
    (``None`` otherwise); ``allowed`` is the widest ``|delta|`` the band accepts at these
    values; ``line`` is the line of the field in the snapshot file.
    """

    path: str
    kind: Kind
    old: Any
    new: Any
    status: FieldStatus
    band: Band
    delta: float | None = None
    rel: float | None = None
    allowed: float | None = None
    line: int | None = None

    @property
    def ok(self) -> bool:
        return self.status in ("same", "within")

    @property
    def is_numeric(self) -> bool:
        return self.delta is not None


@dataclass(frozen=True)
class Comparison:
    """All fields of one snapshot comparison, and the statistics of the numeric ones."""

    fields: tuple[FieldDiff, ...]
    factor: float = 1.0
    dtypes: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return all(f.ok for f in self.fields)

    @property
    def failures(self) -> tuple[FieldDiff, ...]:
        return tuple(f for f in self.fields if not f.ok)

    @property
    def n_compared(self) -> int:
        return len(self.fields)

    @property
    def n_failed(self) -> int:
        return len(self.failures)

    @property
    def numeric(self) -> tuple[FieldDiff, ...]:
        """The fields compared within a band (numbers of kinds prob, logit, float): the
        error statistics are taken over these, not over ranks and ids."""
        return tuple(f for f in self.fields if f.is_numeric and f.kind not in EXACT_KINDS)

    def _finite(self, attr: str) -> list[float]:
        values = (getattr(f, attr) for f in self.numeric)
        return [abs(v) for v in values if v is not None and math.isfinite(v)]

    @property
    def max_abs_error(self) -> float:
        return max(self._finite("delta"), default=0.0)

    @property
    def mean_abs_error(self) -> float:
        values = self._finite("delta")
        return fmean(values) if values else 0.0

    @property
    def max_rel_error(self) -> float:
        return max(self._finite("rel"), default=0.0)

    @property
    def mean_rel_error(self) -> float:
        values = self._finite("rel")
        return fmean(values) if values else 0.0

    @property
    def verdicts(self) -> tuple[FieldDiff, ...]:
        """The verdict fields (``passed``, ``verdict``) present on both sides."""
        return tuple(f for f in self.fields if f.kind == "verdict" and f.status not in ("added", "removed"))

    @property
    def verdict_flipped(self) -> bool:
        return any(not f.ok for f in self.verdicts)


def _is_number(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def same(a: Any, b: Any) -> bool:
    """Exact equality that keeps ``True`` apart from ``1`` and lets NaN equal NaN.

    >>> same(True, 1), same(float("nan"), float("nan")), same(2, 2.0)
    (False, True, True)
    """
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    if _is_number(a) and _is_number(b):
        return bool(a == b)
    return type(a) is type(b) and bool(a == b)


_Scalars: TypeAlias = dict[tuple[PathPart, ...], tuple[Any, Kind, str, int | None]]


def _scalars(leaves: Sequence[Leaf], lines: Sequence[int]) -> _Scalars:
    """Expand leaves into ``path -> (value, kind, name, line)``; array elements share
    their array's kind and name, and an array's shape is compared exactly."""
    out: _Scalars = {}
    for i, leaf in enumerate(leaves):
        line = lines[i] if i < len(lines) else None
        kind, name = leaf.kind, leaf.name
        is_array = isinstance(leaf.value, ArrayValue)
        for path, value in expand(leaf):
            if is_array and path == (*leaf.path, "shape"):
                out[path] = (value, "exact", name, line)
            else:
                out[path] = (value, kind, name if is_array else field_name(path), line)
    return out


def compare(
    old: SnapshotDocument | Sequence[Leaf],
    new: SnapshotDocument | Sequence[Leaf],
    tolerance: Tolerance | None = None,
) -> Comparison:
    """Compare the snapshot ``old`` with the new run ``new``.

    When documents are given, the bands are widened for the dtypes in both headers (a
    snapshot recorded in bfloat16 is as uncertain as a bfloat16 run).
    """
    tolerance = tolerance or Tolerance.default()
    dtypes: list[str] = list(tolerance.dtypes)
    for doc in (old, new):
        if isinstance(doc, SnapshotDocument) and doc.header.dtype:
            dtypes.append(doc.header.dtype)
    tolerance = tolerance.for_dtype(*dict.fromkeys(dtypes))
    old_map = _as_scalars(old)
    new_map = _as_scalars(new)
    fields: list[FieldDiff] = []
    for path, (new_value, kind, name, _) in new_map.items():
        band = tolerance.band(render_path(path), kind, name)
        if path not in old_map:
            fields.append(FieldDiff(render_path(path), kind, ABSENT, new_value, "added", band))
            continue
        old_value, _, _, line = old_map[path]
        fields.append(_compare_one(render_path(path), kind, band, old_value, new_value, line))
    for path, (old_value, kind, name, line) in old_map.items():
        if path not in new_map:
            band = tolerance.band(render_path(path), kind, name)
            fields.append(FieldDiff(render_path(path), kind, old_value, ABSENT, "removed", band, line=line))
    return Comparison(tuple(fields), tolerance.factor, tolerance.dtypes)


def _as_scalars(doc: SnapshotDocument | Sequence[Leaf]) -> _Scalars:
    if isinstance(doc, SnapshotDocument):
        return _scalars(doc.leaves, doc.line_numbers)
    return _scalars(doc, ())


def _compare_one(path: str, kind: Kind, band: Band, old: Any, new: Any, line: int | None) -> FieldDiff:
    if _is_number(old) and _is_number(new):
        delta = float(new) - float(old) if not (math.isinf(old) or math.isinf(new)) else math.nan
        scale = max(abs(old), abs(new))
        rel = abs(delta) / scale if scale and math.isfinite(scale) else 0.0
        if same(old, new):
            status: FieldStatus = "same"
        elif band.is_exact and kind in EXACT_KINDS:
            status = "changed"
        else:
            status = "within" if band.allows(old, new) else "changed"
        allowed = band.allowed(old, new) if math.isfinite(scale) else 0.0
        return FieldDiff(path, kind, old, new, status, band, delta, rel, allowed, line)
    status = "same" if same(old, new) else "changed"
    return FieldDiff(path, kind, old, new, status, band, line=line)


def values_close(a: Any, b: Any, tolerance: Tolerance | None = None) -> bool:
    """Whether two values (results, dicts, arrays...) agree field by field within the snapshot bands.

    This is what ``Result.__eq__`` means: the same structure, ranks and ids exactly equal,
    every number within the band of its kind.

    >>> values_close({"prob": 0.5001, "rank": 3}, {"prob": 0.5, "rank": 3})
    True
    >>> values_close({"rank": 3}, {"rank": 4})
    False
    """
    from pytest_annotate.snapshot.serialize import flatten

    return compare(flatten(a), flatten(b), tolerance).ok
