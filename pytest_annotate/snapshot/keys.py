"""Stash keys the snapshot layer publishes on ``config.stash``.

>>> import pytest
>>> isinstance(DRIFT_RECORDS, pytest.StashKey)
True
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from pytest_annotate.snapshot.drift import DriftRecord
    from pytest_annotate.snapshot.state import SnapshotRunState  # noqa: F401  (in a string below)

#: The drift records of a ``--snapshot-baseline`` run, in the order they were made
#: (``missing`` ones are added at session finish). Empty in a normal run.
DRIFT_RECORDS = pytest.StashKey[list["DriftRecord"]]()
#: The snapshot layer's per-session bookkeeping (used files, outcomes, collected nodes).
RUN_STATE = pytest.StashKey["SnapshotRunState"]()
