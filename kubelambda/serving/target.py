"""What name resolution hands down: one configuration as every layer below it needs it.

A gateway works a `Target` out once per configuration when it takes a catalog (`Catalog.serve`):
the revision environments are pooled by, the runtime of the generic pool it may draw from, the
`EnvironmentSpec` of each initialization type and the shape a pod must have. The pool and the
providers read these facts and never look the function up again. A configuration this gateway
cannot serve (an Image package without a container engine, code from a source it cannot reach)
still gets a Target, carrying the Lambda error its invocations answer with. Pure.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Literal

from kubelambda.runtime.spec import EnvironmentSpec
from kubelambda.serving.errors import LambdaError
from kubelambda.serving.shape import PodShape

InitType = Literal["on-demand", "provisioned-concurrency"]


@dataclass(frozen=True, slots=True)
class Target:
    revision: str  # identifies the configuration; environments are pooled by it
    runtime: str  # the generic pool it may draw from ("" for an Image package)
    shape: PodShape
    on_demand: EnvironmentSpec | None = None
    provisioned: EnvironmentSpec | None = None  # the same, initialized ahead of any call
    problem: LambdaError | None = None  # set: why this gateway cannot serve it

    @property
    def pinned(self) -> bool:
        """Whether its revision pins everything it is made of, so a later catalog may keep it:
        not with a problem (a ConfigMap may be readable now), nor with secret values (the
        revision leaves them out, and a Secret may have been rotated)."""
        specs = (self.on_demand, self.provisioned)
        return self.problem is None and not any(s is not None and s.secrets for s in specs)

    def spec(self, init: InitType = "on-demand") -> EnvironmentSpec:
        """The spec to specialize with; raises the Lambda error of an unservable target."""
        chosen = self.on_demand if init == "on-demand" else self.provisioned
        if chosen is None:
            raise self.error()
        return chosen

    def error(self) -> LambdaError:
        """Why this target cannot be served, as a fresh exception (re-raising one instance would
        grow its traceback with every invocation)."""
        problem = self.problem or LambdaError("ServiceException", f"{self.revision}: no spec")
        return dataclasses.replace(problem)
