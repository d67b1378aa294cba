"""Stash keys shared between the plugin's parts (model, snapshots, report).

pytest's ``config.stash`` is the typed way for plugins to share per-session state; every
value a part of pytest-annotate publishes for another part goes through one of these keys.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from pytest_annotate.models.spec import ModelSpec  # noqa: F401  (in a string below)
    from pytest_annotate.snapshot.drift import DriftRecord  # noqa: F401  (in a string below)
    from pytest_annotate.snapshot.state import SnapshotRunState  # noqa: F401  (in a string below)

#: The resolved model specification for this session (set in ``pytest_configure``).
MODEL_SPEC = pytest.StashKey["ModelSpec"]()
#: The model id used as the snapshot folder name, e.g. ``gemma-3-270m-q4_k_m`` or
#: ``pythia-160m-deduped@step3000`` (set in ``pytest_configure``).
MODEL_ID = pytest.StashKey[str]()
#: The torch dtype name of this session's run, e.g. ``"float32"`` (set in ``pytest_configure``).
DTYPE = pytest.StashKey[str]()
#: Results recorded during the run, for the terminal summary and the report:
#: a list of ``(nodeid, result_object)`` pairs.
RECORDED_RESULTS = pytest.StashKey[list[tuple[str, Any]]]()
#: The drift records of a ``--snapshot-baseline`` run, in the order they were made
#: (``missing`` ones are added at session finish). Empty in a normal run.
DRIFT_RECORDS = pytest.StashKey[list["DriftRecord"]]()
#: The snapshot layer's per-session bookkeeping (used files, outcomes, collected nodes).
RUN_STATE = pytest.StashKey["SnapshotRunState"]()
