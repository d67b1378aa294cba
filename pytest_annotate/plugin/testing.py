"""Helpers for testing snapshot behaviour with ``pytester`` (cf. ``pytest_regressions.testing``).

A suite made by :func:`make_suite` has a conftest that takes the model id and dtype from
environment variables (``snapshot`` is the tolerant one wherever the plugin is loaded), and a ``values`` fixture
reading ``values.json``, so one test file can be run again and again with new numbers::

    def test_update(pytester):
        make_suite(pytester, test_a=TEST_SOURCE)
        run_suite(pytester, "--snapshot-update", values={"prob": 0.5}).assert_outcomes(passed=1)
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pytest

#: Load our plugin alone (keep pytest-annotate's main plugin, and the cache, out).
PLUGIN_ARGS = ("-p", "pytest_annotate.plugin.snapshots", "-p", "no:annotate", "-p", "no:cacheprovider")
MODEL_ENV = "ANNOTATE_SNAPSHOT_TEST_MODEL"
DTYPE_ENV = "ANNOTATE_SNAPSHOT_TEST_DTYPE"

CONFTEST = f'''
import json
import os
from pathlib import Path

import pytest

from pytest_annotate.plugin import keys


def pytest_configure(config):
    if os.environ.get("{MODEL_ENV}"):
        config.stash[keys.MODEL_ID] = os.environ["{MODEL_ENV}"]
    config.stash[keys.DTYPE] = os.environ.get("{DTYPE_ENV}", "float32")


@pytest.fixture
def values():
    path = Path(__file__).parent / "values.json"
    return json.loads(path.read_text()) if path.exists() else {{}}
'''


def make_suite(pytester: pytest.Pytester, **test_files: str) -> None:
    """Write the conftest and the given test modules (``name=source``)."""
    pytester.makeconftest(CONFTEST)
    if test_files:
        pytester.makepyfile(**test_files)


@contextmanager
def _environ(updates: Mapping[str, str | None]) -> Iterator[None]:
    saved = {key: os.environ.get(key) for key in updates}
    try:
        for key, value in updates.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def run_suite(
    pytester: pytest.Pytester,
    *args: str,
    model: str | None = "gpt2-small",
    dtype: str = "float32",
    values: Mapping[str, Any] | None = None,
) -> pytest.RunResult:
    """Run the suite in-process for ``model`` (``None``: no model id) with ``values``."""
    if values is not None:
        (pytester.path / "values.json").write_text(json.dumps(values))
    with _environ({MODEL_ENV: model, DTYPE_ENV: dtype}):
        return pytester.runpytest(*PLUGIN_ARGS, *args)


def inline_suite(
    pytester: pytest.Pytester,
    *args: str,
    model: str | None = "gpt2-small",
    dtype: str = "float32",
    values: Mapping[str, Any] | None = None,
) -> pytest.HookRecorder:
    """Like :func:`run_suite`, but returns the hook recorder, whose
    ``getcall("pytest_sessionfinish").session.config`` gives the session's stash."""
    if values is not None:
        (pytester.path / "values.json").write_text(json.dumps(values))
    with _environ({MODEL_ENV: model, DTYPE_ENV: dtype}):
        return pytester.inline_run(*PLUGIN_ARGS, *args)
