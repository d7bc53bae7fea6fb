"""Dispatch shared by coordinator replicas: which delivery of an assignment to its node is the
first one, and who runs the scheduler's tick.

A node picks up its assignments by reading them (from any replica); a read changes nothing, so
"each assignment is dispatched exactly once" is decided here: the first delivery of each
(assignment, attempt) wins a ``SET NX`` in Redis and is marked ``first_delivery`` in the
response; every later read, through any replica, is a repeat. Without Redis the ledger is
in-process, which is exact for a single coordinator.

The tick lock keeps two replicas from placing the same pending job twice: PostgreSQL's advisory
lock does it where the database is shared; with Redis, a ``SET NX PX`` lease does it for any
database.

Whose assignment lists changed (so that node channels push at once) is published on a Redis
channel for the other replicas, and so are stored frames of the jobs that another replica's
WebSocket clients follow live (one channel per job, used only while somebody follows it);
without Redis there are no other replicas.
"""

from __future__ import annotations

import collections
import contextlib
import datetime as dt
import logging
import threading
import time
import uuid
from collections import defaultdict
from collections.abc import Callable
from typing import Any, Protocol

from gnuradio.drift import wire
from sqlalchemy import or_, select
from sqlalchemy.orm import Session, selectinload

from drift.orchestrator.states import ACTIVE_ASSIGNMENT, JobStatus
from drift.orchestrator.storage.models import Assignment, Job

log = logging.getLogger(__name__)


class DeliveryLedger(Protocol):
    def first_delivery(self, assignment_id: uuid.UUID, attempt: int) -> bool: ...

    def take_tick_lease(self, ttl_s: float) -> bool: ...

    def release_tick_lease(self) -> None: ...

    def held(self) -> set[tuple[uuid.UUID, int]] | None:
        """The delivery marks kept in this process (None: kept elsewhere, and they expire)."""
        ...

    def forget(self, marks: set[tuple[uuid.UUID, int]]) -> None:
        """Drop marks of attempts that can no longer be delivered."""
        ...

    def publish_changes(self, node_ids: set[uuid.UUID] | None) -> None:
        """Tell the other replicas whose assignment lists changed (None: anyone's)."""
        ...

    def note_dispatch(self, samples: list[tuple[uuid.UUID, float]]) -> None:
        """Record how long first deliveries took after their placement decisions: (node,
        seconds) pairs, written together."""
        ...

    def dispatch_latency_s(self, node_ids: list[str]) -> dict[str, float]:
        """The longest of each node's recent dispatch latencies (nodes never measured are
        left out)."""
        ...

    def listen_changes(
        self, on_change: Callable[[set[uuid.UUID] | None], None], stop: threading.Event
    ) -> threading.Thread | None:
        """Call ``on_change`` with what other replicas publish, until ``stop``."""
        ...

    def publish_frames(self, frames: list[wire.Frame]) -> None:
        """Hand stored frames to the replicas whose clients follow their jobs live."""
        ...

    def listen_frames(
        self,
        on_frames: Callable[[list[wire.Frame]], None],
        watched: Callable[[], set[str]],
        stop: threading.Event,
    ) -> threading.Thread | None:
        """Call ``on_frames`` with other replicas' frames of the jobs ``watched()`` names."""
        ...


#: dispatch latencies kept per node (the longest of these is the node's estimate)
LATENCY_SAMPLES = 16


class LocalLedger:
    """One process: a set of delivered (assignment, attempt) pairs; the tick is always ours.
    The node hub drops the pairs whose attempt is over now and then (:meth:`forget`), so the
    set stays as large as the work in progress."""

    def __init__(self) -> None:
        self._seen: set[tuple[uuid.UUID, int]] = set()
        self._lock = threading.Lock()
        self._latency: dict[str, collections.deque[float]] = {}

    def note_dispatch(self, samples: list[tuple[uuid.UUID, float]]) -> None:
        with self._lock:
            for node_id, latency_s in samples:
                self._latency.setdefault(
                    str(node_id), collections.deque(maxlen=LATENCY_SAMPLES)
                ).append(float(latency_s))

    def dispatch_latency_s(self, node_ids: list[str]) -> dict[str, float]:
        with self._lock:
            return {n: max(self._latency[n]) for n in node_ids if self._latency.get(n)}

    def first_delivery(self, assignment_id: uuid.UUID, attempt: int) -> bool:
        with self._lock:
            key = (assignment_id, attempt)
            if key in self._seen:
                return False
            self._seen.add(key)
            return True

    def held(self) -> set[tuple[uuid.UUID, int]]:
        with self._lock:
            return set(self._seen)

    def forget(self, marks: set[tuple[uuid.UUID, int]]) -> None:
        with self._lock:
            self._seen -= marks

    def take_tick_lease(self, ttl_s: float) -> bool:
        return True

    def release_tick_lease(self) -> None:
        pass

    def publish_changes(self, node_ids: set[uuid.UUID] | None) -> None:
        pass  # no other replica

    def listen_changes(self, on_change, stop) -> None:
        return None

    def publish_frames(self, frames) -> None:
        pass

    def listen_frames(self, on_frames, watched, stop) -> None:
        return None


#: deletes the lease only if this replica still holds it
_RELEASE = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end"


class RedisLedger:
    """Several replicas on one Redis (``DRIFT_REDIS_URL``)."""

    PREFIX = "drift:"
    #: how long a delivery mark is kept (a job that old is long finished)
    MARK_TTL_S = 14 * 24 * 3600

    def __init__(self, url: str) -> None:
        import redis

        self._redis = redis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=5)
        self.replica = uuid.uuid4().hex
        self._followers: dict[str, tuple[float, int]] = {}
        self._release = self._redis.register_script(_RELEASE)

    def first_delivery(self, assignment_id: uuid.UUID, attempt: int) -> bool:
        key = f"{self.PREFIX}delivered:{assignment_id}:{attempt}"
        return bool(self._redis.set(key, self.replica, nx=True, ex=self.MARK_TTL_S))

    def held(self) -> None:
        return None  # in Redis, where they expire

    def forget(self, marks: set[tuple[uuid.UUID, int]]) -> None:
        pass

    def take_tick_lease(self, ttl_s: float) -> bool:
        return bool(
            self._redis.set(
                f"{self.PREFIX}tick", self.replica, nx=True, px=max(100, int(ttl_s * 1000))
            )
        )

    LATENCY = PREFIX + "dispatch-latency:"
    #: a node's latencies are forgotten after this long without a new one
    LATENCY_TTL_S = 24 * 3600

    def note_dispatch(self, samples: list[tuple[uuid.UUID, float]]) -> None:
        if not samples:
            return
        try:
            pipe = self._redis.pipeline(transaction=False)
            for node_id, latency_s in samples:
                key = f"{self.LATENCY}{node_id}"
                pipe.lpush(key, f"{float(latency_s):.6f}")
                pipe.ltrim(key, 0, LATENCY_SAMPLES - 1)
                pipe.expire(key, self.LATENCY_TTL_S)
            pipe.execute()
        except Exception as exc:  # a missed sample only makes the estimate older
            log.warning("could not record dispatch latencies in Redis: %s", exc)

    def dispatch_latency_s(self, node_ids: list[str]) -> dict[str, float]:
        pipe = self._redis.pipeline(transaction=False)
        for n in node_ids:
            pipe.lrange(f"{self.LATENCY}{n}", 0, -1)
        out = {}
        for n, values in zip(node_ids, pipe.execute(), strict=True):
            if values:
                out[n] = max(float(v) for v in values)
        return out

    def release_tick_lease(self) -> None:
        self._release(keys=[f"{self.PREFIX}tick"], args=[self.replica])

    CHANGES = PREFIX + "assignments-changed"

    def publish_changes(self, node_ids: set[uuid.UUID] | None) -> None:
        """``<replica> <node hex>,<node hex>...`` (or ``*``) on the changes channel; a
        failure is logged (the other replicas' periodic look covers a lost message)."""
        body = "*" if node_ids is None else ",".join(sorted(n.hex for n in node_ids))
        try:
            self._redis.publish(self.CHANGES, f"{self.replica} {body}")
        except Exception as exc:
            log.warning("could not publish assignment changes to Redis: %s", exc)

    def _listen(
        self, name: str, body: Callable[[Any], None], stop: threading.Event
    ) -> threading.Thread:
        """A thread that runs ``body(pubsub)`` until ``stop``, on a new subscription (the old
        one closed) whenever Redis goes away or a message breaks it."""

        def run() -> None:
            while not stop.is_set():
                pubsub = self._redis.pubsub(ignore_subscribe_messages=True)
                try:
                    body(pubsub)
                except Exception as exc:
                    log.warning("%s from Redis: %s; retrying", name, exc)
                    stop.wait(1.0)
                finally:
                    with contextlib.suppress(Exception):
                        pubsub.close()

        thread = threading.Thread(target=run, name=f"redis {name}", daemon=True)
        thread.start()
        return thread

    def listen_changes(
        self, on_change: Callable[[set[uuid.UUID] | None], None], stop: threading.Event
    ) -> threading.Thread:
        def body(pubsub) -> None:  # while Redis is away the periodic look goes on
            pubsub.subscribe(self.CHANGES)
            while not stop.is_set():
                msg = pubsub.get_message(timeout=1.0)
                if msg is None:
                    continue
                replica, _, changed = msg["data"].decode().partition(" ")
                if replica != self.replica:
                    on_change(
                        None if changed == "*" else {uuid.UUID(h) for h in changed.split(",") if h}
                    )

        return self._listen("assignment changes", body, stop)

    # -- live frames: published per job, only while some replica follows that job ----------

    LIVE = PREFIX + "live:"
    #: how long the count of a job's followers is trusted
    FOLLOWERS_TTL_S = 1.0

    def publish_frames(self, frames: list[wire.Frame]) -> None:
        by_job: dict[str, list[wire.Frame]] = {}
        for f in frames:
            job = f.meta.get("job_id")
            if job is not None:
                by_job.setdefault(str(job), []).append(f)
        now = time.monotonic()
        try:
            for job, batch in by_job.items():
                seen = self._followers.get(job)
                if seen is None or seen[0] < now:
                    count = dict(self._redis.pubsub_numsub(self.LIVE + job)).get(
                        (self.LIVE + job).encode(), 0
                    )
                    seen = self._followers[job] = (now + self.FOLLOWERS_TTL_S, int(count))
                    if len(self._followers) > 4096:
                        self._followers.clear()
                if seen[1] > 0:
                    pipe = self._redis.pipeline(transaction=False)
                    for f in batch:
                        pipe.publish(self.LIVE + job, self._pack(f))
                    pipe.execute()
        except Exception as exc:  # live frames are best effort; storage already happened
            log.warning("could not publish live frames to Redis: %s", exc)

    def _pack(self, frame: wire.Frame) -> bytes:
        parts = wire.encode(frame)
        return self.replica.encode() + b"".join(len(p).to_bytes(4, "little") + p for p in parts)

    def _unpack(self, data: bytes) -> tuple[str, wire.Frame]:
        replica, rest = data[:32].decode(), memoryview(data)[32:]
        parts = []
        while rest:
            n = int.from_bytes(rest[:4], "little")
            parts.append(bytes(rest[4 : 4 + n]))
            rest = rest[4 + n :]
        return replica, wire.decode(parts)

    def listen_frames(
        self,
        on_frames: Callable[[list[wire.Frame]], None],
        watched: Callable[[], set[str]],
        stop: threading.Event,
    ) -> threading.Thread:
        def body(pubsub) -> None:
            following: set[str] = set()
            while not stop.is_set():
                want = watched()
                if want - following:
                    pubsub.subscribe(*(self.LIVE + j for j in want - following))
                if following - want:
                    pubsub.unsubscribe(*(self.LIVE + j for j in following - want))
                following = want
                if not following:
                    stop.wait(0.25)
                    continue
                msg = pubsub.get_message(timeout=0.25)
                while msg is not None:
                    if msg["type"] == "message":
                        replica, frame = self._unpack(msg["data"])
                        if replica != self.replica:
                            on_frames([frame])
                    msg = pubsub.get_message(timeout=0)

        return self._listen("live frames", body, stop)

    def close(self) -> None:
        self._redis.close()


def make_ledger(redis_url: str | None) -> DeliveryLedger:
    return RedisLedger(redis_url) if redis_url else LocalLedger()


# --- what each node is to run: the assignment lists the API hands out and pushes -------------


def deliverable_where(now: dt.datetime) -> tuple:
    """What makes an assignment deliverable to its node now: active, of a live job, its retry
    back-off elapsed (for a select of Assignment joined with Job)."""
    return (
        Assignment.state.in_(list(ACTIVE_ASSIGNMENT)),
        Job.status.in_([JobStatus.SCHEDULED, JobStatus.RUNNING]),
        or_(Assignment.not_before.is_(None), Assignment.not_before <= now),
    )


#: the order a node gets its assignments in
DELIVERY_ORDER = (Job.priority.desc(), Assignment.created_at)


def deliverable(session: Session, node_id: uuid.UUID, now: dt.datetime) -> list[Assignment]:
    """What a node should run now: its active assignments of live jobs, back-off elapsed."""
    return list(
        session.scalars(
            select(Assignment)
            .join(Job)
            .where(Assignment.node_id == node_id, *deliverable_where(now))
            .options(selectinload(Assignment.job))
            .order_by(*DELIVERY_ORDER)
        ).all()
    )


#: (assignment id, attempt, state) of each deliverable assignment, in delivery order
Signature = tuple[tuple[uuid.UUID, int, str], ...]


def delivery_signatures(
    session: Session, node_ids: list[uuid.UUID], now: dt.datetime
) -> dict[uuid.UUID, Signature]:
    """Each node's deliverable list as a cheap signature (nodes with none are left out)."""
    q = (
        select(Assignment.node_id, Assignment.id, Assignment.attempts, Assignment.state)
        .join(Job)
        .where(*deliverable_where(now))
        .order_by(*DELIVERY_ORDER)
    )
    if len(node_ids) <= 256:
        q = q.where(Assignment.node_id.in_(node_ids))
    wanted = set(node_ids)
    out: dict[uuid.UUID, list] = defaultdict(list)
    for node_id, aid, attempts, state in session.execute(q):
        if node_id in wanted:
            out[node_id].append((aid, attempts, state))
    return {i: tuple(v) for i, v in out.items()}


#: what a node's assignment list is made of, as one row per assignment
DELIVERY_COLUMNS = (
    Assignment.node_id,
    Assignment.id,
    Assignment.job_id,
    Assignment.role,
    Assignment.state,
    Assignment.attempts,
    Assignment.updated_at,
    Assignment.not_before,
    Job.type.label("job_type"),
    Job.priority,
    Job.parameters,
    Job.capture_start,
)


def delivery_rows(
    session: Session, node_ids: list[uuid.UUID], now: dt.datetime
) -> dict[uuid.UUID, list]:
    """Each node's deliverable assignments as plain rows of :data:`DELIVERY_COLUMNS`, in
    delivery order (no ORM objects: this runs for every placement)."""
    rows: dict[uuid.UUID, list] = {i: [] for i in node_ids}
    for k in range(0, len(node_ids), 500):  # bounded IN lists
        for row in session.execute(
            select(*DELIVERY_COLUMNS)
            .join(Job)
            .where(Assignment.node_id.in_(node_ids[k : k + 500]), *deliverable_where(now))
            .order_by(*DELIVERY_ORDER)
        ):
            rows[row.node_id].append(row)
    return rows


def dispatch_latency_s(
    decided: dt.datetime, not_before: dt.datetime | None, now: dt.datetime
) -> float:
    """A first delivery's latency from the decision that made (or last changed) its
    assignment, or from the end of its retry back-off: the scheduler plans timed starts
    with it."""
    since = decided if not_before is None else max(decided, not_before)
    return max(0.0, (now - since).total_seconds())
