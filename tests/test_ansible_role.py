"""The Ansible role ``drift_node`` (deploy/ansible), applied for real.

``ansible-lint`` (production profile) must pass on deploy/ansible. Then the playbook is applied
twice to a Debian 12 container (podman through ``scripts/containers``, which applies this host's
settings; Ansible reaches it with the ``containers.podman.podman`` connection, or
``community.docker.docker`` where docker is the engine) whose node is the
simulator as a SoapySDR radio (``driver=drift``, gr-drift's own module): the first run installs
GNU Radio from Debian, the bundle that ``deploy/ansible/build-bundle`` makes, the user, the
rules, the time service and node.yaml; the second must change nothing. Inside the container the
files are checked for owner and mode, the unit is the one under deploy/systemd byte for byte, and
``drift node --check-config``, run as the ``drift`` user, accepts the node.yaml it finds. Bad
inventory values are refused naming their variable, and a node.yaml that ``--check-config``
refuses never replaces the one in place.

The container has no systemd (``drift_node_systemd: false``): services are not started there.
It is removed at the end, whatever happened. Where neither podman nor docker can run the test is
skipped, saying why, except under CI (CI=true), where it fails.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
ANSIBLE_DIR = ROOT / "deploy" / "ansible"
CONTAINERS = ROOT / "scripts" / "containers"
BIN = Path(sys.executable).parent
SCENARIO = "/opt/drift/examples/scenarios/city.yaml"  # inside the bundle, on the node
TOKEN = "dre_test-token-for-the-role"

pytestmark = pytest.mark.timeout(3600)


def _engine_or_skip() -> str:
    r = subprocess.run([str(CONTAINERS), "engine"], capture_output=True, text=True, timeout=120)
    if r.returncode == 0:
        return r.stdout.strip()
    why = (r.stderr.strip() or r.stdout.strip()).splitlines()[-1:] or ["no container engine"]
    if os.environ.get("CI") == "true":
        pytest.fail(f"the Ansible role test needs podman or docker under CI: {why[0]}")
    pytest.skip(f"the Ansible role test needs podman or docker: {why[0]}")


def _tool(name: str) -> str:
    path = BIN / name
    if not path.exists():
        pytest.fail(f"{name} is missing from {BIN}: pip install -e .[dev]")
    return str(path)


def _containers(*args: str, timeout: float = 300, check: bool = True):
    r = subprocess.run(
        [str(CONTAINERS), *args], capture_output=True, text=True, timeout=timeout, check=False
    )
    if check and r.returncode != 0:
        raise AssertionError(f"scripts/containers {' '.join(args)}: {r.stderr}{r.stdout}")
    return r


def _connection(engine: str) -> tuple[dict[str, str], dict[str, str]]:
    """Ansible's connection to a container of `engine`, with scripts/containers' settings.

    Ansible runs the engine several times for each task, so it calls the engine itself rather
    than through scripts/containers (which checks the engine each time it starts: about 0.7 s
    a call here); the settings are the same: docker/containers.conf and runc where installed.
    """
    if engine == "docker":
        return {"ansible_connection": "community.docker.docker"}, {}
    extra = {}
    runc = shutil.which("runc") or (
        "/usr/sbin/runc" if os.access("/usr/sbin/runc", os.X_OK) else None
    )
    if runc:
        extra["ansible_podman_extra_args"] = f"--runtime {runc}"
    env = {
        "CONTAINERS_CONF": os.environ.get(
            "CONTAINERS_CONF", str(ROOT / "docker" / "containers.conf")
        )
    }
    return {
        "ansible_connection": "containers.podman.podman",
        "ansible_podman_executable": shutil.which("podman") or "podman",
        **extra,
    }, env


def _apt_archives() -> str:
    """The apt archive cache the container gets: this host's, or one kept for these tests."""
    if os.environ.get("DRIFT_APT_ARCHIVES"):
        return os.environ["DRIFT_APT_ARCHIVES"]
    host = Path("/var/cache/apt/archives")
    if host.is_dir() and os.access(host, os.W_OK):
        return str(host)
    cache = Path(os.environ.get("DRIFT_ANSIBLE_CACHE", "/var/tmp/drift-ansible-cache")) / "apt"
    cache.mkdir(parents=True, exist_ok=True)
    return str(cache)


def test_ansible_lint_is_clean_with_the_production_profile():
    r = subprocess.run(
        [_tool("ansible-lint"), "--profile", "production", "--nocolor"],
        cwd=ANSIBLE_DIR,
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"},
    )
    assert r.returncode == 0, r.stdout + r.stderr
    assert "passed" in (r.stdout + r.stderr), r.stdout + r.stderr


@pytest.fixture(scope="module")
def node(tmp_path_factory):
    """A Debian 12 container and an inventory for it; removed at the end, whatever happened."""
    connection, connection_env = _connection(_engine_or_skip())
    playbook = _tool("ansible-playbook")
    t0 = time.monotonic()
    r = subprocess.run(
        [str(ANSIBLE_DIR / "build-bundle")], capture_output=True, text=True, timeout=3000
    )
    assert r.returncode == 0, r.stderr[-4000:]
    bundle = r.stdout.strip().splitlines()[-1]
    bundle_s = time.monotonic() - t0
    base = _containers("base", timeout=1800).stdout.strip()
    name = f"drift-ansible-{uuid.uuid4().hex[:10]}"
    _containers(
        "run", "-d", "--name", name, "--network", "host",
        "-v", f"{_apt_archives()}:/var/cache/apt/archives",
        base, "sleep", "infinity",
    )  # fmt: skip
    try:
        # what Debian's container images have: packages do not start services when they are
        # installed, and dpkg does not sync every file it writes
        _containers(
            "exec", name, "sh", "-c",
            "printf '#!/bin/sh\\nexit 101\\n' >/usr/sbin/policy-rc.d && chmod 755 /usr/sbin/policy-rc.d"
            " && echo force-unsafe-io >/etc/dpkg/dpkg.cfg.d/docker-apt-speedup",
        )  # fmt: skip
        tmp = tmp_path_factory.mktemp("ansible")
        inventory = tmp / "inventory.yml"
        inventory.write_text(
            yaml.safe_dump(
                {
                    "drift_nodes": {
                        "hosts": {
                            name: {
                                **connection,
                                # root in the container already: no sudo there
                                "ansible_become": False,
                                "drift_node_name": "roof-n2",
                                "drift_node_device": f"driver=drift,scenario={SCENARIO},node=n2",
                                "drift_node_lat": 48.15,
                                "drift_node_lon": 11.54,
                                "drift_node_alt": 515,
                                "drift_node_time_source": "gpsd",
                                "drift_node_gps_pps": True,
                                "drift_node_coordinator_url": "http://127.0.0.1:8000",
                                "drift_node_enrollment_token": TOKEN,
                                "drift_node_bundle": bundle,
                                "drift_node_systemd": False,
                            }
                        }
                    }
                }
            )
        )
        yield {
            "name": name,
            "inventory": inventory,
            "playbook": playbook,
            "bundle": bundle,
            "bundle_s": bundle_s,
            "env": connection_env,
        }
    finally:
        _containers("rm", "-f", "-t", "0", name, check=False, timeout=120)
        left = _containers("ps", "-a", "--filter", f"name={name}", "--format", "{{.Names}}")
        assert name not in left.stdout, f"container {name} was left behind"


def _play(node, *extra: str) -> tuple[subprocess.CompletedProcess, float]:
    t0 = time.monotonic()
    r = subprocess.run(
        [node["playbook"], "-i", str(node["inventory"]), "site.yml", *extra],
        cwd=ANSIBLE_DIR,
        capture_output=True,
        text=True,
        timeout=2400,
        env={
            **os.environ,
            "ANSIBLE_CONFIG": str(ANSIBLE_DIR / "ansible.cfg"),
            "ANSIBLE_NOCOLOR": "1",
            "ANSIBLE_FORCE_COLOR": "0",
            "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}",
            **node["env"],
        },
    )
    return r, time.monotonic() - t0


def _recap(node, output: str) -> dict[str, int]:
    m = re.search(re.escape(node["name"]) + r"\s*:\s*(ok=.*)$", output, re.M)
    assert m, output[-4000:]
    return {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", m.group(1))}


def _sh(node, cmd: str, user: str | None = None) -> subprocess.CompletedProcess:
    args = ["exec"] + (["--user", user] if user else []) + [node["name"], "sh", "-c", cmd]
    return _containers(*args, check=False, timeout=300)


def test_the_role_installs_a_node_and_a_second_run_changes_nothing(node):
    first, first_s = _play(node)
    assert first.returncode == 0, first.stdout[-6000:] + first.stderr[-2000:]
    recap = _recap(node, first.stdout)
    assert recap["failed"] == 0 and recap["changed"] > 0, recap

    second, second_s = _play(node)
    assert second.returncode == 0, second.stdout[-6000:] + second.stderr[-2000:]
    recap = _recap(node, second.stdout)
    # the tasks that changed something, for the message
    changed = re.findall(r"^TASK \[(.*?)\] \**\n(?:(?!TASK ).*\n)*?changed: ", second.stdout, re.M)
    assert recap["changed"] == 0 and recap["failed"] == 0, (recap, changed)
    print(
        f"\nbundle {Path(node['bundle']).name}: {node['bundle_s']:.0f} s; "
        f"first run {first_s:.0f} s, second run {second_s:.0f} s"
    )

    # the files, with their owner and mode
    expect = {
        "/etc/systemd/system/drift-node.service": "root:root 644",
        "/etc/udev/rules.d/60-drift-sdr.rules": "root:root 644",
        "/etc/modprobe.d/blacklist-drift-rtlsdr.conf": "root:root 644",
        "/etc/drift": "root:drift 750",
        "/etc/drift/node.yaml": "root:drift 640",
        "/var/lib/drift-node": "drift:drift 700",
        "/etc/default/gpsd": "root:root 644",
        "/etc/chrony/conf.d/drift.conf": "root:root 644",
    }
    for path, owner_mode in expect.items():
        r = _sh(node, f"stat -c '%U:%G %a' {path}")
        assert r.stdout.strip() == owner_mode, (path, r.stdout, r.stderr)

    # the unit is deploy/systemd's, as it is
    unit = _sh(node, "cat /etc/systemd/system/drift-node.service").stdout
    assert unit == (ROOT / "deploy" / "systemd" / "drift-node.service").read_text()
    rules = _sh(node, "cat /etc/udev/rules.d/60-drift-sdr.rules").stdout
    for vendor_product in ("0bda.*2838", "1d50.*6089", "1d50.*60a1", "0456.*b673", "2500.*0020"):
        assert re.search(rf'idVendor}}=="{vendor_product}".*GROUP="plugdev"', rules), vendor_product
    assert "blacklist dvb_usb_rtl28xxu" in _sh(node, "cat /etc/modprobe.d/*drift*").stdout
    assert "refclock SHM 1 refid PPS" in _sh(node, "cat /etc/chrony/conf.d/drift.conf").stdout

    # the user, in plugdev; the install, linked as /opt/drift
    groups = _sh(node, "id -nG drift").stdout.split()
    assert "plugdev" in groups and "drift" in groups, groups
    link = _sh(node, "readlink /opt/drift").stdout.strip()
    assert link.endswith(Path(node["bundle"]).name.removesuffix(".tar.gz")), link
    for pkg in ("gnuradio", "soapysdr-module-all", "gpsd", "chrony"):
        r = _sh(node, f"dpkg-query -W -f='${{Status}}' {pkg}")
        assert r.stdout == "install ok installed", (pkg, r.stdout, r.stderr)

    # node.yaml says what the inventory said
    cfg = yaml.safe_load(_sh(node, "cat /etc/drift/node.yaml").stdout)
    assert cfg == {
        "coordinator": "http://127.0.0.1:8000",
        "name": "roof-n2",
        "device": f"driver=drift,scenario={SCENARIO},node=n2",
        "location": {"lat_deg": 48.15, "lon_deg": 11.54, "alt_m": 515.0},
        "sync": {"source": "pps"},
        "state_dir": "/var/lib/drift-node",
        "enrollment_token": TOKEN,
    }, cfg

    # and the agent's own check accepts it, run as the agent's user: gr-drift's SoapySDR module
    # (driver=drift) is found in the bundle and opens the simulated radio
    r = _sh(
        node,
        "/opt/drift/.venv/bin/drift node --config /etc/drift/node.yaml --check-config",
        "drift",
    )
    assert r.returncode == 0, r.stdout + r.stderr
    assert "device drift" in r.stdout and r.stdout.rstrip().endswith("OK"), r.stdout

    # grcc finds DRIFT's blocks (/etc/gnuradio/conf.d/zz-drift.conf): the node can compile its jobs
    r = _sh(
        node,
        "rm -rf /tmp/fg && grcc -o /tmp/fg /opt/drift/flowgraphs/spectrum_scan.grc && ls /tmp/fg",
        "drift",
    )
    assert r.returncode == 0 and ".py" in r.stdout, r.stdout + r.stderr


def test_bad_inventory_values_are_refused_naming_the_variable(node):
    r, _ = _play(node, "-e", "drift_node_lat=123.5")
    assert r.returncode != 0
    assert "drift_node_lat (123.5) must be within -90..90" in r.stdout, r.stdout[-3000:]
    r, _ = _play(node, "-e", "drift_node_coordinator_url=ftp://coordinator")
    assert r.returncode != 0
    assert "drift_node_coordinator_url: an http:// or https:// URL is required" in r.stdout


def test_a_node_yaml_the_agent_would_refuse_is_not_installed(node):
    before = _sh(node, "cat /etc/drift/node.yaml").stdout
    assert "driver=drift" in before, "the role test's node is not installed"
    # the inventory's checks pass it; drift node --check-config does not
    r, _ = _play(node, "-e", "drift_node_device=nonsense-device")
    assert r.returncode != 0
    assert "failed to validate" in r.stdout and "device" in r.stdout, r.stdout[-3000:]
    assert _sh(node, "cat /etc/drift/node.yaml").stdout == before
