"""Prediction checks: is the answer the model's top token, at this rank, this likely, this far ahead?

Each check reads the model's prediction for an answer after a prompt once (one memoized forward
pass, through :mod:`pytest_annotate.scoring.answers`, so every check agrees on every number) and returns a
frozen result whose ``report()`` reads like TransformerLens's old ``test_prompt`` printout:

* :func:`check_top_token` / :func:`assert_top_token`: the answer's rank is below ``k`` (and its
  probability at least ``min_prob``);
* :func:`check_rank` / :func:`assert_rank`: the answer has exactly ``rank``, or at most ``max_rank``;
* :func:`check_prob` / :func:`assert_prob`: the answer's probability lies in ``[min_prob, max_prob]``;
* :func:`check_logit_diff` / :func:`assert_logit_diff`: the answer's logit beats another answer's
  by at least ``min_diff`` (IOI-style claims).

Ranks count ties against the answer (:mod:`pytest_annotate.scoring.ranks`): an answer that ties
with another token for the top logit has rank 1. A **flat** output, where the answer ties with
other tokens for the top logit (zero-ablating the embedding makes all 262,144 of Gemma's logits
0), makes no claim hold: the top-token, rank and probability checks fail on it and say so; the
logit-difference check judges its number as usual and says the output is flat.

Multi-token answers (Gemma splits ``" 5"`` into ``" "`` + ``"5"``) are scored by teacher forcing:
``prob`` is the joint probability of the whole answer and ``rank`` the greedy rank, the worst rank
of any of its tokens at its own step (rank 0 means greedy decoding writes the whole answer).
``logit`` is the first answer token's logit, the number the source notebooks report.

Every check takes an ``intervention`` (any object with ``.fwd_hooks(lab, tokens)`` and a hashable
``.key``, such as the values of :mod:`pytest_annotate.interventions.ablations`) or raw ``fwd_hooks``, so a
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

import math
from collections.abc import Hashable, Sequence
from dataclasses import dataclass, field, fields

from pytest_annotate.errors import PromptError
from pytest_annotate.lab import FwdHook, Lab, Prompt
from pytest_annotate.results import (
    Measurement,
    Result,
    TokenScore,
    asserting,
    fmt_prob,
    fmt_prompt,
    fmt_token,
    hint_lines,
    kind,
    verdict_headline,
)
from pytest_annotate.scoring.answers import (
    score_from_logits,
    teacher_forced_tokens,
)
from pytest_annotate.scoring.ranks import TopTie
from pytest_annotate.scoring.reading import (
    MIN_TOP_SHOWN,
    Answer,
    InterventionLike,
    Prediction,
    _line,
    _resolve_hooks,
    _top_shown,
    _top_tokens,
    describe_answer,
    describe_prompt,
    read_prediction,
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

    def measurements(self) -> tuple[Measurement, ...]:
        has_prob_claim = self.min_prob is not None
        return (
            Measurement("answer rank", self.rank, "<", float(self.k), primary=not has_prob_claim),
            Measurement("answer prob", self.prob, ">=" if has_prob_claim else None, self.min_prob,
                        primary=has_prob_claim),
            Measurement("answer logit", self.logit),
        )

    def report(self) -> str:
        lines = [verdict_headline(self.verdict, self.claim, self.measured())]
        rank_ok = self.rank < self.k
        need = "top-1" if self.k == 1 else f"rank < {self.k}"
        if rank_ok:
            lines.append(f"  measured  {self.measured()} ({need}: ok)")
        else:
            short = self.rank - self.k + 1
            lines.append(f"  measured  {self.measured()}; {short} place{'s' * (short != 1)} short of {need}")
        if not rank_ok or self.is_flat:
            lines += [self.shortfall()] if self.shortfall() else []
        if self.min_prob is not None:
            ok = self.prob >= self.min_prob
            gap = "" if ok else f", {100 * (self.min_prob - self.prob):.2f} points short"
            lines.append(f"  prob      {fmt_prob(self.prob)} (needs >= {fmt_prob(self.min_prob)}{gap})")
        if not self.passed:
            lines += hint_lines(self.next_steps())
        return "\n".join([*lines, "", *self.printout()])


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
    ``min_prob``. A token tied with the answer counts as above it; a flat output (the answer tied
    for the top logit) fails whatever ``k``.

    >>> check_top_token(model, "The capital of Ireland is", " Dublin").passed   # doctest: +SKIP
    True
    """
    _check_k(k)
    _check_prob("min_prob", min_prob)
    p = read_prediction(model, prompt, answer, top=_top_shown(k), bos=bos, intervention=intervention,
                        fwd_hooks=fwd_hooks, key=key)
    passed = p.rank < k and (min_prob is None or p.prob >= min_prob) and not p.is_flat
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

    def measurements(self) -> tuple[Measurement, ...]:
        if self.claimed_rank is not None:
            rank = Measurement("answer rank", self.rank, "==", float(self.claimed_rank), primary=True)
        else:
            rank = Measurement("answer rank", self.rank, "<=" if self.max_rank is not None else None,
                               None if self.max_rank is None else float(self.max_rank), primary=True)
        return (rank, Measurement("answer prob", self.prob), Measurement("answer logit", self.logit))

    def report(self) -> str:
        lines = [verdict_headline(self.verdict, self.claim, f"rank {self.rank}")]
        measured = f"  measured  {self.measured()}"
        if not self.passed and not self.is_flat:
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

    Ranks start at 0 (the top-1 token); for a multi-token answer the rank is the greedy rank. A
    token tied with the answer counts as above it; a flat output (the answer tied for the top
    logit) fails whatever the claimed rank.

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
    passed = (p.rank == rank if rank is not None else p.rank <= (max_rank or 0)) and not p.is_flat
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

    def measurements(self) -> tuple[Measurement, ...]:
        out = []
        if self.min_prob is not None:
            out.append(Measurement("answer prob", self.prob, ">=", self.min_prob, primary=True))
        if self.max_prob is not None:
            out.append(Measurement("answer prob", self.prob, "<=", self.max_prob, primary=not out))
        if not out:
            out.append(Measurement("answer prob", self.prob, primary=True))
        return (*out, Measurement("answer rank", self.rank), Measurement("answer logit", self.logit))

    def report(self) -> str:
        joint = "joint " if self.is_multi_token else ""
        lines = [verdict_headline(self.verdict, self.claim, f"{joint}prob {fmt_prob(self.prob)}")]
        measured = f"  measured  {self.measured()} (log-prob {self.log_prob:.3f})"
        if self.min_prob is not None and self.prob < self.min_prob:
            measured += f"; {100 * (self.min_prob - self.prob):.2f} points below {fmt_prob(self.min_prob)}"
        if self.max_prob is not None and self.prob > self.max_prob:
            measured += f"; {100 * (self.prob - self.max_prob):.2f} points above {fmt_prob(self.max_prob)}"
        lines.append(measured)
        if not self.passed:
            if self.rank > 0 or self.is_flat:
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

    A flat output (the answer tied for the top logit, e.g. every logit 0) fails either bound: its
    probability (1 / vocabulary size) measures nothing about the answer.

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
    passed = (min_prob is None or p.prob >= min_prob) and (max_prob is None or p.prob <= max_prob) and not p.is_flat
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

    On a flat output (either token tied with others for the top logit, :attr:`top_tie`) the
    difference is judged as usual, and the report says the output is flat: a difference of
    exactly 0 between tied tokens is no evidence of anything.
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
    def top_tie(self) -> TopTie | None:
        """The flat output, if the answer or the other token ties with other tokens for the top logit.

        Read off the fields: the token's logit equals the top logit, and its rank (other tokens at
        least as high) is the number of tokens it ties with.
        """
        if not self.top_tokens:
            return None
        top = self.top_tokens[0].logit
        for rank, logit in ((self.answer_rank, self.answer_logit), (self.other_rank, self.other_logit)):
            if rank > 0 and logit == top:
                return TopTie(n=rank + 1, logit=logit)
        return None

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

    def measurements(self) -> tuple[Measurement, ...]:
        name = f"logit({self.answer!r}) − logit({self.other!r})"
        out = []
        if self.min_diff is not None:
            out.append(Measurement(name, self.logit_diff, ">=", self.min_diff, primary=True))
        if self.max_diff is not None:
            out.append(Measurement(name, self.logit_diff, "<=", self.max_diff, primary=not out))
        if not out:
            out.append(Measurement(name, self.logit_diff, primary=True))
        return (*out, Measurement("answer rank", self.answer_rank), Measurement("answer prob", self.answer_prob))

    def report(self) -> str:
        lines = [verdict_headline(self.verdict, self.claim, f"logit diff {self.logit_diff:.2f}")]
        measured = (
            f"  measured  {self.logit_diff:.2f} = {self.answer_logit:.2f} ({fmt_token(self.answer_token)}, rank "
            f"{self.answer_rank}) - {self.other_logit:.2f} ({fmt_token(self.other_token)}, rank {self.other_rank})"
        )
        if self.min_diff is not None and self.logit_diff < self.min_diff:
            measured += f"; {self.min_diff - self.logit_diff:.2f} short of {self.min_diff:g}"
        if self.max_diff is not None and self.logit_diff > self.max_diff:
            measured += f"; {self.logit_diff - self.max_diff:.2f} above {self.max_diff:g}"
        lines.append(measured)
        tie = self.top_tie
        if tie is not None:
            tied = [fmt_token(t) for t, r, lg in ((self.answer_token, self.answer_rank, self.answer_logit),
                                                  (self.other_token, self.other_rank, self.other_logit))
                    if lg == tie.logit and r > 0]
            among = f"{' and '.join(tied)} {'are' if len(tied) > 1 else 'is'} among them"
            lines.append(f"  flat      {tie.message()}. {among}: the logit difference is judged as measured, but a "
                         "difference to a token tied for the top is no evidence of anything")
        if not self.passed:
            hints = []
            if self.clean_logit_diff is not None:
                hints.append(f"the clean model's logit diff is {self.clean_logit_diff:.2f}")
            if tie is None and self.top_tokens and self.top_tokens[0].token_id not in (
                    self.answer_token_id, self.other_token_id):
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
