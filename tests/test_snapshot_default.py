"""``snapshot`` is the tolerant, per-model snapshot wherever pytest-annotate is installed: in a
fresh directory with no conftest, a user's ``assert value == snapshot`` compares numbers within
tolerances and writes under ``snapshots/<model-id>/``, never syrupy's ``__snapshots__/``."""

from __future__ import annotations

from pathlib import Path

import pytest

TEST = """
import json
from pathlib import Path


def test_prob(snapshot):
    value = json.loads((Path(__file__).parent / "value.json").read_text())
    assert {"prob": value} == snapshot
"""


def _run(pytester: pytest.Pytester, model: Path, value: float, *args: str) -> pytest.RunResult:
    (pytester.path / "value.json").write_text(repr(value))
    # --model=PATH as one argument: a bare path argument would move pytest's rootdir to a common ancestor.
    return pytester.runpytest_subprocess(f"--model={model}", "--device", "cpu", "-p", "no:cacheprovider", *args)


def test_snapshot_is_tolerant_and_per_model_without_a_conftest(pytester: pytest.Pytester, tiny_gpt2_dir: Path) -> None:
    assert not list(pytester.path.glob("conftest.py"))
    pytester.makeini("[pytest]\n")  # the user's project root
    pytester.makepyfile(test_user=TEST)
    _run(pytester, tiny_gpt2_dir, 0.5, "--snapshot-update").assert_outcomes(passed=1)
    written = sorted(p.relative_to(pytester.path).as_posix() for p in pytester.path.rglob("*.snap"))
    model_id = tiny_gpt2_dir.name
    assert written == [f"snapshots/{model_id}/test_user/test_prob.snap"], written
    assert not (pytester.path / "__snapshots__").exists()
    # A float-noise change passes (syrupy's plain snapshot would fail here) ...
    _run(pytester, tiny_gpt2_dir, 0.5000001).assert_outcomes(passed=1)
    # ... and a real change fails with the mismatch table.
    result = _run(pytester, tiny_gpt2_dir, 0.6)
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*prob*0.5*0.6*"])
