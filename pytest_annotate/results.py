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
import math
from collections.abc import Callable, Sequence
from typing import Any, ParamSpec, TypeVar

from pytest_annotate.errors import VerdictError

#: Callbacks told about every result an ``assert_*`` helper judges (the plugin records them for the
#: terminal summary and the report). Plain functions, so that nothing here depends on pytest.
RECORDERS: list[Callable[[Result], None]] = []


class Result:
    """Mixin for check results. Subclasses are ``@dataclass(frozen=True, eq=False)`` with ``passed``."""

    passed: bool

    def report(self) -> str:  # pragma: no cover - every subclass overrides it
        raise NotImplementedError

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

    def raise_if_failed(self, claim: str | None = None) -> None:
        """Raise :class:`VerdictError` with the report when the verdict is against the claim."""
        __tracebackhide__ = True
        for record in RECORDERS:
            record(self)
        if not self.passed:
            head = f"{claim}\n\n" if claim else ""
            raise VerdictError(head + self.report(), result=self)


P = ParamSpec("P")
R = TypeVar("R", bound=Result)


def asserting(check: Callable[P, R], name: str, doc: str) -> Callable[P, R]:
    """The ``assert_*`` twin of a ``check_*`` function: the same arguments and result, but a verdict
    against the claim raises :class:`VerdictError` with the report. One wrapper for all such pairs,
    so their signatures cannot drift apart; ``inspect.signature`` shows the check's arguments.
    """

    @functools.wraps(check)
    def assert_(*args: P.args, **kwargs: P.kwargs) -> R:
        __tracebackhide__ = True
        result = check(*args, **kwargs)
        result.raise_if_failed()
        return result

    assert_.__name__ = assert_.__qualname__ = name
    assert_.__doc__ = doc
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
