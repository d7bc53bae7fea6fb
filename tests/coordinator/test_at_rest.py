"""At rest, what DRIFT keeps is its user's only: a real ``drift serve`` started with a umask
that would let anyone read its files keeps its data directory 0700 and its databases (users'
password hashes, credential digests, every frame) and spools 0600, tightening ones an older
version left readable; so does a node's state directory and spool."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import httpx

from drift.node.agent import NodeAgent
from drift.node.config import AgentConfig
from drift.spool import Spool

from .served import drift_serve


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_the_data_directory_is_0700_and_databases_and_spools_0600(tmp_path: Path):
    data = tmp_path / "data"
    umask = os.umask(0o022)  # the coordinator inherits it: new files would be 0644
    try:
        with drift_serve(tmp_path) as served, httpx.Client(base_url=served.base) as http:
            http.get("/api/v1/users/me", headers=served.admin(http)).raise_for_status()
            files = {p.name: _mode(p) for p in data.iterdir() if p.is_file()}
            directory = _mode(data)
    finally:
        os.umask(umask)
    assert directory == 0o700, oct(directory)
    expected = {
        "coordinator.db",
        "coordinator.db-wal",
        "coordinator.db-shm",
        "spectrum.sqlite",
        "collector-spool.sqlite",
        "secret_key",
    }
    assert expected <= set(files), sorted(files)
    loose = {name: oct(mode) for name, mode in files.items() if mode & 0o077}
    assert loose == {}, loose


def test_existing_files_are_tightened(tmp_path: Path):
    data = tmp_path / "data"
    data.mkdir()
    os.chmod(data, 0o755)
    with drift_serve(tmp_path):
        pass
    for path in [data, *data.iterdir()]:
        os.chmod(path, 0o755 if path.is_dir() else 0o644)
    with drift_serve(tmp_path):
        assert _mode(data) == 0o700
        for path in data.iterdir():
            if path.suffix in (".db", ".sqlite") or path.name == "secret_key":
                assert _mode(path) == 0o600, (path.name, oct(_mode(path)))


def test_a_nodes_state_directory_and_spool_are_its_own(tmp_path: Path):
    umask = os.umask(0o022)
    try:
        cfg = AgentConfig(
            coordinator="http://127.0.0.1:9", device="testsig", state_dir=tmp_path / "node"
        )
        agent = NodeAgent(cfg)
        agent.http.close()
        spool = Spool(tmp_path / "node" / "spool.sqlite", durable=False)
        spool.append([[b"a", b"b", b"c"]])
        spool.close()
    finally:
        os.umask(umask)
    assert _mode(tmp_path / "node") == 0o700
    for path in (tmp_path / "node").iterdir():
        assert _mode(path) & 0o077 == 0, (path.name, oct(_mode(path)))
