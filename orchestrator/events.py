"""Live feeds inside one coordinator process: the collector publishes every stored batch of
frames, WebSocket handlers subscribe per job. Subscribers that fall behind lose the oldest
frames, never block the collector."""

from __future__ import annotations

import asyncio
import threading
from collections import defaultdict
from collections.abc import Callable, Iterable

from gnuradio.drift import wire


class LiveBus:
    QUEUE = 256

    def __init__(self) -> None:
        self._subs: dict[str, set[tuple[asyncio.AbstractEventLoop, asyncio.Queue]]] = defaultdict(
            set
        )
        self._forwarders: list[Callable[[list[wire.Frame]], None]] = []
        self._lock = threading.Lock()

    def add_forwarder(self, forward: Callable[[list[wire.Frame]], None]) -> None:
        """Also hand every published batch to ``forward`` (to other processes)."""
        with self._lock:
            self._forwarders.append(forward)

    def remove_forwarder(self, forward: Callable[[list[wire.Frame]], None]) -> None:
        with self._lock:
            self._forwarders = [f for f in self._forwarders if f is not forward]

    def watched(self) -> set[str]:
        """The jobs somebody in this process follows."""
        with self._lock:
            return set(self._subs)

    def subscribe(self, job_id: str) -> asyncio.Queue:
        q: asyncio.Queue = asyncio.Queue(self.QUEUE)
        with self._lock:
            self._subs[job_id].add((asyncio.get_running_loop(), q))
        return q

    def unsubscribe(self, job_id: str, q: asyncio.Queue) -> None:
        with self._lock:
            self._subs[job_id] = {s for s in self._subs[job_id] if s[1] is not q}
            if not self._subs[job_id]:
                del self._subs[job_id]

    @staticmethod
    def _put(q: asyncio.Queue, item) -> None:
        if q.full():
            q.get_nowait()  # drop the oldest: a slow client must not hold the collector
        q.put_nowait(item)

    def publish(self, frames: list[wire.Frame], forward: bool = True) -> None:
        """Collector listener: called from its thread with each stored batch (``forward=False``
        for frames heard from another process)."""
        with self._lock:
            forwarders = list(self._forwarders) if forward else []
        for fn in forwarders:
            fn(frames)
        with self._lock:
            if not self._subs:
                return
            targets = {job: set(subs) for job, subs in self._subs.items()}
        for f in frames:
            subs = targets.get(str(f.meta.get("job_id")))
            if not subs:
                continue
            for loop, q in subs:
                loop.call_soon_threadsafe(self._put, q, f)


#: the process's bus (the collector and the API run in the same ``drift serve`` process)
LIVE = LiveBus()


class Wakeup:
    """A thread-safe "something changed" signal for asyncio tasks of this process: each
    :meth:`subscribe` returns an :class:`asyncio.Event` that every :meth:`wake` sets (from any
    thread). A task waits on its event with a timeout, so a missed wake only costs one round."""

    def __init__(self) -> None:
        self._events: set[tuple[asyncio.AbstractEventLoop, asyncio.Event]] = set()
        self._lock = threading.Lock()

    def subscribe(self) -> asyncio.Event:
        event = asyncio.Event()
        with self._lock:
            self._events.add((asyncio.get_running_loop(), event))
        return event

    def unsubscribe(self, event: asyncio.Event) -> None:
        with self._lock:
            self._events = {s for s in self._events if s[1] is not event}

    def wake(self) -> None:
        with self._lock:
            targets = list(self._events)
        for loop, event in targets:
            try:
                loop.call_soon_threadsafe(event.set)
            except RuntimeError:  # that loop has closed
                self.unsubscribe(event)


class Changes:
    """Like :class:`Wakeup`, but a wake can say what changed (keys such as node ids), and
    each subscriber takes what was named since it last looked: a set of keys, or None for
    "anything may have changed"."""

    class Subscription:
        def __init__(self) -> None:
            self.event = asyncio.Event()
            self.loop = asyncio.get_running_loop()
            self._keys: set | None = set()
            self._lock = threading.Lock()

        def _add(self, keys: set | None) -> None:
            with self._lock:
                if self._keys is not None:
                    self._keys = None if keys is None else self._keys | keys

        def add(self, keys: set | None) -> None:
            """Name a change from the subscriber's own event loop."""
            self._add(keys)
            self.event.set()

        def take(self) -> set | None:
            """What changed since the last take (None: anything), and clear it."""
            with self._lock:
                keys, self._keys = self._keys, set()
            self.event.clear()
            return keys

    def __init__(self) -> None:
        self._subs: set[Changes.Subscription] = set()
        self._forwarders: list[Callable[[set | None], None]] = []
        self._lock = threading.Lock()

    def add_forwarder(self, forward: Callable[[set | None], None]) -> None:
        """Also hand every wake of this process to ``forward`` (to other processes)."""
        with self._lock:
            self._forwarders.append(forward)

    def remove_forwarder(self, forward: Callable[[set | None], None]) -> None:
        with self._lock:
            self._forwarders = [f for f in self._forwarders if f is not forward]

    def subscribe(self) -> Changes.Subscription:
        sub = Changes.Subscription()
        with self._lock:
            self._subs.add(sub)
        return sub

    def unsubscribe(self, sub: Changes.Subscription) -> None:
        with self._lock:
            self._subs.discard(sub)

    def wake(self, keys: Iterable | None = None, forward: bool = True) -> None:
        """Name a change (from any thread); ``forward=False`` for one heard from elsewhere."""
        named = None if keys is None else set(keys)
        with self._lock:
            subs = list(self._subs)
            forwarders = list(self._forwarders) if forward else []
        for f in forwarders:
            f(named)
        for sub in subs:
            sub._add(named)
            try:
                sub.loop.call_soon_threadsafe(sub.event.set)
            except RuntimeError:  # that loop has closed
                self.unsubscribe(sub)


#: a job was submitted: the scheduler places it now instead of at its next interval
JOBS_SUBMITTED = Wakeup()
#: assignments were created, moved, retried or ended, on the nodes named (their ids):
#: node channels push the new lists now
ASSIGNMENTS_CHANGED = Changes()
#: a job's nodes have delivered (it is now ``analysing``): the analysis worker looks now
#: instead of at its next interval
ANALYSIS_DUE = Wakeup()
