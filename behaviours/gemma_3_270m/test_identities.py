"""The residual stream and the logits decompose exactly into named terms on Gemma 3 270M."""

import pytest

from pytest_annotate.checks.decomposition import assert_decomposition_sums

pytestmark = pytest.mark.model("gemma-3-270m")


@pytest.mark.parametrize("prompt", ["January February March April", "The capital of Ireland is"])
def test_decomposition_sums(model, prompt):
    """embed + sum of attention (per head, post-norm frozen) + sum of MLP outputs equals the residual stream,
    and the per-component logit attributions sum to the logit, to 1e-4 (relative to the residual's RMS) in fp32."""
    assert_decomposition_sums(model, prompt, atol=1e-4)
