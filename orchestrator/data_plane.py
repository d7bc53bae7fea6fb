"""Who may send what on the data plane: the nodes' Curve keys, and which frames a node may send.

The collector asks two questions, both answered from SQL through caches so that no frame costs
a query:

- **Which node holds this Curve key?** (:class:`NodeKeys`) Asked by the ZAP handler at every
  handshake, and for every frame (by the key ZeroMQ gives as the frame's ``User-Id``). Every
  key of a node in the ``nodes`` table is held in memory, read again every ``refresh_s``; a key
  not held is looked up at once, so a node enrolled a moment ago connects at its first try,
  and a node that is gone from the table, revoked, or that rotated its key is refused (its old
  key) from the next reading on.
- **May this node send frames of this job?** (:class:`FrameGate`) Only if the job exists, the
  node has (or had) an assignment of it, and the job has not been over for longer than a
  grace (a job in a final state: completed, failed or cancelled). What the gate knows of a job
  is reused for ``cache_s``; the jobs a batch of frames needs that it does not know (or knows
  too little of: a node it did not see among the job's nodes) are read in one query per batch.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from drift.orchestrator.states import TERMINAL_JOB
from drift.orchestrator.storage import Assignment, Job, Node

log = logging.getLogger("drift.collector")

SessionFactory = Callable[[], Session]

#: why the gate refuses a frame (the ``reason`` label of drift_frames_refused_total)
UNKNOWN_SENDER = "unknown_sender"  # its key no longer belongs to any node
WRONG_NODE = "wrong_node"  # its metadata names another node than the one whose key sent it
UNKNOWN_JOB = "unknown_job"  # no such job
NOT_ASSIGNED = "not_assigned"  # the node never had an assignment of the job
JOB_OVER = "job_over"  # the job ended longer than the grace ago


def canonical_id(value: object) -> str | None:
    """A UUID in its canonical text, or None for anything that is not one."""
    if not isinstance(value, str) or len(value) > 64:
        return None
    try:
        return str(uuid.UUID(value))
    except ValueError:
        return None


class NodeKeys:
    """Curve public key (Z85) -> node id (canonical text), for the nodes in the table.

    Safe to use from the ZAP handler's thread and the collector's at once."""

    def __init__(self, sessions: SessionFactory, refresh_s: float = 5.0):
        self._sessions = sessions
        self.refresh_s = float(refresh_s)
        self._lock = threading.Lock()
        self._by_key: dict[str, str] = {}
        #: keys looked up one by one since the last reading began: (node, when)
        self._looked_up: dict[str, tuple[str, float]] = {}
        self._read_at = -float("inf")

    def reload(self) -> None:
        """Read every node's key again (nodes gone from the table are forgotten)."""
        started = time.monotonic()
        with self._sessions() as session:
            rows = session.execute(
                select(Node.curve_public_key, Node.id).where(
                    Node.curve_public_key.is_not(None), Node.revoked_at.is_(None)
                )
            ).all()
        fresh = {key: str(node_id) for key, node_id in rows}
        with self._lock:
            # a key found at a handshake while this reading ran may be newer than it
            self._looked_up = {k: v for k, v in self._looked_up.items() if v[1] >= started}
            fresh.update((k, node) for k, (node, _) in self._looked_up.items())
            self._by_key = fresh
            self._read_at = started

    def reload_if_due(self) -> None:
        if time.monotonic() - self._read_at >= self.refresh_s:
            self.reload()

    def node_for(self, key: str) -> str | None:
        """The node holding `key`, from memory only (for every frame)."""
        return self._by_key.get(key)

    def authenticate(self, key: str) -> str | None:
        """The node holding `key`: from memory, else from the table at once (at a handshake)."""
        node = self._by_key.get(key)
        if node is not None:
            return node
        with self._sessions() as session:
            node_id = session.scalar(
                select(Node.id).where(Node.curve_public_key == key, Node.revoked_at.is_(None))
            )
        if node_id is None:
            return None
        with self._lock:
            self._by_key[key] = str(node_id)
            self._looked_up[key] = (str(node_id), time.monotonic())
        return str(node_id)


class ZapKeys:
    """The credentials provider pyzmq's ZAP authenticator calls for each Curve handshake:
    allowed if the client's public key belongs to an enrolled node."""

    def __init__(self, keys: NodeKeys, on_result: Callable[[bool], None] | None = None):
        self.keys = keys
        self._on_result = on_result
        self._warned_at = -float("inf")
        self._refused = 0

    def callback(self, domain: str, key: bytes) -> bool:
        text = key.decode("ascii", "replace")
        try:
            allowed = self.keys.authenticate(text) is not None
        except Exception:  # the database is away: refuse; the node's relay tries again
            log.exception("Curve handshake: could not look the key up")
            allowed = False
        if not allowed:
            self._refused += 1
            now = time.monotonic()
            if now - self._warned_at >= 10.0:
                log.warning(
                    "data plane: refused %d Curve handshake(s) of keys no node holds (latest %s)",
                    self._refused,
                    text,
                )
                self._warned_at, self._refused = now, 0
        if self._on_result is not None:
            self._on_result(allowed)
        return allowed


@dataclass
class _JobFacts:
    exists: bool
    status: str | None
    finished_at: dt.datetime | None
    nodes: frozenset[str]
    read_at: float


class FrameGate:
    """Decides, for each frame a node sent, whether the collector may take it.

    `job_grace_s`: how long after a job ended its frames are still taken. `cache_s`: how long
    what was read of a job is reused. At most `max_jobs` jobs are remembered (least recently
    used first out)."""

    def __init__(
        self,
        sessions: SessionFactory,
        job_grace_s: float = 300.0,
        cache_s: float = 1.0,
        max_jobs: int = 4096,
        clock: Callable[[], float] = time.monotonic,
    ):
        self._sessions = sessions
        self.job_grace_s = float(job_grace_s)
        self.cache_s = float(cache_s)
        #: a node not among a job's nodes is looked up again if the job was read longer ago
        self.recheck_s = self.cache_s / 5
        self.max_jobs = int(max_jobs)
        self._clock = clock
        self._jobs: OrderedDict[str, _JobFacts] = OrderedDict()
        #: queries made (one per batch at most), for tests and the curious
        self.queries = 0

    def check(self, claims: list[tuple[str | None, str]]) -> list[str | None]:
        """For each (node id, job id) a frame claims, None (take it) or the reason to refuse
        it (:data:`UNKNOWN_JOB`, :data:`NOT_ASSIGNED`, :data:`JOB_OVER`). The node id is the
        one whose key sent the frame (or, on an insecure data plane, the frame's own claim)."""
        now = self._clock()
        verdicts: list[str | None] = []
        wanted: set[str] = set()
        for node, job in claims:
            verdict = self._verdict(node, job, now, recheck=True)
            if verdict == "?":
                wanted.add(job)
            verdicts.append(verdict)
        if wanted:
            self._read(wanted)
            now = self._clock()
            verdicts = [
                self._verdict(node, job, now, recheck=False) if v == "?" else v
                for v, (node, job) in zip(verdicts, claims, strict=True)
            ]
        return verdicts

    def _verdict(self, node: str | None, job: str, now: float, recheck: bool) -> str | None:
        job_id = canonical_id(job)
        if job_id is None:
            return UNKNOWN_JOB
        facts = self._jobs.get(job_id)
        if facts is None or now - facts.read_at >= self.cache_s:
            return "?" if recheck else UNKNOWN_JOB
        self._jobs.move_to_end(job_id)
        if not facts.exists:
            return UNKNOWN_JOB
        if self._over(facts):
            return JOB_OVER
        if node is not None and node in facts.nodes:
            return None
        if recheck and now - facts.read_at >= self.recheck_s:
            return "?"
        return NOT_ASSIGNED

    def _over(self, facts: _JobFacts) -> bool:
        if facts.status not in TERMINAL_JOB or facts.finished_at is None:
            return False
        ended = facts.finished_at
        if ended.tzinfo is None:
            ended = ended.replace(tzinfo=dt.UTC)
        return dt.datetime.now(dt.UTC) - ended > dt.timedelta(seconds=self.job_grace_s)

    def _read(self, job_ids: Iterable[str]) -> None:
        """What the table says of these jobs, in one query."""
        ids = [uuid.UUID(j) for j in job_ids]
        with self._sessions() as session:
            rows = session.execute(
                select(Job.id, Job.status, Job.finished_at, Assignment.node_id)
                .outerjoin(Assignment, Assignment.job_id == Job.id)
                .where(Job.id.in_(ids))
            ).all()
        self.queries += 1
        found: dict[str, tuple[str, dt.datetime | None, set[str]]] = {}
        for job_id, status, finished_at, node_id in rows:
            entry = found.setdefault(str(job_id), (str(status), finished_at, set()))
            if node_id is not None:
                entry[2].add(str(node_id))
        now = self._clock()
        for job_id in map(str, ids):
            if job_id in found:
                status, finished_at, nodes = found[job_id]
                facts = _JobFacts(True, status, finished_at, frozenset(nodes), now)
            else:
                facts = _JobFacts(False, None, None, frozenset(), now)
            self._jobs[job_id] = facts
            self._jobs.move_to_end(job_id)
        while len(self._jobs) > self.max_jobs:
            self._jobs.popitem(last=False)
