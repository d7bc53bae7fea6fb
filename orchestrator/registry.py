"""The one registry of job types: request model, allocator strategy, flowgraph template, gating.

API validation (the discriminated union :data:`JobRequestBody`), the scheduler (strategy) and
dispatch (template) all read :data:`JOB_TYPES`; adding a job type means adding one entry here.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
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
    CustomFlowgraphJob,
    DirectionFindingJob,
    JobBase,
    PropagationTestJob,
    SpectrumScanJob,
)
from drift.orchestrator.templates import check_custom_flowgraph
from pydantic import Field
from sqlalchemy.orm import Session


@dataclass(frozen=True)
class JobType:
    name: str
    model: type[JobBase]
    strategy: Strategy[Any]
    #: ``flowgraphs/<template>.grc``
    template: str
    #: the job makes a node transmit: the submitter needs the ``transmit`` permission
    transmits: bool = False
    #: checks that need the database (a referenced template exists and is approved); raise
    #: :class:`JobCheckError` naming the field
    check: Callable[[Session, JobBase], None] | None = None

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
                "iq_capture",
            ),
            JobType(
                "propagation_test",
                PropagationTestJob,
                PropagationTestStrategy(),
                "propagation_test",
                transmits=True,
            ),
            JobType(
                "custom_flowgraph",
                CustomFlowgraphJob,
                SpectrumScanStrategy(),
                "custom",
                check=check_custom_flowgraph,
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
