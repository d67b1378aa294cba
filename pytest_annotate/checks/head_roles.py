"""Claims about head roles: :func:`check_head_role` / :func:`assert_head_role` judge one head's score,
and its rank among all heads, in a role's score table.

The roles, what each score measures, and the numbers measured on Gemma 3 270M are in
:mod:`pytest_annotate.scoring.head_scores`, which computes the tables.

>>> assert_head_role(lab, "L5H1", "induction", min_score=0.8, top_k=1)   # doctest: +SKIP
"""


from __future__ import annotations

import math
import sys
import warnings
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from pytest_annotate.errors import WeakClaimWarning
from pytest_annotate.interventions.heads import (
    HeadSpec,
    head_name,
    parse_head,
)
from pytest_annotate.results import Measurement, Result, asserting, kind

if TYPE_CHECKING:
    from pytest_annotate.lab import Lab
from pytest_annotate.scoring.head_scores import (
    ROLE_DEFINITIONS,
    Inputs,
    Role,
    RoleError,
    check_role,
    head_scores,
)

# --------------------------------------------------------------------------- claims


@dataclass(frozen=True, eq=False)
class HeadRoleResult(Result):
    """Whether one head plays a role: its score, its rank among all heads, and the top heads."""

    head: str
    role: str
    model_id: str
    inputs: str
    score: float = field(metadata=kind("prob"))
    rank: int
    """How many other heads score at least as high: 0 for the strictly top-scoring head (a head tied
    with another for the top score has rank 1, see :mod:`pytest_annotate.scoring.ranks`)."""
    n_heads_total: int
    top_heads: tuple[tuple[str, float], ...]
    """The 5 highest-scoring heads, best first."""
    min_score: float | None = None
    top_k: int | None = None
    passed: bool = True

    @property
    def claim(self) -> str:
        parts = []
        if self.min_score is not None:
            parts.append(f"score ≥ {self.min_score:g}")
        if self.top_k is not None:
            parts.append("the top head" if self.top_k == 1 else f"among the top {self.top_k} heads")
        words = self.role.replace("_", "-")
        article = "an" if words[0] in "aeiou" else "a"
        return f"{self.head} is {article} {words} head on {self.model_id}: {' and '.join(parts)}"

    @property
    def top_tie(self) -> int:
        """How many heads share the top score with this head when it ties for the top (0: it does not).

        Read off the fields: its score equals the top head's, and its rank counts the heads it ties with.
        """
        if self.rank > 0 and self.top_heads and self.score == self.top_heads[0][1]:
            return self.rank + 1
        return 0

    def measured(self) -> str:
        return f"{self.role} score {self.score:.4f}, {_ordinal(self.rank + 1)} of {self.n_heads_total} heads"

    def measurements(self) -> tuple[Measurement, ...]:
        return (
            Measurement(f"{self.head} {self.role} score", self.score, ">=" if self.min_score is not None else None,
                        self.min_score, primary=True),
            Measurement(f"{self.head} {self.role} rank (0 = top)", self.rank, "<" if self.top_k is not None else None,
                        None if self.top_k is None else float(self.top_k)),
        )

    def report(self) -> str:
        lines = [
            self.headline(),
            f"Score: {ROLE_DEFINITIONS.get(self.role, self.role)}",  # type: ignore[call-overload]
            f"Inputs: {self.inputs}",
            f"Rank: {_ordinal(self.rank + 1)} of {self.n_heads_total} heads",
        ]
        if self.top_tie:
            lines.append(f"  tie       {self.top_tie} heads share the top score {self.score:.4f}: no head is the top head "
                         f"(a tie counts against the claim, so {self.head} ranks {_ordinal(self.rank + 1)})")
        if self.min_score is not None:
            gap = self.score - self.min_score
            lines.append(
                f"  claim     score ≥ {self.min_score:g}: {'holds' if gap >= 0 else 'misses'} "
                f"({'above' if gap >= 0 else 'below'} by {abs(gap):.4f})"
            )
        if self.top_k is not None:
            ok = self.rank < self.top_k
            lines.append(
                f"  claim     top-{self.top_k}: {'holds' if ok else 'misses'} "
                f"({self.head} is {_ordinal(self.rank + 1)}"
                + ("" if ok else f"; {self.rank + 1 - self.top_k} head(s) would have to drop below it")
                + ")"
            )
        lines.append(f"Top {len(self.top_heads)} {self.role} heads:")
        for i, (name, value) in enumerate(self.top_heads):
            arrow = "  <- " + self.head if name == self.head else ""
            lines.append(f"  {i + 1}. {name:<7} {value:8.4f}{arrow}")
        if not self.passed:
            layer = self.head.split("H")[0][1:]
            lines.append(
                f"Next: print head_scores(lab, {self.role!r}) for the whole table; look at the pattern "
                f"blocks.{layer}.attn.hook_pattern of {self.head} on these inputs; if the role moved to another head, "
                "check the checkpoint and processing mode (compat/raw) match the finding's."
            )
        return "\n".join(lines)


def _ordinal(n: int) -> str:
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


def check_head_role(
    lab: Lab,
    head: HeadSpec,
    role: Role,
    *,
    min_score: float | None = None,
    top_k: int | None = None,
    inputs: Inputs = None,
) -> HeadRoleResult:
    """Does ``head`` play ``role``: is its score ≥ ``min_score`` and/or is it among the ``top_k`` heads?

    ``top_k=1`` claims it is *the* top head for the role. At least one of the two claims is needed.
    A head's rank counts the other heads scoring at least as high: a tie counts against the claim.
    """
    role = check_role(role)
    layer, index = parse_head(lab, head)
    if min_score is None and top_k is None:
        raise RoleError(
            f"check_head_role({head_name(layer, index)!r}, {role!r}) claims nothing: give min_score=… or top_k=…"
        )
    if top_k is not None and (not isinstance(top_k, int) or not 1 <= top_k <= lab.n_layers * lab.n_heads):
        raise RoleError(f"top_k={top_k!r}: give a whole number from 1 (the top head) to {lab.n_layers * lab.n_heads}")
    if min_score is not None and not math.isfinite(min_score):
        raise RoleError(f"min_score={min_score!r}: give a finite number")
    if min_score is None:
        warnings.warn(rank_only_warning(head_name(layer, index), role, top_k), WeakClaimWarning,
                      stacklevel=_caller_level())
    table = head_scores(lab, role, inputs=inputs)
    name = head_name(layer, index)
    score, rank = table.score(name), table.rank(name)
    passed = (min_score is None or score >= min_score) and (top_k is None or rank < top_k)
    return HeadRoleResult(
        head=name,
        role=role,
        model_id=lab.model_id,
        inputs=table.inputs,
        score=score,
        rank=rank,
        n_heads_total=table.n_layers * table.n_heads,
        top_heads=tuple(table.top(5)),
        min_score=min_score,
        top_k=top_k,
        passed=passed,
    )


def rank_only_warning(head: str, role: str, top_k: int | None) -> str:
    """Why a head-role claim with ``top_k`` and no ``min_score`` says little (calibration:
    ``tests/test_calibration.py::test_a_head_role_by_rank_alone_holds_for_one_head_of_every_random_model``)."""
    which = "the top head" if top_k == 1 else f"among the top {top_k} heads"
    return (
        f"'{head} is {which} for {role}' claims a rank only: every model, random weights included, has "
        f"{'a top head' if top_k == 1 else f'{top_k} top heads'} for every role, so this holds for "
        f"{'one head' if top_k == 1 else f'{top_k} heads'} of any model. Add min_score=... (a score the heads "
        "of a random model do not reach) to make it a claim about this one"
    )


def _caller_level() -> int:
    """stacklevel pointing at the first frame outside pytest_annotate (the user's test line), so the
    warning names it whether check_head_role was called directly or through assert_head_role."""
    frame, level = sys._getframe(1), 1
    while frame is not None and frame.f_globals.get("__name__", "").startswith("pytest_annotate."):
        frame, level = frame.f_back, level + 1
    return level


assert_head_role = asserting(
    check_head_role,
    "assert_head_role",
    """Assert that ``head`` plays ``role`` (see :func:`check_head_role`); returns the result.

    >>> assert_head_role(lab, "L5H1", "induction", min_score=0.8, top_k=1)   # doctest: +SKIP
    """,
)