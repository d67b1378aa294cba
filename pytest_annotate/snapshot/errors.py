"""Errors of the snapshot layer: each names the file (and line) and says what to do."""

from __future__ import annotations

from os import PathLike

from pytest_annotate.errors import AnnotateError


class SnapshotError(AnnotateError):
    """Base class of the snapshot layer's errors."""


class ToleranceError(SnapshotError, ValueError):
    """A tolerance override is malformed (unknown kind, negative width, bad type)."""


class SnapshotSerializeError(SnapshotError, TypeError):
    """A value cannot be written to a snapshot (the message names its path)."""


class SnapshotConfigError(SnapshotError, RuntimeError):
    """The snapshot layer lacks something it needs (a model id, syrupy, ...)."""


class SnapshotFileError(SnapshotError, ValueError):
    """A snapshot file cannot be used: corrupt, hand-broken, or another model's.

    ``str()`` reads ``path:line: message`` like a compiler error, so editors and CI
    annotations can jump to it.

    >>> str(SnapshotFileError("snapshots/m/t/test_a.snap", 4, "bad value"))
    'snapshots/m/t/test_a.snap:4: bad value'
    """

    def __init__(self, path: str | PathLike[str], line: int | None, message: str) -> None:
        self.path = str(path)
        self.line = line
        self.message = message
        where = f"{self.path}:{line}" if line is not None else self.path
        super().__init__(f"{where}: {message}")


class SnapshotModelMismatchError(SnapshotFileError):
    """The file's header names another model than the folder it was found in."""


class SnapshotWriteError(SnapshotError, OSError):
    """A snapshot could not be written (read-only folder, full disk...); the old file,
    if any, is left as it was."""
