"""K-composition full circuits and Q/K/V composition scores, on Gemma 3 270M and a tiny random GPT-2.

Gemma numbers (compat processing, 1,024 rows sampled with seed 0): L10H1 → L11H2 has top-1
accuracy 0.583 ± 0.015; L4H1 → L5H1 (the layer-5 induction head and its best partner) 0.003.
"""

from __future__ import annotations

import pytest
import torch

from pytest_annotate.checks.composition import CompositionResult, assert_k_composition, check_k_composition, composition_scores, k_composition_circuit
from pytest_annotate.scoring.weights import circuit_weights, norm_gain
from pytest_annotate.interventions.heads import parse_head
from pytest_annotate.errors import ComponentError, VerdictError

# --------------------------------------------------------------------------- Gemma


def test_best_pair_composes_and_a_random_pair_does_not(model):
    best = assert_k_composition(model, "L10H1", "L11H2", min_accuracy=0.5)
    assert isinstance(best, CompositionResult) and best.passed
    assert best.accuracy == pytest.approx(0.58, abs=0.05)
    assert best.n_rows == 1024 and best.d_vocab == 262_144 and 0 < best.accuracy_se < 0.02
    assert best.best_partners[0][0] == "L10H1"  # also the top partner by Frobenius K-composition score

    # A pair drawn at random (seeded): its circuit is no better than chance.
    generator = torch.Generator().manual_seed(0)
    ind_layer = int(torch.randint(1, model.n_layers, (1,), generator=generator))
    draw = [int(torch.randint(0, top, (1,), generator=generator)) for top in (ind_layer, 4, 4)]
    prev_layer, prev_head, ind_head = draw
    prev, ind = (prev_layer, prev_head), (ind_layer, ind_head)
    with pytest.raises(VerdictError) as info:
        assert_k_composition(model, prev, ind, min_accuracy=0.05, n_rows=256)
    result = info.value.result
    assert result.accuracy < 0.02 < best.accuracy - 10 * best.accuracy_se
    message = str(info.value)
    assert message.startswith(f"FAILED  L{prev[0]}H{prev[1]} → L{ind[0]}H{ind[1]} K-composition: top-1 accuracy ≥ 0.050")
    assert "256 of 262,144 rows sampled uniformly, seed 0" in message
    assert "misses (below by 0.0" in message and "chance 3.8e-06" in message
    assert "95% interval 0.0000–0.01" in message  # an honest bound even with 0 hits of 256
    assert "Earlier heads composing most with" in message and "Next:" in message


def test_k_composition_scores_point_at_the_same_pair(model):
    scores = composition_scores(model, "K")
    assert scores.shape == (18, 4, 18, 4)
    assert torch.all(scores.scores[5:, :, 5, :] == 0)  # only earlier layers compose
    flat = scores.scores.flatten().argmax()
    assert scores.head_labels[int(flat) // 72] == "L10H1" and scores.head_labels[int(flat) % 72] == "L11H2"


def test_gemma_norm_gains_are_read_from_the_modules(model):
    """Gemma's norms scale by (1 + weight); the ±1 probe reads that without knowing the convention."""
    block = model.bridge.blocks[3]
    for module, width in [(block.ln1_post, model.d_model), (block.attn.q_norm, 256), (block.attn.k_norm, 256)]:
        expected = 1 + module._original_component.weight.detach()
        torch.testing.assert_close(norm_gain(module, width, device=model.device, dtype=torch.float32), expected)
    weights = circuit_weights(model)
    # compat processing folds the pre-attention norm into W_Q/W_K/W_V and the final norm into W_U
    assert torch.allclose(weights.final_gain, torch.ones(model.d_model))


def test_bad_pairs(model):
    with pytest.raises(ComponentError, match=r"L11H2 cannot compose with L10H1: .*earlier layers"):
        check_k_composition(model, "L11H2", "L10H1")
    with pytest.raises(ComponentError, match=r"'L5H40'.*4 heads per layer"):
        check_k_composition(model, "L5H40", "L11H2")
    with pytest.raises(ComponentError, match=r"'attn3' is an attention layer, not an attention head.*L0H0\.\.L17H3"):
        parse_head(model, "attn3")
    with pytest.raises(ValueError, match=r"min_accuracy=1.5 is not an accuracy"):
        check_k_composition(model, "L10H1", "L11H2", min_accuracy=1.5)
    with pytest.raises(ValueError, match=r"n_rows=0"):
        check_k_composition(model, "L10H1", "L11H2", n_rows=0)


@pytest.mark.gpu
def test_all_rows_agree_with_the_sample(model):
    """Every one of the 262,144 rows (seconds on a GPU): the sampled estimate is within 4 s.e."""
    sample = check_k_composition(model, "L10H1", "L11H2")
    full = check_k_composition(model, "L10H1", "L11H2", n_rows=None)
    assert full.n_rows == full.d_vocab and full.accuracy_se == 0
    assert abs(full.accuracy - sample.accuracy) < 4 * sample.accuracy_se


# --------------------------------------------------------------------------- a second architecture


@pytest.mark.parametrize("mode", ["Q", "K", "V"])
def test_composition_scores_match_transformer_lens_on_gpt2(tiny_gpt2, mode):
    """With no norm gains between heads (GPT-2, compat processing) ours is the bridge's own."""
    ours = composition_scores(tiny_gpt2, mode)
    theirs = tiny_gpt2.bridge.all_composition_scores(mode)
    assert ours.shape == (2, 4, 2, 4)
    torch.testing.assert_close(ours.scores, theirs.scores.detach(), atol=1e-6, rtol=1e-5)


def test_k_composition_on_gpt2_uses_every_row(tiny_gpt2):
    result = check_k_composition(tiny_gpt2, "L0H1", "L1H2")
    assert result.n_rows == result.d_vocab == tiny_gpt2.d_vocab and result.accuracy_se == 0
    # The same number from the materialised vocab × vocab FactoredMatrix.
    circuit = k_composition_circuit(tiny_gpt2, "L0H1", "L1H2")
    assert circuit.shape == (tiny_gpt2.d_vocab, tiny_gpt2.d_vocab)
    diagonal_wins = circuit.AB.argmax(-1) == torch.arange(tiny_gpt2.d_vocab)
    assert result.accuracy == pytest.approx(float(diagonal_wins.float().mean()))
    assert "all 400 rows" in result.report()
