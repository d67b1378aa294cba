"""The second embedded model's behaviours run in CI too.

The README's main command runs ``pytest behaviours/`` on the default model (Gemma 3 270M); the
SmolLM2 findings need their own session (one model per session), so this test starts it.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_smollm2_behaviours_hold() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "pytest", "behaviours/smollm2_135m", "--model", "smollm2-135m", "-q", "-p", "no:randomly"],
        cwd=ROOT, capture_output=True, text=True, timeout=1800,
    )
    assert out.returncode == 0, out.stdout[-6000:] + out.stderr[-2000:]
    assert " passed" in out.stdout and "skipped" not in out.stdout.splitlines()[-1]
