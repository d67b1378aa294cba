"""The pytest integration, and the only part of the package that imports pytest.

- :mod:`~pytest_annotate.plugin.core`: the entry point (``pytest11``): options, markers, the ``model``
  and ``cache`` fixtures, isolation checks, the header and the terminal summary
- :mod:`~pytest_annotate.plugin.snapshots`: the tolerant ``snapshot`` fixture, drift and pruning
- :mod:`~pytest_annotate.plugin.report`: ``--annotate-report``
- :mod:`~pytest_annotate.plugin.parity`: ``--parity``, the TransformerLens-vs-HuggingFace oracle
- :mod:`~pytest_annotate.plugin.keys`: the stash keys they share
"""

#: The entry point (``pytest11: annotate = pytest_annotate.plugin``) registers these.
pytest_plugins = ["pytest_annotate.plugin.core", "pytest_annotate.plugin.snapshots", "pytest_annotate.plugin.report",
                  "pytest_annotate.plugin.parity"]
