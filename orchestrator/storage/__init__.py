"""SQL storage of the coordinator: models, engines, migrations."""

from .db import make_engine, make_session_factory
from .models import (
    ApiKey,
    Assignment,
    Base,
    Device,
    EnrollmentToken,
    FlowgraphTemplate,
    Job,
    JobResult,
    JobTransition,
    Node,
    User,
)

__all__ = [
    "ApiKey",
    "Assignment",
    "Base",
    "Device",
    "EnrollmentToken",
    "FlowgraphTemplate",
    "Job",
    "JobResult",
    "JobTransition",
    "Node",
    "User",
    "make_engine",
    "make_session_factory",
]
