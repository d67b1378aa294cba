"""The syrupy extension: one text file per snapshot, under the model's folder, compared
number by number.

syrupy instantiates extensions without arguments, so a session's settings (model id,
dtype, folders) are bound as a class attribute: :meth:`AnnotateSnapshotExtension.configured`
returns one subclass per settings, cached, which keeps syrupy's per-class bookkeeping
(write queue, discovery) stable for the whole session.

Layout: ``snapshots/<model-id>/<test file minus .py>/<snapshot name>.snap`` with syrupy's
snapshot names (``test_a``, ``test_a.1`` for a test's second assertion,
``test_a[custom]`` for ``snapshot(name="custom")``, ``TestC.test_a[param]``...).
"""

from __future__ import annotations

import functools
import hashlib
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar
from unicodedata import category

from syrupy.data import Snapshot, SnapshotCollection, SnapshotCollections
from syrupy.extensions.base import AbstractSyrupyExtension

from pytest_annotate.snapshot.compare import Comparison, compare
from pytest_annotate.snapshot.errors import (
    SnapshotConfigError,
    SnapshotError,
    SnapshotFileError,
    SnapshotWriteError,
)
from pytest_annotate.snapshot.report import mismatch_lines
from pytest_annotate.snapshot.serialize import flatten
from pytest_annotate.snapshot.settings import SnapshotSettings
from pytest_annotate.snapshot.storage import atomic_write_text, read_text
from pytest_annotate.snapshot.textformat import (
    SnapshotDocument,
    SnapshotHeader,
    check_model,
    dumps,
    loads,
)
from pytest_annotate.snapshot.tolerance import Tolerance

if TYPE_CHECKING:
    from collections.abc import Iterator

    from syrupy.location import PyTestLocation
    from syrupy.types import (
        PropertyFilter,
        PropertyMatcher,
        SerializableData,
        SerializedData,
        SnapshotIndex,
    )

_MAX_FILENAME = 255
_UNSAFE = frozenset('\\/?*:|"<>%')


class AnnotateSnapshotExtension(AbstractSyrupyExtension):
    """Tolerant, per-model snapshots (use it through the ``annotate_snapshot`` fixture).

    Per assertion, :class:`~pytest_annotate.snapshot.assertion.AnnotateSnapshotAssertion`
    calls :meth:`prepare` with the resolved tolerance and the test's node id; after a
    comparison :attr:`last_comparison` holds the field-by-field result.
    """

    file_extension = "snap"
    # One small file per assertion: nothing to gain from batching, and an interrupted
    # session keeps what it already wrote.
    write_immediately = True
    settings: ClassVar[SnapshotSettings | None] = None

    def __init__(self) -> None:
        self.tolerance: Tolerance = self.get_settings().tolerance if self.settings else Tolerance.default()
        self.nodeid: str | None = None
        self.last_comparison: Comparison | None = None
        self._documents: dict[str, SnapshotDocument] = {}

    # -- configuration -------------------------------------------------------------

    @classmethod
    def configured(cls, settings: SnapshotSettings) -> type[AnnotateSnapshotExtension]:
        """The extension class bound to ``settings`` (the same class for equal settings)."""
        return _configured(cls, settings)

    @classmethod
    def get_settings(cls) -> SnapshotSettings:
        if cls.settings is None:
            raise SnapshotConfigError(
                f"{cls.__name__} has no settings: use the annotate_snapshot fixture of "
                "pytest_annotate.plugin.snapshots (it knows the model id), or "
                "AnnotateSnapshotExtension.configured(settings)"
            )
        return cls.settings

    def prepare(self, *, tolerance: Tolerance, nodeid: str | None) -> None:
        """Set the tolerance and the owning test for the next assertion."""
        self.tolerance = tolerance
        self.nodeid = nodeid
        self.last_comparison = None

    # -- serialization -------------------------------------------------------------

    def serialize(
        self,
        data: SerializableData,
        *,
        exclude: PropertyFilter | None = None,
        include: PropertyFilter | None = None,
        matcher: PropertyMatcher | None = None,
    ) -> SerializedData:
        settings = self.get_settings()
        leaves = flatten(data, exclude=exclude, include=include, matcher=matcher)
        is_record = hasattr(type(data), "__dataclass_fields__")
        header = SnapshotHeader(
            model=settings.model_id,
            dtype=settings.dtype,
            test=self.nodeid,
            type=type(data).__name__ if is_record else None,
        )
        return dumps(header, leaves)

    def document(self, text: str, source: str = "<received>") -> SnapshotDocument:
        """Parse (once) a snapshot text."""
        doc = self._documents.get(text)
        if doc is None:
            doc = loads(text, source)
            self._documents[text] = doc
        return doc

    # -- comparison ----------------------------------------------------------------

    def compare_texts(self, snapshot_data: str, serialized_data: str) -> Comparison:
        """Compare a stored snapshot with a new serialization, under :attr:`tolerance`."""
        return compare(self.document(snapshot_data, "<snapshot>"), self.document(serialized_data), self.tolerance)

    def matches(self, *, serialized_data: SerializableData, snapshot_data: SerializableData) -> bool:
        # syrupy's own matches() compares the two strings; we parse both back into
        # structure and compare each number within its band (see compare.py for why).
        self.last_comparison = self.compare_texts(str(snapshot_data), str(serialized_data))
        return self.last_comparison.ok

    def diff_lines(self, serialized_data: SerializedData, snapshot_data: SerializedData) -> Iterator[str]:
        if not snapshot_data:
            yield "No snapshot recorded yet: run with --snapshot-update to record it."
            return
        comparison = self.last_comparison or self.compare_texts(str(snapshot_data), str(serialized_data))
        yield from mismatch_lines(comparison)
        yield "Run with --snapshot-update to accept the new values."

    # -- storage -------------------------------------------------------------------

    @classmethod
    def dirname(cls, *, test_location: PyTestLocation) -> str:
        return str(cls.get_settings().module_dir(Path(test_location.filepath)))

    @classmethod
    def get_snapshot_name(cls, *, test_location: PyTestLocation, index: SnapshotIndex = 0) -> str:
        name = AbstractSyrupyExtension.get_snapshot_name(test_location=test_location, index=index)
        return file_safe(name, _MAX_FILENAME - len(cls.file_extension) - 1)

    @classmethod
    def matches_test_location(cls, *, test_location: PyTestLocation, snapshot_location: str) -> bool:
        # Our files sit in the folder mirroring the test module (syrupy's own check wants
        # the file name to start with the raw parametrized id, which file_safe escapes).
        return Path(snapshot_location).parent == Path(cls.dirname(test_location=test_location))

    @classmethod
    def get_file_basename(cls, *, test_location: PyTestLocation, index: SnapshotIndex) -> str:
        return cls.get_snapshot_name(test_location=test_location, index=index)

    def discover_snapshots(
        self, *, test_location: PyTestLocation, ignore_extensions: list[str] | None = None
    ) -> SnapshotCollections:
        # Deliberately empty: syrupy's unused-snapshot detection guesses from -k and
        # paths and would delete deselected tests' snapshots. prune.py decides instead.
        return SnapshotCollections()

    def read_snapshot_collection(self, *, snapshot_location: str) -> SnapshotCollection:
        collection = SnapshotCollection(location=snapshot_location)
        if Path(snapshot_location).is_file():
            collection.add(Snapshot(name=Path(snapshot_location).stem))
        return collection

    def read_snapshot_data_from_location(
        self, *, snapshot_location: str, snapshot_name: str, session_id: str
    ) -> SerializableData | None:
        settings = self.get_settings()
        path = Path(snapshot_location)
        display = settings.display(path)
        try:
            text = read_text(path, display)
            if text is None:
                return None
            doc = loads(text, display)
            check_model(doc, settings.read_model_id)
        except SnapshotFileError:
            if settings.update and not settings.baseline:
                return None  # --snapshot-update records it afresh
            raise
        self._documents[text] = doc
        return text

    @classmethod
    def write_snapshot(
        cls,
        *,
        snapshot_location: str,
        snapshots: list[tuple[SerializedData, PyTestLocation, SnapshotIndex]],
        name_order: dict[str, int] | None = None,
    ) -> None:
        if cls.get_settings().baseline:
            raise SnapshotConfigError("--snapshot-baseline never writes snapshots")
        try:
            super().write_snapshot(snapshot_location=snapshot_location, snapshots=snapshots, name_order=name_order)
        except SnapshotError:
            raise
        except OSError as e:  # e.g. syrupy's mkdir of the folder
            raise SnapshotWriteError(
                f"cannot write snapshot {snapshot_location}: {e}. "
                "Make the snapshot folder writable, or run without --snapshot-update."
            ) from e

    @classmethod
    def write_snapshot_collection(
        cls, *, snapshot_collection: SnapshotCollection, name_order: dict[str, int] | None = None
    ) -> None:
        snapshot = next(iter(snapshot_collection))
        atomic_write_text(Path(snapshot_collection.location), str(snapshot.data))

    def delete_snapshots(self, *, snapshot_location: str, snapshot_names: set[str]) -> None:
        Path(snapshot_location).unlink(missing_ok=True)


def file_safe(name: str, limit: int = _MAX_FILENAME) -> str:
    """A snapshot name as a file name: characters that are not allowed (or not portable)
    in file names are %-escaped, so distinct names stay distinct; over-long names are cut
    and given a hash of the full name.

    >>> file_safe("test_k[a/b]"), file_safe("test_k[ab]"), file_safe("TestC.test_x[1].2")
    ('test_k[a%2Fb]', 'test_k[ab]', 'TestC.test_x[1].2')
    >>> len(file_safe("test_" + "x" * 300, 250))
    250
    """
    escaped = "".join(
        "".join(f"%{b:02X}" for b in c.encode()) if c in _UNSAFE or category(c).startswith("C") else c for c in name
    )
    if len(escaped) <= limit:
        return escaped
    digest = hashlib.sha1(name.encode()).hexdigest()[:10]
    return f"{escaped[: limit - 11]}~{digest}"


@functools.cache
def _configured(base: type[AnnotateSnapshotExtension], settings: SnapshotSettings) -> type[AnnotateSnapshotExtension]:
    name = f"{base.__name__}[{settings.read_model_id}]"
    attrs: dict[str, Any] = {"settings": settings, "__module__": base.__module__}
    return type(name, (base,), attrs)
