"""Faults injected on purpose: killed snapshot updates, corrupt model folders, out-of-memory sweeps."""

from __future__ import annotations

import importlib.util
import os
import shutil
import sys
from pathlib import Path

import pytest
import torch

from pytest_annotate.interventions.ablations import ablate
from pytest_annotate.scoring.sweeps import SweepMemoryError, score_interventions

TOOL = Path(__file__).parents[1] / "tools" / "kill_snapshot_update.py"


def _kill_tool():
    spec = importlib.util.spec_from_file_location("kill_snapshot_update", TOOL)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the file runs
    spec.loader.exec_module(module)
    return module


def test_a_killed_snapshot_update_leaves_every_file_old_or_new(tmp_path: Path) -> None:
    """SIGKILLs of ``pytest --snapshot-update`` during its writes (tools/kill_snapshot_update.py): at the
    first, last and a seeded middle occurrence of every write phase, and 3 at seeded random times.
    The full run (a kill before every operation, 20 random times) is the ``slow`` test below."""
    tool = _kill_tool()
    report = tool.run_kill_trials(tmp_path, runs=3, seed=0, n_tests=20, kill_points="sample")
    assert not report.violations, report.summary()
    assert report.phases_hit >= set(tool.PHASES), report.summary()  # every write phase was killed in
    assert len(report.trials) >= 3 * len(tool.PHASES) + 3, report.summary()


@pytest.mark.slow
def test_a_killed_snapshot_update_leaves_every_file_old_or_new_at_every_write_boundary(tmp_path: Path) -> None:
    """The full fault-injection run: a SIGKILL before each of the update's file-system operations, plus
    ``$PYTEST_ANNOTATE_KILL_TRIALS`` (default 20) at seeded random times. Runs with ``--run-slow``."""
    tool = _kill_tool()
    runs = int(os.environ.get("PYTEST_ANNOTATE_KILL_TRIALS", "20"))
    report = tool.run_kill_trials(tmp_path, runs=runs, seed=0, n_tests=20, kill_points="all")
    assert not report.violations, report.summary()
    assert report.phases_hit >= set(tool.PHASES), report.summary()
    assert len(report.trials) == len(report.operations) + runs, report.summary()


def test_a_model_folder_with_truncated_weights_ends_the_session_with_one_message(
    pytester: pytest.Pytester, tiny_gpt2_dir: Path
) -> None:
    broken = Path(shutil.copytree(tiny_gpt2_dir, pytester.path / "broken-model"))
    weights = broken / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 3])
    pytester.makepyfile("""
        def test_a(model): pass
        def test_b(model): pass
        def test_c(model): pass
    """)
    result = pytester.runpytest_subprocess("--model", str(broken), "--device", "cpu")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    out = result.stdout.str()
    assert out.count("could not load the model") == 1, out
    result.stdout.fnmatch_lines([f"*Could not load the model directory {broken}: a weights file is corrupt or "
                                 "truncated: SafetensorError*re-save the model*"])
    assert "Traceback" not in out


def _oom_above(lab, monkeypatch: pytest.MonkeyPatch, limit: int, error: type[BaseException]) -> list[int]:
    """Make ``lab.run_batch`` fail like a GPU out of memory for batches larger than ``limit``."""
    seen: list[int] = []
    real = lab.run_batch

    def run_batch(tokens, *, fwd_hooks=(), **kwargs):
        seen.append(int(tokens.shape[0]))
        if tokens.shape[0] > limit:
            raise error("CUDA out of memory. Tried to allocate 2.00 GiB (simulated)")
        return real(tokens, fwd_hooks=fwd_hooks, **kwargs)

    monkeypatch.setattr(lab, "run_batch", run_batch)
    return seen


@pytest.mark.parametrize("error", [RuntimeError, torch.cuda.OutOfMemoryError])
def test_an_out_of_memory_sweep_is_retried_in_smaller_batches(tiny_gpt2, monkeypatch, error) -> None:
    ivs = [None] + [ablate(tiny_gpt2, c) for c in ("MLP0", "MLP1", "L0", "L1", "attn0", "attn1", "L0H0")]
    expected = score_interventions(tiny_gpt2, "A B C", " D", ivs, max_batch_size=8)
    seen = _oom_above(tiny_gpt2, monkeypatch, 3, error)
    with pytest.warns(ResourceWarning, match="ran out of memory at batch size 8 and finished with 2; pass "
                                             "max_batch_size=2"):
        got = score_interventions(tiny_gpt2, "A B C", " D", ivs, max_batch_size=8)
    assert seen == [8, 4, 2, 2, 2, 2]
    assert [s.logprobs for s in got.scores] == [pytest.approx(s.logprobs, abs=1e-5) for s in expected.scores]


def test_out_of_memory_at_one_row_names_the_batch_sizes_tried(tiny_gpt2, monkeypatch) -> None:
    _oom_above(tiny_gpt2, monkeypatch, 0, RuntimeError)
    ivs = [None, ablate(tiny_gpt2, "MLP0"), ablate(tiny_gpt2, "MLP1")]
    with pytest.raises(SweepMemoryError, match=r"out of memory running one row .* \(tried batch sizes 3, 1\)"):
        score_interventions(tiny_gpt2, "A B C", " D", ivs, max_batch_size=3)
