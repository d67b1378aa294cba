"""Reading and atomically writing snapshot files.

A write goes to a temporary file in the same folder, is flushed and fsynced, then
``os.replace``-d over the snapshot: a process killed at any moment leaves either the old
file or the new one, never half of one. A left-over temporary file (``.<name>.*.tmp``)
is never read as a snapshot and is removed by the next ``--snapshot-update``.

>>> import tempfile, pathlib
>>> d = pathlib.Path(tempfile.mkdtemp())
>>> atomic_write_text(d / "a" / "t.snap", "hello\\n")
>>> read_text(d / "a" / "t.snap"), read_text(d / "a" / "missing.snap")
('hello\\n', None)
"""

from __future__ import annotations

import contextlib
import errno
import os
import tempfile
from pathlib import Path

from pytest_annotate.snapshot.errors import SnapshotFileError, SnapshotWriteError

TMP_SUFFIX = ".tmp"


def _why(error: OSError) -> str:
    if isinstance(error, PermissionError) or error.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return "the folder is read-only"
    return error.strerror or type(error).__name__


def atomic_write_text(path: Path, text: str) -> None:
    """Replace ``path`` with ``text`` atomically; on failure the old file is untouched
    and :class:`SnapshotWriteError` says why."""
    folder = path.parent
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise SnapshotWriteError(
            f"cannot create the snapshot folder {folder}: {_why(e)} ({e.strerror or e}). "
            "Make it writable, or run without --snapshot-update."
        ) from e
    tmp_name: str | None = None
    try:
        fd, tmp_name = tempfile.mkstemp(dir=folder, prefix=f".{path.name}.", suffix=TMP_SUFFIX)
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp_name, path)
        tmp_name = None
        _fsync_dir(folder)
    except OSError as e:
        raise SnapshotWriteError(
            f"cannot write snapshot {path}: {_why(e)} ({e.strerror or e}); the previous snapshot, "
            "if any, is unchanged. Make the folder writable, or run without --snapshot-update."
        ) from e
    finally:
        if tmp_name is not None:
            with contextlib.suppress(OSError):
                os.unlink(tmp_name)


def _fsync_dir(folder: Path) -> None:
    """Persist the rename itself (POSIX); a no-op where directories cannot be opened."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def read_text(path: Path, display: str | None = None) -> str | None:
    """The text of a snapshot file, or ``None`` when there is none."""
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except UnicodeDecodeError as e:
        raise SnapshotFileError(display or path, None, f"is not UTF-8 text ({e.reason} at byte {e.start})") from e
    except OSError as e:
        raise SnapshotFileError(display or path, None, f"cannot be read: {e.strerror or e}") from e


def leftover_temp_files(folder: Path) -> list[Path]:
    """Temporary files an interrupted write left in ``folder``."""
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.glob(f".*{TMP_SUFFIX}") if p.is_file())
