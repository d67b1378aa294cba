"""The checks: each computes a :class:`~pytest_annotate.results.Result` (claim, measured numbers, verdict,
report) and has an ``assert_*`` twin made from it by :func:`~pytest_annotate.results.asserting`.

- :mod:`~pytest_annotate.checks.predictions`: top token, rank, probability, logit difference
- :mod:`~pytest_annotate.checks.logit_lens`: the first layer where an answer is top-1
- :mod:`~pytest_annotate.checks.necessity`: necessity and sufficiency of components, with controls
- :mod:`~pytest_annotate.checks.decomposition`: the residual stream's identities (a library self-check)
- :mod:`~pytest_annotate.checks.head_roles`: a head's role (induction, previous-token, ...)
- :mod:`~pytest_annotate.checks.composition`: K-composition between two heads
- :mod:`~pytest_annotate.checks.families`: claims over prompt families, judged with intervals (holds / inconclusive / fails)
- :mod:`~pytest_annotate.checks.copying`: copying the repeated half of random token sequences
- :mod:`~pytest_annotate.checks.patching`: patching a repeated half's component outputs with the first half's

Import them from :mod:`pytest_annotate`. This ``__init__`` imports nothing.
"""
