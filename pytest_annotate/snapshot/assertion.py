"""The ``snapshot`` object tests use: syrupy's assertion, plus tolerances and baselines.

::

    def test_ioi(lab, snapshot):
        assert snapshot == lab.top_token(PROMPT, " Mary")                 # default bands
        assert snapshot(tolerance={"prob": 0.01}) == lab.top_token(...)   # this assertion
        loose = snapshot.with_tolerance({"top_tokens.*.prob": 0.02})      # a new snapshot
        assert loose(name="loose") == lab.top_token(...)                  #   object

``snapshot(tolerance=...)`` applies to the next comparison only, like syrupy's other
call options; ``with_tolerance`` returns a new snapshot object (syrupy's
``with_defaults``), handy in a fixture or conftest. A new object starts counting
assertions from 0 again, so give its assertions a ``name=`` when the test asserts with
the original object too.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from syrupy.assertion import AssertionResult, DiffMode, SnapshotAssertion

from pytest_annotate.snapshot.drift import (
    DriftRecord,
    key_numbers_from_leaves,
    record_from_comparison,
)
from pytest_annotate.snapshot.extension import AnnotateSnapshotExtension
from pytest_annotate.snapshot.report import failure_report, missing_report
from pytest_annotate.snapshot.tolerance import Tolerance, ToleranceSpec, ToleranceValue

if TYPE_CHECKING:
    from pytest_annotate.snapshot.compare import Comparison
    from pytest_annotate.snapshot.state import SnapshotRunState


@dataclass(frozen=True)
class _Outcome:
    """What one of our assertions found, for its failure report."""

    location: str
    model_id: str
    comparison: Comparison | None


@dataclass(eq=False, order=False, repr=False)
class AnnotateSnapshotAssertion(SnapshotAssertion):
    """syrupy's ``SnapshotAssertion`` with per-field tolerances, a field-by-field failure
    report, and ``--snapshot-baseline`` drift recording."""

    tolerance: Tolerance = field(default_factory=Tolerance.default)
    run_state: SnapshotRunState | None = None
    _call_tolerance: ToleranceSpec | None = field(init=False, default=None)
    _outcomes: dict[int, _Outcome] = field(init=False, default_factory=dict)

    # -- options -------------------------------------------------------------------

    def with_defaults(self, *, tolerance: ToleranceSpec | None = None, **kwargs: Any) -> AnnotateSnapshotAssertion:
        """syrupy's ``with_defaults`` (a new snapshot object), keeping our tolerance and
        adding ``tolerance`` overrides to it."""
        new = super().with_defaults(**kwargs)
        assert isinstance(new, AnnotateSnapshotAssertion)
        new.tolerance = self.tolerance.with_overrides(tolerance) if tolerance else self.tolerance
        new.run_state = self.run_state
        return new

    def with_tolerance(
        self, spec: ToleranceSpec | None = None, /, **by_name: ToleranceValue
    ) -> AnnotateSnapshotAssertion:
        """A new snapshot object whose bands are widened (or narrowed) by ``spec``: keys
        are kinds (``"prob"``), field names (``"logit_diff"``) or dotted path globs
        (``"top_tokens.*.prob"``); values a number, ``{"abs": …, "rel": …}`` or a
        :class:`~pytest_annotate.snapshot.tolerance.Band`."""
        __tracebackhide__ = True
        return self.with_defaults(tolerance={**(spec or {}), **by_name})

    def __call__(self, *, tolerance: ToleranceSpec | None = None, **kwargs: Any) -> AnnotateSnapshotAssertion:
        """syrupy's call options, plus ``tolerance=`` for the next comparison only."""
        __tracebackhide__ = True
        super().__call__(**kwargs)
        if tolerance is not None:
            self.tolerance.with_overrides(tolerance)  # fail here, on the test's line, if malformed
            self._call_tolerance = tolerance
            self._post_assert_actions.append(lambda: setattr(self, "_call_tolerance", None))
        return self

    def __repr__(self) -> str:
        # syrupy's repr is the whole snapshot text, which pytest prints for every failing
        # test that takes the fixture; the failure report already shows what matters.
        extension = self.extension
        if isinstance(extension, AnnotateSnapshotExtension) and extension.settings is not None:
            return f"<snapshot of {extension.settings.read_model_id}: {self.test_location.nodeid}>"
        return super().__repr__()

    # -- assertion -----------------------------------------------------------------

    def _assert(self, data: Any) -> bool:
        __tracebackhide__ = True
        extension = self.extension
        if not isinstance(extension, AnnotateSnapshotExtension):
            return bool(super()._assert(data))
        tolerance = self.tolerance.with_overrides(self._call_tolerance) if self._call_tolerance else self.tolerance
        extension.prepare(tolerance=tolerance, nodeid=self.test_location.nodeid)
        settings = extension.get_settings()
        index = self._executions
        location = extension.get_location(test_location=self.test_location, index=self.index)
        if settings.baseline:
            success = self._assert_against_baseline(data, extension)
        else:
            success = bool(super()._assert(data))
        self._outcomes[index] = _Outcome(settings.display(location), settings.read_model_id, extension.last_comparison)
        if self.run_state is not None:
            self.run_state.used.add(Path(location).resolve())
        return success

    def _assert_against_baseline(self, data: Any, extension: AnnotateSnapshotExtension) -> bool:
        """Compare with the baseline model's snapshot and record drift; never fail on
        drift and never write (a broken baseline file still fails the test)."""
        settings = extension.get_settings()
        index = self.index
        location = extension.get_location(test_location=self.test_location, index=index)
        name = extension.get_snapshot_name(test_location=self.test_location, index=index)
        received: str | None = None
        recalled: str | None = None
        exception: Exception | None = None
        try:
            received = str(self._serialize(data))
            recalled = extension.read_snapshot_data_from_location(
                snapshot_location=location, snapshot_name=name, session_id=str(id(self.session))
            )
            if recalled is None:
                record = DriftRecord(
                    nodeid=self.test_location.nodeid,
                    snapshot_name=name,
                    status="new",
                    model_id=settings.model_id,
                    baseline_model_id=settings.read_model_id,
                    baseline_path=settings.display(location),
                    key_numbers=key_numbers_from_leaves(extension.document(received).leaves, baseline=False),
                )
            else:
                comparison = extension.compare_texts(recalled, received)
                extension.last_comparison = comparison
                record = record_from_comparison(
                    comparison,
                    nodeid=self.test_location.nodeid,
                    snapshot_name=name,
                    model_id=settings.model_id,
                    baseline_model_id=settings.read_model_id,
                    baseline_path=settings.display(location),
                )
            if self.run_state is not None:
                self.run_state.drift.append(record)
            return True
        except Exception as e:  # shown by get_assert_diff, as syrupy does
            exception = e
            return False
        finally:
            self._execution_name_index[index] = self._executions
            self._execution_results[self._executions] = AssertionResult(
                snapshot_location=location,
                snapshot_name=name,
                asserted_data=received,
                recalled_data=recalled,
                created=False,
                updated=False,
                success=exception is None,
                exception=exception,
                test_location=self.test_location,
            )
            self._executions += 1
            self._post_assert()

    def get_assert_diff(self, *, diff_mode: DiffMode = DiffMode.DETAILED) -> list[str]:
        """The failure report: field table, statistics, and what to do next."""
        __tracebackhide__ = True
        index = self.num_executions - 1
        result = self._execution_results[index]
        outcome = self._outcomes.get(index)
        if outcome is None or result.exception is not None:
            return list(super().get_assert_diff(diff_mode=diff_mode))
        nodeid = self.test_location.nodeid
        if result.recalled_data is None:
            return missing_report(location=outcome.location, model_id=outcome.model_id, nodeid=nodeid)
        if outcome.comparison is None:
            return list(super().get_assert_diff(diff_mode=diff_mode))
        return failure_report(outcome.comparison, location=outcome.location, model_id=outcome.model_id, nodeid=nodeid)

