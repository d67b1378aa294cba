"""Structural dry run: the declared architecture with random weights.

Real GPT-2 / Pythia weights cannot always be had (no hub access, CI without a
cache). ``--random-weights`` builds the model from the Hugging Face
``config.json`` shipped in `pytest_annotate/models/configs`, initialises it with
random weights, and pairs it with the model's real tokenizer, shipped in
:mod:`pytest_annotate.tokenizers`. Every behaviour's plumbing (component
names, hook points, answer tokenization, tensor shapes) then runs without the
weights; the verdicts mean nothing and are not judged.

Nothing here touches the network: configs and tokenizers are read from the
package, and the model is built with ``AutoModelForCausalLM.from_config``.
"""

from __future__ import annotations

import json
import warnings
from dataclasses import dataclass
from importlib import resources
from typing import Any

__all__ = [
    "RandomModel",
    "TokenizerFallbackWarning",
    "available_random_configs",
    "boot_random_bridge",
    "build_random_model",
    "load_random_config",
    "load_shipped_tokenizer",
]

# Config files are named after the official HF name with "/" spelled "__".
_CONFIG_DIR = "configs"
_TOKENIZER_DIR = "tokenizers"

# model_type of a shipped config -> (folder under tokenizers/, transformers
# tokenizer class, what it is). The folders hold no tokenizer_config.json, so
# the class is named here rather than guessed by AutoTokenizer.
_TOKENIZER_FOR_MODEL_TYPE: dict[str, tuple[str, str, str]] = {
    "gpt2": ("gpt2", "GPT2Tokenizer", "GPT-2 BPE"),
    "gpt_neox": ("gpt-neox-20b", "GPTNeoXTokenizer", "GPT-NeoX-20B BPE"),
}


class TokenizerFallbackWarning(UserWarning):
    """The model's own tokenizer is not shipped; GPT-2's BPE stands in for it."""


@dataclass(frozen=True, eq=False)
class RandomModel:
    """A randomly initialised model of a real architecture, ready for TransformerBridge.

    ``hf_model`` is in eval mode, float32, on the CPU, with eager attention.
    ``tokenizer`` prepends BOS (``add_bos_token=True``) as TransformerLens
    expects, so the bridge uses it as it is instead of reloading it from the hub.
    """

    official_name: str
    hf_model: Any  # transformers.PreTrainedModel
    tokenizer: Any  # transformers.PreTrainedTokenizerBase
    tokenizer_is_real: bool
    tokenizer_name: str
    seed: int
    note: str


def _config_filename(official_name: str) -> str:
    return official_name.replace("/", "__") + ".json"


def available_random_configs() -> list[str]:
    """Official HF names for which a config is shipped, sorted."""
    names = []
    for entry in resources.files("pytest_annotate.models").joinpath(_CONFIG_DIR).iterdir():
        if entry.name.endswith(".json"):
            names.append(entry.name[: -len(".json")].replace("__", "/"))
    return sorted(names)


def _resolve_name(name: str) -> str:
    available = available_random_configs()
    if name in available:
        return name
    # Accept TransformerLens' deprecated aliases (e.g. "pythia-70m") the way
    # boot_transformers does, but only when they land on a shipped config.
    try:
        from transformer_lens.tools.model_registry.registry_io import (
            resolve_model_alias,
        )

        official = resolve_model_alias(name)
    except Exception:  # registry layout differs between TransformerLens versions
        official = None
    if official is not None and official in available:
        return official
    raise ValueError(
        f"no random-weights config for model {name!r}; "
        f"available: {', '.join(available)}"
    )


def load_random_config(official_name: str) -> dict:
    """The shipped HF ``config.json`` contents for ``official_name``."""
    name = _resolve_name(official_name)
    path = resources.files("pytest_annotate.models").joinpath(_CONFIG_DIR, _config_filename(name))
    return json.loads(path.read_text(encoding="utf-8"))


def load_shipped_tokenizer(model_type: str) -> tuple[Any, bool, str]:
    """The shipped tokenizer for ``model_type``: ``(tokenizer, is_real, label)``.

    Falls back to GPT-2's BPE (``is_real`` False, with a
    :class:`TokenizerFallbackWarning`) when the architecture's own tokenizer is
    not shipped.
    """
    import transformers

    spec = _TOKENIZER_FOR_MODEL_TYPE.get(model_type)
    is_real = spec is not None and _tokenizer_path(spec[0]).is_dir()
    if is_real:
        folder, class_name, label = spec
    else:
        folder, class_name, label = _TOKENIZER_FOR_MODEL_TYPE["gpt2"]
        label += f" (stand-in for {model_type})"
        warnings.warn(
            f"no tokenizer shipped for model_type {model_type!r}: using GPT-2's BPE "
            "instead, so token ids and single-token answers differ from the real model",
            TokenizerFallbackWarning,
            stacklevel=3,
        )
    path = _tokenizer_path(folder)
    # add_bos_token=True: TransformerLens' setup_tokenizer otherwise re-loads the
    # tokenizer with AutoTokenizer.from_pretrained(name_or_path, add_bos_token=True).
    tokenizer = getattr(transformers, class_name).from_pretrained(
        str(path), add_bos_token=True, local_files_only=True
    )
    return tokenizer, is_real, label


def _tokenizer_path(folder: str):
    # Package data is a real directory whenever the package is installed from a
    # wheel or in editable mode; tokenizers need a filesystem path.
    return resources.files("pytest_annotate.models").joinpath(_TOKENIZER_DIR, folder)


def build_random_model(official_name: str, *, seed: int = 0) -> RandomModel:
    """Build ``official_name``'s architecture with random weights (deterministic in ``seed``).

    Raises ``ValueError`` for a name with no shipped config. The global torch
    RNG state is left as it was.
    """
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    name = _resolve_name(official_name)
    config_dict = load_random_config(name)
    model_type = config_dict["model_type"]
    config = AutoConfig.for_model(**config_dict)
    config.name_or_path = name

    tokenizer, is_real, label = load_shipped_tokenizer(model_type)

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        # dtype explicitly: transformers 5 builds in config.dtype, which is
        # float16 for Pythia's published configs.
        model = AutoModelForCausalLM.from_config(
            config, dtype=torch.float32, attn_implementation="eager"
        )
    model.eval()

    note = f"random weights (seed {seed}): plumbing only, verdicts are not judged; tokenizer: {label}"
    if not is_real:
        note += " - NOT the model's own tokenizer, token ids differ"
    return RandomModel(
        official_name=name,
        hf_model=model,
        tokenizer=tokenizer,
        tokenizer_is_real=is_real,
        tokenizer_name=label,
        seed=seed,
        note=note,
    )


def boot_random_bridge(
    official_name: str,
    *,
    seed: int = 0,
    device: str = "cpu",
    compatibility_mode: bool = True,
) -> tuple[Any, RandomModel]:
    """Build a random model and wrap it in a ``TransformerBridge``: ``(bridge, random_model)``.

    Moves the model to ``device`` first: ``boot_transformers`` takes a
    pre-loaded ``hf_model`` as it is and only records ``device`` in
    ``cfg.device``, so without the move the bridge would send tokens to one
    device and find the weights on another. The bridge replaces the model's
    submodules in place, so ``random_model.hf_model`` belongs to this bridge.
    """
    from transformer_lens.model_bridge import TransformerBridge

    random_model = build_random_model(official_name, seed=seed)
    random_model.hf_model.to(device)
    bridge = TransformerBridge.boot_transformers(
        random_model.official_name,
        hf_model=random_model.hf_model,
        tokenizer=random_model.tokenizer,
        device=device,
    )
    if compatibility_mode:
        bridge.enable_compatibility_mode(disable_warnings=True)
    return bridge, random_model
