"""What every check returns: a small, frozen, printable, comparable value.

A check computes a result; an ``assert_*`` helper raises :class:`~pytest_annotate.errors.VerdictError`
with the result's :meth:`Result.report` when the verdict is against the claim. Results

* are frozen dataclasses (declare them ``@dataclass(frozen=True, eq=False)`` and inherit
  :class:`Result`), with a ``passed: bool`` field;
* print as their report (``str(result)``), reading like TransformerLens's old ``test_prompt``;
* compare equal when their numbers agree within the snapshot tolerances (ranks and ids exactly,
  probabilities absolutely, logits relatively), so ``result == snapshot`` works;
* serialize field by field into snapshots (see :mod:`pytest_annotate.snapshot`).

Field *kinds* drive tolerances: put ``field(metadata={"kind": "prob"})`` on a field whose name
does not already say it (``rank``, ``prob``, ``logit``... are recognised by name).
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import math
from collections.abc import Callable, Sequence
from typing import Any, ClassVar, Literal, ParamSpec, TypeAlias, TypeVar, get_args

from pytest_annotate.errors import VerdictError

#: Callbacks told about every result an ``assert_*`` helper judges (the plugin records them for the
#: terminal summary and the report). Plain functions, so that nothing here depends on pytest.
RECORDERS: list[Callable[[Result], None]] = []


#: A claim's verdict. Single-prompt checks hold or fail; a claim over a family is judged with an
#: interval and may also be inconclusive (the interval straddles the claim's bound).
Verdict: TypeAlias = Literal["holds", "fails", "inconclusive"]
VERDICTS: tuple[Verdict, ...] = get_args(Verdict)
#: The one headline style: the verdict's word, the claim, the measured numbers.
VERDICT_WORDS: dict[Verdict, str] = {"holds": "PASSED", "fails": "FAILED", "inconclusive": "INCONCLUSIVE"}


def verdict_headline(verdict: Verdict | bool, claim: str, measured: str) -> str:
    """The report's first line, also pytest's one-line summary of a failure: verdict, claim, key number.

    >>> verdict_headline("fails", "' May' is top-1 after 'January February March April'", "rank 3")
    "FAILED  ' May' is top-1 after 'January February March April': rank 3"
    """
    if isinstance(verdict, bool):
        verdict = "holds" if verdict else "fails"
    return f"{VERDICT_WORDS[verdict]}  {claim}" + (f": {measured}" if measured else "")


def hint_lines(hints: Sequence[str]) -> list[str]:
    """Next steps under a failed verdict, the first one labelled ``next``."""
    return [f"  {'next' if i == 0 else '':<8}  {h}" for i, h in enumerate(hints)]


class Result:
    """The contract of every check's result. Subclasses are ``@dataclass(frozen=True, eq=False)``
    with a ``passed`` field and define:

    * :attr:`claim` (a property): the claim in one sentence, e.g. ``' May' is top-1 after '...'``;
    * :meth:`measured`: the measured key numbers in one phrase, e.g. ``rank 0, prob 96.17%``;
    * :meth:`report`: the full report, whose first line is :meth:`headline`;
    * :meth:`measurements`: the key numbers as :class:`Measurement` values, with the claim's bound
      (read by the HTML/Markdown report and the checkpoint trajectories).

    :attr:`verdict` is ``holds``/``fails`` from ``passed`` (family results add ``inconclusive``).
    Results that measure without claiming anything (a sweep, a table of head scores) set
    ``judged = False``: their ``passed`` is not a verdict.
    """

    passed: bool
    #: False for results that only measure (no claim, so ``passed`` is always true and means nothing).
    judged: ClassVar[bool] = True

    @property
    def claim(self) -> str:  # pragma: no cover - every judged subclass overrides it
        raise NotImplementedError

    def measured(self) -> str:
        """The measured key numbers, in one phrase (the headline's tail)."""
        return ", ".join(m.name + " " + m.value_text for m in self.measurements() if m.primary)

    @property
    def verdict(self) -> Verdict:
        return "holds" if self.passed else "fails"

    def headline(self) -> str:
        """``PASSED|FAILED|INCONCLUSIVE  <claim>: <measured>``, the first line of every report."""
        return verdict_headline(self.verdict, self.claim, self.measured())

    def report(self) -> str:  # pragma: no cover - every subclass overrides it
        raise NotImplementedError

    def measurements(self) -> tuple[Measurement, ...]:
        """The key numbers, the primary one (the number a finding is about) first."""
        return ()

    def __str__(self) -> str:
        return self.report()

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        from pytest_annotate.snapshot.compare import values_close

        return values_close(self, other)

    __hash__ = None  # type: ignore[assignment]  # equality is within tolerance: not hashable

    def as_dict(self) -> dict[str, Any]:
        """The fields as plain Python values (tuples of dataclasses become lists of dicts)."""
        return dataclasses.asdict(self)  # type: ignore[call-overload]

    def raise_if_failed(self) -> None:
        """Raise :class:`VerdictError` with the report when the verdict is not ``holds``."""
        __tracebackhide__ = True
        for record in RECORDERS:
            record(self)
        if self.verdict != "holds":
            raise VerdictError(self.report(), result=self)


P = ParamSpec("P")
R = TypeVar("R", bound=Result)


def asserting(check: Callable[P, R], name: str, doc: str, **fixed: Any) -> Callable[P, R]:
    """The ``assert_*`` twin of a ``check_*`` function: the same arguments and result, but a verdict
    other than ``holds`` raises :class:`VerdictError` with the report. The one mechanism for every
    such pair, so their signatures cannot drift apart: ``inspect.signature`` shows the check's
    arguments. ``fixed`` keyword arguments are bound and leave the signature (``assert_layer_necessary``
    is ``check_necessity`` with ``claim="necessary"``).

    >>> import inspect
    >>> from pytest_annotate.checks.necessity import check_necessity, assert_layer_unnecessary
    >>> "claim" in inspect.signature(assert_layer_unnecessary).parameters
    False
    """
    signature = inspect.signature(check)
    unknown = set(fixed) - set(signature.parameters)
    if unknown:
        raise TypeError(f"{check.__name__} has no parameter {', '.join(sorted(unknown))}")

    @functools.wraps(check)
    def assert_(*args: P.args, **kwargs: P.kwargs) -> R:
        __tracebackhide__ = True
        result = check(*args, **fixed, **kwargs)
        result.raise_if_failed()
        return result

    assert_.__name__ = assert_.__qualname__ = name
    assert_.__doc__ = doc
    assert_.__signature__ = signature.replace(  # type: ignore[attr-defined]
        parameters=[p for n, p in signature.parameters.items() if n not in fixed]
    )
    return assert_


def kind(name: str) -> dict[str, str]:
    """Field metadata naming a field's tolerance kind: ``field(metadata=kind("prob"))``."""
    return {"kind": name}


# --------------------------------------------------------------------------- formatting helpers


def fmt_token(token: str) -> str:
    """A token between bars, so leading spaces show: ``| May|``."""
    return "|" + token.replace("\n", "\\n") + "|"


def fmt_prompt(str_tokens: Sequence[str]) -> str:
    """The tokenized prompt as TransformerLens's ``test_prompt`` prints it."""
    return "[" + ", ".join(repr(t) for t in str_tokens) + "]"


def fmt_prob(p: float) -> str:
    """A probability as a percentage with two decimals: ``96.17%``."""
    if math.isnan(p):
        return "nan"
    return f"{100 * p:.2f}%"


@dataclasses.dataclass(frozen=True)
class TokenScore:
    """One entry of a top-k list: a token with its logit and probability."""

    token: str
    token_id: int
    logit: float
    prob: float

    def line(self, rank: int) -> str:
        return f"Top {rank}th token. Logit: {self.logit:6.2f} Prob: {fmt_prob(self.prob):>7} Token: {fmt_token(self.token)}"


# --------------------------------------------------------------------------- measurements

Op: TypeAlias = Literal[">=", "<=", ">", "<", "=="]
_OP_TEXT = {">=": "≥", "<=": "≤", ">": ">", "<": "<", "==": "="}


@dataclasses.dataclass(frozen=True)
class Measurement:
    """One number a check measured, with the bound its claim puts on it (if any).

    ``primary`` marks the number a finding is about (the one drawn in the trajectory plot).
    """

    name: str
    value: float | int | bool | None
    op: Op | None = None
    threshold: float | None = None
    primary: bool = False
    unit: str = ""

    @property
    def holds(self) -> bool | None:
        """Whether the value meets the bound (``None`` when there is no bound or no value)."""
        if self.op is None or self.threshold is None or not _is_number(self.value):
            return None
        v, t = float(self.value), self.threshold  # type: ignore[arg-type]
        return {">=": v >= t, "<=": v <= t, ">": v > t, "<": v < t, "==": v == t}[self.op]

    @property
    def bound(self) -> str:
        """``≥ 0.8``, or ``""`` without a bound."""
        if self.op is None or self.threshold is None:
            return ""
        return f"{_OP_TEXT[self.op]} {format_number(self.threshold)}"

    @property
    def value_text(self) -> str:
        return format_number(self.value) + (f" {self.unit}" if self.unit and self.value is not None else "")

    @property
    def text(self) -> str:
        """``L1H0 induction score 0.635 (claim ≥ 0.8: misses by 0.165)``."""
        out = f"{self.name} {self.value_text}"
        if self.bound:
            holds = self.holds
            how = "" if holds is None else (": holds" if holds else ": misses")
            if holds is not None and isinstance(self.value, float):  # a rank's margin says nothing
                how += f" by {abs(self.value - float(self.threshold)):.3g}"  # type: ignore[arg-type]
            out += f" (claim {self.bound}{how})"
        return out


def format_number(value: Any) -> str:
    """Numbers as a researcher reads them: 4 significant digits, ints and bools as they are.

    >>> format_number(0.90163), format_number(3), format_number(True), format_number(None), format_number(1234.5678)
    ('0.9016', '3', 'True', '–', '1235')
    """
    if value is None:
        return "–"
    if isinstance(value, (bool, int)):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        return f"{value:.4g}"
    return str(value)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
