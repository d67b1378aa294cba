"""Batched ablation sweeps: which components does this answer need?

``sweep(lab, "January February March April", " May", "block")`` ablates each of Gemma's 18
blocks and scores the answer under each, in **one** forward pass: batch row ``r`` runs the
prompt with component ``r`` ablated (the hooks index the batch dimension, see
:func:`pytest_annotate.interventions.ablations.batched_fwd_hooks`). Rows are chunked to a batch size that
keeps memory bounded; only the answer positions are unembedded (Gemma's vocabulary is 262,144
tokens, so a row of logits is 1 MiB per position), and each chunk's answer metrics are computed
inside the loop and its logits dropped.
Every answer metric comes from :func:`pytest_annotate.scoring.answers.score_from_logits`, as in every
other check, so a sweep row and ``Intervention.score`` agree.

Batched rows equal one-pass-per-component runs up to float32 rounding. MKL picks its matmul
kernel by the number of rows, so a 126-row batch and a single 5-token run round differently: over
all of Gemma's 18 blocks, 18 attention layers, 18 MLPs and 72 heads the largest gap measured is
9e-5 on a logit and 5e-5 on a log-prob (Gemma's residual stream reaches ~6,000). With MKL in strict
reproducibility mode (``MKL_CBWR=AUTO,STRICT`` in the environment before the first matmul) the
kernel no longer depends on the batch, and batched rows are bit-identical to single runs.
Without it (other BLAS builds, AMD CPUs, where MKL's strict mode is not honoured) the largest gap
measured is 1.1e-4 in log-prob (AMD EPYC); :data:`BATCH_ATOL` is the one tolerance, stated here and
used by the tests and the benchmark alike, that holds on any x86 CPU.

>>> result = sweep(lab, "January February March April", " May", "block")   # doctest: +SKIP
>>> result.ranked()[0].component, round(result["L1"].log_prob_drop, 1)      # doctest: +SKIP
('L1', 13.3)
>>> print(result.report(top=3))                                             # doctest: +SKIP
Sweep: zero ablation of each of 18 blocks, one per batch row (gemma-3-270m-q4_k_m)
Tokenized prompt: ['<bos>', 'January', ' February', ' March', ' April']
Tokenized answer: [' May']
Clean: rank 0, logit 23.01, prob 29.29%, log-prob -1.228
Sorted by drop in answer log-prob (nats), largest first (negative: the ablation helps the answer):
component        drop  log-prob     prob   logit    rank
L1            +13.293   -14.521    0.00%   12.46    3803
L5             +8.685    -9.913    0.00%   13.17     884
L4             +7.339    -8.567    0.02%   13.52     166
... and 15 more (report(top=None) shows all)
18 rows in 1 batched forward pass (up to 18 rows each), plus the clean run.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, ClassVar, Literal, get_args

import torch
from torch import Tensor

from pytest_annotate.errors import AnnotateError
from pytest_annotate.interventions.ablations import (
    AblationName,
    Intervention,
    ablate,
    batched_fwd_hooks,
    check_ablation,
)
from pytest_annotate.interventions.components import (
    COMPONENT_KINDS,
    Component,
    ComponentKind,
    ComponentSpec,
    all_components,
    kinds_of,
    parse_components,
)
from pytest_annotate.results import Measurement, Result, fmt_prob, fmt_prompt, kind
from pytest_annotate.scoring.answers import (
    AnswerScore,
    score_answer,
    score_from_logits,
    teacher_forced_tokens,
)

if TYPE_CHECKING:
    from pytest_annotate.lab import Lab, Prompt

#: Largest |batched - one pass per component| accepted for a float32 answer log-prob, logit or
#: probability: about twice the largest gap measured without MKL's strict mode (1.1e-4, AMD EPYC;
#: 9e-5 on Intel). With ``MKL_CBWR=AUTO,STRICT`` honoured the gap is 0.0.
BATCH_ATOL = 2e-4

Metric = Literal["logprob", "prob", "logit", "rank"]
"""How an answer's score is measured; the single source of truth for metric names.

``logprob``: the answer's joint log-probability (nats); ``prob``: its joint probability;
``logit``: the first answer token's logit; ``rank``: its greedy rank (0 = greedy decoding gives it;
a token tied with the answer counts as above it, so an ablation that flattens the output raises
the rank to ``d_vocab - 1``: see :mod:`pytest_annotate.scoring.ranks`).
"""
METRICS: tuple[Metric, ...] = get_args(Metric)
METRIC_WORDS: dict[str, str] = {
    "logprob": "answer log-prob (nats)",
    "prob": "answer probability",
    "logit": "answer logit",
    "rank": "answer rank",
}

BATCH_MEMORY_BYTES = 256 * 2**20
"""Default bound on one chunk's logits and widest activations (see :func:`default_batch_size`). 256 MiB:
at 512 the suite's peak RSS was 360 MB higher (padded family batches fill a chunk) for the same wall time
on a CPU, where a pass of 180 short rows is already compute-bound."""
MAX_DEFAULT_BATCH = 256


class SweepMemoryError(AnnotateError, RuntimeError):
    """A batched pass ran out of memory even with one row per pass."""


# --------------------------------------------------------------------------- metrics


@dataclass(frozen=True)
class AnswerMetrics:
    """The four numbers every check reports for an answer in one run."""

    log_prob: float
    """Joint log-probability of the answer's tokens (teacher forcing)."""
    prob: float
    """Joint probability, ``exp(log_prob)``."""
    logit: float
    """The first answer token's logit."""
    rank: int
    """Greedy rank: the worst rank of any answer token at its step (0 = greedy decoding gives it)."""

    @classmethod
    def of(cls, score: AnswerScore) -> AnswerMetrics:
        return cls(score.joint_logprob, score.joint_prob, score.logit, score.rank)

    def value(self, metric: Metric) -> float:
        return {"logprob": self.log_prob, "prob": self.prob, "logit": self.logit, "rank": float(self.rank)}[metric]

    def drop_to(self, other: AnswerMetrics, metric: Metric) -> float:
        """How much worse ``other`` scores the answer than ``self`` (positive: worse).

        For ``rank`` this is the rise in rank; for the others the fall in value.
        """
        if metric == "rank":
            return float(other.rank - self.rank)
        return self.value(metric) - other.value(metric)

    def line(self) -> str:
        return f"rank {self.rank}, logit {self.logit:.2f}, prob {fmt_prob(self.prob)}, log-prob {self.log_prob:.3f}"


def check_metric(metric: str) -> Metric:
    if metric not in METRICS:
        raise ValueError(f"unknown metric {metric!r}; valid: {', '.join(METRICS)}")
    return metric  # type: ignore[return-value]


def fmt_drop(value: float, metric: Metric) -> str:
    if metric == "rank":
        return f"{value:+.0f}"
    if metric == "prob":
        return f"{100 * value:+.2f} pts"
    return f"{value:+.3f}"


# --------------------------------------------------------------------------- batched scoring


@dataclass(frozen=True)
class BatchedScores:
    """Scores of one prompt's answer under several interventions, and how they were computed."""

    scores: tuple[AnswerScore, ...]
    batch_size: int
    """The most rows one completed pass ran (lower than asked if memory ran out)."""
    forward_passes: int
    """Batched forward passes that completed (failed out-of-memory attempts not counted)."""


def default_batch_size(lab: Lab, seq_len: int, n_answer: int = 1) -> int:
    """Rows per pass so that one chunk's logits and activations stay within :data:`BATCH_MEMORY_BYTES`.

    A row costs its answer positions' logits (only those are unembedded, see
    :func:`score_interventions`) plus its widest activations. Gemma 3 on a 5-token prompt with a
    one-token answer: 184 rows; with a 200-token prompt: 14.
    """
    cfg = lab.cfg
    width = max(int(getattr(cfg, "d_mlp", 0) or 0), 4 * lab.d_model)
    floats = n_answer * lab.d_vocab + 8 * seq_len * width + lab.n_heads * seq_len * seq_len
    row_bytes = floats * torch.finfo(lab.dtype).bits // 8
    return max(1, min(MAX_DEFAULT_BATCH, BATCH_MEMORY_BYTES // row_bytes))


def score_interventions(
    lab: Lab,
    prompt: Prompt,
    answer: str | int | Sequence[int],
    interventions: Sequence[Intervention | None],
    *,
    max_batch_size: int | None = None,
) -> BatchedScores:
    """Score ``answer`` after ``prompt`` under each intervention (``None``: clean), batched.

    One forward pass per chunk of ``max_batch_size`` rows (default: :func:`default_batch_size`).
    A chunk that runs out of memory is retried with half the rows, down to one row per pass.

    Only the answer positions are unembedded (a hook on ``unembed.hook_in`` keeps the last
    ``len(answer)`` positions): with Gemma's 262,144-token vocabulary the unembedding is most of
    a short prompt's cost, so this makes a sweep ~1.7x faster and its logits ``seq_len`` times
    smaller. The kept rows equal a full run's up to float32 rounding (~1e-6; checked in the tests).
    """
    answer_ids = lab.answer_tokens(answer)
    prompt_len = int(lab.tokens(prompt).shape[0])
    toks = teacher_forced_tokens(lab, prompt, answer_ids)
    forced = answer_ids[:-1]
    n_answer = len(answer_ids)
    if max_batch_size is None:
        max_batch_size = default_batch_size(lab, int(toks.shape[0]), n_answer)
    run = ChunkedForwards(lab, n_rows=len(interventions), seq_len=int(toks.shape[0]), n_answer=n_answer,
                          batch=max_batch_size)
    scores: list[AnswerScore] = []
    for _, logits in run.chunks(lambda rows: (toks.expand(rows.stop - rows.start, -1),
                                              batched_fwd_hooks(lab, toks, interventions[rows], forced=forced))):
        # Keep only the answer's numbers: a chunk of Gemma logits is hundreds of MiB.
        first = 1 if run.slicing else prompt_len
        scores.extend(score_from_logits(logits[r], first, answer_ids) for r in range(len(logits)))
        del logits
    run.warn_if_retried()
    return BatchedScores(tuple(scores), run.largest, run.passes)


class ChunkedForwards:
    """Forward passes over ``n_rows`` rows in chunks, unembedding only the answer positions.

    The one batching engine under :func:`score_interventions` (one prompt, many interventions)
    and :func:`~pytest_annotate.scoring.items.score_items` (many items x interventions). Written
    here rather than with a generic batcher because the unembedding slice and the out-of-memory
    retry both need the Lab: a chunk that runs out of memory is retried with half the rows, down
    to one row, and a warning names the batch size that worked. ``chunks`` yields each chunk's row
    slice and its logits, ``[rows, n_answer, d_vocab]`` when :attr:`slicing`, else
    ``[rows, seq_len, d_vocab]``.
    """

    def __init__(self, lab: Lab, *, n_rows: int, seq_len: int, n_answer: int, batch: int,
                 row_ends: Sequence[int] | None = None) -> None:
        if batch < 1:
            raise ValueError(f"max_batch_size must be 1 or more, not {batch}")
        self.lab, self.n_rows, self.seq_len, self.n_answer, self.batch = lab, n_rows, seq_len, n_answer, batch
        # Right-padded rows (see scoring.items): row r's answer positions end at row_ends[r], not at seq_len.
        padded = row_ends is not None and any(end != seq_len for end in row_ends)
        self.row_ends: list[int] | None = list(row_ends) if padded and row_ends is not None else None
        self.slicing = "unembed.hook_in" in lab.bridge.hook_dict
        self.passes = 0
        self.largest = 0
        self.failed_at: list[int] = []

    def chunks(
        self, inputs: Callable[[slice], tuple[Tensor, list[tuple[str, Callable[..., object]]]]]
    ) -> Iterable[tuple[slice, Tensor]]:
        """Run ``inputs(rows)`` (the chunk's tokens and hooks) for successive row slices."""
        lab, n_answer = self.lab, self.n_answer
        i = 0
        while i < self.n_rows:
            rows = slice(i, min(i + self.batch, self.n_rows))
            size = rows.stop - rows.start
            try:
                tokens, hooks = inputs(rows)
                if self.slicing:
                    keep = (_keep_last_positions(n_answer) if self.row_ends is None
                            else _keep_positions(answer_positions(self.row_ends[rows], n_answer, tokens.device)))
                    hooks = [*hooks, ("unembed.hook_in", keep)]
                logits = lab.run_batch(tokens, fwd_hooks=hooks, answer_positions=n_answer if self.slicing else None,
                                       lengths=None if self.row_ends is None else self.row_ends[rows])
            except (RuntimeError, MemoryError) as e:
                if not _is_out_of_memory(e):
                    raise
                self.failed_at.append(size)
                if size == 1:
                    raise SweepMemoryError(
                        f"out of memory running one row of {self.seq_len} tokens through {lab.model_id} "
                        f"(tried batch sizes {', '.join(map(str, self.failed_at))}): free memory, use shorter "
                        f"prompts, or run on a device with more memory. The error was: {e}"
                    ) from e
                self.batch = max(1, size // 2)
                if torch.cuda.is_available():
                    torch.cuda.empty_cache()
                continue
            self.passes += 1
            self.largest = max(self.largest, size)
            if self.slicing and logits.shape[1] != n_answer:
                raise RuntimeError(
                    f"{lab.model_id}'s unembedding returned {logits.shape[1]} positions for {n_answer} kept at "
                    "unembed.hook_in; this architecture post-processes logits by position"
                )
            yield rows, logits
            i = rows.stop

    def warn_if_retried(self, stacklevel: int = 3) -> None:
        """Warn, at the caller of the scoring function by default, when a chunk had to be retried."""
        if self.failed_at:
            warnings.warn(
                f"batched scoring ran out of memory at batch size {self.failed_at[0]} and finished with "
                f"{self.batch}; pass max_batch_size={self.batch} to skip the failed attempts",
                ResourceWarning,
                stacklevel=stacklevel,
            )


def _keep_last_positions(n: int) -> Callable[..., Tensor]:
    def keep_last(resid: Tensor, hook: object) -> Tensor:
        # contiguous: a strided input sends F.linear down a path ~3x slower than the sliced copy costs
        return resid[:, -n:].contiguous()

    return keep_last


def answer_positions(ends: Sequence[int], n_answer: int, device: torch.device | str = "cpu") -> Tensor:
    """``[rows, n_answer]`` positions of each row's last ``n_answer`` real tokens, the row's real
    tokens ending at ``ends[r]`` (right-padded rows)."""
    end = torch.tensor(list(ends), device=device).unsqueeze(1)
    return end - n_answer + torch.arange(n_answer, device=device)


def take_positions(act: Tensor, positions: Tensor) -> Tensor:
    """``act[r, positions[r]]`` for every row: ``[rows, pos, ...]`` to ``[rows, n, ...]``."""
    return act[torch.arange(act.shape[0], device=act.device).unsqueeze(1), positions]


def _keep_positions(positions: Tensor) -> Callable[..., Tensor]:
    def keep(resid: Tensor, hook: object) -> Tensor:
        return take_positions(resid, positions)  # advanced indexing: a fresh contiguous tensor

    return keep


def _is_out_of_memory(e: BaseException) -> bool:
    if isinstance(e, MemoryError):
        return True
    oom_type = getattr(torch.cuda, "OutOfMemoryError", ())
    if oom_type and isinstance(e, oom_type):
        return True
    text = str(e)
    return "out of memory" in text or "DefaultCPUAllocator" in text


# --------------------------------------------------------------------------- sweeps


@dataclass(frozen=True)
class SweepRow:
    """One component's ablation: the answer's numbers and how far each moved from the clean run."""

    component: str
    log_prob: float
    prob: float
    logit: float
    rank: int
    log_prob_drop: float = field(metadata=kind("logit"))
    """Clean minus ablated joint log-probability (nats; positive: the ablation hurts)."""
    prob_drop: float = field(metadata=kind("prob"))
    logit_drop: float = field(metadata=kind("logit"))
    rank_rise: int = field(metadata=kind("exact"))
    """Ablated minus clean greedy rank."""

    def drop(self, metric: Metric) -> float:
        return {"logprob": self.log_prob_drop, "prob": self.prob_drop, "logit": self.logit_drop,
                "rank": float(self.rank_rise)}[metric]

    @classmethod
    def of(cls, component: str, clean: AnswerMetrics, ablated: AnswerMetrics) -> SweepRow:
        return cls(
            component, ablated.log_prob, ablated.prob, ablated.logit, ablated.rank,
            clean.log_prob - ablated.log_prob, clean.prob - ablated.prob, clean.logit - ablated.logit,
            ablated.rank - clean.rank,
        )


@dataclass(frozen=True, eq=False)
class SweepResult(Result):
    """Per component: the answer's score with that component ablated, and the drop from clean.

    A measurement, not a claim: it has no ``passed`` verdict. Index it by component name
    (``result["MLP9"]``); ``report()`` is a table sorted by effect.
    """

    model_id: str
    prompt: str
    str_tokens: tuple[str, ...]
    answer: str
    answer_str_tokens: tuple[str, ...]
    ablation: str
    reference_size: int
    clean: AnswerMetrics
    rows: tuple[SweepRow, ...]
    sort_metric: Metric = "logprob"
    kinds: str = "components"
    """What the rows are, in words: ``heads``, ``MLPs``..."""
    batch_size: int = field(default=0, metadata=kind("exact"))
    forward_passes: int = field(default=0, metadata=kind("exact"))

    def __getitem__(self, component: str | Component) -> SweepRow:
        name = str(component)
        for row in self.rows:
            if row.component.lower() == name.lower():
                return row
        raise KeyError(f"{name!r} is not in this sweep; it has {', '.join(r.component for r in self.rows)}")

    def drops(self, metric: Metric | None = None) -> dict[str, float]:
        """``{component: drop}`` in the sweep's order."""
        m = metric or self.sort_metric
        return {r.component: r.drop(m) for r in self.rows}

    def ranked(self, metric: Metric | None = None) -> list[SweepRow]:
        """Rows sorted by effect, largest drop first."""
        m = metric or self.sort_metric
        return sorted(self.rows, key=lambda r: -r.drop(m))

    #: A sweep measures every component, and claims nothing.
    judged: ClassVar[bool] = False

    def measurements(self) -> tuple[Measurement, ...]:
        words = {"logprob": "log-prob", "prob": "prob", "logit": "logit", "rank": "rank"}[self.sort_metric]
        unit = "nats" if self.sort_metric == "logprob" else ""
        out = [Measurement("clean answer log-prob", self.clean.log_prob, unit="nats")]
        for row in self.ranked()[:3]:
            out.append(Measurement(f"{self.ablation}-ablating {row.component}: drop in answer {words}",
                                   row.drop(self.sort_metric), unit=unit))
        return tuple(out)

    def report(self, top: int | None = None) -> str:
        m = self.sort_metric
        rows = self.ranked()
        shown = rows if top is None else rows[:top]
        ref = f" over {self.reference_size} reference prompts" if self.reference_size else ""
        lines = [
            f"Sweep: {self.ablation} ablation{ref} of each of {len(self.rows)} {self.kinds}, one per batch row "
            f"({self.model_id})",
            f"Tokenized prompt: {fmt_prompt(self.str_tokens)}",
            f"Tokenized answer: {fmt_prompt(self.answer_str_tokens)}",
            f"Clean: {self.clean.line()}",
            f"Sorted by drop in {METRIC_WORDS[m]}, largest first (negative: the ablation helps the answer):",
            f"{'component':<10} {'drop':>10} {'log-prob':>9} {'prob':>8} {'logit':>7} {'rank':>7}",
        ]
        for r in shown:
            lines.append(
                f"{r.component:<10} {fmt_drop(r.drop(m), m):>10} {r.log_prob:>9.3f} {fmt_prob(r.prob):>8} "
                f"{r.logit:>7.2f} {r.rank:>7}"
            )
        if len(shown) < len(rows):
            lines.append(f"... and {len(rows) - len(shown)} more (report(top=None) shows all)")
        lines.append(
            f"{len(self.rows)} rows in {self.forward_passes} batched forward pass"
            f"{'es' if self.forward_passes != 1 else ''} (up to {self.batch_size} rows each), plus the clean run."
        )
        return "\n".join(lines)


SweepSpec = ComponentSpec
"""What to sweep: a component kind (``"block"``, ``"attn"``, ``"mlp"``, ``"head"``: all of that kind),
or component names (``"L0-L5"``, ``["MLP0", "L3H1"]``): one row per component."""


def sweep(
    lab: Lab,
    prompt: Prompt,
    answer: str | int | Sequence[int],
    components: SweepSpec = "block",
    *,
    ablation: AblationName = "zero",
    reference: Iterable[Prompt] | None = None,
    seed: int = 0,
    metric: Metric = "logprob",
    max_batch_size: int | None = None,
) -> SweepResult:
    """Ablate each component alone and score the answer: one batched forward pass per chunk.

    Args:
        components: a kind (``"block"``, ``"attn"``, ``"mlp"``, ``"head"``; plurals too) for every
            component of that kind, or names (``"L0-L5 + MLP9"``): one row per component.
        ablation: ``zero``, ``mean``, ``resample`` or ``skip`` (see :mod:`pytest_annotate.interventions.ablations`).
        reference: the prompts ``mean`` and ``resample`` draw on (same token count as ``prompt``).
        metric: what the report sorts by.
        max_batch_size: rows per forward pass (default from :data:`BATCH_MEMORY_BYTES`).

    >>> sweep(lab, "January February March April", " May", "mlp").ranked()[0].component  # doctest: +SKIP
    'MLP3'
    """
    check_ablation(ablation)
    check_metric(metric)
    comps = _sweep_components(lab, components)
    ivs = [ablate(lab, c, ablation, reference=reference, seed=seed) for c in comps]
    clean = AnswerMetrics.of(score_answer(lab, prompt, answer))
    batched = score_interventions(lab, prompt, answer, ivs, max_batch_size=max_batch_size)
    rows = tuple(SweepRow.of(str(c), clean, AnswerMetrics.of(s)) for c, s in zip(comps, batched.scores, strict=True))
    answer_ids = lab.answer_tokens(answer)
    return SweepResult(
        model_id=lab.model_id,
        prompt=prompt if isinstance(prompt, str) else "".join(lab.str_tokens(prompt)),
        str_tokens=tuple(lab.str_tokens(prompt)),
        answer=answer if isinstance(answer, str) else "".join(lab.to_str(answer_ids)),
        answer_str_tokens=tuple(lab.to_str(answer_ids)),
        ablation=ablation,
        reference_size=len(ivs[0].reference),
        clean=clean,
        rows=rows,
        sort_metric=metric,
        kinds=kinds_of(comps),
        batch_size=batched.batch_size,
        forward_passes=batched.forward_passes,
    )


_KIND_WORDS = {
    **{k: k for k in COMPONENT_KINDS}, "blocks": "block", "layers": "block", "mlps": "mlp", "heads": "head",
    "attention": "attn", "attns": "attn",
}


def _sweep_components(lab: Lab, components: SweepSpec) -> tuple[Component, ...]:
    if isinstance(components, str) and components.strip().lower() in _KIND_WORDS:
        kind_name: ComponentKind = _KIND_WORDS[components.strip().lower()]  # type: ignore[assignment]
        return all_components(lab, kind_name)
    return parse_components(components, lab)


__all__ = [
    "METRICS",
    "AnswerMetrics",
    "BatchedScores",
    "Metric",
    "SweepMemoryError",
    "SweepResult",
    "SweepRow",
    "default_batch_size",
    "score_interventions",
    "sweep",
]
