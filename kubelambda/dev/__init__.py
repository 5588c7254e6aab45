"""Embedded single-machine mode: `kubelambda dev DIR`."""
