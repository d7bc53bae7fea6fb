"""The one registry of job types. A job type is one object: its request model, allocator
strategy, binding (the flowgraph template and how job fields reach its parameters), analysis
(what the nodes delivered -> the job's stored result) and gating.

API validation (the discriminated union :data:`JobRequestBody`), the scheduler (strategy,
timing), the job compiler on the nodes (binding) and the analysis worker (analysis) all read
:data:`JOB_TYPES`; adding a job type means adding one :class:`JobType` here.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import TYPE_CHECKING, Annotated, Any, Union

from pydantic import BaseModel, Field

from drift.orchestrator import compiler
from drift.orchestrator.allocator import (
    DirectionFindingStrategy,
    PropagationTestStrategy,
    SpectrumScanStrategy,
    Strategy,
)
from drift.orchestrator.jobs import (
    DF_MIN_NODES,
    CustomFlowgraphJob,
    DirectionFindingJob,
    JobBase,
    PropagationTestJob,
    SpectrumScanJob,
)

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from drift.orchestrator.analysis.base import AnalysisInput

#: ``analyse(job, store) -> result``: see :mod:`drift.orchestrator.analysis.base`
Analysis = Callable[["AnalysisInput", Any], BaseModel]


def _later(path: str) -> Callable[..., Any]:
    """A function by dotted path, imported when first called: analyses import numerical
    libraries (and GNU Radio's DF module) that neither the API nor the nodes need, and checks
    query the coordinator's database, which the nodes (who read their bindings here) must not
    load."""
    module, _, name = path.rpartition(".")

    def run(*args: Any) -> Any:
        import importlib

        return getattr(importlib.import_module(module), name)(*args)

    run.__qualname__ = run.__name__ = name
    run.path = path  # type: ignore[attr-defined]
    return run


@dataclass(frozen=True)
class JobType:
    name: str
    model: type[JobBase]
    strategy: Strategy[Any]
    #: the template and how the job's fields reach its parameters
    #: (:data:`drift.orchestrator.compiler.UPLOADED` for uploaded templates)
    binding: compiler.Binding
    #: turns what the nodes delivered into the job's stored result
    analyse: Analysis
    #: the job makes a node transmit: the submitter needs the ``transmit`` permission
    transmits: bool = False
    #: whether a job of this type transmits, where that depends on what it runs (an
    #: uploaded template with a transmitting sink): the submitter needs ``transmit`` then
    transmits_when: Callable[[Session, JobBase], bool] | None = None
    #: checks that need the database (a referenced template exists and is approved); raise
    #: :class:`JobCheckError` naming the field; may return the job as it is to be stored
    #: (with what it refers to pinned), or None to store it as submitted
    check: Callable[[Session, JobBase], JobBase | None] | None = None
    #: every node starts at one absolute instant (``capture_start``) given at placement; a
    #: node lost after it cannot be replaced, and a failed attempt is not retried
    timed: bool = False
    #: how many nodes must deliver for the analysis to run (None: every node of the job)
    quorum: Callable[[JobBase], int] | None = None

    @property
    def template(self) -> str:
        """``flowgraphs/<template>.grc``; "" when each job brings its own (uploaded)."""
        return self.binding.template

    def parse(self, parameters: Mapping[str, Any], priority: int = 0) -> JobBase:
        """The request model back from what :func:`stored_parameters` kept."""
        return self.model.model_validate({**parameters, "type": self.name, "priority": priority})


JOB_TYPES: Mapping[str, JobType] = MappingProxyType(
    {
        jt.name: jt
        for jt in (
            JobType(
                "spectrum_scan",
                SpectrumScanJob,
                SpectrumScanStrategy(),
                compiler.SPECTRUM_SCAN,
                _later("drift.orchestrator.analysis.scan.analyse_scan"),
            ),
            JobType(
                "direction_finding",
                DirectionFindingJob,
                DirectionFindingStrategy(),
                compiler.DIRECTION_FINDING,
                _later("drift.orchestrator.analysis.location.analyse_direction_finding"),
                timed=True,
                quorum=lambda job: DF_MIN_NODES[job.method],
            ),  # type: ignore[attr-defined]
            JobType(
                "propagation_test",
                PropagationTestJob,
                PropagationTestStrategy(),
                compiler.PROPAGATION_TEST,
                _later("drift.orchestrator.analysis.propagation.analyse_propagation"),
                transmits=True,
                timed=True,
                # the transmitter and one receiver (the analysis says when the transmitter
                # is the one missing)
                quorum=lambda job: 2,
            ),
            JobType(
                "custom_flowgraph",
                CustomFlowgraphJob,
                SpectrumScanStrategy(),
                compiler.UPLOADED,
                _later("drift.orchestrator.analysis.frames.analyse_frames"),
                check=_later("drift.orchestrator.templates.check_custom_flowgraph"),
                transmits_when=_later("drift.orchestrator.templates.template_transmits"),
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
