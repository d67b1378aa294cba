"""Score many items (prompt, answer) under many interventions, batched across items and interventions.

:func:`~pytest_annotate.scoring.sweeps.score_interventions` batches one prompt's interventions;
a claim over a family needs every item under every intervention (the named component and its
random controls). Each batch's rows are ``item x intervention``: a family of 12 month windows
under 1 + 5 interventions costs one forward pass of 72 rows, not 72 passes.

Rows of a forward pass have the same number of tokens. Items of different lengths share a pass
right-padded (:func:`pad_batches`): in a causal model a real position never attends to the padding
after it, so its activations are the unpadded row's (up to float32 rounding between batch shapes,
as for any batching), and each item is read at its own answer positions. A pass costs its weights
(read once per pass, ~1 GB for Gemma 3 270M) plus its tokens, so one padded pass beats one pass per
length unless the padding is large: items share a batch while the padding stays under
:data:`MAX_PADDING` of the real tokens. Mean and resample ablations write position-aligned
reference activations, so under them items keep the exact-length groups of :func:`group_items`
(by teacher-forced length and forced answer tokens, which those ablations append to their
reference prompts).

Every number comes from :func:`pytest_annotate.scoring.answers.score_rows`, the scorer under every
single-prompt check, so a family's item and the same prompt checked alone agree.

>>> scores = score_items(lab, [("January February March", " April"), ("May June July", " August")])  # doctest: +SKIP
>>> [s.score.rank for s in scores.rows(0)], scores.forward_passes                                   # doctest: +SKIP
([0, 0], 1)
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

from pytest_annotate.interventions.ablations import Intervention, batched_fwd_hooks, needs_reference
from pytest_annotate.scoring.answers import (
    AnswerScore,
    score_from_logits,
    score_rows,
    teacher_forced_tokens,
)
from pytest_annotate.scoring.sweeps import (
    BATCH_MEMORY_BYTES,
    ChunkedForwards,
    answer_positions,
    default_batch_size,
    take_positions,
)

MAX_PADDING = 0.25
"""Items of different lengths share a right-padded pass while its padding tokens stay within this
fraction of its real tokens (:func:`pad_batches`)."""

if TYPE_CHECKING:
    from pytest_annotate.lab import Lab, Prompt


@dataclass(frozen=True)
class ItemScore:
    """One item under one intervention: the answer's score, the top token where it ranked worst,
    and (when a foil was given) the foil's first-token logit right after the prompt."""

    score: AnswerScore
    top_id: int
    """The model's top token at the answer step with the worst rank."""
    top_logit: float
    top_prob: float
    foil_logit: float | None = None
    """The foil's first token's logit at the first answer step (None without a foil)."""

    @property
    def logit_diff(self) -> float | None:
        """The answer's first-token logit minus the foil's (None without a foil)."""
        return None if self.foil_logit is None else self.score.logit - self.foil_logit


@dataclass(frozen=True)
class PreparedItem:
    """An item's token ids, ready to batch."""

    index: int
    tokens: tuple[int, ...]
    """The prompt's tokens followed by every answer token but the last (teacher forcing)."""
    prompt_len: int
    answer_ids: tuple[int, ...]
    foil_id: int | None = None

    @property
    def forced(self) -> tuple[int, ...]:
        return self.answer_ids[:-1]

    @property
    def group(self) -> tuple[int, tuple[int, ...]]:
        """Items with the same group batch together: same length, same forced answer tokens."""
        return (len(self.tokens), self.forced)


@dataclass(frozen=True)
class ItemScores:
    """``scores[i][j]``: item ``i`` under intervention ``j``; and what it cost."""

    scores: tuple[tuple[ItemScore, ...], ...]
    forward_passes: int
    groups: int
    """Batches the items fell into (one token length each, or lengths padded together; each is at
    least one forward pass)."""

    def rows(self, j: int) -> tuple[ItemScore, ...]:
        """Every item's score under intervention ``j``."""
        return tuple(row[j] for row in self.scores)


def prepare_items(
    lab: Lab, pairs: Sequence[tuple[Prompt, str | int | Sequence[int]]], foils: Sequence[str | None] | None = None
) -> list[PreparedItem]:
    """Tokenize every (prompt, answer) pair (and foil) with the Lab's BOS policy."""
    out = []
    for i, (prompt, answer) in enumerate(pairs):
        answer_ids = lab.answer_tokens(answer)
        prompt_len = int(lab.tokens(prompt).shape[0])
        toks = teacher_forced_tokens(lab, prompt, answer_ids)
        foil_id = None
        if foils is not None and foils[i] is not None:
            foil_id = lab.answer_tokens(foils[i])[0]  # type: ignore[arg-type]
        out.append(PreparedItem(i, tuple(int(t) for t in toks.tolist()), prompt_len, answer_ids, foil_id))
    return out


def group_items(items: Sequence[PreparedItem]) -> list[list[PreparedItem]]:
    """Items grouped by :attr:`PreparedItem.group` (exact length), in order of first appearance."""
    groups: dict[tuple[int, tuple[int, ...]], list[PreparedItem]] = {}
    for item in items:
        groups.setdefault(item.group, []).append(item)
    return list(groups.values())


def pad_batches(items: Sequence[PreparedItem], max_padding: float | None = None) -> list[list[PreparedItem]]:
    """Items batched for right-padded passes: the same number of answer tokens, and lengths taken
    shortest first, all items of a length at once, while the batch's padding stays within
    ``max_padding`` (default :data:`MAX_PADDING`; 0: exact lengths only) of its real tokens.

    >>> lengths = [5, 6, 5, 9, 30, 6]
    >>> items = [PreparedItem(i, (1,) * n, n, (2,)) for i, n in enumerate(lengths)]
    >>> [[len(i.tokens) for i in batch] for batch in pad_batches(items)]
    [[5, 5, 6, 6], [9], [30]]
    """
    limit = 1 + (MAX_PADDING if max_padding is None else max_padding)
    by_answer: dict[int, dict[int, list[PreparedItem]]] = {}
    for item in items:
        by_answer.setdefault(len(item.answer_ids), {}).setdefault(len(item.tokens), []).append(item)
    batches: list[list[PreparedItem]] = []
    for by_length in by_answer.values():
        batch: list[PreparedItem] = []
        real = 0
        for n, same in sorted(by_length.items()):
            # the new length is the longest so far: the batch's padded length if these items join
            if batch and n * (len(batch) + len(same)) > limit * (real + n * len(same)):
                batches.append(batch)
                batch, real = [], 0
            batch += same
            real += n * len(same)
        batches.append(batch)
    return batches


def _padded(lab: Lab, batch: Sequence[PreparedItem]) -> torch.Tensor:
    """``[items, longest]`` token ids, each row right-padded with its own last token.

    Any id would do (a causal model's real positions never see the padding); a real token of the
    row keeps pad ids, which some tokenizers map to special embeddings, out of the pass."""
    width = max(len(item.tokens) for item in batch)
    return torch.tensor([item.tokens + item.tokens[-1:] * (width - len(item.tokens)) for item in batch],
                        device=lab.device)


def score_items(
    lab: Lab,
    pairs: Sequence[tuple[Prompt, str | int | Sequence[int]]],
    interventions: Sequence[Intervention | None] | Callable[[Sequence[PreparedItem]], Sequence[Intervention | None]]
    = (None,),
    *,
    foils: Sequence[str | None] | None = None,
    max_batch_size: int | None = None,
) -> ItemScores:
    """Score every pair under every intervention (``None``: the clean model), batched.

    ``interventions`` is a list shared by every item, or a function of a length group's items
    returning one (so that a mean ablation can average over the group's own prompts); every group
    must get as many. Items of different lengths share right-padded passes unless an
    intervention is position-aligned (mean, resample, or a function of the group). Rows are
    chunked to ``max_batch_size`` (default: :func:`~pytest_annotate.scoring.sweeps.default_batch_size`);
    a chunk that runs out of memory is retried with half the rows.
    """
    prepared = prepare_items(lab, pairs, foils)
    out: list[tuple[ItemScore, ...] | None] = [None] * len(prepared)
    passes = 0
    positional = callable(interventions) or any(
        iv is not None and any(needs_reference(e) for e in iv.edits) for iv in interventions)
    groups = group_items(prepared) if positional else pad_batches(prepared)
    width: int | None = None
    for group in groups:
        ivs = list(interventions(group) if callable(interventions) else interventions)
        if width is not None and len(ivs) != width:
            raise ValueError(f"interventions() gave {len(ivs)} interventions for one group and {width} for another")
        width = len(ivs)
        scores, n = _score_group(lab, group, ivs, max_batch_size)
        passes += n
        for item, row in zip(group, scores, strict=True):
            out[item.index] = row
    return ItemScores(tuple(row for row in out if row is not None), passes, len(groups))


def _score_group(
    lab: Lab, group: Sequence[PreparedItem], ivs: Sequence[Intervention | None], max_batch_size: int | None
) -> tuple[list[tuple[ItemScore, ...]], int]:
    first = group[0]
    n_answer = len(first.answer_ids)
    tokens = _padded(lab, group)
    seq_len = int(tokens.shape[1])
    # Row r is item r // len(ivs) under intervention r % len(ivs).
    row_items = [i for i in range(len(group)) for _ in ivs]
    row_ivs = [iv for _ in group for iv in ivs]
    run = ChunkedForwards(lab, n_rows=len(row_ivs), seq_len=seq_len, n_answer=n_answer,
                          batch=max_batch_size or default_batch_size(lab, seq_len, n_answer),
                          row_ends=[len(group[i].tokens) for i in row_items])

    def inputs(rows: slice) -> tuple[torch.Tensor, list]:
        chunk_ivs = row_ivs[rows]
        hooks = batched_fwd_hooks(lab, tokens[0], chunk_ivs, forced=first.forced) if any(chunk_ivs) else []
        return tokens[row_items[rows]], hooks

    results: list[ItemScore] = []
    for rows, logits in run.chunks(inputs):
        for r, item_index in enumerate(row_items[rows]):
            item = group[item_index]
            # only the answer steps' rows: the kept positions, or the full run's from the prompt's last token on
            results.append(_item_score(logits[r] if run.slicing else logits[r, item.prompt_len - 1 :], item))
        del logits
    run.warn_if_retried(stacklevel=4)
    width = len(ivs)
    return [tuple(results[k * width : (k + 1) * width]) for k in range(len(group))], run.passes


def _item_score(rows: torch.Tensor, item: PreparedItem) -> ItemScore:
    """``rows[j]`` holds the logits predicting answer token ``j``."""
    score, log_probs = score_rows(rows[: len(item.answer_ids)], item.answer_ids)
    step = max(range(len(item.answer_ids)), key=lambda j: (score.ranks[j], -j))
    row = rows[step]
    top = int(row.argmax())
    foil = None if item.foil_id is None else float(rows[0, item.foil_id])
    return ItemScore(score, top, float(row[top]), float(log_probs[step, top].exp()), foil)


@dataclass(frozen=True)
class LensRanks:
    """``ranks[i][layer]``: item ``i``'s greedy rank read through the logit lens after each block."""

    ranks: tuple[tuple[int, ...], ...]
    forward_passes: int

    def first_top1(self, i: int) -> int | None:
        """The first block after which item ``i``'s answer is top-1 (None: never)."""
        return next((layer for layer, r in enumerate(self.ranks[i]) if r == 0), None)


def lens_ranks(
    lab: Lab, pairs: Sequence[tuple[Prompt, str | int | Sequence[int]]], *, max_batch_size: int | None = None
) -> LensRanks:
    """Each item's answer rank after every block, read with the logit lens, in right-padded batches.

    As :func:`pytest_annotate.checks.logit_lens.lens_logits` reads it (TransformerLens's
    ``logit_readout``: the model's own final norm and unembedding applied to each block's output),
    but with one forward pass per batch of items (:func:`pad_batches`): the blocks' outputs are
    captured at each item's answer positions only, and read one layer at a time. A multi-token answer's rank is the
    worst of its tokens' ranks, each at its own position (teacher forcing).
    """
    from transformer_lens.tools.analysis.logit_lens import logit_readout

    prepared = prepare_items(lab, pairs)
    out: list[tuple[int, ...] | None] = [None] * len(prepared)
    names = [f"blocks.{layer}.hook_resid_post" for layer in range(lab.n_layers)]
    passes = 0
    for group in pad_batches(prepared):
        n_answer = len(group[0].answer_ids)
        batch = max_batch_size or default_batch_size(lab, max(len(item.tokens) for item in group), n_answer)
        for start in range(0, len(group), batch):
            chunk = group[start : start + batch]
            tokens = _padded(lab, chunk)
            lengths = [len(item.tokens) for item in chunk]
            at = answer_positions(lengths, n_answer, tokens.device)
            # the residual streams only, in a pass stopped before the unembedding (the logits are not read)
            acts = lab.capture(tokens, names, lengths=lengths)
            captured = {name: take_positions(act, at) for name, act in acts.items()}
            passes += 1
            stack = torch.stack([captured[name] for name in names], dim=1)  # [batch, layer, n_answer, d_model]
            # one readout for many rows (each call has a fixed cost), within the memory bound of a batch
            per_read = max(1, BATCH_MEMORY_BYTES // (len(names) * n_answer * lab.d_vocab * 4))
            with torch.inference_mode():
                for lo in range(0, len(chunk), per_read):
                    logits = logit_readout(lab.bridge, stack[lo : lo + per_read], return_type="logits").values
                    for r, item in enumerate(chunk[lo : lo + per_read]):  # the ranks every check computes
                        out[item.index] = tuple(
                            score_from_logits(logits[r, layer], 1, item.answer_ids).rank for layer in range(len(names))
                        )
                    del logits
    return LensRanks(tuple(r for r in out if r is not None), passes)


__all__ = ["MAX_PADDING", "ItemScore", "ItemScores", "LensRanks", "PreparedItem", "group_items", "lens_ranks",
           "pad_batches", "prepare_items", "score_items"]
