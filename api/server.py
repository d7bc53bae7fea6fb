"""``drift serve``: the API server and, beside it in the same process, the scheduler and the
analysis worker (whose analyses run in worker processes of their own)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import errno
import gc
import logging
import signal
import socket
import ssl
from collections.abc import Iterator, Sequence

import uvicorn
import zmq
from gnuradio.drift import wire
from pydantic import ValidationError
from sqlalchemy.orm import Session, sessionmaker

from drift import redaction
from drift.api.app import create_app
from drift.api.runtime import Runtime
from drift.api.tls import Config
from drift.orchestrator.analysis.worker import Analyst
from drift.orchestrator.collector import Collector, CurveServer
from drift.orchestrator.data_plane import FrameGate, NodeKeys
from drift.orchestrator.events import LIVE
from drift.orchestrator.scheduler import Scheduler
from drift.orchestrator.settings import Settings, load_settings
from drift.orchestrator.timeseries import open_configured_store
from drift.tls import TLSConfigError, is_loopback, server_context

log = logging.getLogger(__name__)


class _Server(uvicorn.Server):
    """uvicorn re-raises the signal that stopped it once its connections have closed, which
    ends the process there: the scheduler's tick in progress (and the Redis lease it holds)
    would die with it, and the frames waiting in the collector's socket would never be
    stored. Here :func:`run` takes SIGINT and SIGTERM for the whole process and closes
    everything before ``drift serve`` exits (with 0)."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


@contextlib.contextmanager
def _stop_on_signals(server: uvicorn.Server) -> Iterator[None]:
    """SIGINT and SIGTERM start the shutdown (a second one cuts the graceful wait for
    connections short); they stay caught until the last part has closed."""
    loop = asyncio.get_running_loop()
    caught = []
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(sig, server.handle_exit, sig, None)
            caught.append(sig)
        except (NotImplementedError, RuntimeError, ValueError):  # not the main thread
            pass
    try:
        yield
    finally:
        for sig in caught:
            loop.remove_signal_handler(sig)


def build_parser(parser: argparse.ArgumentParser | None = None) -> argparse.ArgumentParser:
    p = parser or argparse.ArgumentParser(
        prog="drift serve", description="Run the DRIFT coordinator (REST API and scheduler)."
    )
    p.add_argument("--host", default="127.0.0.1", help="address to listen on [127.0.0.1]")
    p.add_argument("--port", type=int, default=8000, help="TCP port [8000]")
    p.add_argument(
        "--no-scheduler",
        action="store_true",
        help="API only (another process runs the scheduler and the analyses)",
    )
    tls = p.add_argument_group(
        "TLS",
        "HTTPS for the REST API and the node channel (TLS 1.2+, ECDHE, AES-GCM or "
        "ChaCha20). Nodes then authenticate with the client certificates the coordinator's "
        "CA gave them at enrollment. Without TLS, drift serve listens on loopback only unless "
        "told --insecure-http (behind a reverse proxy that terminates TLS: see "
        "docs/security.md). The same settings go in --config as tls_cert, tls_key, "
        "client_ca, insecure_http.",
    )
    tls.add_argument("--tls-cert", metavar="PEM", help="the server's certificate (chain)")
    tls.add_argument("--tls-key", metavar="PEM", help="its private key")
    tls.add_argument(
        "--client-ca",
        metavar="PEM",
        help="CA(s) client certificates must chain to [the coordinator's own CA, which signs "
        "node certificates: DATA_DIR/ca/ca.crt]",
    )
    tls.add_argument(
        "--insecure-http",
        action="store_true",
        help="allow plain HTTP on an address that is not loopback",
    )
    p.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    p.add_argument(
        "--config",
        metavar="FILE",
        help="YAML settings (keys as in DRIFT_* without "
        "the prefix, lower case); the environment overrides the file",
    )
    return p


class ServeError(ValueError):
    """``drift serve`` cannot start as configured; the message says what to change."""


def check_transport(settings: Settings, host: str) -> None:
    """Plain HTTP only on loopback, unless ``insecure_http`` says otherwise."""
    if settings.tls_cert is not None or is_loopback(host):
        return
    if not settings.insecure_http:
        raise ServeError(
            f"refusing to serve plain HTTP on {host}: credentials and node traffic would cross "
            "the network in clear. Give --tls-cert and --tls-key (see docs/security.md), or "
            "--insecure-http behind a reverse proxy that terminates TLS"
        )
    log.warning(
        "serving plain HTTP on %s (--insecure-http): passwords, tokens and node credentials "
        "cross the network unencrypted unless a reverse proxy in front terminates TLS",
        host,
    )


def server_ssl_context(settings: Settings, runtime: Runtime) -> ssl.SSLContext | None:
    if settings.tls_cert is None:
        return None
    client_ca = settings.client_ca or runtime.ca.cert_path
    ctx = server_context(settings.tls_cert, settings.tls_key, client_ca)
    log.info("TLS on; node client certificates checked against %s", client_ca)
    return ctx


def listen(host: str, port: int) -> socket.socket:
    """The server's listening socket, bound before anything else starts, so a port in use is
    one line (ServeError), not a failure after the start-up."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        return socket.create_server((host, port), family=family, backlog=2048)
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            raise ServeError(
                f"port {port} on {host} is in use (another drift serve?); choose another --port"
            ) from None
        raise ServeError(f"cannot listen on {host} port {port}: {exc.strerror or exc}") from None


async def run(settings: Settings, host: str, port: int, scheduler: bool = True) -> None:
    """Serve until interrupted; the scheduler ticks in its own task, not in request handlers."""
    check_transport(settings, host)
    sock = listen(host, port)
    await asyncio.to_thread(wait_for_services, settings)
    # prepare the database before either side starts (the app's own start-up is then a no-op)
    runtime = await asyncio.to_thread(Runtime.start, settings)
    ssl_context = server_ssl_context(settings, runtime)
    collector = start_collector(settings, runtime.read_sessions)
    app = create_app(settings)
    # node channels carry small JSON messages: compressing each costs more than it saves
    # at shutdown, connections still open after 10 s are closed
    server = _Server(
        Config(
            app,
            ssl_context=ssl_context,
            host=host,
            port=port,
            log_config=None,
            ws_per_message_deflate=False,
            # WebSocket messages are limited like request bodies (node channels and the live
            # feed take small JSON messages)
            ws_max_size=settings.max_body_bytes,
            timeout_graceful_shutdown=10,
        )
    )
    stop = asyncio.Event()
    with _stop_on_signals(server):
        tasks = [asyncio.create_task(server.serve(sockets=[sock]))]
        frozen = asyncio.create_task(_freeze_heap_when_started(server))
        if scheduler:
            tasks.append(
                asyncio.create_task(Scheduler(runtime.sessions, settings, runtime.ledger).run(stop))
            )
            tasks.append(asyncio.create_task(Analyst(runtime.sessions, settings).run(stop)))
        try:
            await tasks[0]
        finally:
            # the tick in progress ends (and gives its lease back), the collector stores what
            # waits in its socket, then the database connections close
            stop.set()
            frozen.cancel()
            await asyncio.gather(*tasks[1:], return_exceptions=True)
            if collector is not None:
                await asyncio.to_thread(collector.close)
                collector.store.close()
            runtime.close()
            log.info("coordinator stopped")


async def _freeze_heap_when_started(server: uvicorn.Server) -> None:
    """Once the app has started, what it has built (modules, the app, its routes, models and
    caches: some 150,000 objects that live as long as the process) is moved out of the
    garbage collector's sight, and young collections come every 20,000 allocations instead
    of 700, so that fewer objects live long enough to reach the old generation. The full
    collections, each a pause of the whole process, then come a tenth as often and look
    only at what came later. With 1,000 node channels they paused it for 0.25-0.4 s every
    few seconds: most of the 99th percentile of heartbeat and dispatch latency."""
    while not server.started:
        await asyncio.sleep(0.05)
    gc.collect()
    gc.freeze()
    gc.set_threshold(20_000, 20, 20)
    log.info("%d objects set aside from garbage collection", gc.get_freeze_count())


def wait_for_services(settings: Settings) -> None:
    """Wait up to ``startup_wait_s`` for the database and Redis to take connections."""
    if settings.startup_wait_s <= 0:
        return
    import redis
    import sqlalchemy
    from tenacity import (
        before_sleep_log,
        retry,
        retry_if_exception_type,
        stop_after_delay,
        wait_exponential,
    )

    @retry(
        retry=retry_if_exception_type((sqlalchemy.exc.OperationalError, redis.ConnectionError)),
        stop=stop_after_delay(settings.startup_wait_s),
        wait=wait_exponential(multiplier=0.5, max=5),
        before_sleep=before_sleep_log(log, logging.WARNING),
        reraise=True,
    )
    def reachable() -> None:
        engine = sqlalchemy.create_engine(settings.sqlalchemy_url)
        try:
            with engine.connect():
                pass
        finally:
            engine.dispose()
        if settings.redis_url:
            client = redis.Redis.from_url(settings.redis_url, socket_connect_timeout=5)
            try:
                client.ping()
            finally:
                client.close()

    try:
        reachable()
    except (sqlalchemy.exc.OperationalError, redis.ConnectionError) as exc:
        raise ServeError(
            f"the database or Redis did not take connections within startup_wait_s = "
            f"{settings.startup_wait_s:g} s: {exc}"
        ) from None


def start_collector(settings: Settings, sessions: sessionmaker[Session]) -> Collector | None:
    """The collector, in a thread of this process, storing into the time-series store through
    its own connection, spooling under the data directory while the store is down. An endpoint
    already in use (another replica on this host collects) is logged, not fatal.

    On a Curve data plane (the default) it takes frames only from enrolled nodes' keys; on
    either, only frames of jobs their node has an assignment of, until the job is over.
    `sessions` reads the nodes and jobs (read-only sessions: no write lock)."""
    if not settings.collector_bind:
        return None
    curve = None
    if settings.data_plane == "curve":
        curve = CurveServer(settings.curve_server_keys(), NodeKeys(sessions))
    else:
        log.warning(
            "data plane INSECURE (DRIFT_DATA_PLANE=insecure): the collector takes plaintext "
            "frames from anyone who reaches %s",
            settings.collector_bind,
        )
    gate = FrameGate(
        sessions, job_grace_s=settings.data_plane_job_grace_s, cache_s=settings.data_plane_cache_s
    )
    store = open_configured_store(settings)
    try:
        collector = Collector(
            store,
            settings.collector_bind,
            spool_dir=settings.data_dir,
            curve=curve,
            gate=gate,
            max_frame_bytes=settings.max_frame_bytes,
            max_frame_bins=settings.max_frame_bins,
            tracker=wire.SequenceTracker(
                settings.sequence_max_streams, settings.sequence_max_hole_ranges
            ),
        )
    except zmq.ZMQError as exc:
        store.close()
        log.error(
            "collector not started: cannot bind %s (%s); set DRIFT_COLLECTOR_BIND",
            settings.collector_bind,
            exc,
        )
        return None
    collector.add_listener(LIVE.publish)  # live spectrum for WebSocket clients
    collector.start()
    log.info(
        "collector listening on %s (%s)",
        collector.address,
        f"CurveZMQ, server key {curve.keys.public}" if curve else "plaintext",
    )
    return collector


def serve(argv: Sequence[str] | None = None) -> int:
    """Entry point for ``drift serve [--host H] [--port P] [--no-scheduler]``; returns 0."""
    args = build_parser().parse_args(argv)
    return main(args)


def main(args: argparse.Namespace) -> int:
    """Run with already parsed arguments (for a ``drift`` sub-command built with build_parser)."""
    # replaces the drift command's own (warnings only) set-up: --log-level is what counts here
    level = "DEBUG" if getattr(args, "verbose", False) else args.log_level.upper()
    redaction.install()  # no credential in any log line (uvicorn's access log included)
    logging.basicConfig(
        level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s", force=True
    )
    if level != "DEBUG":  # a line per request costs more than the request at a node's rate
        logging.getLogger("uvicorn.access").setLevel(logging.WARNING)
        # nor a line per write to InfluxDB or per Redis round trip
        logging.getLogger("httpx").setLevel(logging.WARNING)
    settings = load_settings(getattr(args, "config", None))
    overrides = {
        name: value
        for name, value in (
            ("tls_cert", args.tls_cert),
            ("tls_key", args.tls_key),
            ("client_ca", args.client_ca),
            ("insecure_http", args.insecure_http or None),
        )
        if value is not None
    }
    try:
        if overrides:
            settings = Settings.model_validate({**settings.model_dump(), **overrides})
        with asyncio.Runner(loop_factory=_loop_factory()) as runner:
            runner.run(run(settings, args.host, args.port, scheduler=not args.no_scheduler))
    except (ServeError, TLSConfigError) as exc:
        log.error("%s", exc)
        return 2
    except ValidationError as exc:
        log.error("%s", "; ".join(e["msg"].removeprefix("Value error, ") for e in exc.errors()))
        return 2
    return 0


def _loop_factory():
    """uvloop's event loop where it is installed (as uvicorn itself would pick it)."""
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.new_event_loop
