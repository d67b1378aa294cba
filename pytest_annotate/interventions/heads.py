"""Head names: ``"L5H1"`` is layer 5, head 1. :func:`parse_head` reads a name (or a ``(layer, head)`` pair, or
a head component) against a model's shape, :func:`parse_head_name` against a bare shape (a score table,
a snapshot), and :func:`head_name` writes one.
"""


from __future__ import annotations

from typing import TYPE_CHECKING

from pytest_annotate.errors import ComponentError
from pytest_annotate.interventions.components import (
    Component,
    ModelShape,
    parse_component,
)

if TYPE_CHECKING:

    from pytest_annotate.lab import Lab

HeadSpec = str | tuple[int, int] | Component
"""A head as researchers write it, ``"L5H1"``, as ``(layer, head)``, or a head ``Component``."""


# --------------------------------------------------------------------------- heads


def parse_head(lab: Lab, head: HeadSpec) -> tuple[int, int]:
    """``"L5H1"`` (or ``(5, 1)``, or a head :class:`~pytest_annotate.interventions.components.Component`) → ``(5, 1)``.

    Parsed by :mod:`pytest_annotate.interventions.components` (the one parser of component names), so a bad
    name gets the same :class:`ComponentError` listing the valid names as everywhere else.

    >>> parse_head(lab, "L5H1")                                    # doctest: +SKIP
    (5, 1)
    >>> parse_head(lab, "L5H40")                                   # doctest: +SKIP
    Traceback (most recent call last):
    ComponentError: 'L5H40': head 40 is out of range: gemma-3-270m-q4_k_m has 4 heads per layer (0..3). Valid: ...
    """
    return _parse_head(head, ModelShape.of(lab))


def parse_head_name(head: HeadSpec, *, n_layers: int, n_heads: int, model_id: str) -> tuple[int, int]:
    """:func:`parse_head` for a model known only by its shape (a score table, a snapshot)."""
    return _parse_head(head, ModelShape(n_layers=n_layers, n_heads=n_heads, model_id=model_id))


_KIND_WORDS = {
    "block": "a whole block",
    "attn": "an attention layer",
    "mlp": "an MLP",
    "embed": "the token embedding",
    "pos_embed": "the position embedding",
}


def _parse_head(head: HeadSpec, shape: ModelShape) -> tuple[int, int]:
    if isinstance(head, tuple) and len(head) == 2 and all(isinstance(x, int) for x in head):
        head = head_name(*head)
    if not isinstance(head, (str, Component)):
        raise ComponentError(f"{head!r} is not a head: give a name like 'L5H1' or a (layer, head) pair")
    component = parse_component(head, shape)
    if component.kind != "head" or component.layer is None or component.head is None:
        raise ComponentError(
            f"{head!r} is {_KIND_WORDS.get(component.kind, component.kind)}, not an attention head: name one head, "
            f"like L5H1. Valid heads of {shape.model_id}: L0H0..L{shape.n_layers - 1}H{shape.n_heads - 1}."
        )
    return component.layer, component.head


def head_name(layer: int, head: int) -> str:
    return f"L{layer}H{head}"
