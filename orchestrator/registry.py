"""The one registry of job types: request model, allocator strategy, flowgraph template, gating.

API validation (the discriminated union :data:`JobRequestBody`), the scheduler (strategy) and
dispatch (template) all read :data:`JOB_TYPES`; adding a job type means adding one entry here.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Annotated, Any, Union

from drift.orchestrator.allocator import (
    DirectionFindingStrategy,
    PropagationTestStrategy,
    SpectrumScanStrategy,
    Strategy,
)
from drift.orchestrator.jobs import (
    DirectionFindingJob,
    JobBase,
    PropagationTestJob,
    SpectrumScanJob,
)
from pydantic import Field


@dataclass(frozen=True)
class JobType:
    name: str
    model: type[JobBase]
    strategy: Strategy[Any]
    #: ``flowgraphs/<template>.grc``
    template: str
    #: the job makes a node transmit: the submitter needs the ``transmit`` permission
    transmits: bool = False

    def parse(self, parameters: Mapping[str, Any], priority: int = 0) -> JobBase:
        """The request model back from what :func:`stored_parameters` kept."""
        return self.model.model_validate({**parameters, "type": self.name, "priority": priority})


JOB_TYPES: Mapping[str, JobType] = MappingProxyType(
    {
        jt.name: jt
        for jt in (
            JobType("spectrum_scan", SpectrumScanJob, SpectrumScanStrategy(), "spectrum_scan"),
            JobType(
                "direction_finding",
                DirectionFindingJob,
                DirectionFindingStrategy(),
                "direction_finding",
            ),
            JobType(
                "propagation_test",
                PropagationTestJob,
                PropagationTestStrategy(),
                "propagation_test",
                transmits=True,
            ),
        )
    }
)

#: What ``POST /api/v1/jobs`` accepts: one of the registered models, chosen by ``type``.
JobRequestBody = Annotated[
    Union[tuple(jt.model for jt in JOB_TYPES.values())],  # type: ignore[valid-type]  # noqa: UP007
    Field(discriminator="type"),
]


def job_type(name: str) -> JobType:
    return JOB_TYPES[name]


def stored_parameters(request: JobBase) -> dict[str, Any]:
    """The parameters kept in ``jobs.parameters``: everything but ``type`` and ``priority``."""
    return request.model_dump(mode="json", exclude={"type", "priority"})
