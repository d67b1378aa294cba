"""Score an answer after a prompt: one function shared by every check.

A multi-token answer (Gemma splits ``" 5"`` into ``" "`` + ``"5"``) is scored by teacher forcing:
the prompt is extended with all but the last answer token, and the answer's **joint**
log-probability is the sum of each token's log-probability given the tokens before it. Its
*greedy rank* is the worst rank of any of its tokens at its own step, so "rank 0" means greedy
decoding produces the whole answer.

>>> s = score_answer(lab, "1 2 3 4", " 5")                      # doctest: +SKIP
>>> s.answer_ids, round(s.joint_prob, 3), s.rank                 # doctest: +SKIP
((236743, 236810), 0.861, 0)
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import dataclass

import torch
from jaxtyping import Float, Int
from torch import Tensor

from pytest_annotate.lab import FwdHook, Lab, Prompt
from pytest_annotate.scoring.ranks import rank_of


@dataclass(frozen=True)
class AnswerScore:
    """How a model scores an answer after a prompt (all numbers are plain floats/ints)."""

    answer_ids: tuple[int, ...]
    logprobs: tuple[float, ...]
    """Log-probability of each answer token given the prompt and the answer tokens before it."""
    logits: tuple[float, ...]
    """Logit of each answer token at its step."""
    ranks: tuple[int, ...]
    """Rank of each answer token at its step: how many other tokens have a logit at least as high
    (0 = strictly top-1; ties count against the answer, see :mod:`pytest_annotate.scoring.ranks`)."""

    @property
    def joint_logprob(self) -> float:
        return float(sum(self.logprobs))

    @property
    def joint_prob(self) -> float:
        return float(torch.tensor(self.joint_logprob, dtype=torch.float64).exp())

    @property
    def rank(self) -> int:
        """The greedy rank: the worst rank over the answer's tokens (0 iff greedy decoding gives it)."""
        return max(self.ranks)

    @property
    def logit(self) -> float:
        """The first answer token's logit (the number the source notebooks report)."""
        return self.logits[0]


def answer_positions(prompt_len: int, n_answer: int) -> Int[Tensor, " n_answer"]:
    """Positions whose logits predict each answer token (the last prompt token, then the answer's)."""
    return torch.arange(prompt_len - 1, prompt_len - 1 + n_answer)


def teacher_forced_tokens(lab: Lab, prompt: Prompt, answer_ids: Sequence[int], *, bos: bool | None = None) -> Tensor:
    """The prompt's tokens followed by every answer token but the last."""
    toks = lab.tokens(prompt, bos=bos)
    if len(answer_ids) > 1:
        toks = torch.cat([toks, torch.tensor(answer_ids[:-1], device=toks.device)])
    return toks


def score_from_logits(
    logits: Float[Tensor, "pos vocab"], prompt_len: int, answer_ids: Sequence[int]
) -> AnswerScore:
    """Score ``answer_ids`` from the logits of a teacher-forced run (see :func:`teacher_forced_tokens`)."""
    pos = answer_positions(prompt_len, len(answer_ids)).to(logits.device)
    return score_rows(logits[pos], answer_ids)[0]


def score_rows(
    rows: Float[Tensor, "n_answer vocab"], answer_ids: Sequence[int]
) -> tuple[AnswerScore, Float[Tensor, "n_answer vocab"]]:
    """Score ``answer_ids`` from the rows that predict them (row ``j`` predicts answer token ``j``).

    Also returns the rows' log-probabilities (float64), so a caller that needs more of the
    distribution (the top token's probability) does not compute the softmax over the vocabulary twice.
    """
    rows = rows.double()
    ids = torch.tensor(answer_ids, device=rows.device)
    log_probs = rows.log_softmax(-1)
    logprobs = log_probs.gather(-1, ids[:, None])[:, 0]
    answer_logits = rows.gather(-1, ids[:, None])
    ranks = rank_of(rows, ids)
    score = AnswerScore(
        tuple(int(i) for i in answer_ids),
        tuple(float(x) for x in logprobs),
        tuple(float(x) for x in answer_logits[:, 0]),
        tuple(int(r) for r in ranks),
    )
    return score, log_probs


def score_answer(
    lab: Lab,
    prompt: Prompt,
    answer: str | int | Sequence[int],
    *,
    bos: bool | None = None,
    fwd_hooks: Sequence[FwdHook] = (),
    key: Hashable | None = None,
) -> AnswerScore:
    """Score an answer after a prompt, memoized through :meth:`Lab.run`."""
    answer_ids = lab.answer_tokens(answer)
    prompt_len = lab.tokens(prompt, bos=bos).shape[0]
    toks = teacher_forced_tokens(lab, prompt, answer_ids, bos=bos)
    logits = lab.run(toks, fwd_hooks=fwd_hooks, key=key)
    return score_from_logits(logits, prompt_len, answer_ids)
