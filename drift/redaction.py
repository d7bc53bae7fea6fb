"""Credentials never reach a log line: every log record of the process is redacted when it is
made, whoever logs it (DRIFT, uvicorn's access and error logs, the websockets library's DEBUG
dumps of request headers and frames) and whichever handler writes it.

What is redacted, by shape and by name:

- bearer tokens (JWTs: ``eyJ...``, also cut short as a DEBUG frame dump cuts them) and DRIFT's
  own secrets (``drk_`` API keys, ``drn_`` node credentials, ``dre_`` enrolment tokens);
- the value after ``Bearer``;
- query parameters and fields named like credentials (``token=``, ``api_key=``, ``password=``,
  ``"token": "..."``);
- the values of the ``Authorization``, ``X-API-Key``, ``X-Node-Token``, ``Cookie`` and
  ``Sec-WebSocket-Protocol`` headers.

:func:`install` wraps the log record factory once per process (it is idempotent).
"""

from __future__ import annotations

import logging
import re
import threading
from typing import Any

MARK = "[redacted]"

_NAMES = r"(?:access_token|refresh_token|token|api_key|apikey|password|passwd|credential|secret)"
_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    # a JWT (three base64url parts, header first), whole or cut short
    (re.compile(r"eyJ[A-Za-z0-9_-]*(?:\.[A-Za-z0-9_-]*){0,2}"), MARK),
    # DRIFT's random credentials by their prefixes, whole or cut short
    (re.compile(r"\bdr[kne]_[A-Za-z0-9_-]*"), MARK),
    (re.compile(r"(?i)\b(bearer)(\s+)[^\s\"',;]{12,}"), r"\1\2" + MARK),
    # token=..., api_key=... in a URL or a form body
    (re.compile(rf"(?i)\b({_NAMES})=[^&\s\"'#]*"), r"\1=" + MARK),
    # "token": "...", 'password': '...' in JSON or a repr
    (re.compile(rf"(?i)([\"']{_NAMES}[\"']\s*:\s*)([\"'])(?:(?!\2).)*\2?"), r"\1\2" + MARK + r"\2"),
    # header values, as a header dump or a repr of a header list shows them
    (
        re.compile(
            r"(?i)\b(authorization|x-api-key|x-node-token|cookie|sec-websocket-protocol)"
            r"((?:[\"']\s*,\s*b?[\"']|[\"']?\s*:\s*[\"']?))([^\"'\r\n]+)"
        ),
        r"\1\2" + MARK,
    ),
)


def redact(text: str) -> str:
    """`text` with every credential in it replaced by ``[redacted]``."""
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    return text


def _redact_arg(value: Any) -> Any:
    if value is None or isinstance(value, (bool, int, float)):
        return value
    try:
        text = value if isinstance(value, str) else str(value)
    except Exception:  # an object whose str() fails: leave it to the formatter's error
        return value
    clean = redact(text)
    return value if clean == text else clean


#: loggers whose formatters read the arguments by position (uvicorn's access log): their
#: arguments are redacted one by one and never merged into the message
_POSITIONAL = frozenset({"uvicorn.access"})


def redact_record(record: logging.LogRecord) -> None:
    """Redact a record in place: its message and each argument, then the message they make
    together (a header's name and value may come as two arguments: then the record keeps
    the redacted message and no arguments), its traceback and stack."""
    if isinstance(record.msg, str):
        record.msg = redact(record.msg)
    elif record.msg is not None and not isinstance(record.msg, (int, float)):
        record.msg = _redact_arg(record.msg)
    if isinstance(record.args, tuple):
        record.args = tuple(_redact_arg(a) for a in record.args)
    elif isinstance(record.args, dict):
        record.args = {k: _redact_arg(v) for k, v in record.args.items()}
    if record.args and record.name not in _POSITIONAL:
        try:
            message = record.getMessage()
        except Exception:  # arguments that do not fit the message: the formatter says so
            message = None
        if message is not None:
            clean = redact(message)
            if clean != message:
                record.msg, record.args = clean, ()
    if record.exc_info and not record.exc_text:
        record.exc_text = redact(logging.Formatter().formatException(record.exc_info))
    elif record.exc_text:
        record.exc_text = redact(record.exc_text)
    if record.stack_info:
        record.stack_info = redact(record.stack_info)


_installed = threading.Lock()
_factory_installed = False


def install() -> None:
    """Redact every log record this process makes from now on."""
    global _factory_installed
    with _installed:
        if _factory_installed:
            return
        previous = logging.getLogRecordFactory()

        def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
            record = previous(*args, **kwargs)
            redact_record(record)
            return record

        logging.setLogRecordFactory(factory)
        _factory_installed = True
