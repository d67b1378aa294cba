"""Fixtures shared by every behaviour folder.

* ``snapshot`` is pytest-annotate's tolerant snapshot extension (a conftest fixture always wins
  over plugin fixtures, whatever the registration order, so the override lives here). Under
  ``--random-weights`` it is a snapshot that judges nothing: the dry run checks plumbing, and the
  extension would otherwise look for ``snapshots/<model>+random/`` and fail with "No snapshot
  recorded yet".
* ``compat_processing`` / ``raw_processing`` skip a behaviour whose published numbers were measured
  in the other numerics (a random-weights dry run goes ahead in either mode).
"""

from __future__ import annotations

from typing import Any

import pytest

from pytest_annotate import keys
from pytest_annotate.snapshot.serialize import flatten


class UnjudgedSnapshot:
    """Stands in for ``snapshot`` in a random-weights dry run: serializes the value (so a result
    that cannot be snapshotted still fails), compares nothing and writes nothing."""

    def __call__(self, **_: Any) -> UnjudgedSnapshot:
        return self

    def __eq__(self, other: object) -> bool:
        flatten(other)
        return True

    __hash__ = None  # type: ignore[assignment]


def _spec(config: pytest.Config) -> Any:
    return config.stash.get(keys.MODEL_SPEC, None)


@pytest.fixture
def snapshot(request: pytest.FixtureRequest) -> Any:
    """Snapshots under ``snapshots/<model-id>/``, numbers compared within per-kind tolerances;
    under ``--random-weights`` one that judges nothing."""
    spec = _spec(request.config)
    if spec is not None and spec.random_weights:
        return UnjudgedSnapshot()
    return request.getfixturevalue("annotate_snapshot")


def _require_processing(request: pytest.FixtureRequest, wanted: str, why: str) -> None:
    spec = _spec(request.config)
    if spec is not None and spec.processing != wanted and not spec.random_weights:
        pytest.skip(f"published with {why}; this session runs --processing {spec.processing}: "
                    f"run with --processing {wanted}")


@pytest.fixture
def compat_processing(request: pytest.FixtureRequest) -> None:
    """Skip unless the session runs ``--processing compat`` (legacy HookedTransformer numerics)."""
    _require_processing(request, "compat", "legacy HookedTransformer numerics (fold_ln, centred weights)")


@pytest.fixture
def raw_processing(request: pytest.FixtureRequest) -> None:
    """Skip unless the session runs ``--processing raw`` (HuggingFace numerics, as the notebook did)."""
    _require_processing(request, "raw", "raw HuggingFace numerics (logits ~786, no folded LayerNorm)")
