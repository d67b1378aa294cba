"""The Lab: one loaded model, one tokenization policy, memoized forward passes.

Everything that runs the model goes through a :class:`Lab`, so that

* every prompt is tokenized with the same **BOS policy**: the tokenizer's BOS token is prepended
  whenever the model defines one (as TransformerLens's ``to_tokens`` does by default, and as the
  source notebooks ran their prompts); pass ``bos=False`` to a call to opt out;
* the same prompt under the same intervention is computed **once per session** (``run`` and
  ``cache`` are memoized by token ids and intervention key), and the number of requested and
  executed forward passes is counted (``lab.stats``);
* tests cannot leave hooks behind or change the weights unnoticed (``hook_leaks``,
  ``fingerprint``).

Nothing here knows about pytest: a Lab is usable from a notebook.

>>> lab = load_model("gemma-3-270m", device="cpu")            # doctest: +SKIP
>>> lab.str_tokens("January February")                        # doctest: +SKIP
['<bos>', 'January', ' February']
"""

from __future__ import annotations

import collections
import contextlib
import time
from collections.abc import Callable, Hashable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Union

import torch
from jaxtyping import Float, Int
from torch import Tensor

from pytest_annotate.errors import PromptError

if TYPE_CHECKING:
    from transformer_lens.ActivationCache import ActivationCache
    from transformer_lens.model_bridge import TransformerBridge

    from pytest_annotate.models.load import LoadTiming
    from pytest_annotate.models.spec import ResolvedModel

Prompt = Union[str, Sequence[int], Tensor]
"""A prompt: text (tokenized with the BOS policy), or token ids used as they are."""
FwdHook = tuple[str, Callable[..., Any]]


@dataclass
class ForwardPass:
    """One executed forward pass, as the benchmark needs it to replay the suite's forward floor."""

    batch: int
    positions: int
    kind: str = "logits"
    """``logits``: a full forward; ``cache``: ``run_with_cache`` keeping :attr:`names` (None: all);
    ``answer_logits``: only the last :attr:`answer_positions` positions are unembedded (sweeps);
    ``no_unembed``: stopped before the unembedding (head-role scores)."""
    names: tuple[str, ...] | None = None
    answer_positions: int | None = None
    repeat: bool = False
    """The identical pass (same tokens, intervention, hook names) had already run this session: the
    memo had evicted it. Repeats are overhead, not part of the forward floor."""
    seconds: float = 0.0
    """Wall time of the pass, hooks included (host time: on CUDA, until the last kernel is queued)."""


@dataclass
class ForwardStats:
    """Counts of forward passes: asked for by checks vs. actually run on the model."""

    requested: int = 0
    executed: int = 0
    executed_rows: int = 0
    """Rows (sequences) run: a batched pass of 72 rows counts 1 executed pass and 72 rows."""
    passes: list[ForwardPass] = field(default_factory=list)
    """Every executed pass, in order: the benchmark replays the non-repeats as the forward floor."""
    _seen: set[Hashable] = field(default_factory=set, repr=False)

    @contextlib.contextmanager
    def timed(self, tokens_shape: Sequence[int], identity: Hashable | None = None, **kind: Any) -> Iterator[ForwardPass]:
        """:meth:`record` a pass and time the ``with`` block that runs it."""
        fp = self.record(tokens_shape, identity, **kind)
        t0 = time.perf_counter()
        try:
            yield fp
        finally:
            fp.seconds = time.perf_counter() - t0

    def record(self, tokens_shape: Sequence[int], identity: Hashable | None = None, **kind: Any) -> ForwardPass:
        """Count one executed pass. ``identity`` names what it computed (None: not identifiable,
        counted as new); a pass whose identity already ran is marked a repeat."""
        batch, positions = int(tokens_shape[0]), int(tokens_shape[1])
        repeat = identity is not None and identity in self._seen
        if identity is not None:
            self._seen.add(identity)
        self.executed += 1
        self.executed_rows += batch
        fp = ForwardPass(batch, positions, repeat=repeat, **kind)
        self.passes.append(fp)
        return fp

    @property
    def repeats(self) -> int:
        """Executed passes that had already run once (memo evictions)."""
        return sum(p.repeat for p in self.passes)

    def snapshot(self) -> tuple[int, int, int]:
        return (self.requested, self.executed, self.executed_rows)


class _LRU:
    """A byte-bounded store of tensors, least recently used out first -- large entries before small.

    Why not a plain LRU: Gemma's logits are 1 MiB per position, so one check that runs a long prompt
    under many interventions (8 rows x 101 tokens x 3 ablations: 2.5 GB) would flush every short
    prompt that later checks ask for again, and hold the budget full of runs nobody asks for twice.
    So an entry over 1/4 of the budget is not kept at all (a check that needs it twice should keep
    it itself, e.g. in a module-scoped fixture), and entries over 1/16 of the budget are evicted
    first: long runs replace long runs, not the many cheap-to-keep short ones.
    """

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.bytes = 0
        self._items: collections.OrderedDict[Hashable, Any] = collections.OrderedDict()
        self._sizes: dict[Hashable, int] = {}

    @staticmethod
    def _size(value: Any) -> int:
        if isinstance(value, Tensor):
            return value.numel() * value.element_size()
        if isinstance(value, dict):
            return sum(_LRU._size(v) for v in value.values())
        return 0

    def get(self, key: Hashable) -> Any | None:
        if key in self._items:
            self._items.move_to_end(key)
            return self._items[key]
        return None

    def put(self, key: Hashable, value: Any) -> None:
        if key in self._items:
            del self._items[key]
            self.bytes -= self._sizes.pop(key)
        size = self._size(value)
        if size > self.max_bytes // 4:
            return
        self._items[key] = value
        self._sizes[key] = size
        self.bytes += size
        large = self.max_bytes // 16
        while self.bytes > self.max_bytes:
            older = [k for k in self._items if k != key]
            victim = next((k for k in older if self._sizes[k] > large), older[0])
            del self._items[victim]
            self.bytes -= self._sizes.pop(victim)

    def clear(self) -> None:
        self._items.clear()
        self._sizes.clear()
        self.bytes = 0


class Lab:
    """A loaded model with one tokenization policy and memoized runs.

    Args:
        bridge: the TransformerLens 4.x ``TransformerBridge``.
        resolved: what was loaded (name, model id, source).
        device: the concrete device the model is on.
        timing: how long each load stage took.
        memo_bytes: the most bytes of logits and activations kept for re-use, together
            (least recently used first out, larger entries first). Gemma's logits are 1 MiB per
            position: a run over 64 positions is not kept, and a check that asks for it again
            re-runs it (counted in ``stats.repeats``).
    """

    def __init__(
        self,
        bridge: TransformerBridge,
        resolved: ResolvedModel,
        *,
        device: str,
        timing: LoadTiming | None = None,
        memo_bytes: int = 256 << 20,
    ) -> None:
        self.bridge = bridge
        self.resolved = resolved
        self.device = device
        self.timing = timing
        self.stats = ForwardStats()
        # One budget for both: the peak memory of a suite is weights + this + one forward's working set.
        self._memo = _LRU(memo_bytes)
        self._full_caches: set[tuple[int, ...]] = set()
        self._prompts: dict[tuple[int, ...], None] = {}
        # Some bridge components attach their own hooks on the first forward: warm up first, so
        # that the baseline holds them and only a test's hooks count as leaks.
        with torch.inference_mode():
            self.bridge(self.tokens([0]))
        self._hook_baseline = self._hook_counts()
        self._fingerprint = self.fingerprint()

    # ------------------------------------------------------------------ facts about the model
    @property
    def cfg(self) -> Any:
        return self.bridge.cfg

    @property
    def model_id(self) -> str:
        return self.resolved.model_id

    @property
    def n_layers(self) -> int:
        return int(self.cfg.n_layers)

    @property
    def n_heads(self) -> int:
        return int(self.cfg.n_heads)

    @property
    def d_model(self) -> int:
        return int(self.cfg.d_model)

    @property
    def d_vocab(self) -> int:
        return int(self.cfg.d_vocab)

    @property
    def n_ctx(self) -> int:
        return int(self.cfg.n_ctx)

    @property
    def processing(self) -> str:
        return self.resolved.spec.processing

    @property
    def dtype(self) -> torch.dtype:
        return next(self.bridge.parameters()).dtype

    @property
    def has_bos(self) -> bool:
        """Whether text prompts get a BOS token by default: TransformerLens's ``default_prepend_bos``
        (see :meth:`bos_policy`), if the tokenizer has a BOS token."""
        return self.bridge.tokenizer.bos_token_id is not None and bool(self.cfg.default_prepend_bos)

    @property
    def bos_token_id(self) -> int:
        """The id of the BOS token text prompts get (an embedded model's plain-text BOS where its
        tokenizer declares another one, see ``EmbeddedModel.bos_token``)."""
        override = self.resolved.embedded.bos_token if self.resolved.embedded else None
        if override is not None:
            return int(self.bridge.tokenizer.convert_tokens_to_ids(override))
        if self.bridge.tokenizer.bos_token_id is None:
            raise PromptError(f"{self.model_id}'s tokenizer defines no BOS token")
        return int(self.bridge.tokenizer.bos_token_id)

    @contextlib.contextmanager
    def bos_policy(self, prepend: bool) -> Iterator[Lab]:
        """Inside the block, text prompts get a BOS token (``True``) or none (``False``) unless a call
        says otherwise: the model's ``cfg.default_prepend_bos``, set as TransformerLens sets it, and
        restored on exit. This is how a behaviour runs in the BOS policy its source used
        (``@pytest.mark.model("pythia-70m", bos=True)``: TransformerLens 4 turns Pythia's BOS off, the
        legacy ``HookedTransformer`` of 2023 notebooks prepended it). Memoized runs are keyed by token
        ids, so both policies share one memo.

        >>> with lab.bos_policy(True):                            # doctest: +SKIP
        ...     lab.str_tokens("A B")
        ['<|endoftext|>', 'A', ' B']
        """
        if not isinstance(prepend, bool):
            raise PromptError(f"bos_policy({prepend!r}): give True (prepend a BOS token) or False (none)")
        if prepend and self.bridge.tokenizer.bos_token_id is None:
            raise PromptError(f"bos_policy(True), but {self.model_id}'s tokenizer defines no BOS token")
        before = self.cfg.default_prepend_bos
        self.cfg.default_prepend_bos = prepend
        try:
            yield self
        finally:
            self.cfg.default_prepend_bos = before

    def __repr__(self) -> str:
        return f"Lab({self.model_id!r}, device={self.device!r}, dtype={str(self.dtype).removeprefix('torch.')})"

    # ------------------------------------------------------------------ tokenization
    def tokens(self, prompt: Prompt, *, bos: bool | None = None) -> Int[Tensor, " pos"]:
        """Token ids of a prompt, on the model's device, with the session's BOS policy.

        Text gets the BOS token prepended when the model has one (``bos=None``), unless
        ``bos=False``. Token ids (a list or a tensor) are used as given.
        """
        if isinstance(prompt, str):
            if not prompt:
                raise PromptError("the prompt is empty; give at least one character of text")
            use_bos = self.has_bos if bos is None else bos
            if use_bos and self.bridge.tokenizer.bos_token_id is None:
                raise PromptError(f"bos=True, but {self.model_id}'s tokenizer defines no BOS token")
            bos_override = self.resolved.embedded.bos_token if self.resolved.embedded else None
            if use_bos and bos_override is not None:
                # The model's declared BOS is wrong for plain text (see EmbeddedModel.bos_token).
                bos_id = self.bridge.tokenizer.convert_tokens_to_ids(bos_override)
                body = self.bridge.to_tokens(prompt, prepend_bos=False, truncate=False)[0]
                toks = torch.cat([torch.tensor([bos_id], device=body.device), body])
            else:
                toks = self.bridge.to_tokens(prompt, prepend_bos=use_bos, truncate=False)[0]
        else:
            toks = torch.as_tensor(prompt, dtype=torch.long).flatten()
            if toks.numel() == 0:
                raise PromptError("the prompt has no tokens; give at least one token id")
            bad = toks[(toks < 0) | (toks >= self.d_vocab)]
            if bad.numel():
                raise PromptError(
                    f"token id {int(bad[0])} is out of range for {self.model_id}: valid ids are 0..{self.d_vocab - 1}"
                )
        if toks.numel() > self.n_ctx:
            raise PromptError(
                f"the prompt is {toks.numel()} tokens long, longer than {self.model_id}'s context of {self.n_ctx}"
            )
        return toks.to(self.device)

    def str_tokens(self, prompt: Prompt, *, bos: bool | None = None) -> list[str]:
        """The prompt's tokens as strings, as the model sees them."""
        return [self.bridge.tokenizer.decode([t]) for t in self.tokens(prompt, bos=bos).tolist()]

    def answer_tokens(self, answer: str | int | Sequence[int]) -> tuple[int, ...]:
        """The token ids of an answer (no BOS). Multi-token answers are allowed here.

        >>> lab.answer_tokens(" May")        # doctest: +SKIP
        (5846,)
        """
        if isinstance(answer, int):
            answer = [answer]
        if not isinstance(answer, str):
            ids = tuple(int(t) for t in answer)
            if not ids or any(not 0 <= t < self.d_vocab for t in ids):
                raise PromptError(f"answer token ids {ids} are not valid ids 0..{self.d_vocab - 1}")
            return ids
        if not answer:
            raise PromptError("the answer is empty; give the text of the expected continuation, e.g. ' May'")
        ids = tuple(self.bridge.tokenizer.encode(answer, add_special_tokens=False))
        if not ids:
            raise PromptError(f"the answer {answer!r} tokenizes to nothing with {self.model_id}'s tokenizer")
        unk = self.bridge.tokenizer.unk_token_id
        if unk is not None and unk in ids:
            raise PromptError(
                f"the answer {answer!r} is not in {self.model_id}'s vocabulary: it tokenizes to "
                f"{self.to_str(ids)} with the unknown token {self.bridge.tokenizer.unk_token!r}"
            )
        return ids

    def to_str(self, ids: Iterable[int]) -> list[str]:
        return [self.bridge.tokenizer.decode([int(t)]) for t in ids]

    def single_token(self, token: str | int) -> int:
        """The id of a one-token string; a clear error for multi-token or unknown strings."""
        ids = self.answer_tokens(token)
        if len(ids) != 1:
            raise PromptError(
                f"{token!r} is {len(ids)} tokens for {self.model_id} ({self.to_str(ids)}), not one; "
                "give a single token"
            )
        return ids[0]

    # ------------------------------------------------------------------ running
    def run(
        self,
        prompt: Prompt,
        *,
        bos: bool | None = None,
        fwd_hooks: Sequence[FwdHook] = (),
        key: Hashable | None = None,
    ) -> Float[Tensor, "pos vocab"]:
        """Logits of one prompt, memoized by ``(tokens, key)``.

        Without hooks the key is the clean run. With hooks, pass a ``key`` that identifies the
        intervention (interventions do this for you); without a key the run is not memoized.
        """
        toks = self.tokens(prompt, bos=bos)
        memo_key = (tuple(toks.tolist()), key if fwd_hooks else None)
        memoizable = not fwd_hooks or key is not None
        self.stats.requested += 1
        if memoizable:
            hit = self._memo.get(("logits", memo_key))
            if hit is not None:
                return hit
        logits = self.run_batch(toks[None], fwd_hooks=fwd_hooks, _identity=("run", memo_key) if memoizable else None)[0]
        if memoizable:
            self._memo.put(("logits", memo_key), logits)
        return logits

    def run_batch(
        self,
        tokens: Int[Tensor, "batch pos"],
        *,
        fwd_hooks: Sequence[FwdHook] = (),
        answer_positions: int | None = None,
        lengths: Sequence[int] | None = None,
        _identity: Hashable | None = None,
    ) -> Float[Tensor, "batch pos vocab"]:
        """One forward pass on a batch of equal-length token rows (not memoized, but counted).

        ``answer_positions``: say so when a hook unembeds only the last N positions (for the
        benchmark's replay of the forward floor; it does not change what runs). ``lengths``: each
        row's real token count when the rows are right-padded, so that :meth:`prompts` (what
        ``--parity`` re-runs and reports) holds the sequences the checks asked for, not their padding.

        A hook function may carry a ``canary`` (interventions' hooks do, see
        :class:`~pytest_annotate.interventions.ablations.HookCanary`): it is reset before the pass
        and verified after it, which raises when one of its hook points was never called.
        """
        kind = {} if answer_positions is None else {"kind": "answer_logits", "answer_positions": answer_positions}
        self._note_prompts(tokens, lengths)
        canaries = {id(c): c for _, fn in fwd_hooks if (c := getattr(fn, "canary", None)) is not None}
        for canary in canaries.values():
            canary.reset()
        with self.stats.timed(tokens.shape, _identity, **kind), torch.inference_mode():
            if fwd_hooks:
                # run_with_hooks removes its hooks on exit, even when the forward raises.
                out = self.bridge.run_with_hooks(tokens.to(self.device), fwd_hooks=list(fwd_hooks))
            else:
                out = self.bridge(tokens.to(self.device))
        for canary in canaries.values():
            canary.verify()
        return out.detach()

    def cache(
        self, prompt: Prompt, *, names: Iterable[str] | None = None, bos: bool | None = None
    ) -> ActivationCache:
        """Activations of one prompt, memoized per prompt and hook name.

        Pass ``names`` to keep only the hook points a check needs (memory: a full Gemma cache holds
        ~1,100 tensors). Names already cached for this prompt are not recomputed; only missing
        names trigger a forward pass.
        """
        from transformer_lens.ActivationCache import ActivationCache

        toks = self.tokens(prompt, bos=bos)
        tkey = tuple(toks.tolist())
        self.stats.requested += 1
        have: dict[str, Tensor] = self._memo.get(("cache", tkey)) or {}
        complete = bool(have) and tkey in self._full_caches  # the flag outlives an evicted entry
        wanted = None if names is None else list(dict.fromkeys(names))
        if wanted is not None:
            hook_dict = self.bridge.hook_dict  # a property that rebuilds the dict on every access
            unknown = [n for n in wanted if n not in hook_dict]
            if unknown:
                raise PromptError(
                    f"unknown hook point(s) {unknown} for {self.model_id}; e.g. "
                    f"{', '.join(list(hook_dict)[:6])}, ... ({len(hook_dict)} in all)"
                )
            gated = getattr(self.bridge, "_gated_hook_reason", lambda name: None)  # TransformerLens >= 4.3
            for n in wanted:
                setter = gated(n)
                if setter:
                    raise PromptError(
                        f"{n} is off on {self.model_id} (TransformerLens computes it only on request); "
                        f"call lab.bridge.set_{setter}(True) first, or cache a hook point that is on"
                    )
        missing = [] if complete else (wanted if wanted is not None else None)
        if missing is not None:
            missing = [n for n in missing if n not in have]
        if missing is None or missing:
            names_key = None if missing is None else tuple(sorted(missing))
            names_filter = None if missing is None else (lambda n, _m=frozenset(missing): n in _m)
            self._note_prompts(toks[None])
            with self.stats.timed((1, toks.shape[0]), ("cache", tkey, names_key), kind="cache", names=names_key), \
                    torch.inference_mode():
                logits, new = self.bridge.run_with_cache(toks[None], names_filter=names_filter)
            have = {**have, **{k: v.detach() for k, v in new.items()}}
            self._memo.put(("cache", tkey), have)
            if missing is None:
                self._full_caches.add(tkey)
            self._memo.put(("logits", (tkey, None)), logits[0].detach())
        if wanted is None:
            return ActivationCache(have, self.bridge)
        silent = [n for n in wanted if n not in have]
        if silent:
            raise PromptError(
                f"hook point(s) {silent} exist on {self.model_id} but never fire in its forward pass "
                "(the architecture does not use them: e.g. a rotary model has no hook_pos_embed, and "
                "hook_result needs cfg.use_attn_result); cache hook points that fire, e.g. "
                f"{', '.join(sorted(have)[:4]) or 'blocks.0.hook_resid_post'}"
            )
        return ActivationCache({n: have[n] for n in wanted}, self.bridge)

    def capture(
        self, tokens: Int[Tensor, "batch pos"], names: Sequence[str], *, lengths: Sequence[int] | None = None
    ) -> dict[str, Float[Tensor, "batch ..."]]:
        """Activations of a batch of equal-length rows at ``names``, in one pass that stops before the
        unembedding (not memoized, but counted). ``lengths``: as for :meth:`run_batch`.

        For reads that do not need the logits: with Gemma's 262,144-token vocabulary the unembedding
        is most of a short prompt's forward pass. Raises :class:`PromptError` naming the hook points
        that never fired.

        >>> acts = lab.capture(torch.tensor([[2, 9, 7], [2, 4, 5]]), ["blocks.0.hook_resid_post"])  # doctest: +SKIP
        >>> acts["blocks.0.hook_resid_post"].shape                                                   # doctest: +SKIP
        torch.Size([2, 3, 640])
        """
        from transformer_lens.model_bridge.exceptions import StopAtLayerException

        captured: dict[str, Tensor] = {}

        def keeper(name: str) -> Callable[..., None]:
            # keyed by the name asked for: an alias's HookPoint may carry its canonical name
            def keep(tensor: Tensor, hook: Any) -> None:
                captured[name] = tensor.detach().clone()

            return keep

        def stop(tensor: Tensor, hook: Any) -> None:
            # the exception TransformerLens's own run_with_hooks(stop_at_layer=...) raises and catches
            raise StopAtLayerException(tensor)

        hooks = [(n, keeper(n)) for n in dict.fromkeys(names)] + [("unembed.hook_in", stop)]
        self._note_prompts(tokens, lengths)
        with self.stats.timed(tokens.shape, kind="no_unembed"), torch.inference_mode():
            self.bridge.run_with_hooks(tokens.to(self.device), fwd_hooks=hooks)
        silent = [n for n in names if n not in captured]
        if silent:
            raise PromptError(f"hook point(s) {silent} exist on {self.model_id} but never fired before the unembedding")
        return captured

    def mean_activations(
        self, rows: Sequence[Sequence[int]], names: Sequence[str], *, chunk: int = 16
    ) -> dict[str, Float[Tensor, "pos ..."]]:
        """The mean over ``rows`` (equal-length token ids) of the activations at ``names``, in float64.

        What a mean ablation writes. The rows run batched, ``chunk`` at a time, each pass stopped
        before the unembedding (:meth:`capture`); the means are memoized by rows and names, so
        ablations of different components over the same reference set share one read of it.
        """
        ref = tuple(tuple(int(t) for t in r) for r in rows)
        if not ref or len({len(r) for r in ref}) != 1:
            raise PromptError(f"mean_activations needs one or more rows of equal length, not lengths {[len(r) for r in ref]}")
        key = ("mean_activations", ref, tuple(sorted(set(names))))
        self.stats.requested += 1
        hit = self._memo.get(key)
        if hit is not None:
            return hit
        sums: dict[str, Tensor] = {}
        for i in range(0, len(ref), chunk):
            acts = self.capture(torch.tensor(ref[i : i + chunk], device=self.device), names)
            for n, a in acts.items():
                part = a.double().sum(0)
                sums[n] = part if n not in sums else sums[n] + part
        means = {n: v / len(ref) for n, v in sums.items()}
        self._memo.put(key, means)
        return means

    @property
    def prompts(self) -> list[tuple[int, ...]]:
        """Every distinct token sequence this Lab has run (with or without hooks), in first-run order.

        What the parity oracle (:mod:`pytest_annotate.models.parity`) re-runs on the unprocessed
        HuggingFace model. Kept across :meth:`clear_memo`.
        """
        return list(self._prompts)

    def _note_prompts(self, tokens: Tensor, lengths: Sequence[int] | None = None) -> None:
        rows = tokens.tolist()
        for r, row in enumerate(rows):
            self._prompts.setdefault(tuple(row if lengths is None else row[: lengths[r]]), None)

    def clear_memo(self) -> None:
        """Forget memoized logits and activations (the counts are kept)."""
        self._memo.clear()
        self._full_caches.clear()

    # ------------------------------------------------------------------ isolation
    def _hook_counts(self) -> dict[str, int]:
        """Hooks per hook point, keyed by its names (aliases joined: ``blocks.0.hook_in = ...``)."""
        names: dict[int, list[str]] = {}
        points = {}
        for name, hp in self.bridge.hook_dict.items():
            names.setdefault(id(hp), []).append(name)
            points[id(hp)] = hp
        counts = {}
        for key, hp in points.items():
            n = len(hp._forward_hooks) + len(hp._forward_pre_hooks) + len(hp._backward_hooks)
            n += len(getattr(hp, "_backward_pre_hooks", {}))
            if n:
                counts[" = ".join(sorted(names[key], key=lambda s: ("hook_in" in s or "hook_out" in s, s)))] = n
        return counts

    def hook_leaks(self) -> list[str]:
        """Hook points that carry more hooks now than right after loading (empty when clean)."""
        now = self._hook_counts()
        return sorted(n for n, c in now.items() if c > self._hook_baseline.get(n, 0))

    def remove_leaked_hooks(self) -> None:
        """Reset the bridge's hooks, so that one test's leak does not spread to the next."""
        self.bridge.reset_hooks(including_permanent=False)

    def fingerprint(self) -> tuple[float, ...]:
        """A cheap fingerprint of the weights: a strided sum of each parameter (in float64)."""
        with torch.inference_mode():
            sums = [p.detach().flatten()[:: 1 + p.numel() // 4096].sum(dtype=torch.float64)
                    for p in self.bridge.parameters()]
            return tuple(torch.stack([s.to(sums[0].device) for s in sums]).tolist()) if sums else ()

    def weights_changed(self) -> list[str]:
        """Names of parameters whose fingerprint differs from the one taken at load."""
        now = self.fingerprint()
        names = [n for n, _ in self.bridge.named_parameters()]
        return [n for n, a, b in zip(names, self._fingerprint, now, strict=True) if a != b and not (a != a and b != b)]
