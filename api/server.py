"""``drift serve``: the API server and, beside it in the same process, the scheduler."""

from __future__ import annotations

import argparse
import asyncio
import logging
from collections.abc import Sequence

import uvicorn
import zmq
from drift.api.app import create_app
from drift.api.runtime import Runtime
from drift.orchestrator.collector import Collector
from drift.orchestrator.events import LIVE
from drift.orchestrator.scheduler import Scheduler
from drift.orchestrator.settings import Settings, load_settings
from drift.orchestrator.timeseries import open_store

log = logging.getLogger(__name__)


def build_parser(parser: argparse.ArgumentParser | None = None) -> argparse.ArgumentParser:
    p = parser or argparse.ArgumentParser(
        prog="drift serve", description="Run the DRIFT coordinator (REST API and scheduler)."
    )
    p.add_argument("--host", default="127.0.0.1", help="address to listen on [127.0.0.1]")
    p.add_argument("--port", type=int, default=8000, help="TCP port [8000]")
    p.add_argument(
        "--no-scheduler",
        action="store_true",
        help="API only (another process runs the scheduler)",
    )
    p.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    p.add_argument("--config", metavar="FILE", help="YAML settings (keys as in DRIFT_* without "
                   "the prefix, lower case); the environment overrides the file")
    return p


async def run(settings: Settings, host: str, port: int, scheduler: bool = True) -> None:
    """Serve until interrupted; the scheduler ticks in its own task, not in request handlers."""
    # prepare the database before either side starts (the app's own start-up is then a no-op)
    runtime = await asyncio.to_thread(Runtime.start, settings)
    collector = start_collector(settings)
    app = create_app(settings)
    # node channels carry small JSON messages: compressing each costs more than it saves
    # at shutdown, connections still open after 10 s are closed
    server = uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_config=None,
                                           ws_per_message_deflate=False,
                                           timeout_graceful_shutdown=10))
    stop = asyncio.Event()
    tasks = [asyncio.create_task(server.serve())]
    if scheduler:
        tasks.append(asyncio.create_task(Scheduler(runtime.sessions, settings, runtime.ledger).run(stop)))
    try:
        await tasks[0]
    finally:
        stop.set()
        await asyncio.gather(*tasks[1:], return_exceptions=True)
        if collector is not None:
            collector.close()
            collector.store.close()
        runtime.close()


def start_collector(settings: Settings) -> Collector | None:
    """The collector, in a thread of this process, storing into the time-series store through
    its own connection, spooling under the data directory while the store is down. An endpoint
    already in use (another replica on this host collects) is logged, not fatal."""
    if not settings.collector_bind:
        return None
    store = open_store(settings.timeseries_url, settings.data_dir)
    try:
        collector = Collector(store, settings.collector_bind, spool_dir=settings.data_dir)
    except zmq.ZMQError as exc:
        store.close()
        log.error("collector not started: cannot bind %s (%s); set DRIFT_COLLECTOR_BIND",
                  settings.collector_bind, exc)
        return None
    collector.add_listener(LIVE.publish)  # live spectrum for WebSocket clients
    collector.start()
    log.info("collector listening on %s", collector.address)
    return collector


def serve(argv: Sequence[str] | None = None) -> int:
    """Entry point for ``drift serve [--host H] [--port P] [--no-scheduler]``; returns 0."""
    args = build_parser().parse_args(argv)
    return main(args)


def main(args: argparse.Namespace) -> int:
    """Run with already parsed arguments (for a ``drift`` sub-command built with build_parser)."""
    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    settings = load_settings(getattr(args, "config", None))
    with asyncio.Runner(loop_factory=_loop_factory()) as runner:
        runner.run(run(settings, args.host, args.port, scheduler=not args.no_scheduler))
    return 0


def _loop_factory():
    """uvloop's event loop where it is installed (as uvicorn itself would pick it)."""
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.new_event_loop
