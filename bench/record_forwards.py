"""A pytest plugin for the benchmark: writes the session's phases, forward-pass log and peak RSS as JSON.

Loaded with ``-p record_forwards`` (``bench/`` on ``PYTHONPATH``); the output path comes from
``$BENCH_RECORD``. Times are wall-clock timestamps (``time.time()``), so the parent process can
place them against the moment it started the interpreter and the moment the process exited.
"""

from __future__ import annotations

import dataclasses
import json
import os
import resource
import time

import pytest

#: When this module was imported: right after pytest parsed ``-p`` options, i.e. after the
#: interpreter started and pytest itself was imported.
_STAMPS: dict[str, float] = {"plugin_import": time.time()}


def pytest_sessionstart(session: pytest.Session) -> None:
    _STAMPS["session_start"] = time.time()


def pytest_collection_finish(session: pytest.Session) -> None:
    _STAMPS["collection_end"] = time.time()


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    from pytest_annotate.plugin.core import LAB

    _STAMPS["session_end"] = time.time()
    lab = session.config.stash.get(LAB, None)
    out = {
        "exitstatus": int(exitstatus),
        "stamps": _STAMPS,
        "session_s": _STAMPS["session_end"] - _STAMPS["session_start"],
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "load_s": lab.timing.total if lab is not None and lab.timing else 0.0,
        "convert_s": lab.timing.convert if lab is not None and lab.timing else 0.0,
        "requested": lab.stats.requested if lab else 0,
        "executed": lab.stats.executed if lab else 0,
        "executed_rows": lab.stats.executed_rows if lab else 0,
        "repeats": lab.stats.repeats if lab else 0,
        "passes": [dataclasses.asdict(p) for p in lab.stats.passes] if lab else [],
        "weights_mb": sum(p.numel() * p.element_size() for p in lab.bridge.parameters()) / 2**20 if lab else 0,
    }
    with open(os.environ["BENCH_RECORD"], "w") as fh:
        json.dump(out, fh)
