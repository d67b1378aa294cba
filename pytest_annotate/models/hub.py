"""Reaching the HuggingFace hub (TransformerLens names and HuggingFace ids load from there), and failing
fast with a clear error when it cannot be reached.

How a model is named and resolved is in :mod:`pytest_annotate.models.spec`.
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
