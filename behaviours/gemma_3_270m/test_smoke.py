"""Smoke behaviour: the default embedded model continues a month sequence."""

import pytest

pytestmark = pytest.mark.model("gemma-3-270m")


def test_months_continue(model):
    """Gemma 3 270M predicts ' May' after 'January February March April' (measured here)."""
    logits = model.run("January February March April")
    top = int(logits[-1].argmax())
    assert model.to_str([top]) == [" May"]
