"""Hypothesis profiles: the default is derandomised (the same examples on every run, so CI is
deterministic); ``EINDERIV_HYPOTHESIS_PROFILE=long`` is a deeper, randomised search.

tests/test_differential.py scales its example counts by 50 under ``long``.
"""

import os

from hypothesis import HealthCheck, settings

settings.register_profile("long", max_examples=1000, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much,
                                                 HealthCheck.data_too_large])
settings.register_profile("derandomised", derandomize=True, database=None)
settings.load_profile(os.environ.get("EINDERIV_HYPOTHESIS_PROFILE", "derandomised"))
