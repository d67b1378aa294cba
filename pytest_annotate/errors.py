"""The exceptions pytest-annotate raises for bad input.

Every error says what was wrong and what would be valid. They derive from the builtin
exception a caller would expect (``ValueError`` for a bad value, ``RuntimeError`` for a
machine that lacks something), so ``pytest.raises(ValueError)`` keeps working.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class AnnotateError(Exception):
    """Base class of every error pytest-annotate raises on purpose."""


class ModelLoadError(AnnotateError, RuntimeError):
    """A model could not be loaded: the message says what was tried and how to fix it."""


class ModelSpecError(AnnotateError, ValueError):
    """An option describing the model (name, checkpoint, dtype, device...) is invalid."""


class ComponentError(AnnotateError, ValueError):
    """A component name (``L9``, ``MLP9``, ``L5H5``...) is malformed or out of range."""


class PromptError(AnnotateError, ValueError):
    """A prompt or an answer cannot be used with this model's tokenizer."""


class InterventionError(AnnotateError, RuntimeError):
    """An intervention is invalid, or did not change the activations it targets."""


class WeakClaimWarning(UserWarning):
    """A claim that holds by construction on some input, random weights included (e.g. "L4H11 is the
    top previous-token head" with no score bound: every role has a top head in every model). The check
    still runs; the warning says what to add to make the claim about this model."""


def close_matches(bad: str, valid: Iterable[str], n: int = 3) -> str:
    """Return a ``" Did you mean 'x'?"`` suffix for a near-miss, or ``""``.

    >>> close_matches("gpt2-smal", ["gpt2-small", "gpt2-medium"])
    " Did you mean 'gpt2-small'?"
    >>> close_matches("zzz", ["gpt2-small"])
    ''
    """
    lowered = {v.lower(): v for v in valid}
    found = difflib.get_close_matches(bad.lower(), list(lowered), n=n, cutoff=0.75)
    if not found:
        return ""
    return " Did you mean " + " or ".join(repr(lowered[f]) for f in found) + "?"


class VerdictError(AnnotateError, AssertionError):
    """A check ran and its verdict is against the claim. Raised by every ``assert_*`` helper.

    Carries the result object, so that plugins (the report, ``--random-weights``) can tell a
    finding that does not hold from a test that is broken.
    """

    def __init__(self, message: str, result: object = None) -> None:
        super().__init__(message)
        self.result = result
