"""check_repeat_copying and check_half_patching on a model with an induction circuit (the committed
checkpoint series' step 3500) and on one without (step 0), plus their bad input."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from pytest_annotate import (
    RepeatedRandomTokens,
    VerdictError,
    assert_repeat_copying,
    check_half_patching,
    check_repeat_copying,
    load_model,
)
from pytest_annotate.checks.copying import half_columns, next_token_log_probs

SERIES = Path(__file__).resolve().parent.parent / "examples" / "induction_series" / "checkpoints"
PROBE = RepeatedRandomTokens(n=15, batch=64, seed=0)


@pytest.fixture(scope="module")
def trained():
    return load_model(str(SERIES), checkpoint=3500, device="cpu")


@pytest.fixture(scope="module")
def untrained():
    return load_model(str(SERIES), checkpoint=0, device="cpu")


def test_trained_model_copies_the_repeated_half(trained):
    result = check_repeat_copying(trained, PROBE, min_accuracy=0.9, score_first_repeat=False)
    assert result.passed and result.verdict == "holds"
    assert result.second_half_accuracy > 0.95 > 0.2 > result.first_half_accuracy
    assert result.n_positions == 64 * 14
    assert result.loss == -result.second_half_log_prob
    assert result.report().splitlines()[0] == result.headline()
    assert result.headline().startswith("PASSED  the repeated half")
    assert [m.primary for m in result.measurements()].count(True) == 1


def test_scores_match_a_direct_computation(trained):
    """The halves' numbers are the plain mean over the right columns of one full-batch pass."""
    tokens = PROBE.tokens(trained)
    with torch.inference_mode():
        logits = trained.run_batch(tokens).double()
    lp = logits[:, :-1].log_softmax(-1).gather(-1, tokens[:, 1:, None])[..., 0]
    result = check_repeat_copying(trained, PROBE, min_log_prob_gap=0.0)
    assert math.isclose(result.first_half_log_prob, float(lp[:, :15].mean()), abs_tol=1e-9)
    assert math.isclose(result.second_half_log_prob, float(lp[:, 15:30].mean()), abs_tol=1e-9)
    skipped = check_repeat_copying(trained, PROBE, min_log_prob_gap=0.0, score_first_repeat=False)
    assert math.isclose(skipped.second_half_log_prob, float(lp[:, 16:30].mean()), abs_tol=1e-9)


def test_untrained_model_fails_with_the_circuit_hint(untrained):
    with pytest.raises(VerdictError) as info:
        assert_repeat_copying(untrained, PROBE, min_log_prob_gap=5.0, min_accuracy_gap=0.5)
    message = str(info.value)
    assert message.startswith("FAILED  the repeated half")
    assert "missed" in message and "head_scores(lab, 'induction')" in message


def test_a_claim_is_required(trained):
    with pytest.raises(ValueError, match="needs a claim: give min_accuracy"):
        check_repeat_copying(trained, PROBE)


def test_half_columns_without_bos():
    assert half_columns(30, 15) == (slice(0, 14), slice(14, 29))
    with pytest.raises(ValueError, match="not \\(BOS \\+\\) 15 tokens ×2"):
        half_columns(40, 15)


def test_rows_per_pass_does_not_change_the_numbers(trained, monkeypatch):
    tokens = PROBE.tokens(trained)[:4]
    whole = next_token_log_probs(trained, tokens)
    monkeypatch.setattr("pytest_annotate.checks.copying.LOGITS_PER_PASS", 1)  # one row per pass
    split = next_token_log_probs(trained, tokens)
    assert torch.allclose(whole[0], split[0], atol=1e-9) and torch.equal(whole[1], split[1])


def test_half_patching_on_the_trained_model(trained):
    tokens = PROBE.tokens(trained)[0]
    result = check_half_patching(trained, tokens, "attn", max_delta=100.0)
    assert len(result.deltas) == trained.n_layers and len(result.deltas[0]) == 16
    assert result.passed and result.report().splitlines()[0] == result.headline()
    assert result.max_delta_at.startswith("ATTN")


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"sublayer": "head"}, "sublayer must be 'mlp' or 'attn'"),
    ({"tokens": torch.zeros(2, 31, dtype=torch.long)}, "one row of BOS"),
])
def test_half_patching_bad_input(trained, kwargs, match):
    args = {"tokens": PROBE.tokens(trained)[0], **kwargs}
    with pytest.raises(ValueError, match=match):
        check_half_patching(trained, **args)
