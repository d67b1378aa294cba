"""The snapshot file format: a header naming the model, then one field per line.

::

    # pytest-annotate snapshot v1
    # model: gpt2-small
    # dtype: float32
    # test: behaviours/test_ioi.py::test_name_mover[0]
    # type: TopTokenResult

    prompt = 'When Mary and John went to the store, John gave a drink to'
    answer = ' Mary'
    rank = 0
    logit = 18.482511520385742
    prob = 0.7043651938438416
    top_tokens.0.token = ' Mary'
    score [prob] = 0.5
    resid = tensor(float32, shape=(3,), values=[0.5, -1.25, 2.0])
    passed = True

Each line is ``path [kind] = value``: the dotted path of the field, the kind when field
metadata set one, and the value as a Python literal (``repr``, so floats keep every
digit). Files are parsed back into structure and compared number by number; they are
never compared as text. ``#`` lines in the body, and a ``# ...`` after a value, are
comments, free for reviewers' notes.

>>> from pytest_annotate.snapshot.serialize import flatten
>>> text = dumps(SnapshotHeader(model="gpt2-small", dtype="float32"), flatten({"prob": 0.5}))
>>> print(text)
# pytest-annotate snapshot v1
# model: gpt2-small
# dtype: float32
<BLANKLINE>
prob = 0.5
<BLANKLINE>
>>> loads(text, "x.snap").leaves[0].value
0.5
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, cast

from pytest_annotate.snapshot.errors import (
    SnapshotFileError,
    SnapshotModelMismatchError,
)
from pytest_annotate.snapshot.serialize import ArrayValue, Empty, Leaf, PathPart, Value
from pytest_annotate.snapshot.tolerance import KINDS, Kind

MAGIC = "# pytest-annotate snapshot v1"
#: Header keys, in the order they are written.
HEADER_KEYS = ("model", "dtype", "test", "type")

_COMPONENT = re.compile(r"""[A-Za-z_][A-Za-z0-9_]*|-?[0-9]+|'(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*\"""")
_KIND = re.compile(r"\s*\[([A-Za-z_]+)\]")
_EQUALS = re.compile(r"\s*=\s?")
_HEADER_LINE = re.compile(r"#\s*([A-Za-z_][A-Za-z0-9_-]*)\s*:\s*(.*?)\s*\Z")


@dataclass(frozen=True)
class SnapshotHeader:
    """What a snapshot file says about itself.

    ``model`` is the model id (the snapshot folder's name); ``dtype`` the dtype of the run
    that recorded it (widens bands when it was a low precision run); ``test`` the pytest
    node id that owns it (used to prune stale files); ``type`` the result's class name.
    """

    model: str
    dtype: str | None = None
    test: str | None = None
    type: str | None = None
    #: line numbers of the header keys in the file they were read from
    lines: Mapping[str, int] = field(default_factory=dict, compare=False, repr=False)


@dataclass(frozen=True)
class SnapshotDocument:
    """A parsed snapshot file: its header and its leaves, with the line of each leaf."""

    header: SnapshotHeader
    leaves: tuple[Leaf, ...]
    line_numbers: tuple[int, ...] = ()
    source: str = ""

    def line_of(self, path: tuple[PathPart, ...]) -> int | None:
        """The line number where the leaf at ``path`` (or the array containing it) is."""
        for leaf, line in zip(self.leaves, self.line_numbers, strict=False):
            if path[: len(leaf.path)] == leaf.path:
                return line
        return None


def dumps(header: SnapshotHeader, leaves: Iterable[Leaf]) -> str:
    """The text of a snapshot file (ends with a newline)."""
    lines = [MAGIC]
    for key in HEADER_KEYS:
        value = getattr(header, key)
        if value is not None:
            if "\n" in value or "\r" in value:
                raise ValueError(f"header {key!r} must be one line, got {value!r}")
            lines.append(f"# {key}: {value}")
    lines.append("")
    for leaf in leaves:
        kind = f" [{leaf.explicit_kind}]" if leaf.explicit_kind and leaf.explicit_kind != leaf.implied_kind else ""
        lines.append(f"{leaf.path_str}{kind} = {leaf.render()}")
    return "\n".join(lines) + "\n"


def loads(text: str, source: str) -> SnapshotDocument:
    """Parse a snapshot file's text; ``source`` (its path) is named in every error.

    >>> loads("# pytest-annotate snapshot v1\\n# model: m\\n\\nrank = zero\\n", "a.snap")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    pytest_annotate.snapshot.errors.SnapshotFileError: a.snap:4: cannot read the value of 'rank': name 'zero' is not...
    """
    lines = text.splitlines()
    if not lines or lines[0].strip() != MAGIC:
        first = lines[0][:60] if lines else "(empty file)"
        raise SnapshotFileError(
            source, 1, f"not a pytest-annotate snapshot: expected {MAGIC!r} as the first line, found {first!r}"
        )
    header_values: dict[str, str] = {}
    header_lines: dict[str, int] = {}
    number = 1
    for number, line in enumerate(lines[1:], start=2):
        stripped = line.strip()
        if not stripped.startswith("#"):
            break
        match = _HEADER_LINE.match(stripped)
        if match is None:
            raise SnapshotFileError(source, number, f"malformed header line {line!r}: expected '# key: value'")
        key, value = match.groups()
        if key in header_values:
            raise SnapshotFileError(source, number, f"header {key!r} given twice (first on line {header_lines[key]})")
        header_values[key], header_lines[key] = value, number
    else:
        number = len(lines) + 1
    if not header_values.get("model"):
        raise SnapshotFileError(source, 2, "the header does not name a model: expected '# model: <model-id>'")
    header = SnapshotHeader(
        model=header_values["model"],
        dtype=header_values.get("dtype") or None,
        test=header_values.get("test") or None,
        type=header_values.get("type") or None,
        lines=header_lines,
    )

    leaves: list[Leaf] = []
    line_numbers: list[int] = []
    seen: dict[tuple[PathPart, ...], int] = {}
    # Every proper prefix of a path seen so far: the overlap check is a set lookup per prefix, not a scan
    # of every earlier field (quadratic: 4 million comparisons for the suite's snapshots).
    containers: dict[tuple[PathPart, ...], tuple[PathPart, ...]] = {}
    for lineno in range(number, len(lines) + 1):
        line = lines[lineno - 1]
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        leaf = parse_line(stripped, source, lineno)
        if leaf.path in seen:
            raise SnapshotFileError(
                source, lineno, f"field {leaf.path_str!r} appears twice (first on line {seen[leaf.path]})"
            )
        prefixes = [leaf.path[:k] for k in range(1, len(leaf.path))]
        clash = containers.get(leaf.path) or next((q for q in prefixes if q in seen), None)
        if clash is not None:
            raise SnapshotFileError(
                source,
                lineno,
                f"field {leaf.path_str!r} overlaps {Leaf(clash, None).path_str!r} on line {seen[clash]}: "
                "a field cannot be both a value and a container",
            )
        seen[leaf.path] = lineno
        for q in prefixes:
            containers.setdefault(q, leaf.path)
        leaves.append(leaf)
        line_numbers.append(lineno)
    if not leaves:
        raise SnapshotFileError(source, len(lines), "the snapshot has a header but no fields")
    return SnapshotDocument(header, tuple(leaves), tuple(line_numbers), source)


def check_model(document: SnapshotDocument, expected: str) -> None:
    """Raise :class:`SnapshotModelMismatchError` unless the file belongs to ``expected``."""
    if document.header.model != expected:
        raise SnapshotModelMismatchError(
            document.source,
            document.header.lines.get("model", 2),
            f"this snapshot was recorded for model {document.header.model!r}, but it is in the "
            f"folder of {expected!r}. Move it to snapshots/{document.header.model}/, or delete it "
            f"and re-run with --snapshot-update to record {expected!r}.",
        )


def parse_line(line: str, source: str, lineno: int) -> Leaf:
    """Parse one ``path [kind] = value`` line."""
    path, pos = _parse_path(line, source, lineno)
    kind: Kind | None = None
    match = _KIND.match(line, pos)
    if match is not None:
        if match.group(1) not in KINDS:
            raise SnapshotFileError(
                source, lineno, f"unknown kind [{match.group(1)}]; valid kinds: {', '.join(KINDS)}"
            )
        kind = match.group(1)  # type: ignore[assignment]
        pos = match.end()
    match = _EQUALS.match(line, pos)
    if match is None:
        raise SnapshotFileError(source, lineno, f"expected 'path = value', found {line[:80]!r}")
    where = Leaf(path, None).path_str
    try:
        value = parse_value(line[match.end() :])
    except ValueError as e:
        raise SnapshotFileError(source, lineno, f"cannot read the value of {where!r}: {e}") from None
    return Leaf(path, value, kind)


def _parse_path(line: str, source: str, lineno: int) -> tuple[tuple[PathPart, ...], int]:
    if re.match(r"\.(?=\s|=|\[)", line):
        return (), 1
    parts: list[PathPart] = []
    pos = 0
    while True:
        match = _COMPONENT.match(line, pos)
        if match is None:
            raise SnapshotFileError(source, lineno, f"cannot read a field path at column {pos + 1} of {line[:80]!r}")
        token = match.group(0)
        if token[0] in "'\"":
            parts.append(ast.literal_eval(token))
        elif token[0] == "-" or token.isdigit():
            parts.append(int(token))
        else:
            parts.append(token)
        pos = match.end()
        if line.startswith(".", pos):
            pos += 1
            continue
        return tuple(parts), pos


def parse_value(text: str) -> Value:
    """Read a value written by :func:`pytest_annotate.snapshot.serialize.render_value`.

    Only literals are accepted (parsed with :mod:`ast`, never evaluated).

    >>> parse_value("-inf"), parse_value("'a'"), parse_value("[]")
    (-inf, 'a', Empty(token='[]'))
    >>> parse_value("tensor(float32, shape=(2,), values=[1.0, nan])").values
    [1.0, nan]
    """
    text = text.strip()
    if not text:
        raise ValueError("the value is missing")
    try:
        node = ast.parse(text, mode="eval").body
    except SyntaxError as e:
        raise ValueError(f"{text[:60]!r} is not a Python literal ({e.msg})") from None
    return _value(node)


def _number(node: ast.expr) -> Any:
    if isinstance(node, ast.Constant) and type(node.value) in (int, float, bool):
        return node.value
    if isinstance(node, ast.Name) and node.id in ("nan", "inf"):
        return float(node.id)
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
        inner = _number(node.operand)
        if isinstance(inner, bool):
            raise ValueError("a sign before True/False")
        return -inner if isinstance(node.op, ast.USub) else inner
    if isinstance(node, ast.Name):
        raise ValueError(f"name {node.id!r} is not a number or a literal")
    raise ValueError(f"{ast.unparse(node)[:60]!r} is not a number")


def _value(node: ast.expr) -> Value:
    if isinstance(node, ast.Constant):
        if node.value is None or type(node.value) in (str, int, float, bool):
            return cast(Value, node.value)
        raise ValueError(f"{type(node.value).__name__} values are not supported")
    if isinstance(node, ast.List) and not node.elts:
        return Empty("[]")
    if isinstance(node, ast.Tuple) and not node.elts:
        return Empty("[]")
    if isinstance(node, ast.Dict) and not node.keys:
        return Empty("{}")
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
        name = node.func.id
        if name in ("tensor", "ndarray"):
            return _array(name, node)
        if not node.args and not node.keywords:
            return Empty(f"{name}()")
        raise ValueError(f"{name}(...) takes no arguments here")
    if isinstance(node, (ast.List, ast.Tuple, ast.Dict)):
        raise ValueError("containers are written one element per line, not inline")
    return _number(node)  # type: ignore[no-any-return]


def _array(name: str, node: ast.Call) -> ArrayValue:
    if len(node.args) != 1 or not isinstance(node.args[0], ast.Name):
        raise ValueError(f"{name}(...) needs the dtype as its first argument, e.g. {name}(float32, shape=...)")
    dtype = node.args[0].id
    kw = {k.arg: k.value for k in node.keywords}
    if "shape" not in kw or not isinstance(kw["shape"], ast.Tuple):
        raise ValueError(f"{name}(...) needs shape=(...)")
    shape = tuple(_int(e) for e in kw.pop("shape").elts)  # type: ignore[attr-defined]
    if "values" in kw:
        values_node = kw.pop("values")
        if kw:
            raise ValueError(f"{name}(...) has values= and also {sorted(kw)}")  # type: ignore[type-var]
        values = _nested(values_node)
        if not _has_shape(values, shape):
            raise ValueError(f"{name}(...) has shape={shape} but its values do not have that shape")
        return ArrayValue(name, dtype, shape, values=values)
    if not kw:
        raise ValueError(f"{name}(...) needs values=[...] or summary statistics")
    stats = tuple((str(k), _number(v)) for k, v in kw.items())
    return ArrayValue(name, dtype, shape, stats=stats)


def _int(node: ast.expr) -> int:
    value = _number(node)
    if type(value) is not int:
        raise ValueError(f"shape entries must be integers, got {value!r}")
    return int(value)


def _nested(node: ast.expr) -> Any:
    if isinstance(node, ast.List):
        return [_nested(e) for e in node.elts]
    return _number(node)


def _has_shape(values: Any, shape: tuple[int, ...]) -> bool:
    if not shape:
        return not isinstance(values, list)
    return (
        isinstance(values, list)
        and len(values) == shape[0]
        and all(_has_shape(v, shape[1:]) for v in values)
    )
