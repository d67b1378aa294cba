"""pytest-annotate: regression tests for the behaviour of transformer language models.

>>> import pytest_annotate
>>> lab = pytest_annotate.load_model("gemma-3-270m", device="cpu")   # doctest: +SKIP

Exports are resolved lazily: pytest loads this package as a plugin in every session, and importing
torch eagerly would add seconds to each start, even for sessions that never load a model.
"""

from __future__ import annotations

import importlib
import os

# MKL picks its matmul kernel by row count, so a batched sweep row and a single run round
# differently (up to 9e-5 on a Gemma logit). Conditional numerical reproducibility makes them
# bit-identical, at no measured cost. It only takes effect before the first matmul of the
# process, which is why it is set on import (pytest imports this package as a plugin, early).
os.environ.setdefault("MKL_CBWR", "AUTO,STRICT")
from typing import TYPE_CHECKING, Any

_EXPORTS = {
    "AnnotateError": "pytest_annotate.errors",
    "ComponentError": "pytest_annotate.errors",
    "InterventionError": "pytest_annotate.errors",
    "ModelLoadError": "pytest_annotate.errors",
    "ModelSpecError": "pytest_annotate.errors",
    "PromptError": "pytest_annotate.errors",
    "VerdictError": "pytest_annotate.errors",
    "Lab": "pytest_annotate.lab",
    "EMBEDDED": "pytest_annotate.models",
    "ModelSpec": "pytest_annotate.models",
    "load_model": "pytest_annotate.models",
    "resolve": "pytest_annotate.models",
}

__all__ = sorted(_EXPORTS)

if TYPE_CHECKING:
    from pytest_annotate.errors import (
        AnnotateError,
        ComponentError,
        InterventionError,
        ModelLoadError,
        ModelSpecError,
        PromptError,
        VerdictError,
    )
    from pytest_annotate.lab import Lab
    from pytest_annotate.models import EMBEDDED, ModelSpec, load_model, resolve


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'pytest_annotate' has no attribute {name!r}")
    value = getattr(importlib.import_module(_EXPORTS[name]), name)
    globals()[name] = value
    return value
