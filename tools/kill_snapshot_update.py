#!/usr/bin/env python
"""Fault injection: SIGKILL ``pytest --snapshot-update`` mid-write and check every snapshot file.

A generated behaviour project holds ``--tests`` snapshot files for model A and as many for
model B. Each trial restores A's old snapshots, starts ``pytest --snapshot-update`` for A with
new numbers (so every file of A is rewritten), SIGKILLs it during its writes, and checks that

* every file of A is byte-for-byte either its old or its new version (never truncated, never
  half-written, never missing);
* every file of B is byte-for-byte unchanged;
* temporary files a kill leaves behind (``.<name>.*.tmp``) are never read as snapshots, and the
  next full ``--snapshot-update`` removes them.

Where the kills land. The killed pytest loads a small plugin (:data:`KILL_POINT_PLUGIN`) that
watches, with an audit hook (:func:`sys.addaudithook`, so the code under test is not patched),
every file-system operation on A's snapshot folder: ``os.mkdir``, ``tempfile.mkstemp``, an
``open`` that creates or writes a file, ``os.replace``/``os.rename``, an ``open`` of the folder
(to fsync it), ``os.remove``. It logs each one and SIGKILLs its own process

* at a **write boundary**: just before the N-th operation (the kill point), so a trial lands in
  a known write phase without depending on timing. The phases of one atomic write are
  ``before-temp`` (the file is untouched, no temporary), ``empty-temp`` (the temporary exists,
  nothing written), ``full-temp`` (the temporary is written and fsynced, the snapshot not yet
  replaced) and ``replaced`` (the snapshot is replaced, the folder not yet fsynced); or
* at a **seeded random time**: a timer started at the first operation fires after a random part
  of the write window (measured in the reference update), which can land inside a write (a
  partly written temporary) as well as between operations.

``--kill-points sample`` kills at the first, the last and one seeded middle occurrence of every
phase (12 trials); ``all`` before every operation of the update (7 per snapshot file: the
folder is created twice, by syrupy and by the atomic write); ``none`` at no boundary. ``--runs``
adds that many random-time kills. The summary counts where the kills landed. A kill lands
between two operations, so it cannot catch a file written in place (truncated by its ``open``,
complete at its ``close``); the reference update's log is checked for such writes instead.

The plugin's tests run the sample and 3 random-time kills by default
(tests/test_fault_injection.py); ``pytest --run-slow`` adds the full run (every operation, and
``$PYTEST_ANNOTATE_KILL_TRIALS``, default 20, random-time kills).

Usable from CI::

    python tools/kill_snapshot_update.py --kill-points all --runs 20 --seed 0   # exit status 1 on any violation

No model is loaded: the project's conftest sets the model id directly (as
``pytest_annotate.plugin.testing`` does for the plugin's own tests). Plugin autoloading is
off in these pytest runs (``PYTEST_DISABLE_PLUGIN_AUTOLOAD``; syrupy and the snapshot plugin are
loaded with ``-p``): nothing else writes snapshots, and importing every installed plugin was
most of each run's time.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
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

PLUGIN_NAME = "_kill_point"
FOLDER_ENV = "KILL_SNAPSHOT_FOLDER"
LOG_ENV = "KILL_OPERATION_LOG"
AT_ENV = "KILL_AT_OPERATION"
AFTER_ENV = "KILL_AFTER_FIRST_OPERATION_S"

#: Loaded with ``-p _kill_point`` in the pytest runs: logs every file-system operation on the
#: folder ``$KILL_SNAPSHOT_FOLDER`` (one line each, ``<index> <kind> <path> <monotonic time>``,
#: written before the operation runs) and SIGKILLs the process just before operation
#: ``$KILL_AT_OPERATION``, or ``$KILL_AFTER_FIRST_OPERATION_S`` seconds after the first one.
KILL_POINT_PLUGIN = '''
import os
import signal
import sys
import threading
import time

FOLDER = os.path.realpath(os.environ["{folder}"])
AT = int(os.environ.get("{at}", "-1"))
AFTER = os.environ.get("{after}")
LOG = os.open(os.environ["{log}"], os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND
_count = [0]
_busy = [False]


def _inside(path):
    if isinstance(path, int):
        try:
            path = os.readlink(f"/proc/self/fd/{{path}}")
        except OSError:
            return None
    if isinstance(path, bytes):
        path = os.fsdecode(path)
    if not isinstance(path, str):
        path = os.fspath(path)
    path = os.path.realpath(path)
    return path if path == FOLDER or path.startswith(FOLDER + os.sep) else None


def _kind(event, args):
    if event == "open":
        path, mode, flags = args
        real = _inside(path)
        if real is None:
            return None, None
        if os.path.isdir(real):
            return "open-dir", real
        if (mode is not None and any(c in mode for c in "wax+")) or (flags or 0) & WRITE_FLAGS:
            return ("open-write" if isinstance(path, int) else "open-create"), real
        return None, None
    if event in ("os.mkdir", "tempfile.mkstemp", "os.remove", "os.rmdir", "os.truncate", "shutil.rmtree"):
        real = _inside(args[0])
        return (event if real is not None else None), real
    if event == "os.rename":
        real = _inside(args[1]) or _inside(args[0])
        return (event if real is not None else None), real
    return None, None


def _kill():
    os.kill(os.getpid(), signal.SIGKILL)


def _hook(event, args):
    if _busy[0]:
        return
    _busy[0] = True
    try:
        kind, path = _kind(event, args)
        if kind is None:
            return
        index = _count[0]
        _count[0] += 1
        os.write(LOG, f"{{index}} {{kind}} {{path}} {{time.monotonic():.6f}}\\n".encode())
        if index == 0 and AFTER is not None:
            timer = threading.Timer(float(AFTER), _kill)
            timer.daemon = True
            timer.start()
        if index == AT:
            _kill()
    finally:
        _busy[0] = False


sys.addaudithook(_hook)
'''.format(folder=FOLDER_ENV, at=AT_ENV, after=AFTER_ENV, log=LOG_ENV)

#: The state of the file being written when a kill lands just before an operation of this kind.
PHASE_BEFORE = {
    "os.mkdir": "before-temp",
    "tempfile.mkstemp": "before-temp",
    "open-create": "before-temp",
    "open-write": "empty-temp",
    "os.rename": "full-temp",
    "open-dir": "replaced",
}
PHASES = ("before-temp", "empty-temp", "full-temp", "replaced")


@dataclass
class Operation:
    index: int
    kind: str
    path: str
    time: float

    @property
    def phase(self) -> str:
        return PHASE_BEFORE.get(self.kind, f"before-{self.kind}")


@dataclass
class Trial:
    """One killed run: where it was killed and what it left behind."""

    how: str  # "boundary" (killed just before operation ``at``) or "timed" (``delay_s`` after the first)
    exit_code: int | None
    at: int | None = None
    delay_s: float | None = None
    landed: str = ""  # where the kill landed (see Report.summary)
    new_files: int = 0
    old_files: int = 0
    temporaries: int = 0
    violations: list[str] = field(default_factory=list)

    @property
    def label(self) -> str:
        return f"kill before operation {self.at}" if self.how == "boundary" else f"kill {self.delay_s:.4f} s in"


@dataclass
class Report:
    trials: list[Trial]
    full_run_s: float
    write_window_s: float
    files_per_model: int
    operations: list[Operation] = field(default_factory=list)
    final_violations: list[str] = field(default_factory=list)

    @property
    def violations(self) -> list[str]:
        return [v for t in self.trials for v in t.violations] + self.final_violations

    def landed(self, how: str | None = None) -> Counter[str]:
        """How many kills landed where, e.g. ``{"boundary full-temp": 3, "timed writing temp": 1}``."""
        return Counter(f"{t.how} {t.landed}" for t in self.trials if how in (None, t.how))

    @property
    def phases_hit(self) -> set[str]:
        """The write phases a boundary kill landed in."""
        return {t.landed for t in self.trials if t.how == "boundary" and t.exit_code == -9}

    def summary(self) -> str:
        killed_mid_write = sum(1 for t in self.trials if t.new_files and t.old_files)
        boundary = [t for t in self.trials if t.how == "boundary"]
        lines = [
            f"{len(self.trials)} SIGKILLed `pytest --snapshot-update` runs ({len(boundary)} at write boundaries, "
            f"{len(self.trials) - len(boundary)} at random times), {self.files_per_model} snapshot files per model, "
            f"{len(self.operations)} file-system operations per update (writing all files takes "
            f"{self.write_window_s * 1000:.0f} ms of a {self.full_run_s:.2f} s update)",
            f"  runs killed with a mix of old and new files: {killed_mid_write}; all old: "
            f"{sum(1 for t in self.trials if not t.new_files)}; all new: "
            f"{sum(1 for t in self.trials if not t.old_files)}; temporaries left: "
            f"{sum(t.temporaries for t in self.trials)}",
            "  where the kills landed: " + ", ".join(f"{k}: {n}" for k, n in sorted(self.landed().items())),
            f"  violations (truncated, half-written, missing or other model touched): {len(self.violations)}",
        ]
        lines += [f"    {v}" for v in self.violations[:20]]
        return "\n".join(lines)


def _tree(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def _is_temporary(rel: str) -> bool:
    name = Path(rel).name
    return name.startswith(".") and name.endswith(".tmp")


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:12]


def make_project(root: Path, n_tests: int) -> None:
    """Write the behaviour project: a conftest that takes the model id from the environment, and tests."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "conftest.py").write_text(CONFTEST)
    (root / "test_behaviours.py").write_text(TEST_FILE.format(n=n_tests))
    (root / "pytest.ini").write_text("[pytest]\n")
    plugin_dir = root.parent / "kill-point-plugin"
    plugin_dir.mkdir(exist_ok=True)
    (plugin_dir / f"{PLUGIN_NAME}.py").write_text(KILL_POINT_PLUGIN)


def _command(root: Path, update: bool, *, kill_point: bool = False) -> list[str]:
    return [sys.executable, "-m", "pytest", "-p", "syrupy", *PLUGIN_ARGS, *(["-p", PLUGIN_NAME] if kill_point else []),
            "-q", "-p", "no:randomly", "-x", *(["--snapshot-update"] if update else []), str(root)]


def _env(model: str, root: Path | None = None, **kill: str) -> dict[str, str]:
    env = dict(os.environ)
    env[MODEL_ENV] = model
    env[DTYPE_ENV] = "float32"
    env["PYTEST_DISABLE_PLUGIN_AUTOLOAD"] = "1"
    env.pop("PYTEST_ADDOPTS", None)
    if root is not None:
        plugin_dir = str(root.parent / "kill-point-plugin")
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [plugin_dir, env.get("PYTHONPATH")]))
        env[FOLDER_ENV] = str(root / "snapshots" / model)
        env.update(kill)
    return env


def run_pytest(root: Path, model: str, scale: float, *, update: bool = True) -> subprocess.CompletedProcess[str]:
    (root / "values.json").write_text(json.dumps({"scale": scale}))
    return subprocess.run(_command(root, update), cwd=root, env=_env(model), capture_output=True, text=True,
                          timeout=300)


def _logged_run(root: Path, model: str, log: Path, **kill: str) -> tuple[subprocess.CompletedProcess[str], list[Operation]]:
    """Run ``--snapshot-update`` with the kill-point plugin (``kill``: its environment); return the operations."""
    log.unlink(missing_ok=True)
    done = subprocess.run(_command(root, True, kill_point=True), cwd=root, env=_env(model, root, **{LOG_ENV: str(log)}, **kill),
                          capture_output=True, text=True, timeout=300)
    ops = []
    for line in log.read_text().splitlines() if log.exists() else []:
        index, kind, rest = line.split(" ", 2)
        path, when = rest.rsplit(" ", 1)
        ops.append(Operation(int(index), kind, path, float(when)))
    return done, ops


def choose_kill_points(operations: list[Operation], mode: str, rng: random.Random) -> list[int]:
    """Operation indices to kill before: ``all`` of them, or per phase the first, the last and a
    seeded middle occurrence (``sample``), or none."""
    if mode == "all":
        return [op.index for op in operations]
    if mode == "none":
        return []
    if mode != "sample":
        raise ValueError(f"kill points must be 'all', 'sample' or 'none', not {mode!r}")
    points: set[int] = set()
    by_phase: dict[str, list[int]] = {}
    for op in operations:
        by_phase.setdefault(op.phase, []).append(op.index)
    for indices in by_phase.values():
        points.update({indices[0], indices[-1], indices[rng.randrange(len(indices))] if len(indices) < 3
                       else rng.choice(indices[1:-1])})
    return sorted(points)


def run_kill_trials(workdir: Path, *, runs: int = 20, seed: int = 0, n_tests: int = 60,
                    kill_points: str = "all") -> Report:
    """Run the trials in ``workdir`` (created); see the module docstring. ``runs`` random-time kills
    follow the boundary kills that ``kill_points`` (``all``, ``sample``, ``none``) asks for."""
    rng = random.Random(seed)
    project = workdir / "project"
    make_project(project, n_tests)
    snapshots = project / "snapshots"
    for model, scale in ((MODEL_B, 0.25), (MODEL_A, 0.5)):
        done = run_pytest(project, model, scale)
        if done.returncode != 0:
            raise RuntimeError(f"recording {model} failed:\n{done.stdout}\n{done.stderr}")
    old_a, old_b = _tree(snapshots / MODEL_A), _tree(snapshots / MODEL_B)
    # The new version of every file, and the operations of a whole update: a complete update in a
    # copy of the project (the same relative paths, so the same sequence of operations).
    copy = workdir / "reference"
    shutil.copytree(project, copy)
    (copy / "values.json").write_text(json.dumps({"scale": 0.75}))
    log = workdir / "operations.log"
    t0 = time.perf_counter()
    done, operations = _logged_run(copy, MODEL_A, log)
    full_run_s = time.perf_counter() - t0
    if done.returncode != 0:
        raise RuntimeError(f"the reference update failed:\n{done.stdout}\n{done.stderr}")
    new_a = _tree(copy / "snapshots" / MODEL_A)
    assert set(new_a) == set(old_a) and all(new_a[k] != old_a[k] for k in old_a), "every file must change"
    if not operations:
        raise RuntimeError("the reference update wrote no snapshot file through the watched operations")
    write_window_s = max(0.005, operations[-1].time - operations[0].time)
    # A kill lands between operations, so it cannot catch a file written in place between its
    # truncating open and its close; name such writes instead (a kill there leaves a truncated file).
    in_place = [f"the update writes {op.path} in place ({op.kind}): a kill during that write leaves it truncated"
                for op in operations if op.kind in ("open-create", "open-write", "os.truncate")
                and not _is_temporary(op.path)]

    plan = [("boundary", at) for at in choose_kill_points(operations, kill_points, rng)]
    plan += [("timed", rng.uniform(0.0, write_window_s * 1.2)) for _ in range(runs)]
    trials = []
    temporaries: dict[str, bytes] = {}  # every temporary a kill left, to put back for the final checks
    (project / "values.json").write_text(json.dumps({"scale": 0.75}))
    for how, value in plan:
        shutil.rmtree(snapshots / MODEL_A)
        for rel, data in old_a.items():
            (snapshots / MODEL_A / rel).parent.mkdir(parents=True, exist_ok=True)
            (snapshots / MODEL_A / rel).write_bytes(data)
        if how == "boundary":
            kill = {AT_ENV: str(value)}
            trial = Trial("boundary", None, at=int(value))
        else:
            kill = {AFTER_ENV: f"{value:.6f}"}
            trial = Trial("timed", None, delay_s=float(value))
        done, ops = _logged_run(project, MODEL_A, log, **kill)
        trial.exit_code = done.returncode
        if how == "boundary":
            expected = operations[trial.at]
            if done.returncode != -9 or not ops or ops[-1].index != trial.at or ops[-1].kind != expected.kind:
                trial.violations.append(
                    f"{trial.label} ({expected.kind}) was not reached: exit {done.returncode}, last operation "
                    f"{ops[-1].index if ops else None} {ops[-1].kind if ops else ''}")
            trial.landed = expected.phase
        elif done.returncode == -9:
            trial.landed = f"after {ops[-1].kind}" if ops else "before the first write"
        else:
            trial.landed = "after the last write (finished)"
        now = _tree(snapshots / MODEL_A)
        now_a = {k: v for k, v in now.items() if not _is_temporary(k)}
        trial.temporaries = sum(1 for k in now if _is_temporary(k))
        temporaries.update({k: v for k, v in now.items() if _is_temporary(k)})
        for rel in sorted(set(old_a) | set(now_a)):
            data = now_a.get(rel)
            if data is None:
                trial.violations.append(f"{trial.label}: {MODEL_A}/{rel} is missing")
            elif rel not in old_a:
                trial.violations.append(f"{trial.label}: {MODEL_A}/{rel} is a file no update should write")
            elif data == new_a[rel]:
                trial.new_files += 1
            elif data == old_a[rel]:
                trial.old_files += 1
            else:
                trial.violations.append(
                    f"{trial.label}: {MODEL_A}/{rel} is neither old ({_digest(old_a[rel])}) nor new "
                    f"({_digest(new_a[rel])}): {len(data)} bytes, sha {_digest(data)}")
        if _tree(snapshots / MODEL_B) != old_b:
            trial.violations.append(f"{trial.label}: {MODEL_B}'s snapshots changed")
        trials.append(trial)
    report = Report(trials, full_run_s, write_window_s, len(old_a), operations, in_place)

    def put_back_temporaries() -> None:
        for rel, data in temporaries.items():
            (snapshots / MODEL_A / rel).write_bytes(data)

    # After the kills, a plain update finishes the job from the last kill's files plus every
    # temporary any kill left (empty, partly or fully written), and removes the temporaries.
    put_back_temporaries()
    done = run_pytest(project, MODEL_A, 0.75)
    after = _tree(snapshots / MODEL_A)
    if done.returncode != 0 or after != new_a:
        report.final_violations.append(
            f"the update after the kills did not converge or left temporaries (exit {done.returncode}, "
            f"{sum(1 for k in after if _is_temporary(k))} of {len(temporaries)} temporaries left)")
    # A plain (non-update) run reads every file as a snapshot: the temporaries must not be read.
    put_back_temporaries()
    check = run_pytest(project, MODEL_A, 0.75, update=False)
    if check.returncode != 0:
        report.final_violations.append(
            f"a check run with {len(temporaries)} temporaries in the folder failed:\n{check.stdout[-2000:]}")
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=20, help="number of random-time kills (default 20)")
    parser.add_argument("--kill-points", choices=("all", "sample", "none"), default="all",
                        help="kills at write boundaries: before every operation of the update (all, default), "
                             "the first/last/a seeded middle one of each write phase (sample), or none")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random kill delays and samples (default 0)")
    parser.add_argument("--tests", type=int, default=60, help="snapshot files per model (default 60)")
    parser.add_argument("--workdir", type=Path, default=None, help="where to build the project (default: a temp dir)")
    args = parser.parse_args(argv)
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="kill-snapshot-update-"))
    report = run_kill_trials(workdir, runs=args.runs, seed=args.seed, n_tests=args.tests, kill_points=args.kill_points)
    print(report.summary())
    return 1 if report.violations else 0


if __name__ == "__main__":
    sys.exit(main())
