"""The compose stack's simulated nodes (``docker/compose.yaml``, profile ``sim``).

Two steps, each in its own container, sharing one volume (``--dir``):

``python -m drift.stack setup``
    In the coordinator's image, once the coordinator is healthy: logs in as the admin and writes
    one ``node.yaml`` per simulated receiver of the scenario (the first ``--nodes``), each with a
    one-time enrollment token of its own. A node that has a ``node.yaml`` already keeps it (and
    the credential its agent keeps), so running it again changes nothing. Only this step sees the
    admin's password; the node containers see their own token.

``python -m drift.stack node``
    In each node container (``deploy: replicas``): claims one of those ``node.yaml`` files for
    this container (a directory made atomically per claim, holding the container's host name, so
    a restarted container takes the same node again), then runs ``drift node`` on it.
"""

from __future__ import annotations

import argparse
import os
import socket
import sys
import time
from pathlib import Path

import httpx
import yaml

from drift.fileperm import private_dir, replace_private

DEFAULT_DIR = Path("/var/lib/drift/sim")
DEFAULT_SCENARIO = "/opt/drift/src/examples/scenarios/city.yaml"


def _receivers(scenario: Path) -> list[str]:
    from drift.sim import load_scenario

    return [n.id for n in load_scenario(scenario).nodes]


def setup(args: argparse.Namespace) -> int:
    password = os.environ.get("DRIFT_ADMIN_PASSWORD")
    if not password:
        print("error: DRIFT_ADMIN_PASSWORD is not set", file=sys.stderr)
        return 2
    names = _receivers(args.scenario)
    if args.nodes > len(names):
        print(
            f"error: --nodes {args.nodes}: the scenario {args.scenario} has {len(names)} nodes",
            file=sys.stderr,
        )
        return 2
    configs = private_dir(args.dir / "nodes")
    private_dir(args.dir / "state")
    private_dir(args.dir / "claims")
    api = args.coordinator.rstrip("/") + "/api/v1"
    with httpx.Client(base_url=api, timeout=30) as http:
        deadline = time.monotonic() + args.wait_s
        while True:
            try:
                r = http.post("/auth/token", data={"username": "admin", "password": password})
                break
            except httpx.TransportError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(1)
        r.raise_for_status()
        auth = {"Authorization": f"Bearer {r.json()['access_token']}"}
        for name in names[: args.nodes]:
            path = configs / f"{name}.yaml"
            if path.exists():
                print(f"{name}: {path} exists, kept")
                continue
            r = http.post("/nodes/enrollment-tokens", headers=auth)
            r.raise_for_status()
            config = {
                "coordinator": args.coordinator,
                "enrollment_token": r.json()["token"],
                "name": name,
                "device": f"sim={args.scenario},node={name}" + (args.device_options or ""),
                "state_dir": str(args.dir / "state" / name),
                "collector": args.collector,
            }
            replace_private(path, yaml.safe_dump(config, sort_keys=False).encode())
            print(f"{name}: wrote {path}")
    return 0


def claim(directory: Path, me: str) -> Path | None:
    """The node.yaml this container runs: the one it claimed before, else a free one."""
    claims = directory / "claims"
    for entry in sorted(claims.iterdir()) if claims.is_dir() else []:
        owner = entry / "owner"
        if owner.is_file() and owner.read_text().strip() == me:
            return directory / "nodes" / f"{entry.name}.yaml"
    for config in sorted((directory / "nodes").glob("*.yaml")):
        try:
            (claims / config.stem).mkdir()
        except FileExistsError:
            continue
        (claims / config.stem / "owner").write_text(me + "\n")
        return config
    return None


def node(args: argparse.Namespace) -> int:
    me = socket.gethostname()
    deadline = time.monotonic() + args.wait_s
    while (config := claim(args.dir, me)) is None:
        if time.monotonic() > deadline:
            print(f"error: no free node.yaml under {args.dir / 'nodes'}", file=sys.stderr)
            return 2
        time.sleep(1)
    print(f"{me}: running node {config.stem}", flush=True)
    os.execvp("drift", ["drift", "node", "--config", str(config)])
    return 1  # not reached


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m drift.stack", description=__doc__.split("\n")[0])
    p.add_argument("--dir", type=Path, default=DEFAULT_DIR, help="the shared volume")
    p.add_argument("--wait-s", type=float, default=120.0, help="how long to wait (s)")
    sub = p.add_subparsers(dest="command", required=True)
    s = sub.add_parser("setup", help="write one node.yaml per simulated node (admin)")
    s.add_argument("--coordinator", default="http://coordinator:8000")
    s.add_argument("--collector", default="tcp://coordinator:5560")
    s.add_argument("--scenario", type=Path, default=Path(DEFAULT_SCENARIO))
    s.add_argument("--nodes", type=int, default=2, help="how many of the scenario's nodes")
    s.add_argument("--device-options", default=",realtime=1", help="appended to each device")
    s.set_defaults(func=setup)
    n = sub.add_parser("node", help="claim a node.yaml and run drift node on it")
    n.set_defaults(func=node)
    args = p.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
