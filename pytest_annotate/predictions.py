"""Prediction checks: is the answer the model's top token, at this rank, this likely, this far ahead?

Each check reads the model's prediction for an answer after a prompt once (one memoized forward
pass, through :mod:`pytest_annotate.scoring`, so every check agrees on every number) and returns a
frozen result whose ``report()`` reads like TransformerLens's old ``test_prompt`` printout:

* :func:`check_top_token` / :func:`assert_top_token`: the answer's rank is below ``k`` (and its
  probability at least ``min_prob``);
* :func:`check_rank` / :func:`assert_rank`: the answer has exactly ``rank``, or at most ``max_rank``;
* :func:`check_prob` / :func:`assert_prob`: the answer's probability lies in ``[min_prob, max_prob]``;
* :func:`check_logit_diff` / :func:`assert_logit_diff`: the answer's logit beats another answer's
  by at least ``min_diff`` (IOI-style claims).

Multi-token answers (Gemma splits ``" 5"`` into ``" "`` + ``"5"``) are scored by teacher forcing:
``prob`` is the joint probability of the whole answer and ``rank`` the greedy rank, the worst rank
of any of its tokens at its own step (rank 0 means greedy decoding writes the whole answer).
``logit`` is the first answer token's logit, the number the source notebooks report.

Every check takes an ``intervention`` (any object with ``.fwd_hooks(lab, tokens)`` and a hashable
``.key``, such as the values of :mod:`pytest_annotate.interventions`) or raw ``fwd_hooks``, so a
claim about an ablated model is one line:

>>> assert_top_token(model, "1 2 3 4", " 5", intervention=keep("L0-L9"))      # doctest: +SKIP
>>> result = check_top_token(model, "January February March April", " May")   # doctest: +SKIP
>>> result.rank, round(result.prob, 4)                                        # doctest: +SKIP
(0, 0.2929)
>>> print(result)                                                             # doctest: +SKIP
PASSED  ' May' is top-1 after 'January February March April'
...
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Hashable, Sequence
from dataclasses import dataclass, field, fields
from typing import Protocol, runtime_checkable

from jaxtyping import Float, Int
from torch import Tensor

from pytest_annotate.errors import PromptError
from pytest_annotate.lab import FwdHook, Lab, Prompt
from pytest_annotate.results import Result, TokenScore, asserting, fmt_prob, fmt_prompt, fmt_token, kind
from pytest_annotate.scoring import answer_positions, score_from_logits, teacher_forced_tokens

Answer = str | int | Sequence[int]
"""An answer: text (may tokenize to several tokens), a token id, or token ids."""

#: The fewest and the most top tokens a report lists (TransformerLens's test_prompt printed 10).
MIN_TOP_SHOWN = 5
MAX_TOP_SHOWN = 20


@runtime_checkable
class InterventionLike(Protocol):
    """What the checks need from an intervention: hooks for a token sequence, and a memo key.

    :mod:`pytest_annotate.interventions` provides frozen, hashable values of this shape; any
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
    """Greedy rank: the worst rank of any answer token at its step (0 = greedy decoding gives the answer)."""
    logit: float
    """The first answer token's logit."""
    prob: float
    """The joint probability of the whole answer."""
    top_step: int
    """The answer step whose top tokens are listed: the one with the worst rank (0 = right after the prompt)."""
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
        """Where the answer lost, for a failure message: ``lost at``/``beaten by`` and what won."""
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
                "pass a value from pytest_annotate.interventions, or raw hooks as fwd_hooks=[(hook_name, fn)]"
            )
        takes_forced = "forced" in inspect.signature(make).parameters
        hooks = make(lab, tokens, forced=tuple(forced)) if takes_forced else make(lab, tokens)
        return tuple(hooks), intervention.key, str(intervention)
    if fwd_hooks:
        return tuple(fwd_hooks), key, f"{len(fwd_hooks)} forward hook(s) on " + ", ".join(n for n, _ in fwd_hooks)
    return (), None, None


def _top_tokens(lab: Lab, row: Float[Tensor, " vocab"], n: int) -> tuple[TokenScore, ...]:
    log_probs = row.double().log_softmax(-1)
    top = row.topk(n)
    return tuple(
        TokenScore(lab.to_str([i])[0], int(i), float(v), float(log_probs[i].exp()))
        for v, i in zip(top.values.tolist(), top.indices.tolist(), strict=True)
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

    The answer's numbers come from :func:`pytest_annotate.scoring.score_from_logits` (the same
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
    top_step = max(range(len(answer_ids)), key=lambda j: (score.ranks[j], -j))
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


# --------------------------------------------------------------------------- argument checks


def _check_k(k: int) -> None:
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise ValueError(f"k={k!r} is not a valid top-k: give a whole number >= 1 (k=1 means the answer is top-1)")


def _check_prob(name: str, p: float | None) -> None:
    if p is None:
        return
    if isinstance(p, bool) or not isinstance(p, (int, float)) or math.isnan(p) or not 0.0 <= p <= 1.0:
        percent = f" ({name}={p} looks like a percentage: {name}={p / 100:g}?)" if (
            isinstance(p, (int, float)) and not isinstance(p, bool) and 1 < p <= 100) else ""
        raise ValueError(f"{name}={p!r} is not a probability: give a number between 0 and 1, e.g. {name}=0.5 "
                         f"for 50%{percent}")


def _check_rank_value(name: str, r: int | None) -> None:
    if r is None:
        return
    if isinstance(r, bool) or not isinstance(r, int) or r < 0:
        raise ValueError(f"{name}={r!r} is not a rank: give a whole number >= 0 (rank 0 is the top-1 token)")


# --------------------------------------------------------------------------- top token


@dataclass(frozen=True, eq=False, kw_only=True)
class TopTokenResult(Prediction, Result):
    """Verdict of :func:`check_top_token`: is the answer in the top ``k`` (with prob >= ``min_prob``)?"""

    k: int
    min_prob: float | None = None
    passed: bool

    @property
    def claim(self) -> str:
        where = "top-1" if self.k == 1 else f"in the top {self.k}"
        prob = f" with prob >= {fmt_prob(self.min_prob)}" if self.min_prob is not None else ""
        return f"{self.answer!r} is {where}{prob} {self.where()}"

    def report(self) -> str:
        lines = [verdict_headline(self.passed, self.claim, self.measured())]
        rank_ok = self.rank < self.k
        need = "top-1" if self.k == 1 else f"rank < {self.k}"
        if rank_ok:
            lines.append(f"  measured  {self.measured()} ({need}: ok)")
        else:
            short = self.rank - self.k + 1
            lines.append(f"  measured  {self.measured()}; {short} place{'s' * (short != 1)} short of {need}")
            lines += [self.shortfall()] if self.shortfall() else []
        if self.min_prob is not None:
            ok = self.prob >= self.min_prob
            gap = "" if ok else f", {100 * (self.min_prob - self.prob):.2f} points short"
            lines.append(f"  prob      {fmt_prob(self.prob)} (needs >= {fmt_prob(self.min_prob)}{gap})")
        if not self.passed:
            lines += hint_lines(self.next_steps())
        return "\n".join([*lines, "", *self.printout()])


def verdict_headline(passed: bool, claim: str, measured: str) -> str:
    """The report's first line, also pytest's one-line summary of a failure: verdict, claim, key number."""
    return f"{'PASSED' if passed else 'FAILED'}  {claim}: {measured}"


def hint_lines(hints: list[str]) -> list[str]:
    return [f"  {'next' if i == 0 else '':<8}  {h}" for i, h in enumerate(hints)]


def check_top_token(
    model: Lab,
    prompt: Prompt,
    answer: Answer,
    *,
    k: int = 1,
    min_prob: float | None = None,
    bos: bool | None = None,
    intervention: InterventionLike | None = None,
    fwd_hooks: Sequence[FwdHook] = (),
    key: Hashable | None = None,
) -> TopTokenResult:
    """Is ``answer`` among the model's top ``k`` tokens after ``prompt``?

    Passes when the answer's greedy rank is below ``k`` (for a multi-token answer: every token is in
    the top ``k`` at its own step) and, if ``min_prob`` is given, its joint probability is at least
    ``min_prob``.

    >>> check_top_token(model, "The capital of Ireland is", " Dublin").passed   # doctest: +SKIP
    True
    """
    _check_k(k)
    _check_prob("min_prob", min_prob)
    p = read_prediction(model, prompt, answer, top=_top_shown(k), bos=bos, intervention=intervention,
                        fwd_hooks=fwd_hooks, key=key)
    passed = p.rank < k and (min_prob is None or p.prob >= min_prob)
    return TopTokenResult(**_fields(p), k=k, min_prob=None if min_prob is None else float(min_prob), passed=passed)


assert_top_token = asserting(
    check_top_token,
    "assert_top_token",
    """Assert that ``answer`` is among the top ``k`` tokens after ``prompt`` (see :func:`check_top_token`).

Raises :class:`~pytest_annotate.errors.VerdictError` with the report when it is not; returns
the result when it is.

>>> assert_top_token(model, "January February March April", " May")   # doctest: +SKIP
>>> assert_top_token(model, "1 2 3 4", " 5", min_prob=0.5)             # doctest: +SKIP
""",
)


def _fields(p: Prediction) -> dict[str, object]:
    """A prediction's fields, to build a result that extends it."""
    return {f.name: getattr(p, f.name) for f in fields(Prediction)}


# --------------------------------------------------------------------------- rank


@dataclass(frozen=True, eq=False, kw_only=True)
class RankResult(Prediction, Result):
    """Verdict of :func:`check_rank`: does the answer have exactly ``claimed_rank`` / at most ``max_rank``?"""

    claimed_rank: int | None = None
    max_rank: int | None = None
    passed: bool

    @property
    def claim(self) -> str:
        what = f"has rank {self.claimed_rank}" if self.claimed_rank is not None else f"has rank <= {self.max_rank}"
        return f"{self.answer!r} {what} {self.where()}"

    def report(self) -> str:
        lines = [verdict_headline(self.passed, self.claim, f"rank {self.rank}")]
        measured = f"  measured  {self.measured()}"
        if not self.passed:
            if self.claimed_rank is not None:
                off = self.rank - self.claimed_rank
                measured += (f"; the answer ranks {abs(off)} place{'s' * (abs(off) != 1)} "
                             f"{'worse' if off > 0 else 'better'} than the claimed rank {self.claimed_rank}")
            else:
                off = self.rank - (self.max_rank or 0)
                measured += f"; {off} place{'s' * (off != 1)} worse than the allowed rank {self.max_rank}"
        lines.append(measured)
        if not self.passed:
            lines += [self.shortfall()] if self.shortfall() else []
            lines += hint_lines(self.next_steps())
        return "\n".join([*lines, "", *self.printout()])


def check_rank(
    model: Lab,
    prompt: Prompt,
    answer: Answer,
    *,
    rank: int | None = None,
    max_rank: int | None = None,
    bos: bool | None = None,
    intervention: InterventionLike | None = None,
    fwd_hooks: Sequence[FwdHook] = (),
    key: Hashable | None = None,
) -> RankResult:
    """Does ``answer`` have exactly ``rank`` (or at most ``max_rank``) after ``prompt``? Give one of the two.

    Ranks start at 0 (the top-1 token); for a multi-token answer the rank is the greedy rank.

    >>> check_rank(model, "January February March April", " May", rank=0).passed   # doctest: +SKIP
    True
    """
    if (rank is None) == (max_rank is None):
        raise ValueError(
            f"give exactly one of rank= (an exact rank, e.g. rank=4) and max_rank= (rank at most, e.g. max_rank=4); "
            f"got rank={rank!r}, max_rank={max_rank!r}"
        )
    _check_rank_value("rank", rank)
    _check_rank_value("max_rank", max_rank)
    shown = _top_shown(1 + (rank if rank is not None else max_rank or 0))
    p = read_prediction(model, prompt, answer, top=shown, bos=bos, intervention=intervention,
                        fwd_hooks=fwd_hooks, key=key)
    passed = p.rank == rank if rank is not None else p.rank <= (max_rank or 0)
    return RankResult(**_fields(p), claimed_rank=rank, max_rank=max_rank, passed=passed)


assert_rank = asserting(
    check_rank,
    "assert_rank",
    """Assert the answer's exact ``rank`` or its ``max_rank`` (see :func:`check_rank`).

>>> assert_rank(model, "1 2 3 4", " 5", rank=4, intervention=keep("L0-L7"))   # doctest: +SKIP
""",
)


# --------------------------------------------------------------------------- probability


@dataclass(frozen=True, eq=False, kw_only=True)
class ProbResult(Prediction, Result):
    """Verdict of :func:`check_prob`: is the answer's (joint) probability within ``[min_prob, max_prob]``?"""

    min_prob: float | None = None
    max_prob: float | None = None
    passed: bool

    @property
    def claim(self) -> str:
        if self.min_prob is not None and self.max_prob is not None:
            bound = f"between {fmt_prob(self.min_prob)} and {fmt_prob(self.max_prob)}"
        elif self.min_prob is not None:
            bound = f">= {fmt_prob(self.min_prob)}"
        else:
            bound = f"<= {fmt_prob(self.max_prob or 0.0)}"
        joint = "joint prob" if self.is_multi_token else "prob"
        return f"{self.answer!r} has {joint} {bound} {self.where()}"

    def report(self) -> str:
        joint = "joint " if self.is_multi_token else ""
        lines = [verdict_headline(self.passed, self.claim, f"{joint}prob {fmt_prob(self.prob)}")]
        measured = f"  measured  {self.measured()} (log-prob {self.log_prob:.3f})"
        if self.min_prob is not None and self.prob < self.min_prob:
            measured += f"; {100 * (self.min_prob - self.prob):.2f} points below {fmt_prob(self.min_prob)}"
        if self.max_prob is not None and self.prob > self.max_prob:
            measured += f"; {100 * (self.prob - self.max_prob):.2f} points above {fmt_prob(self.max_prob)}"
        lines.append(measured)
        if not self.passed:
            if self.rank > 0:
                lines += [self.shortfall()] if self.shortfall() else []
            lines += hint_lines(self.next_steps())
        return "\n".join([*lines, "", *self.printout()])


def check_prob(
    model: Lab,
    prompt: Prompt,
    answer: Answer,
    *,
    min_prob: float | None = None,
    max_prob: float | None = None,
    bos: bool | None = None,
    intervention: InterventionLike | None = None,
    fwd_hooks: Sequence[FwdHook] = (),
    key: Hashable | None = None,
) -> ProbResult:
    """Is the answer's probability (joint, for a multi-token answer) at least ``min_prob`` / at most ``max_prob``?

    >>> check_prob(model, "1 2 3 4", " 5", min_prob=0.5).passed   # doctest: +SKIP
    True
    """
    if min_prob is None and max_prob is None:
        raise ValueError("give min_prob=, max_prob= or both (probabilities between 0 and 1, e.g. min_prob=0.5)")
    _check_prob("min_prob", min_prob)
    _check_prob("max_prob", max_prob)
    if min_prob is not None and max_prob is not None and min_prob > max_prob:
        raise ValueError(f"min_prob={min_prob} is above max_prob={max_prob}: no probability can satisfy both")
    p = read_prediction(model, prompt, answer, bos=bos, intervention=intervention, fwd_hooks=fwd_hooks, key=key)
    passed = (min_prob is None or p.prob >= min_prob) and (max_prob is None or p.prob <= max_prob)
    return ProbResult(
        **_fields(p),
        min_prob=None if min_prob is None else float(min_prob),
        max_prob=None if max_prob is None else float(max_prob),
        passed=passed,
    )


assert_prob = asserting(
    check_prob,
    "assert_prob",
    """Assert bounds on the answer's probability (see :func:`check_prob`).

>>> assert_prob(model, "A B C D", " E", min_prob=0.5)   # doctest: +SKIP
""",
)


# --------------------------------------------------------------------------- logit difference


@dataclass(frozen=True, eq=False, kw_only=True)
class LogitDiffResult(Result):
    """Verdict of :func:`check_logit_diff`: ``logit(answer) - logit(other)`` against ``min_diff`` / ``max_diff``.

    The two answers are compared at their first token that differs (their first tokens, unless they
    share a prefix such as Gemma's ``" "`` in ``" 5"`` and ``" 6"``; a shared prefix is fed to the model
    first). Logit differences do not depend on the per-position shift of ``center_unembed``, so
    they agree between ``compat`` and ``raw`` processing up to numerics.
    """

    prompt: str
    prompt_tokens: tuple[str, ...]
    answer: str
    other: str
    shared_prefix: tuple[str, ...]
    """Answer tokens both share, fed to the model before comparing (usually empty)."""
    answer_token: str
    answer_token_id: int
    other_token: str
    other_token_id: int
    answer_logit: float
    other_logit: float
    logit_diff: float
    answer_rank: int
    other_rank: int
    answer_prob: float
    other_prob: float
    top_tokens: tuple[TokenScore, ...]
    min_diff: float | None = field(default=None, metadata=kind("logit"))
    max_diff: float | None = field(default=None, metadata=kind("logit"))
    intervention: str | None = None
    clean_logit_diff: float | None = None
    passed: bool

    @property
    def claim(self) -> str:
        if self.min_diff is not None and self.max_diff is not None:
            bound = f"between {self.min_diff:g} and {self.max_diff:g}"
        elif self.min_diff is not None:
            bound = f">= {self.min_diff:g}"
        else:
            bound = f"<= {self.max_diff:g}"
        under = f", under {self.intervention}" if self.intervention else ""
        return f"logit({self.answer!r}) - logit({self.other!r}) {bound} after {self.prompt!r}{under}"

    def report(self) -> str:
        lines = [verdict_headline(self.passed, self.claim, f"logit diff {self.logit_diff:.2f}")]
        measured = (
            f"  measured  {self.logit_diff:.2f} = {self.answer_logit:.2f} ({fmt_token(self.answer_token)}, rank "
            f"{self.answer_rank}) - {self.other_logit:.2f} ({fmt_token(self.other_token)}, rank {self.other_rank})"
        )
        if self.min_diff is not None and self.logit_diff < self.min_diff:
            measured += f"; {self.min_diff - self.logit_diff:.2f} short of {self.min_diff:g}"
        if self.max_diff is not None and self.logit_diff > self.max_diff:
            measured += f"; {self.logit_diff - self.max_diff:.2f} above {self.max_diff:g}"
        lines.append(measured)
        if not self.passed:
            hints = []
            if self.clean_logit_diff is not None:
                hints.append(f"the clean model's logit diff is {self.clean_logit_diff:.2f}")
            if self.top_tokens and self.top_tokens[0].token_id not in (self.answer_token_id, self.other_token_id):
                t = self.top_tokens[0]
                hints.append(
                    f"neither answer is top-1: {fmt_token(t.token)} is, at {fmt_prob(t.prob)}; check the prompt ends "
                    "where the answer should come"
                )
            hints.append(f"check_logit_lens(model, {self.prompt!r}, {self.answer!r}) shows where the answer rises")
            lines += hint_lines(hints)
        printout = [
            f"Tokenized prompt: {fmt_prompt(self.prompt_tokens)}",
            f"Compared tokens: {fmt_token(self.answer_token)} vs {fmt_token(self.other_token)}"
            + (f" (after the shared answer prefix {fmt_prompt(self.shared_prefix)})" if self.shared_prefix else ""),
        ]
        if self.intervention:
            printout.append(f"Intervention: {self.intervention}")
        printout += [
            _line(self.answer_token, self.answer_rank, self.answer_logit, self.answer_prob),
            _line(self.other_token, self.other_rank, self.other_logit, self.other_prob),
            *(s.line(i) for i, s in enumerate(self.top_tokens)),
        ]
        return "\n".join([*lines, "", *printout])


def _divergence(lab: Lab, answer: Answer, other: Answer) -> tuple[tuple[int, ...], int, int]:
    """The shared token prefix of two answers and their first differing tokens."""
    a, b = lab.answer_tokens(answer), lab.answer_tokens(other)
    n = 0
    while n < min(len(a), len(b)) and a[n] == b[n]:
        n += 1
    if n == len(a) or n == len(b):
        same = "the same tokens" if a == b else "tokens where one is a prefix of the other"
        raise PromptError(
            f"answer {answer!r} {lab.to_str(a)} and other {other!r} {lab.to_str(b)} are {same}: there is no token "
            "where they differ, so no logit difference to measure; compare two different continuations"
        )
    return a[:n], a[n], b[n]


def check_logit_diff(
    model: Lab,
    prompt: Prompt,
    answer: Answer,
    other: Answer,
    *,
    min_diff: float | None = None,
    max_diff: float | None = None,
    bos: bool | None = None,
    intervention: InterventionLike | None = None,
    fwd_hooks: Sequence[FwdHook] = (),
    key: Hashable | None = None,
) -> LogitDiffResult:
    """Is ``logit(answer) - logit(other)`` at least ``min_diff`` (at most ``max_diff``) after ``prompt``?

    >>> r = check_logit_diff(model, "When Mary and John went to the store, John gave a drink to",
    ...                      " Mary", " John", min_diff=1.0)                                 # doctest: +SKIP
    >>> r.passed, round(r.logit_diff, 2)                                                   # doctest: +SKIP
    (True, 3.9)
    """
    if min_diff is None and max_diff is None:
        raise ValueError("give min_diff=, max_diff= or both (logit differences, e.g. min_diff=2.0)")
    for name, value in (("min_diff", min_diff), ("max_diff", max_diff)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(value)):
            raise ValueError(f"{name}={value!r} is not a number: give a logit difference such as {name}=2.0")
    if min_diff is not None and max_diff is not None and min_diff > max_diff:
        raise ValueError(f"min_diff={min_diff} is above max_diff={max_diff}: no logit difference can satisfy both")
    prefix, a_id, b_id = _divergence(model, answer, other)
    prompt_len = int(model.tokens(prompt, bos=bos).shape[0])
    tokens = teacher_forced_tokens(model, prompt, (*prefix, a_id), bos=bos)
    hooks, memo_key, described = _resolve_hooks(model, tokens, prefix, intervention, fwd_hooks, key)
    row = model.run(tokens, fwd_hooks=hooks, key=memo_key)[prompt_len - 1 + len(prefix)]
    sa, sb = (score_from_logits(row[None], 1, (i,)) for i in (a_id, b_id))
    diff = sa.logit - sb.logit
    clean_diff = None
    if hooks:
        clean_row = model.run(tokens)[prompt_len - 1 + len(prefix)]
        clean_diff = float(clean_row[a_id].double() - clean_row[b_id].double())
    passed = (min_diff is None or diff >= min_diff) and (max_diff is None or diff <= max_diff)
    return LogitDiffResult(
        prompt=describe_prompt(model, prompt),
        prompt_tokens=tuple(model.str_tokens(prompt, bos=bos)),
        answer=describe_answer(model, answer, model.answer_tokens(answer)),
        other=describe_answer(model, other, model.answer_tokens(other)),
        shared_prefix=tuple(model.to_str(prefix)),
        answer_token=model.to_str([a_id])[0],
        answer_token_id=a_id,
        other_token=model.to_str([b_id])[0],
        other_token_id=b_id,
        answer_logit=sa.logit,
        other_logit=sb.logit,
        logit_diff=diff,
        answer_rank=sa.rank,
        other_rank=sb.rank,
        answer_prob=sa.joint_prob,
        other_prob=sb.joint_prob,
        top_tokens=_top_tokens(model, row, MIN_TOP_SHOWN),
        min_diff=None if min_diff is None else float(min_diff),
        max_diff=None if max_diff is None else float(max_diff),
        intervention=described,
        clean_logit_diff=clean_diff,
        passed=passed,
    )


assert_logit_diff = asserting(
    check_logit_diff,
    "assert_logit_diff",
    """Assert bounds on ``logit(answer) - logit(other)`` (see :func:`check_logit_diff`).

>>> assert_logit_diff(model, "When Mary and John went to the store, John gave a drink to",
...                   " Mary", " John", min_diff=1.0)                                    # doctest: +SKIP
""",
)
