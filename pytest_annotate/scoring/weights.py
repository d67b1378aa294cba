"""The weight circuits of attention heads that the composition checks read: :class:`CircuitWeights`
(every normalisation gain on the path folded in, grouped-query heads expanded) and :func:`circuit_weights`.

What the weights mean model by model (Gemma's norm gains, its ``sqrt(d_model)`` embedding scale,
grouped-query heads) and what the K-composition circuit is are in :mod:`pytest_annotate.checks.composition`.
"""


from __future__ import annotations

import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING, Literal

import torch
from jaxtyping import Float, Int
from torch import Tensor
from transformer_lens import FactoredMatrix

if TYPE_CHECKING:

    from pytest_annotate.lab import Lab


# --------------------------------------------------------------------------- weights with gains


@dataclass(frozen=True)
class CircuitWeights:
    """A model's attention weights with every normalisation gain on the path folded in.

    ``W_K`` and ``W_V`` are expanded to one matrix per query head (grouped-query attention).
    The unembedding is kept as the model's own tensor (it is 262k columns wide for Gemma) with the
    final norm's gain beside it, so nothing vocab-sized is copied.
    """

    W_Q: Float[Tensor, "layer head d_model d_head"]
    """Query weights, with the pre-attention norm gain and, for Gemma, q_norm × k_norm gains."""
    W_K: Float[Tensor, "layer head d_model d_head"]
    W_V: Float[Tensor, "layer head d_model d_head"]
    W_O: Float[Tensor, "layer head d_head d_model"]
    """Output weights, with the post-attention norm gain where the model has one (Gemma)."""
    W_U: Float[Tensor, "d_model vocab"]
    final_gain: Float[Tensor, " d_model"]
    """The final norm's gain (ones in compat processing, where it is folded into W_U)."""
    final_centers: bool
    """Whether the final norm subtracts the mean (LayerNorm) or not (RMSNorm)."""

    @cached_property
    def _collapsed(self) -> dict[str, Tensor]:
        return {}

    def collapsed(self, which: Literal["OV_left", "QK_right", "QKT_right", "OV_right"]) -> Tensor:
        """TransformerLens's ``collapse_l`` / ``collapse_r`` of a circuit, for every head, computed once.

        ``‖L R‖_F = ‖collapse_l(L) · collapse_r(R)‖_F`` (the orthogonal SVD factors drop out), so these
        [layer, head, d_head, d_model] / [layer, head, d_model, d_head] tensors are all a composition
        score needs; computing each head's SVD once, not once per pair, is what makes the all-pairs
        table take seconds.
        """
        if which not in self._collapsed:
            with torch.inference_mode(), single_threaded():
                self._collapsed[which] = {
                    "OV_left": lambda: self.OV.collapse_l(),
                    "QK_right": lambda: self.QK.collapse_r(),
                    "QKT_right": lambda: self.QK.T.collapse_r(),
                    "OV_right": lambda: self.OV.collapse_r(),
                }[which]()
        return self._collapsed[which]

    @property
    def OV(self) -> FactoredMatrix:
        """``W_V W_O`` per head: [layer, head, d_model, d_model], residual in → residual out."""
        return FactoredMatrix(self.W_V, self.W_O)

    @property
    def QK(self) -> FactoredMatrix:
        """``W_Q W_Kᵀ`` per head: [layer, head, d_model (query), d_model (key)]."""
        return FactoredMatrix(self.W_Q, self.W_K.transpose(-2, -1))


def norm_gain(module: torch.nn.Module | None, width: int, *, device: str, dtype: torch.dtype) -> Tensor:
    """The elementwise gain of a LayerNorm/RMSNorm module (ones when there is no module).

    Probing the module with ``x = (+1, -1, +1, ...)`` (mean 0, rms 1, so it is left unscaled by
    either norm) gives ``gain ⊙ x + bias``; the zero vector gives ``bias``. This reads Gemma's
    ``(1 + w)`` offset convention, folded weights (compat) and raw weights (raw) the same way,
    without knowing how each architecture stores them.
    """
    if module is None:
        return torch.ones(width, device=device, dtype=dtype)
    probe = torch.ones(width, device=device, dtype=dtype)
    probe[1::2] = -1
    with torch.inference_mode():
        out = module(probe[None, None]) - module(torch.zeros(1, 1, width, device=device, dtype=dtype))
    return (out[0, 0] * probe).detach().clone()


_weights_memo: weakref.WeakKeyDictionary[Lab, tuple[tuple[float, ...], CircuitWeights]] = weakref.WeakKeyDictionary()


def circuit_weights(lab: Lab) -> CircuitWeights:
    """The Lab's :class:`CircuitWeights`, computed once per set of weights (memoized per Lab)."""
    fingerprint = lab.fingerprint()
    hit = _weights_memo.get(lab)
    if hit is not None and hit[0] == fingerprint:
        return hit[1]
    bridge, cfg = lab.bridge, lab.cfg
    device = lab.device
    dtype = torch.float32 if lab.dtype in (torch.float16, torch.bfloat16) else lab.dtype
    d_model, d_head, n_heads = lab.d_model, int(cfg.d_head), lab.n_heads

    def stacked(t: Tensor) -> Tensor:
        t = t.detach().to(device=device, dtype=dtype)
        # Grouped-query attention: query head h reads key/value head h // (n_heads // n_kv_heads),
        # the layout TransformerBridge.QK/OV use (its _expand_kv_heads is private).
        return t.repeat_interleave(n_heads // t.shape[1], dim=1) if t.shape[1] != n_heads else t

    with torch.inference_mode():
        W_Q, W_K, W_V, W_O = (stacked(w) for w in (bridge.W_Q, bridge.W_K, bridge.W_V, bridge.W_O))
        blocks = list(bridge.blocks)
        g_in = torch.stack([norm_gain(getattr(b, "ln1", None), d_model, device=device, dtype=dtype) for b in blocks])
        g_post = torch.stack(
            [norm_gain(getattr(b, "ln1_post", None), d_model, device=device, dtype=dtype) for b in blocks]
        )
        g_q = torch.stack(
            [norm_gain(getattr(b.attn, "q_norm", None), d_head, device=device, dtype=dtype) for b in blocks]
        )
        g_k = torch.stack(
            [norm_gain(getattr(b.attn, "k_norm", None), d_head, device=device, dtype=dtype) for b in blocks]
        )
        weights = CircuitWeights(
            W_Q=g_in[:, None, :, None] * W_Q * (g_q * g_k)[:, None, None, :],
            W_K=g_in[:, None, :, None] * W_K,
            W_V=g_in[:, None, :, None] * W_V,
            W_O=W_O * g_post[:, None, None, :],
            W_U=bridge.W_U.detach(),
            final_gain=norm_gain(getattr(bridge, "ln_final", None), d_model, device=device, dtype=dtype),
            final_centers=str(cfg.normalization_type).startswith("LN"),
        )
    _weights_memo[lab] = (fingerprint, weights)
    return weights


def embed_tokens(lab: Lab, ids: Int[Tensor, " n"]) -> Float[Tensor, "n d_model"]:
    """Token embeddings as the residual stream receives them (the model's embedding module:
    Gemma's ``sqrt(d_model)`` scale included; no positional embedding)."""
    with torch.inference_mode():
        out = lab.bridge.embed(ids.to(lab.device)[None])[0]
    return out.detach().float() if out.dtype in (torch.float16, torch.bfloat16) else out.detach()


@contextmanager
def single_threaded() -> Iterator[None]:
    """Run small dense LAPACK work (eig, SVD of 256 × 256 blocks) on one CPU thread.

    Such problems gain nothing from threads, and threaded LAPACK collapses on a busy CPU: 72
    eigenproblems of 256 × 256 took 449 s with torch's default 2 threads and 5.5 s with 1 on a
    shared 2-core machine. The previous thread count is restored on exit.
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)
