"""A real InfluxDB 1.x server for the tests (drift.localnet.InfluxServer): missing influxd fails
the test when CI is set, and skips it otherwise."""

from __future__ import annotations

import os

import pytest

from drift import localnet


def InfluxServer(root):  # noqa: N802 (a factory standing in for the class)
    try:
        return localnet.InfluxServer(root)
    except FileNotFoundError as exc:
        if os.environ.get("CI"):
            pytest.fail(f"{exc} and CI is set")
        pytest.skip(str(exc))
