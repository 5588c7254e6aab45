"""Shared pytest configuration for every suite."""

from hypothesis import settings

# Hypothesis's per-example deadline is a timed assertion: on a loaded 2-core CI machine a pure
# function's first example can take far longer than 200 ms. Tests assert behaviour, not speed.
settings.register_profile("kubelambda", deadline=None)
settings.load_profile("kubelambda")
