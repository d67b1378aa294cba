"""The parity oracle: does the TransformerLens bridge compute what the HuggingFace model computes?

For every prompt, the bridge's next-token log-probs (compat processing: folded LayerNorm, centred
writing weights and unembedding, folded value biases; or raw) are compared with those of the
unprocessed ``AutoModelForCausalLM`` on the same weights, dtype, device and token ids (BOS
included): at **every position**, over the **full vocabulary**. Log-probs, not logits: centring the
unembedding shifts every logit of a position by the same constant, which is no difference at all.

Per prompt it reports the largest and the mean ``|Δ log-prob|``, ``KL(HF ‖ TL)`` (mean over
positions) and how often the top-1 tokens agree. The verdict holds when the largest ``|Δ|`` over all
prompts is within ``atol`` nats (:data:`DEFAULT_ATOL` per dtype).

The reference is loaded when asked (from the same source directory as the Lab's model, or rebuilt
from the same seed under ``--random-weights``), runs the distinct prompts in equal-length batches
without padding, and is freed before :func:`parity` returns. Nothing here imports pytest.

>>> lab = load_model("gemma-3-270m", device="cpu")                    # doctest: +SKIP
>>> lab.run("The capital of Ireland is")                              # doctest: +SKIP
>>> print(parity(lab).report())                                       # doctest: +SKIP
PASSED  gemma-3-270m-q4_k_m (compat, float32) next-token log-probs match HuggingFace's within 0.001 nats ...

>>> default_atol("float32"), default_atol("bfloat16")
(0.001, 5.0)
"""

from __future__ import annotations

import gc
import math
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pytest_annotate.errors import AnnotateError
from pytest_annotate.results import Measurement, Result

if TYPE_CHECKING:
    import torch

    from pytest_annotate.lab import Lab, Prompt

#: Tolerance on max |Δ log-prob| (nats) per dtype, over every position and the full vocabulary.
#: Raw processing runs HuggingFace's own modules: bit-identical log-probs on Gemma 3 270M and
#: SmolLM2-135M, in float32 and bfloat16. Compat processing re-associates sums (folding, centring)
#: and, in half precision, rounds the folded weights themselves (a logit of 20 is resolved to
#: 0.125 in bfloat16, 0.016 in float16). Measured under compat (CPU): float32 2.7e-4 nats on Gemma
#: (55 prompts of the behaviours, up to 101 tokens) and 6.5e-5 on SmolLM2 (7 prompts); float16
#: 0.26 on SmolLM2; bfloat16 1.05 on Gemma (13 short prompts) and 3.13 on SmolLM2, where the top-1
#: token moves at 1 position in 6 of the capital prompts. So in half precision the oracle catches
#: gross errors only: check parity in float32.
DEFAULT_ATOL: dict[str, float] = {"float32": 1e-3, "float16": 1.0, "bfloat16": 5.0}

#: Bytes of one model's logits per forward pass of the oracle (a Gemma position is 1 MiB in float32).
BATCH_BYTES = 64 << 20
#: Rows of the per-prompt table in :meth:`ParityReport.report`, worst first.
TABLE_ROWS = 150


class ParityUnavailable(AnnotateError):
    """The oracle cannot compare this model (the reason says why); it is skipped, not failed."""


def default_atol(dtype: str | torch.dtype) -> float:
    """The default tolerance for a dtype (``float32``, ``bfloat16``, ``float16`` or a ``torch.dtype``)."""
    name = str(dtype).removeprefix("torch.")
    if name not in DEFAULT_ATOL:
        raise ValueError(f"no default parity tolerance for dtype {name!r}; valid: {', '.join(DEFAULT_ATOL)}")
    return DEFAULT_ATOL[name]


# --------------------------------------------------------------------------- values


@dataclass(frozen=True)
class PromptParity:
    """The comparison for one prompt, over all its positions and the full vocabulary."""

    prompt: str
    """The prompt's text, decoded from its token ids."""
    n_tokens: int
    max_abs: float
    """max |Δ log-prob| (nats) over positions × vocabulary."""
    mean_abs: float
    """mean |Δ log-prob| (nats) over positions × vocabulary."""
    kl: float
    """KL(HF ‖ TL) in nats, mean over positions."""
    top1: float
    """The fraction of positions whose top-1 token is the same in both models."""
    worst_position: int
    """The position (0 = the first token, BOS included) with the largest |Δ|."""

    @property
    def shown(self) -> str:
        """The prompt as a report shows it: quoted, cut to 48 characters."""
        text = repr(self.prompt)
        return text if len(text) <= 48 else text[:46] + "…" + text[-1]


@dataclass(frozen=True, eq=False)
class ParityReport(Result):
    """TransformerLens (processed) vs HuggingFace (unprocessed) next-token log-probs, per prompt.

    ``passed``: the largest |Δ log-prob| over all prompts is at most ``atol`` (and finite).
    """

    model_id: str
    processing: str
    dtype: str
    device: str
    reference: str
    """What the reference model was, e.g. ``AutoModelForCausalLM.from_pretrained(<dir>)``."""
    atol: float
    prompts: tuple[PromptParity, ...]
    passed: bool
    seconds: float = 0.0
    """Wall time of the whole comparison: loading the reference, both models' forwards, the numbers."""
    load_seconds: float = 0.0

    @property
    def max_abs(self) -> float:
        if not self.prompts:
            return 0.0
        values = [p.max_abs for p in self.prompts]
        return math.nan if any(math.isnan(v) for v in values) else max(values)

    @property
    def worst(self) -> PromptParity | None:
        """The prompt with the largest |Δ| (a NaN counts as the largest)."""
        if not self.prompts:
            return None
        return max(self.prompts, key=lambda p: math.inf if math.isnan(p.max_abs) else p.max_abs)

    @property
    def n_positions(self) -> int:
        return sum(p.n_tokens for p in self.prompts)

    @property
    def claim(self) -> str:
        return (f"{self.model_id} ({self.processing}, {self.dtype}) next-token log-probs match HuggingFace's "
                f"within {self.atol:g} nats")

    def measured(self) -> str:
        worst = self.worst
        if worst is None:
            return "no prompt ran"
        where = "identical log-probs" if self.max_abs == 0 else f"worst {worst.shown}"
        return (f"max |Δ log-prob| {_g(self.max_abs)} nats over {len(self.prompts)} prompt"
                f"{'s' * (len(self.prompts) != 1)} ({self.n_positions} positions), {where}")

    def measurements(self) -> tuple[Measurement, ...]:
        if not self.prompts:
            return (Measurement("prompts", 0),)
        n = self.n_positions
        return (
            Measurement("max |Δ log-prob|", self.max_abs, "<=", self.atol, primary=True, unit="nats"),
            Measurement("mean |Δ log-prob|", sum(p.mean_abs * p.n_tokens for p in self.prompts) / n, unit="nats"),
            Measurement("max KL(HF‖TL)", max(p.kl for p in self.prompts), unit="nats"),
            Measurement("top-1 agreement", sum(p.top1 * p.n_tokens for p in self.prompts) / n),
            Measurement("prompts", len(self.prompts)),
        )

    def summary_line(self) -> str:
        """One line for the terminal summary."""
        return (f"{self.headline()}; reference {self.reference}; all positions, full vocabulary; "
                f"{self.seconds:.1f} s")

    def table(self, rows: int = TABLE_ROWS) -> list[str]:
        """The per-prompt table, worst first."""
        ordered = sorted(self.prompts, key=lambda p: -math.inf if math.isnan(p.max_abs) else -p.max_abs)
        out = [(f"  {'prompt':<48}  {'tokens':>6}  {'max |Δ|':>9}  {'mean |Δ|':>9}  {'KL':>9}  {'top-1':>7}  "
                "worst pos")]
        for p in ordered[:rows]:
            out.append(f"  {p.shown:<48}  {p.n_tokens:>6}  {_g(p.max_abs):>9}  {_g(p.mean_abs):>9}  {_g(p.kl):>9}  "
                       f"{100 * p.top1:>6.1f}%  {p.worst_position}")
        if len(ordered) > rows:
            out.append(f"  … {len(ordered) - rows} more prompts, each with max |Δ| ≤ {_g(ordered[rows].max_abs)}")
        return out

    def report(self) -> str:
        lines = [self.headline()]
        lines.append(f"  reference: {self.reference} on {self.device}; compared: log-softmax at every position "
                     "over the full vocabulary (KL(HF ‖ TL) is the mean over positions)")
        lines.append(f"  time: {self.seconds:.1f} s ({self.load_seconds:.1f} s loading the reference)")
        if not self.prompts:
            lines.append("  no prompt ran through the Lab: nothing to compare")
            return "\n".join(lines)
        lines += self.table()
        if not self.passed:
            lines.append(
                f"  the TransformerLens bridge and HuggingFace disagree by more than {self.atol:g} nats. Is the "
                "processing at fault? Re-run with --processing raw; is the tolerance too tight for this dtype? "
                "--parity-atol")
        return "\n".join(lines)


def _g(x: float) -> str:
    return "nan" if math.isnan(x) else f"{x:.3g}" if x else "0"


# --------------------------------------------------------------------------- the reference


def unavailable_reason(lab: Lab) -> str | None:
    """Why the oracle cannot compare this Lab's model, or None when it can."""
    spec = lab.resolved.spec
    if spec.device_map is not None or getattr(getattr(lab.bridge, "original_model", None), "hf_device_map", None):
        return (f"--device-map {spec.device_map} spreads the model over several devices; a second, unprocessed "
                "copy would need the same placement and twice the memory")
    return None


def describe_reference(lab: Lab) -> str:
    resolved = lab.resolved
    if resolved.kind == "random":
        return f"the same random {resolved.source} (seed 0), unprocessed"
    name = resolved.embedded.key if resolved.embedded else resolved.source
    rev = f"@{resolved.revision}" if resolved.revision else ""
    return f"AutoModelForCausalLM {name}{rev} (eager attention)"


def load_reference(lab: Lab) -> Any:
    """The unprocessed HuggingFace model the Lab's bridge was made from, loaded anew, in eval mode.

    Same source, dtype and device as the Lab; eager attention, as :func:`~pytest_annotate.models.load.load`
    loads it. Raises :class:`ParityUnavailable` when it cannot be had.
    """
    why = unavailable_reason(lab)
    if why is not None:
        raise ParityUnavailable(why)
    resolved = lab.resolved
    if resolved.kind == "random":
        from pytest_annotate.models.random_weights import build_random_model

        model = build_random_model(resolved.source).hf_model
    else:
        from transformers import AutoModelForCausalLM

        source = resolved.source
        if resolved.kind == "embedded":
            from pytest_annotate.models.embedded import dense_copy

            assert resolved.embedded is not None
            source = str(dense_copy(resolved.embedded))
        try:
            model = AutoModelForCausalLM.from_pretrained(
                source, dtype=lab.dtype, attn_implementation="eager", revision=resolved.revision,
                trust_remote_code=resolved.spec.trust_remote_code)
        except Exception as e:  # whatever stops the load, the oracle says so and steps aside
            raise ParityUnavailable(f"could not load the reference {source}: {type(e).__name__}: {e}") from e
    return model.to(device=lab.device, dtype=lab.dtype).eval()


# --------------------------------------------------------------------------- the comparison


def parity(
    lab: Lab,
    prompts: Iterable[Prompt] | None = None,
    *,
    atol: float | None = None,
    reference: Any = None,
) -> ParityReport:
    """Compare the Lab's next-token log-probs with the unprocessed HuggingFace model's.

    Args:
        lab: the loaded model.
        prompts: texts (tokenized with the Lab's BOS policy) or token ids; by default every
            distinct token sequence the Lab has run (``lab.prompts``).
        atol: the tolerance on max |Δ log-prob| in nats; by default :data:`DEFAULT_ATOL` for the Lab's dtype.
        reference: an unprocessed HuggingFace causal LM on the Lab's device and dtype; by default
            :func:`load_reference` loads it, and it is freed before returning.

    Raises :class:`ParityUnavailable` when the model cannot be compared (``--device-map``, a reference
    that cannot be loaded).
    """
    import torch

    t0 = time.perf_counter()
    tol = default_atol(lab.dtype) if atol is None else float(atol)
    if not tol >= 0 or math.isinf(tol):
        raise ValueError(f"atol {atol!r} is not a tolerance; give a finite number of nats >= 0, e.g. 1e-3")
    rows = [tuple(int(t) for t in lab.tokens(p).tolist()) for p in prompts] if prompts is not None else lab.prompts
    rows = list(dict.fromkeys(rows))
    common = {"model_id": lab.model_id, "processing": lab.processing, "dtype": str(lab.dtype).removeprefix("torch."),
              "device": str(lab.device), "reference": describe_reference(lab), "atol": tol}
    if not rows:
        return ParityReport(**common, prompts=(), passed=True, seconds=time.perf_counter() - t0)
    own = reference is None
    ref = load_reference(lab) if own else reference
    t_loaded = time.perf_counter()
    try:
        found: dict[tuple[int, ...], PromptParity] = {}
        for batch in _batches(rows, lab.d_vocab):
            toks = torch.tensor(batch, dtype=torch.long, device=lab.device)
            with torch.inference_mode():
                ours = lab.bridge(toks)
                theirs = ref(input_ids=toks, use_cache=False).logits
            for row, stats in zip(batch, _compare(ours, theirs), strict=True):
                found[row] = PromptParity(_decode(lab, row), len(row), *stats)
            del ours, theirs
    finally:
        if own:
            del ref
            gc.collect()
            if str(lab.device).startswith("cuda"):
                torch.cuda.empty_cache()
    results = tuple(found[r] for r in rows)
    worst = max((p.max_abs for p in results), default=0.0)
    passed = not any(math.isnan(p.max_abs) for p in results) and worst <= tol
    return ParityReport(**common, prompts=results, passed=passed, seconds=time.perf_counter() - t0,
                        load_seconds=t_loaded - t0)


def _batches(rows: Sequence[tuple[int, ...]], d_vocab: int) -> list[list[tuple[int, ...]]]:
    """Rows of equal length together (no padding, so no attention mask can differ), ~BATCH_BYTES of logits each."""
    by_len: dict[int, list[tuple[int, ...]]] = {}
    for r in rows:
        by_len.setdefault(len(r), []).append(r)
    out = []
    for n, group in sorted(by_len.items()):
        per = max(1, BATCH_BYTES // (n * d_vocab * 4))
        out += [group[i:i + per] for i in range(0, len(group), per)]
    return out


def _compare(ours: torch.Tensor, theirs: torch.Tensor) -> list[tuple[float, float, float, float, int]]:
    """Per row: (max |Δ|, mean |Δ|, mean KL(theirs ‖ ours), top-1 agreement, worst position)."""
    import torch

    if ours.shape != theirs.shape:
        raise ValueError(f"the bridge gave logits of shape {tuple(ours.shape)}, HuggingFace {tuple(theirs.shape)}")
    if ours.device.type == "mps":  # no float64 there
        ours, theirs = ours.cpu(), theirs.cpu()
    lp_ours = torch.log_softmax(ours.double(), dim=-1)
    lp_theirs = torch.log_softmax(theirs.double(), dim=-1)
    diff = lp_ours - lp_theirs
    # Equal infinities (a token masked in both) are no difference; a NaN anywhere stays a NaN.
    abs_diff = torch.where(lp_ours == lp_theirs, torch.zeros((), dtype=diff.dtype, device=diff.device), diff.abs())
    per_pos_max = abs_diff.amax(dim=-1)  # [batch, pos]
    p_theirs = lp_theirs.exp()
    kl = torch.where(p_theirs > 0, p_theirs * -diff, torch.zeros((), dtype=diff.dtype, device=diff.device)).sum(-1)
    agree = (ours.argmax(-1) == theirs.argmax(-1)).double()
    out = []
    for b in range(ours.shape[0]):
        row_max = per_pos_max[b]
        nan = bool(row_max.isnan().any())
        out.append((
            math.nan if nan else float(row_max.max()),
            float(abs_diff[b].mean()),
            float(kl[b].mean().clamp_min(0)),
            float(agree[b].mean()),
            int(row_max.isnan().nonzero()[0, 0]) if nan else int(row_max.argmax()),
        ))
    return out


def _decode(lab: Lab, row: Sequence[int]) -> str:
    try:
        return str(lab.bridge.tokenizer.decode(list(row)))
    except Exception:  # noqa: BLE001 - a row of ids the tokenizer cannot render is shown as ids
        return str(list(row))


__all__ = ["DEFAULT_ATOL", "ParityReport", "ParityUnavailable", "PromptParity", "default_atol", "load_reference",
           "parity", "unavailable_reason"]
