"""CurveZMQ key pairs of the data plane: the collector's server key and each node's own key.

A key is 32 bytes, written as 40 characters of Z85 (ZeroMQ's text encoding). A key pair is kept
in a file only its owner can read (mode 0600), in the ZeroMQ certificate format that pyzmq's
``zmq.auth.load_certificate`` and CZMQ read. Both ends of the data plane use this module: the
coordinator for its server key (``data_dir``), the node agent for its own (``state_dir``).
"""

from __future__ import annotations

import datetime as dt
import os
import re
from dataclasses import dataclass
from pathlib import Path

import zmq
import zmq.auth

from drift.fileperm import replace_private

#: Z85 text of a 32-byte Curve key
KEY_PATTERN = r"^[0-9a-zA-Z.\-:+=^!/*?&<>()\[\]{}@%$#]{40}$"
_KEY = re.compile(KEY_PATTERN)


class KeyFileError(ValueError):
    """A key file that cannot be used; the message names the file and why."""


def is_key(text: str) -> bool:
    """Whether `text` is a Curve key in Z85 (40 characters of its alphabet)."""
    return isinstance(text, str) and bool(_KEY.match(text))


@dataclass(frozen=True)
class KeyPair:
    """A Curve key pair, both keys as Z85 text."""

    public: str
    secret: str

    @classmethod
    def new(cls) -> KeyPair:
        public, secret = zmq.curve_keypair()
        return cls(public.decode("ascii"), secret.decode("ascii"))

    @classmethod
    def from_secret(cls, secret: str) -> KeyPair:
        """The pair of a secret key (its public key is computed from it)."""
        if not is_key(secret):
            raise ValueError("a Curve secret key is 40 characters of Z85")
        return cls(zmq.curve_public(secret.encode("ascii")).decode("ascii"), secret)


def _certificate(pair: KeyPair) -> str:
    stamp = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    return (
        f"#   ****  Generated on {stamp} by DRIFT  ****\n"
        "#   ZeroMQ CURVE **Secret** Certificate\n"
        "#   DO NOT PROVIDE THIS FILE TO OTHER USERS nor change its permissions.\n\n"
        "metadata\n"
        "curve\n"
        f'    public-key = "{pair.public}"\n'
        f'    secret-key = "{pair.secret}"\n'
    )


def load_or_create(path: Path) -> tuple[KeyPair, bool]:
    """The key pair kept in `path`, made (mode 0600) if the file does not exist yet; returns
    (the pair, whether it was made now). Raises :class:`KeyFileError` for a file that is not
    a secret certificate, or whose public key does not belong to its secret key."""
    path = Path(path)
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        pair = KeyPair.new()
        tmp = path.with_name(path.name + ".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(_certificate(pair))
        try:
            os.link(tmp, path)  # never replaces a key another process made meanwhile
        except FileExistsError:
            os.unlink(tmp)
            return load_or_create(path)
        os.unlink(tmp)
        return pair, True
    try:
        public, secret = zmq.auth.load_certificate(path)
    except (OSError, ValueError) as exc:
        raise KeyFileError(f"{path}: not a ZeroMQ certificate ({exc})") from None
    if secret is None:
        raise KeyFileError(f"{path}: has no secret key")
    try:
        pair = KeyPair.from_secret(secret.decode("ascii"))
    except (ValueError, UnicodeDecodeError):
        raise KeyFileError(f"{path}: the secret key is not 40 characters of Z85") from None
    if pair.public != public.decode("ascii", "replace"):
        raise KeyFileError(f"{path}: the public key does not belong to the secret key")
    if path.stat().st_mode & 0o077:
        os.chmod(path, 0o600)
    return pair, False


def replace(path: Path, pair: KeyPair) -> None:
    """Keep `pair` in `path` (mode 0600) in place of the pair there, in one step."""
    replace_private(path, _certificate(pair))


def make_client(sock: zmq.Socket, server_public: str, pair: KeyPair) -> None:
    """Make `sock` (not yet connected) a Curve client of the server with this public key."""
    sock.curve_serverkey = server_public.encode("ascii")
    sock.curve_publickey = pair.public.encode("ascii")
    sock.curve_secretkey = pair.secret.encode("ascii")
