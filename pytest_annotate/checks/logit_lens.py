"""The logit lens: at which layer does the model's answer appear?

Each block's output (``blocks.i.hook_resid_post``) is read as if the model stopped there: through
the model's own final norm and unembedding (TransformerLens's ``logit_readout``: the real
``ln_final`` module with statistics recomputed for each vector, ``W_U``, ``b_U`` and the adapter's
output transform), in the Lab's processing mode. Read after the last block, the lens gives the
model's own logits (a test checks this to 1e-4 relative in ``compat`` and ``raw`` processing).
Read after block ``k``, it gives the logits of the model with blocks ``k+1..`` skipped
(``keep_only(lab, ["L0-Lk"])``), since then the last block's output *is* block ``k``'s; a test
checks this too, so a lens claim and a keep-only claim are two views of one number.

A multi-token answer is read by teacher forcing, as :mod:`pytest_annotate.scoring.answers` scores it: at
every layer, each answer token is read at its own position, ``prob`` is the joint probability and
``rank`` the worst of the tokens' ranks, so "top-1 at layer 12" means the whole answer would be
greedily decoded from layer 12's residual stream.

Ranks count ties against the answer (:mod:`pytest_annotate.scoring.ranks`): a layer where the answer
ties with another token for the top logit is not a top-1 layer, and a layer whose output is flat
(several tokens share the top logit) is marked so in the table, with no top-1 token.

>>> lens = check_logit_lens(model, "January February March April", " May")   # doctest: +SKIP
>>> lens.first_top1_layer                                                    # doctest: +SKIP
17
>>> assert_first_top1_layer(model, "January February March April", " May", 17)   # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from jaxtyping import Float
from torch import Tensor

from pytest_annotate.lab import Lab, Prompt
from pytest_annotate.results import (
    Measurement,
    Result,
    asserting,
    fmt_prob,
    fmt_prompt,
    fmt_token,
    hint_lines,
    verdict_headline,
)
from pytest_annotate.scoring.answers import (
    answer_positions,
    score_from_logits,
    teacher_forced_tokens,
)
from pytest_annotate.scoring.ranks import n_at_top, top_tie_size
from pytest_annotate.scoring.reading import Answer, describe_answer, describe_prompt


def resid_post_names(lab: Lab) -> list[str]:
    """The hook points the lens reads: every block's output."""
    return [f"blocks.{layer}.hook_resid_post" for layer in range(lab.n_layers)]


def lens_logits(
    lab: Lab, prompt: Prompt, positions: Sequence[int] = (-1,), *, bos: bool | None = None
) -> Float[Tensor, "layer pos vocab"]:
    """Logits read from every block's output at ``positions`` (the last block's are the model's).

    Caches only the ``hook_resid_post`` points (through :meth:`Lab.cache`, memoized per prompt) and
    reads them with TransformerLens's ``logit_readout``, which applies the model's real final
    norm per vector (the fix of TransformerLens #1076) rather than the cached final-norm scale.

    >>> lens_logits(lab, "January February March April").shape   # doctest: +SKIP
    torch.Size([18, 1, 262144])
    """
    from transformer_lens.tools.analysis.logit_lens import logit_readout

    cache = lab.cache(prompt, names=resid_post_names(lab), bos=bos)
    names = resid_post_names(lab)
    pos = torch.as_tensor(list(positions), dtype=torch.long, device=cache[names[0]].device)
    stack = torch.stack([cache[name][0, pos] for name in names])
    with torch.inference_mode():
        return logit_readout(lab.bridge, stack, return_type="logits").values


@dataclass(frozen=True)
class LensLayer:
    """The answer as read from one block's output."""

    layer: int
    rank: int
    """Greedy rank of the answer (the worst of its tokens' ranks) if the model stopped after this block."""
    ranks: tuple[int, ...]
    """Each answer token's rank at its own position."""
    logit: float
    """The first answer token's logit."""
    prob: float
    """The joint probability of the answer."""
    top_token: str
    """The lens's top-1 token right after the prompt (the first of them by id when several tie: see ``top_ties``)."""
    top_token_id: int
    top_prob: float
    top_ties: int = 1
    """How many tokens share the top logit right after the prompt (1: a unique top-1; more: a flat output)."""
    answer_top_tie: int = 0
    """How many tokens share the top logit with the answer at the first answer step where it ties for
    the top (0: it ties for the top at no step). Such a layer is a flat output for the answer."""

    @property
    def is_flat(self) -> bool:
        """Whether the answer ties with other tokens for the top logit here (no token is top-1)."""
        return self.answer_top_tie > 0


@dataclass(frozen=True, eq=False, kw_only=True)
class LogitLensResult(Result):
    """Per-layer readings of the answer, and the verdict on the layer where it first becomes top-1."""

    prompt: str
    prompt_tokens: tuple[str, ...]
    answer: str
    answer_tokens: tuple[str, ...]
    processing: str
    """The Lab's processing mode (``compat`` or ``raw``): the lens reads that model's final norm and unembedding."""
    layers: tuple[LensLayer, ...]
    first_top1_layer: int | None
    """The first block after which the answer is top-1 (``None``: at no layer)."""
    top1_from_layer: int | None
    """The block after which the answer is top-1 and stays top-1 to the last block (``None``: not top-1 at the end)."""
    claimed_layer: int | None = None
    tolerance: int = 0
    passed: bool

    @property
    def best(self) -> LensLayer:
        """The layer where the answer ranks best (the earliest, on ties)."""
        return min(self.layers, key=lambda r: (r.rank, r.layer))

    @property
    def claim(self) -> str:
        if self.claimed_layer is None:
            return f"{self.answer!r} becomes top-1 at some layer after {self.prompt!r}"
        within = f" (± {self.tolerance})" if self.tolerance else ""
        return f"{self.answer!r} first becomes top-1 at layer {self.claimed_layer}{within} after {self.prompt!r}"

    @property
    def flat_layers(self) -> tuple[int, ...]:
        """The layers whose output is flat for the answer (it ties with other tokens for the top logit)."""
        return tuple(r.layer for r in self.layers if r.is_flat)

    def measured(self) -> str:
        if self.first_top1_layer is None:
            flat = f" ({len(self.flat_layers)} flat layers)" if self.flat_layers else ""
            return f"never top-1; best rank {self.best.rank} at layer {self.best.layer}{flat}"
        return f"first top-1 at layer {self.first_top1_layer}"

    def measurements(self) -> tuple[Measurement, ...]:
        exact = self.claimed_layer is not None and not self.tolerance
        return (Measurement("first layer where the answer is top-1", self.first_top1_layer, "==" if exact else None,
                            float(self.claimed_layer) if exact else None, primary=True),)

    def report(self) -> str:
        lines = [verdict_headline(self.verdict, self.claim, self.measured())]
        if not self.passed:
            if self.first_top1_layer is not None and self.claimed_layer is not None:
                off = self.first_top1_layer - self.claimed_layer
                lines.append(
                    f"  measured  layer {self.first_top1_layer}: {abs(off)} layer{'s' * (abs(off) != 1)} "
                    f"{'later' if off > 0 else 'earlier'} than claimed (tolerance {self.tolerance})"
                )
            hints = []
            if self.claimed_layer is not None:
                at = self.layers[self.claimed_layer]
                if at.is_flat:
                    top = (f" (the output is flat there: {at.answer_top_tie:,} tokens, the answer among them, share "
                           "the top logit; no token is top-1)")
                elif at.rank and at.top_ties > 1:
                    top = f" (no token is top-1: {at.top_ties:,} tokens share the top logit)"
                elif at.rank:
                    top = f" ({fmt_token(at.top_token)} is top-1 at {fmt_prob(at.top_prob)})"
                else:
                    top = ""
                hints.append(
                    f"at layer {at.layer} the answer has rank {at.rank}" + top
                    + f"; the lens there is the model with blocks {at.layer + 1}.. skipped: check_top_token(model, "
                    f"prompt, answer, intervention=keep_only(model, ['L0-L{at.layer}'])) gives the same numbers"
                )
            if self.first_top1_layer is not None and self.top1_from_layer != self.first_top1_layer:
                stays = (f"stays top-1 only from layer {self.top1_from_layer}" if self.top1_from_layer is not None
                         else "is not top-1 after the last layer")
                hints.append(f"the answer is top-1 at layer {self.first_top1_layer} but drops again; it {stays}")
            if self.flat_layers:
                hints.append(
                    f"the output is flat for the answer at {_layer_list(self.flat_layers)}: it ties with other "
                    "tokens for the top logit, so no token is top-1 there, and such a layer counts as not top-1"
                )
            if self.layers[-1].rank > 0:
                hints.append(
                    f"the model itself does not predict it (rank {self.layers[-1].rank} after the last layer): "
                    "check_top_token shows what it predicts instead"
                )
            hints.append("the table below shows the answer's rank after every block")
            lines += hint_lines(hints)
        lines += [
            "",
            f"Logit lens ({self.processing} processing): each block's output at the "
            + ("answer positions (teacher-forced)" if len(self.answer_tokens) > 1 else "last position")
            + ", read through ln_final and the unembedding",
            f"Tokenized prompt: {fmt_prompt(self.prompt_tokens)}",
            f"Tokenized answer: {fmt_prompt(self.answer_tokens)}",
            self._table_header(),
            *(self._table_row(r) for r in self.layers),
        ]
        return "\n".join(lines)

    def _table_header(self) -> str:
        ranks = f"{'ranks':>12} " if len(self.answer_tokens) > 1 else ""
        prob = "joint prob" if len(self.answer_tokens) > 1 else "prob"
        return f"{'layer':>5} {'rank':>7} {ranks}{'logit':>8} {prob:>10}   top-1 after the prompt"

    def _table_row(self, r: LensLayer) -> str:
        ranks = f"{str(r.ranks):>12} " if len(self.answer_tokens) > 1 else ""
        mark = " <- first top-1" if r.layer == self.first_top1_layer else ""
        if r.top_ties > 1:
            top = f"none: {r.top_ties:,} tokens tie at {fmt_prob(r.top_prob)}"
        else:
            top = f"{fmt_token(r.top_token)} {fmt_prob(r.top_prob)}"
        if r.is_flat:
            top += (" (the answer among them)" if len(self.answer_tokens) == 1
                    else f" (flat at an answer token: {r.answer_top_tie:,} tie)")
        return f"{r.layer:>5} {r.rank:>7} {ranks}{r.logit:>8.2f} {fmt_prob(r.prob):>10}   {top}{mark}"


def _layer_list(layers: Sequence[int]) -> str:
    """``layer 3``, ``layers 0-17``, ``layers 0, 2, 5``."""
    if len(layers) == 1:
        return f"layer {layers[0]}"
    if list(layers) == list(range(layers[0], layers[-1] + 1)):
        return f"layers {layers[0]}-{layers[-1]}"
    return "layers " + ", ".join(map(str, layers))


def _check_layer(lab: Lab, layer: int | None, tolerance: int) -> None:
    if layer is not None and (isinstance(layer, bool) or not isinstance(layer, int) or not 0 <= layer < lab.n_layers):
        raise ValueError(
            f"layer={layer!r} is not a layer of {lab.model_id}: give a block index 0..{lab.n_layers - 1} "
            f"(layer i is read after block i)"
        )
    if isinstance(tolerance, bool) or not isinstance(tolerance, int) or tolerance < 0:
        raise ValueError(f"tolerance={tolerance!r}: give a whole number of layers >= 0")


def check_logit_lens(
    model: Lab,
    prompt: Prompt,
    answer: Answer,
    *,
    layer: int | None = None,
    tolerance: int = 0,
    bos: bool | None = None,
) -> LogitLensResult:
    """Read ``answer`` from every block's output after ``prompt``.

    With ``layer``, passes when the answer first becomes top-1 within ``tolerance`` layers of
    ``layer``; without it, when the answer is top-1 at some layer.

    >>> lens = check_logit_lens(model, "1 2 3 4", " 5")                     # doctest: +SKIP
    >>> [r.rank for r in lens.layers][-3:]                                  # doctest: +SKIP
    [0, 0, 0]
    """
    _check_layer(model, layer, tolerance)
    answer_ids = model.answer_tokens(answer)
    prompt_len = int(model.tokens(prompt, bos=bos).shape[0])
    tokens = teacher_forced_tokens(model, prompt, answer_ids, bos=bos)
    positions = answer_positions(prompt_len, len(answer_ids))
    logits = lens_logits(model, tokens, positions.tolist())  # [layer, answer step, vocab]
    ids = torch.tensor(answer_ids, device=logits.device)
    rows = []
    for i, layer_logits in enumerate(logits):
        s = score_from_logits(layer_logits, 1, answer_ids)  # row j of layer_logits predicts answer token j
        first = layer_logits[0].double()
        top_id = int(first.argmax())
        tie = next((int(n) for n in top_tie_size(layer_logits, ids) if n), 0)
        rows.append(LensLayer(
            layer=i, rank=s.rank, ranks=s.ranks, logit=s.logit, prob=s.joint_prob,
            top_token=model.to_str([top_id])[0], top_token_id=top_id,
            top_prob=float(first.softmax(-1)[top_id]), top_ties=int(n_at_top(first)), answer_top_tie=tie,
        ))
    first_top1 = next((r.layer for r in rows if r.rank == 0), None)
    from_layer = None
    for r in reversed(rows):
        if r.rank != 0:
            break
        from_layer = r.layer
    if layer is None:
        passed = first_top1 is not None
    else:
        passed = first_top1 is not None and abs(first_top1 - layer) <= tolerance
    return LogitLensResult(
        prompt=describe_prompt(model, prompt),
        prompt_tokens=tuple(model.str_tokens(prompt, bos=bos)),
        answer=describe_answer(model, answer, answer_ids),
        answer_tokens=tuple(model.to_str(answer_ids)),
        processing=model.processing,
        layers=tuple(rows),
        first_top1_layer=first_top1,
        top1_from_layer=from_layer,
        claimed_layer=layer,
        tolerance=tolerance,
        passed=passed,
    )


assert_first_top1_layer = asserting(
    check_logit_lens,
    "assert_first_top1_layer",
    """Assert the layer at which the logit lens first ranks ``answer`` top-1 (``layer=``, within
    ``tolerance`` layers); see :func:`check_logit_lens`.

    >>> assert_first_top1_layer(lab, "January February March April", " May", layer=7)   # doctest: +SKIP
    """,
)
