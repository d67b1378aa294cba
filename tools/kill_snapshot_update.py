#!/usr/bin/env python
"""Fault injection: SIGKILL ``pytest --snapshot-update`` at random moments and check every snapshot file.

A generated behaviour project holds ``--tests`` snapshot files for model A and as many for
model B. Each trial restores A's old snapshots, starts ``pytest --snapshot-update`` for A with
new numbers (so every file of A is rewritten), kills it with SIGKILL after a seeded random
delay, and checks that

* every file of A is byte-for-byte either its old or its new version (never truncated, never
  half-written, never missing);
* every file of B is byte-for-byte unchanged;
* temporary files a kill leaves behind (``.<name>.*.tmp``) are never read as snapshots, and the
  next full ``--snapshot-update`` removes them.

Usable from CI::

    python tools/kill_snapshot_update.py --runs 20 --seed 0        # exit status 1 on any violation

No model is loaded: the project's conftest sets the model id directly (as
``pytest_annotate.plugin.testing`` does for the plugin's own tests).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from pytest_annotate.plugin.testing import CONFTEST, DTYPE_ENV, MODEL_ENV, PLUGIN_ARGS

MODEL_A = "model-a"
MODEL_B = "model-b"

TEST_FILE = """
import pytest

@pytest.mark.parametrize("i", range({n}))
def test_behaviour(snapshot, values, i):
    scale = values["scale"]
    assert snapshot == {{
        "rank": i % 7,
        "prob": round(scale / (i + 1), 6),
        "top_tokens": [{{"token": f" t{{j}}", "prob": round(scale / (i + j + 2), 6)}} for j in range(40)],
    }}
"""


@dataclass
class Trial:
    """One killed run: when it was killed and what it left behind."""

    delay_s: float
    exit_code: int | None
    new_files: int = 0
    old_files: int = 0
    temporaries: int = 0
    violations: list[str] = field(default_factory=list)


@dataclass
class Report:
    trials: list[Trial]
    full_run_s: float
    write_window_s: float
    files_per_model: int

    @property
    def violations(self) -> list[str]:
        return [v for t in self.trials for v in t.violations]

    def summary(self) -> str:
        killed_mid_write = sum(1 for t in self.trials if t.new_files and t.old_files)
        lines = [
            f"{len(self.trials)} SIGKILLed `pytest --snapshot-update` runs, {self.files_per_model} snapshot files per "
            f"model, killed 0..{1.2 * self.write_window_s * 1000:.0f} ms after the first write (writing all files "
            f"takes {self.write_window_s * 1000:.0f} ms of a {self.full_run_s:.2f} s update)",
            f"  runs killed with a mix of old and new files: {killed_mid_write}; all old: "
            f"{sum(1 for t in self.trials if not t.new_files)}; all new: "
            f"{sum(1 for t in self.trials if not t.old_files)}; temporaries left: "
            f"{sum(t.temporaries for t in self.trials)}",
            f"  violations (truncated, half-written, missing or other model touched): {len(self.violations)}",
        ]
        lines += [f"    {v}" for v in self.violations[:20]]
        return "\n".join(lines)


def _tree(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:12]


def make_project(root: Path, n_tests: int) -> None:
    """Write the behaviour project: a conftest that takes the model id from the environment, and tests."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "conftest.py").write_text(CONFTEST)
    (root / "test_behaviours.py").write_text(TEST_FILE.format(n=n_tests))
    (root / "pytest.ini").write_text("[pytest]\n")


def _command(root: Path, update: bool) -> list[str]:
    return [sys.executable, "-m", "pytest", *PLUGIN_ARGS, "-q", "-p", "no:randomly", "-x",
            *(["--snapshot-update"] if update else []), str(root)]


def _env(model: str) -> dict[str, str]:
    env = dict(os.environ)
    env[MODEL_ENV] = model
    env[DTYPE_ENV] = "float32"
    env.pop("PYTEST_ADDOPTS", None)
    return env


def _wait_for_first_write(folder: Path, old: dict[str, bytes], proc: subprocess.Popen) -> float:
    """Poll until any file of ``folder`` differs from ``old`` (or a temporary appears); return the time."""
    paths = [folder / rel for rel in old]
    while proc.poll() is None:
        if any(p.stat().st_mtime_ns != mtimes[p] for p in paths) if (mtimes := _MTIMES.get(folder)) else False:
            break
        if next(folder.rglob(".*.tmp"), None) is not None:
            break
        _MTIMES.setdefault(folder, {p: p.stat().st_mtime_ns for p in paths})
        time.sleep(0.001)
    _MTIMES.pop(folder, None)
    return time.perf_counter()


_MTIMES: dict[Path, dict[Path, int]] = {}


def run_pytest(root: Path, model: str, scale: float, *, update: bool = True) -> subprocess.CompletedProcess[str]:
    (root / "values.json").write_text(json.dumps({"scale": scale}))
    return subprocess.run(_command(root, update), cwd=root, env=_env(model), capture_output=True, text=True,
                          timeout=300)


def run_kill_trials(workdir: Path, *, runs: int = 20, seed: int = 0, n_tests: int = 60) -> Report:
    """Run the trials in ``workdir`` (created); see the module docstring."""
    rng = random.Random(seed)
    project = workdir / "project"
    make_project(project, n_tests)
    snapshots = project / "snapshots"
    for model, scale in ((MODEL_B, 0.25), (MODEL_A, 0.5)):
        done = run_pytest(project, model, scale)
        if done.returncode != 0:
            raise RuntimeError(f"recording {model} failed:\n{done.stdout}\n{done.stderr}")
    old_a, old_b = _tree(snapshots / MODEL_A), _tree(snapshots / MODEL_B)
    # The new version of every file: a complete update in a copy of the project.
    copy = workdir / "reference"
    shutil.copytree(project, copy)
    t0 = time.perf_counter()
    (copy / "values.json").write_text(json.dumps({"scale": 0.75}))
    proc = subprocess.Popen(_command(copy, True), cwd=copy, env=_env(MODEL_A), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    first_write = _wait_for_first_write(copy / "snapshots" / MODEL_A, old_a, proc)
    out, _ = proc.communicate(timeout=300)
    full_run_s = time.perf_counter() - t0
    write_window_s = max(0.005, full_run_s - (first_write - t0))
    done = subprocess.CompletedProcess(proc.args, proc.returncode, out, "")
    if done.returncode != 0:
        raise RuntimeError(f"the reference update failed:\n{done.stdout}\n{done.stderr}")
    new_a = _tree(copy / "snapshots" / MODEL_A)
    assert set(new_a) == set(old_a) and all(new_a[k] != old_a[k] for k in old_a), "every file must change"

    trials = []
    (project / "values.json").write_text(json.dumps({"scale": 0.75}))
    for _ in range(runs):
        shutil.rmtree(snapshots / MODEL_A)
        for rel, data in old_a.items():
            (snapshots / MODEL_A / rel).parent.mkdir(parents=True, exist_ok=True)
            (snapshots / MODEL_A / rel).write_bytes(data)
        # syrupy writes every snapshot at the end of the session: wait for the first write, then
        # kill after a random part of the write window (a plain random delay mostly hits start-up).
        delay = rng.uniform(0.0, write_window_s * 1.2)
        proc = subprocess.Popen(_command(project, True), cwd=project, env=_env(MODEL_A),
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        _wait_for_first_write(snapshots / MODEL_A, old_a, proc)
        time.sleep(delay)
        proc.send_signal(signal.SIGKILL)
        code = proc.wait(timeout=60)
        trial = Trial(delay, code)
        now_a = {k: v for k, v in _tree(snapshots / MODEL_A).items() if not Path(k).name.endswith(".tmp")}
        trial.temporaries = sum(1 for p in (snapshots / MODEL_A).rglob(".*.tmp"))
        for rel in sorted(set(old_a) | set(now_a)):
            data = now_a.get(rel)
            if data is None:
                trial.violations.append(f"delay {delay:.3f} s: {MODEL_A}/{rel} is missing")
            elif data == new_a.get(rel):
                trial.new_files += 1
            elif data == old_a.get(rel):
                trial.old_files += 1
            else:
                trial.violations.append(
                    f"delay {delay:.3f} s: {MODEL_A}/{rel} is neither old ({_digest(old_a[rel])}) nor new "
                    f"({_digest(new_a[rel])}): {len(data)} bytes, sha {_digest(data)}")
        if _tree(snapshots / MODEL_B) != old_b:
            trial.violations.append(f"delay {delay:.3f} s: {MODEL_B}'s snapshots changed")
        trials.append(trial)
    # After the kills, a plain update finishes the job and removes every temporary.
    done = run_pytest(project, MODEL_A, 0.75)
    after = _tree(snapshots / MODEL_A)
    if done.returncode != 0 or after != new_a:
        trials[-1].violations.append(f"the update after the kills did not converge (exit {done.returncode})")
    # A plain (non-update) run reads every file as a snapshot: temporaries must not be read.
    check = run_pytest(project, MODEL_A, 0.75, update=False)
    if check.returncode != 0:
        trials[-1].violations.append(f"a check run after the kills failed:\n{check.stdout[-2000:]}")
    return Report(trials, full_run_s, write_window_s, len(old_a))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=20, help="number of killed runs (default 20)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random kill delays (default 0)")
    parser.add_argument("--tests", type=int, default=60, help="snapshot files per model (default 60)")
    parser.add_argument("--workdir", type=Path, default=None, help="where to build the project (default: a temp dir)")
    args = parser.parse_args(argv)
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="kill-snapshot-update-"))
    report = run_kill_trials(workdir, runs=args.runs, seed=args.seed, n_tests=args.tests)
    print(report.summary())
    return 1 if report.violations else 0


if __name__ == "__main__":
    sys.exit(main())
