"""Copying a repeated random sequence: how well each half of ``BOS + n tokens ×2`` is predicted.

A model with an induction circuit predicts the second copy of a random sequence almost perfectly
and the first copy at chance. :func:`check_repeat_copying` measures the mean log-prob and top-1
accuracy of the correct next token in each half, and judges either the repeated half alone
(``min_accuracy``) or the gap between the halves (``min_log_prob_gap``, ``min_accuracy_gap``, as in
ARENA's induction exercise: GPT-2 small gives −13.898 nats in the first half and −0.644 in the
second, accuracy 0.0 vs 0.93).

Position ``q`` predicts token ``q + 1``. The first half is the predictions of tokens 1..n (from BOS
and the first copy); the second half those of tokens n+1..2n, or n+2..2n with
``score_first_repeat=False``: the first repeated token follows the end of the first copy, which
says nothing about it, so no induction circuit can predict it.

>>> result = check_repeat_copying(lab, RepeatedRandomTokens(n=50, batch=30), min_accuracy=0.9)  # doctest: +SKIP
>>> result.second_half_accuracy                                                                 # doctest: +SKIP
0.93
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import torch

from pytest_annotate.results import Measurement, Result, asserting, hint_lines, kind
from pytest_annotate.scoring.head_scores import RepeatedRandomTokens

if TYPE_CHECKING:
    from jaxtyping import Float, Int
    from torch import Tensor

    from pytest_annotate.lab import FwdHook, Lab

#: Float32 logits one forward pass may hold: 6 rows of GPT-2's 101 positions × 50,257 logits.
LOGITS_PER_PASS = 128 * 2**20 // 4

CIRCUIT_HINT = ("head_scores(lab, 'induction') and head_scores(lab, 'previous_token'): does this model "
                "(or checkpoint) have an induction head, and a previous-token head before it?")


def rows_per_pass(lab: Lab, positions: int) -> int:
    """How many rows of ``positions`` tokens to run at once, keeping their logits within
    :data:`LOGITS_PER_PASS` (a whole batch of GPT-2's would take 600 MB)."""
    return max(1, LOGITS_PER_PASS // (positions * lab.d_vocab))


def next_token_log_probs(
    lab: Lab, tokens: Int[Tensor, "batch pos"], *, fwd_hooks: list[FwdHook] | None = None
) -> tuple[Float[Tensor, "batch pos_1"], Float[Tensor, "batch pos_1"]]:
    """The log-prob (float64) and top-1 hit (1.0 or 0.0) of each correct next token, ``[batch, pos - 1]``
    each, on the CPU; a few rows per forward pass."""
    log_probs, hits = [], []
    with torch.inference_mode():
        for rows in tokens.split(rows_per_pass(lab, tokens.shape[1])):
            logits = lab.run_batch(rows, fwd_hooks=fwd_hooks or ())[:, :-1].double()
            targets = rows[:, 1:, None]
            log_probs.append(logits.log_softmax(-1).gather(-1, targets)[..., 0].cpu())
            hits.append((logits.argmax(-1, keepdim=True) == targets)[..., 0].double().cpu())
    return torch.cat(log_probs), torch.cat(hits)


def half_columns(length: int, n: int, *, score_first_repeat: bool = True) -> tuple[slice, slice]:
    """The columns of :func:`next_token_log_probs` that predict each half of a ``length``-token row
    made of (BOS +) ``n`` tokens ×2.

    >>> half_columns(101, 50)
    (slice(0, 50, None), slice(50, 100, None))
    >>> half_columns(101, 50, score_first_repeat=False)
    (slice(0, 50, None), slice(51, 100, None))
    """
    bos = length - 2 * n  # 1 with BOS, 0 without (the first token then has no prediction)
    if bos not in (0, 1):
        raise ValueError(f"a row of {length} tokens is not (BOS +) {n} tokens ×2")
    first = slice(max(bos, 1) - 1, bos + n - 1)
    second = slice(bos + n - 1 + (0 if score_first_repeat else 1), bos + 2 * n - 1)
    return first, second


@dataclass(frozen=True, eq=False)
class CopyingResult(Result):
    """How well each half of repeated random sequences is predicted: the correct next token's mean
    log-prob (nats) and top-1 accuracy, and the claim on them."""

    model_id: str
    inputs: str
    first_half_log_prob: float
    second_half_log_prob: float
    first_half_accuracy: float
    second_half_accuracy: float
    n_positions: int
    """Second-half predictions scored (rows × positions)."""
    score_first_repeat: bool = True
    min_accuracy: float | None = field(default=None, metadata=kind("exact"))
    min_log_prob_gap: float | None = field(default=None, metadata=kind("exact"))
    min_accuracy_gap: float | None = field(default=None, metadata=kind("exact"))
    passed: bool = True

    @property
    def loss(self) -> float:
        """Mean next-token loss on the second half (nats)."""
        return -self.second_half_log_prob

    @property
    def log_prob_gap(self) -> float:
        return self.second_half_log_prob - self.first_half_log_prob

    @property
    def accuracy_gap(self) -> float:
        return self.second_half_accuracy - self.first_half_accuracy

    @property
    def claim(self) -> str:
        parts = []
        if self.min_accuracy is not None:
            parts.append(f"top-1 accuracy ≥ {self.min_accuracy:.0%}")
        if self.min_log_prob_gap is not None:
            parts.append(f"log-prob ≥ {self.min_log_prob_gap:g} nats above the first half's")
        if self.min_accuracy_gap is not None:
            parts.append(f"accuracy ≥ {self.min_accuracy_gap:.0%} above the first half's")
        return f"the repeated half of random sequences is copied on {self.model_id}: {' and '.join(parts)}"

    def measurements(self) -> tuple[Measurement, ...]:
        acc_primary = self.min_accuracy is not None or self.min_log_prob_gap is None
        return (
            Measurement("repeated-half top-1 accuracy", self.second_half_accuracy,
                        ">=" if self.min_accuracy is not None else None, self.min_accuracy, primary=acc_primary),
            Measurement("log-prob gap", self.log_prob_gap, ">=" if self.min_log_prob_gap is not None else None,
                        self.min_log_prob_gap, primary=not acc_primary, unit="nats"),
            Measurement("accuracy gap", self.accuracy_gap, ">=" if self.min_accuracy_gap is not None else None,
                        self.min_accuracy_gap),
            Measurement("repeated-half loss", self.loss, unit="nats"),
        )

    def report(self) -> str:
        scored = "tokens n+1..2n" if self.score_first_repeat else "tokens n+2..2n (the first repeat is unpredictable)"
        lines = [
            self.headline(),
            f"  inputs     {self.inputs}; second half scored on {scored}, {self.n_positions} predictions",
            f"  log-prob   first half {self.first_half_log_prob:.3f}, second half {self.second_half_log_prob:.3f} "
            f"(gap {self.log_prob_gap:.3f} nats)",
            f"  accuracy   first half {self.first_half_accuracy:.2%}, second half {self.second_half_accuracy:.2%} "
            f"(gap {self.accuracy_gap:.2%})",
        ]
        for m in self.measurements():
            if m.holds is False:
                lines.append(f"  missed     {m.text}")
        if not self.passed:
            lines += hint_lines([CIRCUIT_HINT])
        return "\n".join(lines)


def check_repeat_copying(
    lab: Lab,
    inputs: RepeatedRandomTokens | None = None,
    *,
    min_accuracy: float | None = None,
    min_log_prob_gap: float | None = None,
    min_accuracy_gap: float | None = None,
    score_first_repeat: bool = True,
) -> CopyingResult:
    """Mean log-prob and top-1 accuracy of the correct next token in each half of ``inputs``
    (default: :class:`RepeatedRandomTokens`'s BOS + 50 tokens ×2, batch 8), judged by the bounds given.

    ``min_accuracy`` bounds the repeated half's accuracy; ``min_log_prob_gap`` (nats) and
    ``min_accuracy_gap`` the second half's lead over the first. Give at least one.
    """
    bounds = {"min_accuracy": min_accuracy, "min_log_prob_gap": min_log_prob_gap, "min_accuracy_gap": min_accuracy_gap}
    if all(v is None for v in bounds.values()):
        raise ValueError("check_repeat_copying needs a claim: give min_accuracy (e.g. 0.9), min_log_prob_gap "
                         "(nats, e.g. 10) or min_accuracy_gap (e.g. 0.8)")
    for name, value in bounds.items():
        if value is not None and (not isinstance(value, (int, float)) or math.isnan(value)):
            raise ValueError(f"{name} must be a number, got {value!r}")
    inputs = inputs if inputs is not None else RepeatedRandomTokens()
    tokens = inputs.tokens(lab)
    log_probs, hits = next_token_log_probs(lab, tokens)
    first, second = half_columns(tokens.shape[1], inputs.n, score_first_repeat=score_first_repeat)
    first_lp, second_lp = (float(log_probs[:, s].mean()) for s in (first, second))
    first_acc, second_acc = (float(hits[:, s].mean()) for s in (first, second))
    passed = ((min_accuracy is None or second_acc >= min_accuracy)
              and (min_log_prob_gap is None or second_lp - first_lp >= min_log_prob_gap)
              and (min_accuracy_gap is None or second_acc - first_acc >= min_accuracy_gap))
    return CopyingResult(lab.model_id, str(inputs), first_lp, second_lp, first_acc, second_acc,
                         int(hits[:, second].numel()), score_first_repeat, min_accuracy, min_log_prob_gap,
                         min_accuracy_gap, passed)


assert_repeat_copying = asserting(
    check_repeat_copying, "assert_repeat_copying",
    """Assert the repeated half of random sequences is copied (see :func:`check_repeat_copying`).

    >>> assert_repeat_copying(lab, min_log_prob_gap=10.0, min_accuracy_gap=0.8)   # doctest: +SKIP
    """,
)

