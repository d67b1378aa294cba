"""Reading one prediction: the answer's rank, logit and probability and the top tokens after a prompt
(:class:`Prediction`, :func:`read_prediction`). Every check of :mod:`pytest_annotate.checks.predictions`
extends a :class:`Prediction` with its claim; that module's docstring describes them.
"""


from __future__ import annotations

import inspect
import math
from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import torch
from jaxtyping import Float, Int
from torch import Tensor

from pytest_annotate.lab import FwdHook, Lab, Prompt
from pytest_annotate.results import (
    TokenScore,
    fmt_prob,
    fmt_prompt,
    fmt_token,
)
from pytest_annotate.scoring.answers import (
    answer_positions,
    score_from_logits,
    teacher_forced_tokens,
)
from pytest_annotate.scoring.ranks import TopTie, top_tie_size

Answer = str | int | Sequence[int]
"""An answer: text (may tokenize to several tokens), a token id, or token ids."""

#: The fewest and the most top tokens a report lists (TransformerLens's test_prompt printed 10).
MIN_TOP_SHOWN = 5
MAX_TOP_SHOWN = 20


@runtime_checkable
class InterventionLike(Protocol):
    """What the checks need from an intervention: hooks for a token sequence, and a memo key.

    :mod:`pytest_annotate.interventions.ablations` provides frozen, hashable values of this shape; any
    object with these two members works, so a notebook can pass its own.
    """

    @property
    def key(self) -> Hashable: ...

    def fwd_hooks(self, lab: Lab, tokens: Int[Tensor, " pos"]) -> Sequence[FwdHook]: ...


# --------------------------------------------------------------------------- reading a prediction


@dataclass(frozen=True)
class AnswerToken:
    """One token of the answer at its own step: its rank, logit and probability there."""

    token: str
    token_id: int
    rank: int
    logit: float
    prob: float
    log_prob: float

    def line(self) -> str:
        """The ``Rank: ...`` line of TransformerLens's ``test_prompt``."""
        return _line(self.token, self.rank, self.logit, self.prob)


def _line(token: str, rank: int, logit: float, prob: float) -> str:
    return f"Rank: {rank:<8} Logit: {logit:6.2f} Prob: {fmt_prob(prob):>7} Token: {fmt_token(token)}"


@dataclass(frozen=True, eq=False, kw_only=True)
class Prediction:
    """What the model predicts for an answer after a prompt (the fields every prediction check shares)."""

    prompt: str
    """The prompt's text (decoded, when it was given as token ids)."""
    prompt_tokens: tuple[str, ...]
    """The prompt as the model saw it, BOS included."""
    answer: str
    answer_tokens: tuple[AnswerToken, ...]
    """Each answer token at its own step (teacher-forced after the ones before it)."""
    rank: int
    """Greedy rank: the worst rank of any answer token at its step (0 = greedy decoding gives the answer).
    A token's rank counts the other tokens whose logit is at least as high: ties count against the answer."""
    logit: float
    """The first answer token's logit."""
    prob: float
    """The joint probability of the whole answer."""
    top_step: int
    """The answer step whose top tokens are listed: one where the output is flat, if any (see
    :attr:`top_tie`), else the one with the worst rank (0 = right after the prompt)."""
    top_tokens: tuple[TokenScore, ...]
    """The most likely tokens at ``top_step``, best first."""
    intervention: str | None = None
    """The intervention the model ran under (``None``: the clean model)."""
    clean_rank: int | None = None
    """The answer's greedy rank on the clean model, when an intervention was given."""
    clean_prob: float | None = None
    """The answer's joint probability on the clean model, when an intervention was given."""
    respaced: AnswerToken | None = None
    """The answer with its leading space toggled (``' May'`` <-> ``'May'``), right after the prompt, when
    that is one token: the usual reason a true finding "fails"."""

    # ----------------------------------------------------------------- derived facts
    @property
    def log_prob(self) -> float:
        """The joint log-probability of the answer."""
        return math.fsum(t.log_prob for t in self.answer_tokens)

    @property
    def is_multi_token(self) -> bool:
        return len(self.answer_tokens) > 1

    @property
    def top1(self) -> TokenScore:
        """The model's top token at ``top_step``."""
        return self.top_tokens[0]

    @property
    def top_tie(self) -> TopTie | None:
        """The degenerate output, if the answer ties with other tokens for the top logit at ``top_step``.

        Then no token is top-1 and the output says nothing about the answer: every prediction check
        fails on it. Read off the fields (no field of its own, so snapshots are unchanged): the answer's
        logit equals the top logit, and its rank, the number of other tokens at least as high, is the
        number of tokens it ties with.
        """
        if not self.top_tokens:
            return None
        step = self.answer_tokens[self.top_step]
        if step.rank == 0 or step.logit != self.top_tokens[0].logit:
            return None
        return TopTie(n=step.rank + 1, logit=step.logit, step=self.top_step, n_steps=len(self.answer_tokens),
                      token=step.token)

    @property
    def is_flat(self) -> bool:
        """Whether the output is degenerate for this answer (see :attr:`top_tie`)."""
        return self.top_tie is not None

    def flat_line(self) -> str:
        """The report line for a degenerate output (empty when the output is not flat)."""
        tie = self.top_tie
        if tie is None:
            return ""
        return f"  flat      {tie.message()}, and a flat output makes no claim hold"

    def where(self) -> str:
        """``after 'prompt'``, plus the intervention if any."""
        under = f", under {self.intervention}" if self.intervention else ""
        return f"after {self.prompt!r}{under}"

    # ----------------------------------------------------------------- report pieces
    def printout(self) -> list[str]:
        """The ``test_prompt``-style printout: tokenized prompt and answer, the answer's scores, top tokens."""
        lines = [
            f"Tokenized prompt: {fmt_prompt(self.prompt_tokens)}",
            f"Tokenized answer: {fmt_prompt([t.token for t in self.answer_tokens])}",
        ]
        if self.intervention:
            lines.append(f"Intervention: {self.intervention}")
        if self.is_multi_token:
            lines.append("Performance on answer tokens (each given the prompt and the answer tokens before it):")
        else:
            lines.append("Performance on answer token:")
        lines += [t.line() for t in self.answer_tokens]
        if self.is_multi_token:
            lines.append(
                f"Joint prob: {fmt_prob(self.prob)} (log-prob {self.log_prob:.3f}); greedy rank {self.rank} "
                "(the worst of the tokens' ranks)"
            )
            step = self.answer_tokens[self.top_step]
            before = "the prompt" + "".join(f" + {fmt_token(t.token)}" for t in self.answer_tokens[: self.top_step])
            lines.append(
                f"Top tokens at answer token {self.top_step + 1} of {len(self.answer_tokens)} "
                f"({fmt_token(step.token)}, after {before}):"
            )
        lines += [s.line(i) for i, s in enumerate(self.top_tokens)]
        return lines

    def measured(self) -> str:
        """The answer's numbers in one phrase (a multi-token answer's logit is per token: see the printout)."""
        if self.is_multi_token:
            return f"greedy rank {self.rank}, joint prob {fmt_prob(self.prob)}"
        return f"rank {self.rank}, logit {self.logit:.2f}, prob {fmt_prob(self.prob)}"

    def shortfall(self) -> str:
        """Where the answer lost, for a failure message: ``lost at``/``beaten by`` and what won
        (the flat-output line when nothing won, see :attr:`top_tie`)."""
        if self.is_flat:
            return self.flat_line()
        step = self.answer_tokens[self.top_step]
        top = self.top1
        winner = (
            f"{fmt_token(top.token)} is top-1 at {fmt_prob(top.prob)}, {top.logit - step.logit:.2f} logits above "
            f"{fmt_token(step.token)} ({fmt_prob(step.prob)})"
        )
        if not self.is_multi_token:
            return f"  beaten by {winner}" if top.token_id != step.token_id else ""
        where = (f"  lost at   answer token {self.top_step + 1} of {len(self.answer_tokens)} "
                 f"({fmt_token(step.token)}): rank {step.rank}")
        return where + (f"; {winner}" if top.token_id != step.token_id else "")

    def next_steps(self) -> list[str]:
        """What to look at next when a claim about this prediction fails."""
        hints = []
        first = self.answer_tokens[0]
        tie = self.top_tie
        if tie is not None:
            others = tie.n - 1
            hints.append(
                f"the answer ties with {others:,} other token{'s' * (others != 1)} for the top logit, so nothing in "
                "the output prefers it, and a tie counts against a claim; an intervention that removes what the "
                "prediction is computed from (zeroing the embedding does) makes every logit equal"
            )
        if self.respaced is not None and self.respaced.rank < first.rank:
            hints.append(
                f"{self.respaced.token!r} (leading space {'removed' if self.answer.startswith(' ') else 'added'}) has "
                f"rank {self.respaced.rank}, prob {fmt_prob(self.respaced.prob)} here: "
                f"did you mean {self.respaced.token!r}?"
            )
        if self.clean_rank is not None:
            moved = (f"the intervention moved it to rank {self.rank}" if self.clean_rank != self.rank
                     else "the intervention left its rank unchanged")
            hints.append(
                f"the clean model gives rank {self.clean_rank}, prob {fmt_prob(self.clean_prob or 0.0)} ({moved})"
            )
        if self.is_multi_token:
            hints.append(
                f"the answer is {len(self.answer_tokens)} tokens {fmt_prompt([t.token for t in self.answer_tokens])}: "
                "its prob is their joint prob, its rank the worst of their ranks (per token below)"
            )
        clean = " (on the clean model)" if self.intervention else ""
        hints.append(
            f"check_logit_lens(model, {self.prompt!r}, {self.answer!r}) shows the layer where the answer rises or "
            f"is lost{clean}"
        )
        return hints


def _top_shown(k: int) -> int:
    return min(max(MIN_TOP_SHOWN, k), MAX_TOP_SHOWN)


def describe_prompt(lab: Lab, prompt: Prompt) -> str:
    """A prompt as text for reports: as given, or decoded when it was given as token ids."""
    if isinstance(prompt, str):
        return prompt
    return lab.bridge.tokenizer.decode(lab.tokens(prompt).tolist())


def describe_answer(lab: Lab, answer: Answer, answer_ids: Sequence[int]) -> str:
    """An answer as text for reports: as given, or decoded when it was given as token ids."""
    if isinstance(answer, str):
        return answer
    return lab.bridge.tokenizer.decode(list(answer_ids))


def _resolve_hooks(
    lab: Lab,
    tokens: Int[Tensor, " pos"],
    forced: Sequence[int],
    intervention: InterventionLike | None,
    fwd_hooks: Sequence[FwdHook],
    key: Hashable | None,
) -> tuple[Sequence[FwdHook], Hashable | None, str | None]:
    """The hooks, the memo key and a description, from either an intervention or raw hooks.

    ``forced`` are the answer tokens appended to ``tokens`` by teacher forcing; an intervention whose
    ``fwd_hooks`` takes ``forced=`` (mean and resample ablations align their reference prompts with
    it) gets them.
    """
    if intervention is not None:
        if fwd_hooks:
            raise ValueError(
                "pass either intervention= or fwd_hooks=, not both: the intervention already makes its own hooks"
            )
        make = getattr(intervention, "fwd_hooks", None)
        if not callable(make) or not hasattr(intervention, "key"):
            raise TypeError(
                f"intervention={intervention!r} has no .fwd_hooks(lab, tokens) method and .key attribute; "
                "pass a value from pytest_annotate.interventions.ablations, or raw hooks as fwd_hooks=[(hook_name, fn)]"
            )
        takes_forced = "forced" in inspect.signature(make).parameters
        hooks = make(lab, tokens, forced=tuple(forced)) if takes_forced else make(lab, tokens)
        return tuple(hooks), intervention.key, str(intervention)
    if fwd_hooks:
        return tuple(fwd_hooks), key, f"{len(fwd_hooks)} forward hook(s) on " + ", ".join(n for n, _ in fwd_hooks)
    return (), None, None


def _top_ids(row: Float[Tensor, " vocab"], n: int) -> list[int]:
    """The ids of the ``n`` highest logits, best first; tokens with equal logits in token-id order.

    ``topk`` picks and orders tied tokens arbitrarily (it differs between ``n=5`` and ``n=20`` on one
    row); a flat output's listing should be the same on every run, so ties are resolved by id.
    """
    top = row.topk(min(n, row.shape[-1]))
    if top.values.numel() == 0:
        return []
    cut = top.values[-1]
    if bool(torch.isnan(top.values).any()):
        return top.indices.tolist()
    above = (row > cut).nonzero()[:, 0]
    at_cut = (row == cut).nonzero()[:, 0][: len(top.indices) - len(above)]
    ids = torch.cat([above, at_cut])
    values = row[ids].tolist()
    return [i for _, i in sorted(zip(values, ids.tolist(), strict=True), key=lambda vi: (-vi[0], vi[1]))]


def _top_tokens(lab: Lab, row: Float[Tensor, " vocab"], n: int) -> tuple[TokenScore, ...]:
    log_probs = row.double().log_softmax(-1)
    ids = _top_ids(row, n)
    return tuple(
        TokenScore(lab.to_str([i])[0], i, float(row[i]), float(log_probs[i].exp()))
        for i in ids
    )


def read_prediction(
    lab: Lab,
    prompt: Prompt,
    answer: Answer,
    *,
    top: int = MIN_TOP_SHOWN,
    bos: bool | None = None,
    intervention: InterventionLike | None = None,
    fwd_hooks: Sequence[FwdHook] = (),
    key: Hashable | None = None,
) -> Prediction:
    """Read the model's prediction for ``answer`` after ``prompt``: one memoized forward pass.

    The answer's numbers come from :func:`pytest_annotate.scoring.answers.score_from_logits` (the same
    function every check uses); ``top`` tokens are listed at the answer step with the worst rank.

    >>> p = read_prediction(lab, "1 2 3 4", " 5")                      # doctest: +SKIP
    >>> [t.token for t in p.answer_tokens], p.rank, round(p.prob, 3)   # doctest: +SKIP
    ([' ', '5'], 0, 0.781)
    """
    answer_ids = lab.answer_tokens(answer)
    prompt_len = int(lab.tokens(prompt, bos=bos).shape[0])
    tokens = teacher_forced_tokens(lab, prompt, answer_ids, bos=bos)
    hooks, memo_key, described = _resolve_hooks(lab, tokens, answer_ids[:-1], intervention, fwd_hooks, key)
    logits = lab.run(tokens, fwd_hooks=hooks, key=memo_key)
    score = score_from_logits(logits, prompt_len, answer_ids)
    steps = answer_positions(prompt_len, len(answer_ids))
    answer_tokens = tuple(
        AnswerToken(s, i, r, lg, math.exp(lp), lp)
        for s, i, r, lg, lp in zip(lab.to_str(answer_ids), answer_ids, score.ranks, score.logits, score.logprobs,
                                   strict=True)
    )
    ties = top_tie_size(logits[steps.to(logits.device)], torch.tensor(answer_ids, device=logits.device)).tolist()
    top_step = max(range(len(answer_ids)), key=lambda j: (ties[j] > 0, score.ranks[j], -j))
    respaced = None
    if isinstance(answer, str) and answer.strip():
        variant = answer[1:] if answer.startswith(" ") else " " + answer
        variant_ids = lab.answer_tokens(variant)
        if len(variant_ids) == 1 and variant_ids[0] != answer_ids[0]:
            v = score_from_logits(logits, prompt_len, variant_ids)
            respaced = AnswerToken(lab.to_str(variant_ids)[0], variant_ids[0], v.rank, v.logit, v.joint_prob,
                                   v.joint_logprob)
    clean_rank = clean_prob = None
    if hooks:
        clean = score_from_logits(lab.run(tokens), prompt_len, answer_ids)
        clean_rank, clean_prob = clean.rank, clean.joint_prob
    return Prediction(
        prompt=describe_prompt(lab, prompt),
        prompt_tokens=tuple(lab.str_tokens(prompt, bos=bos)),
        answer=describe_answer(lab, answer, answer_ids),
        answer_tokens=answer_tokens,
        rank=score.rank,
        logit=score.logit,
        prob=score.joint_prob,
        top_step=top_step,
        top_tokens=_top_tokens(lab, logits[int(steps[top_step])], top),
        intervention=described,
        clean_rank=clean_rank,
        clean_prob=clean_prob,
        respaced=respaced,
    )
