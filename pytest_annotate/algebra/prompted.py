"""``PromptedTransformer`` and the three verbs of the algebra: ``expand``, ``logits``, ``predict``.

``T = PromptedTransformer(lab, "The capital of Ireland")`` is the model with its context fixed;
``T(" is")`` is the residual stream after the last block at the token ``' is'`` appended to that
context, written ``T(embed(' is'))``. From there::

    >>> T = PromptedTransformer(lab, "The capital of Ireland")      # doctest: +SKIP
    >>> T                                                          # doctest: +SKIP
    T(<5 tokens>)
    >>> v = T(" is"); v                                            # doctest: +SKIP
    T(embed(' is'))
    >>> expand(v)                                                  # doctest: +SKIP
    embed(' is') + ΔB^0 + ΔB^1 + … + ΔB^17
    >>> L = logits(v); L[" Dublin"]                                # doctest: +SKIP
    <unembed(' Dublin'), T(embed(' is'))> = 22.81
    >>> predict(v)[" Dublin"]                                      # doctest: +SKIP
    P(' Dublin' | T(embed(' is'))) = 18.43%
"""

from __future__ import annotations

from typing import TYPE_CHECKING, overload

import torch

from pytest_annotate.algebra.expressions import (
    Logit,
    Logits,
    LogitSum,
    Predictions,
    Prob,
    ProbSum,
    Reading,
    ResidualVector,
    VectorSum,
)
from pytest_annotate.errors import PromptError
from pytest_annotate.scoring.decomposition import Level, decompose

if TYPE_CHECKING:
    from pytest_annotate.lab import Lab, Prompt


class PromptedTransformer:
    """The model conditioned on a prompt: ``T(x)`` is the residual stream at token ``x`` after it.

    It displays as ``T(<n tokens>)``, ``n`` counting every token of the context the model
    conditions on, the BOS token included when the Lab's policy prepends one (Gemma:
    ``<bos>`` + 4 words = ``T(<5 tokens>)``; the notebook's Pythia run had no BOS: 4 tokens).

    ``T(continuation)`` takes exactly one token. It is appended to the context's *tokens* (not
    re-tokenized with it), so ``T(" is")`` reads position ``n`` of ``context + [' is']``.

    Args:
        model: the Lab.
        prompt: the context, as text (the Lab's BOS policy applies) or token ids.
        bos: override the Lab's BOS policy for a text prompt.
    """

    def __init__(self, model: Lab, prompt: Prompt, *, bos: bool | None = None) -> None:
        self.lab = model
        self.prompt = prompt
        self.tokens = model.tokens(prompt, bos=bos)
        self._readings: dict[int, Reading] = {}

    @property
    def str_tokens(self) -> list[str]:
        return self.lab.to_str(self.tokens.tolist())

    def __len__(self) -> int:
        return int(self.tokens.shape[0])

    def __repr__(self) -> str:
        return f"T(<{len(self)} tokens>)"

    def _repr_latex_(self) -> str:
        return rf"$T(\langle {len(self)}\ \text{{tokens}} \rangle)$"

    def __call__(self, continuation: str | int) -> ResidualVector:
        """The residual stream after the last block at ``continuation`` (one token)."""
        token_id = self._one_token(continuation)
        reading = self._readings.get(token_id)
        if reading is None:
            tokens = torch.cat([self.tokens, self.tokens.new_tensor([token_id])])
            reading = Reading(self, decompose(self.lab, tokens), self.lab.to_str([token_id])[0], token_id)
            self._readings[token_id] = reading
        return ResidualVector(reading)

    def _one_token(self, continuation: str | int) -> int:
        lab = self.lab
        if isinstance(continuation, int) and not isinstance(continuation, bool):
            return lab.answer_tokens(continuation)[0]
        if not isinstance(continuation, str):
            raise PromptError(f"T({continuation!r}): give the continuation as text (e.g. ' is') or a token id")
        ids = lab.answer_tokens(continuation)
        if len(ids) != 1:
            pieces = lab.to_str(ids)
            context = self.prompt if isinstance(self.prompt, str) else "<your prompt>"
            raise PromptError(
                f"T({continuation!r}): the continuation is {len(ids)} tokens for {lab.model_id}: {pieces}. T(x) reads "
                f"the residual stream at one token; move the first ones into the context, e.g. "
                f"PromptedTransformer(lab, {context + ''.join(pieces[:-1])!r})({pieces[-1]!r})"
            )
        return ids[0]


@overload
def expand(x: ResidualVector | VectorSum, level: Level | None = None) -> VectorSum: ...
@overload
def expand(x: Logit | LogitSum, level: Level | None = None) -> LogitSum: ...
@overload
def expand(x: Prob | ProbSum, level: Level | None = None) -> ProbSum: ...


def expand(
    x: ResidualVector | VectorSum | Logit | LogitSum | Prob | ProbSum, level: Level | None = None
) -> VectorSum | LogitSum | ProbSum:
    """Write ``x`` as a sum of terms, one level finer each time it is applied.

    * ``expand(T(x))`` → ``embed(x) (+ pos(n)) + ΔB^0 + … + ΔB^{L-1}`` (level ``blocks``);
      ``expand`` of that → each ``ΔB^i`` as ``Δattn^i + ΔMLP^i`` (``sublayers``); again → each
      ``Δattn^i`` as its heads ``Δhead^i.0 + …`` (+ ``b_O^i``) (``heads``, the finest).
    * ``expand(L[t])`` → ``λ(<unembed(t), γ ⊙ embed(x)> + <unembed(t), γ ⊙ ΔB^0> + …)
      (+ <unembed(t), β> + b_U(t))``: the final norm linearized (scale frozen, gain explicit),
      so the terms sum to the logit; expanding again splits the blocks as above.
    * ``expand(p[t])`` → ``exp(<the logit's expansion> − log Z)``.

    ``level`` jumps straight to ``"blocks"``, ``"sublayers"`` or ``"heads"``.
    """
    if isinstance(x, (ResidualVector, VectorSum, Logit, LogitSum, Prob, ProbSum)):
        return x.expand(level)
    raise TypeError(
        f"expand() takes T(x), a logit L[t], a probability p[t], or an expansion of one; got {type(x).__name__} "
        f"{x!r}. To split a term further, expand the whole sum one level: expand(expansion) or "
        "expand(expansion, 'heads')"
    )


def logits(x: ResidualVector | VectorSum) -> Logits:
    """``logits(T(embed(' is')))``: the token → logit mapping at that position.

    >>> logits(T(" is"))[" Dublin"]                                  # doctest: +SKIP
    <unembed(' Dublin'), T(embed(' is'))> = 22.81
    """
    return Logits(_reading(x, "logits"))


def predict(x: ResidualVector | VectorSum) -> Predictions:
    """``P(token | T(embed(' is')))``: the next-token distribution at that position.

    >>> predict(T(" is"))[" Dublin"]                                 # doctest: +SKIP
    P(' Dublin' | T(embed(' is'))) = 18.43%
    """
    return Predictions(_reading(x, "predict"))


def _reading(x: object, verb: str) -> Reading:
    if isinstance(x, ResidualVector):
        return x.reading
    if isinstance(x, VectorSum):
        return x.of.reading
    raise TypeError(f"{verb}() takes a residual vector T(x) (or its expansion); got {type(x).__name__} {x!r}")


__all__ = ["PromptedTransformer", "expand", "logits", "predict"]
