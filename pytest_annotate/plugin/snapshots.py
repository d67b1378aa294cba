"""pytest plugin: tolerant per-model snapshots, pruning, and ``--snapshot-baseline`` drift.

Loaded by pytest-annotate's main plugin (``pytest_plugins = ["pytest_annotate.plugin.snapshots"]``)
or alone with ``-p pytest_annotate.plugin.snapshots``. It needs syrupy (for ``--snapshot-update``
and its session) and a model id in ``config.stash[pytest_annotate.plugin.keys.MODEL_ID]``.

It makes ``snapshot`` the tolerant, per-model snapshot wherever pytest-annotate is installed:
``assert {"prob": 0.5000001} == snapshot`` passes against a stored 0.5, and files go under
``snapshots/<model-id>/``, not syrupy's ``__snapshots__/``. (``annotate_snapshot`` is the same
fixture under its own name.) Two plugins' fixtures of one name override each other in registration
order, and syrupy's plugin and this one are both entry points, loaded in no promised order; so the
fixture lives on a small plugin object registered in ``pytest_configure``, after every entry point
and ``-p`` plugin, which the fixture manager parses last. A conftest can still override it.
Under ``--random-weights`` it is a snapshot that judges nothing (nothing is stored for random
weights): the dry run checks the plumbing.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest

from pytest_annotate.plugin import keys as annotate_keys
from pytest_annotate.snapshot.assertion import AnnotateSnapshotAssertion
from pytest_annotate.snapshot.drift import (
    DriftRecord,
    drift_table,
    key_numbers_from_leaves,
)
from pytest_annotate.snapshot.errors import SnapshotConfigError
from pytest_annotate.snapshot.extension import AnnotateSnapshotExtension
from pytest_annotate.snapshot.serialize import flatten
from pytest_annotate.plugin.keys import DRIFT_RECORDS, RUN_STATE
from pytest_annotate.snapshot.prune import (
    delete_leftover_temp_files,
    delete_unused,
    find_unused,
)
from pytest_annotate.snapshot.settings import (
    DEFAULT_SNAPSHOT_DIR,
    SnapshotSettings,
    check_model_id,
)
from pytest_annotate.snapshot.state import SnapshotRunState
from pytest_annotate.snapshot.tolerance import Tolerance

if TYPE_CHECKING:
    from pathlib import Path


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("annotate-snapshots", "pytest-annotate snapshots")
    group.addoption(
        "--snapshot-baseline",
        metavar="MODEL-ID",
        dest="annotate_snapshot_baseline",
        default=None,
        help="Compare with snapshots/MODEL-ID/ instead of this model's snapshots: report drift "
        "(held/weakened/flipped/new/missing) in the summary, never fail on it, never write.",
    )
    parser.addini(
        "annotate_snapshot_dir",
        default=DEFAULT_SNAPSHOT_DIR,
        help="Folder (relative to the rootdir) holding one snapshot folder per model id.",
    )


def _state(config: pytest.Config) -> SnapshotRunState:
    return config.stash.setdefault(RUN_STATE, SnapshotRunState())


def _snapshot_dir(config: pytest.Config) -> Path:
    return config.rootpath / str(config.getini("annotate_snapshot_dir"))


def pytest_configure(config: pytest.Config) -> None:
    state = _state(config)
    config.stash[DRIFT_RECORDS] = state.drift
    config.pluginmanager.register(_Recorder(state), "annotate-snapshot-recorder")
    config.pluginmanager.register(_SnapshotFixture(), "annotate-snapshot-fixture")
    baseline = config.getoption("annotate_snapshot_baseline", None)
    if not baseline:
        return
    try:
        check_model_id(baseline)
    except SnapshotConfigError as e:
        raise pytest.UsageError(f"--snapshot-baseline: {e}") from None
    if _is_xdist(config):
        raise pytest.UsageError(
            "--snapshot-baseline collects drift in one process: run it without pytest-xdist (-n0)"
        )
    if getattr(config.option, "update_snapshots", False):
        raise pytest.UsageError(
            "--snapshot-baseline compares with another model's snapshots and never writes: "
            "drop --snapshot-update (or --snapshot-baseline)"
        )
    folder = _snapshot_dir(config) / baseline
    if not folder.is_dir():
        root = _snapshot_dir(config)
        available = sorted(p.name for p in root.iterdir() if p.is_dir()) if root.is_dir() else []
        raise pytest.UsageError(
            f"--snapshot-baseline {baseline}: no snapshot folder {folder}; "
            f"available: {', '.join(available) or '(none)'}"
        )


def snapshot_settings(config: pytest.Config) -> SnapshotSettings:
    """This session's snapshot settings (model id and dtype from pytest-annotate's stash).

    Raises :class:`~pytest_annotate.snapshot.errors.SnapshotConfigError` when no model id
    was set.
    """
    state = _state(config)
    if state.settings is None:
        model_id = config.stash.get(annotate_keys.MODEL_ID, None)
        if not model_id:
            raise SnapshotConfigError(
                "snapshots are stored per model, but this session has no model id: load "
                "pytest-annotate's plugin (it sets one from the model options), or set "
                "config.stash[pytest_annotate.plugin.keys.MODEL_ID] in a conftest's pytest_configure"
            )
        state.settings = SnapshotSettings(
            rootdir=config.rootpath,
            snapshot_dir=_snapshot_dir(config),
            model_id=model_id,
            dtype=config.stash.get(annotate_keys.DTYPE, None) or "float32",
            baseline=config.getoption("annotate_snapshot_baseline", None) or None,
            update=bool(getattr(config.option, "update_snapshots", False)),
            tolerance=Tolerance.default(),
        )
    return state.settings


def drift_records(config: pytest.Config) -> list[DriftRecord]:
    """The drift records of a ``--snapshot-baseline`` session (empty otherwise)."""
    records: list[DriftRecord] = config.stash.get(DRIFT_RECORDS, [])
    return list(records)


@pytest.fixture
def annotate_snapshot(request: pytest.FixtureRequest) -> AnnotateSnapshotAssertion:
    """A syrupy snapshot stored under ``snapshots/<model-id>/``, compared with tolerances (what
    ``snapshot`` is wherever the plugin is installed)."""
    from syrupy.location import PyTestLocation

    config = request.config
    session = getattr(config, "_syrupy", None)
    if session is None:
        raise SnapshotConfigError("annotate_snapshot needs syrupy's plugin; is it disabled (-p no:syrupy)?")
    settings = snapshot_settings(config)
    return AnnotateSnapshotAssertion(
        update_snapshots=settings.update and not settings.baseline,
        update_new_snapshots_only=bool(getattr(config.option, "update_new_snapshots_only", False))
        and not settings.baseline,
        extension_class=AnnotateSnapshotExtension.configured(settings),
        test_location=PyTestLocation(request.node),
        session=session,
        tolerance=settings.tolerance,
        run_state=_state(config),
    )


class UnjudgedSnapshot:
    """Stands in for ``snapshot`` in a random-weights dry run: serializes the value (so a result
    that cannot be snapshotted still fails), compares nothing and writes nothing."""

    def __call__(self, **_: Any) -> UnjudgedSnapshot:
        return self

    def __eq__(self, other: object) -> bool:
        flatten(other)
        return True

    __hash__ = None  # type: ignore[assignment]


class _SnapshotFixture:
    """Holds the ``snapshot`` fixture; registered in ``pytest_configure`` so that it overrides
    syrupy's (see the module docstring)."""

    @pytest.fixture
    def snapshot(self, request: pytest.FixtureRequest) -> Any:
        """Snapshots under ``snapshots/<model-id>/``, numbers compared within per-kind tolerances
        (pytest-annotate's extension of syrupy's ``snapshot``); under ``--random-weights`` one that
        judges nothing."""
        spec = request.config.stash.get(annotate_keys.MODEL_SPEC, None)
        if spec is not None and spec.random_weights:
            return UnjudgedSnapshot()
        return request.getfixturevalue("annotate_snapshot")


class _Recorder:
    """Records what pytest collected and how each test ended (hooks without a config
    argument need the state at hand: registered per config in ``pytest_configure``)."""

    def __init__(self, state: SnapshotRunState) -> None:
        self.state = state

    def pytest_collectstart(self, collector: pytest.Collector) -> None:
        if isinstance(collector, pytest.Module):
            self.state.collected_modules.add(collector.path)
        elif isinstance(collector, pytest.Directory):
            self.state.collected_dirs.add(collector.path)

    def pytest_collectreport(self, report: pytest.CollectReport) -> None:
        if report.passed:
            self.state.children[report.nodeid] = {getattr(n, "nodeid", str(n)) for n in report.result}

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        self.state.record_outcome(report.nodeid, report.when, report.outcome)


def _is_xdist(config: pytest.Config) -> bool:
    return hasattr(config, "workerinput") or bool(getattr(config.option, "numprocesses", None))


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    config = session.config
    state = _state(config)
    if _is_xdist(config):
        return  # each worker sees only its share of the tests: never prune from one
    try:
        settings = snapshot_settings(config)
    except SnapshotConfigError:
        return  # no model id: no snapshot was taken, nothing to check
    if settings.baseline:
        _record_missing(settings, state)
        return
    option = config.option
    if getattr(option, "disable_unused_snapshots", False):
        return
    state.unused = find_unused(settings, state, model_id=settings.model_id)
    if settings.update:
        delete_leftover_temp_files(settings, state, settings.model_id)
        if not getattr(option, "no_cleanup", False):
            state.deleted = delete_unused(state.unused, settings, settings.model_id)
    elif (
        state.unused
        and not getattr(option, "warn_unused_snapshots", False)
        and session.exitstatus == pytest.ExitCode.OK
    ):
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def _record_missing(settings: SnapshotSettings, state: SnapshotRunState) -> None:
    for item in find_unused(settings, state, model_id=settings.read_model_id, owner_done=state.owner_ran):
        leaves = item.document.leaves if item.document else ()
        state.drift.append(
            DriftRecord(
                nodeid=item.nodeid,
                snapshot_name=item.path.stem,
                status="missing",
                model_id=settings.model_id,
                baseline_model_id=settings.read_model_id,
                baseline_path=settings.display(item.path),
                key_numbers=key_numbers_from_leaves(leaves, baseline=True),
            )
        )


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    state = config.stash.get(RUN_STATE, None)
    if state is None or state.settings is None:
        return
    settings = state.settings
    write = terminalreporter.write_line
    if settings.baseline:
        terminalreporter.write_sep(
            "=", f"snapshot drift: {settings.model_id} vs baseline {settings.read_model_id}"
        )
        if state.drift:
            for line in drift_table(state.drift):
                write(line)
        else:
            write("no snapshot assertion ran")
        return
    if state.deleted:
        terminalreporter.write_sep("-", f"unused snapshots of {settings.model_id} deleted")
        for path in state.deleted:
            write(f"Deleted {settings.display(path)}")
    elif state.unused:
        terminalreporter.write_sep("-", f"unused snapshots of {settings.model_id}")
        for item in state.unused:
            write(f"{settings.display(item.path)}  ({item.nodeid}: {item.reason})")
        write("Re-run with --snapshot-update to delete them.")
