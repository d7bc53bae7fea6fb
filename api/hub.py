"""What one coordinator process keeps for its nodes: their heartbeats, written in groups, and
the nodes' open channels, to which their assignments are pushed when they change.

Heartbeats (over HTTP or a channel) wait in :class:`BeatWriter` for the transaction in
progress to finish, then all that arrived meanwhile are stored in the next one (group commit):
each caller still hears back only once its heartbeat is stored, and a thousand nodes cost a
few transactions a second instead of a thousand.

:class:`NodeHub` refreshes the assignment lists of the nodes connected to this process when
something in this process changed them (:data:`~drift.orchestrator.events.ASSIGNMENTS_CHANGED`)
and every ``dispatch_poll_s`` otherwise (another replica's scheduler, a retry's back-off
ending). A refresh is one cheap query for every connected node's (assignment, attempt, state)
list; only the nodes whose list differs from what their channel last sent get the full rows.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import threading
import uuid
from collections import defaultdict
from typing import TYPE_CHECKING, Any

from pydantic import TypeAdapter
from sqlalchemy import bindparam, select, update

from drift.orchestrator.dispatch import (
    Signature,
    delivery_rows,
    delivery_signatures,
    dispatch_latency_s,
)
from drift.orchestrator.events import ASSIGNMENTS_CHANGED, LIVE, Changes
from drift.orchestrator.registry import JOB_TYPES
from drift.orchestrator.spectrum_store import DeviceMetricsPoint
from drift.orchestrator.states import ACTIVE_ASSIGNMENT, NodeStatus
from drift.orchestrator.storage import Assignment, Device, Node
from drift.orchestrator.timeseries import StoreUnavailable
from drift.protocol import CLOSE_REPLACED, CLOSE_TOO_SLOW, Heartbeat, NodeAssignment

if TYPE_CHECKING:
    from drift.api.runtime import Runtime

log = logging.getLogger(__name__)

_ASSIGNMENTS = TypeAdapter(list[NodeAssignment])


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def beat_values(beat: Heartbeat, now: dt.datetime) -> dict[str, Any]:
    """The node row's columns a heartbeat sets."""
    values: dict[str, Any] = {"status": NodeStatus.ONLINE, "last_seen": now}
    if beat.sync is not None:
        values["sync_source"] = beat.sync.source
        values["sync_uncertainty_s"] = beat.sync.effective_uncertainty_s
    if beat.health is not None:
        values["health"] = {**beat.health.model_dump(mode="json"), "reported_at": now.isoformat()}
    if beat.calibration is not None:
        # not a node column: the devices' rows (see BeatWriter._write)
        values[CALIBRATION] = [c.model_dump(mode="json") for c in beat.calibration]
    return values


#: the key of beat_values that carries calibration records
CALIBRATION = "_calibration"


def device_label(driver: str, serial: str | None) -> str:
    """How a device is named in metrics: its driver, and its serial when it has one."""
    return driver if not serial else f"{driver}:{serial}"


def calibration_document(record: dict[str, Any]) -> dict[str, Any]:
    """A reported calibration record as the devices table keeps it."""
    points = record.get("gain_points") or []
    return {
        "lo_error_ppm": record["lo_error_ppm"],
        "gain_offset_db": min(points)[1] if points else None,
        "gain_points": points,
        "created": record["created"],
        "measured": record.get("measured") or record["created"],
        "valid_until": record.get("valid_until"),
        **({"array": record["array"]} if record.get("array") else {}),
    }


def _device_metrics_point(
    node_id: uuid.UUID, device_id: uuid.UUID, at: dt.datetime, m: dict[str, Any]
) -> DeviceMetricsPoint:
    return DeviceMetricsPoint(
        node_id=str(node_id),
        device_id=str(device_id),
        time=at.timestamp(),
        temperature=m.get("temperature_c"),
        sample_rate=m.get("sample_rate_hz"),
        dropped_samples=m.get("dropped_samples"),
        overflows=m.get("overflows"),
        sync_uncertainty_s=m.get("sync_uncertainty_s"),
    )


class BeatWriter:
    """Group commit of heartbeats (see the module's docstring)."""

    #: most heartbeats in one transaction
    BATCH = 2000
    #: at most one transaction this often: under load, a batch gathers what arrives in it
    INTERVAL_S = 0.1
    #: device metrics waiting for the time-series store at most; older ones are dropped
    MAX_METRICS = 100_000

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self._pending: dict[uuid.UUID, tuple[dict[str, Any], list[asyncio.Future]]] = {}
        self._event = asyncio.Event()
        self._task: asyncio.Task | None = None
        #: device metrics on their way to the time-series store, written by their own task:
        #: a slow or unreachable store never holds up a heartbeat
        self._metrics: list[DeviceMetricsPoint] = []
        self._metrics_event = asyncio.Event()
        self._metrics_task: asyncio.Task | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="heartbeat writer")
        self._metrics_task = asyncio.create_task(self._run_metrics(), name="device metrics")

    async def close(self) -> None:
        for task in (self._task, self._metrics_task):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        if self._pending:  # heard but not yet stored: store them now
            await self._flush()
        if self._metrics:
            await asyncio.to_thread(self._store_device_metrics, self._take_metrics())

    def _take_metrics(self) -> list[DeviceMetricsPoint]:
        points, self._metrics = self._metrics, []
        return points

    async def _run_metrics(self) -> None:
        while True:
            await self._metrics_event.wait()
            self._metrics_event.clear()
            if self._metrics:
                await asyncio.to_thread(self._store_device_metrics, self._take_metrics())

    async def record(
        self, node_id: uuid.UUID, beat: Heartbeat, now: dt.datetime | None = None
    ) -> bool:
        """Store a heartbeat; False if the node no longer exists. Returns once it is stored."""
        values = beat_values(beat, now or utcnow())
        future = asyncio.get_running_loop().create_future()
        earlier = self._pending.get(node_id)
        if earlier is None:
            self._pending[node_id] = (values, [future])
        else:  # two heartbeats of one node in one batch: the later one's values win
            earlier[0].update(values)
            earlier[1].append(future)
        self._event.set()
        return await future

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        last = 0.0
        while True:
            await self._event.wait()
            wait = last + self.INTERVAL_S - loop.time()
            if wait > 0:
                await asyncio.sleep(wait)
            self._event.clear()
            last = loop.time()
            await self._flush()

    async def _flush(self) -> None:
        while self._pending:
            ids = list(self._pending)[: self.BATCH]
            batch = {i: self._pending.pop(i) for i in ids}
            try:
                missing, points = await asyncio.to_thread(
                    self._write, {i: values for i, (values, _) in batch.items()}
                )
            except Exception as exc:
                log.exception("storing %d heartbeat(s) failed", len(batch))
                for _, futures in batch.values():
                    for f in futures:
                        if not f.done():
                            f.set_exception(exc)
                continue
            for node_id, (_, futures) in batch.items():
                for f in futures:
                    if not f.done():
                        f.set_result(node_id not in missing)
            if points:
                self._metrics.extend(points)
                if len(self._metrics) > self.MAX_METRICS:
                    dropped = len(self._metrics) - self.MAX_METRICS
                    del self._metrics[:dropped]
                    log.warning(
                        "the time-series store is behind: %d device metrics dropped", dropped
                    )
                self._metrics_event.set()

    def _write(
        self, batch: dict[uuid.UUID, dict[str, Any]]
    ) -> tuple[set[uuid.UUID], list[DeviceMetricsPoint]]:
        """One transaction for the whole batch; returns the ids of nodes that do not exist
        (or were revoked: their channels, on whichever replica, close at their next beat),
        and the batch's device metrics for the time-series store."""
        nodes = Node.__table__
        calibrations = {i: v.pop(CALIBRATION) for i, v in batch.items() if CALIBRATION in v}
        reporting = {
            i
            for i, v in batch.items()
            if (v.get("health") or {}).get("devices") or i in calibrations
        }
        points: list[DeviceMetricsPoint] = []
        with self.runtime.sessions.begin() as session:
            status = dict(
                session.execute(
                    select(nodes.c.id, nodes.c.status).where(
                        nodes.c.id.in_(list(batch)), nodes.c.revoked_at.is_(None)
                    )
                ).all()
            )
            by_columns: dict[tuple[str, ...], list[dict[str, Any]]] = defaultdict(list)
            for node_id, values in batch.items():
                if node_id in status:
                    by_columns[tuple(sorted(values))].append({"node": node_id, **values})
            for columns, rows in by_columns.items():
                # one UPDATE ... WHERE id = ? run for every row (executemany)
                session.execute(
                    update(nodes)
                    .where(nodes.c.id == bindparam("node"))
                    .values({c: bindparam(c) for c in columns}),
                    rows,
                )
            if reporting & set(status):
                points = self._write_devices(
                    session,
                    {i: batch[i] for i in reporting if i in status},
                    calibrations,
                )
        for node_id, was in status.items():
            if was != NodeStatus.ONLINE:
                log.info("node %s is online", node_id)
        return set(batch) - set(status), points

    @staticmethod
    def _write_devices(
        session,
        batch: dict[uuid.UUID, dict[str, Any]],
        calibrations: dict[uuid.UUID, list[dict[str, Any]]],
    ) -> list[DeviceMetricsPoint]:
        """Calibration records into the devices' rows; the device metrics as points of the
        ``device_metrics`` series. A device is matched by (driver, serial) among those the
        node enrolled: reports of others are ignored."""
        devices: dict[uuid.UUID, dict[tuple[str, str | None], uuid.UUID]] = defaultdict(dict)
        for dev_id, node_id, driver, serial in session.execute(
            select(Device.id, Device.node_id, Device.driver, Device.serial).where(
                Device.node_id.in_(list(batch))
            )
        ):
            devices[node_id].setdefault((driver, serial), dev_id)
        points = []
        for node_id, values in batch.items():
            known = devices.get(node_id, {})
            for m in (values.get("health") or {}).get("devices") or ():
                dev_id = known.get((m["driver"], m.get("serial")))
                if dev_id is not None:
                    points.append(_device_metrics_point(node_id, dev_id, values["last_seen"], m))
            for record in calibrations.get(node_id, ()):
                dev_id = known.get((record["driver"], record.get("serial")))
                if dev_id is None:
                    continue
                session.execute(
                    update(Device)
                    .where(Device.id == dev_id)
                    .values(
                        calibration=calibration_document(record),
                        last_calibrated=dt.datetime.fromisoformat(
                            record.get("measured") or record["created"]
                        ),
                    )
                )
        return points

    def _store_device_metrics(self, points: list[DeviceMetricsPoint]) -> None:
        """Into the time-series store; telemetry is not worth failing a heartbeat for: when
        the store cannot take it, these points are dropped (and that is logged)."""
        if self.runtime.spectrum is None:
            return
        try:
            self.runtime.spectrum.add_device_metrics(points)
        except StoreUnavailable as exc:
            log.warning("device metrics of %d device(s) dropped: %s", len(points), exc)
        except Exception:
            log.exception("device metrics of %d device(s) not stored", len(points))


class Channel:
    """One node's open channel: what was sent on it, and its outgoing messages."""

    OUTBOX = 64

    def __init__(self, node_id: uuid.UUID) -> None:
        self.node_id = node_id
        self.outbox: asyncio.Queue[str] = asyncio.Queue(self.OUTBOX)
        self.sent: Signature | None = None  # None: no list sent yet
        #: (assignment, attempt) of the list last sent: asked of the ledger once, not per list
        self.handed: set[tuple[uuid.UUID, int]] = set()
        self.closed = asyncio.Event()
        self.close_code = 1000
        self.close_reason = ""

    def push(self, text: str) -> None:
        """Queue a message; a node that lets OUTBOX messages pile up is disconnected."""
        try:
            self.outbox.put_nowait(text)
        except asyncio.QueueFull:
            self.close(CLOSE_TOO_SLOW, "the node does not read its channel")

    def close(self, code: int, reason: str) -> None:
        if not self.closed.is_set():
            self.close_code, self.close_reason = code, reason
            self.closed.set()


class NodeHub:
    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.beats = BeatWriter(runtime)
        self.channels: dict[uuid.UUID, Channel] = {}
        self._task: asyncio.Task | None = None
        self._wake: Changes.Subscription | None = None

    def start(self) -> None:
        self.beats.start()
        self._wake = ASSIGNMENTS_CHANGED.subscribe()
        self._task = asyncio.create_task(self._run(), name="node channel dispatch")
        # replicas on one Redis tell each other whose lists changed
        ledger = self.runtime.ledger
        self._forward = ledger.publish_changes
        ASSIGNMENTS_CHANGED.add_forwarder(self._forward)
        self._listening = threading.Event()
        self._listener = ledger.listen_changes(
            lambda keys: ASSIGNMENTS_CHANGED.wake(keys, forward=False), self._listening
        )
        # and live frames of the jobs some replica's WebSocket clients follow
        self._forward_frames = ledger.publish_frames
        LIVE.add_forwarder(self._forward_frames)
        self._frames_listener = ledger.listen_frames(
            lambda frames: LIVE.publish(frames, forward=False), LIVE.watched, self._listening
        )

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            ASSIGNMENTS_CHANGED.remove_forwarder(self._forward)
            LIVE.remove_forwarder(self._forward_frames)
            self._listening.set()
            for thread in (self._listener, self._frames_listener):
                if thread is not None:
                    await asyncio.to_thread(thread.join, 5)
        if self._wake is not None:
            ASSIGNMENTS_CHANGED.unsubscribe(self._wake)
        for channel in list(self.channels.values()):
            channel.close(1001, "coordinator shutting down")
        await self.beats.close()

    def attach(self, channel: Channel) -> None:
        """The node's channel from now on (an older one of the same node is closed); its
        first list is sent by the next refresh, which starts at once (channels that open
        together share it)."""
        old = self.channels.get(channel.node_id)
        if old is not None:
            old.close(CLOSE_REPLACED, "replaced by a newer channel of this node")
        self.channels[channel.node_id] = channel
        if self._wake is not None:
            self._wake.add({channel.node_id})

    def detach(self, channel: Channel) -> None:
        if self.channels.get(channel.node_id) is channel:
            del self.channels[channel.node_id]

    #: how often the delivery marks of attempts that are over are dropped
    FORGET_S = 600.0

    def forget_delivered(self) -> int:
        """Drop the in-process delivery marks whose attempt can no longer be delivered (its
        assignment ended, or moved on to a later attempt); returns how many. Marks made
        while this looks are kept: only those it read before the query can go."""
        ledger = self.runtime.ledger
        held = ledger.held()
        if not held:
            return 0
        with self.runtime.read_sessions() as session:
            live = {
                (aid, attempts)
                for aid, attempts in session.execute(
                    select(Assignment.id, Assignment.attempts).where(
                        Assignment.state.in_(list(ACTIVE_ASSIGNMENT))
                    )
                )
            }
        over = held - live
        ledger.forget(over)
        return len(over)

    async def _run(self) -> None:
        poll_s = self.runtime.settings.dispatch_poll_s
        loop = asyncio.get_running_loop()
        forget_at = loop.time() + self.FORGET_S
        while True:
            if loop.time() >= forget_at:
                forget_at = loop.time() + self.FORGET_S
                try:
                    await asyncio.to_thread(self.forget_delivered)
                except Exception:
                    log.exception("dropping the marks of delivered attempts failed")
            try:
                await asyncio.wait_for(self._wake.event.wait(), poll_s)
                only = self._wake.take()
            except TimeoutError:
                only = None  # the periodic look at every channel
            if not self.channels:
                continue
            try:
                await self.refresh(only)
            except Exception:
                log.exception("pushing assignments to node channels failed")

    #: at most this many nodes named as changed are read and rendered in one pass; more (or
    #: the periodic look at every channel) first compare cheap signatures
    DIRECT_MAX = 256

    async def refresh(self, only: set[uuid.UUID] | None = None) -> None:
        """Push a new assignment list to every connected node (of ``only``, when given) whose
        list changed since its channel last sent one (or that has not had one yet)."""
        targets = {i: ch for i, ch in self.channels.items() if only is None or i in only}
        if not targets:
            return
        now = utcnow()
        if only is not None and len(targets) <= self.DIRECT_MAX:
            # nodes said to have changed (a placement, a cancel): one read, one thread hop
            lists = await asyncio.to_thread(self._lists, targets, now)
        else:
            signatures = await asyncio.to_thread(self._signatures, list(targets), now)
            changed = {i: ch for i, ch in targets.items() if signatures.get(i, ()) != ch.sent}
            if not changed:
                return
            lists = await asyncio.to_thread(self._lists, changed, now)
        for node_id, (signature, body) in lists.items():
            channel = targets[node_id]
            channel.sent = signature
            channel.push(body)

    def _signatures(
        self, node_ids: list[uuid.UUID], now: dt.datetime
    ) -> dict[uuid.UUID, Signature]:
        with self.runtime.read_sessions() as session:
            return delivery_signatures(session, node_ids, now)

    def _lists(
        self, channels: dict[uuid.UUID, Channel], now: dt.datetime
    ) -> dict[uuid.UUID, tuple[Signature, str]]:
        """The message each channel should send, with the signature of the list it holds,
        for the channels whose list is not the one they sent last (read together, so the two
        agree). Plain rows, not ORM objects: this runs for every placement."""
        with self.runtime.read_sessions() as session:
            rows = delivery_rows(session, list(channels), now)
        out = {}
        first_delivery = self.runtime.ledger.first_delivery
        latencies: list[tuple[uuid.UUID, float]] = []
        for node_id, assignments in rows.items():
            channel = channels[node_id]
            signature = tuple((a.id, a.attempts, a.state) for a in assignments)
            if signature == channel.sent:
                continue
            items = []
            handed = set()  # only what the list holds now: a channel's set stays small
            for a in assignments:
                key = (a.id, a.attempts)
                first = key not in channel.handed and first_delivery(*key)
                if first:
                    latencies.append((node_id, dispatch_latency_s(a.updated_at, a.not_before, now)))
                handed.add(key)
                items.append(
                    _node_assignment(
                        first,
                        a.id,
                        a.job_id,
                        a.job_type,
                        a.role,
                        a.state,
                        a.attempts,
                        a.priority,
                        a.parameters,
                        a.capture_start,
                    )
                )
            channel.handed = handed
            body = (
                '{"type":"assignments","assignments":'
                + _ASSIGNMENTS.dump_json(items).decode()
                + "}"
            )
            out[node_id] = (signature, body)
        self.runtime.ledger.note_dispatch(latencies)
        return out


def node_assignment(a: Assignment, first_delivery: bool) -> NodeAssignment:
    """An assignment (its job loaded) as its node receives it."""
    return _node_assignment(
        first_delivery,
        a.id,
        a.job_id,
        a.job.type,
        a.role,
        a.state,
        a.attempts,
        a.job.priority,
        a.job.parameters,
        a.job.capture_start,
    )


def _node_assignment(
    first_delivery: bool,
    id: uuid.UUID,
    job_id: uuid.UUID,
    job_type: str,
    role: str,
    state: Any,
    attempts: int,
    priority: int,
    parameters: dict,
    start_time: dt.datetime | None,
) -> NodeAssignment:
    return NodeAssignment(
        first_delivery=first_delivery,
        id=id,
        job_id=job_id,
        job_type=job_type,
        template=JOB_TYPES[job_type].template,
        role=role,
        state=state,
        attempts=attempts,
        priority=priority,
        parameters=parameters,
        start_time=start_time,
    )
