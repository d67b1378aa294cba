"""The component and intervention layer: names researchers write (``L9``, ``MLP9``, ``L5H5``, ``L0-L7``),
and the edits made to a forward pass (zero / mean / resample ablation, skip, keep-only circuits, bypassed
norms), each a frozen, hashable value that proves it took effect.

- :mod:`~pytest_annotate.interventions.components`: the component parser and model shapes
- :mod:`~pytest_annotate.interventions.heads`: attention-head names (``L5H5`` to ``(5, 5)`` and back)
- :mod:`~pytest_annotate.interventions.ablations`: :class:`Intervention`, ``ablate``, ``skip``, ``keep_only``,
  ``bypass_norm`` and their batched hooks

Import from :mod:`pytest_annotate` (``from pytest_annotate import ablate, keep_only``); this package's
``__init__`` imports nothing, so its modules can import each other without cycles.
"""
