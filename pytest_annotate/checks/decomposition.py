"""The check that a decomposition of the residual stream adds up: :func:`check_decomposition` /
:func:`assert_decomposition_sums`, on the pieces :mod:`pytest_annotate.scoring.decomposition` computes
(its docstring describes them).
"""


from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

import torch
from jaxtyping import Float
from torch import Tensor

from pytest_annotate.results import (
    Measurement,
    Result,
    asserting,
    fmt_prompt,
    fmt_token,
)

if TYPE_CHECKING:
    from pytest_annotate.lab import Lab, Prompt
from pytest_annotate.scoring.decomposition import (
    DEFAULT_TOP_K,
    _nonzero,
    decompose,
    unembed_bias,
)

# --------------------------------------------------------------------------- the check


IdentityName = Literal["embed", "residual", "heads", "logits"]


@dataclass(frozen=True)
class IdentityError:
    """How far one identity is from exact: the largest error over layers, positions (and tokens)."""

    identity: IdentityName
    equation: str
    max_abs_error: float
    """The largest absolute error (residual units for vector identities, logits for ``logits``)."""
    max_rel_error: float | None
    """For vector identities: the largest ``|error| / RMS`` of the residual at that layer and
    position (what the next LayerNorm sees). ``None`` for ``logits``, which are compared absolutely."""
    worst_at: str
    """Where the largest compared error occurred, e.g. ``"L17, position 5 ' is'"``."""
    passed: bool

    @property
    def compared_error(self) -> float:
        """The number compared with ``atol``."""
        return self.max_abs_error if self.max_rel_error is None else self.max_rel_error


@dataclass(frozen=True, eq=False)
class DecompositionResult(Result):
    """The errors of the residual-stream identities on one prompt (see :func:`check_decomposition`)."""

    model_id: str
    processing: str
    dtype: str
    prompt: str
    str_tokens: tuple[str, ...]
    answer: str | None
    answer_logit: float | None
    """The model's logit for the answer at the last position."""
    answer_logit_sum: float | None
    """The sum of the answer's per-head logit terms (float64)."""
    identities: tuple[IdentityError, ...]
    atol: float
    passed: bool

    def identity(self, name: IdentityName) -> IdentityError:
        return next(i for i in self.identities if i.identity == name)

    @property
    def claim(self) -> str:
        return (f"the residual stream of {self.model_id} on {self.prompt!r} is the sum of its terms "
                f"within atol = {self.atol:g}")

    def measured(self) -> str:
        worst = max(self.identities, key=lambda i: i.compared_error / self.atol)
        return f"worst {worst.identity} error {worst.compared_error:.2e}"

    def measurements(self) -> tuple[Measurement, ...]:
        return tuple(Measurement(f"{i.identity} identity error", i.compared_error, "<=", self.atol, primary=True)
                     for i in self.identities)

    def report(self) -> str:
        lines = [
            self.headline(),
            f"Residual-stream decomposition of {self.model_id} ({self.processing} processing, {self.dtype} forward "
            "pass, sums in float64)",
            f"Tokenized prompt: {fmt_prompt(self.str_tokens)}",
        ]
        if self.answer is not None and self.answer_logit is not None and self.answer_logit_sum is not None:
            lines.append(
                f"Answer {fmt_token(self.answer)} at the last position: logit {self.answer_logit:.4f} measured, "
                f"{self.answer_logit_sum:.4f} as the sum of its terms"
            )
        lines.append("")
        width = max(len(i.equation) for i in self.identities)
        lines.append(f"  {'identity':<{width}}  {'max |err|':>9}  {'err / RMS':>9}  {'compared':>9}  verdict  worst at")
        for i in self.identities:
            rel = "-" if i.max_rel_error is None else f"{i.max_rel_error:.2e}"
            verdict = "ok" if i.passed else "FAILED"
            lines.append(
                f"  {i.equation:<{width}}  {i.max_abs_error:9.2e}  {rel:>9}  {i.compared_error:9.2e}  "
                f"{verdict:<7}  {i.worst_at}"
            )
        lines.append("")
        lines.append(
            f"atol = {self.atol:g}, compared with err / RMS for the residual identities (the error as the next "
            "normalization sees it) and with |err| in logits for the logit identity."
        )
        failed = [i for i in self.identities if not i.passed]
        if not failed:
            lines.append("Every identity holds within atol.")
        for i in failed:
            lines.append(f"{i.identity}: error {i.compared_error:.2e} exceeds atol {self.atol:g} by "
                         f"{i.compared_error / self.atol:.1f}x. {_NEXT_STEP[i.identity]}")
        return "\n".join(lines)


_NEXT_STEP: dict[str, str] = {
    "embed": "Look at hook_embed / hook_pos_embed against blocks.0.hook_resid_pre: something is added to the "
             "embedding before block 0 (an embedding norm or scale?) that no hook reports.",
    "residual": "The hooks blocks.i.hook_attn_out / hook_mlp_out do not hold what block i adds to the residual "
                "stream for this architecture (a norm or scale between a sublayer and the residual?). Compare "
                "blocks.i.hook_resid_post - hook_resid_pre with hook_attn_out + hook_mlp_out at the worst layer.",
    "heads": "Per-head writes z[h] @ W_O[h] do not add up to blocks.i.hook_attn_out: check W_O's layout against "
             "blocks.i.attn.o.hook_out, and whether a norm sits after the output projection.",
    "logits": "The final norm's linearization does not reproduce the logits: check ln_final.hook_scale, the "
              "gain convention (w or 1 + w), the unembedding bias, and whether logits are soft-capped.",
}


def _rms(x: Float[Tensor, "... d_model"]) -> Float[Tensor, "..."]:
    return x.pow(2).mean(-1).sqrt()


def _vector_identity(
    name: IdentityName, equation: str, error: Float[Tensor, "layer pos d_model"],
    reference: Float[Tensor, "layer pos d_model"], str_tokens: Sequence[str], atol: float, *, layered: bool,
) -> IdentityError:
    abs_err = error.abs().amax(-1)  # [layer, pos]
    rel_err = abs_err / _rms(reference).clamp_min(torch.finfo(torch.float64).tiny)
    flat = int(rel_err.argmax())
    layer, pos = divmod(flat, rel_err.shape[1])
    where = (f"L{layer}, " if layered else "") + f"position {pos} {str_tokens[pos]!r}"
    worst = float(rel_err.max())
    return IdentityError(name, equation, float(abs_err.max()), worst, where, worst <= atol)


def check_decomposition(
    model: Lab,
    prompt: Prompt,
    *,
    answer: str | int | None = None,
    atol: float = 1e-4,
    top_k: int = DEFAULT_TOP_K,
    bos: bool | None = None,
) -> DecompositionResult:
    """Measure how far each residual-stream identity is from exact on ``prompt``.

    Four identities, every layer and position:

    * ``embed``: ``resid_pre^0 = embed (+ pos_embed)``;
    * ``residual``: ``resid_post^l = embed (+ pos_embed) + Σ_{i≤l} (attn^i + MLP^i)``;
    * ``heads``: ``attn^l = Σ_h head^{l.h} (+ b_O^l)``, through Gemma's post-attention norm
      with its scale frozen;
    * ``logits``: the logit equals the sum of per-head terms ``λ⟨unembed, γ ⊙ P c⟩`` plus
      ``⟨unembed, β⟩ + b_U``, for each position's ``top_k`` tokens and for ``answer`` (one token)
      at the last position.

    **What** ``atol`` **bounds.** Logits are compared absolutely (in logits: they are already
    normalized). Residual-space errors are compared *relative to the RMS of the residual stream*
    at that layer and position: ``max_k |err_k| / RMS(resid)``, i.e. how much the error moves
    the input of the next LayerNorm/RMSNorm, which divides by that RMS anyway. An absolute bound
    could not be met in float32 however exact the decomposition is: the model itself adds its
    sublayer outputs in float32, and Gemma 3's residual stream reaches an RMS of ~1,400 (entries
    of ~10⁴), where one float32 rounding step is ~10⁻³. Measured on gemma-3-270m-q4_k_m, the
    residual identity's absolute error is ~4e-3 and its relative error ~3e-6; the logit
    identity's error is ~1e-5 (see ``tests/test_decomposition.py``).

    Args:
        model: the Lab.
        prompt: text (BOS policy of the Lab) or token ids.
        answer: a one-token answer whose logit is checked at the last position.
        atol: the bound on each compared error (see above).
        top_k: how many of each position's top tokens have their logits checked.
        bos: override the Lab's BOS policy for a text prompt.
    """
    answer_id = None if answer is None else model.single_token(answer)
    d = decompose(model, prompt, bos=bos)
    str_tokens = d.str_tokens
    n_pos = d.tokens.shape[0]
    resid = d.resid_post

    embed_sum = d.embed + (d.pos_embed if d.pos_embed is not None else 0)
    embed_id = _vector_identity(
        "embed", "resid_pre^0 = embed" + (" + pos_embed" if d.pos_embed is not None else ""),
        (embed_sum - d.resid_pre0)[None], d.resid_pre0[None], str_tokens, atol, layered=False,
    )
    running = embed_sum + torch.cumsum(d.attn + d.mlp, dim=0)  # [layer, pos, d_model]
    residual_id = _vector_identity(
        "residual", "resid_post^l = embed" + (" + pos_embed" if d.pos_embed is not None else "")
        + " + Σ_{i≤l} (attn^i + MLP^i)", running - resid, resid, str_tokens, atol, layered=True,
    )
    head_sum = d.heads.sum(2) + (d.attn_bias if d.attn_bias is not None else 0)
    frozen = " (post-attention norm frozen)" if d.post_attention_norm else ""
    heads_id = _vector_identity(
        "heads", "attn^l = Σ_h head^{l.h}" + (" + b_O^l" if d.attn_bias is not None else "") + frozen,
        head_sum - d.attn, resid, str_tokens, atol, layered=True,
    )

    worst, worst_at = 0.0, ""
    answer_logit = answer_sum = None
    for pos in range(n_pos):
        ids = d.logits[pos].topk(top_k).indices.tolist()
        if answer_id is not None and pos == n_pos - 1 and answer_id not in ids:
            ids.append(answer_id)
        attribution = d.logit_attribution(ids, level="heads", position=pos)
        err = (attribution.total() - attribution.measured).abs()
        k = int(err.argmax())
        if float(err[k]) >= worst:
            tok = model.to_str([ids[k]])[0]
            worst, worst_at = float(err[k]), f"position {pos} {str_tokens[pos]!r}, token {tok!r}"
        if answer_id is not None and pos == n_pos - 1:
            k = ids.index(answer_id)
            answer_logit, answer_sum = float(attribution.measured[k]), float(attribution.total()[k])
    gain = "" if d.final_norm.gain_is_one else "γ ⊙ "
    centre = "P " if d.final_norm.centres else ""
    biases = (" + ⟨unembed, β⟩" if d.final_norm.bias is not None else "") + (
        " + b_U" if _nonzero(unembed_bias(model)) else "")
    logits_id = IdentityError(
        "logits", f"logit = Σ_c λ⟨unembed, {gain}{centre}c⟩{biases}", worst, None, worst_at, worst <= atol
    )
    identities = (embed_id, residual_id, heads_id, logits_id)
    return DecompositionResult(
        model_id=model.model_id,
        processing=model.processing,
        dtype=str(model.dtype).removeprefix("torch."),
        prompt=prompt if isinstance(prompt, str) else repr(list(d.tokens.tolist())),
        str_tokens=tuple(str_tokens),
        answer=None if answer_id is None else model.to_str([answer_id])[0],
        answer_logit=answer_logit,
        answer_logit_sum=answer_sum,
        identities=identities,
        atol=atol,
        passed=all(i.passed for i in identities),
    )




assert_decomposition_sums = asserting(
    check_decomposition,
    "assert_decomposition_sums",
    """Assert that the residual stream and the logits are the sums of their terms (see
    :func:`check_decomposition` for the identities and what ``atol`` bounds). A self-check of the
    library and the model wrapper, true by construction on any weights: not a finding about a model.

    >>> assert_decomposition_sums(lab, "The capital of Ireland is", answer=" Dublin")   # doctest: +SKIP
    """,
)

