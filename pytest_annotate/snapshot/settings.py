"""Where this session's snapshots live and how they are compared.

Snapshots live under ``<rootdir>/snapshots/<model-id>/<test file relative to rootdir,
minus .py>/<test name>.snap``, so ``behaviours/test_ioi.py::test_name_mover[0]`` run on
``gpt2-small`` reads and writes
``snapshots/gpt2-small/behaviours/test_ioi/test_name_mover[0].snap``.

>>> from pathlib import Path
>>> s = SnapshotSettings(rootdir=Path("/repo"), snapshot_dir=Path("/repo/snapshots"), model_id="gpt2-small")
>>> s.module_dir(Path("/repo/behaviours/test_ioi.py")).as_posix()
'/repo/snapshots/gpt2-small/behaviours/test_ioi'
>>> s.display(Path("/repo/snapshots/gpt2-small/x.snap"))
'snapshots/gpt2-small/x.snap'
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from pytest_annotate.snapshot.errors import SnapshotConfigError
from pytest_annotate.snapshot.tolerance import Tolerance

#: Default folder (relative to the rootdir) holding one sub-folder per model id.
DEFAULT_SNAPSHOT_DIR = "snapshots"
_BAD_MODEL_ID = re.compile(r"[\s/\\:*?\"<>|\x00-\x1f]")


def check_model_id(model_id: str) -> str:
    """Return ``model_id`` if it can name a snapshot folder, else raise.

    >>> check_model_id("pythia-160m-deduped@step3000")
    'pythia-160m-deduped@step3000'
    >>> check_model_id("../x")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    pytest_annotate.snapshot.errors.SnapshotConfigError: model id '../x' cannot name a snapshot folder: ...
    """
    if not model_id or model_id.startswith(".") or _BAD_MODEL_ID.search(model_id):
        raise SnapshotConfigError(
            f"model id {model_id!r} cannot name a snapshot folder: use letters, digits and . _ - @ + = "
            "(no slashes, spaces or leading dot), e.g. 'gpt2-small' or 'pythia-160m-deduped@step3000'"
        )
    return model_id


@dataclass(frozen=True)
class SnapshotSettings:
    """The snapshot configuration of one session (hashable: one extension class each).

    ``baseline`` is the model id given to ``--snapshot-baseline``: the session then reads
    that model's snapshots, records drift, never fails on it and never writes.
    """

    rootdir: Path
    snapshot_dir: Path
    model_id: str
    dtype: str = "float32"
    baseline: str | None = None
    update: bool = False
    tolerance: Tolerance = field(default_factory=Tolerance.default)

    def __post_init__(self) -> None:
        check_model_id(self.model_id)
        if self.baseline is not None:
            check_model_id(self.baseline)

    @property
    def read_model_id(self) -> str:
        """The model whose snapshots this session compares against."""
        return self.baseline or self.model_id

    def model_dir(self, model_id: str | None = None) -> Path:
        return self.snapshot_dir / (model_id or self.read_model_id)

    def module_dir(self, test_file: Path, model_id: str | None = None) -> Path:
        """The folder of a test module's snapshots: its path relative to the rootdir,
        minus ``.py``, under the model's folder (a file outside the rootdir uses its
        name only)."""
        try:
            relative = test_file.resolve().relative_to(self.rootdir.resolve())
        except ValueError:
            relative = Path(test_file.name)
        return self.model_dir(model_id) / relative.with_suffix("")

    def display(self, path: Path | str) -> str:
        """``path`` relative to the rootdir when it is inside it, for messages."""
        try:
            return Path(path).resolve().relative_to(self.rootdir.resolve()).as_posix()
        except ValueError:
            return str(path)
