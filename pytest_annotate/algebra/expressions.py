"""The expressions of the annotation algebra: values first, printable as text and LaTeX.

Every expression has a ``value`` (a float for logits and probabilities, a float64 vector for
residual-stream vectors), prints as the notation of the notebook it comes from, renders as
LaTeX in Jupyter (``_repr_latex_``), and has a plain snapshot form (``to_snapshot()``).
Expansions also have ``terms``, each an expression with its own ``value``:

* a vector expansion's terms sum to its value (the measured residual stream) to float32
  rounding of the model's own additions: compare relative to the vector's RMS;
* a logit expansion's terms sum to the measured logit (to ~1e-5 in float32);
* a probability expansion's terms are its *logit*'s terms: a probability is not a sum, but
  ``exp(sum(t.value for t in x.terms) - x.log_z) == x.value``.

Numbers are the model's own: ``value`` is read from the forward pass, never recomputed from the
terms, so ``x.value - x.total()`` is the decomposition's error (see :attr:`LogitSum.error`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING, Literal

import torch
from jaxtyping import Float
from torch import Tensor

import pytest_annotate.algebra.notation as nt
from pytest_annotate.algebra.snapshots import (
    LogitSnapshot,
    NamedLogit,
    NamedNorm,
    ProbSnapshot,
    TopSnapshot,
    VectorSnapshot,
)
from pytest_annotate.errors import PromptError
from pytest_annotate.results import TokenScore, fmt_prob
from pytest_annotate.scoring.decomposition import (
    LEVELS,
    Level,
    ResidualDecomposition,
    Term,
)

if TYPE_CHECKING:
    from pytest_annotate.algebra.prompted import PromptedTransformer
    from pytest_annotate.lab import Lab

SortKey = Literal["value", "abs"]


def _next_level(level: Level) -> Level:
    return LEVELS[min(LEVELS.index(level) + 1, len(LEVELS) - 1)]


def _check_level(level: str) -> Level:
    if level not in LEVELS:
        raise ValueError(
            f"level {level!r} is not valid; use 'blocks' (ΔB^i), 'sublayers' (Δattn^i + ΔMLP^i) or 'heads' "
            "(Δhead^i.h + ΔMLP^i)"
        )
    return level  # type: ignore[return-value]


@dataclass(frozen=True, eq=False)
class Reading:
    """Where a residual vector is read: the decomposition of ``prompt + token`` at its last position."""

    transformer: PromptedTransformer
    decomposition: ResidualDecomposition
    token: str
    token_id: int

    @property
    def lab(self) -> Lab:
        return self.decomposition.lab

    @property
    def position(self) -> int:
        return int(self.decomposition.tokens.shape[0]) - 1

    @cached_property
    def logits(self) -> Float[Tensor, " vocab"]:
        """The model's logits at the last position (the dtype it ran in)."""
        return self.decomposition.logits[-1]

    @cached_property
    def log_z(self) -> float:
        """``log Σ_v exp(logit_v)``, in float64."""
        return float(torch.logsumexp(self.logits.double(), -1))

    def token_id_of(self, token: str | int, where: str) -> int:
        """The id of one output token, or a :class:`PromptError` that says what to do instead."""
        lab = self.lab
        if isinstance(token, int) and not isinstance(token, bool):
            if not 0 <= token < lab.d_vocab:
                raise PromptError(
                    f"{where}[{token}]: token id {token} is out of range: valid ids are 0..{lab.d_vocab - 1}"
                )
            return token
        if not isinstance(token, str):
            raise PromptError(f"{where}[{token!r}]: index with a token string such as ' Dublin', or a token id")
        ids = lab.answer_tokens(token)
        if len(ids) != 1:
            pieces = lab.to_str(ids)
            raise PromptError(
                f"{where}[{token!r}]: {token!r} is not one token of {lab.model_id}'s vocabulary; it tokenizes to "
                f"{len(ids)} tokens {pieces} (ids {list(ids)}). A logit belongs to one token: index with one of "
                f"them, e.g. {where}[{pieces[0]!r}], or score the whole string as an answer with "
                f"pytest_annotate.score_answer(lab, prompt, {token!r}) (teacher-forced joint probability)."
            )
        return ids[0]


class Expression:
    """Base class: ``expression`` (the notation), ``text()`` (with the value), ``latex()``, snapshots."""

    @property
    def expression(self) -> str:  # pragma: no cover - every subclass overrides it
        raise NotImplementedError

    def text(self) -> str:
        return self.expression

    def latex(self) -> str:  # pragma: no cover - every subclass overrides it
        raise NotImplementedError

    def __repr__(self) -> str:
        return self.text()

    __str__ = __repr__

    def _repr_latex_(self) -> str:
        return "$" + self.latex() + "$"


# --------------------------------------------------------------------------- vectors


@dataclass(frozen=True, eq=False, repr=False)
class ResidualVector(Expression):
    """``T(embed(' is'))``: the residual stream after the last block, at the continuation token.

    ``value`` is the measured vector (float64), the input of the final LayerNorm/RMSNorm.
    """

    reading: Reading

    @property
    def value(self) -> Float[Tensor, " d_model"]:
        return self.reading.decomposition.resid_post[-1, self.reading.position]

    @property
    def expression(self) -> str:
        return nt.residual_text(self.reading.token)

    def latex(self) -> str:
        return nt.residual_latex(self.reading.token)

    def expand(self, level: Level | None = None) -> VectorSum:
        """``embed(' is') + ΔB^0 + … + ΔB^{L-1}`` (``level`` splits further: see :func:`expand`)."""
        return VectorSum.of_level(self, _check_level(level or "blocks"))

    def to_snapshot(self) -> VectorSnapshot:
        return VectorSnapshot(self.expression, float(self.value.norm()))


@dataclass(frozen=True, eq=False, repr=False)
class VectorTerm(Expression):
    """One term of a residual vector's expansion: ``embed(' is')``, ``ΔB^3``, ``Δhead^3.1``…

    ``component`` is its name as the rest of pytest-annotate writes it (``L3``, ``attn3``,
    ``MLP3``, ``L3H1``, ``embed``, ``pos_embed``; ``attn3.b_O`` for an output bias).
    """

    reading: Reading
    term: Term

    @property
    def value(self) -> Float[Tensor, " d_model"]:
        return self.term.vector[self.reading.position]

    @property
    def name(self) -> str:
        return nt.term_text(self.term, self.reading.token, self.reading.position)

    @property
    def component(self) -> str:
        return self.term.name

    @property
    def layer(self) -> int | None:
        return self.term.layer

    @property
    def norm(self) -> float:
        return float(self.value.norm())

    @property
    def expression(self) -> str:
        return self.name

    def latex(self) -> str:
        return nt.term_latex(self.term, self.reading.token, self.reading.position)

    def to_snapshot(self) -> VectorSnapshot:
        return VectorSnapshot(self.expression, self.norm)


@dataclass(frozen=True, eq=False, repr=False)
class VectorSum(Expression):
    """An expanded residual vector: ``embed(' is') + ΔB^0 + … + ΔB^17``.

    ``value`` is the measured vector (the one expanded); ``total()`` the sum of the terms.
    """

    of: ResidualVector
    level: Level
    terms: tuple[VectorTerm, ...]

    @classmethod
    def of_level(cls, vector: ResidualVector, level: Level) -> VectorSum:
        reading = vector.reading
        return cls(vector, level, tuple(VectorTerm(reading, t) for t in reading.decomposition.terms(level)))

    @property
    def value(self) -> Float[Tensor, " d_model"]:
        return self.of.value

    def total(self) -> Float[Tensor, " d_model"]:
        return torch.stack([t.value for t in self.terms]).sum(0)

    @property
    def relative_error(self) -> float:
        """``max |value − total()| / RMS(value)``: the decomposition's error as the final norm sees it."""
        return float((self.value - self.total()).abs().max() / self.value.pow(2).mean().sqrt())

    @property
    def expression(self) -> str:
        return nt.join_terms([t.name for t in self.terms])

    def latex(self) -> str:
        return nt.join_terms([t.latex() for t in self.terms], ellipsis=r"\dots")

    def expand(self, level: Level | None = None) -> VectorSum:
        """One level finer (blocks → sublayers → heads); ``heads`` is fully expanded."""
        return VectorSum.of_level(self.of, _check_level(level or _next_level(self.level)))

    def sorted_terms(self) -> tuple[VectorTerm, ...]:
        """Terms by L2 norm, largest first."""
        return tuple(sorted(self.terms, key=lambda t: -t.norm))

    def top(self, k: int = 5) -> tuple[VectorTerm, ...]:
        return self.sorted_terms()[:k]

    def to_snapshot(self) -> VectorSnapshot:
        return VectorSnapshot(self.of.expression, float(self.value.norm()),
                              tuple(NamedNorm(t.name, t.norm) for t in self.terms))


# --------------------------------------------------------------------------- logits


@dataclass(frozen=True, eq=False, repr=False)
class Logit(Expression):
    """``<unembed(' Dublin'), T(embed(' is'))> = 784.47``: one token's logit, as the model computed it."""

    reading: Reading
    token_id: int

    @property
    def token(self) -> str:
        return self.reading.lab.to_str([self.token_id])[0]

    @property
    def value(self) -> float:
        return float(self.reading.logits[self.token_id])

    @property
    def expression(self) -> str:
        return f"<unembed({nt.token_text(self.token)}), {nt.residual_text(self.reading.token)}>"

    def text(self) -> str:
        return f"{self.expression} = {nt.fmt_number(self.value)}"

    def latex(self) -> str:
        return (rf"\langle {nt.output_latex(self.token)}, {nt.residual_latex(self.reading.token)} \rangle = "
                f"{nt.fmt_number(self.value)}")

    def expand(self, level: Level | None = None) -> LogitSum:
        """``λ(<unembed(t), γ ⊙ embed(x)> + <unembed(t), γ ⊙ ΔB^0> + …)`` plus biases (see :func:`expand`)."""
        return LogitSum.of_level(self, _check_level(level or "blocks"))

    def to_snapshot(self) -> LogitSnapshot:
        return LogitSnapshot(self.expression, self.value)


LogitTermKind = Literal["direct", "norm_bias", "unembed_bias"]


@dataclass(frozen=True, eq=False, repr=False)
class LogitTerm(Expression):
    """One term of an expanded logit, λ included: ``λ·<unembed(' Dublin'), γ ⊙ ΔB^3> = 1.23``.

    ``kind`` is ``direct`` (a residual term read through the frozen final norm), ``norm_bias``
    (``<unembed(t), β>``) or ``unembed_bias`` (``b_U(t)``).
    """

    of: Logit
    kind: LogitTermKind
    value: float
    vector_term: VectorTerm | None = None

    @property
    def name(self) -> str:
        """What the unembedding reads: ``embed(' is')``, ``ΔB^3``, ``β`` or ``b_U``."""
        if self.vector_term is not None:
            return self.vector_term.name
        return "β" if self.kind == "norm_bias" else "b_U"

    @property
    def component(self) -> str:
        if self.vector_term is not None:
            return self.vector_term.component
        return "ln_final.b" if self.kind == "norm_bias" else "unembed.b_U"

    @property
    def layer(self) -> int | None:
        return None if self.vector_term is None else self.vector_term.layer

    def _gain(self) -> str:
        return "" if self.of.reading.decomposition.final_norm.gain_is_one else "γ ⊙ "

    @property
    def inner(self) -> str:
        """The term without λ: ``<unembed(' Dublin'), γ ⊙ ΔB^3>``."""
        tok = nt.token_text(self.of.token)
        if self.kind == "direct":
            return f"<unembed({tok}), {self._gain()}{self.name}>"
        return f"<unembed({tok}), β>" if self.kind == "norm_bias" else f"b_U({tok})"

    @property
    def expression(self) -> str:
        return f"λ·{self.inner}" if self.kind == "direct" else self.inner

    def text(self) -> str:
        return f"{self.expression} = {self.value:+.3f}"

    def inner_latex(self) -> str:
        out = nt.output_latex(self.of.token)
        if self.kind == "direct":
            assert self.vector_term is not None
            gain = "" if not self._gain() else r"\gamma \odot "
            return rf"\langle {out}, {gain}{self.vector_term.latex()} \rangle"
        return rf"\langle {out}, \beta \rangle" if self.kind == "norm_bias" else f"b_U({out})"

    def latex(self) -> str:
        body = (r"\lambda " if self.kind == "direct" else "") + self.inner_latex()
        return f"{body} = {self.value:+.3f}"

    def to_snapshot(self) -> LogitSnapshot:
        return LogitSnapshot(self.expression, self.value)


@dataclass(frozen=True, eq=False, repr=False)
class LogitSum(Expression):
    """An expanded logit: ``λ(<unembed(t), γ ⊙ embed(x)> + <unembed(t), γ ⊙ ΔB^0> + …) (+ biases)``.

    The final LayerNorm/RMSNorm is linearized with its scale σ frozen at the measured value
    (``λ = 1/σ``) and its gain ``γ`` explicit; each term's ``value`` includes λ, so the terms
    sum to the logit. ``value`` is the model's own logit; :attr:`error` is ``value − total()``.
    """

    of: Logit
    level: Level
    terms: tuple[LogitTerm, ...]

    @classmethod
    def of_level(cls, logit: Logit, level: Level) -> LogitSum:
        reading = logit.reading
        att = reading.decomposition.logit_attribution([logit.token_id], level=level, position=reading.position)
        terms = [LogitTerm(logit, "direct", float(att.direct[i, 0]), VectorTerm(reading, t))
                 for i, t in enumerate(att.terms)]
        if att.norm_bias is not None:
            terms.append(LogitTerm(logit, "norm_bias", float(att.norm_bias[0])))
        if att.unembed_bias is not None:
            terms.append(LogitTerm(logit, "unembed_bias", float(att.unembed_bias[0])))
        return cls(logit, level, tuple(terms))

    @property
    def value(self) -> float:
        return self.of.value

    @property
    def token(self) -> str:
        return self.of.token

    @property
    def scale(self) -> float:
        """σ, the final norm's measured scale at this position (λ = 1/σ)."""
        return float(self.of.reading.decomposition.final_norm.scale[self.of.reading.position])

    def total(self) -> float:
        """The sum of the terms (float64)."""
        return math.fsum(t.value for t in self.terms)

    @property
    def error(self) -> float:
        """``value − total()``: how far the terms are from the model's logit."""
        return self.value - self.total()

    @property
    def expression(self) -> str:
        direct = [t.inner for t in self.terms if t.kind == "direct"]
        rest = [t.inner for t in self.terms if t.kind != "direct"]
        return " + ".join([f"λ·({nt.join_terms(direct)})", *rest])

    def where(self) -> str:
        """What λ and γ are, in words, for this model and processing."""
        d = self.of.reading.decomposition
        norm = d.final_norm
        formula = "√(var(x) + ε)" if norm.centres else "√(mean(x²) + ε)"
        parts = [f"λ = 1/σ = 1/{self.scale:.6g}: σ = {formula} is the final {norm.kind}'s scale at "
                 f"{nt.token_text(self.of.reading.token)}, frozen at its measured value"]
        if norm.gain_is_one and d.lab.processing == "compat":
            folded = "γ and bias β are" if norm.centres else "γ is"
            parts.append(f"the final {norm.kind}'s gain {folded} folded into unembed by compat processing;\n"
                         "        compat also centres unembed over the vocabulary: each term is relative to its "
                         "vocabulary mean")
        elif norm.gain_is_one:
            parts.append(f"the final {norm.kind}'s gain γ ≡ 1")
        else:
            parts.append(f"γ = {norm.gain_formula}, the final {norm.kind}'s gain")
        if norm.centres:
            parts.append("each term is centred (x − mean(x)) as the LayerNorm centres its input")
        if self.level == "heads" and d.post_attention_norm:
            parts.append("each Δhead passes through its block's post-attention RMSNorm, scale frozen likewise")
        return "  where " + ";\n        ".join(parts)

    def text(self) -> str:
        return f"{self.expression} = {nt.fmt_number(self.value)}\n{self.where()}"

    def body_latex(self) -> str:
        """The sum in LaTeX, without its value."""
        direct = [t.inner_latex() for t in self.terms if t.kind == "direct"]
        rest = [t.inner_latex() for t in self.terms if t.kind != "direct"]
        return " + ".join([r"\lambda\left(" + nt.join_terms(direct, ellipsis=r"\dots") + r"\right)", *rest])

    def latex(self) -> str:
        return rf"{self.body_latex()} = {nt.fmt_number(self.value)}, \quad \lambda = 1/{self.scale:.6g}"

    def expand(self, level: Level | None = None) -> LogitSum:
        """One level finer (blocks → sublayers → heads); ``heads`` is fully expanded."""
        return LogitSum.of_level(self.of, _check_level(level or _next_level(self.level)))

    def sorted_terms(self, by: SortKey = "value") -> tuple[LogitTerm, ...]:
        """Terms by contribution, largest first: ``by="value"`` (signed: what pushes the logit up
        most comes first) or ``by="abs"`` (largest magnitude first)."""
        if by not in ("value", "abs"):
            raise ValueError(f"by={by!r}: sort by 'value' (signed) or 'abs' (magnitude)")
        return tuple(sorted(self.terms, key=(lambda t: -t.value) if by == "value" else (lambda t: -abs(t.value))))

    def top(self, k: int = 5, by: SortKey = "value") -> tuple[LogitTerm, ...]:
        """The ``k`` largest contributions (see :meth:`sorted_terms`)."""
        return self.sorted_terms(by)[:k]

    def summary(self, k: int = 5, by: SortKey = "value") -> str:
        """The ``k`` largest terms, one a line, and what the rest add up to."""
        top = self.top(k, by)
        lines = [f"{self.of.text()} = sum of {len(self.terms)} terms (λ = 1/{self.scale:.6g}); "
                 f"largest {'by magnitude' if by == 'abs' else 'contributions'}:"]
        lines += [f"  {i}. {t.text()}" for i, t in enumerate(top, 1)]
        rest = [t for t in self.terms if t not in top]
        if rest:
            lines.append(f"  ({len(rest)} more terms: {math.fsum(t.value for t in rest):+.3f} in all)")
        return "\n".join(lines)

    def to_snapshot(self) -> LogitSnapshot:
        return LogitSnapshot(self.of.expression, self.value, tuple(NamedLogit(t.name, t.value) for t in self.terms))


# --------------------------------------------------------------------------- probabilities


@dataclass(frozen=True, eq=False, repr=False)
class Prob(Expression):
    """``P(' Dublin' | T(embed(' is'))) = 2.67%``: a token's probability at the last position."""

    reading: Reading
    token_id: int

    @property
    def logit(self) -> Logit:
        return Logit(self.reading, self.token_id)

    @property
    def token(self) -> str:
        return self.logit.token

    @property
    def value(self) -> float:
        return math.exp(self.logit.value - self.reading.log_z)

    @property
    def expression(self) -> str:
        return f"P({nt.token_text(self.token)} | {nt.residual_text(self.reading.token)})"

    def text(self) -> str:
        return f"{self.expression} = {fmt_prob(self.value)}"

    def latex(self) -> str:
        return (rf"P({nt.output_latex(self.token)} \mid {nt.residual_latex(self.reading.token)}) = "
                + fmt_prob(self.value).replace("%", r"\%"))

    def expand(self, level: Level | None = None) -> ProbSum:
        """The probability with its logit expanded: ``exp(λ(…) − log Z)`` (see :func:`expand`)."""
        return ProbSum(self, self.logit.expand(level))

    def to_snapshot(self) -> ProbSnapshot:
        return ProbSnapshot(self.expression, self.value, self.logit.value)


@dataclass(frozen=True, eq=False, repr=False)
class ProbSum(Expression):
    """A probability with its logit expanded: ``P(t | …) = exp(λ(…) + biases − log Z)``.

    ``value`` is the probability; ``terms`` are the *logit's* terms (a probability is not a
    sum): ``exp(sum(t.value for t in terms) − log_z) == value``.
    """

    of: Prob
    logit: LogitSum

    @property
    def value(self) -> float:
        return self.of.value

    @property
    def terms(self) -> tuple[LogitTerm, ...]:
        return self.logit.terms

    @property
    def level(self) -> Level:
        return self.logit.level

    @property
    def log_z(self) -> float:
        """``log Σ_v exp(logit_v)`` over the whole vocabulary (float64)."""
        return self.of.reading.log_z

    @property
    def expression(self) -> str:
        return f"exp({self.logit.expression} − log Z)"

    def text(self) -> str:
        n_vocab = self.of.reading.lab.d_vocab
        return (f"{self.of.expression} = {self.expression} = {fmt_prob(self.value)}\n{self.logit.where()};\n"
                f"        log Z = log Σ_v exp(logit_v) = {self.log_z:.2f} over all {n_vocab} tokens")

    def latex(self) -> str:
        inner = self.logit.body_latex()
        return (rf"P({nt.output_latex(self.of.token)} \mid {nt.residual_latex(self.of.reading.token)}) = "
                rf"\exp\left({inner} - \log Z\right) = " + fmt_prob(self.value).replace("%", r"\%")
                + rf", \quad \lambda = 1/{self.logit.scale:.6g},\ \log Z = {self.log_z:.2f}")

    def expand(self, level: Level | None = None) -> ProbSum:
        return ProbSum(self.of, self.logit.expand(level))

    def sorted_terms(self, by: SortKey = "value") -> tuple[LogitTerm, ...]:
        return self.logit.sorted_terms(by)

    def top(self, k: int = 5, by: SortKey = "value") -> tuple[LogitTerm, ...]:
        return self.logit.top(k, by)

    def summary(self, k: int = 5, by: SortKey = "value") -> str:
        return f"{self.of.text()}, log Z = {self.log_z:.2f}\n{self.logit.summary(k, by)}"

    def to_snapshot(self) -> ProbSnapshot:
        return ProbSnapshot(self.of.expression, self.value, self.logit.value,
                            tuple(NamedLogit(t.name, t.value) for t in self.terms))


# --------------------------------------------------------------------------- the mappings


def _top_ids(reading: Reading, k: int) -> list[int]:
    return reading.logits.topk(k).indices.tolist()


@dataclass(frozen=True, eq=False, repr=False)
class Logits(Expression):
    """``logits(T(embed(' is')))``: token → logit. Index with a token string or id."""

    reading: Reading

    @property
    def expression(self) -> str:
        return f"logits({nt.residual_text(self.reading.token)})"

    def latex(self) -> str:
        return rf"\mathrm{{logits}}({nt.residual_latex(self.reading.token)})"

    @property
    def value(self) -> Float[Tensor, " vocab"]:
        """The logits over the whole vocabulary (the dtype the model ran in)."""
        return self.reading.logits

    def __getitem__(self, token: str | int) -> Logit:
        return Logit(self.reading, self.reading.token_id_of(token, "logits(...)"))

    def __len__(self) -> int:
        return self.reading.lab.d_vocab

    def top(self, k: int = 5) -> tuple[Logit, ...]:
        return tuple(Logit(self.reading, i) for i in _top_ids(self.reading, k))

    def summary(self, k: int = 5) -> str:
        """``Top 5 predictions:\\n  1. ' the' (logit: 786.61)\\n…`` as in the notebook."""
        lines = [f"Top {k} predictions:"]
        lines += [f"  {i}. {nt.token_text(x.token)} (logit: {nt.fmt_number(x.value)})"
                  for i, x in enumerate(self.top(k), 1)]
        return "\n".join(lines)

    def to_snapshot(self, k: int = 5) -> TopSnapshot:
        return TopSnapshot(self.expression, _token_scores(self.reading, k))


@dataclass(frozen=True, eq=False, repr=False)
class Predictions(Expression):
    """``P(token | T(embed(' is')))``: token → probability. Index with a token string or id."""

    reading: Reading

    @property
    def expression(self) -> str:
        return f"P(token | {nt.residual_text(self.reading.token)})"

    def latex(self) -> str:
        return rf"P(\cdot \mid {nt.residual_latex(self.reading.token)})"

    @property
    def value(self) -> Float[Tensor, " vocab"]:
        """The probabilities over the whole vocabulary (float64)."""
        return (self.reading.logits.double() - self.reading.log_z).exp()

    def __getitem__(self, token: str | int) -> Prob:
        return Prob(self.reading, self.reading.token_id_of(token, "predict(...)"))

    def __len__(self) -> int:
        return self.reading.lab.d_vocab

    def top(self, k: int = 5) -> tuple[Prob, ...]:
        return tuple(Prob(self.reading, i) for i in _top_ids(self.reading, k))

    def summary(self, k: int = 5) -> str:
        """``Top 5 predictions:\\n  1. ' the' (22.66%, logit=786.61)\\n…`` as in the notebook."""
        lines = [f"Top {k} predictions:"]
        lines += [f"  {i}. {nt.token_text(p.token)} ({fmt_prob(p.value)}, logit={nt.fmt_number(p.logit.value)})"
                  for i, p in enumerate(self.top(k), 1)]
        return "\n".join(lines)

    def to_snapshot(self, k: int = 5) -> TopSnapshot:
        return TopSnapshot(self.expression, _token_scores(self.reading, k))


def _token_scores(reading: Reading, k: int) -> tuple[TokenScore, ...]:
    ids: Sequence[int] = _top_ids(reading, k)
    return tuple(
        TokenScore(tok, i, float(reading.logits[i]), math.exp(float(reading.logits[i]) - reading.log_z))
        for tok, i in zip(reading.lab.to_str(ids), ids, strict=True)
    )
