"""The logit lens on Gemma 3 270M (compat and raw) and on a random tiny GPT-2 (compat and raw)."""

from __future__ import annotations

import gc

import pytest

from pytest_annotate import load_model
from pytest_annotate.errors import VerdictError
from pytest_annotate.checks.logit_lens import LogitLensResult, assert_first_top1_layer, check_logit_lens, lens_logits, resid_post_names
from pytest_annotate.checks.predictions import check_top_token


@pytest.fixture(scope="module")
def gemma_raw(model):
    """Gemma 3 270M in raw (HuggingFace) numerics, on the session model's device, loaded once for this module."""
    lab = load_model("gemma-3-270m", device=model.device, processing="raw")
    yield lab
    del lab
    gc.collect()


@pytest.mark.parametrize("lab_name", ["model", "gemma_raw", "tiny_gpt2", "tiny_gpt2_raw"])
def test_lens_after_the_last_block_is_the_model(lab_name: str, request: pytest.FixtureRequest) -> None:
    """Reading the last block's output gives the model's own logits, at every position, to 1e-4 relative."""
    lab = request.getfixturevalue(lab_name)
    prompt = "The capital of Ireland is"
    n = lab.tokens(prompt).shape[0]
    lens = lens_logits(lab, prompt, positions=range(n))
    assert lens.shape == (lab.n_layers, n, lab.d_vocab)
    logits = lab.run(prompt)
    err = (lens[-1] - logits).abs().max() / logits.abs().max()
    assert err <= 1e-4, f"{lab.model_id} ({lab.processing}): lens differs from the logits by {err:.2e} relative"


@pytest.mark.parametrize("lab_name", ["model", "tiny_gpt2"])
def test_lens_agrees_with_transformer_lens_accumulated_resid(lab_name: str, request: pytest.FixtureRequest) -> None:
    """Our layer i is TransformerLens's accumulated_resid entry i+1 (resid_pre of block i+1), read through
    apply_ln=True, which recomputes the final norm per entry (not the cached final-norm scale)."""
    lab = request.getfixturevalue(lab_name)
    prompt = "January February March April"
    names = [f"blocks.{i}.hook_resid_pre" for i in range(lab.n_layers)] + resid_post_names(lab)
    stack = lab.cache(prompt, names=names).accumulated_resid(apply_ln=True, pos_slice=-1)
    theirs = stack[1:, 0] @ lab.bridge.W_U + lab.bridge.b_U
    ours = lens_logits(lab, prompt)[:, 0]
    err = (ours - theirs).abs().max() / theirs.abs().max()
    assert err <= 1e-4


@pytest.mark.parametrize("lab_name", ["model", "tiny_gpt2"])
def test_lens_at_layer_k_is_the_model_without_the_blocks_after_k(lab_name: str, request: pytest.FixtureRequest) -> None:
    from pytest_annotate.interventions.ablations import keep_only

    lab = request.getfixturevalue(lab_name)
    k = max(0, lab.n_layers - 7)  # Gemma: layer 11, where ' 5' is still rank 3
    lens = check_logit_lens(lab, "1 2 3 4", " 5").layers[k]
    kept = check_top_token(lab, "1 2 3 4", " 5", intervention=keep_only(lab, [f"L0-L{k}" if k else "L0"]))
    assert lens.ranks == tuple(t.rank for t in kept.answer_tokens)
    assert lens.prob == pytest.approx(kept.prob, rel=1e-4)
    assert lens.logit == pytest.approx(kept.logit, rel=1e-4)


def test_answers_rise_at_measured_layers(model) -> None:
    may = assert_first_top1_layer(model, "January February March April", " May", layer=17)
    assert isinstance(may, LogitLensResult)
    assert [r.rank for r in may.layers[11:]] == [82, 2, 2, 2, 2, 2, 0]
    assert may.top1_from_layer == 17
    dublin = assert_first_top1_layer(model, "The capital of Ireland is", " Dublin", layer=12)
    assert dublin.layers[14].rank == 1 and dublin.top1_from_layer == 15  # ' becoming' wins at layer 14


def test_lens_numbers_after_the_last_block_are_the_checks_numbers(model) -> None:
    lens = check_logit_lens(model, "1 2 3 4", " 5")
    top = check_top_token(model, "1 2 3 4", " 5")
    last = lens.layers[-1]
    assert last.rank == top.rank and last.ranks == tuple(t.rank for t in top.answer_tokens)
    assert last.prob == pytest.approx(top.prob, rel=1e-4)
    assert last.logit == pytest.approx(top.logit, rel=1e-4)


def test_multi_token_answer_is_read_by_teacher_forcing(model) -> None:
    lens = check_logit_lens(model, "1 2 3 4", " 5")
    assert lens.answer_tokens == (" ", "5")
    assert lens.first_top1_layer == 12 and lens.top1_from_layer == 12
    assert lens.layers[11].ranks == (2, 3) and lens.layers[11].rank == 3
    assert "(teacher-forced)" in lens.report() and "joint prob" in lens.report()


def test_wrong_layer_claim_fails_with_the_table(model) -> None:
    with pytest.raises(VerdictError) as info:
        assert_first_top1_layer(model, "1 2 3 4", " 5", layer=10)
    message = str(info.value)
    assert message.startswith("FAILED  ' 5' first becomes top-1 at layer 10 after '1 2 3 4': first top-1 at layer 12")
    assert "measured  layer 12: 2 layers later than claimed (tolerance 0)" in message
    assert "at layer 10 the answer has rank 11 (|5| is top-1 at 10.62%)" in message
    assert "intervention=keep_only(model, ['L0-L10'])) gives the same numbers" in message
    assert "Logit lens (compat processing)" in message or "Logit lens (raw processing)" in message
    assert "   12       0       (0, 0)" in message and "<- first top-1" in message
    assert_first_top1_layer(model, "1 2 3 4", " 5", layer=10, tolerance=2)


def test_answer_that_rises_and_falls_again_is_explained(model) -> None:
    lens = check_logit_lens(model, "August September October", " November")
    assert lens.first_top1_layer == 12 and lens.top1_from_layer is None and lens.layers[-1].rank == 3
    with pytest.raises(VerdictError) as info:
        assert_first_top1_layer(model, "August September October", " November", layer=15)
    message = str(info.value)
    assert "layer 12: 3 layers earlier than claimed" in message
    assert "the answer is top-1 at layer 12 but drops again; it is not top-1 after the last layer" in message
    assert "the model itself does not predict it (rank 3 after the last layer)" in message


def test_tiny_gpt2_lens_has_one_row_per_block(tiny_gpt2) -> None:
    lens = check_logit_lens(tiny_gpt2, "A B C", " D")
    assert [r.layer for r in lens.layers] == [0, 1]
    assert lens.layers[-1].rank == check_top_token(tiny_gpt2, "A B C", " D").rank
    assert lens.passed == (lens.first_top1_layer is not None)


@pytest.mark.parametrize(("layer", "tolerance"), [(2, 0), (-1, 0), (1, -1), (1.0, 0)])
def test_bad_layer_or_tolerance(tiny_gpt2, layer, tolerance) -> None:
    with pytest.raises(ValueError, match=r"give a block index 0\.\.1|tolerance=-1: give a whole number"):
        check_logit_lens(tiny_gpt2, "A B C", " D", layer=layer, tolerance=tolerance)
