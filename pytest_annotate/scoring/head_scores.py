"""Head roles: which attention heads are induction, previous-token, duplicate-token, mover or copying heads.

Every role is a **score table**, one number per head ([n_layers, n_heads]), computed for the whole
model at once and kept as a value (:class:`HeadScores`), so that "L5H1 is Gemma's top induction
head" is a claim about a row of a table you can print, snapshot and diff:

=================  =============================================================================
role               score of a head (higher = more of that role)
=================  =============================================================================
induction          attention from each token that occurred before to the token right after its
                   previous occurrence (seed 003; ``head_detector``'s ``induction_head``)
previous_token     attention from each position to the position before it
duplicate_token    attention from each token that occurred before to its earlier occurrences
mover_attention    attention from each position to earlier copies of the token that comes next
                   (seed 002's "mover attention")
mover              the head's direct logit attribution to the next token through that attention
                   (seed 002's "mover DLA"), in logits
copying            ``Re Σλ / Σ|λ|`` over the eigenvalues λ of the head's OV circuit (seed 002):
                   +1 copies its input token to the output, −1 suppresses it; weights only
=================  =============================================================================

The attention scores average over the query positions that *have* a target (a token with an
earlier copy, for induction), which is what seed 003 reports (0.91 for GPT-2 small's L5H5).
TransformerLens's ``head_detector`` uses the same targets but divides by *every* query position,
so on ``BOS + n tokens × 2`` it reads ``n / (2n + 1) ≈ ½`` of this score; ``HeadScores`` carries
both counts (``detector_fraction``), and the two agree exactly after that rescaling.

Default inputs are :class:`RepeatedRandomTokens`: BOS + 50 random ordinary tokens repeated once,
8 rows, seed 0 (each row samples its 50 tokens without replacement, so the only repeats are the
planted ones). One forward pass gives every attention role and ``mover``; the unembedding (262k
columns for Gemma) is never run.

What the weights mean (Gemma's norm gains, its ``sqrt(d_model)`` embedding scale, grouped-query
heads) is documented in :mod:`pytest_annotate.checks.composition`. One consequence of the processing mode:
compat processing centres the unembedding over the vocabulary (TransformerLens's
``center_unembed``, as in seed 002), so a ``mover`` score there is the effect on the next token's
logit *minus the mean logit*; in raw processing it is the effect on the raw logit (Gemma's L11H2:
11.86 compat, 0.12 less raw). The attention roles and ``copying``'s residual basis agree between
the modes to 1e-6.

Measured on Gemma 3 270M (compat processing, default inputs; seeds 1 and 2 move these by < 0.03):

* induction: L5H1 0.87, L11H2 0.65, L5H2 0.54, L13H3 0.31, L17H2 0.31
* previous_token: L2H3 0.69, L4H1 0.59, L10H1 0.38, L8H2 0.32
* duplicate_token: L3H3 0.70, L0H1 0.45, L7H0 0.21
* mover_attention: L5H1 0.85, L11H2 0.64, L5H2 0.53; mover: L11H2 11.9 logits, then L12H1 0.45
* copying (vocab basis, every token): L15H3 0.991, L17H1 0.987, L15H0 0.986, L11H1 0.983;
  the most negative −0.994

>>> scores = head_scores(lab, "induction")                        # doctest: +SKIP
>>> [(head, round(score, 2)) for head, score in scores.top(3)]   # doctest: +SKIP
[('L5H1', 0.87), ('L11H2', 0.65), ('L5H2', 0.54)]
>>> assert_head_role(lab, "L5H1", "induction", min_score=0.8, top_k=1)   # doctest: +SKIP
"""


from __future__ import annotations

import dataclasses
import math
import weakref
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Literal, Union, get_args

import numpy as np
import torch
from jaxtyping import Bool, Float, Int
from torch import Tensor

from pytest_annotate.errors import AnnotateError, PromptError, close_matches
from pytest_annotate.interventions.heads import (
    HeadSpec,
    head_name,
    parse_head_name,
)
from pytest_annotate.results import Measurement, Result, kind
from pytest_annotate.scoring.ranks import rank_of
from pytest_annotate.scoring.weights import (
    circuit_weights,
    embed_tokens,
    single_threaded,
)
from pytest_annotate.strategies import ordinary_token_ids

if TYPE_CHECKING:
    from pytest_annotate.lab import Lab

Role = Literal["induction", "previous_token", "duplicate_token", "mover_attention", "mover", "copying"]
ROLES: tuple[Role, ...] = get_args(Role)
ATTENTION_ROLES: tuple[Role, ...] = ("induction", "previous_token", "duplicate_token", "mover_attention")
"""Roles read off attention patterns (one forward pass gives all of them)."""

ROLE_DEFINITIONS: dict[Role, str] = {
    "induction": "mean attention from each token that occurred before to the token right after its previous "
    "occurrence",
    "previous_token": "mean attention from each position to the position before it",
    "duplicate_token": "mean attention from each token that occurred before to its earlier occurrences",
    "mover_attention": "mean attention from each position to earlier copies of the token that comes next "
    "(seed 002's mover attention)",
    "mover": "mean direct logit attribution to the next token of what the head reads from earlier copies of that "
    "token (seed 002's mover DLA), in logits",
    "copying": "Re Σλ / Σ|λ| over the eigenvalues λ of the head's OV circuit (seed 002): +1 copies tokens, "
    "−1 suppresses them",
}


class RoleError(AnnotateError, ValueError):
    """An unknown head role, or inputs that do not fit the role."""


def check_role(role: str) -> Role:
    """Return ``role`` if it is a known role, else raise :class:`RoleError` listing the valid ones."""
    if role not in ROLES:
        raise RoleError(f"unknown head role {role!r}; valid roles: {', '.join(ROLES)}.{close_matches(role, ROLES)}")
    return role  # type: ignore[return-value]


# --------------------------------------------------------------------------- inputs


@dataclass(frozen=True)
class RepeatedRandomTokens:
    """BOS + ``n`` random ordinary tokens, repeated once: ``batch`` rows of ``1 + 2n`` tokens.

    Tokens are drawn from :func:`pytest_annotate.strategies.ordinary_token_ids` (no special, unused,
    byte or whitespace tokens) without replacement within a row, so every repeat is a planted one,
    with a CPU generator seeded by ``seed``: the same ids on every device. (For a property over
    many such sequences, shrinking to a minimal failing one, use the hypothesis strategy
    :func:`pytest_annotate.strategies.repeated_random_tokens`.)

    ``bos``: ``None`` follows the Lab's BOS policy (:attr:`Lab.has_bos`), ``True`` always starts
    each row with the BOS token (as seed 002 built its Pythia inputs, ``cat([bos, r, r])``, although
    TransformerLens 4 gives Pythia no BOS), ``False`` never does (rows of ``2n`` tokens).
    """

    n: int = 50
    batch: int = 8
    seed: int = 0
    bos: bool | None = None

    def __post_init__(self) -> None:
        for name in ("n", "batch"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise PromptError(f"RepeatedRandomTokens({name}={value!r}): give a positive whole number")
        if self.bos is not None and not isinstance(self.bos, bool):
            raise PromptError(
                f"RepeatedRandomTokens(bos={self.bos!r}): give True (BOS first), False (no BOS) or None "
                "(the Lab's BOS policy)"
            )

    def __str__(self) -> str:
        head = {True: "BOS + ", False: "", None: "(BOS +) "}[self.bos]
        return f"{head}{self.n} random ordinary tokens ×2, batch {self.batch}, seed {self.seed}"

    def with_bos(self, lab: Lab) -> RepeatedRandomTokens:
        """These inputs with ``bos`` decided for ``lab`` (None resolved by its BOS policy)."""
        return self if self.bos is not None else dataclasses.replace(self, bos=lab.has_bos)

    def tokens(self, lab: Lab) -> Int[Tensor, "batch pos"]:
        pool = torch.tensor(ordinary_token_ids(lab), dtype=torch.long)
        if len(pool) < self.n:
            raise PromptError(
                f"RepeatedRandomTokens(n={self.n}) needs {self.n} distinct ordinary tokens, but "
                f"{lab.model_id}'s vocabulary has only {len(pool)}; use n ≤ {len(pool)}"
            )
        bos = bool(self.with_bos(lab).bos)
        length = 2 * self.n + int(bos)
        if length > lab.n_ctx:
            raise PromptError(
                f"RepeatedRandomTokens(n={self.n}) makes sequences of {length} tokens, longer than "
                f"{lab.model_id}'s context of {lab.n_ctx}; use n ≤ {(lab.n_ctx - int(bos)) // 2}"
            )
        generator = torch.Generator().manual_seed(self.seed)
        halves = torch.stack(
            [pool[torch.randperm(len(pool), generator=generator)[: self.n]] for _ in range(self.batch)]
        )
        parts = [halves, halves]
        if bos:
            parts.insert(0, torch.full((self.batch, 1), lab.bos_token_id))
        return torch.cat(parts, dim=1).to(lab.device)


@dataclass(frozen=True)
class CopyingBasis:
    """Where the copying score takes the OV circuit's eigenvalues (seed 002 reports both bases).

    * ``basis="vocab"``: of the full circuit ``E · W_V W_O · W_U`` (vocab × vocab); its non-zero
      eigenvalues are those of the d_head × d_head matrix ``W_O (W_U E) W_V`` (``AB`` and ``BA``
      share them), so the whole vocabulary costs one d_model × d_model Gram matrix ``W_U E`` and
      nothing vocab × vocab is formed.
    * ``basis="residual"``: of ``W_V W_O`` alone (d_model × d_model).

    ``embedding`` is what ``E`` is: ``"W_E"``, the token embedding the residual stream receives
    (Gemma's ``sqrt(d_model)`` scale cancels in the ratio), or ``"post_mlp0"``, seed 002's
    effective embedding ``e + MLP0(e)`` (block 0's MLP on the embedding alone, attention 0
    ignored; on Gemma MLP0's output is ~4× the embedding's norm, so the two differ by up to 0.3).
    ``vocab_sample=k`` uses ``k`` token ids drawn uniformly (``seed``) instead of all of them, an
    unbiased estimate of the whole-vocabulary Gram matrix: ``post_mlp0`` over Gemma's 262k tokens
    runs MLP0 on each (~55 s on one CPU core, ~7 s for ``W_E``); measured on Gemma, 16,384 tokens
    move scores by up to 0.03 (``W_E``) / 0.04 (``post_mlp0``), 65,536 tokens by 0.007.

    Gemma, ``post_mlp0`` over every token: L15H3 0.940, L15H0 0.938, L7H0 0.920, L11H1 0.913.
    """

    basis: Literal["vocab", "residual"] = "vocab"
    embedding: Literal["W_E", "post_mlp0"] = "W_E"
    vocab_sample: int | None = None
    seed: int = 0

    def __post_init__(self) -> None:
        if self.basis not in ("vocab", "residual"):
            raise RoleError(f"CopyingBasis(basis={self.basis!r}): valid bases are 'vocab' and 'residual'")
        if self.embedding not in ("W_E", "post_mlp0"):
            raise RoleError(f"CopyingBasis(embedding={self.embedding!r}): valid embeddings are 'W_E' and 'post_mlp0'")
        if self.vocab_sample is not None and (not isinstance(self.vocab_sample, int) or self.vocab_sample < 1):
            raise RoleError(
                f"CopyingBasis(vocab_sample={self.vocab_sample!r}): give a positive number of tokens, or None for all"
            )

    def __str__(self) -> str:
        if self.basis == "residual":
            return "OV circuit W_V W_O in the residual basis (weights only)"
        if self.vocab_sample is None:
            tokens = "all tokens"
        else:
            tokens = f"{self.vocab_sample:,} tokens sampled, seed {self.seed}"
        embedding = "W_E" if self.embedding == "W_E" else "(W_E + MLP0)"
        return f"full OV circuit {embedding}·W_V W_O·W_U in the vocab basis, {tokens} (weights only)"


Inputs = Union[RepeatedRandomTokens, CopyingBasis, Tensor, Sequence[str], None]
"""What a score is computed on: :class:`RepeatedRandomTokens` (default for attention roles), token ids
``[batch, pos]`` (or one row ``[pos]``), a list of text prompts (tokenized with the Lab's BOS
policy, run one at a time), or a :class:`CopyingBasis` for ``copying``."""


def _token_batches(lab: Lab, inputs: Inputs) -> tuple[list[Tensor], str, Hashable]:
    """The input token rows as equal-length batches, a description, and a memo key."""
    if inputs is None:
        inputs = RepeatedRandomTokens()
    if isinstance(inputs, CopyingBasis):
        raise RoleError("a CopyingBasis describes the OV circuit, not prompts: give it to role='copying' only")
    if isinstance(inputs, RepeatedRandomTokens):
        inputs = inputs.with_bos(lab)  # the memo key says whether the rows start with BOS
        return [inputs.tokens(lab)], str(inputs), inputs
    if isinstance(inputs, Tensor):
        rows = inputs[None] if inputs.ndim == 1 else inputs
        if rows.ndim != 2 or rows.shape[1] < 2:
            raise PromptError(f"token inputs must be [batch, pos] with pos ≥ 2, got shape {tuple(inputs.shape)}")
        rows = torch.stack([lab.tokens(r) for r in rows])  # validates ids and length
        key = ("ids", tuple(rows.shape), tuple(rows.flatten().tolist()))
        return [rows], f"{rows.shape[0]} given token sequence(s) of {rows.shape[1]} tokens", key
    if isinstance(inputs, str) or not isinstance(inputs, Sequence) or not inputs:
        raise PromptError(
            f"inputs={inputs!r}: give RepeatedRandomTokens(...), a [batch, pos] tensor of token ids, "
            "or a non-empty list of prompts"
        )
    batches = [lab.tokens(p)[None] for p in inputs]
    key = ("prompts", tuple(inputs), lab.has_bos)  # the tokens depend on the BOS policy (Lab.bos_policy)
    return batches, f"{len(inputs)} prompt(s), {sum(b.shape[1] for b in batches)} tokens", key


# --------------------------------------------------------------------------- attention targets


def target_masks(tokens: Int[Tensor, "batch pos"]) -> dict[Role, Bool[Tensor, "batch query key"]]:
    """Where each attention role's head should attend: ``mask[b, q, k]`` for query ``q``, key ``k ≤ q``.

    The induction and duplicate-token masks are ``transformer_lens.head_detector``'s detection
    patterns (for a batch); ``mover_attention`` is seed 002's ``is_next_token``.
    """
    b, n = tokens.shape
    device = tokens.device
    q = torch.arange(n, device=device)[:, None]
    k = torch.arange(n, device=device)[None, :]
    same = tokens[:, :, None] == tokens[:, None, :]  # [b, q, k]: token q == token k
    earlier = (k < q)[None]
    duplicate = same & earlier
    induction = torch.zeros_like(duplicate)
    induction[:, :, 1:] = duplicate[:, :, :-1]  # key k follows an earlier copy (k - 1) of the query's token
    mover = torch.zeros_like(duplicate)
    mover[:, :-1, :] = (tokens[:, 1:, None] == tokens[:, None, :]) & (k <= q)[None, :-1]
    previous = (k == q - 1)[None].expand(b, n, n)
    return {"induction": induction, "previous_token": previous, "duplicate_token": duplicate, "mover_attention": mover}


@dataclass
class _Tally:
    """Per-role attention mass on targets and counts, summed over batches."""

    mass: dict[Role, Tensor]  # role -> [layer, head], float64
    target_rows: dict[Role, int]
    query_rows: int
    mover_dla: Tensor  # [layer, head], float64, summed over rows with a mover target


def _stop(tensor: Tensor, hook: Any) -> None:
    # Stop before the unembedding (262k columns for Gemma: 0.8 GB of logits per 8 × 101 tokens),
    # with the exception TransformerLens's own run_with_hooks(stop_at_layer=...) uses and catches.
    from transformer_lens.model_bridge.exceptions import StopAtLayerException

    raise StopAtLayerException(tensor)


def _next_token_directions(lab: Lab, tokens: Int[Tensor, "batch pos"]) -> Float[Tensor, "batch pos d_model"]:
    """Residual directions whose dot product with a (pre-final-norm, unscaled) vector is its
    direct logit for the next token: ``gain_final ⊙ W_U[:, next]``, centred for LayerNorm models.
    The last position (no next token) gets zeros."""
    w = circuit_weights(lab)
    nxt = torch.cat([tokens[:, 1:], tokens[:, -1:]], dim=1)
    directions = w.W_U[:, nxt].permute(1, 2, 0).to(w.final_gain.dtype) * w.final_gain
    if w.final_centers:
        directions = directions - directions.mean(-1, keepdim=True)
    directions[:, -1] = 0
    return directions


def _forward_tally(
    lab: Lab, tokens: Int[Tensor, "batch pos"], dla_mask: Bool[Tensor, "batch query key"] | None = None
) -> tuple[dict[Role, Tensor], Float[Tensor, "layer batch pos head"]]:
    """One forward pass: per layer, attention mass on every role's targets ([layer, head], summed
    over rows) and each head's direct logit attribution to the next token through attention
    restricted to ``dla_mask`` ([layer, batch, pos, head]; the mover mask by default).

    Why our own hooks and not ``run_with_cache``: a cache of every pattern is
    [layer, batch, head, pos, pos] (1.4 GB for 30 × 401 tokens on Gemma); reducing each layer's
    pattern inside its hook keeps O(batch · pos · head) per layer, and the run stops before the
    unembedding.
    """
    bridge = lab.bridge
    masks = {role: m.to(torch.float32) for role, m in target_masks(tokens).items()}
    source = (masks["mover_attention"] if dla_mask is None else dla_mask.to(torch.float32)).to(lab.device)
    directions = _next_token_directions(lab, tokens).float()
    W_O = circuit_weights(lab).W_O.float()
    n_layers, n_heads = lab.n_layers, lab.n_heads
    mass = {role: torch.zeros(n_layers, n_heads, dtype=torch.float64) for role in ATTENTION_ROLES}
    partial: list[Tensor | None] = [None] * n_layers  # [b, q, h], before dividing by the norm scales
    post_scale: list[Tensor | None] = [None] * n_layers
    final_scale: list[Tensor] = []
    values: dict[int, Tensor] = {}

    def on_v(v: Tensor, hook: Any) -> None:
        values[hook.layer()] = v

    def on_pattern(pattern: Tensor, hook: Any) -> None:
        layer = hook.layer()
        p = pattern.float()  # [b, h, q, k]
        for role in ATTENTION_ROLES:
            mass[role][layer] = torch.einsum("bhqk,bqk->h", p, masks[role]).double().cpu()
        if layer not in values:
            raise RuntimeError(
                f"{lab.model_id}: blocks.{layer}.attn.hook_v did not fire before hook_pattern, so the mover score "
                "cannot weight values by the pattern; this bridge computes attention in an unexpected order"
            )
        v = values.pop(layer).float()  # [b, k, kv_heads, d_head]
        v = v.repeat_interleave(n_heads // v.shape[2], dim=2)
        moved = torch.einsum("bhqk,bqk,bkhd->bqhd", p, source, v)
        readout = torch.einsum("hdm,bqm->bqhd", W_O[layer], directions)
        partial[layer] = (moved * readout).sum(-1)

    def on_post_scale(scale: Tensor, hook: Any) -> None:
        post_scale[hook.layer()] = scale[..., 0].float()

    def on_final_scale(scale: Tensor, hook: Any) -> None:
        final_scale.append(scale[..., 0].float())

    hooks: list[tuple[str, Callable[..., Any]]] = []
    for layer in range(n_layers):
        hooks += [(f"blocks.{layer}.attn.hook_v", on_v), (f"blocks.{layer}.attn.hook_pattern", on_pattern)]
        if f"blocks.{layer}.ln1_post.hook_scale" in bridge.hook_dict:  # Gemma's post-attention norm
            hooks.append((f"blocks.{layer}.ln1_post.hook_scale", on_post_scale))
    hooks += [("ln_final.hook_scale", on_final_scale), ("unembed.hook_in", _stop)]
    with lab.stats.timed(tokens.shape, kind="no_unembed"), torch.inference_mode():
        bridge.run_with_hooks(tokens.to(lab.device), fwd_hooks=hooks)
    if any(p is None for p in partial) or not final_scale:
        raise RuntimeError(
            f"{lab.model_id}: the attention-pattern hooks did not fire for every layer; this architecture's bridge "
            "does not expose blocks.*.attn.hook_pattern / hook_v as TransformerLens's standard attention does"
        )
    dla = torch.stack(
        [
            partial[l] / final_scale[0][..., None] / (post_scale[l][..., None] if post_scale[l] is not None else 1.0)
            for l in range(n_layers)
        ]
    )
    return mass, dla


def direct_logit_attribution(
    lab: Lab, tokens: Int[Tensor, "batch pos"], *, source_mask: Bool[Tensor, "batch query key"] | None = None
) -> Float[Tensor, "layer batch pos head"]:
    """Each head's direct effect on the logit of the **next** token at each position.

    The head's output ``z W_O`` (through Gemma's post-attention norm gain and scale, then the
    final norm's scale and gain) dotted with the next token's unembedding, as seed 002's
    ``get_head_dla``. With ``source_mask[b, q, k]``, only what the head reads from the masked
    source positions counts (seed 002's ``get_mover_dla_score`` uses "earlier copies of the
    next token"); ``None`` means every position (the full head DLA). The last position has no
    next token and reads 0. Biases are left out, as in the seed.
    """
    rows = tokens[None] if tokens.ndim == 1 else tokens
    if source_mask is None:
        n = rows.shape[1]
        source_mask = torch.ones(n, n, dtype=torch.bool, device=rows.device).tril()[None].expand(rows.shape[0], n, n)
    _, dla = _forward_tally(lab, rows.to(lab.device), source_mask)
    return dla


_tally_memo: weakref.WeakKeyDictionary[Lab, dict[Hashable, tuple[tuple[float, ...], _Tally]]] = (
    weakref.WeakKeyDictionary()
)


def _tally(lab: Lab, batches: list[Tensor], key: Hashable) -> _Tally:
    fingerprint = lab.fingerprint()
    memo = _tally_memo.setdefault(lab, {})
    hit = memo.get(key)
    if hit is not None and hit[0] == fingerprint:
        return hit[1]
    n_layers, n_heads = lab.n_layers, lab.n_heads
    total = _Tally(
        mass={role: torch.zeros(n_layers, n_heads, dtype=torch.float64) for role in ATTENTION_ROLES},
        target_rows=dict.fromkeys(ATTENTION_ROLES, 0),
        query_rows=0,
        mover_dla=torch.zeros(n_layers, n_heads, dtype=torch.float64),
    )
    for batch in batches:
        # Bound one pass's attention patterns to ~32 MB per layer.
        rows_per_pass = max(1, (8 << 20) // (n_heads * batch.shape[1] ** 2))
        for start in range(0, batch.shape[0], rows_per_pass):
            tokens = batch[start : start + rows_per_pass].to(lab.device)
            masks = target_masks(tokens)
            mass, dla = _forward_tally(lab, tokens)
            has_mover_target = masks["mover_attention"].any(-1)  # [b, q]
            for role in ATTENTION_ROLES:
                total.mass[role] += mass[role]
                total.target_rows[role] += int(masks[role].any(-1).sum())
            total.query_rows += tokens.numel()
            total.mover_dla += (dla * has_mover_target[None, :, :, None]).sum((1, 2)).double().cpu()
    memo[key] = (fingerprint, total)
    return total


# --------------------------------------------------------------------------- copying


def _copying_scores(lab: Lab, basis: CopyingBasis) -> Float[Tensor, "layer head"]:
    from transformer_lens import FactoredMatrix

    w = circuit_weights(lab)
    ov = w.OV
    if basis.basis == "vocab":
        full = basis.vocab_sample is None or basis.vocab_sample >= lab.d_vocab
        if full:
            ids = torch.arange(lab.d_vocab)
        else:
            generator = torch.Generator().manual_seed(basis.seed)
            ids = torch.randperm(lab.d_vocab, generator=generator)[: basis.vocab_sample].sort().values
        ids = ids.to(lab.device)
        gram = torch.zeros(lab.d_model, lab.d_model, dtype=torch.float64, device=lab.device)
        block0 = lab.bridge.blocks[0]
        with torch.inference_mode():
            for start in range(0, len(ids), 8192):
                chunk = ids[start : start + 8192]
                e = embed_tokens(lab, chunk)
                if basis.embedding == "post_mlp0":
                    mlp_out = block0.mlp(block0.ln2(e[None]))
                    post = getattr(block0, "ln2_post", None)  # Gemma's post-MLP norm
                    e = e + (post(mlp_out) if post is not None else mlp_out)[0].to(e.dtype)
                # A slice of W_U is a view; gathering sampled columns copies them (slow for 262k).
                unembed = w.W_U[:, start : start + len(chunk)] if full else w.W_U[:, chunk]
                gram += (unembed.to(e.dtype) @ e).double()
        # Non-zero eigenvalues of E·OV·diag(g)W_U (vocab × vocab) = those of OV·(diag(g) W_U E).
        ov = FactoredMatrix(ov.A.double(), ov.B.double() @ (w.final_gain.double()[:, None] * gram))
    else:
        ov = FactoredMatrix(ov.A.double(), ov.B.double())
    with torch.inference_mode(), single_threaded():  # see single_threaded: threaded LAPACK eig on a busy CPU
        eigenvalues = ov.eigenvalues
    return (eigenvalues.sum(-1) / eigenvalues.abs().sum(-1)).real.cpu()


# --------------------------------------------------------------------------- the score table


@dataclass(frozen=True, eq=False)
class HeadScores(Result):
    """A head role's score for every head of a model: a value to print, query and snapshot.

    ``scores[layer][head]``; :meth:`top`, :meth:`score` and :meth:`rank` read it by head name.
    A table makes no claim, so ``passed`` is always true; :func:`check_head_role` makes claims.
    """

    role: str
    model_id: str
    inputs: str
    scores: tuple[tuple[float, ...], ...] = field(metadata=kind("prob"))
    n_target_rows: int = 0
    """Query positions that have a target for this role (0 for ``copying``)."""
    n_query_rows: int = 0
    """All query positions of the inputs (0 for ``copying``)."""
    passed: bool = True

    @property
    def n_layers(self) -> int:
        return len(self.scores)

    @property
    def n_heads(self) -> int:
        return len(self.scores[0]) if self.scores else 0

    @property
    def array(self) -> np.ndarray:
        """The scores as a float64 ``[n_layers, n_heads]`` array."""
        return np.array(self.scores, dtype=np.float64)

    @property
    def detector_fraction(self) -> float:
        """``n_target_rows / n_query_rows``: multiply a score by it to get ``head_detector``'s number
        (exact when every sequence has the same fraction, as for :class:`RepeatedRandomTokens`)."""
        return self.n_target_rows / self.n_query_rows if self.n_query_rows else math.nan

    def _parse(self, head: HeadSpec) -> tuple[int, int]:
        return parse_head_name(head, n_layers=self.n_layers, n_heads=self.n_heads, model_id=self.model_id)

    def score(self, head: HeadSpec) -> float:
        """One head's score: ``scores.score("L5H1")``."""
        layer, index = self._parse(head)
        return self.scores[layer][index]

    def rank(self, head: HeadSpec) -> int:
        """The number of other heads that score at least as high: 0 for the strictly top-scoring head.

        Ties count against the head (:func:`~pytest_annotate.scoring.ranks.rank_of`): two heads with
        the same top score both have rank 1, so neither is "the top head".
        """
        layer, index = self._parse(head)
        return int(rank_of(self.array.reshape(-1), layer * self.n_heads + index))

    def top(self, k: int = 5) -> list[tuple[str, float]]:
        """The ``k`` highest-scoring heads, best first: ``[("L5H1", 0.87), ...]``."""
        flat = self.array.flatten()
        order = np.argsort(-flat, kind="stable")[:k]
        return [(head_name(int(i) // self.n_heads, int(i) % self.n_heads), float(flat[i])) for i in order]

    #: A table of scores: it measures, and claims nothing.
    judged: ClassVar[bool] = False

    def measurements(self) -> tuple[Measurement, ...]:
        return tuple(Measurement(f"{name} {self.role} score", value) for name, value in self.top(3))

    def report(self, highlight: int = 5) -> str:
        top = self.top(highlight)
        marks = {name: i + 1 for i, (name, _) in enumerate(top)}
        rows = ""
        if self.n_query_rows:
            rows = f" ({self.n_target_rows:,} of {self.n_query_rows:,} query positions have a target)"
        lines = [
            f"{self.role} scores of {self.model_id} ({self.n_layers} layers × {self.n_heads} heads)",
            f"Score: {ROLE_DEFINITIONS.get(self.role, self.role)}",  # type: ignore[call-overload]
            f"Inputs: {self.inputs}{rows}",
            "",
            "     " + "".join(f"{f'H{h}':>11}" for h in range(self.n_heads)),
        ]
        for layer, row in enumerate(self.scores):
            cells = []
            for index, value in enumerate(row):
                mark = marks.get(head_name(layer, index))
                cells.append(f"{value:7.3f}" + (f" #{mark}" if mark else "   "))
            lines.append((f"{f'L{layer}':<4} " + " ".join(f"{c:>10}" for c in cells)).rstrip())
        lines += ["", f"Top {len(top)}: " + ", ".join(f"{name} {value:.3f}" for name, value in top)]
        return "\n".join(lines)


_copy_memo: weakref.WeakKeyDictionary[Lab, dict[CopyingBasis, tuple[tuple[float, ...], HeadScores]]] = (
    weakref.WeakKeyDictionary()
)


def head_scores(lab: Lab, role: Role, *, inputs: Inputs = None) -> HeadScores:
    """The ``role`` score of every head of the model (see the module docstring for the roles).

    ``inputs``: :class:`RepeatedRandomTokens` (default), token ids, or prompts for the attention roles
    and ``mover``; a :class:`CopyingBasis` (default: vocab basis, W_E, every token) for
    ``copying``. Results are memoized per Lab, weights and inputs: every attention role comes from
    the same forward pass.
    """
    role = check_role(role)
    if role == "copying":
        if inputs is None:
            inputs = CopyingBasis()
        if not isinstance(inputs, CopyingBasis):
            raise RoleError(
                "the copying score reads weights only: give inputs=CopyingBasis(...) (or nothing), not prompts"
            )
        fingerprint = lab.fingerprint()
        memo = _copy_memo.setdefault(lab, {})
        hit = memo.get(inputs)
        if hit is not None and hit[0] == fingerprint:
            return hit[1]
        table = _copying_scores(lab, inputs)
        result = HeadScores(
            role=role, model_id=lab.model_id, inputs=str(inputs), scores=_nested(table)
        )
        memo[inputs] = (fingerprint, result)
        return result
    batches, description, key = _token_batches(lab, inputs)
    tally = _tally(lab, batches, key)
    counted: Role = "mover_attention" if role == "mover" else role
    targets = tally.target_rows[counted]
    if targets == 0:
        raise PromptError(
            f"the inputs ({description}) have no position where the {role} score applies "
            f"({ROLE_DEFINITIONS[role]}): no token occurs twice. Use RepeatedRandomTokens() or prompts with repeats."
            if role != "previous_token"
            else f"the inputs ({description}) have no position with a previous token"
        )
    table = (tally.mover_dla if role == "mover" else tally.mass[role]) / targets
    return HeadScores(
        role=role,
        model_id=lab.model_id,
        inputs=description,
        scores=_nested(table),
        n_target_rows=targets,
        n_query_rows=tally.query_rows,
    )


def _nested(table: Tensor) -> tuple[tuple[float, ...], ...]:
    return tuple(tuple(float(x) for x in row) for row in table.tolist())
