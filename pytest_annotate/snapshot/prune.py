"""Find (and on ``--snapshot-update`` delete) snapshot files no test uses any more.

We do not let syrupy do this. Its unused-snapshot logic matches snapshot *names*
against the ``-k`` expression and the paths given on the command line; ``-k 'not gpu'``
would then call the snapshots of a deselected ``@gpu`` test unused and delete them, and
it knows nothing of model folders. Our rule needs no guessing: every snapshot file names
its owning test in its header, and a file of the model under test is unused only when

* its test ran this session and **passed** without producing it (the test now makes
  fewer assertions, or names them differently), or
* its test provably no longer exists: the module (or class) that would hold it was
  collected this session and did not yield it, or its test module is gone from a
  folder that was collected.

A test that was deselected (``-k``, ``-m``, ``::node``), skipped or failed, and any
file of another model, is never touched. Files that cannot be read are left alone.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from pytest_annotate.snapshot.errors import SnapshotFileError
from pytest_annotate.snapshot.settings import SnapshotSettings
from pytest_annotate.snapshot.state import SnapshotRunState
from pytest_annotate.snapshot.storage import leftover_temp_files, read_text
from pytest_annotate.snapshot.textformat import SnapshotDocument, loads

SUFFIX = ".snap"


@dataclass(frozen=True)
class UnusedSnapshot:
    """A snapshot file no assertion of this session used, and why it counts as unused."""

    path: Path
    nodeid: str
    reason: str
    document: SnapshotDocument | None = None


def _documents(folder: Path, settings: SnapshotSettings) -> Iterator[tuple[Path, SnapshotDocument]]:
    if not folder.is_dir():
        return
    for path in sorted(folder.glob(f"*{SUFFIX}")):
        if not path.is_file() or path.name.startswith("."):
            continue
        try:
            text = read_text(path, settings.display(path))
            if text is None:
                continue
            yield path, loads(text, settings.display(path))
        except SnapshotFileError:
            continue  # never delete what we cannot read; the owning test reports it


def _module_nodeid(module: Path, settings: SnapshotSettings) -> str:
    try:
        return module.resolve().relative_to(settings.rootdir.resolve()).as_posix()
    except ValueError:
        return module.name


def find_unused(
    settings: SnapshotSettings,
    state: SnapshotRunState,
    *,
    model_id: str,
    owner_done: Callable[[str], bool] | None = None,
) -> list[UnusedSnapshot]:
    """Snapshot files of ``model_id`` that no assertion used, per the rule above.

    ``owner_done(nodeid)`` says whether a test's run accounts for all its snapshots; by
    default a test must have passed (the baseline drift report uses "ran at all").
    """
    owner_done = owner_done or state.owner_passed
    used = {p.resolve() for p in state.used}
    found: dict[Path, UnusedSnapshot] = {}

    def consider(path: Path, doc: SnapshotDocument, orphan_module: str | None) -> None:
        if path.resolve() in used or doc.header.model != model_id or not doc.header.test:
            return
        nodeid = doc.header.test
        if orphan_module is not None and nodeid.split("::", 1)[0] == orphan_module:
            found[path] = UnusedSnapshot(path, nodeid, f"its test module {orphan_module} no longer exists", doc)
        elif owner_done(nodeid):
            found[path] = UnusedSnapshot(path, nodeid, "its test ran and no longer makes this assertion", doc)
        elif state.owner_is_gone(nodeid):
            found[path] = UnusedSnapshot(path, nodeid, "its test no longer exists", doc)

    for module in sorted(state.collected_modules):
        for path, doc in _documents(settings.module_dir(module, model_id), settings):
            consider(path, doc, None)

    # Folders mirroring a test module that is gone from a collected test folder.
    for folder in sorted(state.collected_dirs):
        mirror = settings.module_dir(folder / "_", model_id).parent
        if not mirror.is_dir():
            continue
        for sub in sorted(p for p in mirror.iterdir() if p.is_dir()):
            module = folder / f"{sub.name}.py"
            if module.exists() or (folder / sub.name).is_dir():
                continue
            for path, doc in _documents(sub, settings):
                consider(path, doc, _module_nodeid(module, settings))
    return sorted(found.values(), key=lambda u: u.path)


def delete_unused(unused: list[UnusedSnapshot], settings: SnapshotSettings, model_id: str) -> list[Path]:
    """Delete the files, then folders left empty (up to the model's folder)."""
    deleted: list[Path] = []
    model_dir = settings.model_dir(model_id).resolve()
    for item in unused:
        with contextlib.suppress(FileNotFoundError):
            item.path.unlink()
            deleted.append(item.path)
        folder = item.path.parent.resolve()
        while folder != model_dir and model_dir in folder.parents:
            try:
                folder.rmdir()
            except OSError:
                break
            folder = folder.parent
    return deleted


def delete_leftover_temp_files(settings: SnapshotSettings, state: SnapshotRunState, model_id: str) -> list[Path]:
    """Remove temporary files left by interrupted writes in the folders this session used."""
    removed = []
    folders = {p.parent for p in state.used} | {settings.module_dir(m, model_id) for m in state.collected_modules}
    for folder in folders:
        for tmp in leftover_temp_files(folder):
            with contextlib.suppress(OSError):
                tmp.unlink()
                removed.append(tmp)
    return removed
