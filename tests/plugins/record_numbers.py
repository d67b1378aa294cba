"""A pytest plugin for the reproducibility test: writes every number a run judged, in full precision.

Loaded with ``-p record_numbers`` (``tests/plugins`` on ``PYTHONPATH``); the output path comes from
``$RECORD_NUMBERS``. One line per number, ``<test id> :: <field path> = <repr>``, from every result
an ``assert_*``/``check_*`` helper recorded and every value compared with a snapshot, plus one
outcome line per test. Two runs are reproducible when the two files are equal.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest

from pytest_annotate.plugin import keys
from pytest_annotate.snapshot.assertion import AnnotateSnapshotAssertion
from pytest_annotate.snapshot.serialize import flatten

_current: list[str] = [""]
_snapshots: list[tuple[str, Any]] = []
_outcomes: dict[str, str] = {}
_original_assert = AnnotateSnapshotAssertion._assert


def _recording_assert(self: AnnotateSnapshotAssertion, data: Any) -> bool:
    _snapshots.append((_current[0], data))
    return _original_assert(self, data)


AnnotateSnapshotAssertion._assert = _recording_assert  # type: ignore[method-assign]


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Iterator[None]:
    _current[0] = item.nodeid
    return (yield)


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.when == "call" or report.outcome != "passed":
        _outcomes.setdefault(report.nodeid, report.outcome)


def _lines(nodeid: str, value: Any) -> list[str]:
    return [f"{nodeid} :: {leaf.path_str} = {leaf.render()}" for leaf in flatten(value)]


def pytest_sessionfinish(session: pytest.Session) -> None:
    recorded = session.config.stash.get(keys.RECORDED_RESULTS, [])
    lines = [f"{nodeid} :: outcome = {outcome}" for nodeid, outcome in sorted(_outcomes.items())]
    for nodeid, value in sorted([*recorded, *_snapshots], key=lambda pair: pair[0]):
        lines += _lines(nodeid, value)
    with open(os.environ["RECORD_NUMBERS"], "w") as fh:
        fh.write("\n".join(lines) + "\n")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    if os.environ.get("RECORD_NUMBERS_REVERSE"):
        items.reverse()  # the second run goes backwards: no number may depend on what ran before
