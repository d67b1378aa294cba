"""From a check's result object to the few numbers a report shows: :func:`summarize_result`.

Every result knows more than a report line can hold; this module picks its **key numbers** (a
:class:`~pytest_annotate.report.summary.Measurement` each, with the claim's bound) and marks the
one the finding is about as ``primary`` (the number drawn across checkpoints). The library's
result types are read by their field names (dispatch on the class name, so this module imports
none of the check modules and a notebook can use it on any result):

=====================  ======================================================================
result                 key numbers (primary first)
=====================  ======================================================================
HeadRoleResult         the head's score (claim ``≥ min_score``), its rank (claim ``< top_k``)
HeadScores             the top 3 heads' scores
NecessityResult        the drop per ablation type (claim ``≥ min_drop`` / ``≤ max_drop``), the
                       controls' median drop
SufficiencyResult      the answer's rank and probability under the circuit, and in the full model
SweepResult            the clean answer log-prob, the 3 components whose ablation costs most
TopToken/Rank/Prob     the answer's rank, probability and logit, with the claim's bound
LogitDiffResult        the logit difference (claim bound)
CompositionResult      the K-composition top-1 accuracy (claim ``≥ min_accuracy``)
LogitLensResult        the first layer where the answer is top-1
anything else          its top-level verdict-free ranks, probabilities and logits, as the
                       snapshot drift table picks them
=====================  ======================================================================

A result type of your own can choose its numbers: give it a ``measurements()`` method returning
:class:`Measurement` values.

>>> from dataclasses import dataclass
>>> from pytest_annotate.results import Result
>>> @dataclass(frozen=True, eq=False)
... class Copying(Result):
...     accuracy: float
...     passed: bool
...     def report(self):
...         return f"copying accuracy {self.accuracy:.2%}"
>>> s = summarize_result(Copying(0.994, True))
>>> s.headline, [m.text for m in s.measurements]
('copying accuracy 99.40%', ['accuracy 0.994'])
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from pytest_annotate.report.summary import Measurement, Op, ResultSummary

#: Results that measure and claim nothing: their ``passed`` (always true) is not a verdict.
MEASUREMENT_KINDS = frozenset({"HeadScores", "SweepResult"})
#: Longest full report text kept per result (a whole-vocabulary table is not a report).
MAX_REPORT_CHARS = 20_000
MAX_HEADLINE_CHARS = 240

_METRIC_WORDS = {"logprob": "log-prob", "prob": "prob", "logit": "logit", "rank": "rank"}
_METRIC_UNITS = {"logprob": "nats", "prob": "", "logit": "", "rank": ""}


def summarize_result(result: Any) -> ResultSummary:
    """The headline (the first line of its report), verdict, key numbers and full report of a result."""
    text = _report_text(result)
    headline = text.strip().splitlines()[0] if text.strip() else type(result).__name__
    if len(headline) > MAX_HEADLINE_CHARS:
        headline = headline[: MAX_HEADLINE_CHARS - 1] + "…"
    passed = getattr(result, "passed", None)
    return ResultSummary(
        kind=type(result).__name__,
        headline=headline,
        passed=passed if isinstance(passed, bool) and type(result).__name__ not in MEASUREMENT_KINDS else None,
        measurements=measurements_of(result),
        report=text if len(text) <= MAX_REPORT_CHARS else text[:MAX_REPORT_CHARS] + "\n… (cut)",
    )


def measurements_of(result: Any) -> tuple[Measurement, ...]:
    """The key numbers of a result (see the module docstring for what each type gives)."""
    own = getattr(result, "measurements", None)
    if callable(own):
        return tuple(own())
    for cls in type(result).__mro__:
        extract = _EXTRACTORS.get(cls.__name__)
        if extract is not None:
            return tuple(extract(result))
    return _generic(result)


def _report_text(result: Any) -> str:
    report = getattr(result, "report", None)
    if callable(report):
        return str(report())
    return repr(result)


# --------------------------------------------------------------------------- per type


def _head_role(r: Any) -> list[Measurement]:
    return [
        Measurement(f"{r.head} {r.role} score", r.score, ">=" if r.min_score is not None else None, r.min_score,
                    primary=True),
        Measurement(f"{r.head} {r.role} rank (0 = top)", r.rank, "<" if r.top_k is not None else None,
                    None if r.top_k is None else float(r.top_k)),
    ]


def _head_scores(r: Any) -> list[Measurement]:
    return [Measurement(f"{name} {r.role} score", value) for name, value in r.top(3)]


def _necessity(r: Any) -> list[Measurement]:
    words, unit = _METRIC_WORDS.get(r.metric, r.metric), _METRIC_UNITS.get(r.metric, "")
    op: Op = ">=" if r.claim == "necessary" else "<="
    threshold = r.min_drop if r.claim == "necessary" else r.max_drop
    out = [
        Measurement(f"{row.ablation}-ablating {r.component}: drop in answer {words}", row.drop, op, threshold,
                    primary=True, unit=unit)
        for row in r.rows
    ]
    out += [
        Measurement(f"{row.ablation}-ablating random other {r.control_kind} (median): drop in answer {words}",
                    row.control_drop, unit=unit)
        for row in r.rows
        if row.control_drop is not None
    ]
    return out


def _sufficiency(r: Any) -> list[Measurement]:
    c = r.under_circuit
    out = [Measurement(f"answer rank under '{r.circuit}'", c.rank, "<=", float(r.max_rank), primary=True)]
    out.append(Measurement(f"answer prob under '{r.circuit}'", c.prob, ">=" if r.min_prob is not None else None,
                           r.min_prob, primary=r.min_prob is not None))
    out.append(Measurement("answer prob, full model", r.full.prob))
    return out


def _sweep(r: Any) -> list[Measurement]:
    words, unit = _METRIC_WORDS.get(r.sort_metric, r.sort_metric), _METRIC_UNITS.get(r.sort_metric, "")
    out = [Measurement("clean answer log-prob", r.clean.log_prob, unit="nats")]
    for row in r.ranked()[:3]:
        out.append(Measurement(f"{r.ablation}-ablating {row.component}: drop in answer {words}",
                               row.drop(r.sort_metric), unit=unit))
    return out


def _top_token(r: Any) -> list[Measurement]:
    has_prob_claim = r.min_prob is not None
    return [
        Measurement("answer rank", r.rank, "<", float(r.k), primary=not has_prob_claim),
        Measurement("answer prob", r.prob, ">=" if has_prob_claim else None, r.min_prob, primary=has_prob_claim),
        Measurement("answer logit", r.logit),
    ]


def _rank(r: Any) -> list[Measurement]:
    if r.claimed_rank is not None:
        rank = Measurement("answer rank", r.rank, "==", float(r.claimed_rank), primary=True)
    else:
        rank = Measurement("answer rank", r.rank, "<=" if r.max_rank is not None else None,
                           None if r.max_rank is None else float(r.max_rank), primary=True)
    return [rank, Measurement("answer prob", r.prob), Measurement("answer logit", r.logit)]


def _prob(r: Any) -> list[Measurement]:
    out = []
    if r.min_prob is not None:
        out.append(Measurement("answer prob", r.prob, ">=", r.min_prob, primary=True))
    if r.max_prob is not None:
        out.append(Measurement("answer prob", r.prob, "<=", r.max_prob, primary=not out))
    if not out:
        out.append(Measurement("answer prob", r.prob, primary=True))
    return [*out, Measurement("answer rank", r.rank), Measurement("answer logit", r.logit)]


def _logit_diff(r: Any) -> list[Measurement]:
    name = f"logit({r.answer!r}) − logit({r.other!r})"
    out = []
    if r.min_diff is not None:
        out.append(Measurement(name, r.logit_diff, ">=", r.min_diff, primary=True))
    if r.max_diff is not None:
        out.append(Measurement(name, r.logit_diff, "<=", r.max_diff, primary=not out))
    if not out:
        out.append(Measurement(name, r.logit_diff, primary=True))
    return [*out, Measurement("answer rank", r.answer_rank), Measurement("answer prob", r.answer_prob)]


def _composition(r: Any) -> list[Measurement]:
    return [
        Measurement(f"{r.prev_head}→{r.ind_head} K-composition top-1 accuracy", r.accuracy,
                    ">=" if r.min_accuracy is not None else None, r.min_accuracy, primary=True),
        Measurement(f"{r.prev_head}→{r.ind_head} K-composition score", r.k_composition_score),
    ]


def _logit_lens(r: Any) -> list[Measurement]:
    exact = r.claimed_layer is not None and not r.tolerance
    return [Measurement("first layer where the answer is top-1", r.first_top1_layer, "==" if exact else None,
                        float(r.claimed_layer) if exact else None, primary=True)]


_EXTRACTORS: dict[str, Callable[[Any], Sequence[Measurement]]] = {
    "HeadRoleResult": _head_role,
    "HeadScores": _head_scores,
    "NecessityResult": _necessity,
    "SufficiencyResult": _sufficiency,
    "SweepResult": _sweep,
    "TopTokenResult": _top_token,
    "RankResult": _rank,
    "ProbResult": _prob,
    "LogitDiffResult": _logit_diff,
    "CompositionResult": _composition,
    "LogitLensResult": _logit_lens,
}


def _generic(result: Any) -> tuple[Measurement, ...]:
    """The headline numbers the snapshot drift table would pick: ranks, probabilities, logits,
    shallowest first (verdicts are the result's ``passed``, shown apart)."""
    from pytest_annotate.snapshot.drift import key_numbers_from_leaves
    from pytest_annotate.snapshot.errors import SnapshotSerializeError
    from pytest_annotate.snapshot.serialize import flatten

    try:
        leaves = flatten(result)
    except SnapshotSerializeError:
        return ()
    numbers = [k for k in key_numbers_from_leaves(leaves, baseline=False) if k.kind != "verdict"]
    numbers = [k for k in numbers if not isinstance(k.current, str)]
    return tuple(Measurement(k.path, k.current, primary=i == 0) for i, k in enumerate(numbers))  # type: ignore[arg-type]


__all__ = ["measurements_of", "summarize_result"]
