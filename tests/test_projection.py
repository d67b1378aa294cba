"""Projection: the fields of a result a (published-baseline) snapshot keeps."""

from __future__ import annotations

import dataclasses
import importlib.util
from pathlib import Path
from types import SimpleNamespace as NS

import pytest

from pytest_annotate import Projection, each
from pytest_annotate.results import kind
from pytest_annotate.snapshot import ProjectionError, SnapshotHeader, dumps, flatten

ROOT = Path(__file__).resolve().parent.parent


@dataclasses.dataclass(frozen=True)
class Fake:
    head: str
    score: float = dataclasses.field(metadata=kind("prob"))
    rank: int = 0
    top_tokens: tuple = ()


def text(value: object) -> str:
    return dumps(SnapshotHeader(model="m", type=type(value).__name__), flatten(value))


def test_of_and_record_serialize_alike():
    p = Projection("PublishedHeadScore", "head", "rank", "score", kinds={"score": "prob"})
    measured = p.of(Fake("L5H5", 0.91, 0))
    assert text(measured) == text(p.record(head="L5H5", rank=0, score=0.91))
    assert text(measured).splitlines()[2:] == ["# type: PublishedHeadScore", "", "head = 'L5H5'", "rank = 0",
                                               "score [prob] = 0.91"]


def test_kinds_come_from_the_declaration_only():
    """A source field's metadata is not carried, so of() and record() cannot disagree."""
    assert "[prob]" not in text(Projection("X", "score").of(Fake("L0H0", 0.5)))


def test_renames_paths_functions_and_each():
    token = Projection("Tok", "token", prob="p")
    p = Projection("Top", "head", first="top_tokens.0.token", n=lambda r: len(r.top_tokens),
                   top=each("top_tokens", token, 1))
    value = p.of(Fake("L1H0", 0.1, 2, (NS(token="a", p=0.5), {"token": "b", "p": 0.25})))
    assert [leaf.path_str for leaf in flatten(value)] == ["head", "first", "n", "top.0.token", "top.0.prob"]
    assert value.first == "a" and value.n == 2 and value.top[0].prob == 0.5
    assert type(value) is type(p.of(Fake("L2H0", 0.2, 1, (NS(token="c", p=0.1),))))  # one class per declaration


@pytest.mark.parametrize(("make", "match"), [
    (lambda: Projection("bad name", "x"), "a projection's name is a class name"),
    (lambda: Projection("X"), "keeps no field"),
    (lambda: Projection("X", "a.rank", rank="b"), "field rank is named twice"),
    (lambda: Projection("X", "rank", kinds={"prob": "prob"}), "kinds= names prob, which it does not keep"),
    (lambda: Projection("X", "rank", kinds={"rank": "probability"}), "unknown tolerance kind"),
    (lambda: Projection("X", "rank").record(rank=0, prob=1.0), "X takes exactly rank; unknown prob"),
    (lambda: Projection("X", "rank", "head").record(rank=0), "missing head"),
    (lambda: Projection("X", "top_tokens.3.prob").of(Fake("h", 0.0, 0, (1,))), "index 3 is out of range"),
    (lambda: Projection("X", "sorce").of(Fake("h", 0.0)), "Fake has no 'sorce'; it has head, score, rank"),
])
def test_bad_declarations_and_inputs_say_what_is_valid(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_published_snapshots_are_what_the_writer_makes():
    """Every committed published-baseline file is byte for byte what tools/write_published_snapshots.py
    renders from the behaviours' projections."""
    spec = importlib.util.spec_from_file_location("write_published_snapshots", ROOT / "tools" /
                                                  "write_published_snapshots.py")
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    files = tool.published()
    assert len(files) == 46
    for path, rendered in files:
        assert path.read_text(encoding="utf-8") == rendered, path
