"""Live feeds inside one coordinator process: the collector publishes every stored batch of
frames, WebSocket handlers subscribe per job. Subscribers that fall behind lose the oldest
frames, never block the collector."""

from __future__ import annotations

import asyncio
import threading
from collections import defaultdict

from drift import wire


class LiveBus:
    QUEUE = 256

    def __init__(self) -> None:
        self._subs: dict[str, set[tuple[asyncio.AbstractEventLoop, asyncio.Queue]]] = \
            defaultdict(set)
        self._lock = threading.Lock()

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

    def publish(self, frames: list[wire.Frame]) -> None:
        """Collector listener: called from its thread with each stored batch."""
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
