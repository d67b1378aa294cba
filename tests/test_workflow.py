"""The GPU CI workflow is valid GitHub Actions (checked with actionlint), and every job's pytest command
selects and judges its model's behaviours (checked by running it as a ``--random-weights`` dry run).

A linted workflow can still judge nothing: the pythia-160m-deduped job once ran without
``--processing raw``, so every behaviour skipped and the job went green, and the drift job named a
baseline folder that does not exist. The dry run below runs each job's own command (matrix expanded,
``--device cpu --random-weights``: real collection, real execution on random weights) and requires it
to pass with behaviours judged; the plugin makes a session that judges nothing exit 5.
"""

from __future__ import annotations

import itertools
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
LINT = ROOT / "tools" / "lint-workflows"
WORKFLOW = ROOT / ".github/workflows/behaviours-gpu.yml"

needs_actionlint = pytest.mark.skipif(
    shutil.which("actionlint") is None and shutil.which("node") is None, reason="needs actionlint or node"
)


def pytest_commands(workflow: Path = WORKFLOW) -> list[tuple[str, list[str]]]:
    """``(job name [matrix values], argv)`` for every step that runs pytest, one per matrix combination.

    ``${{ matrix.X }}`` is substituted, shell line continuations joined and the command split as a shell
    would; ``./venv-run`` is dropped (it only enters the virtual environment).
    """
    import yaml

    jobs: dict[str, Any] = yaml.safe_load(workflow.read_text())["jobs"]
    out = []
    for job_name, job in jobs.items():
        for env in matrix_combinations((job.get("strategy") or {}).get("matrix", {})):
            for step in job["steps"]:
                script = step.get("run", "")
                if "pytest" not in script:
                    continue
                script = re.sub(r"\$\{\{\s*matrix\.(\w+)\s*\}\}", lambda m: str(env[m.group(1)]), script)
                argv = shlex.split(script.replace("\\\n", " "))
                argv = argv[1:] if argv[0] == "./venv-run" else argv
                label = " ".join([job_name, *map(str, env.values())])
                out.append((label, argv))
    return out


def matrix_combinations(matrix: dict[str, Any]) -> list[dict[str, Any]]:
    """GitHub Actions' expansion of ``strategy.matrix``: the product of its lists, then each ``include``
    entry added to the combinations it extends without overwriting, or appended as its own.

    >>> matrix_combinations({"model": ["a", "b"], "include": [{"model": "b", "dtype": "bf16"}, {"model": "c"}]})
    [{'model': 'a'}, {'model': 'b', 'dtype': 'bf16'}, {'model': 'c'}]
    """
    assert "exclude" not in matrix, "matrix exclude is not expanded here; extend matrix_combinations"
    base = {k: v for k, v in matrix.items() if k != "include"}
    combos = [dict(zip(base, values)) for values in itertools.product(*base.values())] if base else []
    product = list(combos)
    for extra in matrix.get("include", []):
        matched = [c for c in product if all(c[k] == v for k, v in extra.items() if k in base)] if base else []
        if matched:
            for c in matched:
                c.update(extra)
        else:
            combos.append(dict(extra))
    return combos or [{}]


def dry_run_argv(argv: list[str], tmp_path: Path) -> list[str]:
    """The job's command as a CPU dry run: ``--device cpu --random-weights``, reports written to ``tmp_path``."""
    assert argv[0] == "pytest", argv
    args = argv[1:]
    for i, arg in enumerate(args[:-1]):
        if arg == "--device":
            args[i + 1] = "cpu"
        if arg == "--annotate-report":
            args[i + 1] = str(tmp_path / Path(args[i + 1]).name)
    return [sys.executable, "-m", "pytest", *args, "--random-weights", "-p", "no:randomly", "-p", "no:cacheprovider"]


COMMANDS = pytest_commands()


@needs_actionlint
def test_gpu_workflow_passes_actionlint() -> None:
    out = subprocess.run([str(LINT)], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stdout + out.stderr


@needs_actionlint
def test_actionlint_catches_a_broken_workflow(tmp_path: Path) -> None:
    broken = tmp_path / "broken.yml"
    text = (ROOT / ".github/workflows/behaviours-gpu.yml").read_text()
    broken.write_text(text.replace("${{ matrix.model }}", "${{ matrix.modle }}", 1))
    out = subprocess.run([str(LINT), str(broken)], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert out.returncode != 0 and "modle" in out.stdout


def test_workflow_runs_every_hub_model_on_cuda_and_uploads_reports() -> None:
    text = WORKFLOW.read_text()
    assert "actions/cache@v4" in text and "GITHUB_STEP_SUMMARY" in text and "schedule:" in text
    models = {argv[argv.index("--model") + 1] for _, argv in COMMANDS}
    assert models == {"gpt2-small", "pythia-70m", "pythia-160m-deduped"}
    assert all(argv[argv.index("--device") + 1] == "cuda" for _, argv in COMMANDS)
    assert any("--snapshot-baseline" in argv for _, argv in COMMANDS)


def test_the_commands_are_read_from_the_workflow() -> None:
    labels = [label for label, _ in COMMANDS]
    assert labels[:3] == ["behaviours gpt2-small compat", "behaviours pythia-70m compat", "behaviours pythia-160m-deduped raw"]
    assert labels[3:] == [f"checkpoint-drift {step}" for step in (1000, 3000, 10000, 143000)]
    _, argv = COMMANDS[-1]
    assert argv[:2] == ["pytest", "behaviours/"] and argv[argv.index("--checkpoint") + 1] == "143000"


def _distinct_dry_runs() -> list[Any]:
    """One dry run per job command; the drift job's checkpoints differ only in weights, which a dry run
    replaces with random ones, so its first checkpoint stands for the others."""
    seen, params = set(), []
    for label, argv in COMMANDS:
        flags = ("--checkpoint", "--annotate-report")  # and the report's name, which carries the step
        key = tuple(a for i, a in enumerate(argv) if a not in flags and argv[i - 1] not in flags)
        if key not in seen:
            seen.add(key)
            params.append(pytest.param(argv, id=label))
    return params


@pytest.mark.parametrize("argv", _distinct_dry_runs())
def test_every_job_judges_its_models_behaviours_in_a_dry_run(argv: list[str], tmp_path: Path) -> None:
    """The job's own command, on random weights on the CPU: it must pass having judged behaviours (the plugin
    exits 5 when every behaviour skips), and a drift job must find its baseline snapshot folder."""
    out = subprocess.run(dry_run_argv(argv, tmp_path), cwd=ROOT, capture_output=True, text=True, timeout=900)
    tail = (out.stdout + out.stderr)[-6000:]
    assert out.returncode == 0, f"{shlex.join(argv)}\nexit code {out.returncode}\n{tail}"
    passed = re.search(r"(\d+) passed", out.stdout)
    assert passed and int(passed.group(1)) > 0, tail
    assert "NOTHING JUDGED" not in out.stdout
    if "--snapshot-baseline" in argv:
        assert "snapshot drift:" in out.stdout, tail
