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
~4.2 GB instead of ~6.4 GB. A **warm** load reads the
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
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pytest_annotate.models.embedded import lock_file

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
                status = _process_and_record(bridge, path, key, str(Path(source_dir).resolve()))
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
    """
    from transformers import AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(source, add_bos_token=True, **kwargs)
    except ValueError:
        tokenizer = None
    if tokenizer is None or tokenizer.bos_token is None:
        return AutoTokenizer.from_pretrained(source, **kwargs)
    return tokenizer


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

    def __init__(self, bridge: TransformerBridge, path: Path, key: str, source: str) -> None:
        self.bridge = bridge
        self.source = source
        self.path = path
        self.key = key
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
            self.tmp = _write_entry(self.path, state_dict, self.key, self.raw_storages, self.source)
        except _NotCacheable as e:
            self.error = str(e)
        except OSError as e:
            self.error = f"could not write {self.path}: {e}"
        except Exception as e:  # never let the cache break a load: the normal path goes on
            self.error = f"could not record the processed weights: {type(e).__name__}: {e}"


def _process_and_record(bridge: TransformerBridge, path: Path, key: str, source: str) -> str:
    """Run TransformerLens's own compatibility-mode processing and file its processed weights."""
    from transformer_lens.weight_processing import ProcessWeights

    with _OBSERVING:
        status = _process_and_record_locked(bridge, path, key, source, ProcessWeights)
    if status == "written":
        _prune(path.parent)
    return status


_OBSERVING = threading.Lock()
"""One observed processing at a time in this process, so the wrapper is always undone in order."""


def _process_and_record_locked(bridge: TransformerBridge, path: Path, key: str, source: str,
                               ProcessWeights: Any) -> str:
    recorder = _Recorder(bridge, path, key, source)
    original = ProcessWeights.__dict__["distribute_weights_to_components"]
    real = original.__func__

    def observed(state_dict: dict[str, Any], component_mapping: Any, verbose: bool = False) -> None:
        recorder.observe(state_dict, component_mapping)
        recorder.depth += 1
        try:
            return real(state_dict, component_mapping, verbose)
        finally:
            recorder.depth -= 1

    ProcessWeights.distribute_weights_to_components = staticmethod(observed)
    try:
        with _draining_passes(ProcessWeights):
            bridge.enable_compatibility_mode(disable_warnings=True, **COMPAT_FLAGS)
    except BaseException:
        _unlink(recorder.tmp)
        raise
    finally:
        ProcessWeights.distribute_weights_to_components = original
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


class _Draining(dict):  # type: ignore[type-arg]
    """A state dict that hands over each entry as it is read by ``items()``.

    A pass that begins ``{k: v.clone() for k, v in state_dict.items()}`` then frees each input
    tensor as soon as its copy exists (when nothing else holds it), instead of holding the whole
    input dict until it returns. Same keys, order, values and clones: only the moment the inputs
    are freed changes."""

    def items(self) -> Any:
        for key in list(self):
            yield key, self.pop(key)


@contextlib.contextmanager
def _draining_passes(ProcessWeights: Any) -> Any:
    """Within the block, the three cloning passes of ``ProcessWeights.process_weights`` free their
    input as they copy it (:class:`_Draining`).

    Without this, each pass holds its input and its full copy at once, on top of the raw weights:
    Gemma 3 270M peaks at ~6.4 GB for ~1.7 GB of processed weights. ``process_weights`` never
    reads a pass's input again (it rebinds the name to the result), so its dict is emptied into the
    one the pass gets. Only calls made by ``process_weights`` in this thread drain, and only while
    :data:`DRAINED_SOURCES` match; otherwise the block changes nothing."""
    if source_hashes(DRAINED_SOURCES) != DRAINED_SOURCES:
        yield
        return
    caller = ProcessWeights.process_weights.__code__
    thread = threading.get_ident()
    originals = {name: ProcessWeights.__dict__[name] for name in ("fold_layer_norm", "center_unembed",
                                                                  "fold_value_biases")}

    def draining(real: Any) -> Any:
        def call(state_dict: Any, *args: Any, **kwargs: Any) -> Any:
            if (threading.get_ident() != thread or type(state_dict) is not dict
                    or sys._getframe(1).f_code is not caller):
                return real(state_dict, *args, **kwargs)
            handed = _Draining(state_dict)
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


class _NotCacheable(Exception):
    pass


def _write_entry(path: Path, state: dict[str, Any], key: str, raw_storages: set[int], source: str) -> Path:
    """Write ``state`` as a safetensors file (one tensor per storage, layouts in the metadata)."""
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
        with open(tmp, "wb") as fh:
            fh.write(len(blob).to_bytes(8, "little"))
            fh.write(blob)
            for _, spec, storage in layout:
                if storage is None:
                    fh.write(bytes(spec["shape"][0]))
                else:
                    fh.write(_storage_bytes(storage["tensor"]))
            fh.flush()
            os.fsync(fh.fileno())
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


def _read_entry(path: Path, key: str, device: str, mmap: bool) -> dict[str, torch.Tensor] | None:
    """The processed state dict filed under ``key``, or None (absent, stale or unreadable).

    With ``mmap`` each storage is a private (copy-on-write) memory map of its bytes in the file, as
    transformers maps the raw weights: pages are read on first use and count in RSS only then.
    Otherwise each storage is a fresh torch allocation filled from the file.
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
    """Delete entries whose source directory is gone (e.g. the dense copy of an older GGUF release).

    Safe while another process maps the file: unlinking keeps the data until the last map closes."""
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
