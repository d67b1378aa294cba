"""Claims over prompt families, judged with statistics: holds, fails, or inconclusive.

A finding is a claim over a :class:`~pytest_annotate.families.Family` of items, judged on its
held-out items (``split="heldout"``, the default; ``"dev"`` or ``"all"`` on request) with an
interval, not on one prompt:

* rates, with a Clopper-Pearson (or Wilson) 95% interval: :func:`check_top_token_rate` ("the
  answer is top-1 on >= 90% of items"), :func:`check_rank_rate`, :func:`check_prob_rate`;
* effects, with a seeded bootstrap interval on the mean: :func:`check_logit_diff_effect` (the
  answer's logit over the item's ``wrong`` foil);
* components against random controls of the same kind and size, item by item:
  :func:`check_necessity_family` (the mean drop when the component is ablated, and a relabelling
  permutation test against random components: :func:`pytest_annotate.stats.control_test`), and
  :func:`check_sufficiency_family` (the rate under a keep-only circuit, against random circuits of
  the same size).

The verdict (:func:`pytest_annotate.stats.judge`): **holds** when the whole interval clears the
claim's bound (and the component beats its controls at ``alpha``), **fails** when the whole
interval misses it (or the component does no more than its controls), **inconclusive** otherwise,
with about how many more items would settle it. Every ``assert_*`` twin raises unless the verdict
is ``holds``: an inconclusive claim fails the test, and its headline says ``INCONCLUSIVE``.

Every item runs batched through the Lab (:func:`pytest_annotate.scoring.items.score_items`): items
of the same token length share one forward pass, with one row per item and intervention.

>>> from pytest_annotate.families import windows
>>> months = windows("months-w4", "months", 4)
>>> len(months), len(months.heldout)
(12, 8)
>>> assert_top_token_rate(model, months, min_rate=0.5)                           # doctest: +SKIP
>>> r = check_necessity_family(model, months, "L3", ablation="mean")             # doctest: +SKIP
>>> r.verdict, r.n, round(r.low, 2), r.control.p_value < 0.05                    # doctest: +SKIP
('holds', 6, 4.1, True)
>>> print(check_top_token_rate(model, months.sample(3), min_rate=0.9))           # doctest: +SKIP
INCONCLUSIVE  the answer is top-1 on ≥ 90% of months-w4 (held-out items): 2/2 = 100.0% [15.8%, 100.0%]
...
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, get_args

import numpy as np

from pytest_annotate.families import Family, FamilyError, FamilyItem
from pytest_annotate.interventions.ablations import (
    Intervention,
    ablate,
    check_ablation,
    keep_only,
)
from pytest_annotate.interventions.components import (
    ComponentSpec,
    format_components,
    kinds_of,
    parse_components,
)
from pytest_annotate.results import (
    Measurement,
    Result,
    Verdict,
    asserting,
    fmt_prob,
    fmt_token,
    hint_lines,
    kind,
)
from pytest_annotate.scoring.items import (
    ItemScore,
    PreparedItem,
    lens_ranks,
    score_items,
)
from pytest_annotate.scoring.sweeps import (
    METRIC_WORDS,
    AnswerMetrics,
    Metric,
    check_metric,
)
from pytest_annotate.stats import (
    Interval,
    Judgement,
    PairedTest,
    bootstrap_interval,
    control_test,
    judge,
    rate_interval,
)

if TYPE_CHECKING:
    from pytest_annotate.lab import Lab

Split = Literal["heldout", "dev", "all"]
"""Which items a claim is judged on; the single source of truth for split names."""
SPLITS: tuple[Split, ...] = get_args(Split)
_SPLIT_WORDS = {"heldout": "held-out items", "dev": "dev items", "all": "items"}
FAMILY_ABLATIONS = ("zero", "mean", "skip")
"""Ablations a family claim supports: ``mean`` averages over the family's items of the same length."""
#: How many failing items a report lists.
SHOWN_ITEMS = 5
DEFAULT_CONTROLS = 5


# --------------------------------------------------------------------------- results


@dataclass(frozen=True)
class ItemOutcome:
    """One item's measured numbers, and whether it meets the claim on its own."""

    prompt: str
    answer: str
    ok: bool
    """The item on its own meets the claim's per-item condition (top-k, drop >= bound...)."""
    rank: int
    prob: float
    value: float = field(metadata=kind("logit"))
    """The number the claim is about, for this item: its rank, probability, logit difference or drop."""
    top_token: str
    top_prob: float
    control: float | None = field(default=None, metadata=kind("logit"))
    """The mean of the item's control draws (random components), when there are controls."""

    def line(self, value_text: str) -> str:
        top = "" if self.rank == 0 else f"; top-1 {fmt_token(self.top_token)} ({fmt_prob(self.top_prob)})"
        ctrl = "" if self.control is None else f"; controls {self.control:.3g} on average"
        value = "" if not value_text else f"{value_text} " if value_text.endswith(":") else f"{value_text}, "
        return f"{self.prompt!r} -> {self.answer!r}: {value}rank {self.rank}, prob {fmt_prob(self.prob)}{top}{ctrl}"


@dataclass(frozen=True)
class ControlSummary:
    """The claim against random components (or circuits) of the same kind and size, item by item."""

    controls: tuple[str, ...]
    """The control draws, e.g. ``('L7', 'L12', ...)``."""
    p_value: float
    alpha: float
    statistic: float = field(metadata=kind("logit"))
    """Mean over items of the claim's value minus the mean of its control draws."""
    mean_claim: float = field(metadata=kind("logit"))
    mean_control: float = field(metadata=kind("logit"))
    n_higher: int
    """Items on which the claim's value is above every control draw."""
    n_lower: int
    n: int
    """Items compared."""
    exact: bool
    method: str

    @property
    def significant(self) -> bool:
        return self.p_value <= self.alpha

    def line(self, what: str) -> str:
        p = f"{self.p_value:.2g}" if self.p_value >= 1e-4 else f"{self.p_value:.1e}"
        how = "exact" if self.exact else "Monte Carlo"
        verdict = "significant" if self.significant else "not significant"
        return (
            f"{what} {self.mean_claim:.4g} vs. {self.mean_control:.4g} over {len(self.controls)} random draws "
            f"({', '.join(self.controls)}); difference {self.statistic:+.4g}, above every draw on {self.n_higher} "
            f"of {self.n} items; p = {p} ({self.method}, {how}; {verdict} at alpha {self.alpha:g})"
        )


@dataclass(frozen=True, eq=False, kw_only=True)
class FamilyResult(Result):
    """The verdict on a claim over a family: an interval over ``n`` items, judged against a bound.

    ``verdict`` is ``holds``, ``fails`` or ``inconclusive``; ``passed`` is ``verdict == "holds"``.
    ``low`` / ``high`` are the interval, ``estimate`` the rate (``k / n``) or mean, ``more_items``
    about how many more items would settle an inconclusive claim. ``items`` holds every judged
    item's numbers (the report lists the first failing ones).
    """

    family: str
    family_summary: str
    split: str
    model_id: str
    subject: str
    """What the claim is about, in words: ``the answer is top-1``, ``L3 is necessary``."""
    label: str
    """What is measured per item, for the interval: ``top-1``, ``drop in answer log-prob (nats)``."""
    intervention: str | None = None
    threshold: float = field(metadata=kind("float"))
    direction: str
    verdict: Verdict = "fails"  # type: ignore[assignment]  # a field here: family claims have three verdicts
    passed: bool
    n: int
    k: int | None = None
    estimate: float = field(metadata=kind("prob"))
    low: float = field(metadata=kind("prob"))
    high: float = field(metadata=kind("prob"))
    method: str
    note: str = ""
    confidence: float = field(metadata=kind("float"))
    more_items: int | None = None
    control: ControlSummary | None = None
    control_label: str = ""
    """What the control test compares, when it is not the claim's own number (sufficiency: the log-prob)."""
    items: tuple[ItemOutcome, ...] = ()
    higher_is_better: bool = True
    """Whether an item's ``value`` is better high (a prob, a drop that should be large) or low (a rank)."""
    value_kind: str = ""
    """What a rate's per-item ``value`` is when it is neither the rank nor the prob (``first top-1 layer``)."""
    lens_layers: int | None = None
    """Logit-lens rates: the model's block count, the ``value`` of an item never top-1."""

    #: Family claims are counted apart in the terminal summary.
    is_family_claim = True

    # ---------------------------------------------------------------- the contract
    @property
    def interval(self) -> Interval:
        """The interval the verdict rests on, as a :class:`~pytest_annotate.stats.Interval`."""
        return Interval(self.low, self.high, self.method, self.confidence, self.estimate, n=self.n, k=self.k,
                        label=self.label, items=_SPLIT_WORDS.get(self.split, "items"), note=self.note)

    @property
    def judgement(self) -> Judgement:
        """The interval's judgement against the bound (the verdict may add the control test)."""
        return judge(self.interval, self.threshold, self.direction)  # type: ignore[arg-type]

    @property
    def claim(self) -> str:
        under = f", under {self.intervention}" if self.intervention else ""
        return f"{self.family} ({_SPLIT_WORDS.get(self.split, self.split)}{under}): {self.subject}"

    def measured(self) -> str:
        iv = self.interval
        if iv.is_rate:
            out = f"{self.k}/{self.n} = {iv.fmt(self.estimate)} [{iv.fmt(self.low)}, {iv.fmt(self.high)}]"
        else:
            out = f"mean {self.estimate:.4g} [{self.low:.4g}, {self.high:.4g}] over {self.n} items"
        if self.control is not None:
            p = self.control.p_value
            out += f", p = {p:.2g}" if p >= 1e-4 else f", p = {p:.1e}"
            out += " vs. controls"
        return out

    def measurements(self) -> tuple[Measurement, ...]:
        iv = self.interval
        name = f"{self.label} rate" if iv.is_rate else f"mean {self.label}"
        op = ">=" if self.direction == ">=" else "<="
        out = [
            Measurement(name, self.estimate, op, self.threshold, primary=True),  # type: ignore[arg-type]
            Measurement("interval low", self.low),
            Measurement("interval high", self.high),
            Measurement("items", self.n),
        ]
        if self.control is not None:
            out.append(Measurement("p-value vs. controls", self.control.p_value, "<=", self.control.alpha))
        return tuple(out)

    # ---------------------------------------------------------------- the report
    def failing(self) -> tuple[ItemOutcome, ...]:
        """The items that miss the claim on their own, worst first."""
        bad = [o for o in self.items if not o.ok]
        return tuple(sorted(bad, key=lambda o: o.value if self.higher_is_better else -o.value))

    def value_text(self, o: ItemOutcome) -> str:
        """The item's primary number in words, when it is not its rank or prob (effects say it)."""
        if self.lens_layers is not None:
            return "never top-1 in the lens" if o.value >= self.lens_layers else f"first top-1 in the lens at L{int(o.value)}"
        return f"{self.value_kind} {o.value:.4g}" if self.value_kind else ""

    def report(self) -> str:
        j = self.judgement
        lines = [self.headline(), f"  {'verdict':<8}  {self.verdict}: {_judgement_tail(j, self)}"]
        if self.control is not None:
            lines.append(f"  {'control':<8}  {self.control.line(self._control_words())}")
        lines.append(f"  {'model':<8}  {self.model_id}" + (f", under {self.intervention}" if self.intervention else ""))
        lines += self._family_lines()
        lines += self._failing_lines("items", "the claim", lambda o: o.line(self.value_text(o)))
        return "\n".join(lines)

    def _family_lines(self) -> list[str]:
        """The report's ``family`` block: the family's size, split and first items."""
        summary = self.family_summary.splitlines()
        return [f"  {'family':<8}  {summary[0]}", *(f"            {s.strip()}" for s in summary[1:])]

    def _failing_lines(self, units: str, what: str, line: Callable[[Any], str]) -> list[str]:
        """The report's ``failing`` block (worst first, the first few) and, unless the claim holds, what to do next."""
        bad = self.failing()
        if bad:
            shown = bad[:SHOWN_ITEMS]
            more = f" (the first {len(shown)} shown, worst first)" if len(bad) > len(shown) else ""
            lines = [f"  {'failing':<8}  {len(bad)} of {self.n} {units} miss {what} on their own{more}:"]
            lines += [f"            {line(o)}" for o in shown]
        else:
            lines = [f"  {'failing':<8}  none of the {self.n} {units} misses {what} on its own"]
        if self.verdict != "holds":
            lines += hint_lines(self.next_steps())
        return lines

    def _control_words(self) -> str:
        return f"mean {self.control_label or self.label}"

    def next_steps(self) -> list[str]:
        hints = []
        if self.verdict == "inconclusive":
            if self.more_items:
                hints.append(
                    f"about {self.more_items} more items like these would settle it: grow the family, or judge on "
                    f"split='all' ({self.n} {_SPLIT_WORDS.get(self.split, 'items')} now)"
                )
            if self.control is not None and not self.control.significant:
                hints.append(
                    f"the test against controls is not significant (p = {self.control.p_value:.2g} > alpha "
                    f"{self.control.alpha:g}): more items, or more control draws (n_controls=), give it power"
                )
        bad = self.failing()
        if bad:
            hints.append(f"look at the worst item alone: {self._single_check(bad[0])}")
        return hints or ["check the claim's bound: the interval is where the data put it"]

    def _single_check(self, o: ItemOutcome) -> str:
        if self.lens_layers is not None:
            return f"check_logit_lens(model, {o.prompt!r}, {o.answer!r})"
        return f"check_top_token(model, {o.prompt!r}, {o.answer!r})"


@dataclass(frozen=True, eq=False, kw_only=True)
class EffectFamilyResult(FamilyResult):
    """A family claim about a mean effect (nats, logits): a bootstrap interval on the mean."""

    estimate: float = field(metadata=kind("logit"))
    low: float = field(metadata=kind("logit"))
    high: float = field(metadata=kind("logit"))
    component: str | None = None
    ablation: str | None = None
    metric: str | None = None

    def value_text(self, o: ItemOutcome) -> str:
        if self.component is not None:
            unit = " nats" if self.metric == "logprob" else ""
            return f"drop {o.value:+.3g}{unit}; ablated:"
        return f"{self.label} {o.value:+.3g}"

    def _single_check(self, o: ItemOutcome) -> str:
        if self.component is not None:
            return (f"check_necessity(model, {o.prompt!r}, {o.answer!r}, {self.component!r}, "
                    f"ablation={self.ablation!r}, reference=[...])")
        return f"check_logit_diff(model, {o.prompt!r}, {o.answer!r}, ...)"


def _judgement_tail(j: Judgement, r: FamilyResult) -> str:
    """The judgement's sentence after its verdict word, with the control test's say where it decides."""
    text = str(j).split(": ", 1)[1]
    if r.control is not None and j.verdict != r.verdict:
        if r.verdict == "fails":
            text += "; but the component does no more than its random controls on average, so the claim fails"
        elif r.verdict == "inconclusive":
            text += "; but it does not beat its random controls significantly"
    return text


# --------------------------------------------------------------------------- shared machinery


def _judged_items(family: Family, split: str) -> Family:
    if not isinstance(family, Family):
        raise TypeError(
            f"family={family!r}: give a Family (windows(...), from_list(...), from_jsonl(...)), not a "
            f"{type(family).__name__}; for one prompt use the single-prompt check"
        )
    if split not in SPLITS:
        from pytest_annotate.errors import close_matches

        raise ValueError(f"split={split!r} is not one of: {', '.join(map(repr, SPLITS))}.{close_matches(str(split), SPLITS)}")
    if split == "all":
        return family
    try:
        return family.heldout if split == "heldout" else family.dev
    except FamilyError as e:
        raise FamilyError(f"{e}; or judge on split='all'") from None


def _rate_args(min_rate: float, confidence: float) -> None:
    if isinstance(min_rate, bool) or not isinstance(min_rate, (int, float)) or not 0 <= min_rate <= 1:
        raise ValueError(f"min_rate={min_rate!r}: give the least fraction of items, between 0 and 1 (0.9 for 90%)")
    if isinstance(confidence, bool) or not isinstance(confidence, (int, float)) or not 0 < confidence < 1:
        raise ValueError(f"confidence={confidence!r}: give a level strictly between 0 and 1, e.g. 0.95")


def _outcome(item: FamilyItem, s: ItemScore, lab: Lab, ok: bool, value: float, control: float | None = None) -> ItemOutcome:
    return ItemOutcome(item.prompt, item.answer, bool(ok), s.score.rank, s.score.joint_prob, float(value),
                       lab.to_str([s.top_id])[0], s.top_prob, control)


def _common(model: Lab, judged: Family, split: str) -> dict[str, object]:
    return {"family": judged.name, "family_summary": judged.summary(), "split": split, "model_id": model.model_id}


def _rate_result(
    model: Lab, judged: Family, split: str, oks: Sequence[bool], outcomes: Sequence[ItemOutcome], *, subject: str,
    label: str, min_rate: float, method: str, confidence: float, intervention: str | None,
    control: ControlSummary | None = None,
    control_label: str = "",
    higher_is_better: bool = True,
    value_kind: str = "",
    lens_layers: int | None = None,
) -> FamilyResult:
    items_word = _SPLIT_WORDS[split]
    interval = rate_interval(sum(oks), len(oks), confidence=confidence, method=method, label=label,  # type: ignore[arg-type]
                             items=items_word)
    j = judge(interval, float(min_rate), ">=")
    verdict = _with_control(j.verdict, control)
    return FamilyResult(
        **_common(model, judged, split), subject=subject, label=label, intervention=intervention,  # type: ignore[arg-type]
        threshold=float(min_rate), direction=">=", verdict=verdict, passed=verdict == "holds", n=len(oks),
        k=sum(oks), estimate=interval.estimate, low=interval.low, high=interval.high, method=interval.method,
        confidence=confidence, more_items=j.more_items, control=control, control_label=control_label,
        items=tuple(outcomes), higher_is_better=higher_is_better, value_kind=value_kind,
        lens_layers=lens_layers,
    )


def _with_control(verdict: Verdict, control: ControlSummary | None) -> Verdict:
    """Combine the interval's verdict with the test against controls (see :func:`check_necessity_family`)."""
    if control is None or verdict == "fails":
        return verdict
    if control.statistic <= 0:
        return "fails"
    if verdict == "holds" and not control.significant:
        return "inconclusive"
    return verdict


def _summary(test: PairedTest, controls: Sequence[str], alpha: float) -> ControlSummary:
    return ControlSummary(
        controls=tuple(controls), p_value=float(test.p_value), alpha=float(alpha), statistic=float(test.statistic),
        mean_claim=float(test.mean_claim), mean_control=float(test.mean_control), n_higher=test.n_higher,
        n_lower=test.n_lower, n=test.n, exact=test.exact, method=test.method,
    )


# --------------------------------------------------------------------------- rates


def _score_rate(
    model: Lab, family: Family, split: str, intervention: Intervention | None, max_batch_size: int | None
) -> tuple[Family, tuple[ItemScore, ...]]:
    judged = _judged_items(family, split)
    scores = score_items(model, [(it.prompt, it.answer) for it in judged], [intervention],
                         max_batch_size=max_batch_size)
    return judged, scores.rows(0)


def check_rank_rate(
    model: Lab,
    family: Family,
    *,
    max_rank: int = 0,
    min_rate: float = 0.9,
    split: Split = "heldout",
    method: str = "clopper-pearson",
    confidence: float = 0.95,
    intervention: Intervention | None = None,
    max_batch_size: int | None = None,
) -> FamilyResult:
    """Is each item's answer at rank ``<= max_rank`` on at least ``min_rate`` of the items?

    The rate's interval is Clopper-Pearson (``method="wilson"`` for Wilson) at ``confidence``; the
    claim holds when the whole interval is ``>= min_rate``, fails when it is wholly below, and is
    inconclusive otherwise. Ranks are greedy ranks (the worst rank of a multi-token answer's tokens),
    as in :func:`~pytest_annotate.checks.predictions.check_rank`.

    >>> check_rank_rate(model, windows("months-w4", "months", 4), max_rank=2).verdict   # doctest: +SKIP
    'holds'
    """
    if isinstance(max_rank, bool) or not isinstance(max_rank, int) or max_rank < 0:
        raise ValueError(f"max_rank={max_rank!r}: give a whole number >= 0 (0 = top-1)")
    _rate_args(min_rate, confidence)
    judged, scores = _score_rate(model, family, split, intervention, max_batch_size)
    oks = [s.score.rank <= max_rank for s in scores]
    outcomes = [_outcome(it, s, model, ok, s.score.rank) for it, s, ok in zip(judged, scores, oks, strict=True)]
    label = "top-1" if max_rank == 0 else f"top-{max_rank + 1}"
    return _rate_result(
        model, judged, split, oks, outcomes, subject=f"the answer is {label} on ≥ {100 * min_rate:g}% of items",
        label=label, min_rate=min_rate, method=method, confidence=confidence,
        intervention=None if intervention is None else str(intervention), higher_is_better=False,
    )


def check_top_token_rate(
    model: Lab,
    family: Family,
    *,
    k: int = 1,
    min_rate: float = 0.9,
    split: Split = "heldout",
    method: str = "clopper-pearson",
    confidence: float = 0.95,
    intervention: Intervention | None = None,
    max_batch_size: int | None = None,
) -> FamilyResult:
    """Is each item's answer among the top ``k`` tokens on at least ``min_rate`` of the items?

    :func:`check_rank_rate` with ``max_rank = k - 1``.

    >>> r = check_top_token_rate(model, windows("months-w4", "months", 4), min_rate=0.8)   # doctest: +SKIP
    >>> r.verdict, r.k, r.n                                                               # doctest: +SKIP
    ('holds', 6, 6)
    """
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise ValueError(f"k={k!r}: give a whole number >= 1 (1 = the answer is the top token)")
    return check_rank_rate(model, family, max_rank=k - 1, min_rate=min_rate, split=split, method=method,
                           confidence=confidence, intervention=intervention, max_batch_size=max_batch_size)


def check_prob_rate(
    model: Lab,
    family: Family,
    *,
    min_prob: float,
    min_rate: float = 0.9,
    split: Split = "heldout",
    method: str = "clopper-pearson",
    confidence: float = 0.95,
    intervention: Intervention | None = None,
    max_batch_size: int | None = None,
) -> FamilyResult:
    """Is each item's answer at least ``min_prob`` likely (joint probability) on ``min_rate`` of the items?

    >>> check_prob_rate(model, windows("months-w4", "months", 4), min_prob=0.2, min_rate=0.5).verdict  # doctest: +SKIP
    'holds'
    """
    if isinstance(min_prob, bool) or not isinstance(min_prob, (int, float)) or not 0 <= min_prob <= 1:
        raise ValueError(f"min_prob={min_prob!r}: give a probability between 0 and 1")
    _rate_args(min_rate, confidence)
    judged, scores = _score_rate(model, family, split, intervention, max_batch_size)
    oks = [s.score.joint_prob >= min_prob for s in scores]
    outcomes = [_outcome(it, s, model, ok, s.score.joint_prob) for it, s, ok in zip(judged, scores, oks, strict=True)]
    label = f"prob ≥ {fmt_prob(min_prob)}"
    return _rate_result(
        model, judged, split, oks, outcomes, subject=f"the answer has prob ≥ {fmt_prob(min_prob)} on ≥ "
        f"{100 * min_rate:g}% of items", label=label, min_rate=min_rate, method=method, confidence=confidence,
        intervention=None if intervention is None else str(intervention),
    )


def check_logit_lens_rate(
    model: Lab,
    family: Family,
    *,
    max_layer: int,
    min_rate: float = 0.9,
    split: Split = "heldout",
    method: str = "clopper-pearson",
    confidence: float = 0.95,
    max_batch_size: int | None = None,
) -> FamilyResult:
    """Does the answer first become top-1 in the logit lens at block ``<= max_layer`` on ``min_rate`` of the items?

    Each item's first top-1 layer is read as :func:`~pytest_annotate.checks.logit_lens.check_logit_lens`
    reads it (the model's own final norm and unembedding on each block's output; a multi-token
    answer's rank is the worst of its tokens'), in right-padded batched passes
    (:func:`pytest_annotate.scoring.items.lens_ranks`). An item whose answer is never top-1 misses.

    >>> check_logit_lens_rate(model, windows("months-w4", "months", 4), max_layer=17, min_rate=0.5).verdict  # doctest: +SKIP
    'holds'
    """
    if isinstance(max_layer, bool) or not isinstance(max_layer, int) or not 0 <= max_layer < model.n_layers:
        raise ValueError(f"max_layer={max_layer!r}: give a block index from 0 to {model.n_layers - 1} for {model.model_id}")
    _rate_args(min_rate, confidence)
    judged = _judged_items(family, split)
    lens = lens_ranks(model, [(it.prompt, it.answer) for it in judged], max_batch_size=max_batch_size)
    scores = score_items(model, [(it.prompt, it.answer) for it in judged], [None], max_batch_size=max_batch_size).rows(0)
    firsts = [lens.first_top1(i) for i in range(len(judged))]
    oks = [f is not None and f <= max_layer for f in firsts]
    never = model.n_layers  # shown as "never"
    outcomes = [
        _outcome(it, s, model, ok, float(never if f is None else f))
        for it, s, ok, f in zip(judged, scores, oks, firsts, strict=True)
    ]
    return _rate_result(
        model, judged, split, oks, outcomes,
        subject=f"the answer is top-1 in the logit lens by block {max_layer} on ≥ {100 * min_rate:g}% of items",
        label=f"top-1 by L{max_layer}", min_rate=min_rate, method=method, confidence=confidence, intervention=None,
        higher_is_better=False, value_kind="first top-1 layer", lens_layers=never,
    )


# --------------------------------------------------------------------------- effects


def _effect_interval(values: Sequence[float], label: str, split: str, confidence: float, n_resamples: int,
                     seed: int) -> Interval:
    if len(values) < 2:
        raise FamilyError(
            f"an effect's interval needs at least 2 items, and the {_SPLIT_WORDS[split]} are {len(values)}: grow the "
            "family, or judge on split='all'"
        )
    return bootstrap_interval(values, confidence=confidence, n_resamples=n_resamples, seed=seed, label=label,
                              items=_SPLIT_WORDS[split])


def check_logit_diff_effect(
    model: Lab,
    family: Family,
    *,
    min_mean: float = 0.0,
    split: Split = "heldout",
    confidence: float = 0.95,
    n_resamples: int = 9999,
    seed: int = 0,
    intervention: Intervention | None = None,
    max_batch_size: int | None = None,
) -> EffectFamilyResult:
    """Is the mean logit difference ``logit(answer) - logit(wrong)`` at least ``min_mean``?

    Every item needs a ``wrong`` foil (IOI items have the subject); the logits are the answer's and
    the foil's first tokens right after the prompt. The interval is a seeded BCa bootstrap of the
    mean; items whose own difference is below ``min_mean`` are listed as failing.

    >>> check_logit_diff_effect(model, ioi(n=40), min_mean=1.0).verdict                     # doctest: +SKIP
    'holds'
    """
    if isinstance(min_mean, bool) or not isinstance(min_mean, (int, float)) or not math.isfinite(min_mean):
        raise ValueError(f"min_mean={min_mean!r}: give a logit difference, e.g. min_mean=2.0")
    judged = _judged_items(family, split)
    missing = [it for it in judged if it.wrong is None]
    if missing:
        raise FamilyError(
            f"{len(missing)} of the {len(judged)} items of {judged.name!r} have no wrong= foil, e.g. {missing[0]}; a "
            "logit difference needs one per item (ioi() sets it; from_list takes (prompt, answer, wrong))"
        )
    for it in judged:
        a, w = model.answer_tokens(it.answer)[0], model.answer_tokens(it.wrong)[0]  # type: ignore[arg-type]
        if a == w:
            raise FamilyError(
                f"item {it}: the answer and the foil start with the same token {model.to_str([a])[0]!r}, so their "
                "first-token logits are equal; give a foil that differs in its first token"
            )
    scores = score_items(model, [(it.prompt, it.answer) for it in judged], [intervention],
                         foils=[it.wrong for it in judged], max_batch_size=max_batch_size).rows(0)
    diffs = [float(s.logit_diff) for s in scores]  # type: ignore[arg-type]
    label = "logit difference (answer - wrong)"
    interval = _effect_interval(diffs, label, split, confidence, n_resamples, seed)
    j = judge(interval, float(min_mean), ">=")
    outcomes = tuple(_outcome(it, s, model, d >= min_mean, d) for it, s, d in zip(judged, scores, diffs, strict=True))
    return EffectFamilyResult(
        **_common(model, judged, split), subject=f"the mean logit difference (answer - wrong) is ≥ {min_mean:g}",  # type: ignore[arg-type]
        label=label, intervention=None if intervention is None else str(intervention), threshold=float(min_mean),
        direction=">=", verdict=j.verdict, passed=j.verdict == "holds", n=len(diffs), estimate=interval.estimate,
        low=interval.low, high=interval.high, method=interval.method, note=interval.note, confidence=confidence,
        more_items=j.more_items, items=outcomes,
    )


# --------------------------------------------------------------------------- necessity and sufficiency


Claim = Literal["necessary", "unnecessary"]


def _mean_reference(model: Lab, family: Family) -> Callable[[int], tuple[tuple[int, ...], ...]]:
    """The family's prompts (every split), grouped by token count: a mean ablation's reference distribution."""
    by_len: dict[int, list[tuple[int, ...]]] = {}
    for it in family:
        toks = tuple(int(t) for t in model.tokens(it.prompt).tolist())
        by_len.setdefault(len(toks), [])
        if toks not in by_len[len(toks)]:
            by_len[len(toks)].append(toks)

    def reference(prompt_len: int) -> tuple[tuple[int, ...], ...]:
        refs = by_len.get(prompt_len, [])
        if len(refs) < 2:
            lengths = ", ".join(f"{n} tokens: {len(v)}" for n, v in sorted(by_len.items()))
            raise FamilyError(
                f"a mean ablation averages over the family's prompts of the same token count, and {family.name!r} has "
                f"{len(refs)} prompt(s) of {prompt_len} tokens ({lengths}); give items of equal token length, or "
                "ablation='zero'"
            )
        return tuple(refs)

    return reference


def _ablations_for(
    model: Lab, family: Family, comps: Sequence[object], controls: Sequence[Sequence[object]], how: str
) -> list[Intervention | None] | Callable[[Sequence[PreparedItem]], list[Intervention | None]]:
    """[clean, the components, each control]: one list for every item under a zero or skip ablation
    (items of any length then share padded passes), a list per length group under a mean one."""
    if how != "mean":
        return [None, ablate(model, comps, how), *(ablate(model, c, how) for c in controls)]  # type: ignore[arg-type]
    reference = _mean_reference(model, family)

    def make(group: Sequence[PreparedItem]) -> list[Intervention | None]:
        ref = reference(group[0].prompt_len)
        rows: list[Intervention | None] = [None, ablate(model, comps, how, reference=ref)]  # type: ignore[arg-type]
        rows += [ablate(model, c, how, reference=ref) for c in controls]  # type: ignore[arg-type]
        return rows

    return make


def check_necessity_family(
    model: Lab,
    family: Family,
    component: ComponentSpec,
    *,
    claim: Claim = "necessary",
    ablation: str = "mean",
    min_effect: float | None = None,
    max_effect: float | None = None,
    metric: Metric = "logprob",
    n_controls: int = DEFAULT_CONTROLS,
    alpha: float = 0.05,
    split: Split = "heldout",
    confidence: float = 0.95,
    n_resamples: int = 9999,
    seed: int = 0,
    max_batch_size: int | None = None,
) -> EffectFamilyResult:
    """Is ``component`` necessary for the family's answers (or, with ``claim="unnecessary"``, not needed)?

    Item by item, the drop in the answer's score (``metric``: joint log-prob in nats by default)
    when the component is ablated, and when each of ``n_controls`` random sets of components of the
    same kind and size is (:func:`~pytest_annotate.checks.necessity.negative_controls`, drawn with
    ``seed``). Every item under the clean model, the component and the controls runs batched: one
    pass per token length under ``"mean"``, right-padded passes across lengths under ``"zero"`` and
    ``"skip"`` (:func:`~pytest_annotate.scoring.items.pad_batches`). ``ablation="mean"`` (the
    default) replaces the component's output by its mean over the family's prompts of the same token length (dev and held-out alike: the reference
    distribution is the family's); ``"zero"`` and ``"skip"`` need no reference.

    ``necessary``: **holds** when the bootstrap interval of the mean drop is wholly ``>= min_effect``
    (default 1 nat) **and** the component's drops exceed its controls' at ``alpha`` (a relabelling
    permutation test, :func:`pytest_annotate.stats.control_test`); **fails** when the interval is
    wholly below ``min_effect``, or the component drops the answer no more than its controls do on
    average; **inconclusive** otherwise. With ``n_controls=0`` the interval alone decides.

    ``unnecessary``: holds when the interval of the mean drop is wholly ``<= max_effect`` (default
    0.1 nat); the controls are measured and shown for context.

    >>> check_necessity_family(model, windows("months-w4", "months", 4), "L3").verdict         # doctest: +SKIP
    'holds'
    >>> check_necessity_family(model, windows("months-w4", "months", 4), "L8",
    ...                        claim="unnecessary", max_effect=0.5).verdict                    # doctest: +SKIP
    'holds'
    """
    from pytest_annotate.checks.necessity import DEFAULT_THRESHOLDS, negative_controls

    if claim not in ("necessary", "unnecessary"):
        raise ValueError(f"claim={claim!r}: give 'necessary' or 'unnecessary'")
    check_metric(metric)
    check_ablation(ablation)
    if ablation not in FAMILY_ABLATIONS:
        raise ValueError(
            f"ablation={ablation!r} is not supported over a family yet: give one of {', '.join(FAMILY_ABLATIONS)} "
            "(a resample would draw an item's own prompt for one of the items)"
        )
    defaults = DEFAULT_THRESHOLDS[metric]
    if claim == "necessary":
        if max_effect is not None:
            raise ValueError("max_effect is for claim='unnecessary'; a necessity claim takes min_effect")
        bound = defaults.min_drop if min_effect is None else float(min_effect)
    else:
        if min_effect is not None:
            raise ValueError("min_effect is for claim='necessary'; an unnecessary claim takes max_effect")
        bound = defaults.max_drop if max_effect is None else float(max_effect)
    if isinstance(n_controls, bool) or not isinstance(n_controls, int) or n_controls < 0:
        raise ValueError(f"n_controls={n_controls!r}: give a whole number >= 0 (5 is the default)")
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not 0 < alpha < 1:
        raise ValueError(f"alpha={alpha!r}: give a significance level strictly between 0 and 1, e.g. 0.05")
    judged = _judged_items(family, split)
    comps = parse_components(component, model)
    controls = negative_controls(model, comps, n_controls, seed=seed)
    scores = score_items(model, [(it.prompt, it.answer) for it in judged],
                         _ablations_for(model, family, comps, controls, ablation), max_batch_size=max_batch_size)
    drops, ctrl = [], []
    for row in scores.scores:
        clean = AnswerMetrics.of(row[0].score)
        drops.append(clean.drop_to(AnswerMetrics.of(row[1].score), metric))
        ctrl.append([clean.drop_to(AnswerMetrics.of(s.score), metric) for s in row[2:]])
    unit = "nats" if metric == "logprob" else ""
    label = f"drop in {METRIC_WORDS[metric].replace(' (nats)', '')}" + (f" ({unit})" if unit else "")
    interval = _effect_interval(drops, label, split, confidence, n_resamples, seed)
    direction = ">=" if claim == "necessary" else "<="
    j = judge(interval, bound, direction)  # type: ignore[arg-type]
    names = [format_components(c) for c in controls]
    summary = None
    if controls:
        test = control_test(drops, np.array(ctrl), alternative="greater", n_resamples=n_resamples, seed=seed)
        summary = _summary(test, names, alpha)
    verdict = _with_control(j.verdict, summary) if claim == "necessary" else j.verdict
    what = format_components(comps)
    kinds = kinds_of(comps) if len(comps) == 1 else f"sets of {len(comps)} {kinds_of(comps)}"
    bound_text = f"{bound:g}{' nat' if unit else ''}{'s' if unit and bound != 1 else ''}"
    if claim == "necessary":
        subject = (f"{what} is necessary: {ablation}-ablating it drops the {METRIC_WORDS[metric].split(' (')[0]} by ≥ "
                   f"{bound_text} on average" + (f", more than random {kinds}" if controls else ""))
    else:
        subject = (f"{what} is not needed: {ablation}-ablating it drops the {METRIC_WORDS[metric].split(' (')[0]} by "
                   f"≤ {bound_text} on average")
    ok = (lambda d: d >= bound) if claim == "necessary" else (lambda d: d <= bound)
    outcomes = tuple(
        _outcome(it, row[1], model, ok(d), d, float(np.mean(c)) if c else None)
        for it, row, d, c in zip(judged, scores.scores, drops, ctrl, strict=True)
    )
    return EffectFamilyResult(
        **_common(model, judged, split), subject=subject, label=label, threshold=bound, direction=direction,  # type: ignore[arg-type]
        verdict=verdict, passed=verdict == "holds", n=len(drops), estimate=interval.estimate, low=interval.low,
        high=interval.high, method=interval.method, note=interval.note, confidence=confidence,
        more_items=j.more_items, control=summary, items=outcomes, higher_is_better=claim == "necessary",
        component=what, ablation=ablation, metric=metric,
    )


def check_sufficiency_family(
    model: Lab,
    family: Family,
    keep: ComponentSpec,
    *,
    k: int = 1,
    min_rate: float = 0.9,
    n_controls: int = DEFAULT_CONTROLS,
    alpha: float = 0.05,
    split: Split = "heldout",
    method: str = "clopper-pearson",
    confidence: float = 0.95,
    n_resamples: int = 9999,
    seed: int = 0,
    max_batch_size: int | None = None,
) -> FamilyResult:
    """With only ``keep`` running, is the answer top-``k`` on at least ``min_rate`` of the items, and
    does the circuit keep the answer more likely than random circuits of the same size?

    The rate gets a Clopper-Pearson interval; the control test compares, item by item, the answer's
    log-prob under the circuit with its log-prob under each of ``n_controls`` random keep-only
    circuits with as many components of each kind (a relabelling permutation test). Holds when the
    interval is wholly ``>= min_rate`` and the circuit beats its controls at ``alpha``; fails when
    the interval is wholly below, or the circuit does no better than its controls on average.

    >>> check_sufficiency_family(model, windows("months-w4", "months", 4), "L0-L16", min_rate=0.5).verdict  # doctest: +SKIP
    'holds'
    """
    from pytest_annotate.checks.necessity import negative_controls

    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise ValueError(f"k={k!r}: give a whole number >= 1 (1 = the answer is the top token)")
    _rate_args(min_rate, confidence)
    judged = _judged_items(family, split)
    comps = parse_components(keep, model)
    circuit = keep_only(model, comps)
    controls = negative_controls(model, comps, n_controls, seed=seed)
    ivs: list[Intervention | None] = [circuit, *(keep_only(model, c) for c in controls)]
    scores = score_items(model, [(it.prompt, it.answer) for it in judged], ivs, max_batch_size=max_batch_size)
    oks = [row[0].score.rank < k for row in scores.scores]
    lp = [row[0].score.joint_logprob for row in scores.scores]
    ctrl = [[s.score.joint_logprob for s in row[1:]] for row in scores.scores]
    summary = None
    if controls:
        test = control_test(lp, np.array(ctrl), alternative="greater", n_resamples=n_resamples, seed=seed)
        summary = _summary(test, [format_components(c) for c in controls], alpha)
    outcomes = [
        _outcome(it, row[0], model, ok, row[0].score.rank, float(np.mean(c)) if c else None)
        for it, row, ok, c in zip(judged, scores.scores, oks, ctrl, strict=True)
    ]
    label = "top-1" if k == 1 else f"top-{k}"
    result = _rate_result(
        model, judged, split, oks, outcomes,
        subject=f"keeping only {format_components(comps)}, the answer is {label} on ≥ {100 * min_rate:g}% of items"
        + (", and likelier than with random circuits of the same size" if controls else ""),
        label=label, min_rate=min_rate, method=method, confidence=confidence, intervention=None, control=summary,
        control_label="answer log-prob (nats) with only the circuit running", higher_is_better=False,
    )
    return result


# --------------------------------------------------------------------------- the terminal summary


def family_summary_line(results: Iterable[object]) -> str | None:
    """``pytest-annotate: family claims: 12 hold, 1 inconclusive, 2 fail`` (None when there were none).

    >>> family_summary_line([]) is None
    True
    """
    counts = Counter(r.verdict for r in results if getattr(r, "is_family_claim", False))  # type: ignore[attr-defined]
    if not counts:
        return None
    return (f"pytest-annotate: family claims: {counts.get('holds', 0)} hold, {counts.get('inconclusive', 0)} "
            f"inconclusive, {counts.get('fails', 0)} fail")


# --------------------------------------------------------------------------- assert twins

_INCONCLUSIVE = "An inconclusive verdict fails the assertion, with INCONCLUSIVE in its headline."

assert_rank_rate = asserting(check_rank_rate, "assert_rank_rate", f"""Assert that the answer's rank is
``<= max_rank`` on at least ``min_rate`` of the family's items (see :func:`check_rank_rate`). {_INCONCLUSIVE}

    >>> assert_rank_rate(model, windows("months-w4", "months", 4), max_rank=2)   # doctest: +SKIP
    """)
assert_top_token_rate = asserting(check_top_token_rate, "assert_top_token_rate", f"""Assert that the answer
is top-``k`` on at least ``min_rate`` of the family's items (see :func:`check_top_token_rate`). {_INCONCLUSIVE}

    >>> assert_top_token_rate(model, windows("months-w4", "months", 4), min_rate=0.5)   # doctest: +SKIP
    """)
assert_prob_rate = asserting(check_prob_rate, "assert_prob_rate", f"""Assert that the answer has prob
``>= min_prob`` on at least ``min_rate`` of the family's items (see :func:`check_prob_rate`). {_INCONCLUSIVE}

    >>> assert_prob_rate(model, windows("months-w4", "months", 4), min_prob=0.1, min_rate=0.5)   # doctest: +SKIP
    """)
assert_logit_lens_rate = asserting(check_logit_lens_rate, "assert_logit_lens_rate", f"""Assert that the
answer is top-1 in the logit lens by block ``max_layer`` on at least ``min_rate`` of the items (see
:func:`check_logit_lens_rate`). {_INCONCLUSIVE}

    >>> assert_logit_lens_rate(model, windows("months-w4", "months", 4), max_layer=17, min_rate=0.5)   # doctest: +SKIP
    """)
assert_logit_diff_effect = asserting(check_logit_diff_effect, "assert_logit_diff_effect", f"""Assert that the
mean logit difference (answer - wrong) is ``>= min_mean`` (see :func:`check_logit_diff_effect`). {_INCONCLUSIVE}

    >>> assert_logit_diff_effect(model, ioi(n=40), min_mean=1.0)   # doctest: +SKIP
    """)
assert_necessary_family = asserting(check_necessity_family, "assert_necessary_family", f"""Assert that
ablating ``component`` drops the family's answers by ``>= min_effect`` on average, more than random
components of its kind (see :func:`check_necessity_family`). {_INCONCLUSIVE}

    >>> assert_necessary_family(model, windows("months-w4", "months", 4), "L3")   # doctest: +SKIP
    """, claim="necessary")
assert_unnecessary_family = asserting(check_necessity_family, "assert_unnecessary_family", f"""Assert that
ablating ``component`` drops the family's answers by ``<= max_effect`` on average (see
:func:`check_necessity_family` with ``claim="unnecessary"``). {_INCONCLUSIVE}

    >>> assert_unnecessary_family(model, windows("months-w4", "months", 4), "L8", max_effect=0.5)   # doctest: +SKIP
    """, claim="unnecessary")
assert_sufficient_family = asserting(check_sufficiency_family, "assert_sufficient_family", f"""Assert that
with only ``keep`` running the answer is top-``k`` on at least ``min_rate`` of the items, and likelier than
with random circuits of the same size (see :func:`check_sufficiency_family`). {_INCONCLUSIVE}

    >>> assert_sufficient_family(model, windows("months-w4", "months", 4), "L0-L16", min_rate=0.5)   # doctest: +SKIP
    """)


__all__ = [
    "SPLITS",
    "ControlSummary",
    "EffectFamilyResult",
    "FamilyResult",
    "ItemOutcome",
    "Split",
    "assert_logit_diff_effect",
    "assert_logit_lens_rate",
    "assert_necessary_family",
    "assert_prob_rate",
    "assert_rank_rate",
    "assert_sufficient_family",
    "assert_top_token_rate",
    "assert_unnecessary_family",
    "check_logit_diff_effect",
    "check_logit_lens_rate",
    "check_necessity_family",
    "check_prob_rate",
    "check_rank_rate",
    "check_sufficiency_family",
    "check_top_token_rate",
    "family_summary_line",
]
