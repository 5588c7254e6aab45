"""The four custom resources (Function, Version, Alias, EventSourceMapping) as pydantic models.

The models are the single source of truth: validation, defaults and the CRDs in `crds/` are all
derived from them.
"""
