"""The annotation algebra: a prediction written as a sum of named, measured terms.

>>> from pytest_annotate.algebra import PromptedTransformer, expand, logits, predict
>>> T = PromptedTransformer(lab, "The capital of Ireland")            # doctest: +SKIP
>>> L = logits(T(" is"))                                              # doctest: +SKIP
>>> expand(L[" Dublin"]).top(3)                                       # doctest: +SKIP

Modules, one job each: :mod:`~pytest_annotate.algebra.prompted` (``PromptedTransformer`` and the
verbs), :mod:`~pytest_annotate.algebra.expressions` (the expression values),
:mod:`~pytest_annotate.algebra.notation` (text and LaTeX), :mod:`~pytest_annotate.algebra.snapshots`
(plain forms for snapshots). The numbers come from :mod:`pytest_annotate.checks.decomposition`.
"""

from pytest_annotate.algebra.expressions import (
    Expression,
    Logit,
    Logits,
    LogitSum,
    LogitTerm,
    Predictions,
    Prob,
    ProbSum,
    ResidualVector,
    VectorSum,
    VectorTerm,
)
from pytest_annotate.algebra.prompted import (
    PromptedTransformer,
    expand,
    logits,
    predict,
)
from pytest_annotate.algebra.snapshots import (
    LogitSnapshot,
    NamedLogit,
    NamedNorm,
    ProbSnapshot,
    TopSnapshot,
    VectorSnapshot,
)

__all__ = [
    "Expression",
    "Logit",
    "LogitSnapshot",
    "LogitSum",
    "LogitTerm",
    "Logits",
    "NamedLogit",
    "NamedNorm",
    "Predictions",
    "Prob",
    "ProbSnapshot",
    "ProbSum",
    "PromptedTransformer",
    "ResidualVector",
    "TopSnapshot",
    "VectorSnapshot",
    "VectorSum",
    "VectorTerm",
    "expand",
    "logits",
    "predict",
]
