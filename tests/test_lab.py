"""The Lab's memo: each distinct forward runs once while it fits, evictions are counted, caches
compute only the hook points they lack, and hook points that never fire are reported by name."""

from __future__ import annotations

import pytest
import torch

from pytest_annotate.errors import PromptError
from pytest_annotate.interventions.ablations import ablate
from pytest_annotate.lab import Lab


@pytest.fixture
def lab(tiny_gpt2) -> Lab:
    """A fresh Lab on the tiny model's bridge, so counts and memo start empty."""
    return Lab(tiny_gpt2.bridge, tiny_gpt2.resolved, device="cpu")


def test_the_same_prompt_runs_once_and_is_counted_twice(lab: Lab) -> None:
    first = lab.run("1 2 3 4")
    again = lab.run("1 2 3 4")
    assert again is first
    assert (lab.stats.requested, lab.stats.executed, lab.stats.repeats) == (2, 1, 0)
    assert [(p.batch, p.positions, p.kind) for p in lab.stats.passes] == [(1, len(lab.tokens("1 2 3 4")), "logits")]


def test_a_cache_computes_only_the_hook_points_it_lacks_and_fills_the_logits_memo(lab: Lab) -> None:
    lab.cache("1 2 3 4", names=["blocks.0.hook_resid_post"])
    lab.cache("1 2 3 4", names=["blocks.0.hook_resid_post", "blocks.1.hook_resid_post"])
    lab.cache("1 2 3 4", names=["blocks.1.hook_resid_post"])
    lab.run("1 2 3 4")
    assert [(p.kind, p.names) for p in lab.stats.passes] == [
        ("cache", ("blocks.0.hook_resid_post",)),
        ("cache", ("blocks.1.hook_resid_post",)),
    ]
    assert (lab.stats.requested, lab.stats.executed) == (4, 2)


def test_an_intervention_is_memoized_by_its_key(lab: Lab) -> None:
    iv = ablate(lab, "L1H0", "zero")
    a = iv.run(lab, "1 2 3 4")
    b = iv.run(lab, "1 2 3 4")
    clean = lab.run("1 2 3 4")
    assert b is a and not torch.equal(a, clean)
    assert lab.stats.executed == 2


def test_memo_evictions_are_counted_as_repeats(tiny_gpt2) -> None:
    one_run = tiny_gpt2.run("1 2 3 4").numel() * 4
    lab = Lab(tiny_gpt2.bridge, tiny_gpt2.resolved, device="cpu", memo_bytes=one_run)  # room for one prompt
    for prompt in ("1 2 3 4", "5 6 7 8", "1 2 3 4"):
        lab.run(prompt)
    assert (lab.stats.executed, lab.stats.repeats) == (3, 1)
    assert [p.repeat for p in lab.stats.passes] == [False, False, True]


def test_a_full_cache_evicted_from_the_memo_is_recomputed_not_lost(tiny_gpt2) -> None:
    lab = Lab(tiny_gpt2.bridge, tiny_gpt2.resolved, device="cpu", memo_bytes=1)
    full = lab.cache("1 2 3 4")
    lab.cache("5 6 7 8")  # evicts the first prompt's cache
    again = lab.cache("1 2 3 4", names=["blocks.1.hook_resid_post"])
    torch.testing.assert_close(again["blocks.1.hook_resid_post"], full["blocks.1.hook_resid_post"], rtol=0, atol=0)
    assert lab.stats.passes[-1].repeat is False  # a cache of other names is a different pass


def test_a_hook_point_that_never_fires_is_named(lab: Lab) -> None:
    # hook_result exists on every attention bridge but is gated off until set_use_attn_result(True).
    with pytest.raises(PromptError, match=r"blocks.0.attn.hook_result is off on tiny-gpt2 .*set_use_attn_result\(True\)"):
        lab.cache("1 2 3 4", names=["blocks.0.hook_resid_post", "blocks.0.attn.hook_result"])
    assert lab.stats.executed == 0


def test_a_hook_point_missing_from_a_full_cache_is_named(lab: Lab, monkeypatch) -> None:
    # As hook_pos_embed on a rotary model: the name exists but the forward never reaches it.
    full = lab.cache("1 2 3 4")
    del full.cache_dict["hook_pos_embed"]  # the memo holds the same dict
    with pytest.raises(PromptError, match=r"\['hook_pos_embed'\] exist on .* but never fire"):
        lab.cache("1 2 3 4", names=["hook_pos_embed"])


def test_passes_outside_run_and_cache_are_recorded_with_their_kind(lab: Lab) -> None:
    from pytest_annotate.scoring.head_scores import RepeatedRandomTokens, head_scores
    from pytest_annotate.scoring.sweeps import sweep

    sweep(lab, "1 2 3 4", " 5", "head")
    head_scores(lab, "induction", inputs=RepeatedRandomTokens(n=10, batch=2, seed=0))
    kinds = {p.kind for p in lab.stats.passes}
    assert {"answer_logits", "no_unembed"} <= kinds and lab.stats.executed == len(lab.stats.passes)
    assert all(p.answer_positions == 1 for p in lab.stats.passes if p.kind == "answer_logits")


def test_a_burst_of_long_runs_does_not_flush_the_short_prompts(tiny_gpt2) -> None:
    vocab_bytes = tiny_gpt2.cfg.d_vocab * 4
    lab = Lab(tiny_gpt2.bridge, tiny_gpt2.resolved, device="cpu", memo_bytes=190 * vocab_bytes)
    short = [1, 2, 3]  # 3 positions: a small entry
    lab.run(short)
    for start in range(5):  # 45 positions each (over 1/16 of the budget): four fit, the fifth evicts one
        lab.run(list(range(start, start + 45)))
    lab.run(short)
    assert [p.repeat for p in lab.stats.passes] == [False] * 6  # the short run was kept
    lab.run(list(range(0, 45)))
    assert lab.stats.passes[-1].repeat  # the oldest long run was the one evicted


def test_a_run_over_a_quarter_of_the_budget_is_not_kept(tiny_gpt2) -> None:
    vocab_bytes = tiny_gpt2.cfg.d_vocab * 4
    lab = Lab(tiny_gpt2.bridge, tiny_gpt2.resolved, device="cpu", memo_bytes=100 * vocab_bytes)
    lab.run([1, 2, 3])
    for _ in range(2):
        lab.run(list(range(30)))  # 30 positions > 25: run, returned, not kept
    lab.run([1, 2, 3])
    assert [p.repeat for p in lab.stats.passes] == [False, False, True]
    assert lab.stats.requested == 4


def test_mean_activations_equal_the_mean_of_single_prompt_caches_and_are_read_once(lab: Lab) -> None:
    """The batched, chunked read a mean ablation uses agrees with one cache per prompt, stops before the
    unembedding, and is memoized: a second ask (any component of the same reference set) runs nothing."""
    rows = [lab.tokens(f"{i} {i + 1} {i + 2}").tolist() for i in range(1, 6)]
    assert len({len(r) for r in rows}) == 1
    names = ["blocks.0.hook_resid_post", "blocks.1.attn.hook_z"]
    before = lab.stats.executed
    means = lab.mean_activations(rows, names, chunk=2)
    assert lab.stats.executed - before == 3  # 5 rows, 2 a pass
    assert {p.kind for p in lab.stats.passes[-3:]} == {"no_unembed"}
    for n in names:
        single = torch.stack([lab.cache(r, names=[n])[n][0].double() for r in rows]).mean(0)
        torch.testing.assert_close(means[n], single, atol=1e-5, rtol=0)
        assert means[n].dtype == torch.float64
    after = lab.stats.executed
    assert lab.mean_activations(rows, list(reversed(names)))["blocks.0.hook_resid_post"] is means[
        "blocks.0.hook_resid_post"]
    assert lab.stats.executed == after


def test_mean_activations_of_rows_of_unequal_length_is_a_clear_error(lab: Lab) -> None:
    with pytest.raises(PromptError, match="equal length"):
        lab.mean_activations([[1, 2, 3], [1, 2]], ["blocks.0.hook_resid_post"])
