"""Tolerant, per-model snapshots of result objects (a syrupy extension).

One module, one job:

- :mod:`~pytest_annotate.snapshot.tolerance`: kinds of fields and their bands;
- :mod:`~pytest_annotate.snapshot.serialize`: result objects → leaves (path, value, kind);
- :mod:`~pytest_annotate.snapshot.projection`: the fields of a result a snapshot keeps (published baselines);
- :mod:`~pytest_annotate.snapshot.textformat`: the ``.snap`` text format, both ways;
- :mod:`~pytest_annotate.snapshot.compare`: leaf-by-leaf comparison and statistics;
- :mod:`~pytest_annotate.snapshot.report`: the failure report;
- :mod:`~pytest_annotate.snapshot.drift`: drift records against a baseline model;
- :mod:`~pytest_annotate.snapshot.storage`: atomic writes;
- :mod:`~pytest_annotate.snapshot.prune`: which files no test uses any more;
- :mod:`~pytest_annotate.snapshot.extension` / :mod:`~pytest_annotate.snapshot.assertion`:
  the syrupy extension and the ``snapshot`` object;
- :mod:`pytest_annotate.plugin.snapshots`: the pytest wiring.

Nothing below ``extension`` imports pytest or syrupy, so a notebook can compare two
snapshot files directly:

>>> from pytest_annotate.snapshot import compare, flatten
>>> compare(flatten({"logit": 18.0}), flatten({"logit": 18.01})).ok
True
"""

from pytest_annotate.snapshot.compare import Comparison, FieldDiff, compare
from pytest_annotate.snapshot.drift import (
    DRIFT_STATUSES,
    DriftRecord,
    DriftStatus,
    KeyNumber,
    drift_table,
)
from pytest_annotate.snapshot.errors import (
    SnapshotConfigError,
    SnapshotError,
    SnapshotFileError,
    SnapshotModelMismatchError,
    SnapshotSerializeError,
    SnapshotWriteError,
    ToleranceError,
)
from pytest_annotate.snapshot.projection import Projection, ProjectionError, each
from pytest_annotate.snapshot.serialize import Leaf, flatten
from pytest_annotate.snapshot.settings import SnapshotSettings
from pytest_annotate.snapshot.textformat import (
    SnapshotDocument,
    SnapshotHeader,
    dumps,
    loads,
)
from pytest_annotate.snapshot.tolerance import (
    DEFAULT_BANDS,
    DTYPE_FACTORS,
    KINDS,
    Band,
    Kind,
    Tolerance,
)

__all__ = [
    "DEFAULT_BANDS",
    "DRIFT_STATUSES",
    "DTYPE_FACTORS",
    "KINDS",
    "Band",
    "Comparison",
    "DriftRecord",
    "DriftStatus",
    "FieldDiff",
    "KeyNumber",
    "Kind",
    "Leaf",
    "Projection",
    "ProjectionError",
    "SnapshotConfigError",
    "SnapshotDocument",
    "SnapshotError",
    "SnapshotFileError",
    "SnapshotHeader",
    "SnapshotModelMismatchError",
    "SnapshotSerializeError",
    "SnapshotSettings",
    "SnapshotWriteError",
    "Tolerance",
    "ToleranceError",
    "compare",
    "drift_table",
    "each",
    "dumps",
    "flatten",
    "loads",
]
