"""Head-role score tables and claims, on Gemma 3 270M (real weights) and a tiny random GPT-2.

The Gemma numbers asserted here were measured with the default inputs (BOS + 50 random ordinary
tokens ×2, batch 8, seed 0) in compat processing; seeds 1 and 2 move them by < 0.03.
"""

from __future__ import annotations

import numpy as np
from pathlib import Path

import pytest
import torch
from transformer_lens.head_detector import detect_head

from pytest_annotate.scoring.weights import circuit_weights
from pytest_annotate.errors import ComponentError, PromptError, VerdictError
from pytest_annotate.scoring.head_scores import ROLES, CopyingBasis, HeadScores, RepeatedRandomTokens, RoleError, direct_logit_attribution, head_scores, target_masks
from pytest_annotate.checks.head_roles import assert_head_role, check_head_role

# --------------------------------------------------------------------------- Gemma: the tables


def test_induction_table_top_heads(model):
    scores = head_scores(model, "induction")
    assert isinstance(scores, HeadScores) and scores.passed
    assert scores.array.shape == (model.n_layers, model.n_heads) == (18, 4)
    assert scores.n_target_rows == 8 * 50 and scores.n_query_rows == 8 * 101
    assert [name for name, _ in scores.top(3)] == ["L5H1", "L11H2", "L5H2"]
    assert scores.score("L5H1") == pytest.approx(0.87, abs=0.03)
    assert scores.score("L11H2") == pytest.approx(0.65, abs=0.03)
    assert scores.rank("L5H1") == 0 and scores.rank("l11h2") == 1
    report = scores.report()
    assert "induction scores of gemma-3-270m" in report and "18 layers × 4 heads" in report
    assert "BOS + 50 random ordinary tokens ×2, batch 8, seed 0" in report
    assert "#1" in report and report.rstrip().splitlines()[-1].startswith("Top 5: L5H1 0.8")


def test_previous_token_and_duplicate_heads(model):
    previous = head_scores(model, "previous_token")
    assert [name for name, _ in previous.top(3)] == ["L2H3", "L4H1", "L10H1"]
    assert previous.score("L2H3") == pytest.approx(0.69, abs=0.03)
    duplicate = head_scores(model, "duplicate_token")
    assert [name for name, _ in duplicate.top(2)] == ["L3H3", "L0H1"]


def test_mover_heads(model):
    # On repeated sequences "earlier copies of the next token" are the induction targets, so the mover
    # attention ranks the same heads; its direct logit effect is carried almost only by L11H2.
    attention = head_scores(model, "mover_attention")
    assert [name for name, _ in attention.top(2)] == ["L5H1", "L11H2"]
    dla = head_scores(model, "mover")
    (top, value), (_, second) = dla.top(2)
    assert top == "L11H2" and value > 8 and second < 1
    assert dla.score("L5H1") < 0.5  # the layer-5 induction head works through later layers, not the logits


def test_scores_are_memoized_values(model):
    first = head_scores(model, "induction")
    executed = model.stats.executed
    again = head_scores(model, "previous_token")  # same inputs: same forward pass
    assert model.stats.executed == executed
    np.testing.assert_array_equal(head_scores(model, "induction").array, first.array)
    as_dict = first.as_dict()
    assert len(as_dict["scores"]) == 18 and all(isinstance(x, float) for x in as_dict["scores"][0])
    assert again.inputs == first.inputs


def test_agrees_with_transformer_lens_head_detector(model):
    """head_detector runs on a TransformerBridge; on the same tokens its "mul" score equals ours times
    the fraction of query positions that have a target (it divides by all of them)."""
    ids = RepeatedRandomTokens(n=30, batch=1, seed=3).tokens(model)[0, 1:]
    text = model.bridge.tokenizer.decode(ids)  # head_detector takes text: use exactly its tokens
    tokens = model.tokens(text)
    # One cache of the patterns for all three detectors (detect_head would otherwise cache every hook, 3 times).
    _, cache = model.bridge.run_with_cache(
        tokens[None], names_filter=lambda name: name.endswith("attn.hook_pattern"), remove_batch_dim=True
    )
    for role, detector_name in [
        ("induction", "induction_head"),
        ("previous_token", "previous_token_head"),
        ("duplicate_token", "duplicate_token_head"),
    ]:
        ours = head_scores(model, role, inputs=tokens)
        theirs = detect_head(model.bridge, text, detector_name, cache=cache).double().cpu().numpy()
        np.testing.assert_allclose(ours.array * ours.detector_fraction, theirs, atol=1e-3, rtol=0)
    assert head_scores(model, "induction", inputs=tokens).top(1)[0][0] == "L5H1"


def test_copying_scores(model):
    vocab = head_scores(model, "copying")
    residual = head_scores(model, "copying", inputs=CopyingBasis("residual"))
    for table in (vocab, residual):
        assert table.array.shape == (18, 4)
        assert np.all(np.abs(table.array) <= 1 + 1e-9)
    assert "all tokens" in vocab.inputs and "weights only" in vocab.inputs
    assert {name for name, _ in vocab.top(3)} == {"L15H3", "L17H1", "L15H0"}
    assert all(value > 0.98 for _, value in vocab.top(3))
    assert vocab.array.min() < -0.9  # and some heads suppress the token they read


def test_head_dla_sums_to_the_attention_layers_direct_logit(model):
    """Per-head DLA (through Gemma's post-attention norm and the final norm) adds up to what the
    attention layer's real output, hook_attn_out, contributes to the next token's logit."""
    tokens = model.tokens("When Mary and John went to the store, John gave a drink to Mary. When Mary")[None]
    dla = direct_logit_attribution(model, tokens)  # [layer, batch, pos, head]
    names = [f"blocks.{layer}.hook_attn_out" for layer in range(model.n_layers)] + ["ln_final.hook_scale"]
    with torch.inference_mode():
        _, cache = model.bridge.run_with_cache(tokens, names_filter=lambda n: n in names)
    w = circuit_weights(model)
    unembed = w.W_U[:, tokens[0, 1:]].T * w.final_gain  # [pos - 1, d_model]
    for layer in range(model.n_layers):
        expected = (cache[f"blocks.{layer}.hook_attn_out"][0, :-1] / cache["ln_final.hook_scale"][0, :-1] * unembed)
        torch.testing.assert_close(dla[layer, 0, :-1].sum(-1), expected.sum(-1), atol=1e-4, rtol=1e-4)


# --------------------------------------------------------------------------- Gemma: claims


def test_assert_head_role_passes(model):
    result = assert_head_role(model, "L5H1", "induction", min_score=0.8, top_k=1)
    assert result.passed and result.rank == 0 and result.top_heads[0][0] == "L5H1"
    assert_head_role(model, (2, 3), "previous_token", min_score=0.6, top_k=1)


def test_a_rank_only_claim_warns_at_the_callers_line(model):
    from pytest_annotate import WeakClaimWarning

    with pytest.warns(WeakClaimWarning, match=r"^'L11H2 is the top head for mover' claims a rank only: every model") as w:
        assert assert_head_role(model, "L11H2", "mover", top_k=1).passed
    assert [Path(x.filename) for x in w] == [Path(__file__)]
    with pytest.warns(WeakClaimWarning, match="among the top 3 heads"):
        check_head_role(model, "L11H2", "mover", top_k=3)


@pytest.mark.filterwarnings("ignore::pytest_annotate.errors.WeakClaimWarning")
def test_assert_head_role_failure_report(model):
    with pytest.raises(VerdictError) as info:
        assert_head_role(model, "L2H3", "induction", min_score=0.5, top_k=3)
    message = str(info.value)
    assert message.startswith("FAILED  L2H3 is an induction head on gemma-3-270m")
    assert "induction score 0.0000" in message
    assert "claim     score ≥ 0.5: misses (below by 0.5000)" in message  # L2H3 scores 0.0000
    assert "of 72 heads" in message and "claim     top-3: misses" in message
    assert "Top 5 induction heads:" in message and "1. L5H1" in message
    assert "Next:" in message
    assert isinstance(info.value.result, type(check_head_role(model, "L2H3", "induction", top_k=3)))


def test_a_near_miss_says_by_how_much(model):
    result = check_head_role(model, "L5H1", "induction", min_score=0.95)
    assert not result.passed
    assert "below by 0.0" in result.report() and "Rank: 1st of 72 heads" in result.report()


# --------------------------------------------------------------------------- bad input


def test_bad_heads_and_roles(model):
    with pytest.raises(ComponentError, match=r"'L5H40'.*4 heads per layer.*L0H0\.\.L17H3"):
        check_head_role(model, "L5H40", "induction", top_k=1)
    with pytest.raises(ComponentError, match=r"L99"):
        check_head_role(model, "L99H0", "induction", top_k=1)
    with pytest.raises(ComponentError, match=r"not an attention head"):
        check_head_role(model, "MLP5", "induction", top_k=1)
    with pytest.raises(RoleError, match=r"unknown head role 'inducton'.*valid roles: induction.*Did you mean"):
        head_scores(model, "inducton")
    with pytest.raises(RoleError, match="claims nothing"):
        check_head_role(model, "L5H1", "induction")
    with pytest.raises(RoleError, match=r"top_k=0"):
        check_head_role(model, "L5H1", "induction", top_k=0)
    with pytest.raises(RoleError, match="weights only"):
        head_scores(model, "copying", inputs=RepeatedRandomTokens())
    with pytest.raises(PromptError, match="positive whole number"):
        RepeatedRandomTokens(n=0)
    with pytest.raises(PromptError, match="no token occurs twice"):
        head_scores(model, "induction", inputs=["The capital of Ireland is"])


def test_target_masks_are_head_detectors_patterns():
    from transformer_lens.head_detector import (
        get_duplicate_token_head_detection_pattern,
        get_induction_head_detection_pattern,
        get_previous_token_head_detection_pattern,
    )

    tokens = torch.tensor([[2, 7, 8, 9, 7, 8, 8, 9]])
    masks = target_masks(tokens)
    assert torch.equal(masks["induction"][0].float(), get_induction_head_detection_pattern(tokens))
    assert torch.equal(masks["duplicate_token"][0].float(), get_duplicate_token_head_detection_pattern(tokens))
    assert torch.equal(masks["previous_token"][0].float(), get_previous_token_head_detection_pattern(tokens))
    # mover: position q attends to earlier copies of token q + 1 (here position 3 → the 7 at position 1)
    assert masks["mover_attention"][0, 3].nonzero().flatten().tolist() == [1]


# --------------------------------------------------------------------------- a second architecture


@pytest.mark.parametrize("role", ROLES)
def test_every_role_runs_on_tiny_gpt2(tiny_gpt2, role):
    inputs = None if role == "copying" else RepeatedRandomTokens(n=10, batch=3)
    scores = head_scores(tiny_gpt2, role, inputs=inputs)
    assert scores.array.shape == (2, 4) and np.all(np.isfinite(scores.array))
    if role != "mover":
        assert np.all(scores.array >= -1 - 1e-9) and np.all(scores.array <= 1 + 1e-9)
    report = scores.report()
    assert len(scores.top(3)) == 3 and "\nL1 " in report and "Top 5: " in report


def test_repeated_random_tokens_bos_follows_the_policy_unless_given(tiny_gpt2):
    """bos=None follows the Lab's BOS policy; True/False override it (seed 002 put BOS before Pythia's
    rows although TransformerLens 4 gives Pythia none). The memo tells the two apart."""
    bos_id = tiny_gpt2.bridge.tokenizer.bos_token_id
    body = RepeatedRandomTokens(n=10, batch=2, bos=False).tokens(tiny_gpt2)
    assert body.shape == (2, 20) and not (body == bos_id).any()
    with tiny_gpt2.bos_policy(False):
        assert torch.equal(RepeatedRandomTokens(n=10, batch=2).tokens(tiny_gpt2), body)
        forced = RepeatedRandomTokens(n=10, batch=2, bos=True).tokens(tiny_gpt2)
        no_bos = head_scores(tiny_gpt2, "induction", inputs=RepeatedRandomTokens(n=10, batch=2))
    assert forced.shape == (2, 21) and (forced[:, 0] == bos_id).all() and torch.equal(forced[:, 1:], body)
    assert torch.equal(RepeatedRandomTokens(n=10, batch=2).tokens(tiny_gpt2), forced)  # GPT-2's policy: BOS
    with_bos = head_scores(tiny_gpt2, "induction", inputs=RepeatedRandomTokens(n=10, batch=2))
    assert no_bos.inputs.startswith("10 random") and with_bos.inputs.startswith("BOS + 10 random")
    assert not np.array_equal(no_bos.array, with_bos.array)
    with pytest.raises(PromptError, match=r"RepeatedRandomTokens\(bos='yes'\): give True"):
        RepeatedRandomTokens(bos="yes")


def test_tiny_gpt2_post_mlp0_copying_and_dla(tiny_gpt2):
    table = head_scores(tiny_gpt2, "copying", inputs=CopyingBasis(embedding="post_mlp0", vocab_sample=200))
    assert "(W_E + MLP0)" in table.inputs and "200 tokens sampled" in table.inputs
    tokens = RepeatedRandomTokens(n=10, batch=2).tokens(tiny_gpt2)
    dla = direct_logit_attribution(tiny_gpt2, tokens)
    assert dla.shape == (2, 2, 21, 4)
    # GPT-2's attention has an output bias b_O; the heads' DLAs add up to the rest.
    names = ["blocks.1.hook_attn_out", "ln_final.hook_scale"]
    with torch.inference_mode():
        _, cache = tiny_gpt2.bridge.run_with_cache(tokens, names_filter=lambda n: n in names)
    w = circuit_weights(tiny_gpt2)
    unembed = w.W_U[:, tokens[:, 1:]].permute(1, 2, 0) * w.final_gain
    unembed = unembed - unembed.mean(-1, keepdim=True)
    attn_out = cache["blocks.1.hook_attn_out"][:, :-1] - tiny_gpt2.bridge.blocks[1].attn.b_O.detach()
    expected = (attn_out / cache["ln_final.hook_scale"][:, :-1] * unembed).sum(-1)
    torch.testing.assert_close(dla[1, :, :-1].sum(-1), expected, atol=1e-5, rtol=1e-4)
    assert tiny_gpt2.hook_leaks() == []
