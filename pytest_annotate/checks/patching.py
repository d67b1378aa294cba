"""Patching a repeated sequence's second half with its first: does a component carry position-specific
information on repeated tokens?

On ``BOS + n tokens ×2``, token ``n + 1 + i`` repeats token ``1 + i``. Overwrite one component's output
at a second-half position with its output at the matching first-half position, one (layer,
position) at a time, and measure how the second half's mean loss moves. ARENA's induction
exercise does this for every MLP of GPT-2 small: the loss is "almost unchanged", except at the
first repeated position, which is given BOS's output.

>>> result = check_half_patching(lab, tokens, "mlp", max_delta=0.1)   # doctest: +SKIP
>>> result.max_delta_at                                                # doctest: +SKIP
'MLP3, position 60'
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

import torch

from pytest_annotate.checks.copying import CIRCUIT_HINT, half_columns, rows_per_pass
from pytest_annotate.interventions.components import all_components
from pytest_annotate.results import Measurement, Result, asserting, hint_lines, kind

if TYPE_CHECKING:
    from jaxtyping import Int
    from torch import Tensor

    from pytest_annotate.lab import Lab


@dataclass(frozen=True, eq=False)
class HalfPatchingResult(Result):
    """Second-half loss change when one component output at one second-half position is replaced by
    the first half's.

    ``deltas[layer][i]`` is the change in mean loss over the second half when the ``sublayer`` output of
    ``layer`` at position ``n + i`` is overwritten with its value at position ``i``; ``i = 0``
    (position n, given BOS's output) is left out of the claim.
    """

    model_id: str
    sublayer: str
    clean_loss: float
    deltas: tuple[tuple[float, ...], ...] = field(metadata=kind("logit"))
    max_abs_delta: float
    """The largest |Δloss| over every layer and every position but the first."""
    max_delta_at: str
    first_position_max_delta: float
    max_delta: float = field(metadata=kind("exact"))
    passed: bool

    @property
    def claim(self) -> str:
        return (f"patching one {self.sublayer.upper()} output of the repeated half with the first half's moves its loss by "
                f"≤ {self.max_delta:g} nats on {self.model_id}, except at the first repeated position")

    def measurements(self) -> tuple[Measurement, ...]:
        return (Measurement("largest |Δloss|", self.max_abs_delta, "<=", self.max_delta, primary=True, unit="nats"),
                Measurement("largest Δloss at the first repeated position", self.first_position_max_delta,
                            unit="nats"))

    def report(self) -> str:
        lines = [
            self.headline(),
            f"  clean loss {self.clean_loss:.4f} nats (mean over the second half)",
            f"  largest |Δloss| away from the first position: {self.max_abs_delta:.4f} at {self.max_delta_at}",
            f"  largest Δloss at the first position (BOS's output pasted in): {self.first_position_max_delta:.4f}",
            "  |Δloss| by layer (max over positions but the first): "
            + ", ".join(f"{self.sublayer.upper()}{i} {max(abs(d) for d in row[1:]):.3f}" for i, row in enumerate(self.deltas)),
        ]
        if not self.passed:
            lines += hint_lines([f"that layer carries position-specific information on repeated tokens: look at its "
                                 f"output at {self.max_delta_at}", CIRCUIT_HINT])
        return "\n".join(lines)


def check_half_patching(
    lab: Lab, tokens: Int[Tensor, " pos"], sublayer: Literal["mlp", "attn"] = "mlp", *, max_delta: float = 0.1
) -> HalfPatchingResult:
    """Patch each (layer, second-half position) ``sublayer`` output of one repeated sequence (BOS + n
    tokens ×2, e.g. a row of :class:`~pytest_annotate.scoring.head_scores.RepeatedRandomTokens`)
    with the first half's, one at a time: one batched pass per layer, a row per position."""
    if sublayer not in ("mlp", "attn"):
        raise ValueError(f"sublayer must be 'mlp' or 'attn', got {sublayer!r}")
    if tokens.ndim != 1 or tokens.shape[0] % 2 != 1:
        raise ValueError(f"check_half_patching takes one row of BOS + n tokens ×2 (odd length, 1-d); "
                         f"got shape {tuple(tokens.shape)}")
    n = (tokens.shape[0] - 1) // 2
    _, second = half_columns(tokens.shape[0], n)
    positions = torch.arange(n, 2 * n + 1)  # the second half's first position is n (BOS's counterpart is 0)

    def second_half_loss(rows: Tensor, fwd_hooks: list) -> Tensor:  # type: ignore[type-arg]
        logits = lab.run_batch(rows, fwd_hooks=fwd_hooks)[:, :-1][:, second].double()
        lp = logits.log_softmax(-1).gather(-1, rows[:, 1:][:, second, None])[..., 0]
        return -lp.mean(-1).cpu()

    with torch.inference_mode():
        clean = float(second_half_loss(tokens[None], []))
        deltas = []
        for component in all_components(lab, sublayer):
            row_losses = []
            for chunk in positions.split(rows_per_pass(lab, tokens.shape[0])):
                pos = chunk.to(tokens.device)

                def paste_first_half(act: Tensor, hook: object, pos: Tensor = pos) -> Tensor:
                    act = act.clone()
                    index = torch.arange(len(pos), device=act.device)
                    act[index, pos] = act[index, pos - n]
                    return act

                rows = tokens[None].expand(len(chunk), -1)
                row_losses.append(second_half_loss(rows, [(component.hook_name, paste_first_half)]))
            deltas.append(tuple(float(x) - clean for x in torch.cat(row_losses)))
    table = torch.tensor(deltas)
    rest = table[:, 1:].abs()
    layer, i = divmod(int(rest.argmax()), rest.shape[1])
    max_abs = float(rest.max())
    return HalfPatchingResult(
        model_id=lab.model_id,
        sublayer=sublayer,
        clean_loss=clean,
        deltas=tuple(deltas),
        max_abs_delta=max_abs,
        max_delta_at=f"{sublayer.upper()}{layer}, position {n + 1 + i}",
        first_position_max_delta=float(table[:, 0].max()),
        max_delta=max_delta,
        passed=max_abs <= max_delta,
    )


assert_half_patching = asserting(
    check_half_patching, "assert_half_patching",
    """Assert that patching the repeated half with the first half's barely moves its loss
    (see :func:`check_half_patching`).

    >>> assert_half_patching(lab, RepeatedRandomTokens(n=50).tokens(lab)[0], "mlp", max_delta=0.1)  # doctest: +SKIP
    """,
)
