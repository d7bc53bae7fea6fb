"""Transmit safety at the coordinator: what a node may claim about transmitting when it
enrolls, who may submit a transmitting job, and where the allocator lets a job transmit (the
node's own refusal and watchdog are in tests/test_propagation_network.py)."""

from __future__ import annotations

import pytest

from .conftest import Api

TX_DEVICE = {
    "driver": "hackrf",
    "freq_min_hz": 1e6,
    "freq_max_hz": 6e9,
    "max_bandwidth_hz": 20e6,
    "tx": True,
}
BAND = {"low_hz": 430e6, "high_hz": 440e6, "max_power_dbm": 10.0}
CLAIM = {"tx_opt_in": True, "tx_bands": [BAND], "tx_licence": "DL0XYZ"}


def _enroll(api: Api, capabilities, devices=(TX_DEVICE,)):
    token = api.client.post("/api/v1/nodes/enrollment-tokens", headers=api.admin).json()["token"]
    return api.client.post(
        "/api/v1/nodes/enroll",
        json={
            "token": token,
            "name": "roof",
            "location": {"lat_deg": 50, "lon_deg": 8},
            "devices": list(devices),
            "capabilities": capabilities,
        },
    )


def test_a_complete_transmit_claim_is_stored_as_the_node_made_it(api: Api):
    r = _enroll(api, CLAIM)
    assert r.status_code == 201, r.text
    node = api.client.get(f"/api/v1/nodes/{r.json()['node_id']}", headers=api.user("viewer"))
    caps = node.json()["capabilities"]
    assert caps["tx_opt_in"] is True and caps["tx_licence"] == "DL0XYZ"
    assert caps["tx_bands"] == [BAND]


@pytest.mark.parametrize(
    ("capabilities", "devices", "field"),
    [
        # opted in without saying where: a node.yaml with transmit.enabled has bands
        ({**CLAIM, "tx_bands": []}, (TX_DEVICE,), "tx_bands"),
        # opted in without the licence it transmits under
        ({k: v for k, v in CLAIM.items() if k != "tx_licence"}, (TX_DEVICE,), "tx_licence"),
        # bands without opting in
        ({"tx_bands": [BAND], "tx_licence": "DL0XYZ"}, (TX_DEVICE,), "tx_opt_in"),
        # no device of the node transmits
        (CLAIM, ({**TX_DEVICE, "tx": False},), "tx_opt_in"),
        # a licensed band the transmitting device does not tune to
        (CLAIM, ({**TX_DEVICE, "freq_min_hz": 700e6},), "tx_bands.0"),
        (
            {**CLAIM, "tx_bands": [{**BAND, "high_hz": 420e6}]},
            (TX_DEVICE,),
            "high_hz",
        ),
        ({**CLAIM, "tx_bands": [{**BAND, "max_power_dbm": 500}]}, (TX_DEVICE,), "max_power_dbm"),
    ],
)
def test_a_transmit_claim_short_of_a_node_yaml_transmit_section_is_refused(
    api: Api, capabilities, devices, field
):
    r = _enroll(api, capabilities, devices)
    assert r.status_code == 422, r.text
    assert field in r.text
    # nothing was stored: the node list stays empty
    assert api.client.get("/api/v1/nodes", headers=api.user("viewer")).json() == []
