"""Necessity and sufficiency: "MLP9 is needed for ' May'", "L0-L7 + MLP9 is enough to say ' 5'".

* :func:`check_necessity` / :func:`assert_layer_necessary`: ablating the component drops the
  answer's score by at least ``min_drop`` **and** by ``control_margin`` more than ablating random
  other components of the same kind (the *negative control*: another MLP for ``MLP9``, another
  head for ``L5H5``, a same-size set of blocks for ``L0-L7``), under every ablation asked for.
* :func:`assert_layer_unnecessary`: ablating it drops the score by at most ``max_drop`` under every
  ablation (the controls are measured and shown for context).
* :func:`check_sufficiency` / :func:`assert_circuit_sufficient`: with only the kept components
  running (:func:`pytest_annotate.interventions.ablations.keep_only`), the answer still has rank
  ``<= max_rank`` (and probability ``>= min_prob``); a flat output under the circuit (the answer
  tied with other tokens for the top logit) fails it, whatever ``max_rank``.

Ranks count ties against the answer (:mod:`pytest_annotate.scoring.ranks`), so with ``metric="rank"``
an ablation that flattens the output (every logit equal) raises the answer's rank to
``d_vocab - 1``: the answer is lost, which is what a necessity claim measures.

The named component and its controls, under every ablation type, run in **one** batched forward
pass (:func:`pytest_annotate.scoring.sweeps.score_interventions`). Controls are drawn with
``random.Random(seed)``, so a test draws the same controls on every run. The control effect is
the **median** drop over the controls, so that one control that happens to matter as well (block 0
matters for everything) does not sink a specific claim; every control's drop is in the report.

Scores (:data:`~pytest_annotate.scoring.sweeps.Metric`): ``logprob`` (the answer's joint log-probability,
nats; the default), ``prob`` (joint probability), ``logit`` (first token's logit), ``rank`` (greedy
rank; its "drop" is the rise in rank). Defaults for the thresholds are per metric
(:data:`DEFAULT_THRESHOLDS`): a necessary component costs at least 1 nat (the answer becomes
``e`` ≈ 2.7 times less likely) and 0.5 nat more than a random one; an unnecessary one at most
0.1 nat (the answer keeps ≥ 90% of its probability).

>>> months = ["June July August September", "March April May June", "May June July August"]
>>> assert_layer_necessary(model, "January February March April", " May", "L12H0",
...                        reference=months)                                 # doctest: +SKIP
>>> assert_layer_unnecessary(model, "January February March April", " May", "L6",
...                          reference=months)                               # doctest: +SKIP
>>> assert_circuit_sufficient(model, "1 2 3 4", " 5", keep="L0-L16")       # doctest: +SKIP
"""

from __future__ import annotations

import random
import statistics
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

from pytest_annotate.errors import ComponentError
from pytest_annotate.interventions.ablations import (
    ABLATIONS,
    AblationName,
    Intervention,
    ablate,
    check_ablation,
    keep_only,
)
from pytest_annotate.interventions.components import (
    Component,
    ComponentSpec,
    all_components,
    format_components,
    kinds_of,
    parse_components,
)
from pytest_annotate.results import (
    Measurement,
    Op,
    Result,
    asserting,
    fmt_prob,
    fmt_prompt,
    fmt_token,
    kind,
)
from pytest_annotate.scoring.answers import score_answer
from pytest_annotate.scoring.sweeps import (
    METRIC_WORDS,
    AnswerMetrics,
    Metric,
    check_metric,
    fmt_drop,
    score_interventions,
)

if TYPE_CHECKING:
    from pytest_annotate.lab import Lab, Prompt
    from pytest_annotate.scoring.reading import Prediction

Claim = Literal["necessary", "unnecessary"]


@dataclass(frozen=True)
class Thresholds:
    """Default thresholds for one metric."""

    min_drop: float
    control_margin: float
    max_drop: float


DEFAULT_THRESHOLDS: dict[str, Thresholds] = {
    "logprob": Thresholds(min_drop=1.0, control_margin=0.5, max_drop=0.1),
    "prob": Thresholds(min_drop=0.10, control_margin=0.05, max_drop=0.02),
    "logit": Thresholds(min_drop=1.0, control_margin=0.5, max_drop=0.2),
    "rank": Thresholds(min_drop=1, control_margin=1, max_drop=0),
}
DEFAULT_CONTROLS = 5


# --------------------------------------------------------------------------- results


@dataclass(frozen=True)
class ControlRun:
    """One negative control: random components of the same kind, ablated the same way."""

    components: str
    ablated: AnswerMetrics
    drop: float = field(metadata=kind("logit"))


@dataclass(frozen=True)
class AblationVerdict:
    """The claim under one ablation type: the component's drop, its controls', and the verdict."""

    ablation: str
    ablated: AnswerMetrics
    drop: float = field(metadata=kind("logit"))
    controls: tuple[ControlRun, ...]
    control_drop: float | None = field(metadata=kind("logit"))
    """Median drop over the controls (``None`` without controls)."""
    passed: bool
    why: str
    """What missed, and by how much (empty when it passed)."""


@dataclass(frozen=True, eq=False)
class NecessityResult(Result):
    """Verdict of :func:`check_necessity`: a row per ablation type; all must agree."""

    claimed: Claim
    """``necessary`` or ``unnecessary``: which way the claim goes."""
    component: str
    model_id: str
    prompt: str
    str_tokens: tuple[str, ...]
    answer: str
    answer_str_tokens: tuple[str, ...]
    metric: Metric
    min_drop: float | None = field(metadata=kind("exact"))
    max_drop: float | None = field(metadata=kind("exact"))
    control_margin: float | None = field(metadata=kind("exact"))
    control_kind: str
    """What the controls are: ``MLPs`` for one MLP, ``sets of 8 blocks`` for ``L0-L7``."""
    seed: int
    reference_size: int
    clean: AnswerMetrics
    rows: tuple[AblationVerdict, ...]
    passed: bool

    def __getitem__(self, ablation: str) -> AblationVerdict:
        for row in self.rows:
            if row.ablation == ablation:
                return row
        raise KeyError(f"{ablation!r} was not checked; checked: {', '.join(r.ablation for r in self.rows)}")

    @property
    def component_kinds(self) -> str:
        """What was ablated, in words: ``MLPs``, ``heads``, ``blocks``, ``components``."""
        return self.control_kind.split(" ")[-1]

    @property
    def claim(self) -> str:
        hows = " and ".join(r.ablation for r in self.rows)
        return (f"{self.component} is {self.claimed} for {_answer_words(self.answer_str_tokens)} after {self.prompt!r} "
                f"({hows} ablation)")

    def measured(self) -> str:
        drops = ", ".join(f"{r.ablation} {fmt_drop(r.drop, self.metric)}" for r in self.rows)
        return f"drop in {METRIC_WORDS[self.metric]}: {drops}"

    def measurements(self) -> tuple[Measurement, ...]:
        words, unit = _MEASURED_WORDS[self.metric], "nats" if self.metric == "logprob" else ""
        op: Op = ">=" if self.claimed == "necessary" else "<="
        threshold = self.min_drop if self.claimed == "necessary" else self.max_drop
        out = [
            Measurement(f"{row.ablation}-ablating {self.component}: drop in answer {words}", row.drop, op, threshold,
                        primary=True, unit=unit)
            for row in self.rows
        ]
        out += [
            Measurement(f"{row.ablation}-ablating random other {self.control_kind} (median): drop in answer {words}",
                        row.control_drop, unit=unit)
            for row in self.rows
            if row.control_drop is not None
        ]
        return tuple(out)

    def _condition(self) -> str:
        unit = _unit(self.metric)
        verb = _VERBS[self.metric]
        if self.claimed == "unnecessary":
            return f"ablating it must {verb} by at most {_num(self.max_drop, self.metric)}{unit}"
        text = f"ablating it must {verb} by at least {_num(self.min_drop, self.metric)}{unit}"
        if self.control_margin is not None and self.rows and self.rows[0].controls:
            n = len(self.rows[0].controls)
            text += (f", and by {_num(self.control_margin, self.metric)}{unit} more than ablating {n} random other "
                     f"{self.control_kind} does (their median; seed {self.seed})")
        return text

    def report(self) -> str:
        m = self.metric
        failed = [r for r in self.rows if not r.passed]
        lines = [self.headline(), f"  claim     {self._condition()}"]
        for r in failed:
            lines.append(f"  missed    {r.ablation}: {r.why}")
        if not self.passed:
            lines += [f"  {'next' if i == 0 else '':<8}  {h}" for i, h in enumerate(self._next_steps(failed))]
        lines += [
            "",
            f"Tokenized prompt: {fmt_prompt(self.str_tokens)}",
            f"Tokenized answer: {fmt_prompt(self.answer_str_tokens)}",
            f"Model: {self.model_id}" + (f"; mean/resample over {self.reference_size} reference prompts"
                                         if self.reference_size else ""),
            f"{'':<10} {'rank':>6} {'logit':>7} {'prob':>8} {'log-prob':>9} {'drop':>10}  {'controls (median)':>18}  verdict",
            f"{'clean':<10} {self.clean.rank:>6} {self.clean.logit:>7.2f} {fmt_prob(self.clean.prob):>8} "
            f"{self.clean.log_prob:>9.3f}",
        ]
        for r in self.rows:
            a = r.ablated
            ctrl = "-" if r.control_drop is None else fmt_drop(r.control_drop, m)
            lines.append(
                f"{r.ablation:<10} {a.rank:>6} {a.logit:>7.2f} {fmt_prob(a.prob):>8} {a.log_prob:>9.3f} "
                f"{fmt_drop(r.drop, m):>10}  {ctrl:>18}  {'ok' if r.passed else 'FAILED'}"
            )
        if any(r.controls for r in self.rows):
            lines.append(f"Negative controls (random other {self.control_kind}, seed {self.seed}), drop in "
                         f"{METRIC_WORDS[m]}:")
            for r in self.rows:
                each = ", ".join(f"{c.components} {fmt_drop(c.drop, m)}" for c in r.controls)
                lines.append(f"  {r.ablation:<9} {each}")
        return "\n".join(lines)

    def _next_steps(self, failed: Sequence[AblationVerdict]) -> list[str]:
        sweep_kind = {"blocks": "block", "MLPs": "mlp", "attention layers": "attn", "heads": "head"}.get(
            self.component_kinds, "block")
        sweep_hint = (f"sweep(model, {self.prompt!r}, {_answer_text(self.answer_str_tokens)!r}, {sweep_kind!r}, "
                      f"ablation={failed[0].ablation!r}) ranks each of the {sweep_kind}s by its effect")
        hints = []
        if self.claimed == "necessary":
            if any("below min_drop" in r.why for r in failed):
                hints.append(f"{self.component} matters less than claimed here; " + sweep_hint)
            held = [r.ablation for r in self.rows if r.passed]
            if held:
                lost = [r.ablation for r in failed]
                hint = f"the ablation types disagree: the claim holds under {' and '.join(held)} but not {' and '.join(lost)}"
                if "zero" in held and "mean" in lost:
                    hint += ("; a zero-ablation effect that mean ablation does not reproduce usually means the output "
                             "is large but much the same on every prompt, and zeroing it is off-distribution")
                hints.append(hint)
            if any("controls" in r.why for r in failed):
                hints.append(f"random other {self.control_kind} hurt the answer about as much: the effect is not "
                             f"specific to {self.component}; see the controls below, or raise n_controls")
        else:
            hints.append(f"the answer does depend on {self.component}; " + sweep_hint)
        return hints


@dataclass(frozen=True, eq=False)
class SufficiencyResult(Result):
    """Verdict of :func:`check_sufficiency`: the answer under the circuit, next to the full model."""

    circuit: str
    """``keep L0-L7 + MLP9``."""
    removed: str
    """What the circuit skips, e.g. ``skips L8 + L10-L11 + attn9``."""
    full: Prediction
    under_circuit: Prediction
    max_rank: int
    min_prob: float | None
    passed: bool

    @property
    def claim(self) -> str:
        prob = f" with prob >= {fmt_prob(self.min_prob)}" if self.min_prob is not None else ""
        where = "top-1" if self.max_rank == 0 else f"within rank {self.max_rank}"
        return f"'{self.circuit}' is sufficient: {self.full.answer!r} stays {where}{prob} after {self.full.prompt!r}"

    def measured(self) -> str:
        return f"rank {self.under_circuit.rank}, prob {fmt_prob(self.under_circuit.prob)}"

    def measurements(self) -> tuple[Measurement, ...]:
        c = self.under_circuit
        return (
            Measurement(f"answer rank under '{self.circuit}'", c.rank, "<=", float(self.max_rank), primary=True),
            Measurement(f"answer prob under '{self.circuit}'", c.prob, ">=" if self.min_prob is not None else None,
                        self.min_prob, primary=self.min_prob is not None),
            Measurement("answer prob, full model", self.full.prob),
        )

    def report(self) -> str:
        c, f = self.under_circuit, self.full
        lines = [self.headline()]
        tie = c.top_tie
        if tie is not None:
            lines.append(f"  missed    under the circuit {tie.message()}, and a flat output makes no claim hold")
        elif c.rank > self.max_rank:
            short = c.rank - self.max_rank
            lines.append(f"  missed    the answer has rank {c.rank} under the circuit, {short} place"
                         f"{'s' * (short != 1)} worse than the allowed {self.max_rank}")
        if self.min_prob is not None and c.prob < self.min_prob:
            lines.append(f"  missed    prob {fmt_prob(c.prob)} under the circuit, "
                         f"{100 * (self.min_prob - c.prob):.2f} points short of {fmt_prob(self.min_prob)}")
        if not self.passed:
            lines.append(f"  next      the circuit lacks something the answer needs: compare the top tokens below; "
                         f"sweep(model, {f.prompt!r}, {f.answer!r}, 'block') ranks the blocks the full model uses, "
                         "so keep the high-ranked ones the circuit skips")
        lines += [
            "",
            f"Circuit: {self.circuit} ({self.removed}; the embeddings, ln_final and unembed always run)",
            f"Tokenized prompt: {fmt_prompt(f.prompt_tokens)}",
            f"Tokenized answer: {fmt_prompt([t.token for t in f.answer_tokens])}",
            f"{'':<12} {'rank':>6} {'logit':>7} {'prob':>8}   top-1 if not the answer",
        ]
        for name, p in (("full model", f), ("circuit", c)):
            top = p.top_tokens[0]
            answer_top = top.token_id == p.answer_tokens[p.top_step].token_id
            other = "" if answer_top and p.rank == 0 else f"{fmt_token(top.token)} {fmt_prob(top.prob)}"
            lines.append(f"{name:<12} {p.rank:>6} {p.logit:>7.2f} {fmt_prob(p.prob):>8}   {other}")
        lines.append(f"Top {len(c.top_tokens)} under the circuit:")
        lines += [s.line(i) for i, s in enumerate(c.top_tokens)]
        lines.append(f"Top {len(f.top_tokens)} of the full model:")
        lines += [s.line(i) for i, s in enumerate(f.top_tokens)]
        return "\n".join(lines)


# --------------------------------------------------------------------------- negative controls


def negative_controls(
    lab: Lab, components: Sequence[Component], n: int, *, seed: int = 0
) -> list[tuple[Component, ...]]:
    """``n`` random sets of components shaped like ``components``: the same number of each kind,
    drawn from the components not named (when there are too few, from all but the named set).

    Deterministic in ``seed``; never returns the named set itself, nor the same set twice.

    >>> negative_controls(lab, parse_components("MLP9", lab), 3)            # doctest: +SKIP
    [(Component('MLP13'),), (Component('MLP14'),), (Component('MLP1'),)]
    """
    if n <= 0:
        return []
    need = Counter(c.kind for c in components)
    for k in need:
        if k in ("embed", "pos_embed"):
            raise ComponentError(
                f"{k} has no other component of its kind to serve as a negative control; pass n_controls=0"
            )
    named = frozenset(components)
    rng = random.Random(seed)
    pools = {k: [c for c in all_components(lab, k) if c not in named] for k in need}
    fallback = {k: list(all_components(lab, k)) for k in need}
    out: list[tuple[Component, ...]] = []
    seen = {named}
    for _ in range(50 * n):
        if len(out) == n:
            break
        pick: list[Component] = []
        for k, count in sorted(need.items()):
            pool = pools[k] if len(pools[k]) >= count else fallback[k]
            if len(pool) < count:
                break
            pick += rng.sample(pool, count)
        chosen = frozenset(pick)
        if len(pick) == len(components) and chosen not in seen:
            seen.add(chosen)
            out.append(tuple(sorted(pick, key=lambda c: c.sort_key)))
    if not out:
        raise ComponentError(
            f"no negative control exists for {format_components(components)} in {lab.model_id}: every "
            f"same-kind set is the named one; pass n_controls=0"
        )
    return out


# --------------------------------------------------------------------------- necessity


def check_necessity(
    model: Lab,
    prompt: Prompt,
    answer: str | int | Sequence[int],
    component: ComponentSpec,
    *,
    claim: Claim = "necessary",
    ablation: AblationName | Sequence[AblationName] = ("zero", "mean"),
    min_drop: float | None = None,
    max_drop: float | None = None,
    metric: Metric = "logprob",
    reference: Iterable[Prompt] | None = None,
    control_margin: float | None = None,
    n_controls: int = DEFAULT_CONTROLS,
    seed: int = 0,
    max_batch_size: int | None = None,
) -> NecessityResult:
    """Is ``component`` necessary (or, with ``claim="unnecessary"``, not) for ``answer`` after ``prompt``?

    Args:
        component: a name (``"MLP9"``, ``"L5H5"``), a range or a list (``"L0-L7"``): ablated together.
        ablation: one ablation or several; the claim must hold under each.
        min_drop: necessary: the least drop of the metric (default per metric, :data:`DEFAULT_THRESHOLDS`).
        max_drop: unnecessary: the largest drop allowed.
        metric: ``logprob`` (default), ``prob``, ``logit`` or ``rank``.
        reference: prompts for ``mean`` and ``resample`` (same token count as ``prompt``); required
            for those, since the mean is over a distribution the claim must name.
        control_margin: necessary: how much more than the controls' median drop the component must cost.
        n_controls: how many random same-kind components (or same-shape sets) to ablate as controls.
        seed: draws the controls (and the resample prompt).
    """
    if claim not in ("necessary", "unnecessary"):
        raise ValueError(f"claim must be 'necessary' or 'unnecessary', not {claim!r}")
    check_metric(metric)
    hows = (ablation,) if isinstance(ablation, str) else tuple(dict.fromkeys(ablation))
    if not hows:
        raise ValueError(f"give at least one ablation: {', '.join(ABLATIONS)}")
    for how in hows:
        check_ablation(how)
    defaults = DEFAULT_THRESHOLDS[metric]
    if claim == "necessary":
        if max_drop is not None:
            raise ValueError("max_drop is for claim='unnecessary' (assert_layer_unnecessary); a necessity claim takes min_drop")
        min_drop = defaults.min_drop if min_drop is None else float(min_drop)
        control_margin = defaults.control_margin if control_margin is None else float(control_margin)
    else:
        if min_drop is not None or control_margin is not None:
            raise ValueError("min_drop and control_margin are for claim='necessary'; an unnecessary claim takes max_drop")
        max_drop = defaults.max_drop if max_drop is None else float(max_drop)
    comps = parse_components(component, model)
    controls = negative_controls(model, comps, n_controls, seed=seed)

    # One batch: for each ablation type, the named set, then each control set.
    rows: list[Intervention] = []
    for how in hows:
        rows.append(ablate(model, comps, how, reference=reference, seed=seed))
        rows += [ablate(model, ctrl, how, reference=reference, seed=seed) for ctrl in controls]
    clean = AnswerMetrics.of(score_answer(model, prompt, answer))
    batched = score_interventions(model, prompt, answer, rows, max_batch_size=max_batch_size)
    metrics = [AnswerMetrics.of(s) for s in batched.scores]

    verdicts = []
    per = 1 + len(controls)
    for i, how in enumerate(hows):
        named, ctrl_metrics = metrics[i * per], metrics[i * per + 1 : (i + 1) * per]
        drop = clean.drop_to(named, metric)
        ctrl_runs = tuple(
            ControlRun(format_components(c), m, clean.drop_to(m, metric)) for c, m in zip(controls, ctrl_metrics, strict=True)
        )
        ctrl_drop = statistics.median(c.drop for c in ctrl_runs) if ctrl_runs else None
        passed, why = _judge(claim, drop, ctrl_drop, min_drop, max_drop, control_margin, metric)
        verdicts.append(AblationVerdict(how, named, drop, ctrl_runs, ctrl_drop, passed, why))
    answer_ids = model.answer_tokens(answer)
    return NecessityResult(
        claimed=claim,
        component=format_components(comps),
        model_id=model.model_id,
        prompt=prompt if isinstance(prompt, str) else "".join(model.str_tokens(prompt)),
        str_tokens=tuple(model.str_tokens(prompt)),
        answer=answer if isinstance(answer, str) else "".join(model.to_str(answer_ids)),
        answer_str_tokens=tuple(model.to_str(answer_ids)),
        metric=metric,
        min_drop=min_drop,
        max_drop=max_drop,
        control_margin=control_margin if claim == "necessary" else None,
        control_kind=kinds_of(comps) if len(comps) == 1 else f"sets of {len(comps)} {kinds_of(comps)}",
        seed=seed,
        reference_size=max(len(r.reference) for r in rows),
        clean=clean,
        rows=tuple(verdicts),
        passed=all(v.passed for v in verdicts),
    )


def _judge(
    claim: Claim,
    drop: float,
    ctrl_drop: float | None,
    min_drop: float | None,
    max_drop: float | None,
    margin: float | None,
    metric: Metric,
) -> tuple[bool, str]:
    unit = _unit(metric)
    if claim == "unnecessary":
        assert max_drop is not None
        if drop <= max_drop:
            return True, ""
        return False, (f"the drop {fmt_drop(drop, metric)}{unit} is above max_drop {_num(max_drop, metric)}{unit} "
                       f"(over by {_num(drop - max_drop, metric)}{unit})")
    assert min_drop is not None and margin is not None
    whys = []
    if drop < min_drop:
        whys.append(f"the drop {fmt_drop(drop, metric)}{unit} is below min_drop {_num(min_drop, metric)}{unit} "
                    f"(short by {_num(min_drop - drop, metric)}{unit})")
    if ctrl_drop is not None and drop < ctrl_drop + margin:
        whys.append(f"the drop {fmt_drop(drop, metric)}{unit} is not {_num(margin, metric)}{unit} above the controls' "
                    f"median {fmt_drop(ctrl_drop, metric)}{unit} (short by {_num(ctrl_drop + margin - drop, metric)}{unit})")
    return not whys, "; ".join(whys)


assert_layer_necessary = asserting(
    check_necessity,
    "assert_layer_necessary",
    """Assert that ablating ``component`` hurts the answer, and more than ablating random peers does:
    :func:`check_necessity` with ``claim="necessary"``.

    >>> assert_layer_necessary(lab, "January February March April", " May", "L3")   # doctest: +SKIP
    """,
    claim="necessary",
)

assert_layer_unnecessary = asserting(
    check_necessity,
    "assert_layer_unnecessary",
    """Assert that ablating ``component`` costs the answer at most ``max_drop`` under every ablation:
    :func:`check_necessity` with ``claim="unnecessary"``.

    >>> assert_layer_unnecessary(lab, "January February March April", " May", "L6", max_drop=0.5)  # doctest: +SKIP
    """,
    claim="unnecessary",
)


def check_sufficiency(
    model: Lab,
    prompt: Prompt,
    answer: str | int | Sequence[int],
    keep: ComponentSpec | Intervention,
    *,
    max_rank: int = 0,
    min_prob: float | None = None,
    top: int = 5,
) -> SufficiencyResult:
    """Does the answer survive with only ``keep`` running (everything else skipped)?

    ``keep`` is component names (``["L0-L7", "MLP9"]``), or an :class:`Intervention` built with
    :func:`~pytest_annotate.interventions.ablations.keep_only` (combined with e.g. ``bypass_norm``).
    """
    from pytest_annotate.scoring.reading import read_prediction

    if max_rank < 0:
        raise ValueError(f"max_rank must be 0 or more (0 = top-1), not {max_rank}")
    if min_prob is not None and not 0 <= min_prob <= 1:
        raise ValueError(f"min_prob must be a probability in [0, 1], not {min_prob}")
    iv = keep if isinstance(keep, Intervention) else keep_only(model, keep)
    full = read_prediction(model, prompt, answer, top=top)
    under = read_prediction(model, prompt, answer, top=top, intervention=iv)
    passed = under.rank <= max_rank and (min_prob is None or under.prob >= min_prob) and not under.is_flat
    return SufficiencyResult(str(iv), iv.detail or str(iv), full, under, max_rank,
                             None if min_prob is None else float(min_prob), passed)


assert_circuit_sufficient = asserting(
    check_sufficiency,
    "assert_circuit_sufficient",
    """Assert that with only ``keep`` running the answer has rank ``<= max_rank`` (and prob ``>= min_prob``):
    see :func:`check_sufficiency`.

    >>> assert_circuit_sufficient(lab, "January February March April", " May", "L0-L8")   # doctest: +SKIP
    """,
)


# --------------------------------------------------------------------------- formatting


_VERBS = {
    "logprob": "lower the answer's log-prob",
    "prob": "lower the answer's probability",
    "logit": "lower the answer's logit",
    "rank": "raise the answer's rank",
}


#: How a metric is named in a measurement (the report and the checkpoint trajectories key on the name).
_MEASURED_WORDS = {"logprob": "log-prob", "prob": "prob", "logit": "logit", "rank": "rank"}


def _unit(metric: Metric) -> str:
    return {"logprob": " nats", "prob": "", "logit": "", "rank": " places"}[metric]


def _num(x: float | None, metric: Metric) -> str:
    if x is None:
        return "-"
    if metric == "rank":
        return f"{x:.0f}"
    if metric == "prob":
        return f"{100 * x:.2f} pts"
    return f"{x:.3f}"


def _answer_text(answer_str_tokens: Sequence[str]) -> str:
    return "".join(answer_str_tokens)


def _answer_words(answer_str_tokens: Sequence[str]) -> str:
    return repr(_answer_text(answer_str_tokens))
