"""The behaviour suite. Its set-up lives in the plugin (``pytest_annotate.plugin``), not here.

A behaviour says how its numbers were published in its marker, and the plugin runs it that way or
skips it saying why and what to pass::

    pytestmark = pytest.mark.model("pythia-160m-deduped", processing="raw", bos=False)

``processing`` and ``dtype`` must match the session (``--processing``, ``--dtype``); ``bos`` is
applied to the model while the test runs. A session that selects behaviours and judges none of
them (all skipped) exits with code 5 and counts what it skipped, by reason.
"""
