"""Hook canaries: an intervention proves that its hooks fired, and a hook that edits nothing is exact.

An intervention's change check runs inside its hooks, so it proves nothing about a hook point that
is never called: TransformerLens 4 bridges expose hook points that some architectures never call
(``hook_pos_embed`` on Gemma, whose positions are rotary). Every hook is counted per forward pass,
and a hook point of the intervention that was not called raises ``InterventionError``.
"""

from __future__ import annotations

import pytest
import torch

from pytest_annotate.errors import InterventionError
from pytest_annotate.interventions import ablations
from pytest_annotate.interventions.ablations import (
    Ablation,
    HookCanary,
    Intervention,
    _ablation_hook_names,
    _never_fired_reason,
    ablate,
    keep_only,
)
from pytest_annotate.interventions.components import Component
from pytest_annotate.scoring.sweeps import score_interventions

MONTHS, MAY = "January February March April", " May"

# Built directly: the component parser refuses pos_embed on a rotary model, so this is what a
# lower-level caller (or a parser bug) would hand the hooks.
ZERO_POS_EMBED = Intervention((Ablation(Component("pos_embed"), "zero"),))


# --------------------------------------------------------------------------- a hook point that never fires


def test_on_gemma_the_pos_embed_hook_point_exists_and_a_bare_patch_there_is_a_silent_no_op(model):
    # The failure the canary exists for: hooks run straight on the bridge change nothing, and say nothing.
    toks = model.tokens(MONTHS)
    assert "hook_pos_embed" in model.bridge.hook_dict
    with torch.inference_mode():
        patched = model.bridge.run_with_hooks(toks[None], fwd_hooks=ZERO_POS_EMBED.fwd_hooks(model, toks))[0]
    assert torch.equal(patched, model.run(toks))


def test_on_gemma_ablating_pos_embed_which_never_fires_raises_naming_the_hook_point_and_why(model):
    for _ in range(2):  # raises both times: a failed run is not memoized
        with pytest.raises(InterventionError) as info:
            ZERO_POS_EMBED.score(model, MONTHS, MAY)
    message = str(info.value)
    assert message.startswith(
        "'zero pos_embed' did not happen: the hook point it writes, hook_pos_embed (to edit pos_embed), "
        f"was never called in the forward pass of {model.model_id}"
    ), message
    assert "has no learned position embedding" in message and "its positions are rotary" in message
    assert "Ablate embed, or the attention layers that use the positions." in message
    assert "this is an error, not a pass" in message
    assert model.hook_leaks() == []


def test_on_gemma_a_batched_sweep_raises_for_the_edit_that_never_fired_though_other_rows_run_clean(model):
    ivs = [None, ablate(model, "MLP0"), ZERO_POS_EMBED + ablate(model, "L3"), None]
    with pytest.raises(InterventionError, match=r"^'zero pos_embed' \(part of 'zero pos_embed; zero L3'\) did not "
                                               r"happen: the hook point it writes, hook_pos_embed"):
        score_interventions(model, MONTHS, MAY, ivs)
    assert model.hook_leaks() == []


def test_rows_without_an_edit_are_not_misses_the_count_is_per_hook_point(tiny_gpt2):
    # Two rows edit MLP1, two run clean: one call of the MLP1 hook covers the batch.
    ivs = [None, ablate(tiny_gpt2, "MLP1"), None, ablate(tiny_gpt2, "MLP1"), keep_only(tiny_gpt2, "L0")]
    batched = score_interventions(tiny_gpt2, "1 2 3 4", " 5", ivs)
    assert batched.forward_passes == 1
    toks = tiny_gpt2.tokens("1 2 3 4")
    hooks = ablations.batched_fwd_hooks(tiny_gpt2, toks, ivs)
    for _ in range(2):  # hooks built once and run twice are counted per pass
        tiny_gpt2.run_batch(toks.expand(len(ivs), -1), fwd_hooks=hooks)
        (canary,) = {id(fn.canary): fn.canary for _, fn in hooks}.values()
        assert canary.calls == {
            "blocks.1.hook_resid_pre": 1,  # read: the input of the skipped block L1
            "blocks.1.hook_mlp_out": 1,
            "blocks.1.hook_resid_post": 1,
        }


def test_on_a_tiny_gpt2_a_write_at_a_hook_point_it_never_calls_raises(tiny_gpt2, monkeypatch):
    # GPT-2's bridge has attn.qkv hook points but computes q, k, v without calling them.
    real = ablations._hook_points

    def misrouted(edit):
        c = edit.component
        return ("blocks.0.attn.qkv.hook_out", None) if c == Component("attn", 0) else real(edit)

    monkeypatch.setattr(ablations, "_hook_points", misrouted)
    tiny_gpt2.clear_memo()  # an earlier test may have run this intervention: the memo would answer, no pass
    with pytest.raises(InterventionError) as info:
        ablate(tiny_gpt2, "attn0 + MLP1").run(tiny_gpt2, "1 2 3 4")
    message = str(info.value)
    assert message.startswith(
        "'zero attn0' (part of 'zero attn0 + MLP1') did not happen: the hook point it writes, "
        "blocks.0.attn.qkv.hook_out (to edit attn0), was never called in the forward pass"
    ), message
    assert "(were it the only edit, the run would be the clean model's)" in message
    assert "exists on" in message and "this architecture's forward pass never calls it" in message
    assert "lab.cache(prompt, names=['blocks.0.attn.qkv.hook_out'])" in message
    assert tiny_gpt2.hook_leaks() == []


def test_on_a_tiny_gpt2_a_read_at_a_hook_point_it_never_calls_raises_before_the_write(tiny_gpt2, monkeypatch):
    real = ablations._hook_points

    def misrouted(edit):
        target, source = real(edit)
        return (target, "blocks.1.attn.qkv.hook_in") if edit.component.kind == "block" else (target, source)

    monkeypatch.setattr(ablations, "_hook_points", misrouted)
    tiny_gpt2.clear_memo()  # an earlier test may have run this intervention: the memo would answer, no pass
    with pytest.raises(InterventionError, match=(
        r"^'skip L1' did not happen: the hook point it reads, blocks.1.attn.qkv.hook_in \(the input it needs to "
        r"edit L1\), was never called before blocks.1.hook_resid_post was")):
        ablate(tiny_gpt2, "L1", "skip").run(tiny_gpt2, "1 2 3 4")
    assert tiny_gpt2.hook_leaks() == []


def test_a_gated_hook_point_is_explained_with_its_set_use_flag(tiny_gpt2):
    # TransformerLens 4.3 refuses to attach a hook at a gated-off point; older bridges attach it and
    # never call it. Either way the canary's reason names the setter.
    reason = _never_fired_reason(tiny_gpt2, "blocks.0.attn.hook_result")
    assert "gated off" in reason and "Call lab.bridge.set_use_attn_result(True) before running" in reason


# --------------------------------------------------------------------------- an edit that changes nothing is exact


@pytest.mark.parametrize("lab_name", ["model", "tiny_gpt2"])
def test_a_hook_that_writes_back_what_it_read_leaves_the_logits_bit_identical(request, lab_name):
    lab = request.getfixturevalue(lab_name)
    toks = lab.tokens("1 2 3 4 5")
    canary = HookCanary(lab, {})
    names = _ablation_hook_names(lab)
    hooks = [(n, canary.counted(n, "write", [], lambda act, hook: act.clone())) for n in names]
    assert torch.equal(lab.run_batch(toks[None], fwd_hooks=hooks)[0], lab.run(toks))
    assert canary.calls == dict.fromkeys(names, 1)


@pytest.mark.parametrize("component", ["embed", "attn3", "MLP3", "L3H1", "L3"])
def test_an_ablation_whose_value_is_the_clean_activation_leaves_the_logits_bit_identical(model, component,
                                                                                           monkeypatch):
    # The mean over the prompt itself is its own activation. The change check refuses it (it tests
    # nothing); with the check off, the write path (float64 mean, cast, indexed write) must be exact.
    monkeypatch.setattr(ablations, "_check_changed", lambda *args: None)
    iv = ablate(model, component, "mean", reference=[MONTHS, MONTHS])
    assert torch.equal(iv.run(model, MONTHS), model.run(MONTHS))
