"""pytest-annotate: regression tests for the behaviour of transformer language models.

>>> import pytest_annotate
>>> lab = pytest_annotate.load_model("gemma-3-270m", device="cpu")   # doctest: +SKIP
"""

from pytest_annotate.errors import (
    AnnotateError,
    ComponentError,
    InterventionError,
    ModelLoadError,
    ModelSpecError,
    PromptError,
)
from pytest_annotate.lab import Lab
from pytest_annotate.models import EMBEDDED, ModelSpec, load_model, resolve

__all__ = [
    "EMBEDDED",
    "AnnotateError",
    "ComponentError",
    "InterventionError",
    "Lab",
    "ModelLoadError",
    "ModelSpec",
    "ModelSpecError",
    "PromptError",
    "load_model",
    "resolve",
]
