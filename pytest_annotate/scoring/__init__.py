"""The reading and scoring engines below the checks: forward passes through the Lab turned into numbers.

- :mod:`~pytest_annotate.scoring.answers`: an answer's teacher-forced log-probability (multi-token answers)
- :mod:`~pytest_annotate.scoring.reading`: a :class:`Prediction` read at the last position (rank, top-k)
- :mod:`~pytest_annotate.scoring.sweeps`: many interventions scored in batched forwards
- :mod:`~pytest_annotate.scoring.decomposition`: the residual stream as a sum of component writes
- :mod:`~pytest_annotate.scoring.head_scores`: per-head role scores (induction, previous-token, ...)
- :mod:`~pytest_annotate.scoring.weights`: the circuit weights of heads, with frozen norms

Checks (:mod:`pytest_annotate.checks`) judge claims on these numbers. This ``__init__`` imports nothing.
"""
