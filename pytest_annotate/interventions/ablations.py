"""Interventions: ablate components, keep only a circuit, and prove that the patch took effect.

An :class:`Intervention` is a frozen, hashable value built from component names. It knows its
readable name (``str(iv)`` is ``"zero MLP9"`` or ``"keep L0-L7 + MLP9"``), its memo ``key`` for
:meth:`Lab.run <pytest_annotate.lab.Lab.run>`, and builds the forward hooks that carry it out on
a given token sequence.

Ablations (:data:`AblationName`, the single source of truth for their names):

``zero``
    the component's output is set to zero: ``hook_attn_out`` / ``hook_mlp_out`` for attention
    and MLP layers, the head's slice of ``attn.hook_z`` for a head, ``hook_embed`` /
    ``hook_pos_embed`` for the embeddings; for a whole block both sublayer outputs, which is
    written as ``hook_resid_post ← hook_resid_pre`` (see ``skip``).
``mean``
    the output is replaced by its mean over a *reference set* of prompts, position by position
    (so every reference prompt must have as many tokens as the prompt). There is no default
    reference set: the mean is over a distribution the claim must name. :func:`permuted_prompts`
    builds one (the prompt's own tokens, reordered) when that is the distribution meant.
``resample``
    the output is replaced by the one computed on a different prompt, drawn from the reference
    set with a seeded generator (``random.Random(seed)``), the same draw for every component of
    one intervention.
``skip``
    the component adds nothing to the residual stream, as if it were removed from the model.
    For a block this is ``blocks.i.hook_resid_post ← blocks.i.hook_resid_pre`` of the same pass:
    one hook whose result is the block's input whatever the block computes inside. Zeroing
    ``hook_attn_out`` and ``hook_mlp_out`` instead gives bit-identical logits for GPT-2 (compat
    and raw) and Gemma 3 (whose ``hook_attn_out``/``hook_mlp_out`` sit after the post-attention
    and post-MLP norms, so they *are* the sublayers' contributions, and ``x + 0 == x`` exactly);
    for a raw GPT-2 it also matches deleting the block from the HuggingFace model (to 3e-7,
    summation order): see ``tests/test_interventions.py``. For attention, MLP and embedding
    components ``skip`` and ``zero`` are the same operation.

Zeroing a head's ``hook_z`` slice removes the head's contribution when the output bias is kept:
``attn_out = Σ_h z_h W_O[h] + b_O`` is linear in each ``z_h``, so ``z_h = 0`` drops exactly the
term ``z_h W_O[h]`` and leaves ``b_O``, which belongs to no head. (In Gemma the sum then goes
through the post-attention RMSNorm: the head is removed from the norm's input, and the norm
rescales what is left, as it would if the head did not exist.) One difference between
processing modes: ``z_h`` is ``pattern · (x W_V + b_V)``; in ``compat`` mode
``fold_value_biases`` moves ``b_V`` into ``b_O`` (the pattern's rows sum to 1, so the head's
bias term is the constant ``b_V[h] W_O[h]``), and zeroing ``z_h`` there keeps that constant,
while in ``raw`` mode it removes it too. Gemma and Llama have no value bias, so both agree.

**Keep-only circuits** (:func:`keep_only`): every block, attention layer, MLP and head not kept
is skipped; the embeddings, ``ln_final`` and the unembedding always run. ``keep_only(lab,
["L0-L7", "MLP9"])`` is "L0–L7 + MLP9 only"; ``keep_only(lab, ["attn0-7", "MLP9"])`` is
"attention only in L0–L7, then MLP9". :func:`bypass_norm` runs a sublayer on the raw residual
stream without its input norm ("MLP9 without its ln2"), and interventions combine with ``+``.

**Proof that it took effect**, twice over. A patch that silently does nothing (nnsight #502)
would make a necessity test pass for the wrong reason, so:

* every hook compares what it writes with what was there, row by row, and raises
  :class:`~pytest_annotate.errors.InterventionError` naming the hook point when nothing changed
  (a mean over a reference set that is the prompt itself, zeroing an output that is already zero);
* that comparison only happens in a hook that is called, and a TransformerLens 4 bridge exposes
  hook points its architecture never calls (``hook_pos_embed`` on rotary models such as Gemma)
  or calls only when a ``set_use_*`` flag is on. So every hook is counted (a
  :class:`HookCanary`): after the forward pass, :meth:`Lab.run_batch
  <pytest_annotate.lab.Lab.run_batch>` raises ``InterventionError`` for any hook point of the
  intervention that was not called at all, naming it, the component it was meant to edit, and
  why. Counts are per hook point, not per row: a batched sweep's rows without an edit do not
  count as misses, and one call covers every row of the batch.

Both errors are raised before the run is memoized, and :meth:`Lab.run` removes the hooks on the
way out.

>>> iv = keep_only(lab, ["L0-L7", "MLP9"])                                # doctest: +SKIP
>>> str(iv), iv.detail                                                     # doctest: +SKIP
('keep L0-L7 + MLP9', 'skips L8 + L10-L17 + attn9')
>>> iv.score(lab, "1 2 3 4", " 5").rank                                    # doctest: +SKIP
0
"""

from __future__ import annotations

import itertools
import math
import random
from collections import defaultdict
from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal, Union, get_args

import torch
from jaxtyping import Int
from torch import Tensor

from pytest_annotate.errors import InterventionError
from pytest_annotate.interventions.components import (
    Component,
    ComponentSpec,
    all_components,
    format_components,
    parse_components,
)

if TYPE_CHECKING:
    from pytest_annotate.lab import FwdHook, Lab, Prompt
    from pytest_annotate.scoring.answers import AnswerScore

AblationName = Literal["zero", "mean", "resample", "skip"]
"""The ablations; the single source of truth for their names."""
ABLATIONS: tuple[AblationName, ...] = get_args(AblationName)
NEEDS_REFERENCE: frozenset[str] = frozenset({"mean", "resample"})

UNCHANGED_RTOL = 1e-5
"""A write counts as "no change" when it moves no entry of a row by more than this fraction of
the row's largest entry: float32 noise between batch shapes is ~1e-7 of it, a real ablation
moves the activation by a sizeable fraction of itself."""


class InterventionSpecError(InterventionError, ValueError):
    """An intervention was asked for with a bad value (unknown ablation, missing or misshapen
    reference set, conflicting edits). Both ``InterventionError`` and ``ValueError``."""


# --------------------------------------------------------------------------- edits


@dataclass(frozen=True)
class Ablation:
    """One component ablated one way: ``Ablation(Component("mlp", 9), "zero")`` is ``zero MLP9``."""

    component: Component
    how: AblationName

    def __str__(self) -> str:
        return f"{self.how} {self.component}"


@dataclass(frozen=True)
class BypassNorm:
    """A sublayer run on the raw residual stream: its input norm (``ln1`` for attention, ``ln2``
    for the MLP) passes its input through unchanged.

    In ``compat`` mode the norm's scale and bias are folded into the next weights, so this
    removes only the centring and scaling, as the source notebooks did (``blocks[9].mlp(resid)``
    on a ``fold_ln`` model); in ``raw`` mode it removes the norm's weights too.
    """

    component: Component

    def __post_init__(self) -> None:
        if self.component.kind not in ("attn", "mlp"):
            raise InterventionSpecError(
                f"only attention layers and MLPs have an input norm to bypass, not {self.component} "
                f"(give attn{self.component.layer} or MLP{self.component.layer})"
            )

    @property
    def norm(self) -> str:
        return "ln1" if self.component.kind == "attn" else "ln2"

    def __str__(self) -> str:
        return f"{self.component} without {self.norm}"


Edit = Union[Ablation, BypassNorm]
ReferenceSet = tuple[tuple[int, ...], ...]


# --------------------------------------------------------------------------- the value


@dataclass(frozen=True)
class Intervention:
    """A set of edits applied together in one forward pass. Frozen and hashable.

    Build one with :func:`ablate`, :func:`skip`, :func:`keep_only` or :func:`bypass_norm`, and
    combine with ``+``. ``reference`` holds the token ids of the reference prompts (only when an
    edit needs them), ``seed`` the draw for ``resample``.
    """

    edits: tuple[Edit, ...]
    reference: ReferenceSet = ()
    seed: int = 0
    label: str = field(default="", compare=False)
    detail: str = field(default="", compare=False)
    """What a keep-only circuit removes, e.g. ``skips L8 + L10-L11 + attn9``."""

    def __post_init__(self) -> None:
        if not self.edits:
            raise InterventionSpecError("an intervention needs at least one edit (an ablated or kept component)")
        seen: dict[Component, Edit] = {}
        for edit in self.edits:
            prev = seen.get(edit.component)
            if prev is not None and type(prev) is type(edit) and prev != edit:
                raise InterventionSpecError(f"{edit.component} is edited twice, as '{prev}' and as '{edit}'; pick one")
            seen[edit.component] = edit
        if any(needs_reference(e) for e in self.edits) and not self.reference:
            raise InterventionSpecError(_no_reference_message(self.edits))

    def __str__(self) -> str:
        return self.label or _describe(self.edits)

    def __repr__(self) -> str:
        return f"Intervention({str(self)!r})"

    @property
    def key(self) -> Hashable:
        """The memo key for :meth:`Lab.run`: equal interventions share their runs."""
        return ("intervention", self.edits, self.reference, self.seed)

    @property
    def components(self) -> tuple[Component, ...]:
        """The components this intervention touches, in forward order."""
        return tuple(sorted(dict.fromkeys(e.component for e in self.edits), key=lambda c: c.sort_key))

    def __add__(self, other: Intervention) -> Intervention:
        if not isinstance(other, Intervention):
            return NotImplemented
        if self.reference and other.reference and self.reference != other.reference:
            raise InterventionSpecError(f"cannot combine '{self}' and '{other}': they use different reference sets")
        if self.seed != other.seed and any(needs_reference(e) for e in self.edits + other.edits):
            raise InterventionSpecError(f"cannot combine '{self}' and '{other}': they use different seeds")
        edits = tuple(dict.fromkeys(self.edits + other.edits))
        details = "; ".join(d for d in (self.detail, other.detail) if d)
        return Intervention(edits, self.reference or other.reference, self.seed, f"{self}; {other}", details)

    # ------------------------------------------------------------------ running
    def fwd_hooks(
        self, lab: Lab, tokens: Int[Tensor, " pos"], *, forced: Sequence[int] = ()
    ) -> list[FwdHook]:
        """The hooks that apply this intervention to every row of a run on ``tokens``.

        ``forced`` are trailing tokens of ``tokens`` that were appended by teacher forcing (all
        but the last answer token); reference prompts get the same suffix so positions align.
        """
        return batched_fwd_hooks(lab, tokens, [self], forced=forced, all_rows=True)

    def run(self, lab: Lab, prompt: Prompt) -> Tensor:
        """Logits ``[pos, vocab]`` of ``prompt`` under this intervention (memoized by :attr:`key`)."""
        toks = lab.tokens(prompt)
        return lab.run(toks, fwd_hooks=self.fwd_hooks(lab, toks), key=self.key)

    def score(self, lab: Lab, prompt: Prompt, answer: str | int | Sequence[int]) -> AnswerScore:
        """The answer's score under this intervention, by :func:`pytest_annotate.scoring.answers.score_answer`."""
        from pytest_annotate.scoring.answers import score_answer, teacher_forced_tokens

        answer_ids = lab.answer_tokens(answer)
        toks = teacher_forced_tokens(lab, prompt, answer_ids)
        hooks = self.fwd_hooks(lab, toks, forced=answer_ids[:-1])
        return score_answer(lab, prompt, answer_ids, fwd_hooks=hooks, key=self.key)


# --------------------------------------------------------------------------- factories


def ablate(
    lab: Lab,
    components: ComponentSpec,
    how: AblationName = "zero",
    *,
    reference: Iterable[Prompt] | None = None,
    seed: int = 0,
) -> Intervention:
    """Ablate every named component in one pass: ``ablate(lab, "MLP9")`` is ``zero MLP9``.

    ``mean`` and ``resample`` need ``reference``: prompts with as many tokens as the prompt
    the intervention will run on.

    >>> str(ablate(lab, "L5H5 + L5H1", "mean", reference=["A B C D", "E F G H"]))   # doctest: +SKIP
    'mean L5H1 + L5H5'
    """
    how = check_ablation(how)
    comps = parse_components(components, lab)
    edits = tuple(Ablation(c, how) for c in sorted(comps, key=lambda c: c.sort_key))
    ref = reference_tokens(lab, reference) if how in NEEDS_REFERENCE and reference is not None else ()
    return Intervention(edits, ref, seed if how == "resample" else 0)


def skip(lab: Lab, components: ComponentSpec) -> Intervention:
    """Remove components from the forward pass: ``skip(lab, "L4, L8, L10, L11")``."""
    return ablate(lab, components, "skip")


def keep_only(lab: Lab, keep: ComponentSpec) -> Intervention:
    """Skip every block, attention layer, MLP and head that is not kept.

    The embeddings, ``ln_final`` and the unembedding always run. Kept heads keep their layer's
    attention for those heads only (the other heads of the layer are skipped).

    >>> str(keep_only(lab, ["L0-L7", "MLP9"]))                                # doctest: +SKIP
    'keep L0-L7 + MLP9'
    """
    kept = parse_components(keep, lab)
    blocks = {c.layer for c in kept if c.kind == "block"}
    attn = {c.layer for c in kept if c.kind == "attn"} | blocks
    mlp = {c.layer for c in kept if c.kind == "mlp"} | blocks
    heads: dict[int, set[int]] = defaultdict(set)
    for c in kept:
        if c.kind == "head":
            heads[c.layer].add(c.head)  # type: ignore[index,arg-type]
    edits: list[Ablation] = []
    for layer in range(lab.n_layers):
        if layer not in attn and layer not in mlp and layer not in heads:
            edits.append(Ablation(Component("block", layer), "skip"))
            continue
        if layer not in attn:
            if layer in heads and len(heads[layer]) < lab.n_heads:
                edits += [Ablation(Component("head", layer, h), "skip") for h in range(lab.n_heads)
                          if h not in heads[layer]]
            elif layer not in heads:
                edits.append(Ablation(Component("attn", layer), "skip"))
        if layer not in mlp:
            edits.append(Ablation(Component("mlp", layer), "skip"))
    label = f"keep {format_components(kept)}"
    if not edits:
        raise InterventionSpecError(
            f"'{label}' keeps every block of {lab.model_id}: nothing would be removed. "
            f"Keep fewer components (e.g. L0-L{lab.n_layers - 2})."
        )
    detail = "skips " + format_components(e.component for e in edits)
    return Intervention(tuple(edits), label=label, detail=detail)


def bypass_norm(lab: Lab, components: ComponentSpec) -> Intervention:
    """Run attention layers / MLPs without their input norm: ``bypass_norm(lab, "MLP9")``."""
    comps = parse_components(components, lab)
    return Intervention(tuple(BypassNorm(c) for c in comps))


def check_ablation(how: str) -> AblationName:
    """Return ``how`` if it names an ablation, else raise with the valid names."""
    if how not in ABLATIONS:
        from pytest_annotate.errors import close_matches

        raise InterventionSpecError(
            f"unknown ablation {how!r}; valid: {', '.join(ABLATIONS)}.{close_matches(str(how), ABLATIONS)}"
        )
    return how  # type: ignore[return-value]


# --------------------------------------------------------------------------- reference sets


def reference_tokens(lab: Lab, reference: Iterable[Prompt] | str) -> ReferenceSet:
    """Token ids of reference prompts, with the session's BOS policy (a hashable tuple of tuples)."""
    if isinstance(reference, str):
        raise InterventionSpecError(
            f"reference must be a list of prompts, not one string ({reference!r}); write reference=[{reference!r}, ...]"
        )
    refs = tuple(tuple(int(t) for t in lab.tokens(p).tolist()) for p in reference)
    if not refs:
        raise InterventionSpecError("the reference set is empty; give at least one prompt")
    return refs


def permuted_prompts(lab: Lab, prompt: Prompt, n: int = 8, *, seed: int = 0) -> ReferenceSet:
    """A reference set of ``n`` reorderings of the prompt's own tokens (the BOS token stays first).

    A mean over it keeps which tokens the prompt contains and averages away their order: mean
    ablation against it asks whether the component's order-dependent output is needed. It is
    one distribution among many; when the claim is about a task, prefer prompts of that task
    (other month sequences for "January February March April").

    >>> [lab.to_str(p) for p in permuted_prompts(lab, "January February March April", 2)]  # doctest: +SKIP
    [['<bos>', ' April', ' February', 'January', ' March'], ['<bos>', ' April', ' February', ' March', 'January']]
    """
    toks = tuple(int(t) for t in lab.tokens(prompt).tolist())
    head = toks[:1] if lab.has_bos and toks[0] == lab.bridge.tokenizer.bos_token_id else ()
    body = toks[len(head):]
    distinct = math.factorial(len(body)) // math.prod(math.factorial(body.count(t)) for t in set(body))
    if distinct < 2:
        raise InterventionSpecError(
            f"{lab.str_tokens(prompt)} has no other ordering of its tokens; give a reference set of other prompts"
        )
    rng = random.Random(seed)
    seen = {body}
    out = []
    for _ in range(min(n, distinct - 1)):
        perm = body
        while perm in seen:
            perm = tuple(rng.sample(body, len(body)))
        seen.add(perm)
        out.append(head + perm)
    return tuple(out)


def needs_reference(edit: Edit) -> bool:
    """Whether ``edit`` writes reference activations, position by position (mean, resample)."""
    return isinstance(edit, Ablation) and edit.how in NEEDS_REFERENCE


def _no_reference_message(edits: Sequence[Edit]) -> str:
    e = next(e for e in edits if needs_reference(e))
    what = "the mean is taken over" if e.how == "mean" else "the replacement activation comes from"  # type: ignore[union-attr]
    return (
        f"'{e}' needs a reference set: {what} reference prompts, position by position, so the claim must say "
        "which distribution that is. Pass reference=[...] prompts with the same number of tokens as the prompt "
        "(e.g. other month sequences for 'January February March April'), or build one with "
        "permuted_prompts(lab, prompt); or use ablation='zero'."
    )


def _describe(edits: Sequence[Edit]) -> str:
    parts = []
    for how, group in itertools.groupby(edits, key=lambda e: e.how if isinstance(e, Ablation) else None):
        group = list(group)
        if how is None:
            parts += [str(e) for e in group]
        else:
            parts.append(f"{how} {format_components(e.component for e in group)}")
    return "; ".join(parts)


# --------------------------------------------------------------------------- hooks
#
# TransformerLens's patching helpers (transformer_lens.patching) run one forward pass per patched
# index, with the batch dimension reserved for a dataset. A sweep here puts one *intervention* per
# batch row instead (row r ablates component r), so the hooks below index the batch dimension
# themselves; they also check, per row, that each write changed something.

RowSelect = Union[slice, Tensor]


@dataclass
class _Write:
    edit: Edit
    rows: RowSelect
    labels: tuple[str, ...]
    """The intervention of each selected row, for error messages."""
    value: Tensor | None = None
    """Replacement for mean/resample ([pos, ...]; for a block, the residual delta to add)."""


def batched_fwd_hooks(
    lab: Lab,
    tokens: Int[Tensor, " pos"],
    interventions: Sequence[Intervention | None],
    *,
    forced: Sequence[int] = (),
    all_rows: bool = False,
) -> list[FwdHook]:
    """Hooks for a batch whose row ``r`` runs under ``interventions[r]`` (``None``: the clean model).

    Every row runs on the same ``tokens`` (``tokens.expand(len(interventions), -1)``). With
    ``all_rows=True`` the single intervention applies to every row of whatever batch is run.
    """
    run_len = int(tokens.shape[-1]) - len(forced)
    rows_of: dict[Intervention, list[int]] = defaultdict(list)  # equal interventions share their writes
    for r, iv in enumerate(interventions):
        if iv is not None:
            rows_of[iv].append(r)
    writes: dict[str, list[_Write]] = defaultdict(list)
    reads: list[str] = []  # hook points captured for a later write in the same pass (blocks' and norms' inputs)
    caches = _reference_caches(lab, rows_of, run_len, forced)
    for iv, rows in rows_of.items():
        select: RowSelect = slice(None) if all_rows else torch.tensor(rows, device=tokens.device)
        values = _reference_values(iv, forced, caches)
        for edit in iv.edits:
            target, source = _hook_points(edit)
            if source is not None and source not in reads:
                reads.append(source)
            writes[target].append(_Write(edit, select, (str(iv),) * (1 if all_rows else len(rows)), values.get(edit)))
    captured: dict[str, Tensor] = {}
    canary = HookCanary(lab, captured)
    hooks: list[FwdHook] = []
    for name in reads:
        readers = [w for ws in writes.values() for w in ws if _hook_points(w.edit)[1] == name]
        hooks.append((name, canary.counted(name, "read", readers, _capture_hook(name, captured))))
    for name, ws in writes.items():
        hooks.append((name, canary.counted(name, "write", ws, _write_hook(name, ws, captured, canary))))
    return hooks


def _hook_points(edit: Edit) -> tuple[str, str | None]:
    """(the hook point written, the hook point read in the same pass or None)."""
    c = edit.component
    if isinstance(edit, BypassNorm):
        return f"blocks.{c.layer}.{edit.norm}.hook_out", f"blocks.{c.layer}.{edit.norm}.hook_in"
    if c.kind == "block":
        return c.hook_points[1], c.hook_points[0]
    return c.hook_name, None


def _capture_hook(name: str, captured: dict[str, Tensor]) -> Callable[..., None]:
    def capture(act: Tensor, hook: object) -> None:
        captured[name] = act.detach().clone()

    return capture


def _write_hook(
    name: str, writes: list[_Write], captured: dict[str, Tensor], canary: HookCanary
) -> Callable[..., Tensor]:
    def write(act: Tensor, hook: object) -> Tensor:
        out = act.clone()
        for w in writes:
            edit, c = w.edit, w.edit.component
            if isinstance(edit, BypassNorm) or c.kind == "block":
                read = _hook_points(edit)[1]
                if read not in captured:  # its input's hook point did not fire before this one
                    raise canary.never_fired([read], before=name)
                source = captured[read][w.rows]  # type: ignore[index]
            index = (w.rows, slice(None), c.head) if c.kind == "head" else (w.rows,)
            old = act[index]
            if isinstance(edit, BypassNorm):
                new = source
            elif c.kind == "block":
                # Add in float64, then round once: the input plus the clean delta is then exactly
                # the clean output (rounding the delta to float32 first is off by an ulp).
                new = source if w.value is None else (source.double() + w.value).to(source.dtype)
            elif w.value is None:
                new = torch.zeros_like(old)
            else:
                new = w.value.to(old.dtype).expand_as(old)
            _check_changed(name, w, old, new)
            out[index] = new
        return out

    return write


class HookCanary:
    """Proof that an intervention's hooks fired: counts their calls per hook point, per forward pass.

    :func:`batched_fwd_hooks` wraps every hook it builds in a counting hook that carries its canary
    as ``.canary``. :meth:`Lab.run_batch <pytest_annotate.lab.Lab.run_batch>` calls
    :meth:`reset` on each distinct canary among the hooks it is given before the forward pass, and
    :meth:`verify` after it, so hooks built once and run twice are checked per pass. A hook point
    counts as fired when it was called at least once, whatever the batch: in a sweep whose rows
    mostly run clean, one call still wrote every row that asked for it.

    Why the count is needed: the change check (``changed nothing``) runs inside the hook, so a hook
    point that exists on the bridge but is never called would let an ablation pass as a no-op.
    Hooks run straight on the bridge (``lab.bridge.run_with_hooks``) are counted but not verified.

    >>> iv = Intervention((Ablation(Component("pos_embed"), "zero"),))  # the parser refuses it on Gemma
    >>> iv.run(lab, "1 2 3 4")                                          # doctest: +SKIP
    Traceback (most recent call last):
    ...
    pytest_annotate.errors.InterventionError: 'zero pos_embed' did not happen: the hook point it writes, hook_pos_embed (to edit pos_embed), was never called in the forward pass of gemma-3-270m-q4_k_m, so the run does not carry that edit (...). hook_pos_embed exists on the bridge, but gemma-3-270m-q4_k_m has no learned position embedding to pass through it (its positions are rotary, applied inside attention), so it is never called: there is no pos_embed to ablate. Ablate embed, or the attention layers that use the positions. A patch that never runs tests nothing, so this is an error, not a pass.
    """

    __slots__ = ("_captured", "_lab", "_targets", "calls")

    def __init__(self, lab: Lab, captured: dict[str, Tensor]) -> None:
        self._lab = lab
        self._captured = captured
        self._targets: dict[str, tuple[str, list[_Write]]] = {}
        self.calls: dict[str, int] = {}
        """Calls per hook point in the current (or last) forward pass."""

    def counted(self, name: str, role: str, writes: list[_Write], fn: Callable[..., Tensor | None]) -> _CountedHook:
        """``fn`` wrapped to count its calls; ``writes`` are the edits it serves (for the message)."""
        self._targets[name] = (role, writes)
        self.calls[name] = 0
        return _CountedHook(name, role, fn, self)

    def reset(self) -> None:
        """Start a forward pass: zero the counts, forget the activations read in the last one."""
        for name in self.calls:
            self.calls[name] = 0
        self._captured.clear()

    def verify(self) -> None:
        """End a forward pass: raise ``InterventionError`` if any hook point was not called."""
        silent = [name for name, n in self.calls.items() if n == 0]
        if silent:
            raise self.never_fired(silent)

    def never_fired(self, names: Sequence[str], *, before: str | None = None) -> InterventionError:
        """The error for hook points of this intervention that were not called in a forward pass."""
        lines = []
        when = f"before {before} was" if before else f"in the forward pass of {self._lab.model_id}"
        for name in names:
            role, writes = self._targets[name]
            if not writes:  # a hook counted by hand, serving no edit of this module
                lines.append(f"the {role} hook at {name} did not run: it was never called {when}")
                continue
            comps = format_components(w.edit.component for w in writes)
            what = f"the hook point it writes, {name} (to edit {comps})" if role == "write" else \
                f"the hook point it reads, {name} (the input it needs to edit {comps})"
            lines.append(f"{_edits_of(writes)} did not happen: {what}, was never called {when}")
        why = " ".join(dict.fromkeys(_never_fired_reason(self._lab, name) for name in names))
        return InterventionError(
            f"{'; '.join(lines)}, so the run does not carry that edit (were it the only edit, the run would be the "
            f"clean model's). {why} "
            "A patch that never runs tests nothing, so this is an error, not a pass."
        )


class _CountedHook:
    """A forward hook that counts its calls on its :class:`HookCanary` before running ``fn``."""

    __slots__ = ("canary", "fn", "name", "role")

    def __init__(self, name: str, role: str, fn: Callable[..., Tensor | None], canary: HookCanary) -> None:
        self.name, self.role, self.fn, self.canary = name, role, fn, canary

    def __call__(self, act: Tensor, hook: object) -> Tensor | None:
        self.canary.calls[self.name] += 1
        return self.fn(act, hook)

    def __repr__(self) -> str:  # TransformerLens names the torch hook after it
        return f"<counted {self.role} hook at {self.name}>"


def _edits_of(writes: Sequence[_Write], most: int = 3) -> str:
    """``'zero MLP0'`` or ``'skip L3' (part of 'keep L0-L2')`` ..., at most ``most`` of them."""
    seen: dict[str, None] = {}
    for w in writes:
        label = w.labels[0]
        seen[f"'{w.edit}'" + (f" (part of '{label}')" if label != str(w.edit) else "")] = None
    names = list(seen)
    more = f" and {len(names) - most} more" if len(names) > most else ""
    return ", ".join(names[:most]) + more


def _never_fired_reason(lab: Lab, name: str) -> str:
    """Why a hook point that exists on the bridge can be silent, and what to do instead."""
    model = lab.model_id
    point = lab.bridge.hook_dict.get(name)
    gated = getattr(lab.bridge, "_gated_hook_reason", lambda n: None)  # TransformerLens >= 4.3
    setter = gated(getattr(point, "name", None) or name)
    if setter:
        return (f"{name} is gated off on {model}: TransformerLens computes it only while cfg.{setter} is on. "
                f"Call lab.bridge.set_{setter}(True) before running, or ablate at a hook point that is always on.")
    if point is None:
        return (f"{name} is not a hook point of {model}'s bridge. Ablate components by name "
                "(all_components(lab, kind) lists this model's).")
    if name == "hook_pos_embed" or name.endswith(".hook_pos_embed"):
        positions = getattr(lab.cfg, "positional_embedding_type", "standard")
        return (f"{name} exists on the bridge, but {model} has no learned position embedding to pass through "
                f"it (its positions are {positions}, applied inside attention), so it is never called: there is "
                "no pos_embed to ablate. Ablate embed, or the attention layers that use the positions.")
    return (f"{name} exists on {model}'s bridge (TransformerLens 4 bridges expose hook points that not every "
            "architecture calls, e.g. hook_pos_embed on a rotary model), but this architecture's forward pass "
            f"never calls it. Ablate at a hook point that fires (lab.cache(prompt, names=[{name!r}]) says whether "
            "one does): name components with parse_components / all_components(lab, kind), which map them to "
            "this model's hook points.")


def _check_changed(name: str, w: _Write, old: Tensor, new: Tensor) -> None:
    dims = tuple(range(1, old.ndim))
    delta = (new - old).abs().amax(dim=dims)
    scale = old.abs().amax(dim=dims)
    unchanged = delta <= UNCHANGED_RTOL * scale
    if not bool(unchanged.any()):
        return
    r = int(unchanged.nonzero()[0, 0])
    label = w.labels[r] if r < len(w.labels) else w.labels[0]
    part_of = f" (part of '{label}')" if label != str(w.edit) else ""
    where = f"at {name}" + (f", batch row {int(w.rows[r])}" if isinstance(w.rows, Tensor) else "")
    raise InterventionError(
        f"'{w.edit}'{part_of} changed nothing {where}: the value written equals the value that was "
        f"there (largest change {float(delta[r]):.3g}; the activation's largest entry is {float(scale[r]):.3g}). "
        f"{_unchanged_hint(w.edit)} A patch that changes nothing tests nothing, so this is an error, not a pass."
    )


def _unchanged_hint(edit: Edit) -> str:
    if isinstance(edit, BypassNorm):
        return f"The input of {edit.norm} is already normalized here."
    if edit.component.kind == "pos_embed" and edit.how in NEEDS_REFERENCE:
        return ("Position embeddings depend only on the position, and reference prompts are position-aligned, so "
                f"a {edit.how} of pos_embed is always the prompt's own: ablate pos_embed with 'zero' instead.")
    if edit.how == "mean":
        return "The reference mean equals this prompt's activation: is the reference set only the prompt itself?"
    if edit.how == "resample":
        return "The resampled prompt gives the same activation: is it the prompt itself (or identical up to here)?"
    if edit.component.kind == "block":
        return f"Block {edit.component.layer} adds nothing to the residual stream on this prompt."
    return f"{edit.component}'s output is already zero on this prompt: it contributes nothing to ablate."


@dataclass(frozen=True)
class _ReferenceReads:
    """What the mean and resample edits of a batch read from their reference prompts: per reference set,
    its mean activation at every ablatable hook point; per drawn prompt, its clean cache."""

    means: dict[tuple[tuple[int, ...], ...], dict[str, Tensor]]
    drawn: dict[tuple[int, ...], object]


def _reference_caches(
    lab: Lab, interventions: Iterable[Intervention], run_len: int, forced: Sequence[int]
) -> _ReferenceReads:
    """Read the reference prompts these interventions draw on, once each, and check their lengths.

    A mean needs only the reference set's mean activation, so the set runs batched through
    :meth:`Lab.mean_activations` (one pass per 16 prompts, stopped before the unembedding, memoized
    for every component at once); a resample reads its one drawn prompt's cache.
    """
    means: dict[tuple[tuple[int, ...], ...], dict[str, Tensor]] = {}
    needed: dict[tuple[int, ...], set[str]] = defaultdict(set)
    for iv in interventions:
        edits = [e for e in iv.edits if needs_reference(e)]
        if not edits:
            continue
        bad = [(i, r) for i, r in enumerate(iv.reference) if len(r) != run_len]
        if bad:
            i, r = bad[0]
            raise InterventionSpecError(
                f"'{edits[0]}' averages activations position by position, so every reference prompt needs the "
                f"prompt's {run_len} tokens; reference {i} has {len(r)}: {lab.to_str(r)}. Give reference prompts of "
                f"the same shape (e.g. other sequences of as many words), and check each with lab.str_tokens(...)."
            )
        refs = _forced_references(iv, forced)
        if any(e.how == "mean" for e in edits):  # type: ignore[union-attr]
            means[refs] = lab.mean_activations(refs, _ablation_hook_names(lab))
        resampled = [e for e in edits if e.how == "resample"]  # type: ignore[union-attr]
        if resampled:
            needed[_drawn_prompt(iv, refs)] |= {n for e in resampled for n in e.component.hook_points}
    return _ReferenceReads(means, {p: _reference_cache(lab, p, sorted(names)) for p, names in needed.items()})


def _forced_references(iv: Intervention, forced: Sequence[int]) -> tuple[tuple[int, ...], ...]:
    """The reference prompts, teacher-forced like the run (the answer's tokens but the last appended)."""
    return tuple(r + tuple(forced) for r in iv.reference)


def _drawn_prompt(iv: Intervention, refs: Sequence[tuple[int, ...]]) -> tuple[int, ...]:
    """The reference prompt a resample ablation draws (seeded by the intervention)."""
    return refs[random.Random(iv.seed).randrange(len(refs))]


def _reference_values(iv: Intervention, forced: Sequence[int], reads: _ReferenceReads) -> dict[Edit, Tensor]:
    """Per mean/resample edit: the replacement activation (float64), from the reference prompts' clean runs."""
    refs = _forced_references(iv, forced)
    values: dict[Edit, Tensor] = {}
    for e in iv.edits:
        if needs_reference(e):
            if e.how == "mean":  # type: ignore[union-attr]
                values[e] = _component_value(reads.means[refs], e.component)
            else:
                cache = reads.drawn[_drawn_prompt(iv, refs)]
                values[e] = _component_value({n: cache[n][0] for n in e.component.hook_points}, e.component)  # type: ignore[index]
    return values


def _reference_cache(lab: Lab, tokens: tuple[int, ...], names: list[str]) -> object:
    """A drawn reference prompt's clean activations at ``names`` (memoized by Lab.cache)."""
    return lab.cache(torch.tensor(tokens, device=lab.device), names=names)


def _ablation_hook_names(lab: Lab) -> list[str]:
    """Every hook point an ablation of any component of this model reads (~5 per layer)."""
    kinds = ("block", "attn", "mlp", "embed") + (("pos_embed",) if lab.cfg.positional_embedding_type == "standard" else ())
    comps = [c for k in kinds for c in all_components(lab, k)] + [Component("head", layer, 0) for layer in range(lab.n_layers)]
    return sorted({n for c in comps for n in c.hook_points})


def _component_value(acts: Mapping[str, Tensor], c: Component) -> Tensor:
    """The component's output (float64) from activations without a batch dimension: a block's is its
    residual-stream output minus its input; a head's is its slice of ``hook_z``."""
    if c.kind == "block":
        pre, post = c.hook_points
        return acts[post].double() - acts[pre].double()
    act = acts[c.hook_name].double()
    return act[:, c.head] if c.kind == "head" else act


__all__ = [
    "ABLATIONS",
    "AblationName",
    "Ablation",
    "BypassNorm",
    "HookCanary",
    "Intervention",
    "InterventionSpecError",
    "ablate",
    "batched_fwd_hooks",
    "bypass_norm",
    "keep_only",
    "needs_reference",
    "permuted_prompts",
    "reference_tokens",
    "skip",
]
