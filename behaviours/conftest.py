"""Fixtures shared by every behaviour folder.

* ``compat_processing`` / ``raw_processing`` skip a behaviour whose published numbers were measured
  in the other numerics (a random-weights dry run goes ahead in either mode).
"""

from __future__ import annotations

from typing import Any

import pytest

from pytest_annotate.plugin import keys


def _spec(config: pytest.Config) -> Any:
    return config.stash.get(keys.MODEL_SPEC, None)


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
