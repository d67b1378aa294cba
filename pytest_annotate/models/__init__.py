"""Models: what the user asked for, where its weights come from, and the loaded :class:`~pytest_annotate.lab.Lab`.

One job per module, from the bottom:

- :mod:`~pytest_annotate.models.embedded`: the embedded GGUF models (registry, dense copy in the cache)
- :mod:`~pytest_annotate.models.random_weights`: shipped configs and tokenizers for ``--random-weights``
- :mod:`~pytest_annotate.models.spec`: :class:`ModelSpec` (the request) and :func:`resolve` (to a source)
- :mod:`~pytest_annotate.models.hub`: reaching the HuggingFace hub, and failing fast when it cannot be reached
- :mod:`~pytest_annotate.models.processed`: the on-disk cache of compat-processed weights
- :mod:`~pytest_annotate.models.load`: :func:`load_model` / :func:`load`, a resolved model into a ``Lab``

Nothing here imports torch at import time.
"""

from pytest_annotate.models.embedded import (
           EMBEDDED,
           EmbeddedModel,
           cache_root,
           dense_copy,
)
from pytest_annotate.models.load import load, load_model
from pytest_annotate.models.spec import DEFAULT_MODEL, ModelSpec, ResolvedModel, resolve

__all__ = ["DEFAULT_MODEL", "EMBEDDED", "EmbeddedModel", "ModelSpec", "ResolvedModel", "cache_root", "dense_copy", "load",
           "load_model", "resolve"]
