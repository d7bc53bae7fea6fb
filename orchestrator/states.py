"""The states of jobs, assignments and nodes, and which transitions between them are legal."""

from __future__ import annotations

from enum import StrEnum


class JobStatus(StrEnum):
    PENDING = "pending"
    SCHEDULED = "scheduled"
    RUNNING = "running"
    #: every node has delivered (or enough have, by the job type's quorum): the job type's
    #: analysis is turning what they delivered into the job's result
    ANALYSING = "analysing"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"


class AssignmentState(StrEnum):
    ASSIGNED = "assigned"  # waiting for the node to pick it up (maybe after a retry back-off)
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"
    REASSIGNED = "reassigned"  # its node was lost; another assignment took over


class NodeStatus(StrEnum):
    ONLINE = "online"
    OFFLINE = "offline"


class Role(StrEnum):
    VIEWER = "viewer"
    OPERATOR = "operator"
    ADMIN = "admin"


#: Permissions a user may hold beyond those of the role.
PERMISSIONS = frozenset({"transmit"})

JOB_TRANSITIONS: dict[JobStatus, frozenset[JobStatus]] = {
    JobStatus.PENDING: frozenset({JobStatus.SCHEDULED, JobStatus.CANCELLED, JobStatus.FAILED}),
    # back to pending when a node is lost before the job started and nothing can replace it
    JobStatus.SCHEDULED: frozenset(
        {JobStatus.RUNNING, JobStatus.PENDING, JobStatus.CANCELLED, JobStatus.FAILED}
    ),
    JobStatus.RUNNING: frozenset({JobStatus.ANALYSING, JobStatus.FAILED, JobStatus.CANCELLED}),
    # a job completes only with a stored result; its analysis may fail it instead
    JobStatus.ANALYSING: frozenset({JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.CANCELLED}),
    JobStatus.COMPLETED: frozenset(),
    JobStatus.FAILED: frozenset(),
    JobStatus.CANCELLED: frozenset(),
}

ASSIGNMENT_TRANSITIONS: dict[AssignmentState, frozenset[AssignmentState]] = {
    AssignmentState.ASSIGNED: frozenset(
        {
            AssignmentState.RUNNING,
            AssignmentState.FAILED,
            AssignmentState.CANCELLED,
            AssignmentState.REASSIGNED,
            AssignmentState.ASSIGNED,  # a retry after a failure the node reported
        }
    ),
    AssignmentState.RUNNING: frozenset(
        {
            AssignmentState.COMPLETED,
            AssignmentState.FAILED,
            AssignmentState.CANCELLED,
            AssignmentState.REASSIGNED,
            AssignmentState.ASSIGNED,
        }
    ),
    AssignmentState.COMPLETED: frozenset(),
    AssignmentState.FAILED: frozenset(),
    AssignmentState.CANCELLED: frozenset(),
    AssignmentState.REASSIGNED: frozenset(),
}

TERMINAL_JOB = frozenset(s for s, nxt in JOB_TRANSITIONS.items() if not nxt)
ACTIVE_ASSIGNMENT = frozenset({AssignmentState.ASSIGNED, AssignmentState.RUNNING})
