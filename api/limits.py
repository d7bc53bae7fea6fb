"""Request bodies are limited before they are read.

:class:`BodyLimit` is an ASGI middleware: a request whose ``Content-Length`` says it is too
large is answered 413 at once, without reading a byte of its body; one without a length
(chunked) is counted as its chunks arrive, and refused with 413 as soon as it passes the
limit, so a handler never holds more than the limit in memory. Each path has the default
limit (``max_body_bytes``, 1 MiB) unless it is one of the upload routes given their own.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

log = logging.getLogger(__name__)


class BodyTooLarge(HTTPException):
    """Raised from ``receive`` once a chunked body passes its limit (FastAPI passes an
    HTTPException raised while it reads the body on to the exception handlers: a 413)."""

    def __init__(self, limit_bytes: int) -> None:
        super().__init__(413, f"request body larger than {limit_bytes} bytes")
        self.limit_bytes = limit_bytes


class BodyLimit:
    def __init__(
        self,
        app: ASGIApp,
        max_body_bytes: int,
        path_limits: Mapping[str, int] | None = None,
    ) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.path_limits = dict(path_limits or {})

    def limit_for(self, path: str) -> int:
        return self.path_limits.get(path.rstrip("/") or "/", self.max_body_bytes)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.limit_for(scope.get("path", ""))
        declared = _content_length(scope)
        if declared is not None and declared > limit:
            log.info(
                "%s %s: refused a body of %d bytes (limit %d) unread",
                scope.get("method"),
                scope.get("path"),
                declared,
                limit,
            )
            await _refuse(send, limit)
            return
        received = 0
        started = False

        async def counted() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLarge(limit)
            return message

        async def sending(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, counted, sending)
        except BodyTooLarge:  # raised where nothing turned it into a response
            if started:
                raise
            log.info(
                "%s %s: body passed its limit of %d bytes", scope["method"], scope["path"], limit
            )
            await _refuse(send, limit)


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


async def _refuse(send: Send, limit: int) -> None:
    body = json.dumps({"detail": f"request body larger than {limit} bytes"}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 413,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
