"""Hypothesis profiles: ``EINDERIV_HYPOTHESIS_PROFILE=long`` for a deeper, randomised search.

The default profile keeps the suite fast; tests/test_differential.py scales its
example counts by 50 and drops derandomisation under ``long``.
"""

import os

from hypothesis import HealthCheck, settings

settings.register_profile("long", max_examples=1000, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much,
                                                 HealthCheck.data_too_large])
settings.load_profile(os.environ.get("EINDERIV_HYPOTHESIS_PROFILE", "default"))
