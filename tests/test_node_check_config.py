"""``drift node --check-config`` and the systemd units under deploy/systemd.

The check runs the real CLI on node.yaml files made here; each mistake must be one line naming
its field and exit status 2, and a configuration the agent can run exits 0 (the oracle for
that: the same file then enrolls a real agent with a real coordinator, in the network tests;
here, the scenario's own node and device model). The units are checked by systemd's own
parser (``systemd-analyze verify``) and their command lines by drift's own argument parser.
"""

from __future__ import annotations

import configparser
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from drift.cli import build_parser

ROOT = Path(__file__).resolve().parent.parent
SCENARIO = ROOT / "examples" / "scenarios" / "city.yaml"
UNITS = ROOT / "deploy" / "systemd"


def _check(tmp_path: Path, **fields) -> subprocess.CompletedProcess:
    cfg = {
        "coordinator": "http://127.0.0.1:8000",
        "enrollment_token": "drift-enroll-test",
        "name": "n1",
        "device": f"sim={SCENARIO},node=n1",
        "state_dir": str(tmp_path / "state"),
        **fields,
    }
    cfg = {k: v for k, v in cfg.items() if v is not None}
    path = tmp_path / "node.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return subprocess.run(
        [sys.executable, "-m", "drift.cli", "node", "--config", str(path), "--check-config"],
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_a_node_yaml_the_agent_can_run_is_accepted_with_what_it_describes(tmp_path):
    r = _check(tmp_path)
    assert r.returncode == 0, r.stderr
    truth = yaml.safe_load(SCENARIO.read_text())
    [node] = [n for n in truth["nodes"] if n["id"] == "n1"]
    # the device model the scenario gives node n1, as the device layer describes it
    assert f"device sim:{node['device']}" in r.stdout, r.stdout
    assert "not enrolled yet" in r.stdout and r.stdout.rstrip().endswith("OK")
    assert not (tmp_path / "state").exists()  # a check creates nothing


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"coordinator": "ftp://x"}, "coordinator"),
        ({"heartbeat_interval_s": -1}, "heartbeat_interval_s"),
        ({"surprise": 1}, "surprise"),
        ({"enrollment_token": None}, "enrollment_token"),
        ({"device": "driver=rtlsdr"}, "location"),
        ({"device": "nonsense-device"}, "device"),
        ({"ca_file": "not-a-cert.pem"}, "ca_file"),
        ({"ca_file": "missing.pem"}, "ca_file"),
    ],
)
def test_each_mistake_is_one_line_naming_its_field_and_exit_2(tmp_path, fields, field):
    (tmp_path / "not-a-cert.pem").write_text("hello\n")
    r = _check(tmp_path, **fields)
    assert r.returncode == 2, (r.stdout, r.stderr)
    errors = [line for line in r.stderr.splitlines() if line.startswith("error:")]
    assert errors and all("Traceback" not in line for line in r.stderr.splitlines())
    assert any(field in line for line in errors), r.stderr


_TX = {
    "enabled": True,
    "licence": "DL0XYZ",
    "bands": [{"low_hz": 430e6, "high_hz": 440e6, "max_power_dbm": 10}],
}


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"transmit": {**_TX, "bands": []}}, "transmit.bands"),
        ({"transmit": {**_TX, "licence": None}}, "transmit.licence"),
        (
            {
                "transmit": {
                    **_TX,
                    "bands": [{"low_hz": 440e6, "high_hz": 430e6, "max_power_dbm": 1}],
                }
            },
            "transmit.bands.0",
        ),
        ({"transmit": {**_TX, "bands": [{"low_hz": 430e6, "high_hz": 440e6}]}}, "max_power_dbm"),
        ({"transmit": {**_TX, "power": 3}}, "transmit.power"),
        # n1 is an ADALM-Pluto (325 MHz - 3.8 GHz): a band below what it tunes to
        (
            {
                "transmit": {
                    **_TX,
                    "bands": [{"low_hz": 144e6, "high_hz": 146e6, "max_power_dbm": 1}],
                }
            },
            "transmit.bands.0",
        ),
        # n3 is an RTL-SDR, which cannot transmit
        ({"transmit": _TX, "device": f"sim={SCENARIO},node=n3", "name": "n3"}, "transmit.enabled"),
    ],
)
def test_each_transmit_mistake_names_its_field(tmp_path, fields, field):
    r = _check(tmp_path, **fields)
    assert r.returncode == 2, (r.stdout, r.stderr)
    errors = [line for line in r.stderr.splitlines() if line.startswith("error:")]
    assert any(field in line for line in errors), r.stderr


def test_a_transmitting_node_yaml_is_described(tmp_path):
    r = _check(tmp_path, transmit=_TX)
    assert r.returncode == 0, r.stderr
    assert "transmit: on under licence DL0XYZ, 430-440 MHz up to 10 dBm" in r.stdout


def test_plain_http_to_another_host_is_a_warning_not_an_error(tmp_path):
    r = _check(tmp_path, coordinator="http://192.0.2.10:8000")
    assert r.returncode == 0, r.stderr
    assert "warning: coordinator: plain http:// to 192.0.2.10" in r.stdout


def _unit(name: str) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # systemd keys are case-sensitive
    text = (UNITS / name).read_text().replace("\\\n", " ")
    parser.read_string(text)
    return parser


@pytest.mark.parametrize("name", ["drift-node.service", "drift-coordinator.service"])
def test_the_systemd_units_pass_systemds_own_check_and_run_drifts_commands(tmp_path, name):
    unit = _unit(name)
    service = unit["Service"]
    # hardened as the deployment needs: no new privileges, a read-only system, its own state
    assert service["NoNewPrivileges"] == "yes" and service["ProtectSystem"] == "strict"
    assert service["Restart"] == "on-failure" and service["StateDirectory"].startswith("drift-")
    assert service["User"] == "drift"
    # every command line is one drift's own parser takes
    for key in ("ExecStartPre", "ExecStart"):
        if key in service:
            argv = shlex.split(service[key])
            assert argv[0].endswith("/bin/drift")
            build_parser().parse_args(argv[1:])
    # systemd's parser: with the binary put where it can be found, no complaint at all
    text = (UNITS / name).read_text().replace("/opt/drift/.venv/bin/drift", "/bin/true")
    copy = tmp_path / name
    copy.write_text(text)
    r = subprocess.run(
        ["systemd-analyze", "verify", str(copy)], capture_output=True, text=True, timeout=60
    )
    assert r.returncode == 0 and not r.stderr.strip(), r.stderr
