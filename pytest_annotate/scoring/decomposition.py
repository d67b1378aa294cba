"""The residual stream as a sum of named pieces, and the check that the pieces add up.

At every layer and position the residual stream is what the model has written into it::

    resid_post^l = embed (+ pos_embed, where positions are learned) + Σ_{i≤l} (attn^i + MLP^i)
    attn^i       = Σ_h head^{i.h} (+ b_O^i)

and the final logit of a token ``t`` is a sum of one inner product per piece, once the final
LayerNorm/RMSNorm is linearized by freezing its scale at the measured value::

    logit_t = λ Σ_c ⟨unembed(t), γ ⊙ P c⟩ + ⟨unembed(t), β⟩ + b_U(t),     λ = 1/σ

(``σ`` the norm's measured scale, ``P`` the LayerNorm's centring ``x − mean(x)`` and the identity
for RMSNorm, ``γ`` its gain and ``β`` its bias). In ``compat`` processing TransformerLens has
folded ``γ`` and ``β`` into the unembedding (``γ ≡ 1``, ``β ≡ 0``); in ``raw`` processing they
are explicit. Gemma's RMSNorm computes ``x · (1 + w)``, so its gain is ``γ = 1 + w``.

What each hook holds, measured on TransformerLens 4.x bridges:

* ``hook_embed`` is the token embedding as block 0 sees it (Gemma's ``√d_model`` scaling
  included); ``hook_pos_embed`` the learned positions (GPT-2 style models only).
* ``blocks.i.hook_attn_out`` / ``hook_mlp_out`` are exactly what block ``i`` adds to the residual
  stream. On Gemma they sit *after* the post-attention / post-feed-forward RMSNorms, so the
  per-head split ``z[h] @ W_O[h]`` must pass through the post-attention norm: it is linearized
  like the final norm, with its scale frozen at the measured value, so the heads sum exactly.

Every sum is taken in float64 from the model's own activations. :func:`check_decomposition`
measures how far each identity is from exact, and :func:`assert_decomposition_sums` turns it
into a test.

>>> result = check_decomposition(lab, "The capital of Ireland is", answer=" Dublin")   # doctest: +SKIP
>>> result.passed                                                                     # doctest: +SKIP
True
"""


from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, get_args

import torch
from jaxtyping import Float, Int
from torch import Tensor

from pytest_annotate.errors import ComponentError

if TYPE_CHECKING:
    from pytest_annotate.lab import Lab, Prompt

Level = Literal["blocks", "sublayers", "heads"]
"""How finely the residual stream is split: one term per block, per attention/MLP, or per head."""
LEVELS: tuple[Level, ...] = get_args(Level)

TermKind = Literal["embed", "pos_embed", "block", "attn", "mlp", "head", "attn_bias"]
"""The kinds of residual-stream term. Names follow :mod:`pytest_annotate.interventions.components`
(``embed``, ``pos_embed``, ``L9``, ``attn9``, ``MLP9``, ``L5H5``), plus ``attn9.b_O``."""

DEFAULT_TOP_K = 5


def float64(t: Tensor) -> Tensor:
    """``t`` in float64 on the model's device (on the CPU for MPS, which has no float64)."""
    if t.device.type == "mps":
        return t.detach().to("cpu", torch.float64)
    return t.detach().to(torch.float64)


@dataclass(frozen=True, eq=False)
class Term:
    """One additive piece of the residual stream, at every position of the prompt.

    ``name`` is the component's name as researchers write it (``L3``, ``attn3``, ``MLP3``,
    ``L3H1``, ``embed``, ``pos_embed``) or ``attn3.b_O`` for an attention output bias.
    """

    name: str
    kind: TermKind
    layer: int | None
    head: int | None
    vector: Float[Tensor, "pos d_model"]


@dataclass(frozen=True, eq=False)
class FrozenNorm:
    """A LayerNorm/RMSNorm with its scale frozen at the measured value: a linear map plus a bias.

    ``norm(x) = γ ⊙ P x / σ + β`` where ``σ`` is the measured scale (``√(var(x) + ε)`` for
    LayerNorm, ``√(mean(x²) + ε)`` for RMSNorm), ``P`` centres (LayerNorm only), ``γ`` is the
    gain and ``β`` the bias. With ``σ`` frozen, the norm of a sum is the sum of the norms'
    linear parts, plus ``β`` once.
    """

    kind: Literal["LayerNorm", "RMSNorm"]
    scale: Float[Tensor, " pos"]
    gain: Float[Tensor, " d_model"]
    bias: Float[Tensor, " d_model"] | None
    """``None`` when the norm has no bias or it is identically zero (folded in compat processing)."""
    gain_formula: str
    """How ``γ`` is read from the weights: ``"w"``, or ``"1 + w"`` for Gemma-style norms."""

    @property
    def centres(self) -> bool:
        return self.kind == "LayerNorm"

    @property
    def gain_is_one(self) -> bool:
        """Whether ``γ ≡ 1`` (compat processing folds the final gain into the unembedding)."""
        return bool((self.gain == 1).all())

    def linear(self, x: Float[Tensor, "... pos d_model"]) -> Float[Tensor, "... pos d_model"]:
        """The linear part ``γ ⊙ P x / σ`` (no bias), broadcast over leading dimensions."""
        if self.centres:
            x = x - x.mean(-1, keepdim=True)
        return x * self.gain / self.scale[:, None]


def _frozen_norm(module: torch.nn.Module, scale: Float[Tensor, "pos 1"], d_model: int) -> FrozenNorm:
    """Read a normalization bridge's gain and bias the way its forward pass applies them."""
    rms = bool(getattr(module, "uses_rms_norm", False))
    offset = bool(getattr(module, "uses_weight_offset", False))
    scale64 = float64(scale).reshape(-1)
    weight = getattr(module, "weight", None)
    gain = scale64.new_ones(d_model) if weight is None else float64(weight).to(scale64.device)
    if offset:  # Gemma's RMSNorm computes x * (1 + w)
        gain = 1.0 + gain
    raw_bias = None if rms else getattr(getattr(module, "original_component", None), "bias", None)
    bias = float64(raw_bias) if _nonzero(raw_bias) else None
    return FrozenNorm("RMSNorm" if rms else "LayerNorm", scale64, gain, bias, "1 + w" if offset else "w")


def _nonzero(t: object) -> bool:
    """Whether ``t`` is a tensor with an entry that is not exactly zero."""
    return isinstance(t, Tensor) and bool((t != 0).any())


@dataclass(frozen=True, eq=False)
class LogitAttribution:
    """Each term's contribution to some tokens' logits at one position; they sum to the logit.

    ``direct[c, k] = λ ⟨unembed(t_k), γ ⊙ P term_c⟩``; ``norm_bias[k] = ⟨unembed(t_k), β⟩``;
    ``unembed_bias[k] = b_U(t_k)``. The biases are ``None`` where identically zero.
    """

    terms: tuple[Term, ...]
    token_ids: tuple[int, ...]
    position: int
    direct: Float[Tensor, "term token"]
    norm_bias: Float[Tensor, " token"] | None
    unembed_bias: Float[Tensor, " token"] | None
    measured: Float[Tensor, " token"]
    """The model's own logits for these tokens, from its forward pass."""

    def total(self) -> Float[Tensor, " token"]:
        """The sum of every term (float64)."""
        out = self.direct.sum(0)
        for extra in (self.norm_bias, self.unembed_bias):
            if extra is not None:
                out = out + extra
        return out


@dataclass(frozen=True, eq=False)
class ResidualDecomposition:
    """A prompt's residual stream split into terms, from one cached forward pass (float64).

    Build it with :func:`decompose`. Every tensor has the prompt's positions as a dimension;
    ``resid_post[l]`` and ``attn[l]`` are the measured values the identities are checked
    against.
    """

    lab: Lab
    tokens: Int[Tensor, " pos"]
    embed: Float[Tensor, "pos d_model"]
    pos_embed: Float[Tensor, "pos d_model"] | None
    attn: Float[Tensor, "layer pos d_model"]
    mlp: Float[Tensor, "layer pos d_model"]
    heads: Float[Tensor, "layer pos head d_model"]
    """Each head's write into the residual stream (after the post-attention norm, if any)."""
    attn_bias: Float[Tensor, "layer pos d_model"] | None
    """``b_O`` per layer (through the post-attention norm, if any); ``None`` when absent or zero."""
    resid_pre0: Float[Tensor, "pos d_model"]
    resid_post: Float[Tensor, "layer pos d_model"]
    final_norm: FrozenNorm
    post_attention_norm: bool
    """Whether an RMSNorm sits between the heads' sum and the residual stream (Gemma)."""
    logits: Float[Tensor, "pos vocab"]
    """The model's logits from its forward pass (the dtype it ran in)."""

    @property
    def n_layers(self) -> int:
        return int(self.attn.shape[0])

    @property
    def n_heads(self) -> int:
        return int(self.heads.shape[2])

    @property
    def str_tokens(self) -> list[str]:
        return self.lab.to_str(self.tokens.tolist())

    def terms(self, level: Level = "blocks") -> tuple[Term, ...]:
        """The residual stream after the last block as a sum of terms, at ``level``.

        ``blocks``: ``embed (+ pos_embed) + L0 + … + L{n-1}``; ``sublayers``: each block as
        ``attn{i} + MLP{i}``; ``heads``: each attention layer as ``L{i}H0 + … (+ attn{i}.b_O)``.
        """
        if level not in LEVELS:
            raise ValueError(f"level {level!r} is not one of {', '.join(LEVELS)}")
        out = [Term("embed", "embed", None, None, self.embed)]
        if self.pos_embed is not None:
            out.append(Term("pos_embed", "pos_embed", None, None, self.pos_embed))
        for i in range(self.n_layers):
            if level == "blocks":
                out.append(Term(f"L{i}", "block", i, None, self.attn[i] + self.mlp[i]))
                continue
            if level == "sublayers":
                out.append(Term(f"attn{i}", "attn", i, None, self.attn[i]))
            else:
                out.extend(Term(f"L{i}H{h}", "head", i, h, self.heads[i, :, h]) for h in range(self.n_heads))
                if self.attn_bias is not None:
                    out.append(Term(f"attn{i}.b_O", "attn_bias", i, None, self.attn_bias[i]))
            out.append(Term(f"MLP{i}", "mlp", i, None, self.mlp[i]))
        return tuple(out)

    def unembed(self, token_ids: Sequence[int]) -> tuple[Float[Tensor, "d_model k"], Float[Tensor, " k"] | None]:
        """The unembedding columns of some tokens and their biases (``None`` if identically zero).

        Only these columns are converted to float64: Gemma's full ``W_U`` would take 1.3 GB.
        """
        bridge = self.lab.bridge
        ids = torch.as_tensor(list(token_ids), dtype=torch.long, device=bridge.W_U.device)
        columns = float64(bridge.W_U[:, ids])
        raw_bias = unembed_bias(self.lab)
        return columns, (float64(raw_bias[ids]) if _nonzero(raw_bias) else None)

    def logit_attribution(
        self, token_ids: Sequence[int], *, level: Level = "blocks", position: int = -1
    ) -> LogitAttribution:
        """Each term's direct contribution to the logits of ``token_ids`` at ``position``."""
        pos = position % self.tokens.shape[0]
        terms = self.terms(level)
        columns, unembed_bias = self.unembed(token_ids)
        norm = self.final_norm
        stacked = torch.stack([t.vector[pos] for t in terms])  # [term, d_model]
        if norm.centres:
            stacked = stacked - stacked.mean(-1, keepdim=True)
        direct = (stacked * norm.gain / norm.scale[pos]) @ columns
        norm_bias = None if norm.bias is None else norm.bias @ columns
        ids = torch.as_tensor(list(token_ids), dtype=torch.long, device=self.logits.device)
        measured = float64(self.logits[pos, ids])
        return LogitAttribution(
            terms, tuple(int(i) for i in token_ids), pos, direct, norm_bias, unembed_bias, measured.to(direct.device)
        )


def _hook_names(lab: Lab) -> tuple[list[str], bool, bool]:
    learned_positions = getattr(lab.cfg, "positional_embedding_type", "standard") == "standard"
    post_norm = hasattr(lab.bridge.blocks[0], "ln1_post")
    names = ["hook_embed", "blocks.0.hook_resid_pre", "ln_final.hook_scale"]
    if learned_positions:
        names.append("hook_pos_embed")
    for i in range(lab.n_layers):
        names += [f"blocks.{i}.hook_attn_out", f"blocks.{i}.hook_mlp_out", f"blocks.{i}.hook_resid_post",
                  f"blocks.{i}.attn.hook_z"]
        if post_norm:
            names.append(f"blocks.{i}.ln1_post.hook_scale")
    return names, learned_positions, post_norm


def decompose(lab: Lab, prompt: Prompt, *, bos: bool | None = None) -> ResidualDecomposition:
    """Split a prompt's residual stream into terms, from one cached forward pass.

    >>> d = decompose(lab, "The capital of Ireland is")                        # doctest: +SKIP
    >>> [t.name for t in d.terms("blocks")][:3]                                 # doctest: +SKIP
    ['embed', 'L0', 'L1']
    """
    tokens = lab.tokens(prompt, bos=bos)
    names, learned_positions, post_norm = _hook_names(lab)
    missing = [n for n in names if n not in lab.bridge.hook_dict]
    if missing:
        raise ComponentError(
            f"{lab.model_id} has no hook point(s) {missing[:4]}: its residual stream cannot be decomposed "
            "with TransformerLens's standard hook names (hook_embed, blocks.i.hook_attn_out, "
            "blocks.i.hook_mlp_out, blocks.i.attn.hook_z, ln_final.hook_scale)"
        )
    cache = lab.cache(tokens, names=names)

    def get(name: str) -> Tensor:
        return float64(cache[name][0])

    bridge, d_model = lab.bridge, lab.d_model
    heads, biases = [], []
    for i in range(lab.n_layers):
        attn = bridge.blocks[i].attn
        z = get(f"blocks.{i}.attn.hook_z")  # [pos, head, d_head]
        per_head = torch.einsum("phd,hdm->phm", z, float64(attn.W_O).to(z.device))
        bias = float64(attn.b_O).to(z.device).expand(z.shape[0], d_model) if _nonzero(attn.b_O) else None
        if post_norm:
            # An RMSNorm sits between the heads' sum and the residual stream (Gemma): freeze its
            # scale at the measured value so that it is linear and the heads' terms sum exactly.
            frozen = _frozen_norm(bridge.blocks[i].ln1_post, cache[f"blocks.{i}.ln1_post.hook_scale"][0], d_model)
            per_head = frozen.linear(per_head.transpose(0, 1)).transpose(0, 1)
            bias = None if bias is None else frozen.linear(bias)
        heads.append(per_head)
        biases.append(bias)
    attn_bias = None
    if any(b is not None for b in biases):
        attn_bias = torch.stack([b if b is not None else heads[0].new_zeros(heads[0].shape[0], d_model)
                                 for b in biases])
    return ResidualDecomposition(
        lab=lab,
        tokens=tokens,
        embed=get("hook_embed"),
        pos_embed=get("hook_pos_embed") if learned_positions else None,
        attn=torch.stack([get(f"blocks.{i}.hook_attn_out") for i in range(lab.n_layers)]),
        mlp=torch.stack([get(f"blocks.{i}.hook_mlp_out") for i in range(lab.n_layers)]),
        heads=torch.stack(heads),
        attn_bias=attn_bias,
        resid_pre0=get("blocks.0.hook_resid_pre"),
        resid_post=torch.stack([get(f"blocks.{i}.hook_resid_post") for i in range(lab.n_layers)]),
        final_norm=_frozen_norm(bridge.ln_final, cache["ln_final.hook_scale"][0], d_model),
        post_attention_norm=post_norm,
        logits=lab.run(tokens),
    )


def unembed_bias(lab: Lab) -> Tensor | None:
    """The unembedding bias ``b_U`` of the wrapped HuggingFace model, or ``None``."""
    return getattr(getattr(lab.bridge.unembed, "original_component", None), "bias", None)
