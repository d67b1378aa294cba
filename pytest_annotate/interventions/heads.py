"""Weight circuits of attention heads, and how heads compose: the K-composition full circuit.

An induction circuit is two heads: a *previous-token head* writes "the token before me was A" into
the residual stream at each position, and an *induction head* in a later layer reads it with its
**keys**, so that a query for A finds the position right after the earlier A. Seed 003 measures how
well the weights alone implement this with the K-composition full circuit, a vocab × vocab matrix

    W_E W_Q(ind) · (W_E W_V(prev) W_O(prev) W_K(ind))ᵀ

whose row *i* scores every key token *j* for query token *i*: row *i* should peak at *j = i*
(the key position holds "previous token was i"). Its **top-1 accuracy** is the fraction of rows
whose argmax is the diagonal: 0.2283 for GPT-2 small's L4H11 → L5H5 (seed 003); chance is
1 / d_vocab.

What the weights mean here, per architecture (every number this module reports uses them):

* ``W_E`` is the embedding **as the residual stream receives it**: the model's own embedding
  module applied to each token id, so Gemma's ``sqrt(d_model)`` scaling (×25.3 for Gemma 3 270M)
  is included. It multiplies both sides of the circuit, so it cannot change an argmax or an
  eigenvalue ratio; it matters only where it is added to something else (the post-MLP0 effective
  embedding of :mod:`pytest_annotate.checks.head_roles`).
* Every normalisation **gain** on the path is part of the circuit: the pre-attention norm's gain
  (``ln1``: folded into W_Q/W_K/W_V in compat processing, a separate vector in raw processing),
  Gemma's **post-attention norm** gain (``ln1_post``: applied to the attention output before it
  joins the residual stream; never folded, and far from 1: its elements range 0.26–3.7 in
  Gemma's layer 3) and Gemma's **q_norm / k_norm** gains on queries and keys. Gains are read by
  probing each norm module with a ±1 vector, so compat and raw processing give the same circuit.
* What is left out, as in the seeds: biases, the per-token normalisation *scales* (1/rms, which
  depend on the whole residual stream), LayerNorm's centring in raw processing, and rotary
  position embeddings (the circuit is the score at relative offset 0). For Gemma that means the
  circuit is the weights' bilinear form, not the attention score at any real position.
* Gemma shares one key/value head between its 4 query heads: ``W_K``/``W_V`` are repeated per
  query head, so heads in one layer differ only in ``W_Q`` / ``W_O``.

Measured on Gemma 3 270M (compat processing; 1,024 of 262,144 rows sampled, seed 0):

* L10H1 → L11H2: top-1 accuracy 0.583 ± 0.015, the clearest pair (L10H1 is Gemma's third
  previous-token head, L11H2 its second induction head); also the top pair of the whole model by
  Frobenius K-composition score (0.066).
* L4H1 → L5H1: 0.003 ± 0.002, although L5H1 is the top induction head and L4H1 its best partner
  by both measures; L2H3 (the top previous-token head) → L5H1: 0.000. Whatever L5H1's keys read,
  it is not the embedding moved by one head: on this circuit the layer-5 induction head is
  invisible, so claim it with attention patterns (:mod:`pytest_annotate.checks.head_roles`) instead.
* Random pairs: 0.000 (chance is 3.8e-6).

>>> result = check_k_composition(lab, "L10H1", "L11H2")            # doctest: +SKIP
>>> round(result.accuracy, 2), result.n_rows                       # doctest: +SKIP
(0.58, 1024)
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
