"""The processed-weights cache (pytest_annotate.models.processed) gives the very bridge the normal path gives.

"The same" is checked as an object graph, not only as outputs: :func:`describe` walks the bridge
and the wrapped HuggingFace model and records every parameter and buffer (path, class, dtype,
shape, strides, storage offset, requires_grad, which tensors share storage, and a hash of the
bytes), every module's attributes (flags, hook functions, attached tensors), the hook registry
and aliases, the config and the adapter's state. On top of that the logits and every
``run_with_cache`` activation of several prompts must be bit-identical.

Gemma 3 270M is compared in subprocesses (three loads of a 1.7 GB model, one at a time, so this
suite's own memory peak is not raised); the tiny GPT-2 fixture in-process.
"""

from __future__ import annotations

import contextlib
import hashlib
import inspect
import json
import os
import subprocess
import sys
import tempfile
import types
from pathlib import Path
from typing import Any

import pytest
import torch

from pytest_annotate.models import processed as fastload

PROMPTS = [
    "The capital of Ireland is Dublin. The capital of France is",
    "January February March April",
    "When John and Mary went to the store, John gave the bag to",
]


# --------------------------------------------------------------------------- describing a bridge


def _sha(t: torch.Tensor) -> str:
    t = t.detach()
    if t.device.type != "cpu":
        t = t.cpu()
    t = t.contiguous()
    if t.numel() == 0:
        return "empty"
    return hashlib.sha256(memoryview(t.reshape(-1).view(torch.uint8).numpy()).cast("B")).hexdigest()[:20]


class _Describer:
    """Turns a bridge into nested plain data; identical bridges give equal data."""

    SKIP_ATTRS = {"_parameters", "_buffers", "_modules", "training"}

    def __init__(self) -> None:
        self.storage_ids: dict[int, int] = {}
        self.module_paths: dict[int, str] = {}
        self.seen: set[int] = set()
        self.hashes: dict[tuple[Any, ...], str] = {}

    def tensor(self, t: torch.Tensor) -> dict[str, Any]:
        ptr = t.untyped_storage().data_ptr() if t.untyped_storage().nbytes() else -1
        group = self.storage_ids.setdefault(ptr, len(self.storage_ids))
        return {
            "class": type(t).__name__, "dtype": str(t.dtype), "device": t.device.type, "shape": list(t.shape),
            "stride": list(t.stride()), "offset": t.storage_offset(), "requires_grad": t.requires_grad,
            "storage": group, "storage_bytes": t.untyped_storage().nbytes(), "sha": self.sha(t),
        }

    def sha(self, t: torch.Tensor) -> str:
        # One tensor is reachable by many module paths; hash each view once.
        key = (t.untyped_storage().data_ptr(), t.storage_offset(), tuple(t.shape), t.stride(), t.dtype)
        if key not in self.hashes:
            self.hashes[key] = _sha(t)
        return self.hashes[key]

    def value(self, v: Any, depth: int = 0) -> Any:
        if v is None or isinstance(v, (bool, int, float, str)):
            return v
        if isinstance(v, torch.Tensor):
            return self.tensor(v)
        if isinstance(v, (torch.dtype, torch.device, torch.Size)):
            return str(v)
        if isinstance(v, torch.nn.Module):
            return f"module:{self.module_paths.get(id(v), type(v).__name__)}"
        if isinstance(v, (types.FunctionType, types.MethodType, types.BuiltinFunctionType)):
            return f"fn:{getattr(v, '__qualname__', repr(v))}"
        if depth > 4:
            return f"<{type(v).__name__}>"
        if isinstance(v, (list, tuple)):
            return [self.value(x, depth + 1) for x in v]
        if isinstance(v, (set, frozenset)):
            return sorted(repr(self.value(x, depth + 1)) for x in v)
        if isinstance(v, dict):
            # Hook dicts are keyed by a process-wide handle counter: compare their values in order.
            if v and all(isinstance(k, int) for k in v):
                return [self.value(x, depth + 1) for x in v.values()]
            return {str(k): self.value(x, depth + 1) for k, x in v.items()}
        if hasattr(v, "__dict__") and type(v).__module__.split(".")[0] in ("transformer_lens", "pytest_annotate"):
            if id(v) in self.seen:
                return f"<seen {type(v).__name__}>"
            self.seen.add(id(v))
            return {"__class__": type(v).__name__, **{k: self.value(x, depth + 1) for k, x in sorted(vars(v).items())}}
        if callable(v):
            return f"callable:{type(v).__name__}:{getattr(v, '__qualname__', '')}"
        return f"<{type(v).__name__}>"

    def module(self, m: torch.nn.Module) -> dict[str, Any]:
        out: dict[str, Any] = {"class": type(m).__name__, "training": m.training}
        for name, p in m._parameters.items():
            out[f"param:{name}"] = None if p is None else self.tensor(p)
        for name, b in m._buffers.items():
            out[f"buffer:{name}"] = None if b is None else self.tensor(b)
        out["non_persistent"] = sorted(m._non_persistent_buffers_set)
        for name, v in sorted(vars(m).items()):
            if name not in self.SKIP_ATTRS:
                out[f"attr:{name}"] = self.value(v)
        return out

    def bridge(self, bridge: Any) -> dict[str, Any]:
        roots = [("bridge", bridge), ("hf", bridge.original_model)]
        for root, mod in roots:
            for path, m in mod.named_modules(remove_duplicate=False):
                self.module_paths.setdefault(id(m), f"{root}:{path}")
        # hook_dict fills a memo (_block_alias_cache): read it first so both bridges are described alike.
        hooks = sorted(bridge.hook_dict.items())
        out: dict[str, Any] = {"hook_dict": {k: (type(h).__name__, h.name) for k, h in hooks}}
        for root, mod in roots:
            for path, m in mod.named_modules(remove_duplicate=False):
                out[f"{root}:{path}"] = self.module(m)
        out["cfg"] = {k: self.value(v) for k, v in sorted(vars(bridge.cfg).items()) if not k.startswith("_bridge")}
        out["adapter"] = {k: self.value(v) for k, v in sorted(vars(bridge.adapter).items())
                          if k not in ("cfg", "component_mapping")}
        out["state_dict"] = {k: self.tensor(v) for k, v in bridge.state_dict().items()}
        out["tokenizer"] = describe_tokenizer(bridge.tokenizer)
        return out


def describe_tokenizer(tok: Any) -> dict[str, Any]:
    backend = getattr(tok, "backend_tokenizer", None)
    return {
        "class": type(tok).__name__,
        "backend": hashlib.sha256(backend.to_str().encode()).hexdigest() if backend is not None else None,
        "init_kwargs": {k: repr(v) for k, v in sorted(tok.init_kwargs.items())},
        "special": {k: repr(v) for k, v in sorted(tok.special_tokens_map.items())},
        "add_bos_token": getattr(tok, "add_bos_token", None), "add_eos_token": getattr(tok, "add_eos_token", None),
        "padding_side": tok.padding_side, "truncation_side": tok.truncation_side, "len": len(tok),
        "model_max_length": tok.model_max_length,
        "encodings": [tok(p)["input_ids"] for p in PROMPTS] + [tok(PROMPTS)["input_ids"]],
    }


def describe(bridge: Any) -> dict[str, Any]:
    return json.loads(json.dumps(_Describer().bridge(bridge), default=str))


def outputs(bridge: Any) -> dict[str, str]:
    """Hashes of the logits and every cached activation of each prompt."""
    out = {}
    with torch.no_grad():
        for i, prompt in enumerate(PROMPTS):
            out[f"{i}:logits"] = _sha(bridge(prompt))
            logits, cache = bridge.run_with_cache(prompt)
            out[f"{i}:cache-logits"] = _sha(logits)
            for name in cache.keys():
                out[f"{i}:{name}"] = _sha(cache[name])
    return out


def diff(a: Any, b: Any, path: str = "", limit: int = 20) -> list[str]:
    """The first ``limit`` places where two descriptions differ."""
    found: list[str] = []

    def walk(x: Any, y: Any, p: str) -> None:
        if len(found) >= limit:
            return
        if isinstance(x, dict) and isinstance(y, dict):
            for k in sorted(set(x) | set(y)):
                if k not in x or k not in y:
                    found.append(f"{p}/{k}: only in {'normal' if k in x else 'fast'}")
                else:
                    walk(x[k], y[k], f"{p}/{k}")
        elif isinstance(x, list) and isinstance(y, list) and len(x) == len(y):
            for i, (u, v) in enumerate(zip(x, y)):
                walk(u, v, f"{p}[{i}]")
        elif x != y:
            found.append(f"{p}: {x!r} != {y!r}")

    walk(a, b, path)
    return found


# --------------------------------------------------------------------------- loading


def _load_hf(source: str | Path, dtype: torch.dtype = torch.float32, fast_tokenizer: bool = False) -> tuple[Any, Any]:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = fastload.load_tokenizer(str(source)) if fast_tokenizer else AutoTokenizer.from_pretrained(str(source))
    model = AutoModelForCausalLM.from_pretrained(str(source), dtype=dtype, attn_implementation="eager")
    return model, tok


def normal_bridge(source: str | Path, dtype: torch.dtype = torch.float32) -> Any:
    """What pytest_annotate.models.load did before fastload."""
    from transformer_lens.model_bridge import TransformerBridge

    model, tok = _load_hf(source, dtype)
    bridge = TransformerBridge.boot_transformers(str(source), hf_model=model, tokenizer=tok, device="cpu", dtype=dtype)
    bridge.enable_compatibility_mode(disable_warnings=True)
    return bridge.eval()


def fast_bridge(source: str | Path, cache_dir: Path | None, dtype: torch.dtype = torch.float32,
                hf: tuple[Any, Any] | None = None, mmap: bool = True) -> fastload.BootResult:
    """What pytest_annotate.models.load does with fastload wired in."""
    model, tok = hf or _load_hf(source, dtype, fast_tokenizer=True)
    result = fastload.boot(source, model, tok, device="cpu", dtype=dtype, processing="compat", cache_dir=cache_dir,
                           mmap=mmap)
    result.bridge.eval()
    return result


def assert_same_bridge(normal: Any, fast: Any) -> None:
    """Both bridges must be unused: a forward pass leaves captured state on the modules."""
    differences = diff(describe(normal), describe(fast))
    assert not differences, "the fast-loaded bridge differs from the normal one:\n" + "\n".join(differences)
    assert sorted(normal.hook_dict) == sorted(fast.hook_dict)
    a, b = normal.state_dict(), fast.state_dict()
    assert list(a) == list(b)
    for k in a:
        assert torch.equal(a[k], b[k]) and a[k].stride() == b[k].stride(), k
    with torch.no_grad():
        for prompt in PROMPTS:
            la, ca = normal.run_with_cache(prompt)
            lb, cb = fast.run_with_cache(prompt)
            assert (la - lb).abs().max().item() == 0 and torch.equal(la, lb), prompt
            assert list(ca.keys()) == list(cb.keys())
            for name in ca.keys():
                assert torch.equal(ca[name], cb[name]), (prompt, name)
            assert torch.equal(normal(prompt), fast(prompt))


# --------------------------------------------------------------------------- the pins


def test_pinned_transformer_lens() -> None:
    """Fails when TransformerLens changes a method whose steps the warm path replays.

    If it fails: read the new source of each method named below, check that
    ``fastload.install_processed`` still does what ``process_weights`` does after computing the
    processed dict (and ``enable_compatibility_mode`` around it), run this file, then update
    ``PINNED_SOURCES``. Until then the cache is bypassed, so loads are slow but correct.
    The same goes for ``DRAINED_SOURCES`` (re-read ``fastload._draining_passes``); until then the
    first load of a model just takes more memory.
    """
    from transformer_lens.model_bridge import TransformerBridge

    changed = {k: v for k, v in fastload.source_hashes().items() if fastload.PINNED_SOURCES[k] != v}
    assert not changed, f"TransformerLens changed {sorted(changed)}: re-verify fastload (see this test's docstring)"
    drained = fastload.source_hashes(fastload.DRAINED_SOURCES)
    changed = {k: v for k, v in drained.items() if fastload.DRAINED_SOURCES[k] != v}
    assert not changed, f"TransformerLens changed {sorted(changed)}: re-verify fastload (see this test's docstring)"
    # SPLIT_SOURCES: re-run test_embedded_fast_load_is_bit_identical and the piecewise tests below.
    assert fastload._split_hash() == fastload.SPLIT_SOURCES["weight_processing.py"], \
        "TransformerLens changed weight_processing.py: re-verify fastload._process_piecewise (see this test's docstring)"
    defaults = {
        k: p.default for k, p in inspect.signature(TransformerBridge.enable_compatibility_mode).parameters.items()
        if k in fastload.COMPAT_FLAGS
    }
    assert defaults == fastload.COMPAT_FLAGS, "enable_compatibility_mode's default processing changed"


def test_replayed_internals_exist() -> None:
    from transformer_lens.model_bridge import TransformerBridge
    from transformer_lens.weight_processing import ProcessWeights

    assert isinstance(ProcessWeights.__dict__["distribute_weights_to_components"], staticmethod)
    assert callable(TransformerBridge._fold_layer_norms_into_batched_experts)
    src = inspect.getsource(TransformerBridge.process_weights)
    for step in ("self._weights_processed = True", "adapter._fold_ln_requested = fold_ln",
                 "ProcessWeights.distribute_weights_to_components(", "self._fold_layer_norms_into_batched_experts()",
                 "adapter.postprocess_weights(self)"):
        assert step in src, step


def test_cold_processing_frees_each_pass_input(tiny_gpt2_dir: Path) -> None:
    """On the cold path the cloning passes empty the dict they were handed (so its tensors are freed
    as they are copied) and compute exactly what they compute outside it; the passes are restored."""
    from transformer_lens.weight_processing import ProcessWeights

    bridge = normal_bridge(tiny_gpt2_dir)  # processed already: only its cfg, adapter and keys are used
    raw = {k: torch.randn(v.shape, generator=torch.Generator().manual_seed(i))
           for i, (k, v) in enumerate(bridge.state_dict().items())}
    before = dict(ProcessWeights.__dict__)
    flags = dict(fastload.COMPAT_FLAGS)
    expected = ProcessWeights.process_weights({k: v.clone() for k, v in raw.items()}, bridge.cfg,
                                              adapter=bridge.adapter, **flags)
    handed = {k: v.clone() for k, v in raw.items()}
    with fastload._draining_passes(ProcessWeights):
        got = ProcessWeights.process_weights(handed, bridge.cfg, adapter=bridge.adapter, **flags)
    assert handed == {}
    assert list(got) == list(expected)
    for k in expected:
        assert torch.equal(got[k], expected[k]) and got[k].stride() == expected[k].stride(), k
    assert dict(ProcessWeights.__dict__) == before


def _raw_state(bridge: Any) -> dict[str, torch.Tensor]:
    return {k: torch.randn(v.shape, generator=torch.Generator().manual_seed(i))
            for i, (k, v) in enumerate(bridge.state_dict().items())}


@pytest.fixture
def small_split(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make the tiny model's embedding and unembedding count as big, with 5-row stand-ins."""
    monkeypatch.setattr(fastload, "_SPLIT_BYTES", 1)
    monkeypatch.setattr(fastload, "_STAND_IN_ROWS", 5)


def test_piecewise_processing_is_the_whole_processing(tiny_gpt2_dir: Path, tmp_path: Path, small_split: None) -> None:
    """Processing the vocabulary-sized tensors one at a time gives ``process_weights``'s dict bit for bit
    (GPT-2: LayerNorm, so the embeddings are centred too), parked in scratch files that are gone after.

    Without the unembedding bias: folding ``ln_final``'s bias into it needs the whole unembedding,
    which (see the next test) makes the piecewise processing fall back to the whole dict."""
    from transformer_lens.weight_processing import ProcessWeights

    bridge = normal_bridge(tiny_gpt2_dir)
    raw = _raw_state(bridge)
    del raw["unembed.bias"]
    flags = {**fastload.COMPAT_FLAGS, "adapter": bridge.adapter}
    expected = ProcessWeights.process_weights({k: v.clone() for k, v in raw.items()}, bridge.cfg, **flags)
    calls: list[int] = []
    real = ProcessWeights.__dict__["process_weights"].__func__

    def counted(state_dict: dict[str, Any], cfg: Any, **kwargs: Any) -> Any:
        calls.append(len(state_dict))
        return real(state_dict, cfg, **kwargs)

    scratch = fastload._Scratch(tmp_path, "entry")
    handed = {k: v.clone() for k, v in raw.items()}
    got = fastload._process_piecewise(counted, handed, bridge.cfg, flags, scratch,
                                      fastload._RawPages([]), set())
    assert handed == {}
    assert len(calls) > 3 and max(calls) == len(raw)  # meta, stand-ins, checks and pieces: it did split
    assert scratch.sources  # every result is parked in a scratch file
    assert list(got) == list(expected)
    for k in expected:
        assert _same_tensor(got[k], expected[k]), k
    scratch.close()
    assert not list(tmp_path.iterdir())


def _same_tensor(a: torch.Tensor, b: torch.Tensor) -> bool:
    return a.dtype == b.dtype and a.shape == b.shape and a.stride() == b.stride() and torch.equal(a, b)


def test_piecewise_processing_falls_back_when_a_big_tensor_depends_on_layers(tiny_gpt2_dir: Path, tmp_path: Path,
                                                                            small_split: None) -> None:
    """If a vocabulary-sized result depends on per-layer weights, or a piece cannot be computed alone
    (GPT-2's unembedding bias takes in the whole unembedding), the whole dict is processed at once."""
    from transformer_lens.weight_processing import ProcessWeights

    bridge = normal_bridge(tiny_gpt2_dir)
    raw = _raw_state(bridge)
    flags = {**fastload.COMPAT_FLAGS, "adapter": bridge.adapter}
    real = ProcessWeights.__dict__["process_weights"].__func__

    def entangled(state_dict: dict[str, Any], cfg: Any, **kwargs: Any) -> Any:
        n = len(state_dict)
        out = real(state_dict, cfg, **kwargs)
        out["unembed.weight"] = out["unembed.weight"] + n  # depends on how many other weights there are
        return out

    without_bias = {k: v for k, v in raw.items() if k != "unembed.bias"}
    for process, state in ((entangled, without_bias), (real, raw)):
        expected = process({k: v.clone() for k, v in state.items()}, bridge.cfg, **flags)
        whole: list[bool] = []

        def watched(state_dict: dict[str, Any], cfg: Any, process: Any = process, state: Any = state,
                    whole: list[bool] = whole, **kwargs: Any) -> Any:
            whole.append(len(state_dict) == len(state) and state_dict["unembed.weight"].device.type == "cpu"
                         and state_dict["unembed.weight"].shape == state["unembed.weight"].shape)
            return process(state_dict, cfg, **kwargs)

        scratch = fastload._Scratch(tmp_path, "entry")
        got = fastload._process_piecewise(watched, {k: v.clone() for k, v in state.items()}, bridge.cfg, flags,
                                          scratch, fastload._RawPages([]), set())
        assert whole[-1] and sum(whole) == 1  # the last call: the whole dict at once
        assert list(got) == list(expected)
        for k in expected:
            assert _same_tensor(got[k], expected[k]), k
        scratch.close()


@pytest.mark.parametrize("failing", [0, 1])
def test_piecewise_processing_survives_a_full_disk(tiny_gpt2_dir: Path, tmp_path: Path, small_split: None,
                                                   monkeypatch: pytest.MonkeyPatch, failing: int) -> None:
    """One scratch file that cannot be written. The parks are: the per-layer results, then each big
    result. Before anything is consumed the whole dict is processed at once (0); after, that big
    result stays in memory (1). Same result each time."""
    from transformer_lens.weight_processing import ProcessWeights

    bridge = normal_bridge(tiny_gpt2_dir)
    raw = {k: v for k, v in _raw_state(bridge).items() if k != "unembed.bias"}
    flags = {**fastload.COMPAT_FLAGS, "adapter": bridge.adapter}
    expected = ProcessWeights.process_weights({k: v.clone() for k, v in raw.items()}, bridge.cfg, **flags)
    park = fastload._Scratch.park
    parks: list[int] = []

    def full(self: Any, *args: Any) -> Any:
        parks.append(1)
        if len(parks) - 1 == failing:
            raise OSError(28, "No space left on device")
        return park(self, *args)

    monkeypatch.setattr(fastload._Scratch, "park", full)
    scratch = fastload._Scratch(tmp_path, "entry")
    got = fastload._process_piecewise(ProcessWeights.__dict__["process_weights"].__func__,
                                      {k: v.clone() for k, v in raw.items()}, bridge.cfg, flags, scratch,
                                      fastload._RawPages([]), set())
    assert len(parks) == (1 if failing == 0 else 3)
    assert list(got) == list(expected)
    for k in expected:
        assert _same_tensor(got[k], expected[k]), k
    scratch.close()
    assert not list(tmp_path.iterdir())


def test_lean_cold_path_gives_the_normal_bridge(tiny_gpt2_dir: Path, tiny_normal: Any, tmp_path: Path,
                                               small_split: None, monkeypatch: pytest.MonkeyPatch) -> None:
    """The lean cold path gives the normal bridge, its weights mapped from the entry it wrote (as a warm
    load maps them), and the warm load then finds that entry. (GPT-2's unembedding bias makes it
    process the whole dict, see above; the embedded models' pieces are checked in
    ``test_embedded_fast_load_is_bit_identical``.)"""
    pieces: list[int] = []
    real = fastload._process_piecewise
    monkeypatch.setattr(fastload, "_process_piecewise", lambda *a, **k: pieces.append(1) or real(*a, **k))
    cold = fast_bridge(tiny_gpt2_dir, tmp_path)
    assert cold.cache == "written" and pieces == [1]
    assert_same_bridge(tiny_normal, cold.bridge)
    assert sorted(p.name for p in tmp_path.iterdir() if not p.name.endswith(".lock")) == [cold.path.name]
    warm = fast_bridge(tiny_gpt2_dir, tmp_path)
    assert warm.cache == "hit"
    assert_same_bridge(normal_bridge(tiny_gpt2_dir), warm.bridge)
    mapped = {name for name, p in cold.bridge.named_parameters() if _is_mapped(p, cold.path)}
    assert mapped and mapped == {name for name, p in warm.bridge.named_parameters() if _is_mapped(p, warm.path)}


def _is_mapped(t: torch.Tensor, path: Path) -> bool:
    """Whether ``t``'s memory lies in a map of ``path`` (Linux; elsewhere: True)."""
    if not Path("/proc/self/maps").exists():
        return True
    ptr = t.untyped_storage().data_ptr()
    for line in Path("/proc/self/maps").read_text().splitlines():
        fields = line.split(maxsplit=5)
        lo, hi = (int(x, 16) for x in fields[0].split("-"))
        if lo <= ptr < hi:
            return len(fields) == 6 and fields[5].startswith(str(path))
    return False


@pytest.mark.parametrize("kernel_copy", ["yes", "fails midway", "absent"])
def test_write_through_writes_and_copies_exactly(tmp_path: Path, kernel_copy: str,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    from pytest_annotate.models.embedded import WriteThrough

    if kernel_copy == "absent":
        monkeypatch.delattr(os, "copy_file_range", raising=False)
    elif kernel_copy == "fails midway":
        real, calls = getattr(os, "copy_file_range", None), []

        def flaky(*args: Any) -> int:
            calls.append(1)
            if real is None or len(calls) > 1:
                raise OSError(18, "Invalid cross-device link")
            return real(*args)

        monkeypatch.setattr(os, "copy_file_range", flaky, raising=False)
    data = os.urandom(3 * WriteThrough.SLICE + 12345)
    source = tmp_path / "source"
    source.write_bytes(data)
    with WriteThrough(tmp_path / "out") as fh:
        fh.write(b"head")
        fh.write(memoryview(data))
        fd = os.open(source, os.O_RDONLY)
        try:
            fh.copy_from(fd, 7, len(data) - 7)
        finally:
            os.close(fd)
        assert fh.tell() == 4 + 2 * len(data) - 7
    assert (tmp_path / "out").read_bytes() == b"head" + data + data[7:]


@pytest.mark.skipif(not Path("/proc/self/maps").exists(), reason="Linux only")
def test_paging_out_raw_weights_keeps_their_values(tmp_path: Path) -> None:
    """``MADV_PAGEOUT`` on a copy-on-write map drops clean pages (read again from the file) and keeps
    the ones written to: no value changes."""
    import numpy as np

    path = tmp_path / "weights"
    values = torch.arange(1 << 20, dtype=torch.float32)
    path.write_bytes(values.numpy().tobytes())
    mapped = torch.from_numpy(np.memmap(path, dtype=np.float32, mode="c"))
    assert torch.equal(mapped, values)
    mapped[5] = -1.0  # a private copy of that page
    pages = fastload._RawPages([mapped])
    assert pages.ranges
    expected = values.clone()
    expected[5] = -1.0
    for page_out in (pages.page_out, lambda: pages.page_out_tensor(mapped[3:])):
        page_out()
        assert torch.equal(mapped, expected)


# --------------------------------------------------------------------------- tiny GPT-2, in-process


@pytest.fixture
def tiny_normal(tiny_gpt2_dir: Path) -> Any:
    """A fresh normally loaded bridge (a forward pass leaves state behind: compare unused bridges)."""
    return normal_bridge(tiny_gpt2_dir)


@pytest.mark.parametrize("mmap", [True, False])
def test_cold_then_warm_equal_the_normal_path(tiny_gpt2_dir: Path, tiny_normal: Any, tmp_path: Path,
                                              mmap: bool) -> None:
    cold = fast_bridge(tiny_gpt2_dir, tmp_path, mmap=mmap)
    assert cold.cache == "written" and cold.path is not None and cold.path.exists()
    assert_same_bridge(tiny_normal, cold.bridge)
    warm = fast_bridge(tiny_gpt2_dir, tmp_path, mmap=mmap)
    assert warm.cache == "hit"
    assert_same_bridge(normal_bridge(tiny_gpt2_dir), warm.bridge)
    # GPT-2's q/k/v weights are transposed views: their layout must survive the round trip.
    assert not warm.bridge.state_dict()["blocks.0.attn.q.weight"].is_contiguous()


def test_mapped_weights_are_private_and_writable(tiny_gpt2_dir: Path, tmp_path: Path) -> None:
    fast_bridge(tiny_gpt2_dir, tmp_path)
    bridge = fast_bridge(tiny_gpt2_dir, tmp_path).bridge
    path = next(tmp_path.glob("*.safetensors"))
    before = path.read_bytes()
    with torch.no_grad():
        for p in bridge.parameters():
            p.add_(1.0)  # an in-place edit (as a weight-editing test might do) stays in this process
    assert path.read_bytes() == before
    assert fast_bridge(tiny_gpt2_dir, tmp_path).cache == "hit"


@pytest.mark.parametrize("name", ["tiny", "gemma-3-270m", "smollm2-135m"])
def test_load_tokenizer_gives_the_tokenizer_the_bridge_would_build(name: str, tiny_gpt2_dir: Path) -> None:
    """Also with the added tokens read alone (the embedded models' dense copies): the same tokens,
    in the same order, as transformers' own parse of the whole file."""
    from transformers import AutoTokenizer
    from transformer_lens.utilities.tokenize_utils import get_tokenizer_with_bos

    if name != "tiny":
        from pytest_annotate.errors import ModelLoadError
        from pytest_annotate.models.embedded import EMBEDDED, cache_root, dense_copy

        try:
            EMBEDDED[name].locate(cache_root() / "gguf")
        except ModelLoadError as e:
            pytest.skip(str(e))
        source = str(dense_copy(EMBEDDED[name]))
        assert fastload._added_tokens_decoder(source)  # the shortcut is taken
    else:
        source = str(tiny_gpt2_dir)
    normal = get_tokenizer_with_bos(AutoTokenizer.from_pretrained(source))
    fast = fastload.load_tokenizer(source)
    assert get_tokenizer_with_bos(fast) is fast  # TransformerLens keeps it: no second load
    assert describe_tokenizer(fast) == describe_tokenizer(normal)
    assert list(fast.added_tokens_decoder.items()) == list(normal.added_tokens_decoder.items())


def test_added_tokens_are_read_alone_only_where_transformers_would_read_them(tmp_path: Path) -> None:
    tokens = [{"id": 0, "content": "<pad>", "single_word": False, "lstrip": False, "rstrip": False,
               "normalized": False, "special": True}]
    config = {"backend": "tokenizers", "tokenizer_class": "TokenizersBackend"}

    def folder(name: str, tokenizer: str, config: dict[str, Any], *extra: str) -> Path:
        path = tmp_path / name
        path.mkdir()
        (path / "tokenizer.json").write_text(tokenizer)
        (path / "tokenizer_config.json").write_text(json.dumps(config))
        for file in extra:
            (path / file).write_text("{}")
        return path

    plain = json.dumps({"version": "1.0", "truncation": None, "padding": None, "added_tokens": tokens, "model": {}},
                       indent=2)
    got = fastload._added_tokens_decoder(folder("plain", plain, config))
    assert got is not None and list(got) == [0] and got[0].content == "<pad>" and got[0].special
    nested = json.dumps({"version": "1.0", "truncation": {"added_tokens": tokens}, "added_tokens": tokens})
    assert fastload._added_tokens_decoder(folder("nested", nested, config)) is None
    assert fastload._added_tokens_decoder(folder("decoder", plain, {**config, "added_tokens_decoder": {}})) is None
    assert fastload._added_tokens_decoder(folder("slow", plain, {"tokenizer_class": "GPT2Tokenizer"})) is None
    assert fastload._added_tokens_decoder(folder("map", plain, config, "special_tokens_map.json")) is None
    assert fastload._added_tokens_decoder(folder("cut", plain[:plain.index('"<pad>"')], config)) is None


def test_no_cache_dir_and_raw_processing_are_the_plain_path(tiny_gpt2_dir: Path, tiny_normal: Any,
                                                           tmp_path: Path) -> None:
    off = fast_bridge(tiny_gpt2_dir, None)
    assert off.cache == "off"
    assert_same_bridge(tiny_normal, off.bridge)
    model, tok = _load_hf(tiny_gpt2_dir)
    raw = fastload.boot(tiny_gpt2_dir, model, tok, device="cpu", dtype=torch.float32, processing="raw",
                        cache_dir=tmp_path)
    assert raw.cache == "off" and not raw.bridge._weights_processed and not list(tmp_path.iterdir())


def test_entry_is_a_valid_safetensors_file(tiny_gpt2_dir: Path, tmp_path: Path) -> None:
    from safetensors import safe_open

    path = fast_bridge(tiny_gpt2_dir, tmp_path).path
    assert path is not None
    with safe_open(str(path), "pt") as f:
        meta = f.metadata()
        assert meta["format"] == fastload.FORMAT
        names = [e[0] for e in json.loads(meta["entries"])]
        assert "unembed.weight" in names and len(list(f.keys())) >= 1


def test_changed_weights_miss_the_cache(tiny_gpt2_dir: Path, tmp_path: Path) -> None:
    first = fast_bridge(tiny_gpt2_dir, tmp_path)
    assert first.cache == "written"
    # The same directory, but an hf_model that is not what it holds: the raw sample differs.
    model, tok = _load_hf(tiny_gpt2_dir)
    with torch.no_grad():
        model.transformer.h[0].ln_1.weight.mul_(2)
    changed = fast_bridge(tiny_gpt2_dir, tmp_path, hf=(model, tok))
    assert changed.cache == "written"
    assert fast_bridge(tiny_gpt2_dir, tmp_path, hf=None).cache == "written"  # the slot was overwritten
    assert fast_bridge(tiny_gpt2_dir, tmp_path).cache == "hit"


def _make_tiny_gpt2(directory: Path, seed: int) -> Path:
    import importlib.util

    spec = importlib.util.spec_from_file_location("_tests_conftest", Path(__file__).parent / "conftest.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.make_tiny_gpt2(directory, seed=seed)


def test_rewritten_source_directory_misses(tmp_path: Path) -> None:
    src = _make_tiny_gpt2(tmp_path / "m", seed=1)
    assert fast_bridge(src, tmp_path / "c").cache == "written"
    assert fast_bridge(src, tmp_path / "c").cache == "hit"
    st = (src / "config.json").stat()
    os.utime(src / "config.json", ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000))
    assert fast_bridge(src, tmp_path / "c").cache == "written"


def test_corrupt_entry_is_ignored_and_replaced(tiny_gpt2_dir: Path, tiny_normal: Any, tmp_path: Path) -> None:
    path = fast_bridge(tiny_gpt2_dir, tmp_path).path
    assert path is not None
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    again = fast_bridge(tiny_gpt2_dir, tmp_path)
    assert again.cache == "written"
    assert_same_bridge(tiny_normal, again.bridge)
    path.write_bytes(b"not a safetensors file")
    assert fast_bridge(tiny_gpt2_dir, tmp_path).cache == "written"
    assert fast_bridge(tiny_gpt2_dir, tmp_path).cache == "hit"


def test_other_dtype_and_threads_get_their_own_key(tiny_gpt2_dir: Path, tmp_path: Path) -> None:
    assert fast_bridge(tiny_gpt2_dir, tmp_path).cache == "written"
    half = fast_bridge(tiny_gpt2_dir, tmp_path, dtype=torch.bfloat16)
    assert half.cache == "written" and half.path != fast_bridge(tiny_gpt2_dir, tmp_path).path
    assert_same_bridge(normal_bridge(tiny_gpt2_dir, torch.bfloat16), fast_bridge(tiny_gpt2_dir, tmp_path,
                                                                                dtype=torch.bfloat16).bridge)
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(threads + 1)
        assert fast_bridge(tiny_gpt2_dir, tmp_path).cache == "written"
    finally:
        torch.set_num_threads(threads)


_WORKER_SCRIPT = """
import sys, importlib.util
spec = importlib.util.spec_from_file_location("tf", {test_file!r})
tf = importlib.util.module_from_spec(spec); spec.loader.exec_module(tf)
from pathlib import Path
print("STATUS", tf.fast_bridge({source!r}, Path({cache_dir!r})).cache)
"""


def test_concurrent_workers_process_once(tiny_gpt2_dir: Path, tmp_path: Path) -> None:
    """Two xdist-like processes loading the same model at once: one processes, the other maps."""
    script = _WORKER_SCRIPT.format(test_file=str(Path(__file__).resolve()), source=str(tiny_gpt2_dir),
                                   cache_dir=str(tmp_path))
    procs = [subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True) for _ in range(2)]
    statuses = []
    for proc in procs:
        out, err = proc.communicate(timeout=600)
        assert proc.returncode == 0, err[-3000:]
        statuses.append(out.split("STATUS ")[-1].strip())
    assert sorted(statuses) == ["hit", "written"]


def test_the_cache_can_be_turned_off(tiny_gpt2_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(fastload.DISABLE_ENV, "0")
    assert fast_bridge(tiny_gpt2_dir, tmp_path).cache == "off"
    assert not list(tmp_path.iterdir())


def test_entries_of_vanished_sources_are_pruned(tiny_gpt2_dir: Path, tmp_path: Path) -> None:
    import shutil

    gone = tmp_path / "gone"
    shutil.copytree(tiny_gpt2_dir, gone)
    old = fast_bridge(gone, tmp_path / "c").path
    shutil.rmtree(gone)
    assert old is not None and old.exists()
    new = fast_bridge(tiny_gpt2_dir, tmp_path / "c").path
    assert new is not None and new.exists() and not old.exists()
    assert not (old.parent / f".{old.stem}.lock").exists()


def test_bypassed_for_non_directories_and_overriding_adapters(tiny_gpt2_dir: Path, tmp_path: Path) -> None:
    from transformer_lens.model_bridge import TransformerBridge

    model, tok = _load_hf(tiny_gpt2_dir)
    bridge = TransformerBridge.boot_transformers(str(tiny_gpt2_dir), hf_model=model, tokenizer=tok, device="cpu")
    assert fastload.unsupported_reason(bridge, tiny_gpt2_dir) is None
    assert "not a local directory" in str(fastload.unsupported_reason(bridge, "gpt2"))

    class Overriding(type(bridge.adapter)):  # type: ignore[misc]
        def postprocess_weights(self, bridge: Any) -> None:
            pass

    bridge.adapter.__class__ = Overriding
    assert "overrides postprocess_weights" in str(fastload.unsupported_reason(bridge, tiny_gpt2_dir))


def test_a_failing_write_still_gives_a_processed_bridge(tiny_gpt2_dir: Path, tiny_normal: Any, tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: Any, **kwargs: Any) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(fastload, "_write_entry", refuse)
    result = fast_bridge(tiny_gpt2_dir, tmp_path)
    assert result.cache.startswith("bypass: could not write")
    assert_same_bridge(tiny_normal, result.bridge)
    assert not list(tmp_path.glob("*.safetensors"))


# --------------------------------------------------------------------------- Gemma 3 270M, in subprocesses


_GEMMA_SCRIPT = """
import json, sys, torch, importlib.util
torch.set_num_threads(1)
spec = importlib.util.spec_from_file_location("tf", {test_file!r})
tf = importlib.util.module_from_spec(spec); spec.loader.exec_module(tf)
from pytest_annotate import models
from pathlib import Path
src = models.dense_copy(models.EMBEDDED[{model!r}])
mode = {mode!r}
from pytest_annotate.models import processed
pieces = []
real = processed._process_piecewise
def counted(*a, **k):
    out = real(*a, **k)
    pieces.append(bool(a[4].sources))  # the scratch parked the results: it did split
    return out
processed._process_piecewise = counted
if mode == "normal":
    bridge, status = tf.normal_bridge(src), "normal"
else:
    r = tf.fast_bridge(src, Path({cache_dir!r}))
    bridge, status = r.bridge, r.cache
json.dump({{"status": status, "describe": tf.describe(bridge), "outputs": tf.outputs(bridge), "pieces": pieces}},
          sys.stdout)
"""


def _start_gemma_digest(mode: str, cache_dir: Path, model: str = "gemma-3-270m") -> tuple[subprocess.Popen[bytes], Path]:
    script = _GEMMA_SCRIPT.format(test_file=str(Path(__file__).resolve()), mode=mode, cache_dir=str(cache_dir),
                                  model=model)
    # transformers' Gemma 3 computes its two rotary embeddings in set() order, so which one the
    # rotary_emb hooks record depends on the hash seed: fix it, as for any cross-process comparison.
    env = {**os.environ, "PYTHONHASHSEED": "0"}
    # Output to files, not pipes: a process running beside another must not block on a full pipe.
    fd, name = tempfile.mkstemp(prefix=f"gemma-{mode}-", suffix=".out")
    os.close(fd)
    out = Path(name)
    with out.open("wb") as stdout, out.with_suffix(".err").open("wb") as stderr:
        return subprocess.Popen([sys.executable, "-c", script], stdout=stdout, stderr=stderr, env=env), out


def _gemma_result(started: tuple[subprocess.Popen[bytes], Path]) -> dict[str, Any]:
    proc, out = started
    try:
        proc.wait(timeout=1200)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    try:
        assert proc.returncode == 0, out.with_suffix(".err").read_text()[-4000:]
        return json.loads(out.read_text())
    finally:
        out.unlink()
        out.with_suffix(".err").unlink()


def _gemma_digest(mode: str, cache_dir: Path, model: str = "gemma-3-270m") -> dict[str, Any]:
    return _gemma_result(_start_gemma_digest(mode, cache_dir, model))


@pytest.mark.filterwarnings("ignore")
# Gemma's is the costliest test of the suite (its normal processing alone takes 45 CPU s and 4 GB), so it
# runs under --run-slow (.ci/run's third step). SmolLM2's runs the same lean path by default; what only
# Gemma's exercises (joined GGUF chunks, an untied 262k-row embedding) runs there.
@pytest.mark.parametrize("model", [pytest.param("gemma-3-270m", marks=pytest.mark.slow), "smollm2-135m"])
def test_embedded_fast_load_is_bit_identical(model: str, tmp_path: Path) -> None:
    """The cold load (processing piecewise, :func:`fastload._process_piecewise`) and the warm one give
    the normally processed bridge: every weight bit for bit, and every activation."""
    from pytest_annotate.errors import ModelLoadError
    from pytest_annotate.models import EMBEDDED, cache_root

    try:
        EMBEDDED[model].locate(cache_root() / "gguf")
    except ModelLoadError as e:
        pytest.skip(str(e))
    # The normal load and the cold cached one are independent single-threaded processes: run them
    # side by side (the warm one needs the entry the cold one writes).
    normal_proc = _start_gemma_digest("normal", tmp_path, model)
    try:
        cold = _gemma_digest("fast", tmp_path, model)
    except BaseException:
        normal_proc[0].kill()
        with contextlib.suppress(Exception):
            _gemma_result(normal_proc)  # reaps it and removes its output files
        raise
    normal = _gemma_result(normal_proc)
    warm = _gemma_digest("fast", tmp_path, model)
    assert (cold["status"], warm["status"]) == ("written", "hit")
    for label, got in (("cold", cold), ("warm", warm)):
        differences = diff(normal["describe"], got["describe"])
        assert not differences, f"{label} {model} bridge differs:\n" + "\n".join(differences)
        assert got["outputs"] == normal["outputs"], f"{label}: logits or activations differ"
    assert len(normal["outputs"]) > 3 * 18 * 10  # the cache really holds every layer's activations
    assert cold["pieces"] == [True] and warm["pieces"] == []  # the cold load did process piecewise
