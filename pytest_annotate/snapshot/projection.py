"""Snapshot some of a result's numbers, under names and in an order of your choosing.

A published baseline keeps what its source reported, not everything a check measures: seed 001
published an answer's rank, logit and probability and the top-1 token, so its snapshot keeps those
five numbers and nothing else. A :class:`Projection` says once which fields a snapshot keeps, where
each comes from in the result, and under what name; :meth:`Projection.of` takes them from a result,
:meth:`Projection.record` builds the same record from numbers typed in (a source's table), so a
measured run and the published baseline serialize to the same lines.

>>> from types import SimpleNamespace as NS
>>> PUBLISHED = Projection("PublishedPrediction", "rank", "logit", "prob",
...                        top1_token="top_tokens.0.token", top1_prob="top_tokens.0.prob")
>>> result = NS(rank=1, logit=26.56, prob=0.0856, top_tokens=[NS(token=" D", prob=0.9096)])
>>> PUBLISHED.of(result)
PublishedPrediction(rank=1, logit=26.56, prob=0.0856, top1_token=' D', top1_prob=0.9096)
>>> PUBLISHED.of(result) == PUBLISHED.record(rank=1, logit=26.56, prob=0.0856, top1_token=" D", top1_prob=0.9096)
True

The record is a frozen dataclass named by the projection, so the snapshot header says
``# type: PublishedPrediction``. A field's tolerance kind is the one its name implies (``rank``,
``prob``, ``logit``, ``*_log_prob``...) or the one given in ``kinds=``: only the declaration counts, not
the metadata of the result field it is taken from, so :meth:`~Projection.of` and
:meth:`~Projection.record` always agree (give ``kinds={"score": "prob"}`` for a head score).

syrupy's own ``snapshot(include=paths(...))`` filter also works on our snapshots; it keeps fields
under their own names and in the result's order, and cannot take a value from a method
(``table.score("L3H3")``), which is what a published table usually needs.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeAlias

from pytest_annotate.snapshot.errors import SnapshotError
from pytest_annotate.snapshot.tolerance import Kind, check_kind

#: Where a projected field comes from: a dotted path into the value (attributes, mapping keys and
#: sequence indices: ``top_tokens.0.prob``), or a function of the value.
Source: TypeAlias = str | Callable[[Any], Any]


class ProjectionError(SnapshotError, ValueError):
    """A projection's declaration or its input is wrong (names what was wrong and what is valid)."""


def _step(obj: Any, part: str, path: str) -> Any:
    if isinstance(obj, Mapping):
        if part in obj:
            return obj[part]
    elif isinstance(obj, Sequence) and not isinstance(obj, str) and part.lstrip("-").isdigit():
        try:
            return obj[int(part)]
        except IndexError:
            raise ProjectionError(f"{path!r}: index {part} is out of range for a sequence of {len(obj)}") from None
    elif hasattr(obj, part):
        return getattr(obj, part)
    names = sorted(obj) if isinstance(obj, Mapping) else [f.name for f in dataclasses.fields(obj)] \
        if dataclasses.is_dataclass(obj) else sorted(n for n in dir(obj) if not n.startswith("_"))
    raise ProjectionError(f"{path!r}: {type(obj).__name__} has no {part!r}; it has {', '.join(map(str, names))}")


def lookup(value: Any, path: str) -> Any:
    """The value at a dotted ``path`` in ``value`` (attributes, mapping keys, sequence indices).

    >>> lookup({"top": [{"prob": 0.5}]}, "top.0.prob")
    0.5
    """
    obj = value
    for part in path.split("."):
        obj = _step(obj, part, path)
    return obj


@dataclasses.dataclass(frozen=True, init=False)
class Projection:
    """A named selection of a result's fields, for a snapshot (see the module docstring).

    ``Projection(name, "rank", "logit", top1_token="top_tokens.0.token", kinds={"logit": "logit"})``:
    positional names are kept under their own name (a dotted path is kept under its last part),
    keyword ones under the keyword, from a path or a function of the value; the record's fields
    come in that order. ``kinds`` sets a field's tolerance kind.
    """

    name: str
    sources: tuple[tuple[str, Source], ...]
    kinds: tuple[tuple[str, Kind], ...]

    def __init__(self, name: str, /, *paths: str, kinds: Mapping[str, str] | None = None, **renamed: Source):
        if not name.isidentifier():
            raise ProjectionError(f"a projection's name is a class name, like 'PublishedPrediction'; got {name!r}")
        sources = [(p.rsplit(".", 1)[-1], p) for p in paths] + list(renamed.items())
        names = [n for n, _ in sources]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ProjectionError(f"projection {name}: field {', '.join(dup)} is named twice")
        if not sources:
            raise ProjectionError(f"projection {name} keeps no field: name at least one")
        for n, src in sources:
            if not (isinstance(src, str) or callable(src)):
                raise ProjectionError(f"projection {name}: {n}= must be a dotted path or a function, "
                                      f"got {type(src).__name__}")
        unknown = sorted(set(kinds or {}) - set(names))
        if unknown:
            raise ProjectionError(f"projection {name}: kinds= names {', '.join(unknown)}, which it does not keep; "
                                  f"its fields are {', '.join(names)}")
        object.__setattr__(self, "name", name)
        object.__setattr__(self, "sources", tuple(sources))
        object.__setattr__(self, "kinds", tuple((n, check_kind(k)) for n, k in (kinds or {}).items()))

    @property
    def fields(self) -> tuple[str, ...]:
        """The record's field names, in order."""
        return tuple(n for n, _ in self.sources)

    def of(self, value: Any) -> Any:
        """The record of ``value``: each field looked up (or computed) from it."""
        __tracebackhide__ = True
        values = {n: src(value) if callable(src) else lookup(value, src) for n, src in self.sources}
        return self._build(values)

    def record(self, **values: Any) -> Any:
        """The record from values given by field name (e.g. a source's published numbers)."""
        __tracebackhide__ = True
        missing = [n for n in self.fields if n not in values]
        extra = sorted(set(values) - set(self.fields))
        if missing or extra:
            raise ProjectionError(
                f"{self.name} takes exactly {', '.join(self.fields)}"
                + (f"; missing {', '.join(missing)}" if missing else "")
                + (f"; unknown {', '.join(extra)}" if extra else "")
            )
        return self._build(values)

    def _build(self, values: dict[str, Any]) -> Any:
        kinds = dict(self.kinds)
        return _record_class(self.name, tuple((n, kinds.get(n)) for n in self.fields))(**values)


_CLASSES: dict[tuple[str, tuple[tuple[str, Kind | None], ...]], type] = {}


def _record_class(name: str, fields: tuple[tuple[str, Kind | None], ...]) -> type:
    """One frozen dataclass per (name, fields, kinds), so equal projections give equal types."""
    cls = _CLASSES.get((name, fields))
    if cls is None:
        spec = [(n, Any, dataclasses.field(metadata={"kind": k} if k else {})) for n, k in fields]
        cls = dataclasses.make_dataclass(name, spec, frozen=True)
        cls.__module__ = __name__
        _CLASSES[(name, fields)] = cls
    return cls


def each(path: str, projection: Projection, limit: int | None = None) -> Callable[[Any], tuple[Any, ...]]:
    """A field source: ``projection`` of each item of the sequence at ``path`` (its first ``limit``).

    >>> from types import SimpleNamespace as NS
    >>> TOKEN = Projection("PublishedToken", "token", "prob")
    >>> TOP = Projection("PublishedTop2", top=each("top_tokens", TOKEN, 2))
    >>> TOP.of(NS(top_tokens=[NS(token="a", prob=0.5), NS(token="b", prob=0.2), NS(token="c", prob=0.1)]))
    PublishedTop2(top=(PublishedToken(token='a', prob=0.5), PublishedToken(token='b', prob=0.2)))
    """

    def items(value: Any) -> tuple[Any, ...]:
        seq = lookup(value, path)
        return tuple(projection.of(item) for item in list(seq)[:limit])

    return items
