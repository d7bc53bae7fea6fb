"""A node agent compiles a timed assignment once, ahead of its start, and launches it on the
heartbeat round that reaches the start: the rounds in between neither compile again (opening
the device each time: seconds on a busy machine, and heartbeats late) nor lose what was
compiled when the assignment is cancelled or moved."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from drift.node.agent import NodeAgent
from drift.node.config import AgentConfig
from drift.orchestrator import compiler
from drift.orchestrator.jobs import SpectrumScanJob


@pytest.fixture
def agent(tmp_path: Path):
    cfg = AgentConfig(coordinator="http://127.0.0.1:9", device="testsig", state_dir=tmp_path / "n")
    a = NodeAgent(cfg)
    a.node_id = "node-1"
    yield a
    for run in a.running.values():
        run.proc.kill()
        run.proc.wait(10)
    a.http.close()


def _assignment(start: float, attempts: int = 0) -> dict:
    job = SpectrumScanJob(start_freq_hz=100e6, stop_freq_hz=101e6, bin_hz=10e3, duration_s=2.0)
    return {
        "id": "asg-1",
        "job_id": "job-1",
        "job_type": "spectrum_scan",
        "parameters": job.model_dump(mode="json", exclude={"type", "priority"}),
        "start_time": start,
        "attempts": attempts,
        "role": "receiver",
    }


def test_a_timed_assignment_is_compiled_once_and_launched_at_its_start(agent, monkeypatch):
    calls = []
    real = compiler.compile_job

    def counting(*args, **kw):
        calls.append(args[0])
        return real(*args, **kw)

    monkeypatch.setattr(compiler, "compile_job", counting)
    start = time.time() + 3600
    for _ in range(3):  # three heartbeat rounds before the start
        agent._apply_assignments([_assignment(start)])
    assert calls == ["spectrum_scan"] and not agent.running
    assert list(agent._prepared) == [("asg-1", 0, start)]

    # moved to another start (a new attempt): compiled anew, the old one dropped
    agent._apply_assignments([_assignment(start + 60, attempts=1)])
    assert len(calls) == 2 and list(agent._prepared) == [("asg-1", 1, start + 60)]

    # cancelled before its start: nothing kept
    agent._apply_assignments([])
    assert agent._prepared == {} and not agent.running

    # its start reached: launched from the compiled command, and no longer kept
    soon = time.time() + agent.cfg.capture_prestart_s + 0.2
    agent._apply_assignments([_assignment(soon, attempts=2)])
    assert len(calls) == 3 and "asg-1" in agent.running and agent._prepared == {}
