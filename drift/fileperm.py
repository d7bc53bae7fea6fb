"""Files at rest are private to the user that runs DRIFT: its data directories ``0700``, its
databases and spools ``0600`` (with their SQLite ``-wal``/``-shm``/``-journal`` files, which
SQLite creates with the database file's own mode).

An existing file or directory that others can read is tightened when it is opened, if this
user owns it (and left as it is, with a warning, otherwise).
"""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path

log = logging.getLogger(__name__)

DIR_MODE = 0o700
FILE_MODE = 0o600
#: the files SQLite keeps beside a database
SQLITE_COMPANIONS = ("-wal", "-shm", "-journal")


def _tighten(path: Path, mode: int) -> None:
    try:
        st = path.stat()
    except FileNotFoundError:
        return
    if stat.S_IMODE(st.st_mode) & ~mode == 0:
        return
    if st.st_uid != os.geteuid():
        log.warning("%s is readable by others and not ours to change (mode %o)", path, st.st_mode)
        return
    os.chmod(path, stat.S_IMODE(st.st_mode) & mode)


def private_dir(path: Path | str) -> Path:
    """Make a directory (and its parents) if it is missing; only its owner may enter it."""
    path = Path(path)
    path.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
    _tighten(path, DIR_MODE)
    return path


def private_file(path: Path | str, sqlite: bool = False) -> Path:
    """Create a file (empty) if it is missing, readable and writable by its owner only; an
    existing one is tightened. `sqlite`: its SQLite companion files too."""
    path = Path(path)
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE))
    except FileExistsError:
        pass
    _tighten(path, FILE_MODE)
    if sqlite:
        for suffix in SQLITE_COMPANIONS:
            _tighten(path.with_name(path.name + suffix), FILE_MODE)
    return path


def replace_private(path: Path | str, data: bytes | str, mode: int = FILE_MODE) -> Path:
    """Write a file only its owner can read (or with `mode`, for a certificate others may
    read), in one step: a reader sees the old content or the new one, never half of it
    (written beside it, then renamed over it)."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data.encode("utf-8") if isinstance(data, str) else data)
    os.replace(tmp, path)
    return path


def create_private(path: Path | str, data: bytes | str) -> bool:
    """Create a file only its owner can read, never replacing one: False (and nothing
    written) if it exists."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE)
    except FileExistsError:
        return False
    with os.fdopen(fd, "wb") as fh:
        fh.write(data.encode("utf-8") if isinstance(data, str) else data)
    return True
