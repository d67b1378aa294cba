"""The plain, frozen forms of algebra expressions that snapshots store.

Field names carry the snapshot tolerance kinds (see :mod:`pytest_annotate.snapshot.tolerance`):
``logit`` is compared as a logit, ``prob`` as a probability, ``norm`` as a plain float; the
``expression`` and term ``name`` strings exactly. Each term is a ``(name, value)`` pair that
unpacks like a tuple::

    >>> NamedLogit("ΔB^17", 6.25)
    NamedLogit(name='ΔB^17', logit=6.25)
    >>> name, value = NamedLogit("ΔB^17", 6.25); value
    6.25
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from pytest_annotate.results import TokenScore


@dataclass(frozen=True)
class NamedLogit:
    """One term of a logit's expansion: its name and its contribution in logits (λ included)."""

    name: str
    logit: float

    def __iter__(self) -> Iterator[str | float]:
        yield self.name
        yield self.logit


@dataclass(frozen=True)
class NamedNorm:
    """One term of a residual vector's expansion: its name and its L2 norm."""

    name: str
    norm: float

    def __iter__(self) -> Iterator[str | float]:
        yield self.name
        yield self.norm


@dataclass(frozen=True)
class LogitSnapshot:
    """A logit (``<unembed(t), T(embed(x))>``), and its terms when it is an expansion."""

    expression: str
    logit: float
    terms: tuple[NamedLogit, ...] = ()


@dataclass(frozen=True)
class ProbSnapshot:
    """A probability (``P(t | T(embed(x)))``), its logit, and the logit's terms when expanded."""

    expression: str
    prob: float
    logit: float
    terms: tuple[NamedLogit, ...] = ()


@dataclass(frozen=True)
class VectorSnapshot:
    """A residual-stream vector by its L2 norm, and its terms' norms when it is an expansion."""

    expression: str
    norm: float
    terms: tuple[NamedNorm, ...] = ()


@dataclass(frozen=True)
class TopSnapshot:
    """The top tokens of ``logits(...)`` or ``P(token | ...)``."""

    expression: str
    top: tuple[TokenScore, ...]
