"""A pytest plugin for the benchmark: writes the session's forward-pass log and timings as JSON.

Loaded with ``-p record_forwards`` (``bench/`` on ``PYTHONPATH``); the output path comes from
``$BENCH_RECORD``.
"""

from __future__ import annotations

import dataclasses
import json
import os
import resource
import time

import pytest

_START: dict[str, float] = {}


def pytest_sessionstart(session: pytest.Session) -> None:
    _START["t"] = time.perf_counter()


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    from pytest_annotate.plugin.core import LAB

    lab = session.config.stash.get(LAB, None)
    out = {
        "exitstatus": int(exitstatus),
        "session_s": time.perf_counter() - _START["t"],
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "load_s": lab.timing.total if lab is not None and lab.timing else 0.0,
        "requested": lab.stats.requested if lab else 0,
        "executed": lab.stats.executed if lab else 0,
        "executed_rows": lab.stats.executed_rows if lab else 0,
        "repeats": lab.stats.repeats if lab else 0,
        "passes": [dataclasses.asdict(p) for p in lab.stats.passes] if lab else [],
        "weights_mb": sum(p.numel() * p.element_size() for p in lab.bridge.parameters()) / 2**20 if lab else 0,
    }
    with open(os.environ["BENCH_RECORD"], "w") as fh:
        json.dump(out, fh)
