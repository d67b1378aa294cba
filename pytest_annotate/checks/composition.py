"""Weight circuits of attention heads, and how heads compose: the K-composition full circuit.

An induction circuit is two heads: a *previous-token head* writes "the token before me was A" into
the residual stream at each position, and an *induction head* in a later layer reads it with its
**keys**, so that a query for A finds the position right after the earlier A. Seed 003 measures how
well the weights alone implement this with the K-composition full circuit, a vocab × vocab matrix

    W_E W_Q(ind) · (W_E W_V(prev) W_O(prev) W_K(ind))ᵀ

whose row *i* scores every key token *j* for query token *i*: row *i* should peak at *j = i*
(the key position holds "previous token was i"). Its **top-1 accuracy** is the fraction of rows
whose maximum is the diagonal, strictly (a tied row counts as a miss): 0.2283 for GPT-2 small's L4H11 → L5H5 (seed 003); chance is
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

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal, get_args

import torch
from jaxtyping import Float
from torch import Tensor
from transformer_lens import FactoredMatrix

from pytest_annotate.errors import ComponentError
from pytest_annotate.results import Measurement, Result, asserting, kind

if TYPE_CHECKING:
    from transformer_lens.model_bridge.composition_scores import CompositionScores

    from pytest_annotate.lab import Lab
from pytest_annotate.interventions.heads import HeadSpec, head_name, parse_head
from pytest_annotate.scoring.ranks import rank_of
from pytest_annotate.scoring.weights import (
    CircuitWeights,
    circuit_weights,
    embed_tokens,
)

CompositionMode = Literal["Q", "K", "V"]
COMPOSITION_MODES: tuple[CompositionMode, ...] = get_args(CompositionMode)

DEFAULT_ROWS = 1024
"""Rows of the vocab × vocab circuit sampled by default: a standard error of ≤ 0.016 on any accuracy
(0.015 at Gemma's 0.58), in ~5–10 s per pair on one CPU core for Gemma's 262k vocabulary."""
_CHUNK_BYTES = 1 << 28  # 256 MiB of scores per chunk of rows


def _chunks(n: int, size: int) -> list[slice]:
    return [slice(i, min(i + size, n)) for i in range(0, n, size)]


# --------------------------------------------------------------------------- Q/K/V composition


def composition_scores(lab: Lab, mode: CompositionMode) -> CompositionScores:
    """Q-, K- or V-composition scores between every pair of heads (Elhage et al., 2021).

    ``score = ‖L R‖_F / (‖L‖_F ‖R‖_F)`` with ``L`` the earlier head's OV circuit and ``R`` the later
    head's QK circuit (Q: as is; K: transposed) or OV circuit (V). Returns TransformerLens's
    ``CompositionScores`` ([layer, head, layer, head], zero unless the first head's layer is
    earlier), by the formula of TransformerLens's ``utilities.composition_scores`` on its
    ``FactoredMatrix`` SVD collapses (see :func:`_pair_scores` for why not the function itself). It equals
    ``bridge.all_composition_scores(mode)`` on models without norm gains between heads (GPT-2 in
    compat processing); on Gemma it differs because the bridge's version leaves out the
    post-attention norm and q/k-norm gains, which this one includes (see the module docstring).

    >>> scores = composition_scores(lab, "K")                      # doctest: +SKIP
    >>> round(float(scores[10, 1, 11, 2]), 3)                      # doctest: +SKIP
    0.066
    """
    from transformer_lens.model_bridge.composition_scores import CompositionScores

    if mode not in COMPOSITION_MODES:
        raise ValueError(f"composition mode {mode!r} is not one of {', '.join(COMPOSITION_MODES)}")
    weights = circuit_weights(lab)
    n_layers, n_heads = lab.n_layers, lab.n_heads
    scores = torch.zeros(n_layers, n_heads, n_layers, n_heads, device=weights.W_O.device)
    with torch.inference_mode():
        for later in range(1, n_layers):
            scores[:later, :, later, :] = _pair_scores(weights, mode, later)
    labels = [head_name(l, h) for l in range(n_layers) for h in range(n_heads)]
    return CompositionScores(scores=scores, layer_indices=list(range(n_layers)), head_labels=labels)


def _pair_scores(
    weights: CircuitWeights, mode: CompositionMode, later: int, later_head: int | None = None
) -> Float[Tensor, "layer head *later_heads"]:
    """Composition scores from every head of layers ``0..later-1`` into layer ``later`` (or one of its heads).

    The last lines of TransformerLens's ``utilities.composition_scores``, on factors collapsed once
    per model (:meth:`CircuitWeights.collapsed`) and one later layer at a time: all pairs at once
    would hold [L, H, L, H, d_head, d_head] products (1.4 GB for Gemma).
    """
    right_name = {"Q": "QK_right", "K": "QKT_right", "V": "OV_right"}[mode]
    left = weights.collapsed("OV_left")[:later]  # [later, H, mdim, d_model]
    right = weights.collapsed(right_name)[later]  # [H, d_model, mdim]
    if later_head is not None:
        right = right[later_head : later_head + 1]
    products = left[:, :, None] @ right[None, None]  # [later, H, H', mdim, mdim]
    out = products.norm(dim=(-2, -1)) / left.norm(dim=(-2, -1))[:, :, None] / right.norm(dim=(-2, -1))[None, None]
    return out if later_head is None else out[..., 0]


# --------------------------------------------------------------------------- K-composition full circuit


def _check_pair(lab: Lab, prev_head: HeadSpec, ind_head: HeadSpec) -> tuple[tuple[int, int], tuple[int, int]]:
    prev, ind = parse_head(lab, prev_head), parse_head(lab, ind_head)
    if prev[0] >= ind[0]:
        raise ComponentError(
            f"{head_name(*prev)} cannot compose with {head_name(*ind)}: a head's keys can only read what heads in "
            f"earlier layers wrote, so the first head's layer must be below {ind[0]} (e.g. L{max(ind[0] - 1, 0)}H0)"
        )
    return prev, ind


def _key_side(lab: Lab, prev: tuple[int, int], ind: tuple[int, int]) -> Float[Tensor, "d_model d_head"]:
    w = circuit_weights(lab)
    return w.W_V[prev] @ w.W_O[prev] @ w.W_K[ind]


def k_composition_circuit(lab: Lab, prev_head: HeadSpec, ind_head: HeadSpec) -> FactoredMatrix:
    """Seed 003's vocab × vocab full circuit ``W_E W_Q(ind) · (W_E W_V(prev) W_O(prev) W_K(ind))ᵀ``.

    A :class:`~transformer_lens.FactoredMatrix` (rank ≤ d_head): rows are query tokens, columns key
    tokens. Its two factors are vocab × d_head each (2 × 268 MB for Gemma); use
    :func:`check_k_composition` for its top-1 accuracy, which never materialises more than a chunk
    of rows of the product.
    """
    prev, ind = _check_pair(lab, prev_head, ind_head)
    w = circuit_weights(lab)
    key_side, query_side = _key_side(lab, prev, ind), w.W_Q[ind]
    vocab = torch.arange(lab.d_vocab, device=lab.device)
    rows = _chunks(lab.d_vocab, 16384)
    with torch.inference_mode():
        A = torch.cat([embed_tokens(lab, vocab[r]) @ query_side for r in rows])
        B = torch.cat([embed_tokens(lab, vocab[r]) @ key_side for r in rows])
    return FactoredMatrix(A, B.T)


@dataclass(frozen=True, eq=False)
class CompositionResult(Result):
    """The K-composition full circuit of a (previous-token head, induction head) pair.

    ``accuracy`` is the fraction of sampled rows (query tokens) whose highest-scoring key token is
    the query token itself; ``accuracy_se`` its binomial standard error from the row sample (0
    when every row is used).
    """

    prev_head: str
    ind_head: str
    accuracy: float
    accuracy_se: float = field(default=0.0, metadata=kind("prob"))
    n_rows: int = 0
    d_vocab: int = 0
    seed: int = 0
    k_composition_score: float = 0.0
    """The pair's K-composition score ``‖OV(prev) · (QK(ind))ᵀ‖_F / (‖OV‖_F ‖QK‖_F)``, for context."""
    best_partners: tuple[tuple[str, float], ...] = ()
    """The earlier heads with the highest K-composition scores into ``ind_head`` (top 3)."""
    min_accuracy: float | None = None
    model_id: str = ""
    passed: bool = True

    @property
    def chance(self) -> float:
        return 1.0 / self.d_vocab if self.d_vocab else math.nan

    @property
    def interval95(self) -> tuple[float, float]:
        """95% Wilson interval of the all-rows accuracy given the sample (exact when every row is used).

        Unlike ``accuracy ± 2 s.e.`` it stays honest at 0 or 1 hits (0 of 256 rows: 0 to 0.015).
        """
        n, p = self.n_rows, self.accuracy
        if n == 0 or n >= self.d_vocab:
            return (p, p)
        z = 1.959964
        centre = (p + z * z / (2 * n)) / (1 + z * z / n)
        half = z / (1 + z * z / n) * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
        return (max(0.0, centre - half), min(1.0, centre + half))

    @property
    def claim(self) -> str:
        target = f": top-1 accuracy ≥ {self.min_accuracy:.3f}" if self.min_accuracy is not None else ""
        return f"{self.prev_head} → {self.ind_head} K-composition{target} on {self.model_id}"

    def measured(self) -> str:
        return f"top-1 accuracy {self.accuracy:.4f}"

    def measurements(self) -> tuple[Measurement, ...]:
        return (
            Measurement(f"{self.prev_head}→{self.ind_head} K-composition top-1 accuracy", self.accuracy,
                        ">=" if self.min_accuracy is not None else None, self.min_accuracy, primary=True),
            Measurement(f"{self.prev_head}→{self.ind_head} K-composition score", self.k_composition_score),
        )

    def report(self) -> str:
        rows = (
            f"all {self.n_rows:,} rows"
            if self.n_rows == self.d_vocab
            else f"{self.n_rows:,} of {self.d_vocab:,} rows sampled uniformly, seed {self.seed}"
        )
        low, high = self.interval95
        se = ""
        if self.n_rows < self.d_vocab and self.accuracy_se > 0:
            se = f" ± {self.accuracy_se:.4f} (1 s.e.; 95% interval {low:.4f}–{high:.4f})"
        elif self.n_rows < self.d_vocab:  # 0 or all hits: no spread in the sample, but not certainty
            se = f" (95% interval {low:.4f}–{high:.4f})"
        lines = [
            self.headline(),
            f"K-composition full circuit {self.prev_head} → {self.ind_head} on {self.model_id}:",
            f"  W_E W_Q({self.ind_head}) · (W_E W_V({self.prev_head}) W_O({self.prev_head}) W_K({self.ind_head}))ᵀ, "
            f"{self.d_vocab:,} × {self.d_vocab:,}, norm gains included",
            f"Top-1 accuracy (row maximum strictly on the diagonal): {self.accuracy:.4f}{se}  [{rows}; chance {self.chance:.1e}]",
        ]
        if self.min_accuracy is not None:
            gap = self.accuracy - self.min_accuracy
            verdict = "holds" if self.passed else "misses"
            lines.append(
                f"  claim     accuracy ≥ {self.min_accuracy:.4f}: {verdict} "
                f"({'above' if gap >= 0 else 'below'} by {abs(gap):.4f}"
                + (f", {abs(gap) / self.accuracy_se:.1f} s.e." if self.accuracy_se else "")
                + ")"
            )
        lines.append(f"K-composition score (Frobenius) of the pair: {self.k_composition_score:.4f}")
        if self.best_partners:
            partners = ", ".join(f"{h} {s:.4f}" for h, s in self.best_partners)
            lines.append(f"Earlier heads composing most with {self.ind_head}'s keys (Frobenius): {partners}")
        if not self.passed:
            lines.append(
                f"Next: try the partners above as the previous-token head; check that {self.prev_head} attends to the "
                f"previous token (head_scores(lab, 'previous_token')); the circuit leaves out rotary embeddings and "
                "the norms' per-token scales, so a weak score can still hide a working circuit: ablate the pair on "
                "repeated tokens to be sure."
            )
        return "\n".join(lines)


def check_k_composition(
    lab: Lab,
    prev_head: HeadSpec,
    ind_head: HeadSpec,
    *,
    min_accuracy: float | None = None,
    n_rows: int | None = DEFAULT_ROWS,
    seed: int = 0,
) -> CompositionResult:
    """Top-1 accuracy of the K-composition full circuit ``prev_head → ind_head`` (seed 003).

    Rows (query tokens) are a uniform sample of ``n_rows`` token ids drawn with ``seed`` — an
    unbiased estimate of the all-rows accuracy, with its standard error in the result — or every
    row with ``n_rows=None`` (Gemma: 262k × 262k × 256 multiply-adds, seconds on a GPU, hours on a
    CPU). Scores are computed a chunk of rows at a time; key columns always cover the whole
    vocabulary.
    """
    prev, ind = _check_pair(lab, prev_head, ind_head)
    if min_accuracy is not None and not 0.0 <= min_accuracy <= 1.0:
        raise ValueError(f"min_accuracy={min_accuracy!r} is not an accuracy: give a number in [0, 1]")
    if n_rows is not None and n_rows < 1:
        raise ValueError(f"n_rows={n_rows!r}: give a positive number of rows, or None for all {lab.d_vocab:,}")
    d_vocab = lab.d_vocab
    if n_rows is None or n_rows >= d_vocab:
        rows = torch.arange(d_vocab)
    else:
        rows = torch.randperm(d_vocab, generator=torch.Generator().manual_seed(seed))[:n_rows].sort().values
    rows = rows.to(lab.device)
    w = circuit_weights(lab)
    vocab = torch.arange(d_vocab, device=lab.device)
    with torch.inference_mode():
        key_side = _key_side(lab, prev, ind)
        keys = torch.cat([embed_tokens(lab, vocab[c]) @ key_side for c in _chunks(d_vocab, 16384)])  # [vocab, d_head]
        hits = 0
        chunk = max(1, _CHUNK_BYTES // (4 * d_vocab))
        for c in _chunks(len(rows), chunk):
            queries = embed_tokens(lab, rows[c]) @ w.W_Q[ind]  # [chunk, d_head]
            # a row counts only if the diagonal is strictly the highest: a tie counts against the claim
            hits += int((rank_of(queries @ keys.T, rows[c]) == 0).sum())
        into = _pair_scores(w, "K", ind[0], ind[1])  # [earlier layers, heads]
    n = len(rows)
    accuracy = hits / n
    se = 0.0 if n == d_vocab else math.sqrt(accuracy * (1 - accuracy) / n)
    top = torch.topk(into.flatten(), k=min(3, into.numel()))
    partners = tuple(
        (head_name(int(i) // lab.n_heads, int(i) % lab.n_heads), float(v)) for v, i in zip(top.values, top.indices)
    )
    return CompositionResult(
        prev_head=head_name(*prev),
        ind_head=head_name(*ind),
        accuracy=accuracy,
        accuracy_se=se,
        n_rows=n,
        d_vocab=d_vocab,
        seed=seed,
        k_composition_score=float(into[prev]),
        best_partners=partners,
        min_accuracy=min_accuracy,
        model_id=lab.model_id,
        passed=min_accuracy is None or accuracy >= min_accuracy,
    )


assert_k_composition = asserting(
    check_k_composition,
    "assert_k_composition",
    """Assert that ``prev_head``'s output feeds ``ind_head``'s keys: top-1 accuracy ≥ ``min_accuracy``
    (see :func:`check_k_composition`).

    >>> assert_k_composition(lab, "L10H1", "L11H2", min_accuracy=0.5)   # doctest: +SKIP
    """,
)
