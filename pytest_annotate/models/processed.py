"""Boot a TransformerBridge in compatibility mode, reusing the processed weights of an earlier load.

``bridge.enable_compatibility_mode()`` (fold LayerNorm, centre the writing weights and the
unembedding, fold the value biases) is the slowest and hungriest step of a load: TransformerLens
clones the whole state dict once per pass, so for Gemma 3 270M it costs 4-6 CPU s and holds
several copies of the weights at once (peak RSS 5.7-6.4 GiB for 1.6 GiB of parameters). Its
result depends only on the raw weights, the TransformerLens and torch code, the device, the
dtype, the flags and the thread count, so :func:`boot` computes it once, the normal way, and files
it on disk; a later load with the same inputs skips the arithmetic and hands the stored tensors to
the very TransformerLens code that installs them on a normal load.

How a processed bridge comes about (TransformerLens 4.3, ``TransformerBridge.process_weights``)::

    raw = bridge.state_dict()                    # TL keys, the raw weights
    processed = <fold / centre / untie ...>(raw) # pure arithmetic on tensors: the slow part
    ProcessWeights.distribute_weights_to_components(processed, bridge.real_components)
    bridge._fold_layer_norms_into_batched_experts()   # MoE only
    adapter.postprocess_weights(bridge)

plus, around it, ``enable_compatibility_mode``'s flag setting and hook-registry rebuild. A **cold**
load runs exactly that (TransformerLens's own ``enable_compatibility_mode``) and records the
``processed`` dict as it enters ``distribute_weights_to_components`` (an observer wrapped around
that one static method for the duration of the call; it passes the arguments through untouched
and writes the tensors before anything downstream can modify them). While it runs, the three
passes that begin by cloning the whole dict are handed one that gives up each entry as it is
cloned (:func:`_draining_passes`), so each input tensor is freed once its copy exists rather than
when the pass returns: the same arithmetic on the same tensors, with Gemma 3 270M's cold peak RSS at
~4.2 GB instead of ~6.4 GB.

On the CPU with memory-mapped entries (the default) the cold load is *lean*, which brings that peak
to ~2.3 GB and the cold load's CPU time down by half: ``ProcessWeights.process_weights`` is computed
piecewise by TransformerLens's own code (:func:`_process_piecewise`: the vocabulary-sized tensors one
at a time, everything else around stand-ins of them, after checks that the pieces give the whole
run's result), each piece parked in a scratch file as soon as it is computed; the raw weights'
mapped pages are handed back to the OS once copied (:class:`_RawPages`); the entry is written from
the scratch files, and the bridge is given the entry as written, mapped, as on a warm load. Every
file is written through the page cache (:class:`~pytest_annotate.models.embedded.WriteThrough`).

A **warm** load reads the
dict back -- same values, dtypes, shapes, strides, storage sharing, 64-byte alignment -- runs the
same distribution, MoE fold and post-processing calls, then
``enable_compatibility_mode(no_processing=True)`` for the flags and hooks. The tests
(``tests/test_fastload.py``) check that the two bridges are the same object graph: every
parameter and buffer bit for bit (with its layout and tying), every module attribute, the hook
registry, the config, the adapter, the tokenizer, and the logits and every ``run_with_cache``
activation of several prompts.

On a warm load the processed weights are memory-mapped copy-on-write from the cache file (as
transformers maps the raw weights): nothing is read up front, and weights a session never touches
(most rows of Gemma's 262k-token embedding) cost no RAM. Writes to them stay in the process.

What the warm path relies on is pinned: the source of the TransformerLens methods whose steps it
replays (:data:`PINNED_SOURCES`). When any of them differs from the pinned text the cache is not
used (the load takes the normal path) and ``test_fastload.py::test_pinned_transformer_lens``
fails, saying what to re-verify. The same goes for adapters that override
``preprocess_weights``/``postprocess_weights`` (Cohere, Phi-3 keep state between the two), for
models with a ``device_map`` and for sources that are not a local directory: those always take
the normal path. ``PYTEST_ANNOTATE_PROCESSED_CACHE=0`` turns the cache off.

A cache entry is keyed by: the source directory (path, and name, size and mtime of every file in
it), a sample of the live raw weights (so an ``hf_model`` that is not what the directory holds
misses), the full list of raw keys/shapes/dtypes, the TransformerLens, transformers and torch
versions and a hash of the TransformerLens sources involved, the device, the dtype, the
processing flags and the torch thread count. There is one entry file per (source, device, dtype,
flags, thread count); a changed key overwrites it, and entries whose source directory is gone are
deleted when a new one is written. Entries are written atomically under a file lock, so concurrent
xdist workers process a model once and the others map the result. An entry is a valid safetensors
file (one tensor per storage, the layouts in its metadata), ~1.7 GB for Gemma 3 270M in float32.

>>> from pytest_annotate.models.processed import boot, load_tokenizer          # doctest: +SKIP
>>> tok = load_tokenizer(src)                                             # doctest: +SKIP
>>> bridge = boot(src, hf_model, tok, device="cpu", dtype=torch.float32,
...             processing="compat", cache_dir=cache_root() / "processed").bridge  # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.metadata
import inspect
import json
import logging
import os
import re
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pytest_annotate.models.embedded import WriteThrough, lock_file

if TYPE_CHECKING:
    import torch
    from transformer_lens.model_bridge import TransformerBridge

log = logging.getLogger(__name__)

FORMAT = "pytest-annotate-processed-weights/1"

COMPAT_FLAGS: dict[str, bool] = {
    "fold_ln": True,
    "center_writing_weights": True,
    "center_unembed": True,
    "fold_value_biases": True,
    "refactor_factored_attn_matrices": False,
}
"""The processing ``enable_compatibility_mode()`` applies by default (HookedTransformer's)."""

PINNED_SOURCES: dict[str, str] = {
    "TransformerBridge.process_weights": "591ff1653cac060f",
    "TransformerBridge.enable_compatibility_mode": "82319ea1133b5a5b",
    "ArchitectureAdapter.preprocess_weights": "2423010cb00f849d",
    "ArchitectureAdapter.postprocess_weights": "40da334cc4499cb9",
}
"""sha256[:16] of the source of each TransformerLens method whose steps the warm path replays.

Verified against transformer-lens 4.3.0. If one changes, read the new source, re-run
``tests/test_fastload.py`` and update the hash here."""

DRAINED_SOURCES: dict[str, str] = {
    "ProcessWeights.process_weights": "dcaf6f58578c0728",
    "ProcessWeights.fold_layer_norm": "e936b45073d94629",
    "ProcessWeights.center_unembed": "faa7166a478c8846",
    "ProcessWeights.fold_value_biases": "625024a0466e140e",
}
"""sha256[:16] of the sources the cold path's memory saving relies on (:func:`_draining_passes`).

Verified against transformer-lens 4.3.0: each of the three passes begins by cloning every tensor of
the dict it is given (``{k: v.clone() ... for k, v in state_dict.items()}``) and never reads that
dict again; ``process_weights`` calls each with its current dict and rebinds the name to the
result. If one changes, the cold path simply processes without draining (more memory, same result)."""

_DTYPE_CODES = {
    "float64": "F64", "float32": "F32", "float16": "F16", "bfloat16": "BF16",
    "int64": "I64", "int32": "I32", "int16": "I16", "int8": "I8", "uint8": "U8", "bool": "BOOL",
}
DISABLE_ENV = "PYTEST_ANNOTATE_PROCESSED_CACHE"
"""Set it to ``0`` to turn the cache off (every load processes its weights the normal way)."""

_SAMPLES_PER_TENSOR = 4
_ALIGN = 64
_SMALL_TENSOR = 4096


@dataclass(frozen=True)
class BootResult:
    """What :func:`boot` did, for the load header and the benchmark."""

    bridge: TransformerBridge
    cache: str
    """``hit`` (processed weights read from the cache), ``written`` (processed normally, then
    cached), ``off`` (no cache_dir, or raw processing) or ``bypass: <why>`` (processed normally)."""
    boot_s: float
    processing_s: float
    path: Path | None = None


def boot(
    source_dir: str | os.PathLike[str],
    hf_model: Any,
    tokenizer: Any,
    *,
    device: str,
    dtype: torch.dtype,
    processing: str = "compat",
    cache_dir: Path | None = None,
    trust_remote_code: bool = False,
    mmap: bool = True,
) -> BootResult:
    """``boot_transformers`` + ``enable_compatibility_mode``, from the processed-weights cache when it can.

    Returns the same bridge as::

        bridge = TransformerBridge.boot_transformers(source_dir, hf_model=hf_model, tokenizer=tokenizer,
                                                     device=device, dtype=dtype, trust_remote_code=...)
        if processing == "compat":
            bridge.enable_compatibility_mode(disable_warnings=True)

    ``hf_model`` must be the model ``from_pretrained(source_dir)`` gave, unmodified and already on
    ``device``/``dtype``. With ``cache_dir=None`` or ``processing="raw"`` it is exactly the code
    above. The caller still calls ``bridge.eval()``. The :class:`BootResult` also says whether the
    cache was used and how long each step took.

    ``mmap`` (CPU only): on a cache hit, map the processed weights from the cache file copy-on-write
    (as transformers maps the raw weights) instead of reading them into fresh memory; pages are
    read on first use, so weights a session never touches (most embedding rows) cost no RAM.
    """
    import torch
    from transformer_lens.model_bridge import TransformerBridge

    t0 = time.perf_counter()
    bridge = TransformerBridge.boot_transformers(
        str(source_dir), hf_model=hf_model, tokenizer=tokenizer, device=device, dtype=dtype,
        trust_remote_code=trust_remote_code,
    )
    t1 = time.perf_counter()
    if processing != "compat":
        return BootResult(bridge, "off", t1 - t0, 0.0)
    if cache_dir is None or os.environ.get(DISABLE_ENV, "") not in ("", "1"):
        bridge.enable_compatibility_mode(disable_warnings=True, **COMPAT_FLAGS)
        return BootResult(bridge, "off", t1 - t0, time.perf_counter() - t1)
    why = unsupported_reason(bridge, source_dir)
    if why is not None:
        log.info("processed-weights cache not used for %s: %s", source_dir, why)
        bridge.enable_compatibility_mode(disable_warnings=True, **COMPAT_FLAGS)
        return BootResult(bridge, f"bypass: {why}", t1 - t0, time.perf_counter() - t1)

    key, slot = _cache_key(bridge, Path(source_dir), dtype)
    path = Path(cache_dir) / f"{slot}.safetensors"
    state = _read_entry(path, key, device, mmap)
    if state is None:
        with lock_file(Path(cache_dir) / f".{slot}.lock"):
            state = _read_entry(path, key, device, mmap)  # another worker may have written it meanwhile
            if state is None:
                lean = mmap and torch.device(device).type == "cpu"
                status = _process_and_record(bridge, path, key, str(Path(source_dir).resolve()), lean=lean)
                return BootResult(bridge, status, t1 - t0, time.perf_counter() - t1, path)
    install_processed(bridge, state)
    return BootResult(bridge, "hit", t1 - t0, time.perf_counter() - t1, path)


# --------------------------------------------------------------------------- the tokenizer


def load_tokenizer(source: str | os.PathLike[str], **kwargs: Any) -> Any:
    """``AutoTokenizer.from_pretrained(source, **kwargs)`` as ``boot_transformers`` will want it.

    ``boot_transformers`` passes the tokenizer through TransformerLens's ``get_tokenizer_with_bos``,
    which, for a tokenizer that has a BOS token but does not add it, loads it *again* from
    ``source`` with ``add_bos_token=True`` -- for Gemma's 262k-token tokenizer that second load is
    ~2 CPU s and 0.3 GB of transient memory. Loading it that way in the first place gives the same
    tokenizer (same backend, vocabulary, special tokens, init kwargs and encodings; checked in
    ``tests/test_fastload.py``) and ``get_tokenizer_with_bos`` then keeps it as it is.

    A tokenizer without a BOS token is loaded as asked (``get_tokenizer_with_bos`` leaves those
    alone), and so is one that ``add_bos_token=True`` cannot build.

    For a folder whose ``tokenizer_config.json`` has no ``added_tokens_decoder`` (what
    ``save_pretrained`` writes, so every dense copy), transformers parses the whole
    ``tokenizer.json`` once only to read its ``added_tokens`` list, then again for the vocabulary:
    for Gemma's 33 MB file the first parse is ~1 CPU s. That list is handed over instead
    (:func:`_added_tokens_decoder`, a parse of its 1.2 MB), which takes transformers' branch for a
    config that has it, building the same tokens in the same order.
    """
    from transformers import AutoTokenizer

    if "added_tokens_decoder" not in kwargs and "subfolder" not in kwargs:
        added = _added_tokens_decoder(source)
        if added is not None:
            kwargs = {**kwargs, "added_tokens_decoder": added}
    try:
        tokenizer = AutoTokenizer.from_pretrained(source, add_bos_token=True, **kwargs)
    except ValueError:
        tokenizer = None
    if tokenizer is None or tokenizer.bos_token is None:
        return AutoTokenizer.from_pretrained(source, **kwargs)
    return tokenizer


def _added_tokens_decoder(source: str | os.PathLike[str]) -> dict[int, Any] | None:
    """``{id: AddedToken}`` from the ``added_tokens`` list of ``source``'s ``tokenizer.json``, as
    transformers' loader builds it when the folder has no other record of its added tokens (a
    ``tokenizers`` backend, no ``added_tokens_decoder`` in ``tokenizer_config.json``, no
    ``special_tokens_map.json`` or ``added_tokens.json``); None otherwise, or if the list is not a
    top-level member of the file that parses as expected."""
    folder = Path(source)
    try:
        if not (folder / "tokenizer.json").is_file() or any(
                (folder / name).exists() for name in ("special_tokens_map.json", "added_tokens.json")):
            return None
        config = json.loads((folder / "tokenizer_config.json").read_text(encoding="utf-8"))
        if not isinstance(config, dict) or config.get("backend") != "tokenizers" or "added_tokens_decoder" in config:
            return None
        size = 4 << 20
        with open(folder / "tokenizer.json", "rb") as fh:
            head = fh.read(size)
            found = re.search(rb'"added_tokens"\s*:\s*', head)
            if found is None or found.start() > 1 << 16:
                return None
            # Top level: what precedes the key closes into a JSON object.
            before = head[:found.start()].rstrip().removesuffix(b",")
            if not isinstance(json.loads(before + b"}"), dict):
                return None
            while True:
                try:
                    tokens, _ = json.JSONDecoder().raw_decode(head[found.end():].decode("utf-8", "replace"))
                    break
                except json.JSONDecodeError:
                    more = fh.read(size)
                    if not more:
                        return None
                    head += more
                    size *= 2
    except (OSError, ValueError):
        return None
    from transformers.tokenization_utils_base import AddedToken

    if not isinstance(tokens, list) or not all(
            isinstance(t, dict) and type(t.get("id")) is int and isinstance(t.get("content"), str) for t in tokens):
        return None
    try:
        return {t["id"]: AddedToken(**{k: v for k, v in t.items() if k != "id"}) for t in tokens}
    except TypeError:
        return None


# --------------------------------------------------------------------------- what may use the cache


def source_hashes(pins: dict[str, str] | None = None) -> dict[str, str]:
    """The current sha256[:16] of each method named in ``pins`` (default :data:`PINNED_SOURCES`)."""
    from transformer_lens.model_bridge import TransformerBridge
    from transformer_lens.model_bridge.architecture_adapter import ArchitectureAdapter
    from transformer_lens.weight_processing import ProcessWeights

    owners = {"TransformerBridge": TransformerBridge, "ArchitectureAdapter": ArchitectureAdapter,
              "ProcessWeights": ProcessWeights}
    out = {}
    for qualname in PINNED_SOURCES if pins is None else pins:
        owner, method = qualname.split(".")
        try:
            text = inspect.getsource(getattr(owners[owner], method))
        except (AttributeError, OSError, TypeError):
            text = ""
        out[qualname] = hashlib.sha256(text.encode()).hexdigest()[:16]
    return out


def unsupported_reason(bridge: TransformerBridge, source_dir: str | os.PathLike[str]) -> str | None:
    """Why this bridge must take the normal path, or None when the cache may be used."""
    from transformer_lens.model_bridge.architecture_adapter import ArchitectureAdapter

    changed = [name for name, h in source_hashes().items() if PINNED_SOURCES[name] != h]
    if changed:
        return f"TransformerLens changed {', '.join(changed)} since fastload was verified"
    adapter = bridge.adapter
    for hook in ("preprocess_weights", "postprocess_weights"):
        if getattr(type(adapter), hook, None) is not getattr(ArchitectureAdapter, hook):
            return f"{type(adapter).__name__} overrides {hook}"
    if not getattr(adapter, "supports_compatibility_mode", True):
        return f"{type(adapter).__name__} does not support compatibility mode"
    if getattr(bridge.cfg, "is_audio_model", False):
        return "audio model"
    if getattr(bridge.original_model, "hf_device_map", None):
        return "the model has a device_map"
    if not isinstance(getattr(bridge, "real_components", None), dict):
        return "the bridge has no real_components"
    if not Path(source_dir).is_dir():
        return f"{source_dir} is not a local directory"
    return None


# --------------------------------------------------------------------------- the key


def _tl_code_hash(adapter: Any) -> str:
    """A hash of the TransformerLens sources that compute or install processed weights."""
    import transformer_lens

    root = Path(transformer_lens.__file__).parent
    files = [root / "weight_processing.py", *sorted((root / "model_bridge").glob("*.py")),
             *sorted((root / "model_bridge" / "generalized_components").glob("*.py"))]
    adapter_file = inspect.getsourcefile(type(adapter))
    if adapter_file:
        files.append(Path(adapter_file))
    return _hash_files(tuple(str(f) for f in files))


_FILE_HASHES: dict[tuple[str, ...], str] = {}


def _hash_files(paths: tuple[str, ...]) -> str:
    if paths not in _FILE_HASHES:
        digest = hashlib.sha256()
        for p in paths:
            digest.update(p.encode() + b"\0")
            with contextlib.suppress(OSError):
                digest.update(Path(p).read_bytes())
        _FILE_HASHES[paths] = digest.hexdigest()
    return _FILE_HASHES[paths]


def _dir_listing(source: Path) -> list[tuple[str, int, int]]:
    out = []
    for entry in sorted(os.scandir(source), key=lambda e: e.name):
        if entry.is_file():
            st = entry.stat()
            out.append((entry.name, st.st_size, st.st_mtime_ns))
    return out


def _raw_signature(bridge: TransformerBridge) -> str:
    """Keys, shapes, dtypes and a sample of the values of the bridge's raw (unprocessed) weights."""
    import torch

    digest = hashlib.sha256()
    with torch.no_grad():
        for name, t in bridge.state_dict().items():
            digest.update(f"{name}|{tuple(t.shape)}|{t.dtype}|{t.device.type}\n".encode())
            flat = t.detach().reshape(-1)
            if flat.numel() > _SMALL_TENSOR:
                # A few elements spread over the tensor: enough to tell another checkpoint apart,
                # without paging in the (memory-mapped) weights.
                step = flat.numel() // _SAMPLES_PER_TENSOR
                flat = flat[::step][:_SAMPLES_PER_TENSOR]
            digest.update(_tensor_bytes(flat.contiguous().cpu()))
    return digest.hexdigest()


def _cache_key(bridge: TransformerBridge, source: Path, dtype: torch.dtype) -> tuple[str, str]:
    """(the full key an entry must carry, the entry's file name)."""
    import torch

    slot_parts = {
        "source": str(source.resolve()),
        "device": str(bridge.cfg.device),
        "dtype": str(dtype),
        "flags": COMPAT_FLAGS,
        "adapter": type(bridge.adapter).__name__,
        "threads": torch.get_num_threads(),
    }
    slot = hashlib.sha256(json.dumps(slot_parts, sort_keys=True).encode()).hexdigest()[:24]
    parts = {
        **slot_parts,
        "format": FORMAT,
        "files": _dir_listing(source),
        "raw": _raw_signature(bridge),
        "transformer_lens": _version("transformer-lens"),
        "transformers": _version("transformers"),
        "torch": torch.__version__,
        "tl_code": _tl_code_hash(bridge.adapter),
        "pinned": PINNED_SOURCES,
    }
    key = hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()
    return key, slot


def _version(dist: str) -> str:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


# --------------------------------------------------------------------------- the cold path


class _Recorder:
    """Observes the top-level ``distribute_weights_to_components`` call of this thread."""

    def __init__(self, bridge: TransformerBridge, path: Path, key: str, source: str, remap: bool = False,
                 sources: dict[int, tuple[int, int, int]] | None = None) -> None:
        self.bridge = bridge
        self.source = source
        self.path = path
        self.key = key
        self.remap = remap
        self.sources = sources
        self.thread = threading.get_ident()
        self.depth = 0
        self.calls = 0
        self.tmp: Path | None = None
        self.error: str | None = None
        self.raw_storages = {
            t.untyped_storage().data_ptr()
            for t in (*bridge.original_model.parameters(), *bridge.original_model.buffers())
            if t.untyped_storage().nbytes() > 0
        }

    def observe(self, state_dict: dict[str, Any], component_mapping: Any) -> None:
        if threading.get_ident() != self.thread or self.depth > 0:
            return
        self.calls += 1
        if self.calls > 1:
            self.error = "distribute_weights_to_components was called more than once"
            return
        if component_mapping is not self.bridge.real_components:
            self.error = "distribute_weights_to_components got another component mapping"
            return
        # Write now, before distribution: nothing downstream can have modified the tensors yet.
        try:
            self.tmp = _write_entry(self.path, state_dict, self.key, self.raw_storages, self.source, self.sources)
        except _NotCacheable as e:
            self.error = str(e)
        except OSError as e:
            self.error = f"could not write {self.path}: {e}"
        except Exception as e:  # never let the cache break a load: the normal path goes on
            self.error = f"could not record the processed weights: {type(e).__name__}: {e}"
        if self.remap and self.tmp is not None:
            # Distribute the entry just written, mapped as a warm load maps it: the same values,
            # layouts and sharing (what the entry format guarantees), and the processed tensors in
            # memory so far are freed. The bridge ends up as a warm load leaves it.
            mapped = _read_entry(self.tmp, self.key, "cpu", mmap=True)
            if mapped is not None and list(mapped) == list(state_dict):
                state_dict.update(mapped)


def _process_and_record(bridge: TransformerBridge, path: Path, key: str, source: str, *,
                        lean: bool = False) -> str:
    """Run TransformerLens's own compatibility-mode processing and file its processed weights.

    ``lean`` (a CPU bridge whose cache entries are memory-mapped): process the vocabulary-sized
    tensors one at a time (:func:`_split_passes`), hand the raw weights' pages back to the OS once
    copied (:class:`_RawPages`), and distribute the entry as written, mapped (see the module docstring)."""
    from transformer_lens.weight_processing import ProcessWeights

    with _OBSERVING:
        status = _process_and_record_locked(bridge, path, key, source, ProcessWeights, lean)
    if status == "written":
        _prune(path.parent)
    return status


_OBSERVING = threading.Lock()
"""One observed processing at a time in this process, so the wrapper is always undone in order."""


def _process_and_record_locked(bridge: TransformerBridge, path: Path, key: str, source: str,
                               ProcessWeights: Any, lean: bool = False) -> str:
    scratch = _Scratch(path.parent, path.stem) if lean else None
    recorder = _Recorder(bridge, path, key, source, remap=lean,
                         sources=scratch.sources if scratch is not None else None)
    original = ProcessWeights.__dict__["distribute_weights_to_components"]
    real = original.__func__

    def observed(state_dict: dict[str, Any], component_mapping: Any, verbose: bool = False) -> None:
        recorder.observe(state_dict, component_mapping)
        recorder.depth += 1
        try:
            return real(state_dict, component_mapping, verbose)
        finally:
            recorder.depth -= 1

    raw = _RawPages(_raw_tensors(bridge)) if lean else None
    ProcessWeights.distribute_weights_to_components = staticmethod(observed)
    try:
        with contextlib.ExitStack() as stack:
            stack.enter_context(_draining_passes(ProcessWeights, copied=raw.page_out_tensor if raw else None))
            if scratch is not None and raw is not None:
                stack.enter_context(_split_passes(ProcessWeights, scratch, raw, recorder.raw_storages))
            bridge.enable_compatibility_mode(disable_warnings=True, **COMPAT_FLAGS)
    except BaseException:
        _unlink(recorder.tmp)
        raise
    finally:
        ProcessWeights.distribute_weights_to_components = original
        if scratch is not None:
            scratch.close()
            _trim_heap()
    if recorder.calls == 0 and recorder.error is None:
        recorder.error = "process_weights did not distribute any weights"
    if recorder.error is not None or recorder.tmp is None:
        _unlink(recorder.tmp)
        log.warning("processed weights not cached (%s)", recorder.error)
        return f"bypass: {recorder.error}"
    try:
        os.replace(recorder.tmp, path)
    except OSError as e:
        _unlink(recorder.tmp)
        log.warning("processed weights not cached (could not move them into %s: %s)", path, e)
        return f"bypass: could not write {path}: {e}"
    return "written"


def _trim_heap() -> None:
    """Return the memory freed by the lean cold path to the OS (glibc keeps freed blocks under its
    mmap threshold, up to 32 MB each, in its heap: the per-layer results, once parked, would still
    count in the process's memory -- 0.4 GB for Gemma 3 270M -- under the next piece and beside
    the mapped entry). Elsewhere it does nothing."""
    if not sys.platform.startswith("linux"):
        return
    with contextlib.suppress(OSError, AttributeError):
        import ctypes

        ctypes.CDLL(None).malloc_trim(0)


class _Draining(dict):  # type: ignore[type-arg]
    """A state dict that hands over each entry as it is read by ``items()``.

    A pass that begins ``{k: v.clone() for k, v in state_dict.items()}`` then frees each input
    tensor as soon as its copy exists (when nothing else holds it), instead of holding the whole
    input dict until it returns. Same keys, order, values and clones: only the moment the inputs
    are freed changes. ``copied(value)``, if given, is called with each value once the pass has
    moved on from it (copied it)."""

    copied: Any = None

    def items(self) -> Any:
        for key in list(self):
            value = self.pop(key)
            yield key, value
            if self.copied is not None:
                self.copied(value)


@contextlib.contextmanager
def _draining_passes(ProcessWeights: Any, copied: Any = None) -> Any:
    """Within the block, the three cloning passes of ``ProcessWeights.process_weights`` free their
    input as they copy it (:class:`_Draining`), calling ``copied(tensor)`` for each input copied.

    Without this, each pass holds its input and its full copy at once, on top of the raw weights:
    Gemma 3 270M peaks at ~6.4 GB for ~1.7 GB of processed weights. ``process_weights`` never
    reads a pass's input again (it rebinds the name to the result), so its dict is emptied into the
    one the pass gets. Only calls made by ``process_weights`` in this thread drain, and only while
    :data:`DRAINED_SOURCES` match; otherwise the block changes nothing."""
    if source_hashes(DRAINED_SOURCES) != DRAINED_SOURCES:
        yield
        return
    caller = ProcessWeights.__dict__["process_weights"].__func__.__code__
    thread = threading.get_ident()
    originals = {name: ProcessWeights.__dict__[name] for name in ("fold_layer_norm", "center_unembed",
                                                                  "fold_value_biases")}

    def draining(real: Any) -> Any:
        def call(state_dict: Any, *args: Any, **kwargs: Any) -> Any:
            if (threading.get_ident() != thread or type(state_dict) is not dict
                    or sys._getframe(1).f_code is not caller):
                return real(state_dict, *args, **kwargs)
            handed = _Draining(state_dict)
            handed.copied = copied
            state_dict.clear()
            return real(handed, *args, **kwargs)
        return call

    for name, method in originals.items():
        setattr(ProcessWeights, name, staticmethod(draining(method.__func__)))
    try:
        yield
    finally:
        for name, method in originals.items():
            setattr(ProcessWeights, name, method)


# --------------------------------------------------------------------------- the lean cold path

SPLIT_SOURCES: dict[str, str] = {"weight_processing.py": "9e7800a455e6e113"}
"""sha256[:16] of the TransformerLens file whose passes :func:`_split_passes` runs piecewise.

Verified against transformer-lens 4.3.0 (``tests/test_fastload.py`` checks, for both embedded
models, that the piecewise result is the whole one bit for bit). If it changes, the cold path
processes the whole state dict at once (more memory, same result) until it is re-verified."""

_SPLIT_BYTES = 32 << 20
"""A tensor at least this big with a vocabulary-sized dimension is processed on its own."""

_STAND_IN_ROWS = 1024
"""How many vocabulary rows of a big tensor stand in for it while the rest is processed."""

_PER_LAYER = re.compile(r"\.\d+\.")
"""A state-dict key of one layer (``blocks.3.attn.q.weight``); the others are global."""


def _split_hash() -> str:
    import transformer_lens

    path = Path(transformer_lens.__file__).parent / "weight_processing.py"
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()[:16]
    except OSError:
        return ""


@contextlib.contextmanager
def _split_passes(ProcessWeights: Any, scratch: _Scratch, raw: _RawPages, raw_storages: set[int]) -> Any:
    """Within the block, ``TransformerBridge.process_weights``'s call of ``ProcessWeights.process_weights``
    (in this thread) computes the same dict piecewise, holding at most one vocabulary-sized tensor
    and its copy in memory (:func:`_process_piecewise`); every result is parked, written through, in a
    scratch file and mapped back. While :data:`SPLIT_SOURCES` differ it changes nothing."""
    from transformer_lens.model_bridge import TransformerBridge

    if _split_hash() != SPLIT_SOURCES["weight_processing.py"]:
        yield
        return
    original = ProcessWeights.__dict__["process_weights"]
    real = original.__func__
    caller = TransformerBridge.process_weights.__code__
    thread = threading.get_ident()

    def split(state_dict: Any, cfg: Any, *args: Any, **kwargs: Any) -> Any:
        if (threading.get_ident() != thread or type(state_dict) is not dict or args
                or sys._getframe(1).f_code is not caller):
            return real(state_dict, cfg, *args, **kwargs)
        return _process_piecewise(real, state_dict, cfg, kwargs, scratch, raw, raw_storages)

    ProcessWeights.process_weights = staticmethod(split)
    try:
        yield
    finally:
        ProcessWeights.process_weights = original


def _process_piecewise(real: Any, state_dict: dict[str, Any], cfg: Any, kwargs: dict[str, Any],
                       scratch: _Scratch, raw: _RawPages, raw_storages: set[int]) -> dict[str, Any]:
    """``real(state_dict, cfg, **kwargs)`` -- TransformerLens's ``ProcessWeights.process_weights`` --
    computed in pieces, each by ``real`` itself.

    The vocabulary-sized tensors (Gemma 3 270M: the 671 MB embedding and its untied unembedding)
    dominate the memory: processing the whole dict holds ~1.7 GB of results plus a copy in flight.
    Here instead:

    1. ``real`` runs on the meta device (no memory): the keys, order, shapes, strides and dtypes of
       the whole result.
    2. ``real`` runs on the dict with each big tensor replaced by a *stand-in*, its first
       :data:`_STAND_IN_ROWS` vocabulary rows: every other result is the whole run's (the passes
       never mix a layer's weights with the vocabulary-sized ones), and is parked in a scratch file.
    3. Checks, before anything is consumed (otherwise the whole dict is processed as usual, as
       also when any run raises): the keys are the meta run's; each big tensor's stand-in, processed
       with only the global (not per-layer) entries around it, comes out bit for bit as it did in
       step 2; and the piece of step 4 runs on the meta device and gives the whole run's layout.
    4. Each big tensor is processed in full with only the global entries around it (the other big
       ones as stand-ins), parked, and freed before the next.

    The result is ordered as ``real``'s and checked against the meta run's layouts. Tests check that
    it equals the whole run bit for bit for both embedded models."""
    import torch

    vocab = getattr(cfg, "d_vocab", None)
    order = list(state_dict)
    globals_ = [k for k in order if not _PER_LAYER.search(k)]
    big = [k for k in globals_ if _is_big(state_dict[k], vocab)]
    if not big:
        return real(state_dict, cfg, **kwargs)
    raw.page_out()  # the untied copy of the unembedding has just read the whole raw embedding
    stand = {k: _stand_in(state_dict[k], vocab) for k in big}

    def standing_in(k: str) -> Any:
        return stand[k] if k in stand else state_dict[k]

    parked: dict[str, Any] = {}
    targets: list[str] = []
    why = None
    small: dict[str, Any] = {}
    try:
        meta = real(_on_meta(state_dict), cfg, **kwargs)
        small = real({k: standing_in(k) for k in order}, cfg, **kwargs)
        targets = [k for k in big if k in small]
        if list(small) != list(meta):
            why = "the stand-in run's keys differ from the meta run's"
        for k in targets:
            if why is not None:
                break
            alone = real({j: standing_in(j) for j in globals_}, cfg, **kwargs)
            if not _identical(alone.get(k), small[k]):
                why = f"{k} depends on per-layer weights"
            # The very piece to be computed, on the meta device: it runs, and gives the whole run's layout.
            piece = real(_on_meta({j: state_dict[j] if j == k else standing_in(j) for j in globals_}), cfg, **kwargs)
            if not _same_layout(piece.get(k), meta[k]):
                why = f"{k} processed alone has another layout"
        if why is None:
            parked = scratch.park({k: v for k, v in small.items() if k not in targets}, raw_storages)
    except (RuntimeError, NotImplementedError, TypeError, ValueError, KeyError, IndexError, AttributeError,
            AssertionError, _NotCacheable, OSError) as e:
        why = f"{type(e).__name__}: {e}"
    del small
    _trim_heap()  # the per-layer results just parked were freed into glibc's heap
    if why is not None:
        log.info("processing the whole state dict at once (%s)", why)
        return real(state_dict, cfg, **kwargs)
    # Anything not memory-mapped first (the untied unembedding): it is freed as it is processed.
    for k in sorted(targets, key=lambda k: raw.maps(state_dict[k])):
        alone = {j: state_dict.pop(k) if j == k else standing_in(j) for j in globals_}
        result = real(alone, cfg, **kwargs)
        tensor = result.pop(k)
        del alone, result
        try:
            parked[k] = scratch.park({k: tensor}, raw_storages)[k]
        except (_NotCacheable, OSError) as e:  # e.g. the disk is full: keep it in memory
            log.info("%s not parked in a scratch file (%s)", k, e)
            parked[k] = tensor
        del tensor
        _trim_heap()
    state_dict.clear()
    out = {k: parked[k] for k in meta}
    bad = [k for k, m in meta.items() if isinstance(m, torch.Tensor) and not _same_layout(out[k], m)]
    if bad:  # cannot happen: each piece's layout was checked on the meta device
        raise RuntimeError(f"piecewise weight processing gave {bad[0]} another layout than the whole run")
    return out


def _on_meta(state_dict: dict[str, Any]) -> dict[str, Any]:
    import torch

    return {k: v.to("meta") if isinstance(v, torch.Tensor) else v for k, v in state_dict.items()}


def _same_layout(t: Any, m: Any) -> bool:
    import torch

    return (isinstance(t, torch.Tensor) and isinstance(m, torch.Tensor) and t.shape == m.shape
            and t.stride() == m.stride() and t.dtype == m.dtype and t.storage_offset() == m.storage_offset())


def _is_big(t: Any, vocab: int | None) -> bool:
    import torch

    return (type(t) is torch.Tensor and vocab is not None and t.device.type == "cpu" and vocab in t.shape
            and t.numel() * t.element_size() >= _SPLIT_BYTES)


def _stand_in(t: torch.Tensor, vocab: int) -> torch.Tensor:
    """The first :data:`_STAND_IN_ROWS` rows of ``t`` along its vocabulary dimension, as a new tensor."""
    dim = list(t.shape).index(vocab)
    return t.narrow(dim, 0, min(_STAND_IN_ROWS, vocab)).clone()


def _identical(a: Any, b: Any) -> bool:
    import torch

    return (isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor) and a.dtype == b.dtype
            and a.shape == b.shape and a.stride() == b.stride() and torch.equal(a, b))


class _Scratch:
    """Parks processed tensors in scratch files next to the cache entries, written through and mapped
    back copy-on-write, so that they take no memory until read. ``sources`` says, for each storage
    mapped so, the open scratch file and offset it comes from, so that :func:`_write_entry` can copy
    the bytes from the file without reading them through the map."""

    def __init__(self, folder: Path, stem: str) -> None:
        self.folder = folder
        self.stem = stem
        self.sources: dict[int, tuple[int, int, int]] = {}
        self.fds: list[int] = []
        self.leftovers: list[Path] = []

    def park(self, tensors: dict[str, Any], raw_storages: set[int]) -> dict[str, Any]:
        path = self.folder / f".{self.stem}.scratch{len(self.fds)}"
        tmp = _write_entry(path, tensors, "scratch", raw_storages, "")
        try:
            fd = os.open(tmp, os.O_RDONLY | getattr(os, "O_BINARY", 0))
            self.fds.append(fd)
            offsets: dict[int, tuple[int, int]] = {}
            state = _read_entry(tmp, "scratch", "cpu", mmap=True, offsets=offsets)
        finally:
            try:
                tmp.unlink()  # POSIX: the map and the descriptor keep the data
            except OSError:
                self.leftovers.append(tmp)
        if state is None or list(state) != list(tensors) or len(offsets) == 0:
            raise _NotCacheable("processed tensors could not be parked in a scratch file")
        for ptr, (offset, nbytes) in offsets.items():
            self.sources[ptr] = (fd, offset, nbytes)
        return state

    def close(self) -> None:
        self.sources.clear()
        for fd in self.fds:
            with contextlib.suppress(OSError):
                os.close(fd)
        self.fds.clear()
        for path in self.leftovers:
            with contextlib.suppress(OSError):
                path.unlink()


def _raw_tensors(bridge: TransformerBridge) -> list[Any]:
    model = bridge.original_model
    return [*model.parameters(), *model.buffers()]


class _RawPages:
    """The file-backed memory maps that hold a model's raw weights (transformers maps safetensors
    files copy-on-write), and a way to hand their pages back to the OS.

    Once a pass has copied the raw weights, the pages it read still count in the process's memory
    until the raw weights are replaced, after processing. ``page_out`` (every map) and
    ``page_out_tensor`` (the pages under one tensor, once a pass has copied it) ask Linux to reclaim them
    (``madvise(MADV_PAGEOUT)``): clean file pages are dropped and read again from the file if
    touched; pages written to (private copies) stay, or go to swap: no data can be lost. Elsewhere
    it does nothing."""

    MADV_PAGEOUT = 21

    def __init__(self, tensors: list[Any]) -> None:
        self.ranges: list[tuple[int, int]] = []
        self.madvise: Any = None
        if not sys.platform.startswith("linux"):
            return
        self.page = os.sysconf("SC_PAGE_SIZE")
        ptrs = sorted({t.untyped_storage().data_ptr() for t in tensors
                       if t.device.type == "cpu" and t.untyped_storage().nbytes() > 0})
        try:
            with open("/proc/self/maps") as fh:
                lines = fh.read().splitlines()
            import ctypes

            libc = ctypes.CDLL(None, use_errno=True)
            libc.madvise.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
            self.madvise = libc.madvise
        except (OSError, AttributeError):
            return
        import bisect

        for line in lines:
            fields = line.split(maxsplit=5)
            if len(fields) < 6 or fields[4] == "0" or not fields[5].startswith("/"):
                continue  # anonymous memory: never paged out here
            lo, hi = (int(x, 16) for x in fields[0].split("-"))
            i = bisect.bisect_left(ptrs, lo)
            if i < len(ptrs) and ptrs[i] < hi:
                self.ranges.append((lo, hi))

    def maps(self, tensor: Any) -> bool:
        """Whether ``tensor`` lies in one of the raw weights' file maps."""
        ptr = tensor.untyped_storage().data_ptr()
        return any(lo <= ptr < hi for lo, hi in self.ranges)

    def page_out(self) -> None:
        if self.madvise is None:
            return
        for lo, hi in self.ranges:
            self.madvise(lo, hi - lo, self.MADV_PAGEOUT)

    def page_out_tensor(self, t: Any) -> None:
        """Page out the whole pages under ``t``, if it lies in one of the maps."""
        import torch

        if self.madvise is None or type(t) is not torch.Tensor or t.device.type != "cpu":
            return
        storage = t.untyped_storage()
        ptr, n = storage.data_ptr(), storage.nbytes()
        if n < (1 << 20) or not any(lo <= ptr < hi for lo, hi in self.ranges):
            return
        page = self.page
        lo, hi = -(-ptr // page) * page, (ptr + n) // page * page
        if hi > lo:
            self.madvise(lo, hi - lo, self.MADV_PAGEOUT)


class _NotCacheable(Exception):
    pass


def _write_entry(path: Path, state: dict[str, Any], key: str, raw_storages: set[int], source: str,
                 sources: dict[int, tuple[int, int, int]] | None = None) -> Path:
    """Write ``state`` as a safetensors file (one tensor per storage, layouts in the metadata).

    ``sources``: storages mapped from a file (``data_ptr -> (fd, offset, nbytes)``), copied from that
    file rather than read through the map (which would bring every page into this process)."""
    import torch

    storages: dict[int, dict[str, Any]] = {}
    entries = []
    used = 0
    for name, t in state.items():
        if type(t) is not torch.Tensor:
            raise _NotCacheable(f"{name} is a {type(t).__name__}, not a plain tensor")
        dt = str(t.dtype).removeprefix("torch.")
        if dt not in _DTYPE_CODES or t.is_sparse or t.is_quantized or t.device.type == "meta":
            raise _NotCacheable(f"{name} has dtype/layout {t.dtype}/{t.layout} on {t.device}")
        storage = t.untyped_storage()
        ptr = storage.data_ptr()
        if ptr in raw_storages:
            raise _NotCacheable(f"{name} shares memory with an unprocessed weight")
        if ptr not in storages:
            if storage.nbytes() % t.element_size():
                raise _NotCacheable(f"{name}: storage size is not a whole number of elements")
            storages[ptr] = {"index": len(storages), "tensor": t, "dtype": dt, "nbytes": storage.nbytes()}
        info = storages[ptr]
        if info["dtype"] != dt or info["tensor"].device != t.device:
            raise _NotCacheable(f"{name} views a storage under another dtype or device")
        used += t.numel() * t.element_size()
        entries.append([name, info["index"], list(t.shape), list(t.stride()), t.storage_offset(), t.requires_grad])
    total = sum(s["nbytes"] for s in storages.values())
    if total > 1.25 * used + (1 << 20):
        raise _NotCacheable(f"processed tensors view {total} bytes of storage for {used} bytes of data")

    # Every storage starts on a 64-byte boundary of the file (the alignment of torch's allocator), so
    # that a memory-mapped tensor sits at the same alignment as a freshly allocated one: BLAS kernels
    # may pick code paths by alignment. Gaps are filled by padding tensors, as safetensors wants no holes.
    layout: list[tuple[str, dict[str, Any], dict[str, Any] | None]] = []
    offset = 0
    for s in sorted(storages.values(), key=lambda s: s["index"]):
        n = s["nbytes"] // s["tensor"].element_size()
        layout.append((f"s{s['index']}", {"dtype": _DTYPE_CODES[s["dtype"]], "shape": [n],
                                         "data_offsets": [offset, offset + s["nbytes"]]}, s))
        offset += s["nbytes"]
        if offset % _ALIGN:
            pad = -offset % _ALIGN
            layout.append((f"pad{s['index']}", {"dtype": "U8", "shape": [pad], "data_offsets": [offset, offset + pad]},
                           None))
            offset += pad
    header: dict[str, Any] = {
        "__metadata__": {"format": FORMAT, "key": key, "source": source, "entries": json.dumps(entries)},
        **{name: spec for name, spec, _ in layout},
    }
    blob = json.dumps(header, separators=(",", ":")).encode()
    blob += b" " * (-(8 + len(blob)) % _ALIGN)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}-{threading.get_ident()}")
    try:
        with WriteThrough(tmp) as fh:
            fh.write(len(blob).to_bytes(8, "little"))
            fh.write(blob)
            for _, spec, storage in layout:
                if storage is None:
                    fh.write(bytes(spec["shape"][0]))
                    continue
                t = storage["tensor"]
                src = sources.get(t.untyped_storage().data_ptr()) if sources and t.device.type == "cpu" else None
                if src is not None and src[2] == storage["nbytes"]:
                    fh.copy_from(src[0], src[1], src[2])
                else:
                    fh.write(_storage_bytes(t))
    except BaseException:
        _unlink(tmp)
        raise
    return tmp


def _storage_bytes(t: torch.Tensor) -> memoryview:
    import torch

    storage = t.untyped_storage()
    if t.device.type != "cpu":
        storage = storage.cpu()
    whole = torch.empty(0, dtype=torch.uint8).set_(storage, 0, (storage.nbytes(),), (1,))
    return memoryview(whole.numpy()).cast("B")


def _tensor_bytes(t: torch.Tensor) -> bytes:
    import torch

    return bytes(memoryview(t.view(torch.uint8).numpy()).cast("B")) if t.numel() else b""


# --------------------------------------------------------------------------- the warm path


def _read_entry(path: Path, key: str, device: str, mmap: bool,
                offsets: dict[int, tuple[int, int]] | None = None) -> dict[str, torch.Tensor] | None:
    """The processed state dict filed under ``key``, or None (absent, stale or unreadable).

    With ``mmap`` each storage is a private (copy-on-write) memory map of its bytes in the file, as
    transformers maps the raw weights: pages are read on first use and count in RSS only then.
    Otherwise each storage is a fresh torch allocation filled from the file. ``offsets`` receives,
    for each mapped storage, ``data_ptr -> (offset in the file, nbytes)``.
    """
    import numpy as np
    import torch

    try:
        with open(path, "rb") as fh:
            n = int.from_bytes(fh.read(8), "little")
            if not 0 < n < 1 << 28:
                return None
            header = json.loads(fh.read(n))
            meta = header.pop("__metadata__", {})
            if meta.get("format") != FORMAT or meta.get("key") != key:
                return None
            entries = json.loads(meta["entries"])
            codes = {v: k for k, v in _DTYPE_CODES.items()}
            data_start = 8 + n
            size = os.fstat(fh.fileno()).st_size
            bases: list[torch.Tensor] = []
            for i in range(sum(1 for name in header if name.startswith("s"))):
                spec = header[f"s{i}"]
                begin, end = spec["data_offsets"]
                dtype = getattr(torch, codes[spec["dtype"]])
                nbytes = end - begin
                if nbytes != _numel(spec["shape"]) * torch.empty(0, dtype=dtype).element_size() or \
                        data_start + end > size:
                    return None
                if nbytes == 0:
                    base = torch.empty(spec["shape"], dtype=dtype)
                elif mmap and (data_start + begin) % _ALIGN == 0:
                    raw = np.memmap(fh, dtype=np.uint8, mode="c", offset=data_start + begin, shape=(nbytes,))
                    base = torch.from_numpy(raw).view(dtype)
                    if offsets is not None:
                        offsets[base.data_ptr()] = (data_start + begin, nbytes)
                else:
                    base = torch.empty(spec["shape"], dtype=dtype)
                    fh.seek(data_start + begin)
                    if fh.readinto(memoryview(base.view(torch.uint8).numpy()).cast("B")) != nbytes:
                        return None
                bases.append(base)
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError, AttributeError, RuntimeError) as e:
        log.warning("ignoring unreadable processed-weights cache %s: %s", path, e)
        return None
    try:
        if torch.device(device).type != "cpu":
            bases = [b.to(device) for b in bases]
        state = {}
        for name, index, size_, stride, offset, requires_grad in entries:
            base = bases[index]
            if offset == 0 and base.numel() == _numel(size_) and list(stride) == _contiguous_strides(size_):
                t = base.view(size_)
            else:
                t = base.as_strided(size_, stride, offset)  # checks the bounds against the storage
            if requires_grad:
                t.requires_grad_(True)
            state[name] = t
    except (ValueError, TypeError, IndexError, RuntimeError) as e:
        log.warning("ignoring malformed processed-weights cache %s: %s", path, e)
        return None
    return state


def install_processed(bridge: TransformerBridge, state: dict[str, torch.Tensor]) -> None:
    """Install processed weights the way ``TransformerBridge.process_weights`` does, then set up
    compatibility mode's flags and hooks (``enable_compatibility_mode(no_processing=True)``).

    ``state`` must be what :func:`boot` recorded for this very model; see the module docstring.
    """
    from transformer_lens.weight_processing import ProcessWeights

    fold_ln = COMPAT_FLAGS["fold_ln"]
    bridge._weights_processed = True
    adapter = bridge.adapter
    if adapter and hasattr(adapter, "preprocess_weights"):
        adapter._fold_ln_requested = fold_ln
    ProcessWeights.distribute_weights_to_components(state_dict=state, component_mapping=bridge.real_components)
    if fold_ln:
        bridge._fold_layer_norms_into_batched_experts()
    if adapter is not None:
        adapter.postprocess_weights(bridge)
    bridge.enable_compatibility_mode(disable_warnings=True, no_processing=True)


def _numel(size: list[int]) -> int:
    n = 1
    for s in size:
        n *= s
    return n


def _contiguous_strides(size: list[int]) -> list[int]:
    strides, acc = [], 1
    for s in reversed(size):
        strides.append(acc)
        acc *= max(s, 1)
    return strides[::-1]


# --------------------------------------------------------------------------- files


def _prune(cache_dir: Path) -> None:
    """Delete entries whose source directory is gone (e.g. the dense copy of an older GGUF release),
    and scratch files more than a day old (left by a process killed mid-write, or on Windows).

    Safe while another process maps the file: unlinking keeps the data until the last map closes."""
    for leftover in cache_dir.glob(".*.scratch*"):
        with contextlib.suppress(OSError):
            if time.time() - leftover.stat().st_mtime > 86400:
                leftover.unlink()
    for entry in cache_dir.glob("*.safetensors"):
        with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
            with open(entry, "rb") as fh:
                n = int.from_bytes(fh.read(8), "little")
                meta = json.loads(fh.read(min(n, 1 << 28))).get("__metadata__", {})
            source = meta.get("source")
            if meta.get("format") == FORMAT and source and not Path(source).is_dir():
                entry.unlink()
                (cache_dir / f".{entry.stem}.lock").unlink(missing_ok=True)


def _unlink(path: Path | None) -> None:
    if path is not None:
        with contextlib.suppress(OSError):
            path.unlink()
