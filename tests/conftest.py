"""Shared test set-up: every test keeps its state (calibration records...) in its own folder."""

import pytest


@pytest.fixture(autouse=True)
def _own_data_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("DRIFT_DATA_DIR", str(tmp_path / "drift-data"))
