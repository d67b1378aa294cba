"""Turn a result object into *leaves*: one ``(path, value, kind)`` per snapshot line.

A result (a frozen dataclass, a dict, a list...) is walked field by field; each scalar
becomes a :class:`Leaf` whose dotted path names where it sits (``top_tokens.0.prob``).
Tensors and arrays become one leaf each, listed in full when small and summarized by
statistics when large. Nothing here knows about files or pytest.

>>> from dataclasses import dataclass
>>> @dataclass(frozen=True)
... class Tok:
...     token: str
...     prob: float
>>> [f"{leaf.path_str} = {leaf.render()}" for leaf in flatten({"rank": 0, "top": [Tok(" Mary", 0.5)]})]
['rank = 0', "top.0.token = ' Mary'", 'top.0.prob = 0.5']
"""

from __future__ import annotations

import dataclasses
import enum
import math
import re
import zlib
from collections.abc import Callable, Iterator, Mapping, Sequence, Set
from dataclasses import dataclass
from pathlib import PurePath
from typing import Any, TypeAlias

from pytest_annotate.snapshot.errors import SnapshotSerializeError, ToleranceError
from pytest_annotate.snapshot.tolerance import Kind, check_kind, kind_for

PathPart: TypeAlias = str | int
Scalar: TypeAlias = str | int | float | bool | None

#: Arrays with at most this many elements are written element by element; larger ones
#: are summarized (float: mean/std/min/max/norm; int and bool: sum/min/max/crc32).
MAX_LISTED_FLOATS = 64
MAX_LISTED_INTS = 256

_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
_INT = re.compile(r"-?[0-9]+\Z")
#: The kinds of array dtypes we accept: bool, signed/unsigned int, float.
_ARRAY_KINDS = "biuf"


@dataclass(frozen=True)
class Empty:
    """An empty container or a dataclass without fields, written as ``[]``, ``{}`` or
    ``Name()`` so that its presence is part of the snapshot."""

    token: str


@dataclass(frozen=True)
class ArrayValue:
    """A tensor or array: its type (``tensor``/``ndarray``), dtype and shape, and either
    its ``values`` (nested lists) or summary ``stats``.

    The dtype is informational: a bfloat16 run is compared with a float32 snapshot by
    value, within the widened bands, not failed for its dtype.
    """

    type: str
    dtype: str
    shape: tuple[int, ...]
    values: Any = None
    stats: tuple[tuple[str, Scalar], ...] | None = None

    @property
    def is_float(self) -> bool:
        return "float" in self.dtype


Value: TypeAlias = Scalar | Empty | ArrayValue


@dataclass(frozen=True)
class Leaf:
    """One line of a snapshot: where (``path``), what (``value``) and how it compares.

    ``explicit_kind`` is the kind given by ``field(metadata={"kind": ...})``; without it
    the kind follows from the field's name and the value's type (see
    :func:`pytest_annotate.snapshot.tolerance.kind_for`).
    """

    path: tuple[PathPart, ...]
    value: Value
    explicit_kind: Kind | None = None

    @property
    def name(self) -> str:
        """The last non-index part of the path, which names the field."""
        return field_name(self.path)

    @property
    def kind(self) -> Kind:
        probe: Any = self.value
        if isinstance(probe, ArrayValue):
            probe = 0.0 if probe.is_float else 0
        return kind_for(self.name, probe, self.explicit_kind)

    @property
    def implied_kind(self) -> Kind:
        """The kind this leaf would have without ``explicit_kind``."""
        return Leaf(self.path, self.value).kind

    @property
    def path_str(self) -> str:
        return render_path(self.path)

    def render(self) -> str:
        return render_value(self.value)


def field_name(path: Sequence[PathPart]) -> str:
    """The last string part of ``path`` (``""`` at the root).

    >>> field_name(("top_tokens", 3, "prob")), field_name(("logits", 0, 7)), field_name(())
    ('prob', 'logits', '')
    """
    for part in reversed(path):
        if isinstance(part, str):
            return part
    return ""


def render_component(part: PathPart) -> str:
    """A path part as written: identifiers and ints bare, other strings quoted.

    >>> render_component("prob"), render_component(3), render_component(" Mary"), render_component("3")
    ('prob', '3', "' Mary'", "'3'")
    """
    if isinstance(part, bool) or not isinstance(part, (str, int)):
        raise SnapshotSerializeError(f"path part {part!r} is neither str nor int")
    if isinstance(part, int):
        return str(part)
    return part if _IDENT.match(part) else repr(part)


def render_path(path: Sequence[PathPart]) -> str:
    """The dotted form of a path; the root is ``.``.

    >>> render_path(("top_tokens", 0, "prob")), render_path(())
    ('top_tokens.0.prob', '.')
    """
    return ".".join(render_component(p) for p in path) if path else "."


def render_float(x: float) -> str:
    """``repr`` (the shortest string that reads back to the same float), with ``nan``,
    ``inf`` and ``-inf`` spelled as bare words."""
    if math.isnan(x):
        return "nan"
    if math.isinf(x):
        return "inf" if x > 0 else "-inf"
    return repr(x)


def _render_nested(values: Any) -> str:
    if isinstance(values, list):
        return "[" + ", ".join(_render_nested(v) for v in values) + "]"
    return render_value(values)


def render_value(value: Value | tuple[int, ...]) -> str:
    """The text of a leaf's value, readable back by
    :func:`pytest_annotate.snapshot.textformat.parse_value`.

    >>> render_value(0.1), render_value(float("nan")), render_value("it's"), render_value(None)
    ('0.1', 'nan', '"it\\'s"', 'None')
    >>> render_value(ArrayValue("tensor", "float32", (2,), values=[0.5, 1.0]))
    'tensor(float32, shape=(2,), values=[0.5, 1.0])'
    """
    if isinstance(value, Empty):
        return value.token
    if isinstance(value, ArrayValue):
        shape = "(" + ", ".join(map(str, value.shape)) + ("," if len(value.shape) == 1 else "") + ")"
        head = f"{value.type}({value.dtype}, shape={shape}"
        if value.stats is not None:
            return head + "".join(f", {k}={render_value(v)}" for k, v in value.stats) + ")"
        return head + f", values={_render_nested(value.values)})"
    if isinstance(value, tuple):
        return "(" + ", ".join(map(str, value)) + ("," if len(value) == 1 else "") + ")"
    if isinstance(value, float):
        return render_float(value)
    if value is None or isinstance(value, (bool, int, str)):
        return repr(value)
    raise SnapshotSerializeError(f"cannot render {type(value).__name__} value {value!r}")


PropertyFilter: TypeAlias = Callable[..., bool]
PropertyMatcher: TypeAlias = Callable[..., Any]


RESULT_FIELDS_NOT_SNAPSHOTTED = frozenset({"model_id"})
"""Dataclass fields left out of snapshots: the file header already names the model."""


def flatten(
    data: Any,
    *,
    exclude: PropertyFilter | None = None,
    include: PropertyFilter | None = None,
    matcher: PropertyMatcher | None = None,
) -> list[Leaf]:
    """All leaves of ``data`` in reading order (dataclass field order, dict order).

    ``exclude``/``include``/``matcher`` follow syrupy's conventions
    (:mod:`syrupy.filters`, :mod:`syrupy.matchers`), so ``snapshot(exclude=props("prompt"))``
    works as with syrupy's own extensions.

    >>> [leaf.path_str for leaf in flatten({"a": [], "b": {"c": (1, 2.0)}})]
    ['a', 'b.c.0', 'b.c.1']
    >>> flatten(0.25)[0].path_str
    '.'
    """
    return list(_walk(data, (), (), None, exclude, include, matcher))


def _walk(
    obj: Any,
    path: tuple[PathPart, ...],
    typed_path: tuple[tuple[Any, type], ...],
    kind: Kind | None,
    exclude: PropertyFilter | None,
    include: PropertyFilter | None,
    matcher: PropertyMatcher | None,
) -> Iterator[Leaf]:
    if matcher is not None:
        obj = matcher(data=obj, path=typed_path)

    def children(items: Iterator[tuple[PathPart, Any, Kind | None]]) -> Iterator[Leaf]:
        for key, child, child_kind in items:
            if exclude is not None and exclude(prop=key, path=typed_path):
                continue
            if include is not None and not include(prop=key, path=typed_path):
                continue
            yield from _walk(
                child,
                (*path, key),
                (*typed_path, (key, type(child))),
                child_kind or kind,
                exclude,
                include,
                matcher,
            )

    where = render_path(path)
    if obj is None or isinstance(obj, (bool, str)):
        yield Leaf(path, obj)  # always exact: a kind given to a container is for its numbers
    elif isinstance(obj, enum.Enum):
        yield Leaf(path, f"{type(obj).__name__}.{obj.name}")
    elif isinstance(obj, int):
        yield Leaf(path, int(obj), kind)
    elif isinstance(obj, float):
        yield Leaf(path, float(obj), kind)
    elif _is_array(obj):
        yield Leaf(path, _array_value(obj, where), kind)
    elif _is_scalar_like(obj):
        yield from _walk(obj.item(), path, typed_path, kind, None, None, None)
    elif dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        fields = dataclasses.fields(obj)
        if not fields:
            yield Leaf(path, Empty(f"{type(obj).__name__}()"), kind)
            return
        # A result's model_id is already the snapshot file's header; as a field it would make every
        # comparison against another checkpoint's baseline differ, whatever the numbers say.
        yield from children(
            (f.name, getattr(obj, f.name), _metadata_kind(f, type(obj).__name__))
            for f in fields
            if f.name not in RESULT_FIELDS_NOT_SNAPSHOTTED
        )
    elif isinstance(obj, tuple) and hasattr(obj, "_asdict"):  # namedtuple
        yield from _walk(obj._asdict(), path, typed_path, kind, exclude, include, None)
    elif isinstance(obj, Mapping):
        if not obj:
            yield Leaf(path, Empty("{}"), kind)
            return
        yield from children((_key(k), v, None) for k, v in obj.items())
    elif isinstance(obj, (list, tuple)):
        if not obj:
            yield Leaf(path, Empty("[]"), kind)
            return
        yield from children((i, v, None) for i, v in enumerate(obj))
    elif isinstance(obj, Set):
        yield from _walk(sorted(obj, key=repr), path, typed_path, kind, exclude, include, None)
    elif isinstance(obj, PurePath):
        yield Leaf(path, obj.as_posix(), kind)
    else:
        raise SnapshotSerializeError(
            f"cannot snapshot {type(obj).__module__}.{type(obj).__qualname__} at {where!r}: "
            "use a dataclass, dict, list, str, number, bool, None, tensor or numpy array"
        )


def _metadata_kind(f: dataclasses.Field[Any], owner: str) -> Kind | None:
    kind = f.metadata.get("kind") if f.metadata else None
    if kind is None:
        return None
    try:
        return check_kind(kind)
    except ToleranceError as e:
        raise ToleranceError(f"field {owner}.{f.name}: {e}") from None


def _key(key: Any) -> PathPart:
    if isinstance(key, bool) or not isinstance(key, (str, int)):
        if isinstance(key, enum.Enum):
            return key.name
        return repr(key)
    return key


def _is_array(obj: Any) -> bool:
    module = type(obj).__module__
    if module.startswith("torch") and type(obj).__name__ in ("Tensor", "Parameter"):
        return obj.dim() > 0  # type: ignore[no-any-return]
    if module == "numpy" and type(obj).__name__ == "ndarray":
        return obj.ndim > 0  # type: ignore[no-any-return]
    return False


def _is_scalar_like(obj: Any) -> bool:
    """numpy scalars (``np.float32(0.5)``) and 0-d tensors or arrays: snapshotted as the
    Python number their ``.item()`` gives."""
    module = type(obj).__module__
    return (module == "numpy" or module.startswith("torch")) and hasattr(obj, "item")


def _array_value(obj: Any, where: str) -> ArrayValue:
    import numpy as np

    if type(obj).__module__.startswith("torch"):
        kind_name = "tensor"
        dtype = str(obj.dtype).removeprefix("torch.")
        t = obj.detach().to("cpu")
        if t.is_floating_point() and dtype not in ("float32", "float64"):
            t = t.float()  # numpy has no bfloat16
        arr = t.numpy()
    else:
        kind_name = "ndarray"
        arr = obj
        dtype = str(arr.dtype)
    if arr.dtype.kind not in _ARRAY_KINDS:
        raise SnapshotSerializeError(
            f"cannot snapshot a {kind_name} of dtype {dtype} at {where!r}: "
            "only bool, integer and floating point arrays are supported"
        )
    shape = tuple(int(n) for n in arr.shape)
    limit = MAX_LISTED_FLOATS if arr.dtype.kind == "f" else MAX_LISTED_INTS
    if arr.size <= limit:
        return ArrayValue(kind_name, dtype, shape, values=arr.tolist())
    if arr.dtype.kind == "f":
        a64 = arr.astype(np.float64)
        stats: tuple[tuple[str, Scalar], ...] = (
            ("mean", float(a64.mean())),
            ("std", float(a64.std())),
            ("min", float(a64.min())),
            ("max", float(a64.max())),
            ("norm", float(np.linalg.norm(a64.ravel()))),
        )
    else:
        i64 = np.ascontiguousarray(arr.astype(np.int64))
        stats = (
            ("sum", int(i64.sum())),
            ("min", int(i64.min())),
            ("max", int(i64.max())),
            ("crc32", zlib.crc32(i64.tobytes())),
        )
    return ArrayValue(kind_name, dtype, shape, stats=stats)


def expand(leaf: Leaf) -> list[tuple[tuple[PathPart, ...], Any]]:
    """The scalar values a leaf is compared by: itself, or for an array its shape and
    each listed element (or each statistic).

    >>> expand(Leaf(("x",), ArrayValue("ndarray", "float64", (2,), values=[1.0, 2.0])))
    [(('x', 'shape'), (2,)), (('x', 0), 1.0), (('x', 1), 2.0)]
    """
    value = leaf.value
    if not isinstance(value, ArrayValue):
        return [(leaf.path, value)]
    out: list[tuple[tuple[PathPart, ...], Any]] = [((*leaf.path, "shape"), value.shape)]
    if value.stats is not None:
        out.extend(((*leaf.path, name), stat) for name, stat in value.stats)
        return out

    def rec(v: Any, idx: tuple[int, ...]) -> None:
        if isinstance(v, list):
            for i, item in enumerate(v):
                rec(item, (*idx, i))
        else:
            out.append(((*leaf.path, *idx), v))

    rec(value.values, ())
    return out
