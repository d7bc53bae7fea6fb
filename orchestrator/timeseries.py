"""Time series (PSD frames, detections, IQ captures) behind one interface, two backends.

- the embedded default, :class:`drift.orchestrator.spectrum_store.SpectrumStore` (SQLite, one row
  per frame, the payload as a compact little-endian blob);
- :class:`InfluxStore`, InfluxDB 1.x over its HTTP API: line protocol to ``/write``, InfluxQL
  from ``/query``. Debian's InfluxDB 1.6.7 has no ``/api/v2``; 1.8+ servers still serve these
  endpoints, so this backend works with them too.
- :class:`InfluxV2Store`, InfluxDB 2.x (or 1.8+) with a token: ``influxdb-client`` writes to
  ``/api/v2/write``, reads are InfluxQL through the bucket's v1-compatibility mapping.

Both store a frame exactly (the payload round-trips bit for bit), are idempotent on
(job, node, frame type, sequence), and answer the same queries; ``iq_capture`` joins a node's
IQ frames of a job into one :class:`IqCapture` (:mod:`drift.orchestrator.captures`).
:func:`open_store` picks one from a URL: none or ``sqlite:///path`` for the embedded store,
``influxdb://host:port/db`` (or ``influxdb+https://``) for InfluxDB 1.x,
``influxdb2://host:port/bucket?org=ORG`` for 2.x.

A backend that cannot be reached raises :class:`StoreUnavailable`, so the collector can spool
and retry; anything else is a bug or bad data and raises as such.
"""

from __future__ import annotations

import base64
import json
import math
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Protocol
from urllib.parse import parse_qs, unquote, urlparse

import httpx
import numpy as np
from gnuradio.drift import wire

from drift.orchestrator.captures import IqCapture, join_iq
from drift.orchestrator.spectrum_store import (
    DEVICE_METRIC_FIELDS,
    DEVICE_METRIC_INTS,
    DeviceMetricsPoint,
    SpectrumStore,
    StoredFrame,
)

if TYPE_CHECKING:
    from drift.orchestrator.settings import Settings


class StoreUnavailable(RuntimeError):
    """The time-series backend cannot be reached or is not accepting writes right now."""


class TimeSeriesStore(Protocol):
    def add(self, frames: list[wire.Frame], parts: list[list[bytes]] | None = None) -> int: ...

    def query(
        self,
        job_id: str,
        node_id: str | None = None,
        start: float | None = None,
        end: float | None = None,
        frame_type: int = wire.PSD,
        limit: int | None = None,
    ) -> list[StoredFrame]: ...

    def query_page(
        self,
        job_id: str,
        node_id: str | None = None,
        start: float | None = None,
        end: float | None = None,
        frame_type: int = wire.PSD,
        limit: int = 1000,
    ) -> tuple[Iterator[StoredFrame], bool]: ...

    def iter_frames(
        self,
        job_id: str,
        node_id: str | None = None,
        start: float | None = None,
        end: float | None = None,
        frame_type: int = wire.PSD,
    ) -> Iterator[StoredFrame]: ...

    def count_frames(
        self,
        job_id: str,
        node_id: str | None = None,
        start: float | None = None,
        end: float | None = None,
        frame_type: int = wire.PSD,
    ) -> int: ...

    def count(self, job_id: str) -> int: ...

    def iq_capture(self, job_id: str, node_id: str, longest: bool = False) -> IqCapture | None: ...

    def save_stream_stats(self, stats: dict[tuple, list[int]]) -> None: ...

    def stream_stats(self, job_id: str) -> list[dict]: ...

    def add_device_metrics(self, points: list[DeviceMetricsPoint]) -> None: ...

    def device_metrics(
        self,
        node_id: str,
        device_id: str | None = None,
        start: float | None = None,
        end: float | None = None,
    ) -> list[DeviceMetricsPoint]: ...

    def close(self) -> None: ...


MEASUREMENTS = {wire.PSD: "spectrum_data", wire.DETECTION: "detections", wire.IQ: "iq_captures"}
#: InfluxDB 1.x refuses string field values over 64 KiB: payloads are split into chunks
CHUNK_CHARS = 60_000
#: line protocol bytes per write request: InfluxDB refuses bodies over its ``max-body-size``
#: (25 MB by default) with 413, and a batch of IQ frames is easily larger
MAX_WRITE_BYTES = 8_000_000
#: rows per chunk of a streamed InfluxDB answer (a chunk of 1,024-bin frames is about 3 MB)
STREAM_CHUNK_ROWS = 500


def _tag(value: str) -> str:
    return (
        str(value)
        .replace("\\", "\\\\")
        .replace(",", "\\,")
        .replace("=", "\\=")
        .replace(" ", "\\ ")
        .replace("\n", "\\n")
    )


def _str_field(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _float(value) -> str:
    v = float(value)
    return repr(v) if math.isfinite(v) else "0.0"


def _ns(whole: float, frac: float | None = None) -> int:
    """UNIX time as integer ns, the same way for frames and for query bounds."""
    if frac is None:
        whole, frac = math.floor(whole), whole - math.floor(whole)
    return int(whole) * 1_000_000_000 + int(round(frac * 1e9))


def _ql(value: str) -> str:
    return "'" + str(value).replace("\\", "\\\\").replace("'", "\\'") + "'"


class InfluxStore:
    """InfluxDB 1.x through ``/write`` (line protocol, ns precision) and ``/query`` (InfluxQL).

    One point per frame: tags job_id, node_id; fields seq, the exact time fraction, time
    uncertainty, frequency axis, flags, metadata (JSON) and the payload as base64 chunks
    (``p0``, ``p1``, ...). The timestamp is the frame's time in ns; the point key (series +
    time) makes a rewritten frame overwrite itself, so replays store nothing twice.
    """

    #: 4xx answers that mean "not now" (frames wait in the collector's spool), not bad data
    UNAVAILABLE_STATUS = frozenset({429})

    def __init__(
        self,
        url: str,
        database: str,
        timeout_s: float = 10.0,
        username: str | None = None,
        password: str | None = None,
    ):
        self.base = url.rstrip("/")
        self.database = database
        auth = (username, password or "") if username else None
        self._http = httpx.Client(base_url=self.base, timeout=timeout_s, auth=auth)
        self._ready = False

    @classmethod
    def from_url(cls, url: str) -> InfluxStore:
        u = urlparse(url)
        scheme = "https" if u.scheme.endswith("+https") else "http"
        db = u.path.strip("/") or "drift"
        return cls(
            f"{scheme}://{u.hostname}:{u.port or 8086}",
            db,
            username=unquote(u.username) if u.username else None,
            password=unquote(u.password) if u.password else None,
        )

    def close(self) -> None:
        self._http.close()

    def _request(self, method: str, path: str, **kw) -> httpx.Response:
        try:
            r = self._http.request(method, path, **kw)
        except httpx.TransportError as exc:
            raise StoreUnavailable(f"InfluxDB at {self.base}: {exc}") from None
        if r.status_code >= 400:
            self._refused(r.status_code, r.text)
        return r

    def _refused(self, status: int, text: str) -> None:
        """Raise for an error answer: StoreUnavailable if it means "not now" (the collector
        spools and retries), ValueError if it means bad data."""
        if status >= 500 or status in self.UNAVAILABLE_STATUS:
            raise StoreUnavailable(f"InfluxDB at {self.base}: {status} {text[:200]}")
        raise ValueError(f"InfluxDB refused the request: {status} {text[:300]}")

    def _ensure_database(self) -> None:
        if not self._ready:
            self._request("POST", "/query", data={"q": f'CREATE DATABASE "{self.database}"'})
            self._ready = True

    @staticmethod
    def line(f: wire.Frame, parts: list[bytes] | None = None) -> str:
        """The frame's point in line protocol; `parts`: the wire parts it was decoded from
        (their metadata and PSD or IQ payload are used as they came)."""
        meta = f.meta
        if f.frame_type in wire.PAYLOAD_DTYPES:
            if parts is not None:
                raw = parts[2]
            else:
                raw = np.ascontiguousarray(f.payload, wire.PAYLOAD_DTYPES[f.frame_type]).tobytes()
            n = len(f.payload)
        else:
            raw = wire.encode(f)[2]
            n = len(f.payload or [])
        text = base64.b64encode(raw).decode("ascii")
        chunks = [text[i : i + CHUNK_CHARS] for i in range(0, len(text), CHUNK_CHARS)] or [""]
        fields = [
            f"seq={int(f.seq)}i",
            f"time_frac={_float(f.time_frac)}",
            f"time_uncertainty_s={_float(f.time_uncertainty_s)}",
            f"n_items={n}i",
            f"flags={int(f.flags)}i",
            f"chunks={len(chunks)}i",
            "meta="
            + _str_field(
                str(parts[1], "utf-8")
                if parts is not None
                else json.dumps(meta, separators=(",", ":"))
            ),
        ]
        for key in ("center_freq_hz", "bin_hz"):
            if isinstance(meta.get(key), (int, float)) and math.isfinite(meta[key]):
                fields.append(f"{key}={_float(meta[key])}")
        fields += [f"p{i}=" + _str_field(c) for i, c in enumerate(chunks)]
        ns = _ns(f.time_s, f.time_frac)
        tags = (
            f"job_id={_tag(meta.get('job_id', '') or '-')},node_id="
            f"{_tag(meta.get('node_id', '') or '-')}"
        )
        if f.frame_type == wire.DETECTION:
            # several detection frames can share a PSD row's time: the sequence keeps them apart
            tags += f",seq={int(f.seq)}"
        return f"{MEASUREMENTS[f.frame_type]},{tags} {','.join(fields)} {ns}"

    def _write_lines(self, lines: list[str]) -> None:
        """One request of line protocol (ns precision)."""
        self._ensure_database()
        self._request(
            "POST",
            "/write",
            params={"db": self.database, "precision": "ns"},
            content="\n".join(lines).encode("utf-8"),
        )

    def _query(self, q: str, params: dict) -> httpx.Response:
        """One InfluxQL statement sent to ``/query``."""
        self._ensure_database()
        method, kw = self._query_request(q, params)
        return self._request(method, "/query", **kw)

    def _results(self, q: str, **params) -> list[dict]:
        """The ``results`` of one InfluxQL statement; an error in them raises ValueError."""
        results = self._query(q, params).json().get("results", [])
        for result in results:
            if "error" in result:
                raise ValueError(f"InfluxQL: {result['error']}")
        return results

    def add(self, frames: list[wire.Frame], parts: list[list[bytes]] | None = None) -> int:
        """Write frames, in as few requests of at most :data:`MAX_WRITE_BYTES` as they fit
        (a frame larger than that goes alone). Returns the number written; InfluxDB cannot
        tell new points from rewritten ones, but a rewrite changes nothing, so a batch that
        failed halfway can be written again whole. `parts`: as for the embedded store."""
        batch: list[str] = []
        size = 0
        for i, f in enumerate(frames):
            line = self.line(f, parts[i] if parts is not None else None)
            if batch and size + len(line) + 1 > MAX_WRITE_BYTES:
                self._write_lines(batch)
                batch, size = [], 0
            batch.append(line)
            size += len(line) + 1
        if batch:
            self._write_lines(batch)
        return len(frames)

    def _select(self, q: str) -> list[dict]:
        out = []
        for result in self._results(q, epoch="ns"):
            for series in result.get("series", []):
                cols = series["columns"]
                out.extend(dict(zip(cols, row, strict=True)) for row in series["values"])
        return out

    @staticmethod
    def _where(job_id: str, node_id: str | None, start: float | None, end: float | None) -> str:
        """The filters of a query, all of them in InfluxQL (the server applies them)."""
        where = [f"job_id = {_ql(job_id)}"]
        if node_id is not None:
            where.append(f"node_id = {_ql(node_id)}")
        if start is not None:
            where.append(f"time >= {_ns(start)}")
        if end is not None:
            where.append(f"time < {_ns(end)}")
        return " AND ".join(where)

    def _query_request(self, q: str, params: dict) -> tuple[str, dict]:
        """The method and arguments of the request that sends one InfluxQL statement."""
        return "POST", {"data": {"db": self.database, "q": q, **params}}

    def _open_stream(self, q: str) -> httpx.Response:
        """Send one SELECT for a streamed answer (InfluxDB's chunked mode, one JSON object a
        line, :data:`STREAM_CHUNK_ROWS` rows each) and check its status: a server that is
        down or refuses is known before anything is answered."""
        self._ensure_database()
        method, kw = self._query_request(
            q, {"epoch": "ns", "chunked": "true", "chunk_size": str(STREAM_CHUNK_ROWS)}
        )
        try:
            r = self._http.send(self._http.build_request(method, "/query", **kw), stream=True)
        except httpx.TransportError as exc:
            raise StoreUnavailable(f"InfluxDB at {self.base}: {exc}") from None
        if r.status_code >= 400:
            try:
                r.read()
            finally:
                r.close()
            self._refused(r.status_code, r.text)
        return r

    def _stream_rows(self, r: httpx.Response) -> Iterator[dict]:
        """The rows of a streamed answer as they arrive: only a chunk is held."""
        try:
            for line in r.iter_lines():
                if not line.strip():
                    continue
                for result in json.loads(line).get("results", []):
                    if "error" in result:
                        raise ValueError(f"InfluxQL: {result['error']}")
                    for series in result.get("series", []):
                        cols = series["columns"]
                        for row in series["values"]:
                            yield dict(zip(cols, row, strict=True))
        except httpx.TransportError as exc:
            raise StoreUnavailable(f"InfluxDB at {self.base}: {exc}") from None
        finally:
            r.close()

    def _frames(self, q: str, frame_type: int) -> Iterator[StoredFrame]:
        """The frames a SELECT answers, streamed, in (time, node, sequence) order (the
        request is sent now, the frames read as they are consumed)."""
        return self._in_order(self._stream_rows(self._open_stream(q)), frame_type)

    def _in_order(self, rows: Iterator[dict], frame_type: int) -> Iterator[StoredFrame]:
        """Rows as frames; the points of one instant (several nodes) are held until the next
        instant and sorted."""
        same: list[StoredFrame] = []
        at = None
        for row in rows:
            if row["time"] != at:
                if len(same) > 1:
                    same.sort(key=lambda f: (f.node_id, f.seq))
                yield from same
                same, at = [], row["time"]
            same.append(self._stored(row, frame_type))
        if len(same) > 1:
            same.sort(key=lambda f: (f.node_id, f.seq))
        yield from same

    @staticmethod
    def _stored(row: dict, frame_type: int) -> StoredFrame:
        text = "".join(row.get(f"p{i}") or "" for i in range(int(row["chunks"])))
        raw = base64.b64decode(text)
        data = (
            np.frombuffer(raw, dtype=wire.PAYLOAD_DTYPES[frame_type])
            if frame_type in wire.PAYLOAD_DTYPES
            else raw
        )
        frac = float(row["time_frac"])
        # the point's time is whole * 1e9 + round(frac * 1e9) (see _ns): a fraction that
        # rounds up to the next second must not add that second to the whole part
        whole = (row["time"] - round(frac * 1e9)) // 1_000_000_000
        return StoredFrame(
            row["job_id"],
            row["node_id"],
            frame_type,
            int(row["seq"]),
            whole + frac,
            row.get("center_freq_hz"),
            row.get("bin_hz"),
            int(row["flags"]),
            data,
            whole,
            frac,
            float(row.get("time_uncertainty_s") or 0.0),
            json.loads(row.get("meta") or "{}"),
        )

    def query_page(
        self,
        job_id: str,
        node_id: str | None = None,
        start: float | None = None,
        end: float | None = None,
        frame_type: int = wire.PSD,
        limit: int = 1000,
    ) -> tuple[Iterator[StoredFrame], bool]:
        """The first `limit` frames of :meth:`query`, streamed from InfluxDB's chunked answer
        as they are consumed, and whether more follow (asked first, reading one field)."""
        where = self._where(job_id, node_id, start, end)
        name = MEASUREMENTS[frame_type]
        more = self._select(
            f'SELECT "seq" FROM "{name}" WHERE {where} ORDER BY time ASC '
            f"LIMIT 1 OFFSET {int(limit)}"
        )
        q = f'SELECT * FROM "{name}" WHERE {where} ORDER BY time ASC LIMIT {int(limit)}'
        return self._frames(q, frame_type), bool(more)

    def iter_frames(
        self,
        job_id: str,
        node_id: str | None = None,
        start: float | None = None,
        end: float | None = None,
        frame_type: int = wire.PSD,
    ) -> Iterator[StoredFrame]:
        """Every frame of :meth:`query`, streamed: constant memory whatever the job's size."""
        where = self._where(job_id, node_id, start, end)
        q = f'SELECT * FROM "{MEASUREMENTS[frame_type]}" WHERE {where} ORDER BY time ASC'
        return self._frames(q, frame_type)

    def count_frames(
        self,
        job_id: str,
        node_id: str | None = None,
        start: float | None = None,
        end: float | None = None,
        frame_type: int = wire.PSD,
    ) -> int:
        """How many frames :meth:`iter_frames` reads (the server counts one field)."""
        where = self._where(job_id, node_id, start, end)
        rows = self._select(f'SELECT count("seq") FROM "{MEASUREMENTS[frame_type]}" WHERE {where}')
        return sum(int(r.get("count") or 0) for r in rows)

    def query(
        self,
        job_id: str,
        node_id: str | None = None,
        start: float | None = None,
        end: float | None = None,
        frame_type: int = wire.PSD,
        limit: int | None = None,
    ) -> list[StoredFrame]:
        where = self._where(job_id, node_id, start, end)
        q = f'SELECT * FROM "{MEASUREMENTS[frame_type]}" WHERE {where}'
        if limit is not None:
            # points of one instant (several nodes) may be cut at the limit in any order;
            # the order below holds within what was read
            q += f" ORDER BY time ASC LIMIT {int(limit)}"
        out = [self._stored(row, frame_type) for row in self._select(q)]
        out.sort(key=lambda f: (f.time, f.node_id, f.seq))
        return out

    def iq_capture(self, job_id: str, node_id: str, longest: bool = False) -> IqCapture | None:
        """The node's IQ frames of the job joined in sequence order; None if it sent none
        (`longest`: see join_iq)."""
        return join_iq(self.query(job_id, node_id, frame_type=wire.IQ), longest)

    def save_stream_stats(self, stats: dict[tuple, list[int]]) -> None:
        now = time.time_ns()
        lines = [
            f"frame_stats,job_id={_tag(j or '-')},node_id={_tag(n or '-')},"
            f"type={wire.FRAME_TYPES.get(t, str(t))} received={r}i,lost={lo}i,"
            f"duplicates={d}i {now}"
            for (j, n, t), (r, lo, d) in stats.items()
        ]
        if lines:
            self._write_lines(lines)

    def stream_stats(self, job_id: str) -> list[dict]:
        q = (
            'SELECT last("received") AS received, last("lost") AS lost, '
            'last("duplicates") AS duplicates FROM "frame_stats" '
            f"WHERE job_id = {_ql(job_id)} GROUP BY node_id, type"
        )
        out = []
        for result in self._results(q):
            for series in result.get("series", []):
                row = dict(zip(series["columns"], series["values"][0], strict=True))
                tags = series.get("tags", {})
                out.append(
                    {
                        "node_id": tags.get("node_id"),
                        "type": tags.get("type"),
                        "received": int(row["received"]),
                        "lost": int(row["lost"]),
                        "duplicates": int(row["duplicates"]),
                    }
                )
        return sorted(out, key=lambda d: (d["node_id"], d["type"]))

    def add_device_metrics(self, points: list[DeviceMetricsPoint]) -> None:
        """One ``device_metrics`` point per device and time (tags node_id, device_id); a
        rewritten point overwrites itself."""
        lines = []
        for p in points:
            fields = []
            for k in DEVICE_METRIC_FIELDS:
                v = getattr(p, k)
                if v is None:
                    continue
                fields.append(f"{k}={int(v)}i" if k in DEVICE_METRIC_INTS else f"{k}={_float(v)}")
            if fields:
                lines.append(
                    f"device_metrics,device_id={_tag(p.device_id)},node_id={_tag(p.node_id)} "
                    f"{','.join(fields)} {_ns(p.time)}"
                )
        if lines:
            self._write_lines(lines)

    def device_metrics(
        self,
        node_id: str,
        device_id: str | None = None,
        start: float | None = None,
        end: float | None = None,
    ) -> list[DeviceMetricsPoint]:
        q = f'SELECT * FROM "device_metrics" WHERE node_id = {_ql(node_id)}'
        if device_id is not None:
            q += f" AND device_id = {_ql(device_id)}"
        if start is not None:
            q += f" AND time >= {_ns(start)}"
        if end is not None:
            q += f" AND time < {_ns(end)}"
        out = []
        for row in self._select(q + " ORDER BY time ASC"):
            values = {
                k: None
                if row.get(k) is None
                else (int(row[k]) if k in DEVICE_METRIC_INTS else float(row[k]))
                for k in DEVICE_METRIC_FIELDS
            }
            ns = int(row["time"])
            out.append(
                DeviceMetricsPoint(
                    node_id=row["node_id"],
                    device_id=row["device_id"],
                    time=ns // 1_000_000_000 + (ns % 1_000_000_000) / 1e9,
                    **values,
                )
            )
        out.sort(key=lambda p: (p.time, p.device_id))
        return out

    def count(self, job_id: str) -> int:
        total = 0
        for name in MEASUREMENTS.values():
            rows = self._select(f'SELECT count("seq") FROM "{name}" WHERE job_id = {_ql(job_id)}')
            total += sum(int(r.get("count") or 0) for r in rows)
        return total


class InfluxV2Store(InfluxStore):
    """InfluxDB 2.x (or 1.8+) with a token: writes go through ``influxdb-client`` to
    ``/api/v2/write`` (gzip, ns precision) into a bucket; reads are the same InfluxQL as
    :class:`InfluxStore`, through the v1-compatibility ``/query`` that every 2.x bucket answers
    by its DBRP mapping (a bucket ``drift`` is database ``drift``, retention policy
    ``autogen``; a bucket ``db/rp`` is database ``db``, retention policy ``rp``). The points
    are the same as the 1.x backend's, so both read each other's data.

    The bucket is not created here (its retention is the operator's choice). A missing bucket
    or a refused token is reported as :class:`StoreUnavailable` naming it, so frames wait in
    the collector's spool until it is fixed instead of being dropped.
    """

    UNAVAILABLE_STATUS = frozenset({401, 403, 404, 429})

    def __init__(self, url: str, bucket: str, org: str, token: str, timeout_s: float = 10.0):
        from influxdb_client import InfluxDBClient
        from influxdb_client.client.write_api import SYNCHRONOUS
        from influxdb_client.domain.write_precision import WritePrecision

        database, _, rp = bucket.partition("/")
        super().__init__(url, database, timeout_s)
        self._http.headers["Authorization"] = f"Token {token}"
        self.bucket, self.org, self.rp = bucket, org, rp or None
        self._client = InfluxDBClient(
            url=self.base, token=token, org=org, timeout=int(timeout_s * 1000), enable_gzip=True
        )
        self._writer = self._client.write_api(write_options=SYNCHRONOUS)
        self._precision = WritePrecision.NS

    @classmethod
    def from_url(cls, url: str, token: str | None = None) -> InfluxV2Store:
        """``influxdb2://host:8086/BUCKET?org=ORG`` (``influxdb2+https://`` for TLS). The
        token comes from `token` (the ``timeseries_token`` setting) or the URL's password;
        for InfluxDB 1.8 it is ``user:password`` and the org is ignored (``-``)."""
        u = urlparse(url)
        scheme = "https" if u.scheme.endswith("+https") else "http"
        bucket = unquote(u.path.strip("/"))
        if not bucket:
            raise ValueError(
                "timeseries_url: an InfluxDB 2 URL names its bucket "
                "(influxdb2://host:8086/BUCKET?org=ORG)"
            )
        org = (parse_qs(u.query).get("org") or [""])[0]
        if not org:
            raise ValueError(
                "timeseries_url: an InfluxDB 2 URL names its organisation "
                "(?org=ORG; '-' for InfluxDB 1.8)"
            )
        if token is None and u.password is not None:
            token = unquote(u.password)
            if u.username:  # InfluxDB 1.8: user:password is the token
                token = f"{unquote(u.username)}:{token}"
        if not token:
            raise ValueError(
                "timeseries_token: InfluxDB 2 needs an API token "
                "(DRIFT_TIMESERIES_TOKEN, or the URL's password)"
            )
        return cls(f"{scheme}://{u.hostname}:{u.port or 8086}", bucket, org, token)

    def close(self) -> None:
        self._client.close()
        super().close()

    def _ensure_database(self) -> None:
        pass  # nothing to create: the bucket must exist

    def _refused(self, status: int, text: str) -> None:
        if status == 404:
            raise StoreUnavailable(
                f"InfluxDB at {self.base}: bucket {self.bucket!r} not found "
                f"in organisation {self.org!r} ({text[:200]})"
            )
        if status in (401, 403):
            raise StoreUnavailable(
                f"InfluxDB at {self.base} refused the token ({status}: {text[:200]})"
            )
        super()._refused(status, text)

    def _write_lines(self, lines: list[str]) -> None:
        import urllib3.exceptions
        from influxdb_client.rest import ApiException

        try:
            self._writer.write(
                self.bucket, self.org, "\n".join(lines), write_precision=self._precision
            )
            return
        except ApiException as exc:
            text = (
                exc.body.decode("utf-8", "replace")
                if isinstance(exc.body, bytes)
                else str(exc.body or exc.reason)
            )
            status = exc.status or 503  # no status: the answer never came
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            raise StoreUnavailable(f"InfluxDB at {self.base}: {exc}") from None
        self._refused(status, text)  # outside the handler: no chained client traceback

    def _query_request(self, q: str, params: dict) -> tuple[str, dict]:
        # the v1-compatibility read: GET with the database, and the retention policy if the
        # bucket names one
        query = {"db": self.database, "q": q, **params}
        if self.rp:
            query["rp"] = self.rp
        return "GET", {"params": query}


class EmbeddedStore(SpectrumStore):
    """The SQLite store, with an unreachable file (locked, read-only, disk full) reported as
    :class:`StoreUnavailable` like any other backend."""

    def add(self, frames: list[wire.Frame], parts: list[list[bytes]] | None = None) -> int:
        try:
            return super().add(frames, parts)
        except sqlite3.OperationalError as exc:
            raise StoreUnavailable(f"SQLite store {self.path}: {exc}") from None

    def add_device_metrics(self, points: list[DeviceMetricsPoint]) -> None:
        try:
            super().add_device_metrics(points)
        except sqlite3.OperationalError as exc:
            raise StoreUnavailable(f"SQLite store {self.path}: {exc}") from None


def open_store(url: str | None, data_dir: Path, token: str | None = None) -> TimeSeriesStore:
    """The store a URL names; none: the embedded SQLite file in `data_dir`. `token` is the
    API token for an ``influxdb2://`` URL."""
    if not url:
        return EmbeddedStore(str(Path(data_dir) / "spectrum.sqlite"))
    scheme = urlparse(url).scheme
    if scheme.startswith("influxdb2"):
        return InfluxV2Store.from_url(url, token)
    if scheme.startswith("influxdb"):
        return InfluxStore.from_url(url)
    if scheme == "sqlite":
        return EmbeddedStore(urlparse(url).path)
    raise ValueError(
        f"timeseries_url: unknown scheme {scheme!r} "
        "(use influxdb://host:port/db, influxdb2://host:port/bucket?org=ORG "
        "or sqlite:///path)"
    )


def open_configured_store(settings: Settings) -> TimeSeriesStore:
    """The store the coordinator's settings name: ``timeseries_url`` (with
    ``timeseries_token``), or the embedded file in ``data_dir``."""
    token = settings.timeseries_token.get_secret_value() if settings.timeseries_token else None
    return open_store(settings.timeseries_url, settings.data_dir, token)
