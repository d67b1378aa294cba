"""Ranks, and the one rule for ties: **a tie counts against the claim**.

The rank of an entry is the number of *other* entries that score at least as high as it does.
Rank 0 therefore means strictly above every other entry; an answer that ties with one other token
for the top logit has rank 1, not 0, and so does the other token. Every rank in pytest-annotate
(an answer token's rank among the vocabulary, a head's rank among the heads, the top-1 test of the
composition score) is computed here, by :func:`rank_of`.

Why against: among tied entries nothing in the output prefers the one claimed; only the
tie-breaking of ``argmax``/``topk`` (index order) would. A claim must not pass because the output
is flat. Zero-ablating Gemma 3's embedding makes every logit exactly 0; counted as "entries
strictly above", every one of its 262,144 tokens would be top-1, and ``assert_top_token`` would
pass for any answer. Counted against, the answer has rank 262,143.

A NaN counts against the claim too: a NaN entry is counted as scoring at least as high as any
entry, and a NaN entry itself ranks below everything (rank ``n - 1``).

A **degenerate** output is one where the claimed entry ties for the top (:func:`top_tie_size` > 0):
no entry is top-1, and the checks fail on it and say so (:func:`flat_message`).

>>> import torch
>>> rank_of(torch.tensor([1.0, 3.0, 2.0]), 1)            # strictly the largest
tensor(0)
>>> rank_of(torch.tensor([3.0, 3.0, 2.0]), 0)            # tied with one other: rank 1
tensor(1)
>>> rank_of(torch.zeros(2, 5), torch.tensor([0, 3]))      # flat rows: every entry ties with 4
tensor([4, 4])
>>> top_tie_size(torch.tensor([[3.0, 3.0, 2.0], [3.0, 1.0, 2.0]]), torch.tensor([1, 0]))
tensor([2, 0])
>>> flat_message(262144, 0.0)
'the output is flat: 262,144 tokens share the top logit 0.00; no token is top-1'
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from jaxtyping import Float, Int
from torch import Tensor


def _index(values: Tensor, index: Tensor | int | np.ndarray) -> Tensor:
    """``index`` as a long tensor broadcast to ``values``' batch shape, checked against its last dimension."""
    idx = torch.as_tensor(index, dtype=torch.long, device=values.device)
    idx = torch.broadcast_to(idx, values.shape[:-1])
    n = values.shape[-1]
    if idx.numel() and (int(idx.min()) < -n or int(idx.max()) >= n):
        raise IndexError(f"index {idx.tolist()} is out of range for {n} entries")
    return idx % n if n else idx


def _as_tensor(values: Tensor | np.ndarray) -> Tensor:
    return values if isinstance(values, Tensor) else torch.as_tensor(np.asarray(values))


def rank_of(
    values: Float[Tensor, "... n"] | np.ndarray, index: Int[Tensor, "..."] | int | np.ndarray
) -> Int[Tensor, "..."]:
    """The rank of ``values[..., index]`` along the last dimension: how many *other* entries score at
    least as high (0 = strictly above every other entry). Ties count against the claim (see the
    module docstring): tied entries all get the worse rank.

    Vectorized over the leading dimensions: ``values`` ``[..., n]`` and ``index`` ``[...]`` (or an
    int, for the same entry of every row) give ranks ``[...]`` (int64).

    >>> rank_of(torch.tensor([[0.5, 0.5], [0.2, 0.9]]), torch.tensor([0, 1]))
    tensor([1, 0])
    """
    values = _as_tensor(values)
    idx = _index(values, index)
    target = values.gather(-1, idx.unsqueeze(-1))
    # `not (other < target)`: other >= target, or either is NaN. The entry itself always counts; drop it.
    return (~(values < target)).sum(-1) - 1


def n_at_top(values: Float[Tensor, "... n"] | np.ndarray) -> Int[Tensor, "..."]:
    """How many entries share the largest value of each row (1: a unique top-1; 0: the row holds a NaN).

    >>> n_at_top(torch.tensor([[2.0, 2.0, 1.0], [0.0, 1.0, 0.5]]))
    tensor([2, 1])
    """
    values = _as_tensor(values)
    return (values == values.amax(-1, keepdim=True)).sum(-1)


def top_tie_size(
    values: Float[Tensor, "... n"] | np.ndarray, index: Int[Tensor, "..."] | int | np.ndarray
) -> Int[Tensor, "..."]:
    """How many entries share the top value with ``values[..., index]`` (itself included) when it ties for
    the top with at least one other entry; 0 when it does not (it is the unique top-1, or below the top).

    A positive size is a degenerate output for a claim about ``index``: no entry is top-1 there.
    """
    values = _as_tensor(values)
    idx = _index(values, index)
    target = values.gather(-1, idx.unsqueeze(-1))[..., 0]
    top = values.amax(-1)
    n = n_at_top(values)
    return torch.where((target == top) & (n > 1), n, torch.zeros_like(n))


@dataclass(frozen=True)
class TopTie:
    """A degenerate output: the claimed token ties with others for the top logit, so none is top-1."""

    n: int
    """How many tokens share the top logit (the claimed one included); >= 2."""
    logit: float
    """The shared top logit."""
    step: int = 0
    """The answer step where it happens (0: right after the prompt)."""
    n_steps: int = 1
    """How many steps the answer has."""
    token: str = ""
    """The answer token at that step (named in the message of a multi-token answer)."""

    def message(self) -> str:
        """``the output is flat: N tokens share the top logit X; no token is top-1``."""
        where = ""
        if self.n_steps > 1:
            where = f" at answer token {self.step + 1} of {self.n_steps}" + (f" (|{self.token}|)" if self.token else "")
        return flat_message(self.n, self.logit) + where


def flat_message(n: int, logit: float) -> str:
    """The sentence every check prints for a degenerate output.

    >>> flat_message(2, 17.25)
    'the output is flat: 2 tokens share the top logit 17.25; no token is top-1'
    """
    return f"the output is flat: {n:,} tokens share the top logit {logit:.2f}; no token is top-1"


__all__ = ["TopTie", "flat_message", "n_at_top", "rank_of", "top_tie_size"]
