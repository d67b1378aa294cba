"""What the snapshot layer remembers during one session.

Besides the snapshot files each assertion used, it records what pytest *collected*
(each collector's children) and how each test *ended*. That is what makes pruning safe:
a snapshot file is deleted only when its owning test provably ran to success without
using it, or provably no longer exists (see :mod:`pytest_annotate.snapshot.prune`).

>>> state = SnapshotRunState()
>>> state.children["t.py"] = {"t.py::test_a", "t.py::TestB"}
>>> state.children["t.py::TestB"] = {"t.py::TestB::test_c"}
>>> state.owner_is_gone("t.py::test_old"), state.owner_is_gone("t.py::TestB::test_c"), state.owner_is_gone("u.py::x")
(True, False, False)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from itertools import pairwise
from pathlib import Path
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from pytest_annotate.snapshot.drift import DriftRecord
    from pytest_annotate.snapshot.prune import UnusedSnapshot
    from pytest_annotate.snapshot.settings import SnapshotSettings

Outcome = Literal["passed", "failed", "skipped"]


def nodeid_chain(nodeid: str) -> list[str]:
    """The node ids from a test's module down to the test.

    >>> nodeid_chain("d/t.py::TestA::test_x[a::b]")
    ['d/t.py', 'd/t.py::TestA', 'd/t.py::TestA::test_x[a::b]']
    """
    head, bracket, params = nodeid.partition("[")
    parts = head.split("::")
    parts[-1] += bracket + params
    return ["::".join(parts[: i + 1]) for i in range(len(parts))]


@dataclass
class SnapshotRunState:
    """Per-session bookkeeping, kept in ``config.stash[RUN_STATE]``."""

    settings: SnapshotSettings | None = None
    #: snapshot files read or written by an assertion of this session (resolved paths)
    used: set[Path] = field(default_factory=set)
    drift: list[DriftRecord] = field(default_factory=list)
    outcomes: dict[str, Outcome] = field(default_factory=dict)
    #: collector node id -> node ids of its children, for every collector that collected
    children: dict[str, set[str]] = field(default_factory=dict)
    collected_modules: set[Path] = field(default_factory=set)
    collected_dirs: set[Path] = field(default_factory=set)
    unused: list[UnusedSnapshot] = field(default_factory=list)
    deleted: list[Path] = field(default_factory=list)

    def record_outcome(self, nodeid: str, when: str, outcome: str) -> None:
        """Fold one phase report into the test's outcome (a failed phase wins)."""
        if when == "call" or outcome != "passed":
            if self.outcomes.get(nodeid) != "failed":
                self.outcomes[nodeid] = outcome  # type: ignore[assignment]
        elif when == "setup":
            self.outcomes.setdefault(nodeid, "passed")

    def owner_passed(self, nodeid: str) -> bool:
        return self.outcomes.get(nodeid) == "passed"

    def owner_ran(self, nodeid: str) -> bool:
        """Whether the test's body ran (whatever its result), i.e. it was not skipped."""
        return self.outcomes.get(nodeid) in ("passed", "failed")

    def owner_is_gone(self, nodeid: str) -> bool:
        """True only when a collector on the test's path collected this session and does
        not list the next node: the test was removed or renamed. Unknown is not gone."""
        chain = nodeid_chain(nodeid)
        for parent, child in pairwise(chain):
            if parent not in self.children:
                return False
            if child not in self.children[parent]:
                return True
        return False
