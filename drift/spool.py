"""A disk spool of wire-format frames: an append-only SQLite queue, oldest first.

Both ends of the data plane keep one: the node agent's relay commits every frame its
flowgraphs send before forwarding it (so nothing is lost while the coordinator is away), and the
collector commits the frames it cannot store while the time-series store is down (so they are
written later, in order). Rows are the three wire parts of a frame, numbered in arrival order;
frames leave the spool from the front only (:meth:`Spool.drop_through`), so the numbers of the
frames in it are always one run.
"""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

from drift.fileperm import private_file

Parts = list[bytes]


class Spool:
    """An SQLite file (WAL) of frames. `durable`: every append survives a power cut
    (``synchronous=FULL``); otherwise a crash of the process loses nothing, a power cut may
    lose the last appends (``NORMAL``). Safe to share between threads."""

    def __init__(self, path: Path | str, durable: bool = True):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        private_file(self.path, sqlite=True)  # frames wait here: its owner's only
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute(f"PRAGMA synchronous={'FULL' if durable else 'NORMAL'}")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS spool (id INTEGER PRIMARY KEY, "
            "p0 BLOB NOT NULL, p1 BLOB NOT NULL, p2 BLOB NOT NULL)"
        )
        self._lock = threading.Lock()
        first, last = self._db.execute(
            "SELECT coalesce(min(id), 1) - 1, coalesce(max(id), 0) FROM spool"
        ).fetchone()
        #: the number of the last frame appended, and of the last one dropped
        self.last_id: int = last
        self.dropped_id: int = first

    @property
    def depth(self) -> int:
        """Frames in the spool."""
        return self.last_id - self.dropped_id

    def append(self, frames: list[Parts]) -> int:
        """Commit frames (each its three wire parts); the number of the last one."""
        if not frames:
            return self.last_id
        with self._lock:
            self._db.execute("BEGIN")
            try:
                self._db.executemany("INSERT INTO spool (p0, p1, p2) VALUES (?, ?, ?)", frames)
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self.last_id = self._db.execute("SELECT max(id) FROM spool").fetchone()[0]
            return self.last_id

    def after(self, rid: int, n: int) -> list[tuple[int, Parts]]:
        """Up to `n` frames numbered after `rid`, oldest first: (number, parts)."""
        with self._lock:
            rows = self._db.execute(
                "SELECT id, p0, p1, p2 FROM spool WHERE id > ? ORDER BY id LIMIT ?", (rid, n)
            ).fetchall()
        return [(i, [p0, p1, p2]) for i, p0, p1, p2 in rows]

    def head(self, n: int) -> list[tuple[int, Parts]]:
        """The oldest `n` frames."""
        return self.after(self.dropped_id, n)

    def drop_through(self, rid: int) -> None:
        """Forget every frame numbered up to `rid` (they have left for good)."""
        with self._lock:
            if rid <= self.dropped_id:
                return
            self._db.execute("DELETE FROM spool WHERE id <= ?", (rid,))
            self.dropped_id = min(rid, self.last_id)

    def close(self) -> None:
        with self._lock:
            self._db.close()
