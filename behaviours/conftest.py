"""Behaviours use pytest-annotate's tolerant snapshot extension as their ``snapshot``.

A conftest fixture always wins over plugin fixtures, whatever the plugin registration order, so
the override lives here rather than in the plugin.
"""

import pytest


@pytest.fixture
def snapshot(annotate_snapshot):
    """Snapshots filed under ``snapshots/<model-id>/``, numbers compared within per-kind tolerances."""
    return annotate_snapshot
