"""Interventions: what each ablation does to the forward pass, keep-only circuits, proof of effect."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import torch
from conftest import make_tiny_gpt2

from pytest_annotate import load_model
from pytest_annotate.errors import InterventionError
from pytest_annotate.interventions.ablations import ABLATIONS, AblationName, Intervention, InterventionSpecError, ablate, bypass_norm, keep_only, permuted_prompts, skip
from pytest_annotate.scoring.answers import score_answer

MONTHS = "January February March April"
MONTH_REFERENCE = [
    "June July August September",
    "March April May June",
    "February March April May",
    "August September October November",
]


# --------------------------------------------------------------------------- a 12-layer GPT-2


@pytest.fixture(scope="module")
def gpt2_12_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random 12-layer GPT-2 (GPT-2 small's depth) with non-zero biases and LayerNorm weights, so that
    folding (compat) and the value biases matter."""
    from transformers import AutoTokenizer, GPT2LMHeadModel

    plain = make_tiny_gpt2(tmp_path_factory.mktemp("gpt2-12") / "plain", n_layer=12)
    hf = GPT2LMHeadModel.from_pretrained(plain).eval()
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for name, p in hf.named_parameters():
            if name.endswith("bias"):
                p.add_(0.1 * torch.randn(p.shape, generator=gen))
            elif ".ln_" in name:
                p.mul_(1 + 0.2 * torch.randn(p.shape, generator=gen))
    out = plain.parent / "gpt2-12"
    hf.save_pretrained(out)
    AutoTokenizer.from_pretrained(plain).save_pretrained(out)
    return out


@pytest.fixture(scope="module")
def gpt2_12(gpt2_12_dir):
    return load_model(str(gpt2_12_dir), device="cpu")


@pytest.fixture(scope="module")
def gpt2_12_raw(gpt2_12_dir):
    return load_model(str(gpt2_12_dir), device="cpu", processing="raw")


@pytest.fixture(scope="module")
def gpt2_12_hf(gpt2_12_dir):
    from transformers import GPT2LMHeadModel

    return GPT2LMHeadModel.from_pretrained(gpt2_12_dir).eval()


def centred(logits: torch.Tensor) -> torch.Tensor:
    """compat mode centres the unembedding: logits agree with HuggingFace's up to a per-position constant."""
    return logits - logits.mean(-1, keepdim=True)


# --------------------------------------------------------------------------- what skip means


@pytest.mark.parametrize("layer", [0, 5, 11])
@pytest.mark.parametrize("processing", ["raw", "compat"])
def test_skipping_a_block_equals_deleting_it_from_the_huggingface_model(
    processing, layer, gpt2_12, gpt2_12_raw, gpt2_12_hf
):
    lab = gpt2_12_raw if processing == "raw" else gpt2_12
    toks = lab.tokens(MONTHS)
    removed = copy.deepcopy(gpt2_12_hf)
    del removed.transformer.h[layer]
    with torch.no_grad():
        expected = removed(toks[None]).logits[0]
    skipped = skip(lab, f"L{layer}").run(lab, toks)
    zero_both = ablate(lab, f"attn{layer}, MLP{layer}").run(lab, toks)
    torch.testing.assert_close(centred(skipped), centred(expected), atol=1e-5, rtol=0)
    assert torch.equal(skipped, zero_both), "resid_post <- resid_pre and zeroing attn_out + mlp_out must agree exactly"
    assert (skipped - lab.run(toks)).abs().max() > 1e-3, "skipping a block must change the logits"


def test_on_gemma_skipping_a_block_equals_zeroing_its_post_normed_sublayer_outputs(model):
    # Gemma's hook_attn_out / hook_mlp_out come after the post-attention / post-MLP RMSNorms, so they
    # are exactly what each sublayer adds to the residual stream.
    toks = model.tokens(MONTHS)
    for layer in (0, 7, 17):
        assert torch.equal(skip(model, f"L{layer}").run(model, toks), ablate(model, f"attn{layer} MLP{layer}").run(model, toks))


def test_zeroing_a_head_removes_exactly_its_term_of_attn_out(gpt2_12, gpt2_12_raw):
    layer, head = 3, 1
    for lab in (gpt2_12_raw, gpt2_12):
        toks = lab.tokens(MONTHS)
        names = [f"blocks.{layer}.attn.hook_z", f"blocks.{layer}.hook_attn_out"]
        clean = lab.cache(toks, names=names)
        seen: dict[str, torch.Tensor] = {}

        def grab(act, hook):
            seen["attn_out"] = act.clone()

        hooks = ablate(lab, f"L{layer}H{head}").fwd_hooks(lab, toks) + [(names[1], grab)]
        lab.run_batch(toks[None], fwd_hooks=hooks)
        w_o = lab.bridge.blocks[layer].attn.W_O.detach()
        term = clean[names[0]][0, :, head] @ w_o[head]
        torch.testing.assert_close(clean[names[1]][0] - seen["attn_out"][0], term, atol=1e-6, rtol=1e-5)
    # compat folds b_V into b_O: its z has no value bias, so zeroing it keeps the head's constant b_V W_O.
    assert gpt2_12.bridge.blocks[layer].attn.b_V.abs().max() == 0
    assert gpt2_12_raw.bridge.blocks[layer].attn.b_V.abs().max() > 0


def test_on_gemma_zeroing_every_head_of_a_layer_equals_zeroing_its_attention(model):
    toks = model.tokens(MONTHS)
    heads = ", ".join(f"L4H{h}" for h in range(model.n_heads))
    assert torch.equal(ablate(model, heads).run(model, toks), ablate(model, "attn4").run(model, toks))


# --------------------------------------------------------------------------- the FINDINGS configurations

# Every configuration of FINDINGS.md's GPT-2 counting table, as a builder, with the name it prints and
# what it removes from a 12-layer model.
GPT2_CONFIGS = [
    ("keep L0–L9", lambda lab: keep_only(lab, "L0-L9"), "keep L0-L9", "skips L10-L11"),
    ("keep L0–L8 (skip 9,10,11)", lambda lab: keep_only(lab, "L0-L8"), "keep L0-L8", "skips L9-L11"),
    ("keep L0–L7", lambda lab: keep_only(lab, "L0-L7"), "keep L0-L7", "skips L8-L11"),
    ("skip L5 (keep L0–L9)", lambda lab: keep_only(lab, "L0-L4, L6-L9"), "keep L0-L4 + L6-L9", "skips L5 + L10-L11"),
    ("L0–L7 + L9 (skip 8,10,11)", lambda lab: keep_only(lab, "L0-L7, L9"), "keep L0-L7 + L9", "skips L8 + L10-L11"),
    ("L0–L7 + MLP9 only (no attn9)", lambda lab: keep_only(lab, ["L0-L7", "MLP9"]), "keep L0-L7 + MLP9",
     "skips L8 + L10-L11 + attn9"),
    ("L0–L7 + attn9 only (no MLP9)", lambda lab: keep_only(lab, ["L0-L7", "attn9"]), "keep L0-L7 + attn9",
     "skips L8 + L10-L11 + MLP9"),
    ("skip L9 (keep L0–L8, L10, L11)", lambda lab: skip(lab, "L9"), "skip L9", ""),
    ("attention only in L0–L7, then MLP9", lambda lab: keep_only(lab, "attn0-7, MLP9"), "keep attn0-attn7 + MLP9",
     "skips L8 + L10-L11 + attn9 + MLP0-MLP7"),
    ("skip L4 (keep L0–L9)", lambda lab: keep_only(lab, "L0-L3, L5-L9"), "keep L0-L3 + L5-L9", "skips L4 + L10-L11"),
    ("skip L4, L8, L10, L11", lambda lab: skip(lab, "L4, L8, L10, L11"), "skip L4 + L8 + L10-L11", ""),
    ("skip L3, L4, L8, L10, L11", lambda lab: skip(lab, "L3, L4, L8, L10, L11"), "skip L3-L4 + L8 + L10-L11", ""),
    ("skip L2, L3, L4, L8, L10, L11", lambda lab: skip(lab, "L2-L4, L8, L10-L11"), "skip L2-L4 + L8 + L10-L11", ""),
    ("MLP-only L0–L7, then MLP9", lambda lab: keep_only(lab, "MLP0-7, MLP9"), "keep MLP0-MLP7 + MLP9",
     "skips L8 + L10-L11 + attn0-attn7 + attn9"),
    ("L0–L7 + MLP9 without its ln2", lambda lab: keep_only(lab, "L0-L7, MLP9") + bypass_norm(lab, "MLP9"),
     "keep L0-L7 + MLP9; MLP9 without ln2", "skips L8 + L10-L11 + attn9"),
    ("L0–L7, attn8 only, L9", lambda lab: keep_only(lab, "L0-L7, attn8, L9"), "keep L0-L7 + L9 + attn8",
     "skips L10-L11 + MLP8"),
    ("L0–L7, MLP8 only, L9", lambda lab: keep_only(lab, "L0-L7, MLP8, L9"), "keep L0-L7 + L9 + MLP8",
     "skips L10-L11 + attn8"),
    ("MLP-only L0–L8, then full L9", lambda lab: keep_only(lab, "MLP0-8, L9"), "keep L9 + MLP0-MLP8",
     "skips L10-L11 + attn0-attn8"),
]


@pytest.mark.parametrize(("row", "build", "name", "detail"), GPT2_CONFIGS, ids=[c[0] for c in GPT2_CONFIGS])
def test_every_findings_configuration_is_expressible_on_a_12_layer_gpt2(gpt2_12, row, build, name, detail):
    iv = build(gpt2_12)
    assert str(iv) == name
    assert iv.detail == detail
    assert hash(iv) == hash(build(gpt2_12)) and iv == build(gpt2_12)
    clean = score_answer(gpt2_12, "1 2 3 4", " 5")
    under = iv.score(gpt2_12, "1 2 3 4", " 5")  # every hook proves it changed its activation, or raises
    assert under.logprobs != clean.logprobs


class _NoAttention(torch.nn.Module):
    def forward(self, hidden_states, *args, **kwargs):
        return torch.zeros_like(hidden_states), None


class _NoMLP(torch.nn.Module):
    def forward(self, hidden_states):
        return torch.zeros_like(hidden_states)


def _notebook_model(hf, keep_blocks, no_attn=(), no_mlp=(), no_ln2=()):
    """The source notebook's ExtractedModel: a copy of the HuggingFace model with blocks removed and
    sublayers replaced by zeros (or their ln2 by the identity)."""
    m = copy.deepcopy(hf)
    for layer in range(len(m.transformer.h)):
        block = m.transformer.h[layer]
        if layer in no_attn:
            block.attn = _NoAttention()
        if layer in no_mlp:
            block.mlp = _NoMLP()
        if layer in no_ln2:
            block.ln_2 = torch.nn.Identity()
    m.transformer.h = torch.nn.ModuleList([m.transformer.h[i] for i in keep_blocks])
    return m


@pytest.mark.parametrize(
    ("keep", "notebook"),
    [
        (["L0-L7", "MLP9"], dict(keep_blocks=[*range(8), 9], no_attn=[9])),
        (["attn0-7", "MLP9"], dict(keep_blocks=[*range(8), 9], no_mlp=range(8), no_attn=[9])),
        (["MLP0-8", "L9"], dict(keep_blocks=range(10), no_attn=range(9))),
        (["L0-L7", "attn8", "L9"], dict(keep_blocks=range(10), no_mlp=[8])),
    ],
)
def test_keep_only_matches_the_notebooks_extracted_models(gpt2_12_raw, gpt2_12_hf, keep, notebook):
    toks = gpt2_12_raw.tokens("1 2 3 4")
    with torch.no_grad():
        expected = _notebook_model(gpt2_12_hf, **notebook)(toks[None]).logits[0]
    torch.testing.assert_close(keep_only(gpt2_12_raw, keep).run(gpt2_12_raw, toks), expected, atol=1e-5, rtol=0)


def test_bypassing_ln2_matches_the_notebooks_mlp_without_its_layernorm(gpt2_12_raw, gpt2_12_hf):
    lab = gpt2_12_raw
    toks = lab.tokens("1 2 3 4")
    iv = keep_only(lab, "L0-L7, MLP9") + bypass_norm(lab, "MLP9")
    with torch.no_grad():
        expected = _notebook_model(gpt2_12_hf, keep_blocks=[*range(8), 9], no_attn=[9], no_ln2=[9])(toks[None]).logits[0]
    torch.testing.assert_close(iv.run(lab, toks), expected, atol=1e-5, rtol=0)


def test_keeping_some_heads_skips_the_other_heads_of_their_layer(gpt2_12):
    iv = keep_only(gpt2_12, "L0-L8, L9H1")
    assert str(iv) == "keep L0-L8 + L9H1"
    assert iv.detail == "skips L10-L11 + MLP9 + L9H0 + L9H2 + L9H3"
    assert {str(c) for c in iv.components} == {"L9H0", "L9H2", "L9H3", "MLP9", "L10", "L11"}
    iv.score(gpt2_12, "1 2 3 4", " 5")


def test_keeping_everything_is_an_error(gpt2_12):
    with pytest.raises(InterventionSpecError, match="keeps every block"):
        keep_only(gpt2_12, "L0-L11")


# --------------------------------------------------------------------------- mean and resample


def test_mean_ablation_without_a_reference_set_is_an_error_naming_what_to_pass(model):
    with pytest.raises(InterventionSpecError) as info:
        ablate(model, "MLP3", "mean")
    message = str(info.value)
    assert "'mean MLP3' needs a reference set" in message
    assert "reference=[...]" in message and "permuted_prompts" in message and "ablation='zero'" in message
    assert isinstance(info.value, ValueError) and isinstance(info.value, InterventionError)


def test_reference_prompts_of_another_length_are_an_error_listing_their_tokens(model):
    iv = ablate(model, "MLP3", "mean", reference=["June July"])
    with pytest.raises(InterventionSpecError, match=r"prompt's 5 tokens; reference 0 has 3: \['<bos>', 'June', ' July'\]"):
        iv.score(model, MONTHS, " May")
    assert model.hook_leaks() == []


def test_mean_ablation_changes_the_answer_and_is_memoized(model):
    iv = ablate(model, "MLP3", "mean", reference=MONTH_REFERENCE)
    clean = score_answer(model, MONTHS, " May")
    first = iv.score(model, MONTHS, " May")
    executed = model.stats.executed
    again = iv.score(model, MONTHS, " May")
    assert again == first and model.stats.executed == executed, "the same intervention must reuse its memoized run"
    assert first.joint_logprob < clean.joint_logprob - 1, "MLP3 mean ablation costs ' May' several nats"


def test_mean_ablation_aligns_references_with_a_teacher_forced_multi_token_answer(model):
    assert len(model.answer_tokens(" 5")) == 2  # Gemma splits " 5" into " " + "5"
    iv = ablate(model, "L3", "mean", reference=["5 6 7 8", "2 3 4 5", "6 7 8 9"])
    assert iv.score(model, "1 2 3 4", " 5").joint_logprob != score_answer(model, "1 2 3 4", " 5").joint_logprob


def test_resample_draws_one_reference_prompt_by_seed(model):
    scores = {seed: ablate(model, "MLP3", "resample", reference=MONTH_REFERENCE, seed=seed).score(model, MONTHS, " May")
              for seed in range(6)}
    again = ablate(model, "MLP3", "resample", reference=MONTH_REFERENCE, seed=2).score(model, MONTHS, " May")
    assert again.joint_logprob == scores[2].joint_logprob
    assert len({round(s.joint_logprob, 6) for s in scores.values()}) > 1, "different seeds draw different prompts"


def test_permuted_prompts_reorder_the_prompts_own_tokens(model):
    refs = permuted_prompts(model, MONTHS, 5, seed=0)
    toks = tuple(model.tokens(MONTHS).tolist())
    assert len(set(refs)) == 5 and toks not in refs
    assert all(r[0] == toks[0] and sorted(r) == sorted(toks) for r in refs)
    assert refs == permuted_prompts(model, MONTHS, 5, seed=0)
    ablate(model, "L3", "mean", reference=refs).score(model, MONTHS, " May")


# --------------------------------------------------------------------------- proof of effect


def test_a_mean_over_the_prompt_itself_changes_nothing_and_raises(model):
    iv = ablate(model, "MLP3", "mean", reference=[MONTHS])
    with pytest.raises(InterventionError) as info:
        iv.score(model, MONTHS, " May")
    message = str(info.value)
    assert "'mean MLP3' changed nothing at blocks.3.hook_mlp_out" in message
    assert "is the reference set only the prompt itself?" in message
    assert model.hook_leaks() == [], "the hooks must be removed when the intervention raises mid-forward"


def test_zeroing_an_output_that_is_already_zero_raises(model):
    # Zeroing every head of layer 4 makes attn4's output zero; zeroing attn4 as well then changes nothing.
    all_heads = ablate(model, ", ".join(f"L4H{h}" for h in range(model.n_heads)))
    with pytest.raises(InterventionError, match=r"'zero attn4' \(part of .*\) changed nothing at blocks.4.hook_attn_out"):
        (all_heads + ablate(model, "attn4")).score(model, MONTHS, " May")
    assert model.hook_leaks() == []


def test_resampling_from_the_prompt_itself_raises(tiny_gpt2):
    with pytest.raises(InterventionError, match="changed nothing at blocks.1.hook_mlp_out"):
        ablate(tiny_gpt2, "MLP1", "resample", reference=["1 2 3 4"]).score(tiny_gpt2, "1 2 3 4", " 5")


def test_mean_of_position_embeddings_over_aligned_prompts_raises_with_the_reason(tiny_gpt2):
    with pytest.raises(InterventionError, match="Position embeddings depend only on the position"):
        ablate(tiny_gpt2, "pos_embed", "mean", reference=["A B C D"]).score(tiny_gpt2, "1 2 3 4", " 5")


def test_a_failed_run_is_not_memoized(model):
    iv = ablate(model, "MLP3", "mean", reference=[MONTHS])
    for _ in range(2):  # raises both times: a memoized result would have hidden the second failure
        with pytest.raises(InterventionError):
            iv.run(model, MONTHS)


# --------------------------------------------------------------------------- values


def test_interventions_are_frozen_hashable_values_with_readable_names(model):
    a, b = ablate(model, "MLP9"), ablate(model, "mlp9", "zero")
    assert a == b and hash(a) == hash(b) and a.key == b.key
    assert {a: 1}[b] == 1
    assert str(a) == "zero MLP9"
    assert str(ablate(model, "L5H1 + L5H0", "skip")) == "skip L5H0 + L5H1"
    assert str(keep_only(model, ["L0-L7", "MLP9"])) == "keep L0-L7 + MLP9"
    with pytest.raises(AttributeError):
        a.seed = 3  # type: ignore[misc]
    assert ablate(model, "MLP9").key != ablate(model, "MLP9", "mean", reference=MONTH_REFERENCE).key


def test_the_ablation_literal_is_the_single_source_of_truth():
    from typing import get_args

    assert get_args(AblationName) == ABLATIONS == ("zero", "mean", "resample", "skip")


def test_unknown_ablations_and_conflicting_edits_are_rejected(model):
    with pytest.raises(InterventionSpecError, match="unknown ablation 'meen'; valid: zero, mean, resample, skip. Did you mean 'mean'"):
        ablate(model, "MLP9", "meen")  # type: ignore[arg-type]
    with pytest.raises(InterventionSpecError, match="MLP9 is edited twice"):
        ablate(model, "MLP9") + ablate(model, "MLP9", "mean", reference=MONTH_REFERENCE)
    with pytest.raises(InterventionSpecError, match="only attention layers and MLPs have an input norm"):
        bypass_norm(model, "L9")
    with pytest.raises(InterventionSpecError, match="at least one edit"):
        Intervention(())
