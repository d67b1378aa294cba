"""Prompt families as values: named, versioned sets of items, split into dev and held-out by hash.

A finding is a claim over a family of inputs, judged on items that were not used to choose its
threshold or its components. A :class:`Family` holds :class:`FamilyItem` s (a prompt, the expected
answer, and optionally a corrupted prompt for patching and a wrong answer for logit differences);
it splits itself into :attr:`Family.dev` and :attr:`Family.heldout` by hashing each item, so an
item never changes side when others are added or removed.

Families are built from

* a template and its slots (:func:`from_template`),
* every window of an ordered vocabulary (:func:`windows`: months, weekdays, digits, ...),
* IOI templates and names (:func:`ioi`),
* a list (:func:`from_list`) or a JSONL file under ``behaviours/`` (:func:`from_jsonl`),
* a hypothesis strategy, drawn deterministically (:func:`from_strategy`),
* random tokens of a model's vocabulary, then the first few again (:func:`induction_family`).

>>> months = windows("months-w3", "months", 3)
>>> len(months), months[0]
(12, FamilyItem(prompt='January February March', answer=' April', meta={'kind': 'months', 'width': '3', 'first': 'January', 'wraps': 'no'}))
>>> len(months.dev) + len(months.heldout) == len(months)
True
>>> print(months.summary(examples=2))  # doctest: +ELLIPSIS
months-w3 v1: 12 items (... dev, ... held-out at fraction 0.5), fingerprint ...
  Every run of 3 consecutive months (cyclic, December -> January): the next one.
  'January February March' -> ' April'
  'February March April' -> ' May'
  ...

Token-level questions (is the answer one token, does it need its leading space) are left to the
:class:`~pytest_annotate.lab.Lab`: a family is plain text and imports no model code.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import random
import string
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from functools import cached_property
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from pytest_annotate.errors import AnnotateError, close_matches

if TYPE_CHECKING:
    from hypothesis.strategies import SearchStrategy

DEFAULT_HELDOUT_FRACTION = 0.5
"""Half the items are held out by default: the verdict's interval needs them as much as the dev
half needs them to choose thresholds and components, and families are small (12 month windows)."""

ITEM_FIELDS = ("prompt", "answer", "corrupted", "wrong", "meta")
HEADER_FIELDS = ("family", "version", "description", "heldout_fraction", "salt")


class FamilyError(AnnotateError, ValueError):
    """A family or one of its items is invalid; the message says where and what would be valid."""


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _unit(*parts: str) -> float:
    """A number in [0, 1) from a hash of ``parts``: the same on every machine and Python version."""
    digest = hashlib.sha256("\x00".join(parts).encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


# --------------------------------------------------------------------------- items


@dataclass(frozen=True, eq=False)
class FamilyItem:
    """One item of a family: a prompt and the answer expected after it.

    ``answer`` is the continuation as the model would produce it, usually with its leading space
    (``" April"``). ``corrupted`` is a prompt to patch from (the IOI prompt with a third name);
    ``wrong`` a foil answer for logit differences (the IOI subject). ``meta`` holds string
    annotations (template id, names) for filtering and reports.

    Two items are the same item when prompt, answer, corrupted and wrong agree; ``meta`` does not
    change what is measured, so it is not part of :attr:`item_id` (re-annotating an item does not move
    it between dev and held-out).

    >>> item = FamilyItem("When Mary and John went to the store, John gave a drink to", " Mary", wrong=" John")
    >>> item.item_id
    'f38c26e1ed92'
    >>> print(item)
    'When Mary and John went to the store, John gave a drink to' -> ' Mary' (not ' John')
    """

    prompt: str
    answer: str
    corrupted: str | None = None
    wrong: str | None = None
    meta: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name in ("prompt", "answer"):
            value = getattr(self, name)
            if not isinstance(value, str):
                raise FamilyError(f"{name} is {value!r} ({type(value).__name__}): give a string")
        if not self.prompt:
            raise FamilyError("prompt is empty: give the text the model continues")
        if not self.answer:
            raise FamilyError("answer is empty: give the expected continuation, with its leading space (' April')")
        for name in ("corrupted", "wrong"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, str) or not value):
                raise FamilyError(f"{name} is {value!r}: give a non-empty string, or None")
        if self.wrong == self.answer:
            raise FamilyError(f"wrong is the same as answer ({self.answer!r}): a foil answer must differ from it")
        if self.corrupted == self.prompt:
            raise FamilyError("corrupted is the same as prompt: patching from it would change nothing")
        if not isinstance(self.meta, Mapping):
            raise FamilyError(f"meta is {self.meta!r}: give a mapping of strings to strings, e.g. {{'template': '0'}}")
        for key, value in self.meta.items():
            if not isinstance(key, str) or not isinstance(value, str):
                raise FamilyError(
                    f"meta[{key!r}] = {value!r}: meta keys and values are strings (write {str(value)!r}, not {value!r})"
                )
        object.__setattr__(self, "meta", MappingProxyType(dict(self.meta)))

    @property
    def key(self) -> tuple[str, str, str | None, str | None]:
        """What the model is asked: two items with the same key are duplicates."""
        return (self.prompt, self.answer, self.corrupted, self.wrong)

    @cached_property
    def item_id(self) -> str:
        """The first 12 hex digits of the sha256 of :attr:`key`: stable across runs, machines and versions."""
        return _sha(json.dumps(list(self.key), ensure_ascii=False))[:12]

    def to_dict(self) -> dict[str, Any]:
        """The item as a JSONL line holds it (fields that are None or empty are left out)."""
        out: dict[str, Any] = {"prompt": self.prompt, "answer": self.answer}
        if self.corrupted is not None:
            out["corrupted"] = self.corrupted
        if self.wrong is not None:
            out["wrong"] = self.wrong
        if self.meta:
            out["meta"] = dict(self.meta)
        return out

    def _canonical(self) -> str:
        """Everything about the item, meta included, for fingerprints."""
        return json.dumps([*self.key, sorted(self.meta.items())], ensure_ascii=False)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, FamilyItem):
            return NotImplemented
        return self.key == other.key and dict(self.meta) == dict(other.meta)

    def __hash__(self) -> int:
        return hash(self.key)

    def __repr__(self) -> str:
        extra = "".join(f", {n}={getattr(self, n)!r}" for n in ("corrupted", "wrong") if getattr(self, n) is not None)
        meta = f", meta={dict(self.meta)!r}" if self.meta else ""
        return f"FamilyItem(prompt={self.prompt!r}, answer={self.answer!r}{extra}{meta})"

    def __str__(self) -> str:
        out = f"{self.prompt!r} -> {self.answer!r}"
        if self.wrong is not None:
            out += f" (not {self.wrong!r})"
        if self.corrupted is not None:
            out += f"; corrupted {self.corrupted!r}"
        return out


# --------------------------------------------------------------------------- families


@dataclass(frozen=True)
class Family:
    """A named, versioned family of items with a stable dev / held-out split.

    Each item's side is decided by a hash of ``(salt, item_id)``: it is held out when the hash,
    read as a number in [0, 1), is below ``heldout_fraction``. The split therefore never moves an
    item when other items are added or removed, an item is on the same side in every family that
    contains it (so a family built from another one cannot leak its dev items into its held-out
    items), and raising the fraction only moves items from dev to held-out. Give another ``salt``
    for a fresh split (after the held-out items have been looked at too often).

    ``part`` says what subset of the family this is ("dev", "held-out", "sample of 20 (seed 0)";
    empty for the family as built), for reports.

    >>> f = from_list("capitals", [("The capital of France is", " Paris"), ("The capital of Italy is", " Rome")])
    >>> f
    Family('capitals', version=1, 2 items, fingerprint='c0f2ac11c574b943')
    >>> [item.answer for item in f]
    [' Paris', ' Rome']
    >>> f.filter(lambda item: "Italy" in item.prompt).part
    'filtered'
    """

    name: str
    version: int | str
    items: tuple[FamilyItem, ...]
    description: str = ""
    heldout_fraction: float = DEFAULT_HELDOUT_FRACTION
    salt: str = ""
    part: str = ""

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name.strip():
            raise FamilyError(f"name={self.name!r}: give a family a non-empty name, e.g. 'months-w3'")
        if isinstance(self.version, bool) or not isinstance(self.version, (int, str)) or self.version == "":
            raise FamilyError(f"version={self.version!r}: give an int or a non-empty string, e.g. 1 or '2024-06'")
        items = tuple(self.items)
        object.__setattr__(self, "items", items)
        if not items:
            raise FamilyError(f"family {self.name!r} has no items: a family needs at least one")
        for i, item in enumerate(items):
            if not isinstance(item, FamilyItem):
                raise FamilyError(
                    f"family {self.name!r}: items[{i}] is a {type(item).__name__}, not a FamilyItem; build items with "
                    "FamilyItem(prompt, answer) or use from_list()"
                )
        _check_duplicates(items, lambda i: f"items[{i}]", f"family {self.name!r}")
        fraction = self.heldout_fraction
        if isinstance(fraction, bool) or not isinstance(fraction, (int, float)) or not 0 < fraction < 1:
            raise FamilyError(f"heldout_fraction={fraction!r}: give a fraction strictly between 0 and 1, e.g. 0.5")
        if not isinstance(self.salt, str):
            raise FamilyError(f"salt={self.salt!r}: give a string")

    # ---------------------------------------------------------------- container

    def __len__(self) -> int:
        return len(self.items)

    def __iter__(self) -> Iterator[FamilyItem]:
        return iter(self.items)

    def __getitem__(self, index: int) -> FamilyItem:
        return self.items[index]

    def __contains__(self, item: object) -> bool:
        return isinstance(item, FamilyItem) and item.key in self._keys

    @cached_property
    def _keys(self) -> frozenset[tuple[str, str, str | None, str | None]]:
        return frozenset(item.key for item in self.items)

    @property
    def prompts(self) -> tuple[str, ...]:
        return tuple(item.prompt for item in self.items)

    @property
    def answers(self) -> tuple[str, ...]:
        return tuple(item.answer for item in self.items)

    def __repr__(self) -> str:
        part = f", part={self.part!r}" if self.part else ""
        size = f"{len(self)} item{'' if len(self) == 1 else 's'}"
        return f"Family({self.name!r}, version={self.version!r}, {size}{part}, fingerprint={self.fingerprint!r})"

    # ---------------------------------------------------------------- identity

    @cached_property
    def fingerprint(self) -> str:
        """16 hex digits of a sha256 over the name, the version and every item (meta included, order not).

        Snapshots store it to notice that a family changed under them; reordering items keeps it.
        """
        payload = json.dumps(
            [self.name, self.version, sorted(item._canonical() for item in self.items)], ensure_ascii=False
        )
        return _sha(payload)[:16]

    # ---------------------------------------------------------------- splits and subsets

    def is_heldout(self, item: FamilyItem, heldout_fraction: float | None = None) -> bool:
        """Whether ``item`` falls on the held-out side (it need not be in the family)."""
        fraction = self.heldout_fraction if heldout_fraction is None else heldout_fraction
        return _unit(self.salt, item.item_id) < fraction

    def split(self, heldout_fraction: float | None = None) -> tuple[Family, Family]:
        """``(dev, heldout)`` at ``heldout_fraction`` (the family's own by default).

        Raises :class:`FamilyError` when a side would be empty (a family of 3 items may hash all into dev).
        """
        return self._side(False, heldout_fraction), self._side(True, heldout_fraction)

    @property
    def dev(self) -> Family:
        """The items not held out: for choosing thresholds, components and ablations. ``f.dev.dev == f.dev``."""
        return self._side(False)

    @property
    def heldout(self) -> Family:
        """The held-out items: for verdicts only. ``f.heldout.heldout == f.heldout``."""
        return self._side(True)

    def _side(self, heldout: bool, heldout_fraction: float | None = None) -> Family:
        fraction = self.heldout_fraction if heldout_fraction is None else heldout_fraction
        if isinstance(fraction, bool) or not isinstance(fraction, (int, float)) or not 0 < fraction < 1:
            raise FamilyError(f"heldout_fraction={fraction!r}: give a fraction strictly between 0 and 1, e.g. 0.5")
        side = "held-out" if heldout else "dev"
        chosen = tuple(item for item in self.items if self.is_heldout(item, fraction) is heldout)
        if not chosen:
            raise FamilyError(
                f"family {self.name!r} ({len(self)} items{', ' + self.part if self.part else ''}) has no {side} items "
                f"at held-out fraction {fraction:g}: every item hashed to the other side; add items, or give another "
                "salt= for a different split"
            )
        part = self.part if self.part.endswith(side) else self._sub(side)
        if (chosen, fraction, part) == (self.items, self.heldout_fraction, self.part):
            return self
        return replace(self, items=chosen, heldout_fraction=fraction, part=part)

    def sample(self, n: int, seed: int = 0) -> Family:
        """``n`` items chosen by a seeded hash, in the family's order.

        The items with the ``n`` smallest hashes of ``(seed, item_id)``: the same for the same seed,
        and adding an item to the family changes at most one item of the sample.
        """
        if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= len(self):
            raise FamilyError(f"sample(n={n!r}) from {self.name!r}: give 1 <= n <= {len(self)} (its size)")
        chosen = _bottom(self.items, n, seed)
        return replace(self, items=chosen, part=self._sub(f"sample of {n} (seed {seed})"))

    def filter(self, predicate: Callable[[FamilyItem], bool], *, part: str = "filtered") -> Family:
        """The items for which ``predicate(item)`` is true (``part`` names the subset in reports)."""
        chosen = tuple(item for item in self.items if predicate(item))
        if not chosen:
            raise FamilyError(f"filter() kept none of the {len(self)} items of family {self.name!r}")
        return replace(self, items=chosen, part=self._sub(part))

    def __add__(self, other: object) -> Family:
        """The union, without duplicates (the first of two items with the same key is kept).

        Both families must split alike (same ``salt`` and ``heldout_fraction``), so every item keeps its side.
        """
        if not isinstance(other, Family):
            return NotImplemented
        if (self.salt, self.heldout_fraction) != (other.salt, other.heldout_fraction):
            raise FamilyError(
                f"cannot join {self.name!r} (salt {self.salt!r}, held-out fraction {self.heldout_fraction:g}) and "
                f"{other.name!r} (salt {other.salt!r}, held-out fraction {other.heldout_fraction:g}): items would change "
                "sides; rebuild one with the other's salt= and heldout_fraction="
            )
        seen = set(self._keys)
        extra: list[FamilyItem] = []
        for item in other.items:
            if item.key not in seen:
                seen.add(item.key)
                extra.append(item)
        name = self.name if self.name == other.name else f"{self.name}+{other.name}"
        version = self.version if self.version == other.version else f"{self.version}+{other.version}"
        descriptions = dict.fromkeys(d for d in (self.description, other.description) if d)
        return replace(
            self, name=name, version=version, items=self.items + tuple(extra), description=" | ".join(descriptions),
            part=self.part if self.part == other.part else "",
        )  # fmt: skip

    def _sub(self, part: str) -> str:
        return f"{self.part}, {part}" if self.part else part

    # ---------------------------------------------------------------- reports and files

    def summary(self, examples: int = 3) -> str:
        """Its size, split, fingerprint, description and the first ``examples`` items, for reports."""
        held = sum(self.is_heldout(item) for item in self.items)
        part = f" [{self.part}]" if self.part else ""
        head = (
            f"{self.name} v{self.version}{part}: {len(self)} items ({len(self) - held} dev, {held} held-out at "
            f"fraction {self.heldout_fraction:g}), fingerprint {self.fingerprint}"
        )
        lines = [head]
        if self.description:
            lines.append(f"  {self.description}")
        lines += [f"  {item}" for item in self.items[:examples]]
        if len(self) > examples:
            lines.append(f"  ... {len(self) - examples} more")
        return "\n".join(lines)

    def to_jsonl(self, path: str | Path | None = None) -> str:
        """The family as JSONL (a header line, then one item per line); written to ``path`` if given.

        :func:`from_jsonl` reads it back to an equal family.
        """
        header: dict[str, Any] = {"family": self.name, "version": self.version}
        if self.description:
            header["description"] = self.description
        if self.heldout_fraction != DEFAULT_HELDOUT_FRACTION:
            header["heldout_fraction"] = self.heldout_fraction
        if self.salt:
            header["salt"] = self.salt
        lines = [json.dumps(header, ensure_ascii=False)]
        lines += [json.dumps(item.to_dict(), ensure_ascii=False) for item in self.items]
        text = "\n".join(lines) + "\n"
        if path is not None:
            Path(path).write_text(text, encoding="utf-8")
        return text


def _bottom(items: Sequence[FamilyItem], n: int, seed: int) -> tuple[FamilyItem, ...]:
    ranked = sorted(range(len(items)), key=lambda i: _unit("sample", str(seed), items[i].item_id))
    keep = set(ranked[:n])
    return tuple(item for i, item in enumerate(items) if i in keep)


def _check_duplicates(items: Sequence[FamilyItem], where: Callable[[int], str], context: str) -> None:
    first: dict[tuple[str, str, str | None, str | None], int] = {}
    for i, item in enumerate(items):
        if item.key in first:
            raise FamilyError(
                f"{context}: {where(i)} is the same item as {where(first[item.key])} ({item}); remove one "
                "(items are the same when prompt, answer, corrupted and wrong agree)"
            )
        first[item.key] = i


def _family(
    name: str, items: Sequence[FamilyItem], where: Callable[[int], str], context: str, **kwargs: Any
) -> Family:
    if not items:
        raise FamilyError(f"{context} gives no items: a family needs at least one")
    _check_duplicates(items, where, context)
    return Family(name, items=tuple(items), **kwargs)


def _common(version: int | str, description: str, heldout_fraction: float, salt: str) -> dict[str, Any]:
    return {"version": version, "description": description, "heldout_fraction": heldout_fraction, "salt": salt}


# --------------------------------------------------------------------------- builders


def from_list(
    name: str,
    items: Iterable[tuple[str, str] | tuple[str, str, str] | Mapping[str, Any] | FamilyItem],
    *,
    version: int | str = 1,
    description: str = "",
    heldout_fraction: float = DEFAULT_HELDOUT_FRACTION,
    salt: str = "",
) -> Family:
    """A family from a list of ``(prompt, answer)`` or ``(prompt, answer, wrong)`` tuples, mappings
    with the fields of :class:`FamilyItem`, or items.

    >>> f = from_list("succ", [("1 2 3", " 4"), {"prompt": "A B C", "answer": " D", "meta": {"kind": "letters"}}])
    >>> f[1]
    FamilyItem(prompt='A B C', answer=' D', meta={'kind': 'letters'})
    >>> from_list("succ", [("1 2 3", " 4"), ("1 2 3", " 4")])
    Traceback (most recent call last):
    ...
    pytest_annotate.families.FamilyError: from_list('succ'): items[1] is the same item as items[0] ('1 2 3' -> ' 4'); remove one (items are the same when prompt, answer, corrupted and wrong agree)
    """
    context = f"from_list({name!r})"
    built = []
    for i, entry in enumerate(items):
        try:
            built.append(_item_from(entry))
        except FamilyError as e:
            raise FamilyError(f"{context}: items[{i}]: {e}") from None
    return _family(name, built, lambda i: f"items[{i}]", context, **_common(version, description, heldout_fraction, salt))


def _item_from(entry: Any) -> FamilyItem:
    if isinstance(entry, FamilyItem):
        return entry
    if isinstance(entry, Mapping):
        unknown = [k for k in entry if k not in ITEM_FIELDS]
        if unknown:
            raise FamilyError(
                f"unknown field {unknown[0]!r}.{close_matches(str(unknown[0]), ITEM_FIELDS)} "
                f"Valid fields: {', '.join(ITEM_FIELDS)}"
            )
        missing = [k for k in ("prompt", "answer") if k not in entry]
        if missing:
            raise FamilyError(f"{missing[0]!r} is missing; an item needs 'prompt' and 'answer'")
        return FamilyItem(**{k: v for k, v in entry.items() if not (k == "meta" and v is None)})
    if hasattr(entry, "prompt") and hasattr(entry, "answer"):  # CountingPrompt and the like
        return FamilyItem(
            entry.prompt, entry.answer, corrupted=getattr(entry, "corrupted", None), wrong=getattr(entry, "wrong", None)
        )
    if hasattr(entry, "prompt") and hasattr(entry, "correct") and hasattr(entry, "incorrect"):  # NameSwap
        return FamilyItem(entry.prompt, entry.correct, wrong=entry.incorrect)
    if isinstance(entry, tuple) and len(entry) in (2, 3):
        return FamilyItem(*entry[:2], wrong=entry[2] if len(entry) == 3 else None)
    raise FamilyError(
        f"{entry!r} is not an item: give (prompt, answer), (prompt, answer, wrong), a mapping with "
        f"{', '.join(ITEM_FIELDS)}, or a FamilyItem"
    )


Filler = str | Callable[[Mapping[str, str]], str]
"""An answer, foil or corrupted prompt: a format string over the slots (``" {capital}"``), or a function of them."""


def _fields(text: str, what: str) -> list[str]:
    try:
        parsed = list(string.Formatter().parse(text))
    except ValueError as e:
        raise FamilyError(f"{what} {text!r} is not a valid format string ({e}); write literal braces as {{{{ }}}}") from None
    names = []
    for _, name, _, _ in parsed:
        if name is None:
            continue
        if not name.isidentifier():
            raise FamilyError(f"{what} {text!r} has the placeholder {{{name}}}: give a plain slot name such as {{x}}")
        names.append(name)
    return names


def from_template(
    name: str,
    template: str,
    slots: Mapping[str, Sequence[str]] | Sequence[Mapping[str, str]],
    *,
    answer: Filler,
    wrong: Filler | None = None,
    corrupted: Filler | None = None,
    where: Callable[[Mapping[str, str]], bool] | None = None,
    meta: Mapping[str, str] | None = None,
    version: int | str = 1,
    description: str = "",
    heldout_fraction: float = DEFAULT_HELDOUT_FRACTION,
    salt: str = "",
) -> Family:
    """A family from a format-string template and the values of its slots.

    ``slots`` is either a mapping from slot name to its values (every combination is an item, the
    last slot varying fastest) or a sequence of rows, each a mapping slot -> value (for values
    that go together, like a country and its capital). ``answer``, ``wrong`` and ``corrupted`` are
    format strings over the same slots or functions of the row. ``where`` keeps only the rows for
    which it is true. Each item's ``meta`` holds its row (plus ``meta``).

    >>> f = from_template("capitals", "The capital of {country} is", [
    ...     {"country": "France", "capital": "Paris"}, {"country": "Japan", "capital": "Tokyo"}], answer=" {capital}")
    >>> [str(item) for item in f]
    ["'The capital of France is' -> ' Paris'", "'The capital of Japan is' -> ' Tokyo'"]
    >>> g = from_template("pairs", "{a} and {b}", {"a": ["x", "y"], "b": ["x", "y"]}, answer=" {a}",
    ...                   where=lambda row: row["a"] != row["b"])
    >>> g.prompts
    ('x and y', 'y and x')
    >>> from_template("bad", "The capital of {country} is", {"contry": ["France"]}, answer=" Paris")
    Traceback (most recent call last):
    ...
    pytest_annotate.families.FamilyError: from_template('bad'): template 'The capital of {country} is' uses {country}, which is not a slot. Did you mean 'contry'? Slots: contry
    """
    context = f"from_template({name!r})"
    if not isinstance(template, str) or not template:
        raise FamilyError(f"{context}: template={template!r}: give a non-empty format string such as 'The capital of {{x}} is'")
    rows = _rows(slots, context)
    slot_names = list(dict.fromkeys(k for row in rows for k in row))
    fillers: list[tuple[str, Filler]] = [("template", template), ("answer", answer)]
    fillers += [(n, f) for n, f in (("wrong", wrong), ("corrupted", corrupted)) if f is not None]
    for what, filler in fillers:
        if isinstance(filler, str):
            for used in _fields(filler, f"{context}: {what}"):
                if used not in slot_names:
                    raise FamilyError(
                        f"{context}: {what} {filler!r} uses {{{used}}}, which is not a slot.{close_matches(used, slot_names)}"
                        f" Slots: {', '.join(slot_names)}"
                    )
        elif not callable(filler):
            raise FamilyError(f"{context}: {what}={filler!r}: give a format string over the slots or a function of them")
    extra = dict(meta or {})
    items, origins = [], []
    for row in rows:
        if where is not None and not where(row):
            continue

        def fill(filler: Filler | None, row: Mapping[str, str] = row) -> str | None:
            if filler is None:
                return None
            return filler.format(**row) if isinstance(filler, str) else filler(row)

        try:
            item = FamilyItem(
                fill(template), fill(answer),  # type: ignore[arg-type]
                corrupted=fill(corrupted), wrong=fill(wrong), meta={**row, **extra},
            )  # fmt: skip
            items.append(item)
        except (FamilyError, KeyError) as e:
            raise FamilyError(f"{context}: slots {dict(row)}: {e}") from None
        origins.append(dict(row))
    if not items:
        raise FamilyError(f"{context}: where= kept none of the {len(rows)} slot combinations")
    return _family(
        name, items, lambda i: f"slots {origins[i]}", context, **_common(version, description, heldout_fraction, salt)
    )


def _rows(slots: Any, context: str) -> list[dict[str, str]]:
    if isinstance(slots, Mapping):
        if not slots:
            raise FamilyError(f"{context}: slots is empty: give at least one slot, e.g. {{'x': ['a', 'b']}}")
        names = list(slots)
        values: list[list[str]] = []
        for slot in names:
            vals = slots[slot]
            if isinstance(vals, str) or not isinstance(vals, Sequence):
                raise FamilyError(f"{context}: slots[{slot!r}] = {vals!r}: give a list of values, e.g. ['a', 'b']")
            if not vals:
                raise FamilyError(f"{context}: slots[{slot!r}] is empty: give at least one value")
            values.append(list(vals))
        rows = [dict(zip(names, combo, strict=True)) for combo in itertools.product(*values)]
    elif isinstance(slots, Sequence) and not isinstance(slots, str):
        if not slots:
            raise FamilyError(f"{context}: slots is an empty list: give at least one row, e.g. [{{'x': 'a'}}]")
        rows = []
        for i, row in enumerate(slots):
            if not isinstance(row, Mapping):
                raise FamilyError(f"{context}: slots[{i}] = {row!r}: give each row as a mapping slot -> value")
            rows.append(dict(row))
    else:
        raise FamilyError(
            f"{context}: slots={slots!r}: give a mapping slot -> values ({{'x': ['a', 'b']}}) or a list of rows "
            "([{'x': 'a', 'y': 'b'}])"
        )
    for row in rows:
        for key, value in row.items():
            if not isinstance(key, str) or not isinstance(value, str):
                raise FamilyError(f"{context}: slot {key!r} = {value!r}: slot names and values are strings")
    return rows


def windows(
    name: str,
    sequence: str | Sequence[str],
    width: int | Iterable[int],
    *,
    cyclic: bool | None = None,
    version: int | str = 1,
    description: str | None = None,
    heldout_fraction: float = DEFAULT_HELDOUT_FRACTION,
    salt: str = "",
) -> Family:
    """Every window of ``width`` consecutive items of an ordered vocabulary, and the item after it.

    ``sequence`` is a counting kind of :mod:`pytest_annotate.strategies` (``"digits"``,
    ``"number_words"``, ``"months"``, ``"weekdays"``, ``"letters"``) or any sequence of words.
    Months and weekdays go round by default (``"November December January"`` -> ``" February"``);
    the others never do, and ``cyclic=True`` is refused for them (Z is not followed by A). A cyclic
    sequence of ``L`` items has ``L`` windows of each width; a straight one ``L - width``. ``width``
    may be several widths (``range(3, 6)``). Each item's meta records ``kind``, ``width``, ``first``
    (the first word) and ``wraps`` (whether the window goes round).

    >>> len(windows("m", "months", 3)), len(windows("m", "months", 3, cyclic=False)), len(windows("d", "digits", 3))
    (12, 9, 7)
    >>> windows("w", "weekdays", 2)[-1]
    FamilyItem(prompt='Sunday Monday', answer=' Tuesday', meta={'kind': 'weekdays', 'width': '2', 'first': 'Sunday', 'wraps': 'yes'})
    >>> len(windows("l", "letters", range(3, 6)))  # 23 + 22 + 21
    66
    """
    from pytest_annotate.strategies import COUNTING_KINDS, CYCLIC, SEQUENCES

    context = f"windows({name!r})"
    if isinstance(sequence, str):
        if sequence not in COUNTING_KINDS:
            raise FamilyError(
                f"{context}: unknown sequence {sequence!r}.{close_matches(sequence, COUNTING_KINDS)} Known: "
                f"{', '.join(COUNTING_KINDS)}; or give the words themselves, e.g. ['red', 'orange', 'yellow']"
            )
        kind, words = sequence, tuple(SEQUENCES[sequence])  # type: ignore[index]
        goes_round = sequence in CYCLIC
        if cyclic is None:
            cyclic = goes_round
        elif cyclic and not goes_round:
            raise FamilyError(
                f"{context}: {kind} do not go round (the last is not followed by the first); only "
                f"{' and '.join(sorted(CYCLIC))} do. Drop cyclic=True"
            )
    else:
        kind, words = "custom", tuple(sequence)
        cyclic = bool(cyclic)
        bad = [w for w in words if not isinstance(w, str) or not w]
        if bad:
            raise FamilyError(f"{context}: sequence holds {bad[0]!r}: give non-empty strings")
        dupes = [w for w in dict.fromkeys(words) if words.count(w) > 1]
        if dupes:
            raise FamilyError(f"{context}: {dupes[0]!r} appears twice in the sequence: its next word is ambiguous")
    n_words = len(words)
    if n_words < 2:
        raise FamilyError(f"{context}: the sequence has {n_words} word(s): give at least 2")
    widths = [width] if isinstance(width, int) else list(width)
    if not widths:
        raise FamilyError(f"{context}: no widths given")
    for w in widths:
        if isinstance(w, bool) or not isinstance(w, int) or not 1 <= w <= n_words - 1:
            raise FamilyError(
                f"{context}: width={w!r}: give a whole number from 1 to {n_words - 1} for {n_words} words "
                "(a longer window would contain its own answer)"
            )
    items = []
    for w in dict.fromkeys(widths):
        starts = range(n_words) if cyclic else range(n_words - w)
        for start in starts:
            run = [words[(start + i) % n_words] for i in range(w + 1)]
            wraps = start + w >= n_words
            meta = {"kind": kind, "width": str(w), "first": run[0], "wraps": "yes" if wraps else "no"}
            items.append(FamilyItem(" ".join(run[:-1]), " " + run[-1], meta=meta))
    if description is None:
        what = kind.replace("_", " ") if kind != "custom" else "words"
        ws = ", ".join(map(str, dict.fromkeys(widths)))
        last, first = words[-1], words[0]
        go = f" (cyclic, {last} -> {first})" if cyclic else ""
        description = f"Every run of {ws} consecutive {what}{go}: the next one."
    return _family(
        name, items, lambda i: f"window {items[i].prompt!r}", context,
        **_common(version, description, heldout_fraction, salt),
    )  # fmt: skip


def ioi(
    name: str = "ioi",
    *,
    templates: Sequence[str] | None = None,
    names: Sequence[str] | None = None,
    n: int | None = None,
    seed: int = 0,
    version: int | str = 1,
    description: str | None = None,
    heldout_fraction: float = DEFAULT_HELDOUT_FRACTION,
    salt: str = "",
) -> Family:
    """Indirect-object identification (Wang et al. 2022): every template with every ordered pair of names.

    The answer is the indirect object ``{IO}``, ``wrong`` the subject ``{S}``; ``corrupted`` is the
    prompt with the subject's last mention replaced by a third name (``... went to the store, Kate
    gave a drink to``): the two prompts differ in one word, at one position when names are one token,
    and the repeated-subject cue is gone. The third name is chosen by a hash of (template, IO, S).
    Templates and names default to :data:`~pytest_annotate.strategies.IOI_TEMPLATES` and
    :data:`~pytest_annotate.strategies.IOI_NAMES` (6 x 22 x 21 = 2772 items); ``n`` takes a seeded
    sample of them (see :meth:`Family.sample`).

    >>> f = ioi(n=200)
    >>> len(f), len(ioi())
    (200, 2772)
    >>> ioi()[0]
    FamilyItem(prompt='When Mary and John went to the store, John gave a drink to', answer=' Mary', corrupted='When Mary and John went to the store, Bob gave a drink to', wrong=' John', meta={'template': '0', 'IO': 'Mary', 'S': 'John', 'C': 'Bob'})
    """
    from pytest_annotate.strategies import IOI_NAMES, IOI_TEMPLATES

    context = f"ioi({name!r})"
    templates = tuple(IOI_TEMPLATES if templates is None else templates)
    people = tuple(dict.fromkeys(IOI_NAMES if names is None else names))
    if not templates:
        raise FamilyError(f"{context}: templates is empty: give at least one, e.g. {IOI_TEMPLATES[0]!r}")
    if len(people) < 3:
        raise FamilyError(f"{context}: names={people!r}: give at least 3 different names (IO, S and a third for corruption)")
    for t in templates:
        fields = _fields(t, f"{context}: template") if isinstance(t, str) else None
        if fields is None or fields.count("IO") != 1 or fields.count("S") < 2 or set(fields) - {"IO", "S"}:
            raise FamilyError(
                f"{context}: template {t!r}: give {{IO}} once (the answer) and {{S}} at least twice (the repeated "
                "subject; the corrupted prompt replaces its last mention), and no other placeholders"
            )
    items = []
    for ti, t in enumerate(templates):
        head, tail = t.rsplit("{S}", 1)
        for io in people:
            for s in people:
                if s == io:
                    continue
                others = [c for c in people if c not in (io, s)]
                c = others[int(_sha(f"{ti}\x00{io}\x00{s}"), 16) % len(others)]
                meta = {"template": str(ti), "IO": io, "S": s, "C": c}
                corrupted = head.format(IO=io, S=s) + c + tail.format(IO=io, S=s)
                items.append(FamilyItem(t.format(IO=io, S=s), " " + io, corrupted=corrupted, wrong=" " + s, meta=meta))
    if n is not None:
        if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= len(items):
            raise FamilyError(f"{context}: n={n!r}: give 1 <= n <= {len(items)} (all template and name pairs), or None")
        items = list(_bottom(items, n, seed))
    if description is None:
        sample = f", a sample of {n} (seed {seed})" if n is not None else ""
        description = (
            f"IOI over {len(templates)} templates and {len(people)} names{sample}: the indirect object, not the "
            "subject; corrupted: the subject's second mention replaced by a third name."
        )
    return _family(
        name, items, lambda i: f"item {items[i]}", context, **_common(version, description, heldout_fraction, salt)
    )


def from_jsonl(
    path: str | Path,
    *,
    name: str | None = None,
    version: int | str | None = None,
    heldout_fraction: float | None = None,
    salt: str | None = None,
) -> Family:
    """A family from a JSONL file: an optional header line, then one item per line.

    The header is a JSON object with ``"family"`` (the name) and optionally ``"version"``,
    ``"description"``, ``"heldout_fraction"`` and ``"salt"``; each item line an object with
    ``"prompt"`` and ``"answer"`` and optionally ``"corrupted"``, ``"wrong"`` and ``"meta"`` (an object
    of strings). Blank lines are skipped. Without a header the family is named after the file and is
    version 1; keyword arguments override the header. Every error names the file and line.

    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "succ.jsonl"
    >>> _ = p.write_text('{"family": "succ", "version": 2}\\n{"prompt": "1 2 3", "answer": " 4"}\\n')
    >>> from_jsonl(p)
    Family('succ', version=2, 1 item, fingerprint='db2c6ed6e2f394d1')
    >>> _ = p.write_text('{"prompt": "1 2 3", "anwser": " 4"}\\n')
    >>> from_jsonl(p)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    pytest_annotate.families.FamilyError: .../succ.jsonl:1: unknown field 'anwser'. Did you mean 'answer'? Valid fields: prompt, answer, corrupted, wrong, meta
    """
    path = Path(path)
    text = path.read_text(encoding="utf-8")
    header: dict[str, Any] = {}
    items: list[FamilyItem] = []
    lines: list[int] = []
    first_content = True
    example = '{"prompt": "1 2 3", "answer": " 4"}'
    for lineno, raw in enumerate(text.splitlines(), start=1):
        where = f"{path}:{lineno}"
        if not raw.strip():
            continue
        try:
            obj = json.loads(raw)
        except json.JSONDecodeError as e:
            raise FamilyError(
                f"{where}: not valid JSON ({e.msg} at column {e.colno}); each line is one JSON object, e.g. {example}"
            ) from None
        if not isinstance(obj, dict):
            raise FamilyError(f"{where}: a JSON {type(obj).__name__}, not an object; each line is one object, e.g. {example}")
        if "family" in obj:
            if not first_content:
                raise FamilyError(f"{where}: a header (a line with \"family\") must be the first line of the file")
            unknown = [k for k in obj if k not in HEADER_FIELDS]
            if unknown:
                raise FamilyError(
                    f"{where}: unknown header field {unknown[0]!r}.{close_matches(unknown[0], HEADER_FIELDS)} "
                    f"Valid header fields: {', '.join(HEADER_FIELDS)}"
                )
            header = obj
            first_content = False
            continue
        first_content = False
        try:
            for key in ("prompt", "answer", "corrupted", "wrong"):
                if key in obj and obj[key] is not None and not isinstance(obj[key], str):
                    raise FamilyError(f"{key!r} is {json.dumps(obj[key])}: give a string, e.g. {example}")
            if "meta" in obj and obj["meta"] is not None and not isinstance(obj["meta"], dict):
                raise FamilyError(f"'meta' is {json.dumps(obj['meta'])}: give an object of strings, e.g. {{\"template\": \"0\"}}")
            items.append(_item_from(obj))
        except FamilyError as e:
            raise FamilyError(f"{where}: {e}") from None
        lines.append(lineno)
    if not items:
        raise FamilyError(f"{path}: no items; give one JSON object per line, e.g. {example}")
    for key, want in (("family", str), ("description", str), ("salt", str)):
        if key in header and not isinstance(header[key], want):
            raise FamilyError(f"{path}: header field {key!r} is {json.dumps(header[key])}: give a string")
    try:
        return _family(
            name if name is not None else header.get("family", path.stem),
            items,
            lambda i: f"line {lines[i]}",
            str(path),
            version=version if version is not None else header.get("version", 1),
            description=header.get("description", ""),
            heldout_fraction=heldout_fraction if heldout_fraction is not None
            else header.get("heldout_fraction", DEFAULT_HELDOUT_FRACTION),
            salt=salt if salt is not None else header.get("salt", ""),
        )  # fmt: skip
    except FamilyError as e:
        msg = str(e)
        raise FamilyError(msg if msg.startswith(str(path)) else f"{path}: {msg}") from None


def from_strategy(
    name: str,
    strategy: SearchStrategy[Any],
    n: int,
    seed: int = 0,
    *,
    to_item: Callable[[Any], FamilyItem] | None = None,
    version: int | str = 1,
    description: str = "",
    heldout_fraction: float = DEFAULT_HELDOUT_FRACTION,
    salt: str = "",
) -> Family:
    """``n`` distinct items drawn from a hypothesis strategy, the same for the same ``seed``.

    The draws come from hypothesis's own engine, run the way ``strategy.example()`` runs it (a
    ``@given`` function with only the generate phase, no database) but seeded with
    :func:`hypothesis.seed`, the documented way to make a run repeatable, and isolated from the
    active settings profile. ``example()`` itself is unseeded, and driving ``ConjectureData`` by
    hand ties us to hypothesis internals that change between versions. The draws follow
    hypothesis's distribution, which favours simple values and boundaries, not a uniform one; the
    same seed gives the same items for the same hypothesis version (the family's fingerprint shows
    it when an upgrade draws differently). Items are the first ``n`` distinct draws; a strategy with
    fewer distinct values raises :class:`FamilyError`. Call it outside ``@given`` tests.

    Drawn values become items through ``to_item``, by default: a :class:`FamilyItem` as it is; a
    mapping of item fields; a value with ``prompt`` and ``answer`` (:class:`~pytest_annotate.strategies.CountingPrompt`);
    one with ``prompt``, ``correct`` and ``incorrect`` (:class:`~pytest_annotate.strategies.NameSwap`: the
    incorrect name is the foil); a ``(prompt, answer[, wrong])`` tuple.

    >>> from pytest_annotate.strategies import counting_sequences
    >>> f = from_strategy("months-runs", counting_sequences("months"), 10, seed=1)
    >>> len(f), f == from_strategy("months-runs", counting_sequences("months"), 10, seed=1)
    (10, True)
    """
    context = f"from_strategy({name!r})"
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise FamilyError(f"{context}: n={n!r}: give the number of items to draw, >= 1")
    convert = to_item or _item_from
    chosen: dict[tuple[str, str, str | None, str | None], FamilyItem] = {}
    budget = n
    while True:
        drawn = _draw(strategy, budget, seed)
        chosen = {}
        for value in drawn:
            try:
                item = convert(value)
            except FamilyError as e:
                hint = "" if to_item else "; give to_item= to turn a drawn value into a FamilyItem"
                raise FamilyError(f"{context}: drawn value {value!r}: {e}{hint}") from None
            if not isinstance(item, FamilyItem):
                raise FamilyError(f"{context}: to_item returned {item!r}, not a FamilyItem")
            chosen.setdefault(item.key, item)
            if len(chosen) == n:
                break
        exhausted = len(drawn) < budget
        if len(chosen) == n or exhausted or budget >= 64 * n + 1000:
            break
        budget *= 4
    if len(chosen) < n:
        raise FamilyError(
            f"{context}: the strategy gave only {len(chosen)} distinct items in {len(drawn)} draws; ask for n <= "
            f"{len(chosen)}, or widen the strategy"
        )
    return Family(name, items=tuple(chosen.values()), **_common(version, description, heldout_fraction, salt))


def _draw(strategy: SearchStrategy[Any], max_examples: int, seed: int) -> list[Any]:
    """Up to ``max_examples`` values from a seeded run of hypothesis's generate phase (fewer when exhausted)."""
    from hypothesis import (
        HealthCheck,
        Phase,
        Verbosity,
        currently_in_test_context,
        given,
        settings,
    )
    from hypothesis import seed as seeded
    from hypothesis.strategies import SearchStrategy

    if not isinstance(strategy, SearchStrategy):
        raise FamilyError(f"strategy={strategy!r}: give a hypothesis strategy, e.g. counting_sequences('months')")
    if currently_in_test_context():
        raise FamilyError(
            "from_strategy() runs hypothesis itself, so it cannot run inside a @given test: build the family at "
            "module level or in a fixture, and iterate over it in the test"
        )
    out: list[Any] = []

    @seeded(seed)
    @settings(
        settings.get_profile("default"), database=None, max_examples=max_examples, deadline=None,
        phases=(Phase.generate,), suppress_health_check=list(HealthCheck), verbosity=Verbosity.quiet,
        derandomize=False,
    )  # fmt: skip
    @given(strategy)
    def collect(value: Any) -> None:
        out.append(value)

    collect()
    return out


# --------------------------------------------------------------------------- a model's vocabulary

INDUCTION_SEGMENT = 15
""":func:`induction_family`: random tokens in the first copy."""
INDUCTION_PREFIX = 7
""":func:`induction_family`: tokens of the second copy in the prompt; the answer is the segment's next token."""


def _word_pool(lab: Any) -> list[int]:
    """Token ids whose text joins and splits back unchanged: space-led words for a BPE vocabulary, else every
    ordinary alphanumeric token (the series' ``t0``..``t62``). The texts are the vocabulary decoded once per
    Lab (:func:`pytest_annotate.strategies.token_texts`)."""
    from pytest_annotate.strategies import ordinary_token_ids, token_texts

    ids, every = ordinary_token_ids(lab), token_texts(lab)
    texts = [every[i] for i in ids]
    words = [i for i, t in zip(ids, texts, strict=True) if t[:1] == " " and t[1:].isalpha() and len(t) > 3]
    if len(words) >= 4 * INDUCTION_SEGMENT:
        return words
    return [i for i, t in zip(ids, texts, strict=True) if t.strip().isalnum()]


def induction_family(lab: Any, *, n_items: int = 96, seed: int = 0, segment: int = INDUCTION_SEGMENT,
                     prefix: int = INDUCTION_PREFIX) -> Family:
    """Repeated random tokens as a family: ``segment`` distinct random tokens, then the first ``prefix`` again.

    The answer is the segment's next token (``seg[prefix]``), what an induction circuit copies;
    the ``wrong`` foil is a later token of the first copy (``seg[j]``, ``j > prefix``), which, like
    the answer, occurs once in the prompt, so a model that merely favours tokens it has seen does
    not prefer the answer. Every prompt has the same token count (a mean ablation averages over
    them). Deterministic in ``seed``; items whose text does not tokenize back to the drawn ids are
    redrawn. ``lab`` is a :class:`~pytest_annotate.lab.Lab` (its tokenizer draws and checks the tokens).
    The Gemma induction findings (``behaviours/gemma_3_270m/test_induction.py``) and the calibration
    (:mod:`pytest_annotate.calibration`) are stated over it.
    """
    if not 0 < prefix < segment - 1:
        raise ValueError(f"prefix={prefix!r}: give 1 <= prefix <= segment - 2 (a later token is the foil)")
    pool = _word_pool(lab)
    if len(pool) < segment:
        raise ValueError(f"{lab.model_id} has {len(pool)} usable tokens, fewer than segment={segment}")
    tokenizer = lab.bridge.tokenizer
    rng = random.Random(f"induction-family/{seed}")
    items: dict[str, tuple[str, str, str]] = {}
    offset = int(lab.has_bos)
    for _ in range(20 * n_items):
        if len(items) == n_items:
            break
        seg = rng.sample(pool, segment)
        ids = seg + seg[:prefix]
        prompt = tokenizer.decode(ids)
        answer = tokenizer.decode(ids + [seg[prefix]])[len(prompt):]
        j = rng.randrange(prefix + 1, segment)
        wrong = tokenizer.decode(ids + [seg[j]])[len(prompt):]
        if (lab.tokens(prompt).tolist()[offset:] != ids or lab.answer_tokens(answer) != (seg[prefix],)
                or lab.answer_tokens(wrong) != (seg[j],)):
            continue
        items.setdefault(prompt, (prompt, answer, wrong))
    if len(items) < n_items:
        raise ValueError(f"only {len(items)} of {n_items} induction items tokenize back on {lab.model_id}")
    return from_list(
        f"induction-s{segment}p{prefix}-seed{seed}", items.values(),
        description=f"{segment} random tokens, then the first {prefix} again: the next one (the foil: a later one)",
    )
