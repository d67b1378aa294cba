"""Project-wide pytest set-up: hypothesis profiles.

In CI (``CI=true``) hypothesis is derandomized, so two runs draw the same examples and give the
same numbers; locally it explores new examples each run and remembers failures in its database.
Model behaviour checks are slow per example, so no deadline applies.
"""

import os

from hypothesis import HealthCheck, settings

settings.register_profile(
    "ci", derandomize=True, deadline=None, database=None, print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
settings.register_profile(
    "dev", deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci" if os.environ.get("CI") else "dev"))
