"""The GPU CI workflow is valid GitHub Actions (checked with actionlint)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LINT = ROOT / "tools" / "lint-workflows"

pytestmark = pytest.mark.skipif(
    shutil.which("actionlint") is None and shutil.which("node") is None, reason="needs actionlint or node"
)


def test_gpu_workflow_passes_actionlint() -> None:
    out = subprocess.run([str(LINT)], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stdout + out.stderr


def test_actionlint_catches_a_broken_workflow(tmp_path: Path) -> None:
    broken = tmp_path / "broken.yml"
    text = (ROOT / ".github/workflows/behaviours-gpu.yml").read_text()
    broken.write_text(text.replace("${{ matrix.model }}", "${{ matrix.modle }}", 1))
    out = subprocess.run([str(LINT), str(broken)], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert out.returncode != 0 and "modle" in out.stdout


def test_workflow_runs_every_hub_model_on_cuda_and_uploads_reports() -> None:
    text = (ROOT / ".github/workflows/behaviours-gpu.yml").read_text()
    assert "model: [gpt2-small, pythia-70m, pythia-160m-deduped]" in text
    assert "--device cuda" in text and "actions/cache@v4" in text and "GITHUB_STEP_SUMMARY" in text
    assert "--snapshot-baseline pythia-160m-deduped" in text and "schedule:" in text
