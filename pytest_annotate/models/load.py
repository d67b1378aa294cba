""":func:`load_model` / :func:`load`: a resolved model's weights, through TransformerLens 4.x's
``TransformerBridge``, into a :class:`~pytest_annotate.lab.Lab` on the device and dtype asked for.

How a model is named and resolved (the four kinds of source) is in :mod:`pytest_annotate.models.spec`.
"""


from __future__ import annotations

from collections.abc import Callable

import importlib.metadata
import importlib.util
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pytest_annotate.errors import ModelLoadError, ModelSpecError

if TYPE_CHECKING:
    import torch

    from pytest_annotate.lab import Lab
from pytest_annotate.models.embedded import cache_root, dense_copy
from pytest_annotate.models.hub import _ensure_offline_if_unreachable, _hub_load_error
from pytest_annotate.models.spec import (
    DEFAULT_MODEL,
    DTypeName,
    ModelSpec,
    Processing,
    ResolvedModel,
    resolve,
)

# --------------------------------------------------------------------------- devices and dtypes


def resolve_device(device: str) -> str:
    """Turn ``auto`` into a concrete device, and refuse one this machine lacks."""
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ModelSpecError(
                f"--device {device}: CUDA is not available on this machine (torch {torch.__version__}, "
                f"built {'with' if torch.version.cuda else 'without'} CUDA). Use --device cpu or --device auto"
            )
        index = int(device.split(":")[1]) if ":" in device else 0
        if index >= torch.cuda.device_count():
            raise ModelSpecError(
                f"--device {device}: only {torch.cuda.device_count()} CUDA device(s) here; "
                f"valid: {', '.join(f'cuda:{i}' for i in range(torch.cuda.device_count()))}"
            )
    if device == "mps" and not torch.backends.mps.is_available():
        raise ModelSpecError("--device mps: MPS is not available on this machine. Use --device cpu")
    return device


def torch_dtype(name: str, device: str) -> torch.dtype:
    import torch

    dtype = getattr(torch, name)
    if dtype is torch.bfloat16 and device.startswith("cuda") and not torch.cuda.is_bf16_supported():
        raise ModelSpecError(f"--dtype bfloat16: the GPU {device} does not support bfloat16; use float16 or float32")
    return dtype


# --------------------------------------------------------------------------- loading


@dataclass(frozen=True)
class LoadTiming:
    """Seconds spent in each stage of a load, for the header and the benchmark."""

    convert: float
    hf_load: float
    boot: float
    processing: float

    @property
    def total(self) -> float:
        return self.convert + self.hf_load + self.boot + self.processing


def load_model(
    name: str = DEFAULT_MODEL,
    *,
    checkpoint: int | None = None,
    revision: str | None = None,
    device: str = "auto",
    dtype: DTypeName = "float32",
    processing: Processing = "compat",
    random_weights: bool = False,
    trust_remote_code: bool = False,
    device_map: str | None = None,
) -> Lab:
    """Load a model and wrap it in a :class:`~pytest_annotate.lab.Lab` (what the ``model`` fixture gives).

    Usable from a notebook::

        >>> lab = load_model("gemma-3-270m", device="cpu")        # doctest: +SKIP
        >>> lab.model_id                                          # doctest: +SKIP
        'gemma-3-270m-q4_k_m'

    Raises :class:`ModelSpecError` for an invalid request and :class:`ModelLoadError` when
    the weights cannot be had; both say what was tried and how to fix it.
    """
    spec = ModelSpec(name, checkpoint, revision, device, dtype, processing, random_weights, trust_remote_code,
                     device_map)
    return load(resolve(spec))


def load(resolved: ResolvedModel, *, progress: Callable[[int, int, str], None] | None = None) -> Lab:
    """Load an already resolved model (see :func:`load_model`). ``progress(done_bytes, total_bytes,
    what)`` hears about a first-use GGUF conversion of an embedded model (a tqdm bar on a terminal
    without it)."""

    from pytest_annotate.lab import Lab
    from pytest_annotate.models import processed as fastload

    spec = resolved.spec
    device = resolve_device(spec.device)
    dtype = torch_dtype(spec.dtype, device)
    t0 = time.perf_counter()
    source = resolved.source
    if resolved.kind == "embedded":
        assert resolved.embedded is not None
        source = str(dense_copy(resolved.embedded, progress=progress))
    t1 = time.perf_counter()
    if resolved.kind == "random":
        from pytest_annotate.models.random_weights import build_random_model

        random_model = build_random_model(resolved.source)
        hf_model, tokenizer = random_model.hf_model, random_model.tokenizer
    else:
        hf_model, tokenizer = _load_hf(resolved, source, dtype)
    placed = getattr(hf_model, "hf_device_map", None)
    if placed:
        # accelerate placed each part; inputs go where the embedding is.
        offloaded = sorted({str(v) for v in placed.values() if str(v) in ("cpu", "disk")})
        if offloaded and spec.processing == "compat":
            raise ModelLoadError(
                f"--device-map {spec.device_map} put parts of {spec.name!r} on {' and '.join(offloaded)} "
                f"({_describe_placement(placed)}); TransformerLens folds the compat-processed weights only "
                "when every part is on a GPU. Fix: --processing raw, or run where the GPUs hold the model"
            )
        device = str(_first_device(hf_model))
    else:
        # boot_transformers(hf_model=...) records the device but does not move the weights.
        hf_model = hf_model.to(device=device, dtype=dtype)
    t2 = time.perf_counter()
    # Compat processing is cached on disk (pytest_annotate.models.processed) for sources that are local
    # directories: the embedded models' dense copies and local HuggingFace directories.
    cache_dir = cache_root() / "processed" if resolved.kind in ("embedded", "local") else None
    try:
        booted = fastload.boot(
            source, hf_model, tokenizer, device=device, dtype=dtype, processing=spec.processing,
            cache_dir=cache_dir, trust_remote_code=spec.trust_remote_code,
        )
    except ValueError as e:
        raise ModelLoadError(
            f"TransformerLens {_version('transformer-lens')} cannot wrap {resolved.spec.name!r} "
            f"(architecture {getattr(hf_model.config, 'architectures', None)}): {e}".split(". Available")[0]
        ) from e
    bridge = booted.bridge
    t3 = t2 + booted.boot_s
    bridge.eval()
    t4 = time.perf_counter()
    return Lab(bridge, resolved, device=device, timing=LoadTiming(t1 - t0, t2 - t1, t3 - t2, t4 - t3))


def _load_hf(resolved: ResolvedModel, source: str, dtype: torch.dtype) -> tuple[object, object]:
    from transformers import AutoModelForCausalLM

    from pytest_annotate.models.processed import load_tokenizer

    spec = resolved.spec
    offline = False
    if resolved.kind == "hub":
        offline = _ensure_offline_if_unreachable()
    kwargs = dict(revision=resolved.revision, trust_remote_code=spec.trust_remote_code)
    try:
        # Loaded with add_bos_token=True where TransformerLens would otherwise load it a second time.
        tokenizer = load_tokenizer(source, **kwargs)
        # Safetensors first; a .bin falls back to torch.load(weights_only=True) inside transformers.
        placement = {} if spec.device_map is None else {"device_map": spec.device_map}
        model = AutoModelForCausalLM.from_pretrained(source, dtype=dtype, attn_implementation="eager",
                                                     **placement, **kwargs)
    except (OSError, ValueError) as e:
        if resolved.kind == "hub":
            raise _hub_load_error(resolved, offline, e) from e
        if "trust_remote_code" in str(e):
            raise ModelLoadError(
                f"{source} contains custom code; pytest-annotate runs it only if you pass --trust-remote-code"
            ) from e
        raise ModelLoadError(f"Could not load the model directory {source}: {type(e).__name__}: {e}") from e
    except Exception as e:
        # A truncated safetensors file (SafetensorError) or a pickle that torch.load(weights_only=True)
        # refuses (UnpicklingError) would otherwise end in a traceback from inside the loaders.
        if type(e).__name__ not in ("SafetensorError", "UnpicklingError"):
            raise
        first = next((line for line in str(e).splitlines() if "GLOBAL" in line), str(e).splitlines()[0] if str(e) else "")
        why = ("a pickled weights file holds code, which is refused (weights load with torch.load(weights_only=True))"
               if type(e).__name__ == "UnpicklingError" else "a weights file is corrupt or truncated")
        raise ModelLoadError(
            f"Could not load the model directory {source}: {why}: {type(e).__name__}: {first.strip().rstrip('.')}. "
            "Fix: re-save the model with save_pretrained(...) (safetensors), or re-download it"
        ) from e
    if not getattr(model.config, "architectures", None):
        model.config.architectures = [type(model).__name__]
    return model, tokenizer


def _describe_placement(placed: dict[str, Any]) -> str:
    counts: dict[str, int] = {}
    for where in placed.values():
        counts[str(where)] = counts.get(str(where), 0) + 1
    return ", ".join(f"{n} part{'s' if n > 1 else ''} on {d}" for d, n in counts.items())


def _first_device(hf_model: Any) -> Any:
    """The device of the input embedding of a model that accelerate spread over several devices."""
    return hf_model.get_input_embeddings().weight.device


def _version(dist: str) -> str:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"
