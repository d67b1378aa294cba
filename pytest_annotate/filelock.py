"""An exclusive lock on a lock file, so that parallel pytest-xdist workers do a slow step once.

Used around the GGUF conversion (:mod:`pytest_annotate.models`) and the compat-processed weights
cache (:mod:`pytest_annotate.fastload`): the first worker does the work, the others wait and then
find the result. ``fcntl.flock`` locks are released by the kernel when a process dies, so a killed
worker never leaves a stale lock behind.

>>> import tempfile, pathlib
>>> with file_lock(pathlib.Path(tempfile.mkdtemp()) / ".convert.lock"):
...     pass
"""

from __future__ import annotations

import contextlib
import fcntl
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def file_lock(path: Path) -> Iterator[None]:
    """Hold an exclusive ``flock`` on ``path`` (created, with its folder, if missing)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)
