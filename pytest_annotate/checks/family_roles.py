"""Head roles and the residual-stream decomposition over many inputs, judged with intervals.

The single-input checks :func:`~pytest_annotate.checks.head_roles.check_head_role` and
:func:`~pytest_annotate.checks.decomposition.check_decomposition` judge one draw of inputs, one
prompt. Their family twins judge many, with the verdicts of every family claim (``holds``,
``fails``, ``inconclusive``; :mod:`pytest_annotate.checks.families`):

* :func:`check_head_role_family`: a head's role over several random draws of repeated random
  tokens (one :class:`~pytest_annotate.scoring.head_scores.RepeatedRandomTokens` draw per seed):
  its mean score with a bootstrap interval over the seeds, **and** the rate of seeds on which it
  is among the ``top_k`` heads, with a Clopper-Pearson interval (the other heads are its control);
* :func:`check_decomposition_family`: the residual-stream identities on every judged item of a
  family (a rate with a Clopper-Pearson interval; by default a claim about *every* item).

Both return a :class:`~pytest_annotate.checks.families.FamilyResult`, so the terminal summary,
report.json, the trajectories and the snapshots treat them as the other family claims.

>>> r = check_head_role_family(lab, "L1H0", "induction", min_score=0.8,
...                            inputs=RepeatedRandomTokens(n=15, batch=8))        # doctest: +SKIP
>>> r.verdict, r.n, round(r.low, 3), r.parts[1].k                                 # doctest: +SKIP
('holds', 8, 0.894, 8)
>>> assert_decomposition_family(lab, windows("months-w4", "months", 4))          # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from pytest_annotate.checks.decomposition import check_decomposition
from pytest_annotate.checks.families import (
    _SPLIT_WORDS,
    FamilyResult,
    Split,
    _common,
    _judged_items,
    _rate_args,
)
from pytest_annotate.checks.head_roles import _ordinal
from pytest_annotate.families import Family
from pytest_annotate.interventions.heads import HeadSpec, head_name, parse_head
from pytest_annotate.results import Measurement, Verdict, asserting, kind
from pytest_annotate.scoring.decomposition import DEFAULT_TOP_K
from pytest_annotate.scoring.head_scores import (
    ROLE_DEFINITIONS,
    RepeatedRandomTokens,
    Role,
    RoleError,
    check_role,
    head_scores,
)
from pytest_annotate.stats import (
    Interval,
    Judgement,
    bootstrap_interval,
    judge,
    rate_interval,
)

if TYPE_CHECKING:
    from pytest_annotate.lab import Lab

#: The default draws of a head-role family: 8 seeds of :class:`RepeatedRandomTokens`.
DEFAULT_SEEDS: tuple[int, ...] = tuple(range(8))
#: How many of the best heads (by mean score over the seeds) a head-role family report lists.
SHOWN_HEADS = 5


def conjoin(verdicts: Iterable[Verdict]) -> Verdict:
    """The verdict of a conjunction of claims: ``fails`` if any part fails, ``holds`` if every part
    holds, else ``inconclusive`` (the intersection-union rule: no correction for the number of parts).

    >>> conjoin(["holds", "holds"]), conjoin(["holds", "inconclusive"]), conjoin(["inconclusive", "fails"])
    ('holds', 'inconclusive', 'fails')
    """
    seen = list(verdicts)
    if "fails" in seen:
        return "fails"
    return "holds" if all(v == "holds" for v in seen) else "inconclusive"


# --------------------------------------------------------------------------- head roles over seeds


@dataclass(frozen=True)
class SeedOutcome:
    """One seed's draw: the head's score and rank in that draw's score table, and whether it meets the claim."""

    seed: int
    ok: bool
    """The draw on its own meets every stated part of the claim (score ≥ min_score, rank < top_k)."""
    score: float = field(metadata=kind("prob"))
    rank: int
    """Other heads scoring at least as high in this draw (0 = strictly the top head; ties count against)."""
    top_heads: tuple[tuple[str, float], ...] = ()
    """This draw's 3 best heads, best first."""

    @property
    def value(self) -> float:
        """The head's score (what a family item's ``value`` is for other family claims)."""
        return self.score

    def line(self, n_heads: int) -> str:
        best = ", ".join(f"{name} {value:.4g}" for name, value in self.top_heads)
        return f"seed {self.seed}: score {self.score:.4g}, {_ordinal(self.rank + 1)} of {n_heads} heads (top: {best})"


@dataclass(frozen=True)
class ClaimPart:
    """One part of a conjunctive claim, with its own interval and outcome (``holds``/``fails``/``inconclusive``)."""

    part: str
    """``score`` (the mean score, bootstrap) or ``rank`` (the top-k rate over seeds, Clopper-Pearson)."""
    label: str
    threshold: float = field(metadata=kind("float"))
    estimate: float = field(metadata=kind("prob"))
    low: float = field(metadata=kind("prob"))
    high: float = field(metadata=kind("prob"))
    method: str
    confidence: float = field(metadata=kind("float"))
    n: int
    k: int | None = None
    note: str = ""
    outcome: Verdict = "fails"
    """This part's verdict alone (not named ``verdict``: the result's own verdict is the one a snapshot's drift reads)."""
    more_seeds: int | None = None

    @property
    def interval(self) -> Interval:
        return Interval(self.low, self.high, self.method, self.confidence, self.estimate, n=self.n, k=self.k,
                        label=self.label, items="seeds", note=self.note)

    @property
    def judgement(self) -> Judgement:
        return judge(self.interval, self.threshold, ">=")

    @classmethod
    def judged(cls, part: str, interval: Interval, threshold: float) -> ClaimPart:
        j = judge(interval, threshold, ">=")
        return cls(part=part, label=interval.label, threshold=float(threshold), estimate=interval.estimate,
                   low=interval.low, high=interval.high, method=interval.method, confidence=interval.confidence,
                   n=int(interval.n or 0), k=interval.k, note=interval.note, outcome=j.verdict,
                   more_seeds=j.more_items)


@dataclass(frozen=True, eq=False, kw_only=True)
class HeadRoleFamilyResult(FamilyResult):
    """A head's role over several random draws (seeds): a conjunction of a score part and a rank part.

    ``parts`` holds each stated part with its interval and outcome; the result's own interval
    (``estimate``/``low``/``high``, what the report, report.json and the trajectories read) is the
    first part's: the mean score's when ``min_score`` is given, else the top-k rate's. ``items``
    holds one :class:`SeedOutcome` per seed.
    """

    head: str
    role: str
    inputs: str
    """The draws, in words: ``BOS + 15 random ordinary tokens ×2, batch 8, seeds 0-7``."""
    seeds: tuple[int, ...]
    min_score: float | None = None
    top_k: int | None = None
    min_rate: float | None = None
    parts: tuple[ClaimPart, ...] = ()
    n_heads_total: int
    mean_top_heads: tuple[tuple[str, float], ...] = ()
    """The best heads by their mean score over the seeds, best first."""
    items: tuple[SeedOutcome, ...] = ()  # type: ignore[assignment]  # one per seed, not per prompt

    @property
    def interval(self) -> Interval:
        return self.parts[0].interval if self.parts else super().interval

    def part(self, name: str) -> ClaimPart | None:
        """The ``score`` or ``rank`` part, or None when the claim does not state it."""
        return next((p for p in self.parts if p.part == name), None)

    @property
    def claim(self) -> str:
        words = self.role.replace("_", "-")
        article = "an" if words[0] in "aeiou" else "a"
        return f"{self.head} is {article} {words} head on {self.model_id} over {self.n} random draws: {self.subject}"

    def measured(self) -> str:
        out = []
        for p in self.parts:
            iv = p.interval
            if iv.is_rate:
                out.append(f"{p.label} on {p.k}/{p.n} seeds = {iv.fmt(p.estimate)} [{iv.fmt(p.low)}, {iv.fmt(p.high)}]")
            else:
                out.append(f"mean score {p.estimate:.4g} [{p.low:.4g}, {p.high:.4g}]")
        return ", ".join(out)

    def measurements(self) -> tuple[Measurement, ...]:
        out = []
        for i, p in enumerate(self.parts):
            name = f"{self.head} {self.role} {p.label} seed rate" if p.part == "rank" else f"mean {self.head} {self.role} score"
            out += [
                Measurement(name, p.estimate, ">=", p.threshold, primary=i == 0),
                Measurement(f"{name} interval low", p.low),
                Measurement(f"{name} interval high", p.high),
            ]
        out.append(Measurement("seeds", self.n))
        return tuple(out)

    def failing(self) -> tuple[SeedOutcome, ...]:  # type: ignore[override]
        """The seeds whose draw misses the claim on its own, worst first (lowest score, then worst rank)."""
        return tuple(sorted((o for o in self.items if not o.ok), key=lambda o: (o.score, -o.rank)))

    def report(self) -> str:
        tails = [f"the {p.part} part {p.outcome}" for p in self.parts]
        rule = "" if len(self.parts) < 2 else " (a conjunction: it holds when every part holds, fails when any fails)"
        lines = [self.headline(), f"  {'verdict':<8}  {self.verdict}: {'; '.join(tails)}{rule}"]
        lines += [f"  {p.part:<8}  {p.judgement}" for p in self.parts]
        lines.append(f"  {'model':<8}  {self.model_id}")
        lines.append(f"  {'inputs':<8}  {self.inputs} (one batched forward pass per seed)")
        lines.append(f"  {'role':<8}  {ROLE_DEFINITIONS.get(self.role, self.role)}")  # type: ignore[call-overload]
        best = ", ".join(f"{name} {value:.4g}" + (" <-" if name == self.head else "") for name, value in self.mean_top_heads)
        lines.append(f"  {'heads':<8}  by mean score over the seeds, of {self.n_heads_total}: {best}")
        lines += self._failing_lines("seeds", "the claim", lambda o: o.line(self.n_heads_total))
        return "\n".join(lines)

    def next_steps(self) -> list[str]:
        hints = []
        unsure = [p for p in self.parts if p.outcome == "inconclusive"]
        if self.verdict == "inconclusive" and unsure:
            counts = [p.more_seeds for p in unsure]
            if all(c is not None for c in counts):
                hints.append(f"about {max(counts)} more seeds like these would settle it: "  # type: ignore[type-var]
                             f"seeds=range({self.n + max(counts)})")  # type: ignore[type-var, operator]
            else:
                hints.append("more seeds at the observed values would not settle it (an estimate sits on its bound): "
                             "check the claim's bounds")
        bad = self.failing()
        if bad:
            hints.append(f"look at the worst draw alone: check_head_role(lab, {self.head!r}, {self.role!r}, "
                         f"inputs=RepeatedRandomTokens(..., seed={bad[0].seed})), and head_scores(...) for the table")
        return hints or ["check the claim's bounds: the intervals are where the draws put them"]


def _seeds_text(seeds: Sequence[int]) -> str:
    if len(seeds) > 2 and list(seeds) == list(range(seeds[0], seeds[0] + len(seeds))):
        return f"seeds {seeds[0]}-{seeds[-1]}"
    return "seeds " + ", ".join(map(str, seeds))


def _check_seeds(seeds: object) -> tuple[int, ...]:
    if isinstance(seeds, (str, bytes)) or not isinstance(seeds, Iterable):
        raise RoleError(f"seeds={seeds!r}: give the seeds of the random draws, e.g. seeds=range(8)")
    out = tuple(seeds)
    bad = [s for s in out if isinstance(s, bool) or not isinstance(s, (int, np.integer)) or s < 0]
    if bad:
        raise RoleError(f"seeds={out!r}: {bad[0]!r} is not a seed; give whole numbers >= 0, e.g. seeds=range(8)")
    if len(out) < 2:
        raise RoleError(
            f"seeds={out!r}: a claim over random draws needs at least 2 seeds for its interval (8 is the default); "
            "for one draw use check_head_role(lab, head, role, inputs=RepeatedRandomTokens(seed=...))"
        )
    if len(set(out)) != len(out):
        dup = next(s for s in out if out.count(s) > 1)
        raise RoleError(f"seeds={out!r}: seed {dup} is given twice, which would count one draw twice; give distinct seeds")
    return tuple(int(s) for s in out)


def _check_template(inputs: object) -> RepeatedRandomTokens:
    if inputs is None:
        return RepeatedRandomTokens()
    if not isinstance(inputs, RepeatedRandomTokens):
        raise RoleError(
            f"inputs={inputs!r}: a claim over random draws takes a RepeatedRandomTokens(n=..., batch=...) template, "
            "drawn once per seed; for fixed token ids or prompts use check_head_role(lab, head, role, inputs=...)"
        )
    if inputs.seed != RepeatedRandomTokens().seed:
        raise RoleError(
            f"inputs={inputs!r}: the draws' seeds are given by seeds=..., not by the template; "
            f"drop seed={inputs.seed} from RepeatedRandomTokens, and give seeds=[{inputs.seed}, ...]"
        )
    return inputs


def check_head_role_family(
    lab: Lab,
    head: HeadSpec,
    role: Role,
    *,
    seeds: Iterable[int] = DEFAULT_SEEDS,
    inputs: RepeatedRandomTokens | None = None,
    min_score: float | None = None,
    top_k: int | None = 1,
    min_rate: float = 0.5,
    confidence: float = 0.95,
    n_resamples: int = 9999,
    resample_seed: int = 0,
) -> HeadRoleFamilyResult:
    """Does ``head`` play ``role`` across random draws of inputs, not on one draw?

    For each seed in ``seeds`` the inputs are drawn afresh (``inputs``, a
    :class:`~pytest_annotate.scoring.head_scores.RepeatedRandomTokens` template: BOS + 50 random
    ordinary tokens ×2, batch 8, by default; its seed is each of ``seeds`` in turn), and the
    ``role`` score of every head is computed by :func:`~pytest_annotate.scoring.head_scores.head_scores`
    (one batched forward pass per seed). The named head's score and its rank among all heads are
    recorded per seed (a tie counts against the head, as in :func:`check_head_role`).

    **The claim is a conjunction of two parts, each with its own interval over the seeds:**

    * ``score`` (with ``min_score``): the head's **mean score over the seeds** is ``>= min_score``,
      judged on a seeded BCa bootstrap interval of the mean (``n_resamples``, ``resample_seed``);
    * ``rank`` (with ``top_k``; the other heads are the head's control): the head is among the
      ``top_k`` heads on **at least** ``min_rate`` **of the seeds**, judged on a Clopper-Pearson
      interval of that rate.

    Each part holds when its whole interval is on the claimed side, fails when its whole interval
    misses, and is inconclusive otherwise. The claim **holds** when every stated part holds,
    **fails** when any part fails, **inconclusive** otherwise: the intersection-union rule, under
    which the conjunction wrongly holds no more often than its weakest part would alone, so each
    part keeps its ``confidence`` and no correction for two parts is needed. Why two parts and not
    one number: the score says *how much* the head does the role (its magnitude, averaged over
    draws), the rank that no other head does it more (on most draws); a random-init model's top
    head can be consistently top with a score of 0.04 (every head attends almost uniformly), so a
    rank alone is no role, and a high score alone does not say the head is the model's main one.

    At least one of ``min_score`` / ``top_k`` is needed (``top_k=None`` drops the rank part,
    ``min_score=None``, the default, the score part: the score's interval is shown either way).
    Clopper-Pearson is exact, so a rate over few seeds has a wide interval: with 8 seeds, top on
    all 8 gives [63.1%, 100%], so ``min_rate`` above 0.63 needs more seeds (17 for 0.8, 36 for 0.9
    when the head is top on every one); the default ``min_rate=0.5`` is what 8 seeds can establish.
    The bootstrap is not exact: over few seeds (fewer than about 8) its interval is too narrow, so
    give the score part at least the default 8 seeds. A seed's score already averages over its
    ``batch`` sequences, so the seeds vary little for a formed head (±0.005 on the induction series).
    The role ``copying`` reads weights only, so a seed changes nothing: it is refused here (use
    :func:`~pytest_annotate.checks.head_roles.check_head_role`).

    >>> check_head_role_family(lab, "L1H0", "induction", min_score=0.8,
    ...                        inputs=RepeatedRandomTokens(n=15, batch=8)).verdict      # doctest: +SKIP
    'holds'
    """
    role = check_role(role)
    if role == "copying":
        raise RoleError(
            "role='copying' reads the OV circuit's weights only: random draws of inputs change nothing, so there is "
            "nothing to judge over seeds; use check_head_role(lab, head, 'copying', ...)"
        )
    layer, index = parse_head(lab, head)
    name = head_name(layer, index)
    n_heads_total = lab.n_layers * lab.n_heads
    if min_score is None and top_k is None:
        raise RoleError(f"check_head_role_family({name!r}, {role!r}) claims nothing: give min_score=… or top_k=…")
    if top_k is not None and (isinstance(top_k, bool) or not isinstance(top_k, int) or not 1 <= top_k <= n_heads_total):
        raise RoleError(f"top_k={top_k!r}: give a whole number from 1 (the top head) to {n_heads_total}, or None")
    if min_score is not None and (isinstance(min_score, bool) or not isinstance(min_score, (int, float))
                                  or not math.isfinite(min_score)):
        raise RoleError(f"min_score={min_score!r}: give a finite number, or None")
    _rate_args(min_rate, confidence)
    seed_list = _check_seeds(seeds)
    template = _check_template(inputs)

    tables = [head_scores(lab, role, inputs=dataclasses.replace(template, seed=s)) for s in seed_list]
    scores = [t.score(name) for t in tables]
    ranks = [t.rank(name) for t in tables]
    in_top = [top_k is not None and r < top_k for r in ranks]
    outcomes = tuple(
        SeedOutcome(seed=s, ok=(min_score is None or sc >= min_score) and (top_k is None or top),
                    score=sc, rank=r, top_heads=tuple(t.top(3)))
        for s, sc, r, top, t in zip(seed_list, scores, ranks, in_top, tables, strict=True)
    )
    score_iv = bootstrap_interval(scores, confidence=confidence, n_resamples=n_resamples, seed=resample_seed,
                                  label=f"mean {name} {role} score", items="seeds")
    parts = []
    if min_score is not None:
        parts.append(ClaimPart.judged("score", score_iv, float(min_score)))
    if top_k is not None:
        top_label = "top-1" if top_k == 1 else f"top-{top_k}"
        rate_iv = rate_interval(sum(in_top), len(in_top), confidence=confidence, label=top_label, items="seeds")
        parts.append(ClaimPart.judged("rank", rate_iv, float(min_rate)))
    verdict = conjoin(p.outcome for p in parts)
    first = parts[0]
    unsure = [p.more_seeds for p in parts if p.outcome == "inconclusive"]
    more = None if verdict != "inconclusive" or not unsure or None in unsure else max(unsure)  # type: ignore[type-var]

    said = []
    if min_score is not None:
        said.append(f"mean score ≥ {min_score:g}")
    if top_k is not None:
        top_words = "the top head" if top_k == 1 else f"among the top {top_k} heads"
        said.append(f"{top_words} on ≥ {100 * min_rate:g}% of seeds")
    mean_table = np.mean([t.array for t in tables], axis=0)
    order = np.argsort(-mean_table.reshape(-1), kind="stable")[:SHOWN_HEADS]
    n_heads = lab.n_heads
    mean_top = tuple((head_name(int(i) // n_heads, int(i) % n_heads), float(mean_table.reshape(-1)[i])) for i in order)
    template = template.with_bos(lab)
    draw = f"{'BOS + ' if template.bos else ''}{template.n} random ordinary tokens ×2, batch {template.batch}"
    inputs_text = f"{draw}, {_seeds_text(seed_list)}"
    return HeadRoleFamilyResult(
        family=f"{role} draws", family_summary=f"{len(seed_list)} draws of {draw} ({_seeds_text(seed_list)})",
        split="all", model_id=lab.model_id, subject=" and ".join(said), label=first.label,
        threshold=first.threshold, direction=">=", verdict=verdict, passed=verdict == "holds", n=len(seed_list),
        k=first.k, estimate=first.estimate, low=first.low, high=first.high, method=first.method, note=first.note,
        confidence=confidence, more_items=more, items=outcomes, higher_is_better=True, head=name, role=role,
        inputs=inputs_text, seeds=seed_list, min_score=None if min_score is None else float(min_score), top_k=top_k,
        min_rate=None if top_k is None else float(min_rate), parts=tuple(parts), n_heads_total=n_heads_total,
        mean_top_heads=mean_top,
    )


assert_head_role_family = asserting(
    check_head_role_family,
    "assert_head_role_family",
    """Assert that ``head`` plays ``role`` over several random draws of inputs: its mean score is
    ``>= min_score`` and it is among the ``top_k`` heads on ``>= min_rate`` of the seeds, each judged on
    an interval over the seeds (see :func:`check_head_role_family`). An inconclusive verdict fails the
    assertion, with INCONCLUSIVE in its headline.

    >>> assert_head_role_family(lab, "L1H0", "induction", min_score=0.8,
    ...                         inputs=RepeatedRandomTokens(n=15, batch=8))   # doctest: +SKIP
    """,
)


# --------------------------------------------------------------------------- the decomposition over a family


@dataclass(frozen=True)
class DecompositionItem:
    """One item's decomposition errors: the worst identity, and every identity's compared error."""

    prompt: str
    answer: str | None
    """The answer's first token, whose logit at the last position is checked with the top tokens'."""
    ok: bool
    worst_identity: str
    worst_error: float
    """The worst identity's compared error (``err / RMS`` for the residual identities, ``|err|`` for logits)."""
    worst_at: str
    errors: tuple[tuple[str, float], ...] = ()
    """``(identity, compared error)`` for each of the four identities."""

    @property
    def value(self) -> float:
        return self.worst_error

    def line(self, atol: float) -> str:
        rest = ", ".join(f"{name} {err:.2e}" for name, err in self.errors)
        return (f"{self.prompt!r}: {self.worst_identity} error {self.worst_error:.2e} = "
                f"{self.worst_error / atol:.3g}x atol at {self.worst_at} ({rest})")


@dataclass(frozen=True, eq=False, kw_only=True)
class DecompositionFamilyResult(FamilyResult):
    """The residual-stream identities over a family's items: the rate of items on which all of them hold.

    ``min_rate == 1`` (the default) is a claim about **every** judged item, decided item by item
    (holds when all of them sum within ``atol``, fails at the first that does not); below 1 the
    rate's Clopper-Pearson interval is judged as every other family rate is. ``items`` holds one
    :class:`DecompositionItem` per judged item.
    """

    atol: float = field(metadata=kind("float"))
    every_item: bool
    """The claim is that every judged item sums (``min_rate == 1``): decided item by item."""
    worst_errors: tuple[tuple[str, float], ...] = ()
    """``(identity, the largest compared error over the items)`` for each identity."""
    items: tuple[DecompositionItem, ...] = ()  # type: ignore[assignment]

    def measured(self) -> str:
        iv = self.interval
        return f"{self.k}/{self.n} = {iv.fmt(self.estimate)} [{iv.fmt(self.low)}, {iv.fmt(self.high)}]"

    def measurements(self) -> tuple[Measurement, ...]:
        out = list(super().measurements())
        out += [Measurement(f"worst {name} error", err, "<=", self.atol) for name, err in self.worst_errors]
        return tuple(out)

    def failing(self) -> tuple[DecompositionItem, ...]:  # type: ignore[override]
        """The items whose identities miss ``atol``, worst first."""
        return tuple(sorted((o for o in self.items if not o.ok), key=lambda o: -o.worst_error / self.atol))

    def report(self) -> str:
        if self.every_item:
            iv = self.interval
            span = f"[{iv.fmt(self.low)}, {iv.fmt(self.high)}] ({iv.method} {100 * self.confidence:g}%)"
            if self.verdict == "holds":
                why = (f"every one of the {self.n} {self._items_word()} sums within atol (a claim about every item: the "
                       f"rate's interval is {span}, what these items say of the items not judged)")
            else:
                why = (f"{self.n - (self.k or 0)} of the {self.n} {self._items_word()} do not sum within atol, and the "
                       f"claim is about every item (the rate is {self.k}/{self.n}, {span})")
            verdict_line = f"{self.verdict}: {why}"
        else:
            verdict_line = str(self.judgement)
        lines = [self.headline(), f"  {'verdict':<8}  {verdict_line}"]
        lines.append(f"  {'model':<8}  {self.model_id}")
        lines += self._family_lines()
        worst = ", ".join(f"{name} {err:.2e}" for name, err in self.worst_errors)
        lines.append(f"  {'errors':<8}  the largest over the items, compared with atol = {self.atol:g}: {worst}")
        lines += self._failing_lines("items", "atol", lambda o: o.line(self.atol))
        return "\n".join(lines)

    def _items_word(self) -> str:
        return _SPLIT_WORDS.get(self.split, "items")

    def next_steps(self) -> list[str]:
        hints = []
        if self.verdict == "inconclusive" and self.more_items:
            hints.append(f"about {self.more_items} more items like these would settle it: grow the family, or judge "
                         f"on split='all' ({self.n} {self._items_word()} now)")
        bad = self.failing()
        if bad:
            o = bad[0]
            answer = "" if o.answer is None else f", answer={o.answer!r}"
            hints.append(f"look at the worst item alone: print(check_decomposition(model, {o.prompt!r}{answer}, "
                         f"atol={self.atol:g})) for every identity's error and where to look")
        return hints or ["check the claim's bound: the interval is where the data put it"]


def check_decomposition_family(
    model: Lab,
    family: Family,
    *,
    atol: float = 1e-4,
    min_rate: float = 1.0,
    split: Split = "heldout",
    method: str = "clopper-pearson",
    confidence: float = 0.95,
    top_k: int = DEFAULT_TOP_K,
) -> DecompositionFamilyResult:
    """Do the residual-stream identities hold within ``atol`` on the family's items?

    :func:`~pytest_annotate.checks.decomposition.check_decomposition` on each judged item (the
    embedding, residual, per-head and logit identities; ``atol`` bounds what that check says it
    bounds), with the item's answer's first token among the logits checked at the last position.
    Each item is one cached forward pass (:meth:`Lab.cache`, memoized per prompt): the
    decomposition needs the per-position activations of every layer, which the batched family
    scorer does not keep, so items run one at a time.

    This is a self-check of the library and the model wrapper, true by construction on any weights,
    so the default claim is about **every** judged item (``min_rate=1``): it holds when every item
    sums within ``atol`` and fails as soon as one does not (one counterexample refutes an identity;
    and no finite interval could ever be wholly >= 100%). The rate's Clopper-Pearson interval is
    reported either way. With ``min_rate < 1`` the interval is judged as in
    :func:`~pytest_annotate.checks.families.check_top_token_rate` (holds when it is wholly
    ``>= min_rate``, fails when wholly below, else inconclusive).

    >>> check_decomposition_family(lab, windows("months-w4", "months", 4)).verdict   # doctest: +SKIP
    'holds'
    """
    if isinstance(atol, bool) or not isinstance(atol, (int, float)) or not (math.isfinite(atol) and atol > 0):
        raise ValueError(f"atol={atol!r}: give a positive bound on the identities' errors, e.g. 1e-4")
    _rate_args(min_rate, confidence)
    if isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 1:
        raise ValueError(f"top_k={top_k!r}: give how many of each position's top tokens to check (>= 1)")
    judged = _judged_items(family, split)
    outcomes = []
    worst: dict[str, float] = {}
    for item in judged:
        answer = model.answer_tokens(item.answer)[0]
        r = check_decomposition(model, item.prompt, answer=answer, atol=float(atol), top_k=top_k)
        w = max(r.identities, key=lambda i: i.compared_error)
        errors = tuple((i.identity, float(i.compared_error)) for i in r.identities)
        for name, err in errors:
            worst[name] = max(worst.get(name, 0.0), err)
        outcomes.append(DecompositionItem(prompt=item.prompt, answer=r.answer, ok=r.passed, worst_identity=w.identity,
                                          worst_error=float(w.compared_error), worst_at=w.worst_at, errors=errors))
    oks = [o.ok for o in outcomes]
    k, n = sum(oks), len(oks)
    label = f"sums within atol {atol:g}"
    interval = rate_interval(k, n, confidence=confidence, method=method, label=label, items=_SPLIT_WORDS[split])  # type: ignore[arg-type]
    every = float(min_rate) == 1.0
    if every:
        verdict: Verdict = "holds" if k == n else "fails"
        more: int | None = 0
    else:
        j = judge(interval, float(min_rate), ">=")
        verdict, more = j.verdict, j.more_items
    subject = ("every item's residual stream is the sum of its terms" if every
               else f"the residual stream is the sum of its terms on ≥ {100 * min_rate:g}% of items")
    return DecompositionFamilyResult(
        **_common(model, judged, split), subject=f"{subject} (atol {atol:g})", label=label,  # type: ignore[arg-type]
        threshold=float(min_rate), direction=">=", verdict=verdict, passed=verdict == "holds", n=n, k=k,
        estimate=interval.estimate, low=interval.low, high=interval.high, method=interval.method,
        confidence=confidence, more_items=more, items=tuple(outcomes), higher_is_better=False, atol=float(atol),
        every_item=every, worst_errors=tuple(worst.items()),
    )


assert_decomposition_family = asserting(
    check_decomposition_family,
    "assert_decomposition_family",
    """Assert that the residual stream is the sum of its terms within ``atol`` on every judged item of
    the family (or, with ``min_rate < 1``, on at least that rate, judged on its interval); see
    :func:`check_decomposition_family`. A self-check of the library, true by construction on any weights.

    >>> assert_decomposition_family(lab, windows("months-w4", "months", 4))   # doctest: +SKIP
    """,
)


__all__ = [
    "DEFAULT_SEEDS",
    "ClaimPart",
    "DecompositionFamilyResult",
    "DecompositionItem",
    "HeadRoleFamilyResult",
    "SeedOutcome",
    "assert_decomposition_family",
    "assert_head_role_family",
    "check_decomposition_family",
    "check_head_role_family",
    "conjoin",
]
