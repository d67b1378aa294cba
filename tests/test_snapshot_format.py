"""The .snap text format: what results become, round trips, and broken or foreign files."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from pytest_annotate.snapshot import (
    SnapshotFileError,
    SnapshotHeader,
    SnapshotModelMismatchError,
    SnapshotSerializeError,
    compare,
    dumps,
    flatten,
    loads,
)
from pytest_annotate.snapshot.serialize import MAX_LISTED_FLOATS, ArrayValue
from pytest_annotate.plugin.testing import make_suite, run_suite
from pytest_annotate.snapshot.textformat import check_model

pytest_plugins = ["pytester"]


@dataclass(frozen=True)
class TopTokenResult:
    prompt: str
    answer: str
    rank: int
    logit: float
    prob: float
    top_tokens: tuple[tuple[str, float], ...]
    passed: bool
    score: float = field(default=0.25, metadata={"kind": "prob"})


RESULT = TopTokenResult(
    prompt="When Mary and John went to the store, John gave a drink to",
    answer=" Mary",
    rank=0,
    logit=18.482511520385742,
    prob=0.7043651938438416,
    top_tokens=((" Mary", 0.7043651938438416), (" them", 0.0412)),
    passed=True,
)


def _text(data: object, model: str = "gpt2-small") -> str:
    return dumps(SnapshotHeader(model=model, dtype="float32", test="t.py::test_x", type="R"), flatten(data))


def test_a_result_is_one_field_per_line_with_full_digits() -> None:
    text = _text(RESULT)
    assert text.splitlines()[:6] == [
        "# pytest-annotate snapshot v1",
        "# model: gpt2-small",
        "# dtype: float32",
        "# test: t.py::test_x",
        "# type: R",
        "",
    ]
    assert text.splitlines()[6:] == [
        "prompt = 'When Mary and John went to the store, John gave a drink to'",
        "answer = ' Mary'",
        "rank = 0",
        "logit = 18.482511520385742",
        "prob = 0.7043651938438416",
        "top_tokens.0.0 = ' Mary'",
        "top_tokens.0.1 = 0.7043651938438416",
        "top_tokens.1.0 = ' them'",
        "top_tokens.1.1 = 0.0412",
        "passed = True",
        "score [prob] = 0.25",
    ]


def test_round_trip_gives_back_the_same_values() -> None:
    doc = loads(_text(RESULT), "x.snap")
    assert [leaf.value for leaf in doc.leaves] == [leaf.value for leaf in flatten(RESULT)]
    assert doc.leaves[-1].kind == "prob"
    assert all(f.status == "same" for f in compare(doc, flatten(RESULT)).fields)


def test_dicts_with_awkward_keys_and_empty_containers() -> None:
    data = {" Mary": 1.5, "3": 2, 4: "x", "a.b": None, "e": [], "d": {}, "n": float("nan"), "i": -math.inf}
    doc = loads(_text(data), "x.snap")
    assert [leaf.path for leaf in doc.leaves] == [(" Mary",), ("3",), (4,), ("a.b",), ("e",), ("d",), ("n",), ("i",)]
    assert compare(doc, flatten(data)).ok


def test_small_tensors_and_arrays_are_listed_with_shape_and_dtype() -> None:
    data = {
        "t": torch.tensor([[0.5, -1.25], [2.0, 3.0]]),
        "b": torch.tensor([0.5, 0.25], dtype=torch.bfloat16),
        "ids": np.array([1, 2, 3]),
        "mask": np.array([True, False]),
        "scalar": torch.tensor(0.75),
    }
    lines = _text(data).splitlines()[6:]
    assert lines == [
        "t = tensor(float32, shape=(2, 2), values=[[0.5, -1.25], [2.0, 3.0]])",
        "b = tensor(bfloat16, shape=(2,), values=[0.5, 0.25])",
        "ids = ndarray(int64, shape=(3,), values=[1, 2, 3])",
        "mask = ndarray(bool, shape=(2,), values=[True, False])",
        "scalar = 0.75",
    ]
    assert compare(loads(_text(data), "x.snap"), flatten(data)).ok


def test_large_arrays_are_summarized_by_statistics() -> None:
    big = np.linspace(-1.0, 1.0, MAX_LISTED_FLOATS + 1)
    (leaf,) = flatten({"acts": big})
    assert isinstance(leaf.value, ArrayValue) and leaf.value.values is None
    assert [name for name, _ in leaf.value.stats or ()] == ["mean", "std", "min", "max", "norm"]
    moved = compare(flatten({"acts": big}), flatten({"acts": big + 1e-3}))
    assert [f.path for f in moved.failures] == ["acts.mean", "acts.min", "acts.max"]  # std and norm held
    ints = flatten({"token_ids": np.arange(1000)})[0].value
    assert isinstance(ints, ArrayValue) and dict(ints.stats or ())["sum"] == 499500
    assert not compare(flatten({"token_ids": np.arange(1000)}), flatten({"token_ids": np.arange(1000)[::-1].copy()})).ok


def test_shape_changes_are_reported_exactly() -> None:
    result = compare(flatten({"x": np.zeros(3)}), flatten({"x": np.zeros(4)}))
    assert {(f.path, f.status) for f in result.failures} == {("x.shape", "changed"), ("x.3", "added")}


def test_unsupported_objects_are_named_with_their_path() -> None:
    with pytest.raises(SnapshotSerializeError, match=r"cannot snapshot .*object at 'a\.0'"):
        flatten({"a": [object()]})
    with pytest.raises(SnapshotSerializeError, match="complex"):
        flatten({"z": np.array([1j, 2j])})


_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**63),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=20),
)
_keys = st.one_of(st.text(max_size=8), st.integers(-5, 5))
_data = st.recursive(
    _scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(_keys, inner, max_size=4)),
    max_leaves=12,
)


@given(_data)
def test_any_nested_data_survives_the_round_trip(data: object) -> None:
    leaves = flatten(data)
    doc = loads(_text(data), "x.snap")
    assert [leaf.path for leaf in doc.leaves] == [leaf.path for leaf in leaves]
    assert compare(doc, leaves).ok


def _broken(text: str) -> str:
    return "# pytest-annotate snapshot v1\n# model: gpt2-small\n\n" + text


@pytest.mark.parametrize(
    ("text", "line", "message"),
    [
        ("", 1, "not a pytest-annotate snapshot"),
        ("rank = 0\n", 1, "not a pytest-annotate snapshot"),
        ("# pytest-annotate snapshot v1\n\nrank = 0\n", 2, "does not name a model"),
        ("# pytest-annotate snapshot v1\n# model gpt2\n\nrank = 0\n", 2, "malformed header line"),
        (_broken("rank = 0\nprob = 0.5.1\n"), 5, "cannot read the value of 'prob'"),
        (_broken("rank = 0\nprob =\n"), 5, "the value is missing"),
        (_broken("rank 0\n"), 4, "expected 'path = value'"),
        (_broken("rank = 0\n\nrank = 1\n"), 6, "'rank' appears twice"),
        (_broken("a = 1\na.b = 2\n"), 5, "overlaps 'a'"),
        (_broken("x [probability] = 0.5\n"), 4, "unknown kind"),
        (_broken("x = __import__('os')\n"), 4, "cannot read the value"),
        (_broken("x = tensor(float32, shape=(3,), values=[1.0, 2.0])\n"), 4, "do not have that shape"),
        (_broken("x = [1, 2]\n"), 4, "one element per line"),
        (_broken("# only a comment\n"), 4, "no fields"),
    ],
)
def test_corrupt_files_name_the_file_and_the_line(text: str, line: int, message: str) -> None:
    with pytest.raises(SnapshotFileError, match=message) as info:
        loads(text, "snapshots/gpt2-small/t/test_x.snap")
    assert info.value.line == line
    assert str(info.value).startswith(f"snapshots/gpt2-small/t/test_x.snap:{line}: ")


def test_another_models_file_is_refused_with_its_line() -> None:
    doc = loads(_text({"rank": 0}, model="pythia-70m"), "snapshots/gpt2-small/t/test_x.snap")
    with pytest.raises(SnapshotModelMismatchError, match="recorded for model 'pythia-70m'.*'gpt2-small'") as info:
        check_model(doc, "gpt2-small")
    assert str(info.value).startswith("snapshots/gpt2-small/t/test_x.snap:2: ")


def test_comments_and_windows_line_endings_are_fine() -> None:
    text = _text({"prob": 0.5}).replace("\n", "\r\n") + "# reviewer: expected to drop after the fix\r\n"
    assert loads(text, "x.snap").leaves[0].value == 0.5


TEST_ONE = """
def test_x(snapshot, values):
    assert snapshot == {"rank": values["rank"], "prob": values["prob"]}
"""


def _snap(pytester: pytest.Pytester, model: str = "gpt2-small") -> Path:
    return pytester.path / "snapshots" / model / "test_one" / "test_x.snap"


def test_a_hand_broken_snapshot_fails_its_test_with_file_and_line(pytester: pytest.Pytester) -> None:
    make_suite(pytester, test_one=TEST_ONE)
    run_suite(pytester, "--snapshot-update", values={"rank": 0, "prob": 0.5}).assert_outcomes(passed=1)
    path = _snap(pytester)
    path.write_text(path.read_text().replace("prob = 0.5", "prob = O.5"))
    result = run_suite(pytester)
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*SnapshotFileError: snapshots/gpt2-small/test_one/test_x.snap:7: cannot read the value of 'prob'*"])
    # --snapshot-update records it afresh
    run_suite(pytester, "--snapshot-update").assert_outcomes(passed=1)
    assert "prob = 0.5\n" in path.read_text()


def test_a_file_of_another_model_in_our_folder_fails_with_a_clear_error(pytester: pytest.Pytester) -> None:
    make_suite(pytester, test_one=TEST_ONE)
    run_suite(pytester, "--snapshot-update", model="pythia-70m", values={"rank": 0, "prob": 0.5})
    theirs = _snap(pytester, "pythia-70m")
    ours = _snap(pytester)
    ours.parent.mkdir(parents=True)
    ours.write_text(theirs.read_text())
    result = run_suite(pytester)
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        ["*SnapshotModelMismatchError: snapshots/gpt2-small/test_one/test_x.snap:2: this snapshot was recorded for model 'pythia-70m'*"]
    )


def test_syrupy_filters_and_matchers_apply() -> None:
    from syrupy.filters import paths, props
    from syrupy.matchers import path_type

    data = {"prompt": "x", "top": [{"prob": 0.5, "token": " a"}], "seed": 7}
    assert [leaf.path_str for leaf in flatten(data, exclude=props("prompt", "token"))] == ["top.0.prob", "seed"]
    assert [leaf.path_str for leaf in flatten(data, include=paths("seed"))] == ["seed"]
    replaced = flatten(data, matcher=path_type({"seed": (int,)}, replacer=lambda data, match: "<int>"))
    assert replaced[-1].value == "<int>"


def test_exclude_in_a_test(pytester: pytest.Pytester) -> None:
    make_suite(
        pytester,
        test_ex="""
from syrupy.filters import props

def test_x(snapshot, values):
    assert snapshot(exclude=props("run_id")) == {"rank": 0, "run_id": values["run_id"]}
""",
    )
    run_suite(pytester, "--snapshot-update", values={"run_id": 1}).assert_outcomes(passed=1)
    run_suite(pytester, values={"run_id": 2}).assert_outcomes(passed=1)
    assert "run_id" not in (pytester.path / "snapshots/gpt2-small/test_ex/test_x.snap").read_text()
