"""Batched sweeps: one forward pass for many ablations, equal to one pass per component."""

from __future__ import annotations

import random

import pytest
import torch

from pytest_annotate.interventions.components import all_components
from pytest_annotate.interventions.ablations import ablate
from pytest_annotate.scoring.answers import score_answer
from pytest_annotate.scoring.sweeps import BATCH_ATOL, SweepMemoryError, SweepResult, default_batch_size, score_interventions, sweep

MONTHS, MAY = "January February March April", " May"
MONTH_REFERENCE = [
    "June July August September",
    "March April May June",
    "February March April May",
    "August September October November",
    "May June July August",
    "October November December January",
]
TINY_REFERENCE = ["A B C D", "5 6 7 8", "E F G H", "6 7 8 9"]

# Batched rows equal one pass per component within BATCH_ATOL, the one tolerance the benchmark uses
# too (stated and justified in pytest_annotate.scoring.sweeps); no machine gets a quietly wider one.


def assert_batched_equals_sequential(lab, prompt, answer, components, how, reference=None, atol=BATCH_ATOL,
                                     compare=None):
    """Every component in one batched pass; each (or the rows ``compare`` picks) equal to its own pass."""
    ivs = [ablate(lab, c, how, reference=reference) for c in components]
    batched = score_interventions(lab, prompt, answer, ivs)
    assert batched.forward_passes == 1
    rows = range(len(ivs)) if compare is None else compare
    pairs = [(batched.scores[r], ivs[r].score(lab, prompt, answer)) for r in rows]
    gaps = {
        name: max(abs(getattr(b, name) - getattr(s, name)) for b, s in pairs)
        for name in ("joint_logprob", "joint_prob", "logit")
    }
    assert gaps["joint_logprob"] <= atol and gaps["logit"] <= atol and gaps["joint_prob"] <= atol, (
        f"batched vs one pass per component, {how} ablation of {len(pairs)} of {len(ivs)} components: "
        f"max |Δ| {gaps} > {atol}"
    )
    assert [b.rank for b, _ in pairs] == [s.rank for _, s in pairs]


@pytest.mark.parametrize("how", ["zero", "mean"])
@pytest.mark.parametrize("kind", ["block", "attn", "mlp", "head"])
def test_on_gemma_a_batched_sweep_equals_one_pass_per_component(model, kind, how):
    reference = MONTH_REFERENCE if how == "mean" else None
    components = all_components(model, kind)
    # Every component runs batched; 6 of them (the first, the last and 4 drawn) are re-run alone, as the
    # one-by-one loop costs a pass per component (72 heads: ~20 s). The slow test below re-runs them all.
    compare = sorted({0, len(components) - 1, *random.Random(kind).sample(range(len(components)), 4)})
    assert_batched_equals_sequential(model, MONTHS, MAY, components, how, reference, compare=compare)


@pytest.mark.slow
@pytest.mark.parametrize("how", ["zero", "mean"])
@pytest.mark.parametrize("kind", ["block", "attn", "mlp", "head"])
def test_on_gemma_every_component_alone_equals_the_batched_sweep(model, kind, how):
    reference = MONTH_REFERENCE if how == "mean" else None
    assert_batched_equals_sequential(model, MONTHS, MAY, all_components(model, kind), how, reference)


@pytest.mark.parametrize("how", ["zero", "mean", "resample", "skip"])
def test_on_tiny_gpt2_a_batched_sweep_equals_one_pass_per_component(tiny_gpt2, how):
    kinds = ["block", "attn", "mlp", "head", "embed"] + (["pos_embed"] if how in ("zero", "skip") else [])
    comps = [c for k in kinds for c in all_components(tiny_gpt2, k)]
    reference = TINY_REFERENCE if how in ("mean", "resample") else None
    assert_batched_equals_sequential(tiny_gpt2, "1 2 3 4", " 5", comps, how, reference)


def test_a_sweep_over_72_heads_is_one_forward_pass(model):
    score_answer(model, MONTHS, MAY)  # the clean run, memoized
    before = model.stats.snapshot()
    result = sweep(model, MONTHS, MAY, "head", max_batch_size=72)
    requested, executed, rows = (a - b for a, b in zip(model.stats.snapshot(), before, strict=True))
    assert (executed, rows) == (1, 72)
    assert (result.forward_passes, result.batch_size, len(result.rows)) == (1, 72, 72)


def test_the_default_batch_size_bounds_memory(model, tiny_gpt2):
    assert default_batch_size(model, 5) == 184  # a 5-token row costs ~1.4 MiB of the 256 MiB
    assert default_batch_size(model, 200) == 14
    assert default_batch_size(model, 4000) == 1
    assert default_batch_size(tiny_gpt2, 5) == 256


def test_only_the_answer_positions_are_unembedded_and_they_equal_a_full_run(model):
    full = score_answer(model, MONTHS, MAY)
    sliced = score_interventions(model, MONTHS, MAY, [None]).scores[0]
    # Unembedding 1 position instead of 5 picks another matmul kernel: equal up to float32 rounding.
    assert sliced.ranks == full.ranks
    assert sliced.logprobs == pytest.approx(full.logprobs, abs=BATCH_ATOL)
    assert sliced.logits == pytest.approx(full.logits, abs=BATCH_ATOL)
    two_tokens = score_interventions(model, "1 2 3 4", " 5", [None]).scores[0]
    assert two_tokens.logprobs == pytest.approx(score_answer(model, "1 2 3 4", " 5").logprobs, abs=BATCH_ATOL)


def test_chunks_give_the_same_numbers_as_one_pass(model):
    one = sweep(model, MONTHS, MAY, "block")
    chunked = sweep(model, MONTHS, MAY, "block", max_batch_size=5)
    assert (one.forward_passes, chunked.forward_passes, chunked.batch_size) == (1, 4, 5)
    for a, b in zip(one.rows, chunked.rows, strict=True):
        assert a.component == b.component and a.rank == b.rank
        assert abs(a.log_prob - b.log_prob) <= BATCH_ATOL


# --------------------------------------------------------------------------- out of memory


def _fail_above(lab, monkeypatch, limit: int, error: Exception) -> list[int]:
    """Make lab.run_batch raise ``error`` for batches of more than ``limit`` rows; return the sizes tried."""
    real = lab.run_batch
    tried: list[int] = []

    def run_batch(tokens, *, fwd_hooks=(), **kwargs):
        tried.append(int(tokens.shape[0]))
        if tokens.shape[0] > limit:
            raise error
        return real(tokens, fwd_hooks=fwd_hooks, **kwargs)

    monkeypatch.setattr(lab, "run_batch", run_batch)
    return tried


CPU_OOM = RuntimeError("[enforce fail at alloc_cpu.cpp:117] DefaultCPUAllocator: not enough memory: you tried "
                       "to allocate 2147483648 bytes.")


@pytest.mark.parametrize("error", [CPU_OOM, torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2 GiB")],
                         ids=["cpu", "cuda"])
def test_out_of_memory_halves_the_batch_and_says_what_to_pass(tiny_gpt2, monkeypatch, error):
    expected = sweep(tiny_gpt2, "1 2 3 4", " 5", "head")
    tried = _fail_above(tiny_gpt2, monkeypatch, 3, error)
    with pytest.warns(ResourceWarning, match="out of memory at batch size 8 and finished with 2; pass max_batch_size=2"):
        result = sweep(tiny_gpt2, "1 2 3 4", " 5", "head", max_batch_size=8)
    assert tried == [8, 4, 2, 2, 2, 2]
    assert (result.forward_passes, result.batch_size) == (4, 2)
    assert [r.rank for r in result.rows] == [r.rank for r in expected.rows]
    assert [r.log_prob for r in result.rows] == pytest.approx([r.log_prob for r in expected.rows], abs=1e-6)


def test_out_of_memory_with_one_row_is_reported_with_the_sizes_tried(tiny_gpt2, monkeypatch):
    score_answer(tiny_gpt2, "1 2 3 4", " 5")  # the clean run, memoized before run_batch starts failing
    _fail_above(tiny_gpt2, monkeypatch, 0, CPU_OOM)
    with pytest.raises(SweepMemoryError, match=r"out of memory running one row of 5 tokens .* \(tried batch sizes 4, 2, 1\)"):
        sweep(tiny_gpt2, "1 2 3 4", " 5", "head", max_batch_size=4)


def test_other_errors_are_not_mistaken_for_out_of_memory(tiny_gpt2, monkeypatch):
    score_answer(tiny_gpt2, "1 2 3 4", " 5")
    tried = _fail_above(tiny_gpt2, monkeypatch, 0, RuntimeError("shape mismatch"))
    with pytest.raises(RuntimeError, match="shape mismatch"):
        sweep(tiny_gpt2, "1 2 3 4", " 5", "head", max_batch_size=4)
    assert tried == [4]


# --------------------------------------------------------------------------- the result


def test_the_result_is_a_table_sorted_by_effect(model):
    result = sweep(model, MONTHS, MAY, "block")
    assert isinstance(result, SweepResult)
    drops = [r.log_prob_drop for r in result.ranked()]
    assert drops == sorted(drops, reverse=True)
    report = result.report()
    lines = report.splitlines()
    assert lines[0] == "Sweep: zero ablation of each of 18 blocks, one per batch row (gemma-3-270m-q4_k_m)"
    assert lines[1] == "Tokenized prompt: ['<bos>', 'January', ' February', ' March', ' April']"
    assert lines[3].startswith("Clean: rank 0, logit ")
    assert lines[6].startswith(result.ranked()[0].component + " ")
    assert "18 rows in 1 batched forward pass" in report
    assert str(result) == report
    assert len(result.report(top=3).splitlines()) == 6 + 3 + 2
    row = result["L3"]
    assert row.log_prob_drop == pytest.approx(result.clean.log_prob - row.log_prob)
    assert row.prob_drop == pytest.approx(result.clean.prob - row.prob)
    assert row.rank_rise == row.rank - result.clean.rank
    assert result.drops()["L3"] == row.log_prob_drop
    as_dict = result.as_dict()
    assert as_dict["rows"][3]["component"] == "L3" and set(as_dict["clean"]) == {"log_prob", "prob", "logit", "rank"}
    with pytest.raises(KeyError, match="'MLP3' is not in this sweep; it has L0, L1"):
        result["MLP3"]


def test_sweeps_take_names_and_kind_words(tiny_gpt2):
    assert [r.component for r in sweep(tiny_gpt2, "1 2 3 4", " 5", "L0H1 + MLP1").rows] == ["L0H1", "MLP1"]
    assert len(sweep(tiny_gpt2, "1 2 3 4", " 5", "heads").rows) == 8
    assert [r.component for r in sweep(tiny_gpt2, "1 2 3 4", " 5", "mlps").rows] == ["MLP0", "MLP1"]


# --------------------------------------------------------------------------- what the sweeps find on Gemma


def test_months_need_block_1_under_zero_ablation_but_blocks_12_and_3_under_mean_ablation(model):
    zero = sweep(model, MONTHS, MAY, "block")
    mean = sweep(model, MONTHS, MAY, "block", ablation="mean", reference=MONTH_REFERENCE)
    assert zero.ranked()[0].component == "L1" and zero["L1"].log_prob_drop > 10
    assert [r.component for r in mean.ranked()[:2]] == ["L12", "L3"]
    assert mean["L1"].log_prob_drop < 0.5, "zeroing L1 is off-distribution: its mean over month prompts is harmless"
    assert abs(zero["L6"].log_prob_drop) < 0.01 and abs(mean["L6"].log_prob_drop) < 0.05


def test_months_need_head_L12H0_most_under_mean_ablation(model):
    mean = sweep(model, MONTHS, MAY, "head", ablation="mean", reference=MONTH_REFERENCE)
    assert mean.ranked()[0].component == "L12H0" and mean["L12H0"].log_prob_drop > 4
