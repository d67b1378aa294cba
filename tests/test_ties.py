"""Ties count against the claim, and a flat output makes no claim hold.

Zero-ablating Gemma 3's embedding makes every one of its 262,144 logits exactly 0. Counted as
"tokens strictly above", every token was then top-1, and ``assert_top_token`` passed for any answer
("rank 0, prob 0.00%"). Every rank is now the number of *other* entries at least as high
(:func:`pytest_annotate.scoring.ranks.rank_of`), and a check whose answer ties for the top logit
fails and says the output is flat. Exact ties between two tokens are made with a hook on the
unembedding's output (``unembed.hook_out``) that copies one logit onto another.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
import torch

from pytest_annotate.checks.head_roles import check_head_role
from pytest_annotate.checks.logit_lens import check_logit_lens
from pytest_annotate.checks.necessity import check_sufficiency
from pytest_annotate.checks.predictions import (
    assert_top_token,
    check_logit_diff,
    check_prob,
    check_rank,
    check_top_token,
)
from pytest_annotate.errors import VerdictError
from pytest_annotate.interventions.ablations import ablate
from pytest_annotate.scoring.answers import score_from_logits
from pytest_annotate.scoring.head_scores import HeadScores
from pytest_annotate.scoring.ranks import flat_message, n_at_top, rank_of, top_tie_size
from pytest_annotate.scoring.sweeps import AnswerMetrics, SweepRow, sweep

GEMMA_VOCAB = 262_144
FLAT = flat_message(GEMMA_VOCAB, 0.0)


def copy_logit(source: int, target: int) -> list[tuple[str, Callable]]:
    """Hooks that give ``target`` exactly ``source``'s logit at the last position."""

    def tie(logits: torch.Tensor, hook: object) -> torch.Tensor:
        logits = logits.clone()
        logits[..., -1, target] = logits[..., -1, source]
        return logits

    return [("unembed.hook_out", tie)]


def flatten_logits(logits: torch.Tensor, hook: object) -> torch.Tensor:
    return torch.zeros_like(logits)


# --------------------------------------------------------------------------- the rule, on tensors


def test_a_tie_counts_against_the_entry_ranked() -> None:
    assert int(rank_of(torch.tensor([1.0, 3.0, 2.0]), 1)) == 0
    assert int(rank_of(torch.tensor([3.0, 3.0, 2.0]), 0)) == 1
    assert int(rank_of(torch.tensor([3.0, 3.0, 2.0]), 1)) == 1
    assert int(rank_of(torch.tensor([3.0, 2.0, 2.0]), 2)) == 2  # tied below the top: still against
    assert int(rank_of(torch.zeros(7), 4)) == 6  # a flat row: everything ties with everything
    assert int(rank_of(torch.tensor([1.0, 2.0, 3.0]), -1)) == 0


def test_rank_of_is_vectorized_and_takes_numpy() -> None:
    values = torch.tensor([[0.5, 0.5, 0.1], [0.2, 0.9, 0.9], [0.0, 0.0, 0.0]])
    assert rank_of(values, torch.tensor([0, 0, 2])).tolist() == [1, 2, 2]
    assert rank_of(values, 1).tolist() == [1, 1, 2]
    batch = torch.randn(4, 3, 50, dtype=torch.float64)
    index = torch.randint(0, 50, (4, 3))
    looped = [[int((batch[i, j] >= batch[i, j, index[i, j]]).sum()) - 1 for j in range(3)] for i in range(4)]
    assert rank_of(batch, index).tolist() == looped
    assert int(rank_of(np.array([2.0, 2.0, 1.0]), 1)) == 1


def test_nan_counts_against_the_claim() -> None:
    assert int(rank_of(torch.tensor([1.0, float("nan"), 0.5]), 0)) == 1
    assert int(rank_of(torch.tensor([1.0, float("nan"), 0.5]), 1)) == 2


def test_an_index_out_of_range_is_refused() -> None:
    with pytest.raises(IndexError, match="out of range for 3 entries"):
        rank_of(torch.zeros(3), 3)


def test_top_ties_are_counted() -> None:
    rows = torch.tensor([[3.0, 3.0, 2.0], [3.0, 1.0, 2.0], [1.0, 1.0, 1.0]])
    assert n_at_top(rows).tolist() == [2, 1, 3]
    assert top_tie_size(rows, torch.tensor([1, 0, 2])).tolist() == [2, 0, 3]
    assert top_tie_size(rows, torch.tensor([2, 2, 0])).tolist() == [0, 0, 3]


def test_answer_scores_and_sweep_rows_count_a_tie_against_the_answer() -> None:
    row = torch.tensor([[1.0, 4.0, 4.0, 2.0]])
    score = score_from_logits(row, 1, (1,))
    assert score.ranks == (1,) and score.rank == 1
    clean = AnswerMetrics.of(score_from_logits(torch.tensor([[1.0, 4.0, 3.0, 2.0]]), 1, (1,)))
    tied = AnswerMetrics.of(score)
    assert (clean.rank, tied.rank) == (0, 1)
    assert SweepRow.of("L0", clean, tied).rank_rise == 1 and tied.drop_to(clean, "rank") == -1.0


# --------------------------------------------------------------------------- the zero-embed example


def test_zero_embedding_makes_a_flat_output_and_the_top_token_claim_fails(model) -> None:
    zero_embed = ablate(model, "embed", "zero")
    with pytest.raises(VerdictError) as info:
        assert_top_token(model, "A B C D", " E", intervention=zero_embed)
    message = str(info.value)
    assert message.startswith("FAILED  ' E' is top-1 after 'A B C D', under zero embed: rank 262143")
    assert f"  flat      {FLAT}, and a flat output makes no claim hold" in message
    assert "the answer ties with 262,143 other tokens for the top logit, so nothing in the output prefers it" in message
    assert "(top-1: ok)" not in message and "beaten by" not in message
    result = info.value.result
    assert result.rank == GEMMA_VOCAB - 1 and result.top_tie is not None and result.top_tie.n == GEMMA_VOCAB
    assert result.prob == pytest.approx(1 / GEMMA_VOCAB, rel=1e-6)
    # tied tokens are listed in token-id order, the same on every run
    assert [t.token_id for t in result.top_tokens] == [0, 1, 2, 3, 4]


def test_a_flat_output_fails_rank_prob_and_wide_top_k_claims(model) -> None:
    zero_embed = ablate(model, "embed", "zero")
    results = [
        check_top_token(model, "A B C D", " E", k=GEMMA_VOCAB, intervention=zero_embed),
        check_rank(model, "A B C D", " E", rank=GEMMA_VOCAB - 1, intervention=zero_embed),
        check_rank(model, "A B C D", " E", max_rank=GEMMA_VOCAB, intervention=zero_embed),
        check_prob(model, "A B C D", " E", max_prob=0.01, intervention=zero_embed),
        check_prob(model, "A B C D", " E", min_prob=0.0, intervention=zero_embed),
    ]
    for result in results:
        assert not result.passed, result.claim  # the numbers meet every bound; the flat output does not
        assert FLAT in result.report()


def test_a_multi_token_answer_names_the_flat_step(model) -> None:
    result = check_top_token(model, "1 2 3 4", " 5", intervention=ablate(model, "embed", "zero"))
    assert not result.passed and result.top_step == 0
    assert f"{FLAT} at answer token 1 of 2 (| |)" in result.report()


def test_a_logit_difference_on_a_flat_output_is_judged_but_flagged(model) -> None:
    zero_embed = ablate(model, "embed", "zero")
    result = check_logit_diff(model, "A B C D", " E", " F", max_diff=0.5, intervention=zero_embed)
    assert result.passed and result.logit_diff == 0.0
    assert (result.answer_rank, result.other_rank) == (GEMMA_VOCAB - 1, GEMMA_VOCAB - 1)
    report = result.report()
    assert f"  flat      {FLAT}. | E| and | F| are among them" in report
    assert "no evidence of anything" in report
    assert not check_logit_diff(model, "A B C D", " E", " F", min_diff=1.0, intervention=zero_embed).passed


def test_a_circuit_with_a_flat_output_is_not_sufficient(model) -> None:
    result = check_sufficiency(model, "A B C D", " E", ablate(model, "embed", "zero"), max_rank=GEMMA_VOCAB)
    assert not result.passed and result.under_circuit.rank == GEMMA_VOCAB - 1
    assert f"missed    under the circuit {FLAT}" in result.report()


def test_a_sweep_ranks_a_flat_output_last(model) -> None:
    result = sweep(model, "A B C D", " E", "embed", ablation="zero", metric="rank")
    (row,) = result.rows
    assert result.clean.rank == 0
    assert row.rank == GEMMA_VOCAB - 1 and row.rank_rise == GEMMA_VOCAB - 1


# --------------------------------------------------------------------------- an exact tie of two tokens


def test_an_exact_tie_at_the_top_gives_rank_1_and_fails(model) -> None:
    e, f = model.answer_tokens(" E")[0], model.answer_tokens(" F")[0]
    hooks = copy_logit(e, f)
    result = check_top_token(model, "A B C D", " E", fwd_hooks=hooks)
    assert result.rank == 1 and not result.passed
    assert result.top_tie is not None and result.top_tie.n == 2
    assert f"the output is flat: 2 tokens share the top logit {result.logit:.2f}; no token is top-1" in result.report()
    assert not check_top_token(model, "A B C D", " E", k=2, fwd_hooks=hooks).passed
    rank = check_rank(model, "A B C D", " E", rank=1, fwd_hooks=hooks)
    assert rank.rank == 1 and not rank.passed
    assert [t.token for t in result.top_tokens[:2]] == [" F", " E"]  # the tie listed by token id (633 < 645)
    assert check_top_token(model, "A B C D", " E").rank == 0  # the clean model is unchanged


def test_an_exact_tie_below_the_top_counts_against_without_flatness(model) -> None:
    clean = check_top_token(model, "A B C D", " F")
    assert clean.rank == 2 and clean.top_tie is None
    f, e = model.answer_tokens(" F")[0], model.answer_tokens(" E")[0]
    below = next(t for t in check_rank(model, "A B C D", " F", max_rank=10).top_tokens if t.logit < clean.logit)
    assert below.token_id not in (e, f)
    result = check_rank(model, "A B C D", " F", rank=3, fwd_hooks=copy_logit(f, below.token_id))
    assert result.passed and result.top_tie is None  # one more token at least as high, and no flat output
    diff = check_logit_diff(model, "A B C D", " F", below.token, max_diff=0.0, fwd_hooks=copy_logit(f, below.token_id))
    assert diff.passed and diff.logit_diff == 0.0 and diff.answer_rank == diff.other_rank == 3
    assert "flat" not in diff.report()


def test_the_logit_lens_counts_a_tie_against_the_answer(model, monkeypatch: pytest.MonkeyPatch) -> None:
    import pytest_annotate.checks.logit_lens as lens

    clean = check_logit_lens(model, "A B C D", " E")
    assert clean.first_top1_layer is not None and not clean.flat_layers
    e, f = model.answer_tokens(" E")[0], model.answer_tokens(" F")[0]
    real = lens.lens_logits

    def tied(*args, **kwargs):
        logits = real(*args, **kwargs).clone()
        logits[..., f] = logits[..., e]
        return logits

    monkeypatch.setattr(lens, "lens_logits", tied)
    result = check_logit_lens(model, "A B C D", " E")
    assert not result.passed and result.first_top1_layer is None
    assert result.layers[-1].rank == 1 and result.layers[-1].is_flat and result.layers[-1].answer_top_tie == 2
    for before, after in zip(clean.layers, result.layers, strict=True):
        assert after.rank in (before.rank, before.rank + 1)  # +1 where ' F' was below ' E'
        if before.rank == 0:
            assert after.rank == 1 and after.is_flat and after.answer_top_tie == 2
    report = result.report()
    assert "the output is flat for the answer at layer" in report
    assert "none: 2 tokens tie at" in report and "(the answer among them)" in report


def test_a_flat_logit_lens_has_no_top_1_layer(model, monkeypatch: pytest.MonkeyPatch) -> None:
    import pytest_annotate.checks.logit_lens as lens

    real = lens.lens_logits
    monkeypatch.setattr(lens, "lens_logits", lambda *a, **k: torch.zeros_like(real(*a, **k)))
    result = check_logit_lens(model, "A B C D", " E", layer=model.n_layers - 1)
    assert not result.passed and result.first_top1_layer is None
    assert result.flat_layers == tuple(range(model.n_layers))
    assert all(r.rank == GEMMA_VOCAB - 1 and r.top_ties == GEMMA_VOCAB for r in result.layers)
    report = result.report()
    assert result.measured() == f"never top-1; best rank {GEMMA_VOCAB - 1} at layer 0 ({model.n_layers} flat layers)"
    assert f"the output is flat there: {GEMMA_VOCAB:,} tokens, the answer among them" in report
    assert f"the output is flat for the answer at layers 0-{model.n_layers - 1}" in report
    assert f"none: {GEMMA_VOCAB:,} tokens tie at 0.00% (the answer among them)" in report


# --------------------------------------------------------------------------- the tiny synthetic model


def test_a_flat_output_fails_on_a_tiny_gpt2(tiny_gpt2) -> None:
    hooks = [("unembed.hook_out", flatten_logits)]
    result = check_top_token(tiny_gpt2, "A B C", " D", k=tiny_gpt2.d_vocab, fwd_hooks=hooks)
    assert not result.passed and result.rank == tiny_gpt2.d_vocab - 1
    assert flat_message(tiny_gpt2.d_vocab, 0.0) in result.report()
    assert check_top_token(tiny_gpt2, "A B C", " D", k=tiny_gpt2.d_vocab).passed  # not flat without the hook


# --------------------------------------------------------------------------- head roles


@pytest.mark.filterwarnings("ignore::pytest_annotate.errors.WeakClaimWarning")  # rank-only claims, on purpose
def test_two_heads_with_identical_scores_both_rank_1(tiny_gpt2, monkeypatch: pytest.MonkeyPatch) -> None:
    import pytest_annotate.checks.head_roles as head_roles

    table = HeadScores("induction", tiny_gpt2.model_id, "synthetic", ((0.1, 0.9, 0.2, 0.3), (0.9, 0.0, 0.5, 0.4)))
    assert table.rank("L0H1") == table.rank("L1H0") == 1
    assert table.rank("L1H2") == 2 and table.rank("L1H1") == 7
    monkeypatch.setattr(head_roles, "head_scores", lambda lab, role, inputs=None: table)
    top1 = check_head_role(tiny_gpt2, "L0H1", "induction", top_k=1)
    assert not top1.passed and top1.rank == 1 and top1.top_tie == 2
    assert "2 heads share the top score 0.9000: no head is the top head" in top1.report()
    top2 = check_head_role(tiny_gpt2, "L1H0", "induction", top_k=2)
    assert top2.passed and top2.rank == 1
    assert check_head_role(tiny_gpt2, "L1H2", "induction", top_k=3).top_tie == 0
